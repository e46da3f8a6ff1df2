//! MIB (or any dataset) -> EMD conversion, with overviews computed in the same pass.
//!
//! PINNED API (used by the CLI, the TUI and the FFT): keep these names and signatures.

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Shuffle + gzip level 1.
    pub compress: bool,
    /// Detector binning factor (1, 2, 4, 8).
    pub bin_detector: usize,
    /// Scan binning factor.
    pub bin_scan: usize,
    /// Scan crop: (row range, col range), half-open.
    pub crop: Option<((usize, usize), (usize, usize))>,
    pub memory_budget: u64,
    /// Overwrite an existing complete output.
    pub force: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            compress: false,
            bin_detector: 1,
            bin_scan: 1,
            crop: None,
            memory_budget: crate::compute::budget::default_budget(),
            force: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub output: PathBuf,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
}

/// Default output path: the input with the `.emd` extension.
pub fn default_output(input: &Path) -> PathBuf {
    input.with_extension("emd")
}

/// Convert `ds` into the EMD file `out` (written under a temporary name, renamed when complete).
pub fn convert(_ds: &dyn Dataset, out: &Path, _opts: &ConvertOptions, _progress: &Progress) -> Result<ConvertReport> {
    Err(Error::unsupported(out, "conversion is not implemented yet"))
}
