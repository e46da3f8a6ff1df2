//! `emdtui overview`: a scan overview / virtual detector image, headless.
//!
//! Every input is checked before any computing: output format and directory, detector name,
//! mask file shape, centre inside the frame, radii positive, inside the frame's reach and
//! `inner < outer`, ROI inside the scan. Outputs are written atomically (temp + rename), so a
//! failure leaves no output file.

use crate::Tuning;
use crate::cli::common::{load_mask, parse_roi, user_bad_pixels};
use crate::cli::{Cli, OverviewArgs};
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::overview::{self, ComputeOptions, DetectorKind, Geometry, KernelTuning, Overviews};
use crate::dataset::{self, Dataset};
use crate::format::export;
use crate::jobs::Progress;
use crate::ops::overview::{GeometryChoice, Origin, OverviewJob};
use crate::util::peak_rss;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    Image(DetectorKind),
    /// comx and comy, two files.
    Com,
    MeanDp,
    MaxDp,
    /// A custom detector (point, rectangle, pattern mask; bf/adf/mask with `--response max`).
    Custom(crate::cli::detectors::Spec),
}

impl Want {
    /// The detector whose geometry checks and radius flags apply (a custom BF/ADF is a BF/ADF).
    fn geometry_kind(&self) -> Want {
        use crate::cli::detectors::Spec;
        match self {
            Want::Custom(Spec::Bf) => Want::Image(DetectorKind::Bf),
            Want::Custom(Spec::Adf) => Want::Image(DetectorKind::Adf),
            w => w.clone(),
        }
    }
}

pub fn parse_detector(s: &str) -> Result<(Want, Option<PathBuf>)> {
    if let Some(spec) = crate::cli::detectors::parse(s)? {
        return Ok((Want::Custom(spec), None));
    }
    if let Some(p) = s.strip_prefix("mask:") {
        if p.is_empty() {
            bail!("--detector mask:PATH needs a mask file (.png or .npy)");
        }
        return Ok((Want::Image(DetectorKind::Mask), Some(PathBuf::from(p))));
    }
    let w = match s {
        "sum" => Want::Image(DetectorKind::Sum),
        "bf" => Want::Image(DetectorKind::Bf),
        "adf" => Want::Image(DetectorKind::Adf),
        "comx" => Want::Image(DetectorKind::ComX),
        "comy" => Want::Image(DetectorKind::ComY),
        "dpc" | "dpc-mag" => Want::Image(DetectorKind::DpcMag),
        "dpc-angle" => Want::Image(DetectorKind::DpcAngle),
        "com" => Want::Com,
        "mean" => Want::MeanDp,
        "max" => Want::MaxDp,
        _ => bail!(
            "--detector {s:?}: use sum, bf, adf, comx, comy, com, dpc, dpc-angle, mask:PATH, mean, max, \
             point:R,C[,RAD], rect:R0:R1,C0:C1 or pattern:R,C[,FRAC]"
        ),
    };
    Ok((w, None))
}

/// Check a geometry against the frame: centre inside, radii positive, finite and not beyond the
/// farthest frame corner, ADF inner < outer.
pub fn check_geometry(g: &Geometry, rows: usize, cols: usize, want: &Want) -> Result<()> {
    let (cy, cx) = g.center;
    if !(cy >= 0.0 && cx >= 0.0 && cy <= rows as f32 - 1.0 && cx <= cols as f32 - 1.0) {
        bail!("--center {cy},{cx} is outside the {rows}x{cols} detector frame");
    }
    let far = [(0.0, 0.0), (0.0, cols as f32 - 1.0), (rows as f32 - 1.0, 0.0), (rows as f32 - 1.0, cols as f32 - 1.0)]
        .iter()
        .map(|(y, x)| ((y - cy).powi(2) + (x - cx).powi(2)).sqrt())
        .fold(0f32, f32::max);
    let check = |what: &str, r: f32| -> Result<()> {
        if !(r.is_finite() && r > 0.0) {
            bail!("{what} {r} must be a positive number of pixels");
        }
        if r > far + 1.0 {
            bail!("{what} {r} is outside the frame: the farthest detector pixel is {far:.1} px from the centre");
        }
        Ok(())
    };
    match want {
        Want::Image(DetectorKind::Bf) => check("BF radius (--inner)", g.bf_radius)?,
        Want::Image(DetectorKind::Adf) => {
            check("ADF inner radius (--inner)", g.adf_inner)?;
            check("ADF outer radius (--outer)", g.adf_outer)?;
            if g.adf_inner >= g.adf_outer {
                bail!("ADF inner radius {} must be smaller than the outer radius {}", g.adf_inner, g.adf_outer);
            }
        }
        _ => {}
    }
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let ext = p.extension().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    p.with_file_name(format!("{stem}_{suffix}.{ext}"))
}

/// Everything checked before computing.
pub struct Request {
    pub want: Want,
    pub disp: DisplayParams,
    pub budget: u64,
    pub roi: Option<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    pub center: Option<(f32, f32)>,
    pub mask: Option<Arc<Vec<f32>>>,
    pub response: crate::compute::detectors::Response,
    /// `--keep-bad-pixels`, `--bad-pixels PATH` (flat indices).
    pub keep_bad: bool,
    pub user_bad: Vec<usize>,
}

/// Validate the arguments against the dataset (cheap checks first, before opening it).
pub fn validate(a: &OverviewArgs, cli: &Cli) -> Result<(Request, Arc<dyn Dataset>)> {
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    let (want, mask_path) = parse_detector(&a.det.detector)?;
    let response = crate::cli::detectors::parse_response(&a.det.response)?;
    let want = with_response(want, response, &a.det.detector)?;
    let kind_default_cmap =
        if want == Want::Image(DetectorKind::DpcAngle) { Colormap::Twilight } else { Colormap::Viridis };
    let disp = a.style.display(kind_default_cmap, Scale::Linear)?;
    let budget = cli.memory_budget()?;
    let roi = a.roi.as_deref().map(parse_roi).transpose()?;
    if roi.is_some() && want != Want::MeanDp {
        bail!("--roi applies to --detector mean only");
    }
    let center: Option<(f32, f32)> =
        a.det.center.as_deref().map(|c| crate::cli::parse_pair(c, "--center")).transpose()?;
    let ds = dataset::open(&a.file, &cli.open.batch_options(budget)?)?;
    let (dr, dc) = ds.det();
    let scan = ds.scan().clone();
    let user_bad = user_bad_pixels(cli, dr, dc)?;
    let mut mask = match &mask_path {
        Some(p) => Some(Arc::new(load_mask(p, dr, dc)?)),
        None => None,
    };
    let want = match (want, mask.take()) {
        (Want::Custom(crate::cli::detectors::Spec::Mask(_)), Some(m)) => {
            Want::Custom(crate::cli::detectors::Spec::Mask(m.as_ref().clone()))
        }
        (w, m) => {
            mask = m;
            w
        }
    };
    if let Some((r, c)) = &roi {
        if r.is_empty() || c.is_empty() {
            bail!("--roi {}: the region is empty", a.roi.as_deref().unwrap_or(""));
        }
        if r.end > scan.rows || c.end > scan.cols {
            bail!("--roi {}: outside the {}x{} scan", a.roi.as_deref().unwrap_or(""), scan.rows, scan.cols);
        }
    }
    if let Some((cy, cx)) = center
        && !(cy >= 0.0 && cx >= 0.0 && cy <= dr as f32 - 1.0 && cx <= dc as f32 - 1.0)
    {
        bail!("--center {cy},{cx} is outside the {dr}x{dc} detector frame");
    }
    if ds.positions_present() == 0 {
        bail!("{}: no frames to compute from", a.file.display());
    }
    Ok((Request { want, response, disp, budget, roi, center, mask, keep_bad: cli.keep_bad_pixels, user_bad }, ds))
}

/// `--response max` turns bf, adf and mask:PATH into custom detectors; it applies to those and
/// to the custom forms only.
fn with_response(want: Want, response: crate::compute::detectors::Response, det: &str) -> Result<Want> {
    use crate::cli::detectors::Spec;
    use crate::compute::detectors::Response;
    Ok(match (want, response) {
        (w, Response::Sum) => w,
        (Want::Image(DetectorKind::Bf), _) => Want::Custom(Spec::Bf),
        (Want::Image(DetectorKind::Adf), _) => Want::Custom(Spec::Adf),
        (Want::Image(DetectorKind::Mask), _) => Want::Custom(Spec::Mask(Vec::new())),
        (w @ Want::Custom(_), _) => w,
        _ => bail!("--response max applies to bf, adf, mask:PATH, point:, rect: and pattern:, not --detector {det}"),
    })
}

/// The detector geometry: the found disk (from a sample of frames) unless given.
pub fn pick_geometry(a: &OverviewArgs, rq: &Request, ds: &dyn Dataset) -> Result<Geometry> {
    let (dr, dc) = ds.det();
    let quiet = Progress::new("geometry", 0);
    let want = rq.want.geometry_kind();
    let mut geom = match rq.center {
        Some(c) if a.det.inner.is_some() && (a.det.outer.is_some() || want != Want::Image(DetectorKind::Adf)) => {
            overview::geometry_from_disk(c, a.det.inner.unwrap_or(1.0), dr, dc)
        }
        _ => {
            let (g, _) = overview::estimate_geometry(ds, 64, &quiet)?;
            match rq.center {
                Some(c) => {
                    let mut g2 = overview::geometry_from_disk(c, g.bf_radius, dr, dc);
                    g2.bf_radius = g.bf_radius;
                    g2
                }
                None => g,
            }
        }
    };
    match want {
        Want::Image(DetectorKind::Bf) => {
            if let Some(r) = a.det.inner {
                geom.bf_radius = r;
            }
        }
        _ => {
            if let Some(r) = a.det.inner {
                geom.adf_inner = r;
            }
            if let Some(r) = a.det.outer {
                geom.adf_outer = r;
            }
        }
    }
    check_geometry(&geom, dr, dc, &want)?;
    Ok(geom)
}

pub fn run(a: &OverviewArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let t0 = Instant::now();
    let given = cli.calib.given()?;
    let (rq, ds) = validate(a, cli)?;
    if t.timing {
        eprintln!("timing: open {:.3} s", t0.elapsed().as_secs_f64());
    }
    let geom = pick_geometry(a, &rq, ds.as_ref())?;
    if let Want::Custom(spec) = &rq.want {
        return run_custom(a, cli, t, &rq, spec, &geom, ds.as_ref());
    }
    let progress = Progress::job(crate::jobs::JobKind::Overview, 0);
    progress.set_state(crate::jobs::JobState::Running);
    let result = crate::cli::progress::with_frames_bar(&progress, "overview", || {
        compute(a, &rq, &geom, ds.as_ref(), &progress, t, t0)
    });
    let (ov, roi_dp) = result?;
    // scale bars and radii as collection angles when calibrated (flags, EMD, remembered)
    let cal = crate::ops::calib::resolve(ds.as_ref(), &given, t.cache_dir.as_deref())?;
    write_outputs(a, &rq, ds.as_ref(), ov, roi_dp, cal.r.as_ref())?;
    eprintln!(
        "geometry: centre {:.1},{:.1}  BF r {}  ADF {} .. {}",
        geom.center.0,
        geom.center.1,
        cal.describe_radius(geom.bf_radius),
        cal.describe_radius(geom.adf_inner),
        cal.describe_radius(geom.adf_outer)
    );
    Ok(())
}

/// A custom detector image (cached or computed), written like any virtual image.
fn run_custom(
    a: &OverviewArgs,
    cli: &Cli,
    t: &Tuning,
    rq: &Request,
    spec: &crate::cli::detectors::Spec,
    geom: &Geometry,
    ds: &dyn Dataset,
) -> Result<()> {
    let progress = &Progress::job(crate::jobs::JobKind::Overview, 0);
    progress.set_state(crate::jobs::JobState::Running);
    let det = crate::cli::detectors::build(spec, rq.response, geom, ds)?;
    let cache = if a.no_cache { None } else { t.cache_dir.as_deref() };
    let t0 = Instant::now();
    let (img, origin) = crate::cli::progress::with_frames_bar(progress, "detector", || {
        let bad = (!rq.keep_bad).then_some(rq.user_bad.as_slice());
        crate::ops::detectors::custom_image_masked(ds, &det, bad, rq.budget, cache, progress)
    })?;
    if t.timing {
        eprintln!(
            "timing: custom detector {} {:.3} s ({})",
            det.label(),
            t0.elapsed().as_secs_f64(),
            origin.describe()
        );
    }
    let cal = crate::ops::calib::resolve(ds, &cli.calib.given()?, t.cache_dir.as_deref())?;
    let (sr, sc) = (ds.scan().rows, ds.scan().cols);
    crate::cli::common::write_scan_image(&a.output, sr, sc, &img, &rq.disp, cal.r.as_ref())?;
    eprintln!("detector: {} ({})", det.label(), origin.describe());
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

/// The ROI mean, or the overviews (cached or computed), with timings when asked.
pub fn compute(
    a: &OverviewArgs,
    rq: &Request,
    geom: &Geometry,
    ds: &dyn Dataset,
    progress: &Progress,
    t: &Tuning,
    t0: Instant,
) -> Result<(Option<Overviews>, Option<Vec<f32>>)> {
    if let Some((r, c)) = rq.roi.clone() {
        return Ok((None, Some(crate::ops::overview::roi_mean(ds, r, c, rq.budget, progress)?)));
    }
    let kernel = KernelTuning {
        block_bytes: t.block_bytes.unwrap_or(KernelTuning::default().block_bytes),
        raw_kernel: !t.no_raw_kernel,
    };
    let job = OverviewJob {
        geometry: GeometryChoice::Fixed(geom.clone()),
        compute: ComputeOptions {
            memory_budget: rq.budget,
            mask: rq.mask.clone(),
            coarse_first: a.coarse_first,
            kernel,
            bad_pixels: None,
        },
        cache_dir: if a.no_cache { None } else { t.cache_dir.clone() },
        emd_cache: !a.no_cache,
        keep_bad_pixels: rq.keep_bad,
        user_bad: rq.user_bad.clone(),
    };
    let first_partial: std::sync::Mutex<Option<f64>> = std::sync::Mutex::new(None);
    let tc = Instant::now();
    if t.timing {
        eprintln!("timing: open + geometry estimate {:.3} s", t0.elapsed().as_secs_f64());
    }
    let on_partial = |_: &Overviews| {
        let mut f = first_partial.lock().expect("timing lock");
        if f.is_none() {
            *f = Some(tc.elapsed().as_secs_f64());
            if t.timing {
                let what = if a.coarse_first { "first (coarse) partial" } else { "first partial (exact blocks)" };
                eprintln!("timing: {what} {:.3} s after start", t0.elapsed().as_secs_f64());
            }
        }
    };
    let (o, origin) = crate::ops::overview::overview(ds, &job, progress, &on_partial)?;
    if t.timing {
        if origin == Origin::Computed {
            let el = tc.elapsed().as_secs_f64();
            eprintln!(
                "timing: first partial {:.3} s, full pass {:.3} s, {:.1} MB/s, peak RSS {} MiB, budget {} MiB",
                first_partial.lock().expect("timing lock").unwrap_or(f64::NAN),
                el,
                progress.bytes() as f64 / el / 1e6,
                peak_rss().unwrap_or(0) >> 20,
                rq.budget >> 20
            );
        } else {
            eprintln!("timing: cache hit after {:.3} s", t0.elapsed().as_secs_f64());
        }
    }
    Ok((Some(o), None))
}

/// Write what was asked for (both CoM files or neither).
fn write_outputs(
    a: &OverviewArgs,
    rq: &Request,
    ds: &dyn Dataset,
    ov: Option<Overviews>,
    roi_dp: Option<Vec<f32>>,
    scan_step: Option<&(f64, String)>,
) -> Result<()> {
    let (dr, dc) = ds.det();
    let (sr, sc) = (ds.scan().rows, ds.scan().cols);
    let disp = &rq.disp;
    let write = crate::cli::common::write_f32;
    let written: Vec<PathBuf> = match (&rq.want, ov, roi_dp) {
        (Want::MeanDp, _, Some(dp)) => {
            write(&a.output, dr, dc, &dp, disp)?;
            vec![a.output.clone()]
        }
        (Want::MeanDp, Some(o), None) => {
            write(&a.output, dr, dc, &o.mean_dp, disp)?;
            vec![a.output.clone()]
        }
        (Want::MaxDp, Some(o), _) => {
            write(&a.output, dr, dc, &o.max_dp, disp)?;
            vec![a.output.clone()]
        }
        (Want::Com, Some(o), _) => {
            let (px, py) = (with_suffix(&a.output, "comx"), with_suffix(&a.output, "comy"));
            let scan = |p: &Path, v: &[f32]| crate::cli::common::write_scan_image(p, sr, sc, v, disp, scan_step);
            scan(&px, &o.com_x)?;
            if let Err(e) = scan(&py, &o.com_y) {
                let _ = std::fs::remove_file(&px);
                return Err(e);
            }
            vec![px, py]
        }
        (Want::Image(k), Some(o), _) => {
            crate::cli::common::write_scan_image(&a.output, sr, sc, &o.image(*k), disp, scan_step)?;
            vec![a.output.clone()]
        }
        _ => bail!("internal: nothing computed"),
    };
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
