//! `emdtui ewpc FILE [--at ROW,COL] -o OUT.npy|.tiff|.png [--eps X] [--no-window]`: the EWPC
//! (|FFT(log max(DP, eps))|, fftshifted) of the mean pattern or of the pattern at one scan
//! position, in detector shape.
//!
//! A command of its own rather than `overview --detector ewpc`: the result is a detector-space
//! image (one per pattern), not one value per scan position as every `--detector` gives.

use crate::Tuning;
use crate::cli::{Cli, EwpcArgs};
use crate::compute::display::{Colormap, Scale};
use crate::compute::overview::{ComputeOptions, default_geometry};
use crate::dataset;
use crate::format::export;
use crate::jobs::Progress;
use crate::ops::ewpc::EwpcOptions;
use crate::ops::overview::{GeometryChoice, OverviewJob};
use anyhow::{Result, bail};

pub fn run(a: &EwpcArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    let disp = a.style.display(Colormap::Inferno, Scale::Log)?;
    let at: Option<(usize, usize)> = a.at.as_deref().map(|s| crate::cli::parse_pair(s, "--at")).transpose()?;
    if let Some(e) = a.eps
        && !(e > 0.0 && e.is_finite())
    {
        bail!("--eps {e}: the floor must be a positive number of counts");
    }
    let budget = cli.memory_budget()?;
    let ds = dataset::open(&a.file, &cli.open.batch_options(budget)?)?;
    if ds.positions_present() == 0 {
        bail!("{}: no frames to compute from", a.file.display());
    }
    let (dr, dc) = ds.det();
    let job = OverviewJob {
        geometry: GeometryChoice::Auto { fallback: default_geometry(dr, dc) },
        compute: ComputeOptions { memory_budget: budget, coarse_first: false, ..Default::default() },
        cache_dir: if a.no_cache { None } else { t.cache_dir.clone() },
        emd_cache: !a.no_cache,
        keep_bad_pixels: cli.keep_bad_pixels,
        user_bad: crate::cli::common::user_bad_pixels(cli, dr, dc)?,
    };
    let opts = EwpcOptions { eps_abs: a.eps, window: !a.no_window, ..Default::default() };
    let progress = Progress::job(crate::jobs::JobKind::Overview, 0);
    progress.set_state(crate::jobs::JobState::Running);
    let v = crate::cli::progress::with_frames_bar(&progress, "mean", || {
        crate::ops::ewpc::ewpc_of(ds.as_ref(), at, &job, &opts, &progress)
    })?;
    crate::cli::common::write_f32(&a.output, dr, dc, &v, &disp)?;
    let of = match at {
        Some((r, c)) => format!("the pattern at {r},{c}"),
        None => "the mean pattern".into(),
    };
    eprintln!("EWPC of {of}: {dr}x{dc}, zero quefrency at {},{}", dr / 2, dc / 2);
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
