//! `emdtui ptycho`: single-side-band (SSB) direct ptychography, headless.
//!
//! Every argument is checked before any work (output formats and directories, defocus, disk,
//! rotation, flip, and the calibration SSB needs: energy, convergence angle, scan step); a .mib
//! is converted to its EMD first (as `fft` does), the scan-axes FFT is computed when the EMD has
//! no valid one, and the outputs are written atomically (a failure removes those already written).

use crate::Tuning;
use crate::cli::{Cli, PtychoArgs};
use crate::compute::display::Colormap;
use crate::compute::ssb::SsbResult;
use crate::format::export;
use crate::jobs::Progress;
use crate::ops::fft::EmdSource;
use crate::ops::ptycho::{Origin, PtychoOptions};
use crate::util::{hs, peak_rss};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// A defocus with units (`12nm`, `-80A`, `0`), in Å.
pub fn parse_defocus(s: &str) -> Result<f64> {
    let t = s.trim();
    let num = t.trim_end_matches(|c: char| c.is_alphabetic() || c == 'Å' || c == ' ');
    if num.parse::<f64>().ok() == Some(0.0) {
        return Ok(0.0);
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (v, u) = crate::compute::calib::parse_length("--defocus", body).map_err(|e| anyhow::anyhow!(e))?;
    let a = if u == "nm" { v * 10.0 } else { v };
    Ok(if neg { -a } else { a })
}

/// `ROW,COL` in detector pixels.
fn parse_center(s: &str) -> Result<(f64, f64)> {
    let v: Vec<f64> = s.split(',').map(|x| x.trim().parse::<f64>()).collect::<Result<_, _>>().ok().unwrap_or_default();
    match v[..] {
        [r, c] if r.is_finite() && c.is_finite() => Ok((r, c)),
        _ => bail!("--center {s:?}: give ROW,COL in detector pixels, e.g. 64.5,63"),
    }
}

/// The options from the command line (no dataset needed).
pub fn options_from_args(a: &PtychoArgs) -> Result<PtychoOptions> {
    let disk = match (&a.center, a.radius) {
        (None, None) => None,
        (Some(c), Some(r)) => {
            if !(r.is_finite() && r > 0.0) {
                bail!("--radius {r}: must be a positive number of detector pixels");
            }
            Some((parse_center(c)?, r))
        }
        _ => bail!("give --center and --radius together (or neither: the disk is found in the data)"),
    };
    Ok(PtychoOptions {
        defocus_a: parse_defocus(&a.defocus)?,
        disk,
        rotation_deg: crate::cli::dpc::parse_rotation(&a.rotation)?,
        flip: crate::cli::dpc::parse_flip(&a.flip)?,
    })
}

fn check_outputs(a: &PtychoArgs) -> Result<()> {
    export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    if let Some(p) = &a.amplitude_out {
        export::format_of(p)?;
        export::check_output_dir(p)?;
        if p == &a.output {
            bail!("--amplitude-out and -o are the same file");
        }
    }
    Ok(())
}

fn emd_path(a: &PtychoArgs) -> Result<PathBuf> {
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let emd = match (&a.emd, matches!(ext.as_str(), "emd" | "h5" | "hdf5")) {
        (Some(e), _) => e.clone(),
        (None, true) => a.file.clone(),
        (None, false) => a.file.with_extension("emd"),
    };
    if ext == "mib" && emd == a.file {
        bail!("{}: refusing to write into the .mib", a.file.display());
    }
    Ok(emd)
}

/// Write the phase and the amplitude; on failure nothing of this run is left.
fn write_outputs(a: &PtychoArgs, r: &SsbResult) -> Result<()> {
    let disp = a.style.display(Colormap::Gray, crate::compute::display::Scale::Linear)?;
    let (rows, cols) = r.scan;
    crate::cli::common::write_f32(&a.output, rows, cols, &r.phase, &disp)?;
    if let Some(p) = &a.amplitude_out
        && let Err(e) = crate::cli::common::write_f32(p, rows, cols, &r.amplitude, &disp)
    {
        let _ = std::fs::remove_file(&a.output);
        return Err(e);
    }
    Ok(())
}

pub fn run(a: &PtychoArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    check_outputs(a)?;
    let opts = options_from_args(a)?;
    a.style.display(Colormap::Gray, crate::compute::display::Scale::Linear)?;
    let emd = emd_path(a)?;
    let budget = cli.memory_budget()?;
    let src = crate::dataset::open(&a.file, &cli.open.batch_options(budget)?)?;
    let calibration = crate::ops::calib::resolve(src.as_ref(), &cli.calib.given()?, t.cache_dir.as_deref())?;
    let params = crate::ops::ptycho::params(&calibration, &opts).with_context(|| format!("{}", a.file.display()))?;
    crate::compute::ssb::check_params(&params, (src.scan().rows, src.scan().cols))
        .with_context(|| format!("{}", a.file.display()))?;
    let t0 = std::time::Instant::now();
    let ds = ensure_emd(a, t, src, &emd, budget, calibration)?;
    let progress = Progress::job(crate::jobs::JobKind::Other, 0);
    let pb = crate::cli::progress::bar(0, "ptycho");
    let out = crate::cli::progress::drive(
        std::time::Duration::from_millis(200),
        || {
            pb.set_length(progress.total().max(1));
            pb.set_position(progress.done());
            pb.set_message(progress.message());
        },
        || {
            crate::ops::ptycho::load_or_compute(
                ds.as_ref(),
                &emd,
                &params,
                !a.no_cache,
                budget,
                &progress,
                &crate::cli::common::run_options(t),
            )
        },
    );
    pb.finish_and_clear();
    let out = out.with_context(|| format!("ptycho of {}", a.file.display()))?;
    write_outputs(a, &out.result)?;
    report(a, &emd, &out.result, &out.origin, t0.elapsed().as_secs_f64());
    Ok(())
}

fn ensure_emd(
    a: &PtychoArgs,
    t: &Tuning,
    src: std::sync::Arc<dyn crate::dataset::Dataset>,
    emd: &Path,
    budget: u64,
    calibration: crate::compute::calib::Calibration,
) -> Result<std::sync::Arc<dyn crate::dataset::Dataset>> {
    if src.info().kind != crate::dataset::Kind::Emd && !crate::ops::convert::is_converted_from(emd, src.as_ref()) {
        eprintln!("ptycho works from the EMD's FFT: converting {} -> {} first", a.file.display(), emd.display());
    }
    let copts = crate::compute::convert::ConvertOptions {
        force: true,
        calibration: Some(calibration),
        ..crate::cli::common::convert_options(budget, t)
    };
    let progress = Progress::job(crate::jobs::JobKind::Convert, src.scan().positions() as u64);
    let (ds, how) = crate::cli::progress::with_frames_bar(&progress, "convert", || {
        crate::ops::fft::ensure_emd(src, emd, &copts, &progress)
    })
    .with_context(|| format!("converting {}", a.file.display()))?;
    if let EmdSource::Converted(r) = how {
        eprintln!("converted: {} read, {} written in {:.1} s", hs(r.bytes_read), hs(r.bytes_written), r.seconds);
    }
    Ok(ds)
}

fn report(a: &PtychoArgs, emd: &Path, r: &SsbResult, origin: &Origin, wall: f64) {
    let s = &r.summary;
    let (how, fft) = match origin {
        Origin::Cache => ("cache", None),
        Origin::Computed { fft } => ("computed", fft.as_ref()),
    };
    if let Some(f) = fft {
        eprintln!("FFT computed first: pass 1 {:.2} s, pass 2 {:.2} s", f.seconds_pass1, f.seconds_pass2);
    }
    eprintln!(
        "ptycho SSB ({how}, {wall:.2} s): {}x{} phase -> {}; disk ({:.1}, {:.1}) r {:.1} px ({}), alpha {:.2} mrad, \
         lambda {:.5} A; rotation {:.2} deg, flip {} ({}, curl ratio {:.3}); defocus {} A; {:.0} % of Q with trotters",
        r.scan.0,
        r.scan.1,
        a.output.display(),
        s.disk.centre[0],
        s.disk.centre[1],
        s.disk.radius,
        if s.disk.found { "found" } else { "given" },
        s.alpha_mrad,
        s.wavelength_a,
        s.rotation_deg,
        if s.flip { "yes" } else { "no" },
        if s.orientation_found { "found" } else { "given" },
        s.curl_ratio,
        r.params.defocus_a,
        s.q_with_trotter * 100.0
    );
    if a.json {
        let j = serde_json::json!({
            "file": a.file,
            "emd": emd,
            "output": a.output,
            "amplitude_out": a.amplitude_out,
            "origin": how,
            "params": r.params.to_json(),
            "scan_shape": [r.scan.0, r.scan.1],
            "summary": s,
            "seconds_wall": wall,
            "fft_computed": fft.map(|f| serde_json::json!({"seconds_pass1": f.seconds_pass1, "seconds_pass2": f.seconds_pass2})),
            "peak_rss_bytes": peak_rss(),
        });
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn defocus_takes_units_a_sign_and_zero() {
        assert_eq!(super::parse_defocus("12nm").unwrap(), 120.0);
        assert_eq!(super::parse_defocus("-80A").unwrap(), -80.0);
        assert_eq!(super::parse_defocus("+150 A").unwrap(), 150.0);
        for z in ["0", "0A", "0nm", "0.0 A"] {
            assert_eq!(super::parse_defocus(z).unwrap(), 0.0, "{z}");
        }
        assert!(super::parse_defocus("12").unwrap_err().to_string().contains("no units"));
        assert!(super::parse_defocus("12mrad").is_err());
    }
}
