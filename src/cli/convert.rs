//! `emdtui convert`.

use crate::Tuning;
use crate::cli::{Cli, ConvertArgs};
use crate::compute::convert::ConvertOptions;
use crate::jobs::Progress;
use crate::ops::convert::{self, ConvertReport};
use crate::util::hs;
use anyhow::{Context, Result, anyhow};

/// Parse `R0:R1,C0:C1`.
pub fn parse_crop(s: &str) -> Result<((usize, usize), (usize, usize))> {
    let bad = || anyhow!("--crop {s:?}: expected R0:R1,C0:C1 (half-open scan ranges), e.g. 0:64,16:80");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let range = |t: &str| -> Result<(usize, usize)> {
        let (x, y) = t.split_once(':').ok_or_else(bad)?;
        Ok((x.trim().parse().map_err(|_| bad())?, y.trim().parse().map_err(|_| bad())?))
    };
    Ok((range(a)?, range(b)?))
}

/// Conversion options with the tuning knobs filled in.
pub fn convert_options(budget: u64, t: &Tuning) -> ConvertOptions {
    ConvertOptions {
        memory_budget: budget,
        deflate_level: t.deflate_level(),
        no_space_check: t.no_space_check,
        fail_write_after: t.fail_write_after,
        timing: t.timing,
        ..Default::default()
    }
}

pub fn run(a: &ConvertArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let given = cli.calib.given()?;
    let opts = cli.open.batch_options(cli.memory_budget()?)?;
    let ds = crate::dataset::open(&a.input, &opts)?;
    for w in &ds.info().warnings {
        eprintln!("warning: {w}");
    }
    let out = a.output.clone().unwrap_or_else(|| convert::default_output(&a.input));
    if out == a.input {
        anyhow::bail!("{}: the output would overwrite the input; choose another -o", out.display());
    }
    let calibration = crate::ops::calib::resolve(ds.as_ref(), &given, t.cache_dir.as_deref())?;
    let copts = ConvertOptions {
        calibration: Some(calibration),
        compress: a.compress,
        bin_detector: a.bin_detector,
        bin_scan: a.bin_scan,
        crop: a.crop.as_deref().map(parse_crop).transpose()?,
        force: a.force,
        ..convert_options(cli.memory_budget()?, t)
    };
    let (r, positions) =
        convert_with_bar(ds.as_ref(), &out, &copts).with_context(|| format!("converting {}", a.input.display()))?;
    let mb = |b: u64, s: f64| b as f64 / s.max(1e-9) / (1024.0 * 1024.0);
    println!(
        "wrote {}: {} positions, {} read, {} written in {:.2} s ({:.0} MiB/s read, {:.0} MiB/s written)",
        r.output.display(),
        positions,
        hs(r.bytes_read),
        hs(r.bytes_written),
        r.seconds,
        mb(r.bytes_read, r.seconds),
        mb(r.bytes_written, r.seconds)
    );
    Ok(())
}

/// Run a conversion with a progress bar on stderr; returns the report and the positions written.
pub fn convert_with_bar(
    ds: &dyn crate::dataset::Dataset,
    out: &std::path::Path,
    copts: &ConvertOptions,
) -> crate::Result<(ConvertReport, u64)> {
    let progress = Progress::job(crate::jobs::JobKind::Convert, ds.scan().positions() as u64);
    progress.set_state(crate::jobs::JobState::Running);
    let r = crate::cli::progress::with_frames_bar(&progress, "convert", || convert::convert(ds, out, copts, &progress));
    r.map(|r| (r, progress.done()))
}
