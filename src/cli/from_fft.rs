//! What the subcommands computed from the scan-axes FFT (`tcbf`, `ptycho`) share: the EMD they
//! work in, the FFT workflow's job that converts a `.mib` and makes the FFT when missing, and the
//! line about an FFT made first. The Python package builds its jobs with the same functions.

use crate::Tuning;
use crate::cli::Cli;
use crate::compute::calib::Calibration;
use crate::dataset::Dataset;
use crate::ops::fft::{FftJob, FftWant};
use crate::ops::from_fft::Origin;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The EMD of `file`: `emd` when given, the file itself when it is an EMD, else `FILE.emd` (a
/// `.mib` is never written into).
pub fn emd_path(file: &Path, emd: Option<&Path>) -> Result<PathBuf> {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let out = match (emd, matches!(ext.as_str(), "emd" | "h5" | "hdf5")) {
        (Some(e), _) => e.to_path_buf(),
        (None, true) => file.to_path_buf(),
        (None, false) => file.with_extension("emd"),
    };
    if ext == "mib" && out == file {
        bail!("{}: refusing to write into the .mib", file.display());
    }
    Ok(out)
}

/// Says on stderr that `what` ("tcBF", "ptycho") converts `src` to `emd` first, when it will.
pub fn announce_conversion(what: &str, src: &dyn Dataset, emd: &Path) {
    if src.info().kind != crate::dataset::Kind::Emd && !crate::ops::convert::is_converted_from(emd, src) {
        eprintln!(
            "{what} works from the EMD's FFT: converting {} -> {} first",
            src.info().path.display(),
            emd.display()
        );
    }
}

/// The FFT workflow's job: the EMD `emd` of `src` (converted first when needed, with
/// `calibration` stored in it and the bad pixels as `emdtui convert` masks them) and a scan-axes
/// FFT in it.
pub fn fft_job(cli: &Cli, t: &Tuning, src: Arc<dyn Dataset>, emd: &Path, calibration: Calibration) -> Result<FftJob> {
    let budget = cli.memory_budget()?;
    let convert = crate::compute::convert::ConvertOptions {
        force: true,
        calibration: Some(calibration),
        bad_pixels: crate::cli::common::bad_pixels_option(cli, src.as_ref())?,
        ..crate::cli::common::convert_options(budget, t)
    };
    let run = crate::cli::common::run_options(t);
    Ok(FftJob { src, emd: emd.to_path_buf(), convert, want: FftWant::ScanAxes, budget, run })
}

/// `cache` or `computed`, and on stderr the FFT's times when it was made first.
pub fn origin_line(o: &Origin) -> &'static str {
    let (how, fft) = o.short();
    if let Some(f) = fft {
        eprintln!("FFT computed first: pass 1 {:.2} s, pass 2 {:.2} s", f.seconds_pass1, f.seconds_pass2);
    }
    how
}

/// The FFT's times as the JSON reports give them (null when it was not made now).
pub fn fft_json(o: &Origin) -> serde_json::Value {
    match o.short().1 {
        Some(f) => serde_json::json!({"seconds_pass1": f.seconds_pass1, "seconds_pass2": f.seconds_pass2}),
        None => serde_json::Value::Null,
    }
}
