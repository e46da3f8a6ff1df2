//! `emdtui eels`: energy-window maps and mean spectra of spectrum data.

use crate::Tuning;
use crate::cli::common::energy_options;
use crate::cli::{Cli, EelsArgs};
use crate::compute::display::{Colormap, Scale};
use crate::format::export;
use crate::jobs::{JobKind, Progress};
use crate::ops::eels::{self, EelsJob, EnergyOptions, SpectrumImage, Window};
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

/// Parse `E0:E1`, `E0:E1eV` or `E0eV:E1eV` (eV = calibrated energies, else channels).
pub fn parse_window(s: &str) -> Result<Window> {
    let bad = || anyhow!("--window {s:?}: expected E0:E1 (channels) or E0:E1eV (calibrated eV), e.g. 100:200");
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let ev = lower.ends_with("ev");
    let (a, b) = lower.split_once(':').ok_or_else(bad)?;
    let num = |x: &str| -> Result<f64> { x.trim().trim_end_matches("ev").trim().parse::<f64>().map_err(|_| bad()) };
    Ok(Window { start: num(a)?, end: num(b)?, ev })
}

/// The spectrum image of `file` with a progress bar on stderr.
pub fn load_with_bar(file: &Path, cli: &Cli, energy: EnergyOptions, cache: bool, t: &Tuning) -> Result<SpectrumImage> {
    let budget = cli.memory_budget()?;
    let opts = cli.open.batch_options(budget)?;
    let job = EelsJob { energy, memory_budget: budget, cache_dir: if cache { t.cache_dir.clone() } else { None } };
    let progress = Progress::job(JobKind::Other, 0);
    progress.set_state(crate::jobs::JobState::Running);
    let si = crate::cli::progress::with_frames_bar(&progress, "spectra", || {
        eels::spectrum_image(file, &opts, &job, &progress)
    })
    .with_context(|| format!("{}", file.display()))?;
    eprintln!(
        "{}: {} x {} scan, {} channels ({}), spectra {}",
        file.display(),
        si.rows,
        si.cols,
        si.channels,
        si.describe,
        match si.origin {
            crate::ops::overview::Origin::EmdCache => "read from the file",
            o => o.describe(),
        }
    );
    Ok(si)
}

/// What `emdtui eels` computes: an energy-window map (`Some(window)`) or the mean spectrum over
/// a scan region (half-open rows and columns; None: the whole scan).
pub type Selection = (Option<Window>, Option<(std::ops::Range<usize>, std::ops::Range<usize>)>);

/// Check the choice between `--window` and `--spectrum [--roi | --at]`.
pub fn selection(a: &EelsArgs) -> Result<Selection> {
    let window = a.window.as_deref().map(parse_window).transpose()?;
    match (window.is_some(), a.spectrum) {
        (true, true) => bail!("give either --window E0:E1 (a map) or --spectrum, not both"),
        (false, false) => bail!("give --window E0:E1 (an energy-window map) or --spectrum (a mean spectrum)"),
        _ => {}
    }
    if window.is_some() && (a.roi.is_some() || a.at.is_some()) {
        bail!("--roi and --at choose the positions of --spectrum; a --window map covers the whole scan");
    }
    if a.roi.is_some() && a.at.is_some() {
        bail!("give either --roi or --at, not both");
    }
    let roi = a.roi.as_deref().map(crate::cli::common::parse_roi).transpose()?;
    let at = a.at.as_deref().map(|s| crate::cli::parse_pair::<usize>(s, "--at")).transpose()?;
    Ok((window, roi.or(at.map(|(r, c)| (r..r + 1, c..c + 1)))))
}

pub fn run(a: &EelsArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let energy = energy_options(&a.energy)?;
    let (window, region) = selection(a)?;
    if a.spectrum {
        let ext = a.output.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if !["npy", "csv", "png"].contains(&ext.as_str()) {
            bail!("{}: a spectrum is written as .npy, .csv or .png", a.output.display());
        }
    } else {
        export::format_of(&a.output)?;
    }
    export::check_output_dir(&a.output)?;
    let si = load_with_bar(&a.file, cli, energy, !a.no_cache, t)?;
    let ctx = || format!("{}", a.file.display());
    if let Some(w) = window {
        let map = eels::window_map(&si, w).with_context(ctx)?;
        let disp = a.style.display(Colormap::Inferno, Scale::Linear)?;
        crate::cli::common::write_f32(&a.output, si.rows, si.cols, &map, &disp)?;
        eprintln!("wrote {} ({} x {} float32)", a.output.display(), si.rows, si.cols);
        return Ok(());
    }
    let (rows, cols) = region.unwrap_or((0..si.rows, 0..si.cols));
    let spec = eels::mean_spectrum(&si, rows, cols).with_context(ctx)?;
    write_spectrum(&a.output, &si, &spec, a.style.scale.as_deref() == Some("log"))?;
    eprintln!("wrote {} ({} channels, energy in {})", a.output.display(), spec.len(), si.energy_units);
    Ok(())
}

/// Write a spectrum: `.npy` float32 (channels,), `.csv` (channel, energy, value), `.png` plot.
fn write_spectrum(out: &Path, si: &SpectrumImage, spec: &[f32], log: bool) -> Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "npy" => export::write_atomic(out, |tmp| {
            ndarray_npy::write_npy(tmp, &ndarray::ArrayView1::from(spec))
                .map_err(|e| crate::Error::Invalid(format!("{}: writing npy: {e}", out.display())))
        })?,
        "csv" => {
            let mut s = format!("channel,energy_{},value\n", if si.calibrated() { "ev" } else { "channels" });
            for (i, (v, e)) in spec.iter().zip(si.axis()).enumerate() {
                s.push_str(&format!("{i},{e},{v}\n"));
            }
            export::write_atomic(out, |tmp| std::fs::write(tmp, &s).map_err(|e| crate::Error::io(out, e)))?;
        }
        "png" => {
            let (w, h) = (1024, 320);
            export::write_png_rgb(out, h, w, &crate::compute::eels::plot_rgb(spec, w, h, log))?;
        }
        _ => bail!("{}: a spectrum is written as .npy, .csv or .png", out.display()),
    }
    Ok(())
}
