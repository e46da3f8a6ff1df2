//! `emdtui fft` and `emdtui export --fft-q/--fft-k`.

use crate::Tuning;
use crate::cli::{Cli, ExportArgs, FftArgs, OpenArgs, parse_pair};
use crate::compute::display::{Colormap, DisplayParams};
use crate::compute::fft::{self, FftAxes, FftParams, FftReport, Part};
use crate::dataset::Dataset;
use crate::jobs::Progress;
use crate::ops::fft::{EmdSource, FftOutcome};
use crate::store::fft::FftCache;
use crate::util::{hs, peak_rss};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// FFT parameters from the command line (finds the BF disk when needed).
pub fn params_from_args(a: &FftArgs, ds: &dyn Dataset) -> Result<FftParams> {
    let axes = match a.axes.as_str() {
        "scan" => FftAxes::Scan,
        "all" => FftAxes::All,
        s => bail!("--axes {s:?}: use scan or all"),
    };
    if a.bin == 0 {
        bail!("--bin must be at least 1");
    }
    let crop = match a.crop.as_str() {
        "full" => {
            if a.center.is_some() || a.radius.is_some() {
                bail!("--center/--radius only apply to --crop bf");
            }
            None
        }
        "bf" => {
            let user_c = a.center.as_deref().map(|s| parse_pair::<f32>(s, "--center")).transpose()?;
            match (user_c, a.radius) {
                (Some(c), Some(r)) => Some((c, r)),
                (c, r) => {
                    let ((cy, cx), ar) = fft::auto_crop(ds)?;
                    let c = c.unwrap_or((cy, cx));
                    let r = r.unwrap_or(ar);
                    eprintln!("BF disk crop: centre ({:.1}, {:.1}), radius {:.1} px (incl. margin)", c.0, c.1, r);
                    Some((c, r))
                }
            }
        }
        s => bail!("--crop {s:?}: use bf or full"),
    };
    Ok(FftParams { axes, crop, bin: a.bin })
}

/// The FFT options of a run with the tuning knobs filled in.
pub fn run_options(t: &Tuning) -> fft::RunOptions {
    fft::RunOptions {
        group_delay: t.fft_group_delay,
        announce_wait: true,
        buffered_output: t.fft_buffered,
        scratch_on_disk: t.fft_scratch_on_disk,
        timing: t.timing,
        ..Default::default()
    }
}

/// Run the FFT of `ds` into `emd` with a progress bar; prints the plan and the report.
/// `opts`: [`run_options`], with the pixel source and the scratch to take over when known.
pub fn run_on_dataset(
    ds: &dyn Dataset,
    emd: &Path,
    params: &FftParams,
    budget: u64,
    opts: &fft::RunOptions,
) -> Result<FftReport> {
    let (out_b, scratch_b, shape) = fft::planned_sizes(ds, params, budget)?;
    eprintln!(
        "FFT {}x{}x{}x{} complex64 into {}: output {}, temporary scratch {} (memory budget {})",
        shape[0],
        shape[1],
        shape[2],
        shape[3],
        emd.display(),
        hs(out_b),
        hs(scratch_b),
        hs(budget)
    );
    let progress = Progress::job(crate::jobs::JobKind::Fft, 0);
    let pb = crate::cli::progress::bar(0, "fft");
    let rep = crate::cli::progress::drive(
        std::time::Duration::from_millis(200),
        || {
            pb.set_length(progress.total().max(1));
            pb.set_position(progress.done());
            pb.set_message(progress.message());
        },
        || crate::ops::fft::load_or_compute(ds, emd, Some(params.clone()), budget, &progress, opts),
    );
    pb.finish_and_clear();
    let rep = match rep.with_context(|| format!("FFT of {}", ds.info().path.display()))? {
        FftOutcome::Computed(_, rep) => *rep,
        FftOutcome::Loaded(_) => unreachable!("parameters were given"),
    };
    print_report(&rep, emd);
    Ok(rep)
}

pub fn print_report(r: &FftReport, emd: &Path) {
    if r.already_complete {
        println!("{}: FFT cache already complete and valid for these parameters; nothing to do", emd.display());
        return;
    }
    println!(
        "FFT {:?} -> {}:/emdtui/cache/fft_complex/data, chunks {:?}, detector box (row0, col0, rows, cols) {:?}",
        r.shape,
        emd.display(),
        r.chunk,
        r.det_box
    );
    println!(
        "blocks: {} total, {} computed now, {} resumed from an earlier run (pass 1 positions resumed: {})",
        r.blocks_total, r.blocks_computed, r.blocks_resumed, r.pass1_positions_resumed
    );
    println!(
        "bytes read: {} (source {}, scratch {}); bytes written: {} (scratch {}, output {})",
        hs(r.bytes_read()),
        hs(r.input_bytes_read),
        hs(r.scratch_bytes_read),
        hs(r.bytes_written()),
        hs(r.scratch_bytes_written),
        hs(r.output_bytes_written)
    );
    println!("time: pass 1 {:.2} s, pass 2 {:.2} s ({} groups)", r.seconds_pass1, r.seconds_pass2, r.pass2_groups);
    if r.pass1_alongside {
        println!("pass 1 ran alongside the conversion (its scratch was taken over)");
    }
    if let Some(p) = r.pixels_from.as_ref().filter(|p| p.as_path() != emd) {
        println!("pixels read from {} (the EMD's datacube is a bit-exact conversion of it)", p.display());
    }
    if r.scratch_in_memory {
        println!("scratch: in memory (it fit half the memory budget), no scratch file");
    }
    if !r.output_io.is_empty() {
        println!("output writes: {}", r.output_io);
    }
    if let Some(hwm) = peak_rss() {
        println!("peak memory (VmHWM): {}", hs(hwm));
    }
}

pub fn run(a: &FftArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let budget = cli.memory_budget()?;
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let is_emd = matches!(ext.as_str(), "emd" | "h5" | "hdf5");
    let emd: PathBuf = match (&a.output, is_emd) {
        (Some(o), _) => o.clone(),
        (None, true) => a.file.clone(),
        (None, false) => a.file.with_extension("emd"),
    };
    if a.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("mib")) && emd == a.file {
        bail!("{}: refusing to write into the .mib", a.file.display());
    }
    let opts = cli.open.batch_options(budget)?;
    let src = crate::dataset::open(&a.file, &opts)?;
    // the FFT lives in the EMD: a .mib is converted first (unless its EMD is already there)
    if src.info().kind != crate::dataset::Kind::Emd && !crate::ops::convert::is_converted_from(&emd, src.as_ref()) {
        eprintln!("4D FFT requires the EMD: converting {} -> {} first", a.file.display(), emd.display());
    }
    // an EMD of the same name that is not a conversion of this data is replaced
    let calibration = crate::ops::calib::resolve(src.as_ref(), &cli.calib.given()?, t.cache_dir.as_deref())?;
    let copts = crate::compute::convert::ConvertOptions {
        force: true,
        calibration: Some(calibration),
        bad_pixels: crate::cli::convert::bad_pixels_option(cli, src.as_ref())?,
        ..crate::cli::convert::convert_options(budget, t)
    };
    let progress = Progress::job(crate::jobs::JobKind::Convert, src.scan().positions() as u64);
    // parameters that do not depend on the data are known before the conversion: pass 1 then
    // runs alongside it
    let early = (a.crop == "full" || (a.center.is_some() && a.radius.is_some()))
        .then(|| params_from_args(a, src.as_ref()))
        .transpose()?;
    let src2 = src.clone();
    let (ds, how, adopt) = crate::cli::progress::with_frames_bar(&progress, "convert", || match early.as_ref() {
        Some(params) => {
            let p1 = Progress::job(crate::jobs::JobKind::Fft, 0);
            crate::ops::fft::ensure_emd_with_pass1(src2, &emd, &copts, params, budget, &progress, &p1, &run_options(t))
        }
        None => crate::ops::fft::ensure_emd(src2, &emd, &copts, &progress).map(|(d, h)| (d, h, None)),
    })
    .with_context(|| format!("converting {}", a.file.display()))?;
    match how {
        EmdSource::Itself => {}
        EmdSource::Existing => eprintln!("using the existing conversion {}", emd.display()),
        EmdSource::Converted(r) => {
            eprintln!("converted: {} read, {} written in {:.1} s", hs(r.bytes_read), hs(r.bytes_written), r.seconds)
        }
    }
    let params = match early {
        Some(p) => p,
        None => params_from_args(a, ds.as_ref())?,
    };
    let pixels = crate::ops::fft::pixel_source(&src, &emd, ds.as_ref());
    drop(src);
    let extra = fft::RunOptions { pixels, adopt_scratch: adopt, ..run_options(t) };
    run_on_dataset(ds.as_ref(), &emd, &params, budget, &extra)?;
    Ok(())
}

pub fn run_export(a: &ExportArgs, _open: &OpenArgs) -> Result<()> {
    let fmt = crate::format::export::format_of(&a.output)?;
    crate::format::export::check_output_dir(&a.output)?;
    let part =
        Part::parse(&a.part).ok_or_else(|| anyhow::anyhow!("--part {:?}: use amp, phase, real or imag", a.part))?;
    let cache = FftCache::open(&a.file)?;
    let [qr, qc, kr, kc] = cache.shape;
    let (img, rows, cols) = match (&a.fft_q, &a.fft_k) {
        (Some(_), Some(_)) => bail!("give either --fft-q or --fft-k, not both"),
        (Some(q), None) => {
            let (dy, dx): (i64, i64) = parse_pair(q, "--fft-q")?;
            let (oy, ox) = cache.q_origin();
            let (y, x) = (oy as i64 + dy, ox as i64 + dx);
            if y < 0 || x < 0 || y >= qr as i64 || x >= qc as i64 {
                bail!(
                    "--fft-q {dy},{dx}: outside the Q range {}..={}, {}..={}",
                    -(oy as i64),
                    qr as i64 - 1 - oy as i64,
                    -(ox as i64),
                    qc as i64 - 1 - ox as i64
                );
            }
            (cache.detector_image((y as usize, x as usize), 0, part)?, kr, kc)
        }
        (None, Some(k)) => {
            let (y, x): (usize, usize) = parse_pair(k, "--fft-k")?;
            if y >= kr || x >= kc {
                bail!("--fft-k {y},{x}: outside the stored {kr}x{kc} detector region (indices within the crop box)");
            }
            (cache.q_image((y, x), 0, part)?, qr, qc)
        }
        (None, None) => unreachable!(),
    };
    let mut disp = crate::cli::info::display_params(
        &a.cmap,
        &a.scale,
        if part == Part::Phase { Colormap::Twilight } else { Colormap::Gray },
    )?;
    if part == Part::Phase {
        disp = DisplayParams { clip: (0.0, 100.0), ..disp };
    }
    let _ = fmt;
    crate::cli::info::write_f32(&a.output, rows, cols, &img, &disp)?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
