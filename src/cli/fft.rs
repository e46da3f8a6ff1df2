//! `emdtui fft` and `emdtui export --fft-q/--fft-k`.

use crate::Tuning;
use crate::cli::common::run_options;
use crate::cli::{Cli, ExportArgs, FftArgs, OpenArgs, parse_pair};
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::fft::{self, FftAxes, FftParams, FftReport, Part};
use crate::dataset::Dataset;
use crate::jobs::Progress;
use crate::ops::fft::{EmdSource, FftJob, FftOutcome, FftRun, FftSink, FftWant};
use crate::ops::fft_estimate::{EstimateRequest, estimate};
use crate::store::fft::FftCache;
use crate::util::{hs, peak_rss};
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The plan line: shape, output, scratch and memory budget of the FFT of `ds` with `params`.
fn print_plan(ds: &dyn Dataset, emd: &Path, params: &FftParams, budget: u64) {
    if let Ok((out_b, scratch_b, shape)) = fft::planned_sizes(ds, params, budget) {
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
    }
}

/// The FFT workflow's steps on stderr: the conversion's frames bar, what the conversion did, the
/// plan, then the FFT's bar.
struct Bars {
    convert: std::sync::Arc<Progress>,
    fft: std::sync::Arc<Progress>,
    convert_bar: ProgressBar,
    fft_bar: ProgressBar,
    fft_started: AtomicBool,
    emd: PathBuf,
    budget: u64,
}

impl Bars {
    fn new(frames: u64, emd: &Path, budget: u64) -> Bars {
        let fft_bar = crate::cli::progress::bar(0, "fft");
        fft_bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        Bars {
            convert: Progress::job(crate::jobs::JobKind::Convert, frames),
            fft: Progress::job(crate::jobs::JobKind::Fft, 0),
            convert_bar: crate::cli::progress::frames_bar(frames, "convert"),
            fft_bar,
            fft_started: AtomicBool::new(false),
            emd: emd.to_path_buf(),
            budget,
        }
    }
    fn update(&self) {
        if self.fft_started.load(Ordering::Acquire) {
            self.fft_bar.set_length(self.fft.total().max(1));
            self.fft_bar.set_position(self.fft.done());
            self.fft_bar.set_message(self.fft.message());
        } else {
            self.convert_bar.set_length(self.convert.total());
            self.convert_bar.set_position(self.convert.done());
        }
    }
}

impl FftSink for Bars {
    fn convert_progress(&self) -> &Progress {
        &self.convert
    }
    fn fft_progress(&self) -> &Progress {
        &self.fft
    }
    fn emd_ready(&self, how: &EmdSource) {
        self.convert_bar.finish_and_clear();
        match how {
            EmdSource::Itself => {}
            EmdSource::Existing => eprintln!("using the existing conversion {}", self.emd.display()),
            EmdSource::Converted(r) => {
                eprintln!("converted: {} read, {} written in {:.1} s", hs(r.bytes_read), hs(r.bytes_written), r.seconds)
            }
        }
    }
    fn fft_starts(&self, ds: &dyn Dataset, params: &FftParams) {
        print_plan(ds, &self.emd, params, self.budget);
        if std::io::stderr().is_terminal() {
            self.fft_bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.fft_started.store(true, Ordering::Release);
    }
}

/// Run `work` (a workflow on top of the FFT's, into the EMD `emd`; `frames` to convert when it
/// converts) with progress bars on stderr: the conversion's, then the FFT's; the steps are
/// printed as they happen.
pub fn with_fft_bars<T: Send>(frames: u64, emd: &Path, budget: u64, work: impl FnOnce(&dyn FftSink) -> T + Send) -> T {
    let bars = Bars::new(frames, emd, budget);
    let r = crate::cli::progress::drive(std::time::Duration::from_millis(100), || bars.update(), || work(&bars));
    bars.convert_bar.finish_and_clear();
    bars.fft_bar.finish_and_clear();
    r
}

/// Run the FFT workflow `job` with progress bars on stderr; prints the steps and the report.
pub fn run_with_bars(job: FftJob) -> Result<FftRun> {
    let (emd, budget, frames) = (job.emd.clone(), job.budget, job.src.scan().positions() as u64);
    let r = with_fft_bars(frames, &emd, budget, |sink| crate::ops::fft::run(job, sink))?;
    if let FftOutcome::Computed(_, rep) = &r.fft {
        print_report(rep, &emd);
    }
    Ok(r)
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

/// The FFT workflow the command line asks for: the FFT job (not yet run).
pub fn job(a: &FftArgs, cli: &Cli, t: &Tuning) -> Result<FftJob> {
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
    // an EMD of the same name that is not a conversion of this data is replaced
    let calibration = crate::ops::calib::resolve(src.as_ref(), &cli.calib.given()?, t.cache_dir.as_deref())?;
    let convert = crate::compute::convert::ConvertOptions {
        force: true,
        calibration: Some(calibration),
        bad_pixels: crate::cli::common::bad_pixels_option(cli, src.as_ref())?,
        ..crate::cli::common::convert_options(budget, t)
    };
    // parameters that do not depend on the data are known before the conversion: pass 1 then
    // runs alongside it
    let want = if a.crop == "full" || (a.center.is_some() && a.radius.is_some()) {
        FftWant::Exactly(params_from_args(a, src.as_ref())?)
    } else {
        let args = a.clone();
        FftWant::FromData(Box::new(move |ds| {
            params_from_args(&args, ds).map_err(|e| crate::Error::Invalid(format!("{e:#}")))
        }))
    };
    Ok(FftJob { src, emd, convert, want, budget, run: run_options(t) })
}

/// The estimate of the FFT the command line asks for (`--sample-frames` frames timed).
pub fn estimate_of(a: &FftArgs, cli: &Cli, t: &Tuning) -> Result<crate::ops::fft_estimate::FftEstimate> {
    let j = job(a, cli, t)?;
    let req = EstimateRequest {
        src: j.src.as_ref(),
        emd: &j.emd,
        convert: &j.convert,
        want: &j.want,
        budget: j.budget,
        sample_frames: a.sample_frames,
    };
    estimate(&req).with_context(|| format!("FFT estimate of {}", a.file.display()))
}

pub fn run(a: &FftArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    if a.estimate {
        return print_estimate(&estimate_of(a, cli, t)?, a.json);
    }
    let job = job(a, cli, t)?;
    // the FFT lives in the EMD: a .mib is converted first (unless its EMD is already there)
    if job.src.info().kind != crate::dataset::Kind::Emd
        && !crate::ops::convert::is_converted_from(&job.emd, job.src.as_ref())
    {
        eprintln!("4D FFT requires the EMD: converting {} -> {} first", a.file.display(), job.emd.display());
    }
    run_with_bars(job).with_context(|| format!("FFT of {}", a.file.display()))?;
    Ok(())
}

/// `fft --estimate`: the estimate as text or, with `json`, as JSON on stdout.
fn print_estimate(e: &crate::ops::fft_estimate::FftEstimate, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(e)?);
        return Ok(());
    }
    println!("FFT estimate: {} -> {} (nothing computed)", e.source.display(), e.emd.display());
    for l in crate::ops::fft_estimate::lines(e) {
        println!("  {l}");
    }
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
    let mut disp =
        a.style.display(if part == Part::Phase { Colormap::Twilight } else { Colormap::Gray }, Scale::Linear)?;
    if part == Part::Phase {
        disp = DisplayParams { clip: (0.0, 100.0), ..disp };
    }
    let _ = fmt;
    crate::cli::common::write_f32(&a.output, rows, cols, &img, &disp)?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
