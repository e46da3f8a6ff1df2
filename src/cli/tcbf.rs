//! `emdtui tcbf`: tilt-corrected / super-resolution bright field, headless.
//!
//! Every argument is checked before any work (output formats and directories, upsample range,
//! manual-mode flags, a scan of at least 8x8); a .mib is converted to its EMD first (as `fft`
//! does), the FFT is computed when the EMD has no valid one, and the outputs are written
//! atomically (a failure removes those already written).

use crate::Tuning;
use crate::cli::{Cli, TcbfArgs};
use crate::compute::display::{Colormap, Scale};
use crate::compute::tcbf::{ShiftMode, TcbfParams, TcbfResult};
use crate::format::export;
use crate::ops::tcbf::Origin;
use crate::util::peak_rss;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The parameters from the command line (no dataset needed).
pub fn params_from_args(a: &TcbfArgs) -> Result<TcbfParams> {
    if !(1..=crate::compute::tcbf::MAX_UPSAMPLE).contains(&a.upsample) {
        bail!("--upsample {}: use 1..={}", a.upsample, crate::compute::tcbf::MAX_UPSAMPLE);
    }
    let mode = if a.manual {
        let Some(max_shift) = a.max_shift else {
            bail!("--manual needs --max-shift PX (the shift of the farthest disk pixel)")
        };
        let theta_deg = a.theta.unwrap_or(0.0);
        if !max_shift.is_finite() || !theta_deg.is_finite() {
            bail!("--max-shift and --theta must be finite numbers");
        }
        ShiftMode::Manual { max_shift, theta_deg, transpose: a.transpose }
    } else {
        if a.max_shift.is_some() || a.theta.is_some() || a.transpose {
            bail!("--max-shift, --theta and --transpose only apply with --manual");
        }
        ShiftMode::Auto
    };
    if a.ctf_correct && a.manual {
        bail!("--ctf-correct needs the fitted model: it does not apply with --manual");
    }
    Ok(TcbfParams { upsample: a.upsample, mode, ctf_correct: a.ctf_correct, optics: None })
}

pub fn check_outputs(a: &TcbfArgs) -> Result<()> {
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    if let Some(s) = &a.shifts_out {
        if !s.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            bail!("--shifts-out {}: the shifts are written as .npy (detector rows x cols x 2)", s.display());
        }
        export::check_output_dir(s)?;
        if s == &a.output {
            bail!("--shifts-out and -o are the same file");
        }
    }
    Ok(())
}

/// The EMD the run works in (see [`crate::cli::from_fft::emd_path`]).
pub fn emd_path(a: &TcbfArgs) -> Result<PathBuf> {
    crate::cli::from_fft::emd_path(&a.file, a.emd.as_deref())
}

/// Write the image and the shifts; on failure nothing of this run is left.
fn write_outputs(a: &TcbfArgs, r: &TcbfResult) -> Result<()> {
    let disp = a.style.display(Colormap::Gray, Scale::Linear)?;
    let (ir, ic) = r.image_shape();
    crate::cli::common::write_f32(&a.output, ir, ic, &r.image, &disp)?;
    if let Some(s) = &a.shifts_out {
        let w = export::write_atomic(s, |tmp| {
            let arr = ndarray::ArrayView3::from_shape((r.det.0, r.det.1, 2), &r.shifts)
                .map_err(|e| crate::Error::Invalid(e.to_string()))?;
            ndarray_npy::write_npy(tmp, &arr)
                .map_err(|e| crate::Error::Invalid(format!("{}: writing npy: {e}", s.display())))
        });
        if let Err(e) = w {
            let _ = std::fs::remove_file(&a.output);
            return Err(e.into());
        }
    }
    Ok(())
}

/// The tcBF job `emdtui tcbf` runs (the Python package runs the same): outputs and parameters
/// checked, the calibration resolved into the optics, the FFT job that makes the EMD and its
/// scan-axes FFT when missing.
pub fn request(a: &TcbfArgs, cli: &Cli, t: &Tuning) -> Result<crate::ops::tcbf::TcbfJob> {
    check_outputs(a)?;
    let params = params_from_args(a)?;
    a.style.display(Colormap::Gray, Scale::Linear)?;
    let emd = emd_path(a)?;
    let budget = cli.memory_budget()?;
    let src = crate::dataset::open(&a.file, &cli.open.batch_options(budget)?)?;
    // the calibration (for --ctf-correct) is resolved after the conversion
    let early = TcbfParams { ctf_correct: false, ..params.clone() };
    crate::compute::tcbf::check_params(&early, (src.scan().rows, src.scan().cols))
        .with_context(|| format!("{}", a.file.display()))?;
    let cal = crate::ops::calib::resolve(src.as_ref(), &cli.calib.given()?, t.cache_dir.as_deref())?;
    let params = TcbfParams { optics: crate::compute::tcbf::aberr::Optics::from_calibration(&cal), ..params };
    if params.ctf_correct && params.optics.as_ref().is_none_or(|o| o.energy_v.is_none()) {
        bail!("--ctf-correct needs --energy, --scan-step and --alpha or --q-pixel (the CTF in physical units)");
    }
    let fft = crate::cli::from_fft::fft_job(cli, t, src, &emd, cal)?;
    Ok(crate::ops::tcbf::TcbfJob { fft, params })
}

pub fn run(a: &TcbfArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let job = request(a, cli, t)?;
    let (emd, budget, frames) = (job.fft.emd.clone(), job.fft.budget, job.fft.src.scan().positions() as u64);
    crate::cli::from_fft::announce_conversion("tcBF", job.fft.src.as_ref(), &emd);
    let t0 = std::time::Instant::now();
    let out = crate::cli::fft::with_fft_bars(frames, &emd, budget, |sink| crate::ops::tcbf::run(job, sink));
    if let Err(crate::Error::NoParallax(m)) = &out {
        if a.json {
            let j = serde_json::json!({"file": a.file, "parallax_found": false, "message": m});
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        }
        bail!("{}: {m}", a.file.display());
    }
    let out = out.with_context(|| format!("tcBF of {}", a.file.display()))?;
    let wall = t0.elapsed().as_secs_f64();
    write_outputs(a, &out.result)?;
    report(a, &emd, &out.result, &out.origin, wall);
    Ok(())
}

fn report(a: &TcbfArgs, emd: &Path, r: &TcbfResult, origin: &Origin, wall: f64) {
    let (ir, ic) = r.image_shape();
    let how = crate::cli::from_fft::origin_line(origin);
    eprintln!(
        "tcBF ({how}, {} s): {}x{} image -> {}; {} of {} disk pixels used ({} low quality)",
        format_args!("{wall:.2}"),
        ir,
        ic,
        a.output.display(),
        r.pixels_used,
        r.disk.pixels,
        r.pixels_low_quality
    );
    if let Some(f) = &r.fit {
        eprintln!(
            "fit: scale {:.4} scan px per detector px, rotation {:.2} deg{}, anisotropy {:.3}, rms residual {:.3} px, \
             {} pixels ({} rejected)",
            f.scale,
            f.rotation_deg,
            if f.flip { " (flipped)" } else { "" },
            f.anisotropy,
            f.rms_residual,
            f.pixels_used,
            f.pixels_rejected
        );
    }
    if let Some(ab) = &r.aberrations {
        eprintln!("aberrations: {}", describe_aberrations(ab));
    }
    if a.json {
        let j = serde_json::json!({
            "file": a.file,
            "parallax_found": true,
            "aberrations": r.aberrations,
            "pairs": r.pairs,
            "emd": emd,
            "output": a.output,
            "shifts_out": a.shifts_out,
            "origin": how,
            "params": r.params.to_json(),
            "image_shape": [ir, ic],
            "scan_shape": [r.scan.0, r.scan.1],
            "detector_shape": [r.det.0, r.det.1],
            "disk": r.disk,
            "fit": r.fit,
            "pixels_used": r.pixels_used,
            "pixels_low_quality": r.pixels_low_quality,
            "seconds_tcbf": r.seconds,
            "seconds_wall": wall,
            "fft_computed": crate::cli::from_fft::fft_json(origin),
            "peak_rss_bytes": peak_rss(),
        });
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
    }
}

/// The fitted aberrations as one line (Å when calibrated, parallax slopes otherwise).
pub fn describe_aberrations(ab: &crate::compute::tcbf::aberr::Aberrations) -> String {
    let sign = match ab.sign_from {
        crate::compute::tcbf::aberr::SignFrom::Contrast => "sign from the image contrast",
        crate::compute::tcbf::aberr::SignFrom::Assumed => "sign assumed: give --energy to decide it",
    };
    let t = if ab.transpose { ", transposed" } else { "" };
    match (ab.defocus_A, ab.astigmatism_A) {
        (Some(d), Some(a1)) => format!(
            "rotation {:.2} deg{t}, defocus {d:.1} A (positive = underfocus; {sign}), astigmatism {a1:.1} A at {:.1} deg",
            ab.rotation_deg, ab.astigmatism_angle_deg
        ),
        _ => format!(
            "rotation {:.2} deg{t}, defocus {:.4} scan px per detector px ({sign}), astigmatism {:.4} at {:.1} deg \
             (give --scan-step and --alpha or --q-pixel for Å)",
            ab.rotation_deg, ab.defocus_slope, ab.astigmatism_slope, ab.astigmatism_angle_deg
        ),
    }
}
