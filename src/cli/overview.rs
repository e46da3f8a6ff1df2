//! `emdtui overview`: a scan overview / virtual detector image, headless.
//!
//! Every input is checked before any computing: output format and directory, detector name,
//! mask file shape, centre inside the frame, radii positive, inside the frame's reach and
//! `inner < outer`, ROI inside the scan. Outputs are written atomically (temp + rename), so a
//! failure leaves no output file.

use crate::cli::{Cli, OverviewArgs};
use crate::compute::cache;
use crate::compute::display::Colormap;
use crate::compute::overview::{self, ComputeOptions, DetectorKind, Geometry, Overviews};
use crate::dataset;
use crate::format::export;
use crate::jobs::Progress;
use anyhow::{Context, Result, bail};
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
}

pub fn parse_detector(s: &str) -> Result<(Want, Option<PathBuf>)> {
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
        _ => bail!("--detector {s:?}: use sum, bf, adf, comx, comy, com, dpc, dpc-angle, mask:PATH, mean or max"),
    };
    Ok((w, None))
}

/// Load a mask: PNG (grey level / max, so a 0/255 mask gives 0/1) or `.npy` (float, int or bool)
/// of exactly the detector shape.
pub fn load_mask(path: &Path, rows: usize, cols: usize) -> Result<Vec<f32>> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    let (shape, v): ((usize, usize), Vec<f32>) = match ext.as_str() {
        "png" => {
            let img = image::open(path).with_context(|| format!("mask {}: cannot read PNG", path.display()))?;
            let g = img.to_luma16();
            let (w, h) = g.dimensions();
            ((h as usize, w as usize), g.as_raw().iter().map(|&v| v as f32 / 65535.0).collect())
        }
        "npy" => read_npy_f32(path)?,
        _ => bail!("mask {}: use a .png or .npy file", path.display()),
    };
    if shape != (rows, cols) {
        bail!("mask {}: shape {}x{} does not match the {rows}x{cols} detector", path.display(), shape.0, shape.1);
    }
    if v.iter().any(|x| !x.is_finite()) {
        bail!("mask {}: contains NaN or infinite values", path.display());
    }
    Ok(v)
}

fn read_npy_f32(path: &Path) -> Result<((usize, usize), Vec<f32>)> {
    use ndarray::Array2;
    use ndarray_npy::read_npy;
    fn conv<T: Copy>(a: Array2<T>, f: impl Fn(T) -> f32) -> ((usize, usize), Vec<f32>) {
        let d = a.dim();
        (d, a.iter().map(|&x| f(x)).collect())
    }
    if let Ok(a) = read_npy::<_, Array2<f32>>(path) {
        return Ok(conv(a, |x| x));
    }
    if let Ok(a) = read_npy::<_, Array2<f64>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<bool>>(path) {
        return Ok(conv(a, |x| x as u8 as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u8>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i64>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i32>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u16>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i8>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u32>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    match read_npy::<_, Array2<f32>>(path) {
        Err(e) => bail!("mask {}: not a 2-D float/int/bool .npy array: {e}", path.display()),
        Ok(_) => unreachable!(),
    }
}

/// Parse `R0:R1,C0:C1`.
pub fn parse_roi(s: &str) -> Result<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let err = || anyhow::anyhow!("--roi {s:?}: expected R0:R1,C0:C1 (half-open scan rows and columns)");
    let (a, b) = s.split_once(',').ok_or_else(err)?;
    let rng = |t: &str| -> Result<std::ops::Range<usize>> {
        let (x, y) = t.split_once(':').ok_or_else(err)?;
        Ok(x.trim().parse().map_err(|_| err())?..y.trim().parse().map_err(|_| err())?)
    };
    Ok((rng(a)?, rng(b)?))
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

/// Peak resident memory of this process (VmHWM), bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let ext = p.extension().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    p.with_file_name(format!("{stem}_{suffix}.{ext}"))
}

pub fn run(a: &OverviewArgs, cli: &Cli) -> Result<()> {
    let t0 = Instant::now();
    let timing = std::env::var_os("EMDTUI_TIMING").is_some();
    // --- validate everything cheap first
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    let (want, mask_path) = parse_detector(&a.det.detector)?;
    let kind_default_cmap =
        if want == Want::Image(DetectorKind::DpcAngle) { Colormap::Twilight } else { Colormap::Viridis };
    let disp = crate::cli::info::display_params(&a.cmap, &a.scale, kind_default_cmap)?;
    let budget = cli.memory_budget()?;
    let roi = a.roi.as_deref().map(parse_roi).transpose()?;
    if roi.is_some() && want != Want::MeanDp {
        bail!("--roi applies to --detector mean only");
    }
    let center: Option<(f32, f32)> =
        a.det.center.as_deref().map(|c| crate::cli::parse_pair(c, "--center")).transpose()?;
    let ds = dataset::open(&a.file, &cli.open.batch_options(cli.memory_budget()?)?)?;
    let (dr, dc) = ds.det();
    let scan = ds.scan().clone();
    let mask = match &mask_path {
        Some(p) => Some(Arc::new(load_mask(p, dr, dc)?)),
        None => None,
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

    if timing {
        eprintln!("timing: open {:.3} s", t0.elapsed().as_secs_f64());
    }
    // --- geometry: found disk (from a sample of frames) unless given
    let quiet = Progress::new("geometry", 0);
    let mut geom = match center {
        Some(c) if a.det.inner.is_some() && (a.det.outer.is_some() || want != Want::Image(DetectorKind::Adf)) => {
            overview::geometry_from_disk(c, a.det.inner.unwrap_or(1.0), dr, dc)
        }
        _ => {
            let (g, _) = overview::estimate_geometry(ds.as_ref(), 64, &quiet)?;
            match center {
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

    // --- compute (or load)
    let progress = Progress::new("overview", 0);
    progress.set_state(crate::jobs::JobState::Running);
    let first_partial: std::sync::Mutex<Option<f64>> = std::sync::Mutex::new(None);
    let pb = crate::cli::progress::frames_bar(0, "overview");
    let result: Result<(Option<Overviews>, Option<Vec<f32>>)> = crate::cli::progress::drive(
        std::time::Duration::from_millis(100),
        || {
            pb.set_length(progress.total());
            pb.set_position(progress.done());
        },
        || -> Result<(Option<Overviews>, Option<Vec<f32>>)> {
            if let Some((r, c)) = roi.clone() {
                return Ok((None, Some(overview::roi_mean(ds.as_ref(), r, c, budget, &progress)?)));
            }
            let mk = mask.as_ref().map(|m| m.as_slice());
            if !a.no_cache
                && let Some(o) = cache::load(ds.as_ref(), &geom, mk)
            {
                if timing {
                    eprintln!("timing: cache hit after {:.3} s", t0.elapsed().as_secs_f64());
                }
                return Ok((Some(o), None));
            }
            let opts = ComputeOptions { memory_budget: budget, mask: mask.clone(), coarse_first: a.coarse_first };
            let tc = Instant::now();
            if timing {
                eprintln!("timing: open + geometry estimate {:.3} s", t0.elapsed().as_secs_f64());
            }
            let on_partial = |_: &Overviews| {
                let mut f = first_partial.lock().unwrap();
                if f.is_none() {
                    *f = Some(tc.elapsed().as_secs_f64());
                    if timing {
                        let what =
                            if a.coarse_first { "first (coarse) partial" } else { "first partial (exact blocks)" };
                        eprintln!("timing: {what} {:.3} s after start", t0.elapsed().as_secs_f64());
                    }
                }
            };
            let o = overview::compute(ds.as_ref(), &geom, &opts, &progress, &on_partial)?;
            if timing {
                let el = tc.elapsed().as_secs_f64();
                eprintln!(
                    "timing: first partial {:.3} s, full pass {:.3} s, {:.1} MB/s, peak RSS {} MiB, budget {} MiB",
                    first_partial.lock().unwrap().unwrap_or(f64::NAN),
                    el,
                    progress.bytes() as f64 / el / 1e6,
                    peak_rss().unwrap_or(0) >> 20,
                    budget >> 20
                );
            }
            if !a.no_cache && cache::applies(ds.as_ref()) {
                if let Err(e) = cache::store(ds.as_ref(), &o, mk) {
                    eprintln!("emdtui: warning: could not write the cache: {e}");
                }
            }
            Ok((Some(o), None))
        },
    );
    pb.finish_and_clear();
    let (ov, roi_dp) = result?;

    // --- write
    let (sr, sc) = (scan.rows, scan.cols);
    let written: Vec<PathBuf> = match (&want, ov, roi_dp) {
        (Want::MeanDp, _, Some(dp)) => {
            crate::cli::info::write_f32(&a.output, dr, dc, &dp, &disp)?;
            vec![a.output.clone()]
        }
        (Want::MeanDp, Some(o), None) => {
            crate::cli::info::write_f32(&a.output, dr, dc, &o.mean_dp, &disp)?;
            vec![a.output.clone()]
        }
        (Want::MaxDp, Some(o), _) => {
            crate::cli::info::write_f32(&a.output, dr, dc, &o.max_dp, &disp)?;
            vec![a.output.clone()]
        }
        (Want::Com, Some(o), _) => {
            let (px, py) = (with_suffix(&a.output, "comx"), with_suffix(&a.output, "comy"));
            crate::cli::info::write_f32(&px, sr, sc, &o.com_x, &disp)?;
            if let Err(e) = crate::cli::info::write_f32(&py, sr, sc, &o.com_y, &disp) {
                let _ = std::fs::remove_file(&px);
                return Err(e);
            }
            vec![px, py]
        }
        (Want::Image(k), Some(o), _) => {
            crate::cli::info::write_f32(&a.output, sr, sc, &o.image(*k), &disp)?;
            vec![a.output.clone()]
        }
        _ => bail!("internal: nothing computed"),
    };
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    eprintln!(
        "geometry: centre {:.1},{:.1}  BF r {:.1}  ADF {:.1}..{:.1}",
        geom.center.0, geom.center.1, geom.bf_radius, geom.adf_inner, geom.adf_outer
    );
    Ok(())
}
