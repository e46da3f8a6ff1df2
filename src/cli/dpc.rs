//! `emdtui dpc`: descan-, rotation- and flip-corrected CoM and the iCoM phase image, headless.
//!
//! Every argument is checked before any computing (output format and directory, rotation, flip,
//! descan, mask shape, scan of at least 2x2); the three outputs are written atomically and a
//! failure removes those already written, so bad input leaves no output file.

use crate::Tuning;
use crate::cli::{Cli, DpcArgs};
use crate::compute::display::{Colormap, Scale};
use crate::compute::dpc::DpcOptions;
use crate::dataset;
use crate::format::export;
use crate::jobs::Progress;
use crate::ops::dpc::{DpcJob, MaskChoice};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// `auto` or a number of degrees.
pub fn parse_rotation(s: &str) -> Result<Option<f64>> {
    if s == "auto" {
        return Ok(None);
    }
    match s.trim().trim_end_matches("deg").trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => bail!("--rotation {s:?} is not a number: give degrees (e.g. -12.5) or auto"),
    }
}

pub fn parse_flip(s: &str) -> Result<Option<bool>> {
    match s {
        "auto" => Ok(None),
        "yes" | "true" | "1" => Ok(Some(true)),
        "no" | "false" | "0" => Ok(Some(false)),
        _ => bail!("--flip {s:?}: use auto, yes or no"),
    }
}

/// `bf`, `annulus:R1,R2` or a mask file (loaded later, against the detector shape).
pub fn parse_mask(s: &str) -> Result<(Option<MaskChoice>, Option<PathBuf>)> {
    if s == "bf" {
        return Ok((Some(MaskChoice::Bf), None));
    }
    if let Some(r) = s.strip_prefix("annulus:") {
        let (a, b): (f32, f32) = crate::cli::parse_pair(r, "--mask annulus:")?;
        if !(a >= 0.0 && b > a && b.is_finite()) {
            bail!("--mask {s:?}: need 0 <= R1 < R2 (detector pixels)");
        }
        return Ok((Some(MaskChoice::Annulus(a, b)), None));
    }
    if s.is_empty() {
        bail!("--mask: use bf, annulus:R1,R2 or a .png/.npy file");
    }
    Ok((None, Some(PathBuf::from(s))))
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let ext = p.extension().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    p.with_file_name(format!("{stem}_{suffix}.{ext}"))
}

pub fn run(a: &DpcArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    let disp = a.style.display(Colormap::Gray, Scale::Linear)?;
    let (ds, job, cal) = request(a, cli, t)?;
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    let progress = Progress::job(crate::jobs::JobKind::Overview, 0);
    progress.set_state(crate::jobs::JobState::Running);
    let out =
        crate::cli::progress::with_frames_bar(&progress, "dpc", || crate::ops::dpc::run(ds.as_ref(), &job, &progress))?;
    let r = &out.result;
    let paths = [a.output.clone(), suffixed(&a.output, "comx"), suffixed(&a.output, "comy")];
    let images = [&r.phase, &r.com_x, &r.com_y];
    for (k, (p, img)) in paths.iter().zip(images).enumerate() {
        if let Err(e) = crate::cli::common::write_scan_image(p, rows, cols, img, &disp, cal.r.as_ref()) {
            for q in &paths[..k] {
                let _ = std::fs::remove_file(q);
            }
            return Err(e);
        }
    }
    let report = report_json(&out, &cal, cli.keep_bad_pixels, &paths);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!(
            "rotation {:.2} deg ({}), flip {} ({}), RMS curl {:.4} vs worst {:.4} (ratio {:.3}), {}",
            r.rotation_deg,
            if r.rotation_found { "found" } else { "given" },
            if r.flip { "yes" } else { "no" },
            if r.flip_found { "found" } else { "given" },
            r.curl_rms,
            r.curl_worst_rms,
            r.curl_ratio,
            out.origin.describe()
        );
        if let Some([x, y]) = r.descan {
            eprintln!(
                "descan plane: comx = {:.3} + {:.4} col + {:.4} row; comy = {:.3} + {:.4} col + {:.4} row (detector px)",
                x.a, x.b_col, x.c_row, y.a, y.b_col, y.c_row
            );
        }
        eprintln!(
            "bad pixels: {} hot, {} dead, {} from the user",
            out.bad.hot.len(),
            out.bad.dead.len(),
            out.bad.user.len()
        );
        for p in paths {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// The run as `emdtui dpc --json` prints it (`outputs`: the files written, if any).
pub fn report_json(
    out: &crate::ops::dpc::DpcOutcome,
    cal: &crate::compute::calib::Calibration,
    keep_bad_pixels: bool,
    paths: &[PathBuf],
) -> serde_json::Value {
    let r = &out.result;
    let bad = out.bad.all();
    serde_json::json!({
        "rotation_deg": r.rotation_deg,
        "flip": r.flip,
        "rotation_found": r.rotation_found,
        "flip_found": r.flip_found,
        "descan": r.descan.map(|[x, y]| serde_json::json!({
            "comx": {"a": x.a, "b_col": x.b_col, "c_row": x.c_row},
            "comy": {"a": y.a, "b_col": y.b_col, "c_row": y.c_row},
        })),
        "curl_rms": r.curl_rms,
        "curl_worst_rms": r.curl_worst_rms,
        "curl_ratio": r.curl_ratio,
        "origin": out.origin.describe(),
        "center": [out.geometry.center.0, out.geometry.center.1],
        "bf_radius_px": out.geometry.bf_radius,
        "mask_pixels": out.mask_pixels,
        "bad_pixels_replaced": if keep_bad_pixels { 0 } else { bad.len() },
        "hot_pixels": out.bad.coords(&out.bad.hot),
        "dead_pixels": out.bad.dead.len(),
        "calibration": cal,
        "outputs": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
}

/// Check the arguments and open the file: the dataset, the DPC job and the calibration (the
/// Python package runs the same requests).
pub fn request(
    a: &DpcArgs,
    cli: &Cli,
    t: &Tuning,
) -> Result<(std::sync::Arc<dyn dataset::Dataset>, DpcJob, crate::compute::calib::Calibration)> {
    let rotation = parse_rotation(&a.rotation)?;
    let flip = parse_flip(&a.flip)?;
    let descan = match a.descan.as_str() {
        "plane" => true,
        "none" => false,
        s => bail!("--descan {s:?}: use plane or none"),
    };
    let (mask, mask_path) = parse_mask(&a.mask)?;
    let given = cli.calib.given()?;
    let budget = cli.memory_budget()?;
    let ds = dataset::open(&a.file, &cli.open.batch_options(budget)?)?;
    let (dr, dc) = ds.det();
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    if rows < 2 || cols < 2 {
        bail!(
            "{}: DPC needs a 2-D scan of at least 2x2 positions; this scan is {rows}x{cols} (give --scan ROWSxCOLS?)",
            a.file.display()
        );
    }
    let mask = match (mask, mask_path) {
        (Some(m), _) => m,
        (None, Some(p)) => MaskChoice::Weights(crate::cli::common::load_mask(&p, dr, dc)?),
        (None, None) => unreachable!("parse_mask gives one"),
    };
    let user_bad = crate::cli::common::user_bad_pixels(cli, dr, dc)?;
    let cache_dir = if a.no_cache { None } else { t.cache_dir.clone() };
    let cal = crate::ops::calib::resolve(ds.as_ref(), &given, cache_dir.as_deref())?;
    let job = DpcJob {
        mask,
        dpc: DpcOptions { rotation_deg: rotation, flip, descan },
        keep_bad_pixels: cli.keep_bad_pixels,
        user_bad,
        memory_budget: budget,
        cache_dir,
        emd_cache: !a.no_cache,
    };
    Ok((ds, job, cal))
}
