//! `emdtui ptycho`: single-side-band (SSB) direct ptychography, headless.
//!
//! Every argument is checked before any work (output formats and directories, defocus, disk,
//! rotation, flip, and the calibration SSB needs: energy, convergence angle, scan step); a .mib
//! is converted to its EMD first (as `fft` does), the scan-axes FFT is computed when the EMD has
//! no valid one (both through `ops::ptycho::run`, the one workflow the viewer and the Python
//! package call too), and the outputs are written atomically (a failure removes those already
//! written).

use crate::Tuning;
use crate::cli::{Cli, PtychoArgs};
use crate::compute::display::Colormap;
use crate::compute::ssb::SsbResult;
use crate::format::export;
use crate::ops::ptycho::{Origin, PtychoOptions};
use crate::util::peak_rss;
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

/// The EMD the run works in (see [`crate::cli::from_fft::emd_path`]).
pub fn emd_path(a: &PtychoArgs) -> Result<PathBuf> {
    crate::cli::from_fft::emd_path(&a.file, a.emd.as_deref())
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

/// The checked job of `emdtui ptycho` (every argument and the calibration SSB needs, before any
/// work): what the CLI and the Python package hand to [`crate::ops::ptycho::run`].
pub fn request(a: &PtychoArgs, cli: &Cli, t: &Tuning) -> Result<crate::ops::ptycho::PtychoJob> {
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
    let fft = crate::cli::from_fft::fft_job(cli, t, src, &emd, calibration)?;
    Ok(crate::ops::ptycho::PtychoJob { fft, params, use_cache: !a.no_cache })
}

pub fn run(a: &PtychoArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let job = request(a, cli, t)?;
    let (emd, budget, frames) = (job.fft.emd.clone(), job.fft.budget, job.fft.src.scan().positions() as u64);
    crate::cli::from_fft::announce_conversion("ptycho", job.fft.src.as_ref(), &emd);
    let t0 = std::time::Instant::now();
    let out = crate::cli::fft::with_fft_bars(frames, &emd, budget, |sink| crate::ops::ptycho::run(job, sink));
    let out = out.with_context(|| format!("ptycho of {}", a.file.display()))?;
    write_outputs(a, &out.result)?;
    report(a, &emd, &out.result, &out.origin, t0.elapsed().as_secs_f64());
    Ok(())
}

fn report(a: &PtychoArgs, emd: &Path, r: &SsbResult, origin: &Origin, wall: f64) {
    let s = &r.summary;
    let how = crate::cli::from_fft::origin_line(origin);
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
            "fft_computed": crate::cli::from_fft::fft_json(origin),
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
