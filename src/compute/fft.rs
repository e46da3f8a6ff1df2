//! Chunked out-of-core 4D FFT, cached in the EMD file under `/emdtui/cache/`.
//!
//! PINNED API (used by the CLI and the TUI's FFT explorer): keep these names and signatures.

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FftAxes {
    /// 2-D FFT over the scan axes for every detector pixel.
    Scan,
    /// Over all four axes.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Amp,
    Phase,
    Real,
    Imag,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FftParams {
    pub axes: FftAxes,
    /// None = full detector; Some((centre, radius)) = BF disk crop (radius includes the margin).
    pub crop: Option<((f32, f32), f32)>,
    pub bin: usize,
}

/// Compute the FFT of `ds` into the EMD (HDF5) file `emd` (created if missing), resuming from
/// completed blocks of an interrupted run with the same parameters and source.
pub fn compute(_ds: &dyn Dataset, emd: &Path, _params: &FftParams, _memory_budget: u64, _progress: &Progress) -> Result<()> {
    Err(Error::unsupported(emd, "FFT is not implemented yet"))
}

/// Read access to a complete, valid FFT cache.
pub struct FftCache {
    /// (Q rows, Q cols, K rows, K cols) of the stored transform.
    pub shape: [usize; 4],
    pub params: FftParams,
}

impl FftCache {
    /// Open the cache in `emd`; Err if absent, incomplete or stale.
    pub fn open(emd: &Path) -> Result<FftCache> {
        Err(Error::unsupported(emd, "FFT cache reading is not implemented yet"))
    }
    /// sum_K |G(Q, K)|^2, Q rows x Q cols (Q = 0 at the centre).
    pub fn power_map(&self) -> Result<Vec<f32>> {
        unimplemented!()
    }
    /// Detector-plane image (K rows x K cols) at Q index (row, col), averaged over a
    /// (2*half+1)^2 Q region.
    pub fn detector_image(&self, _q: (usize, usize), _half: usize, _part: Part) -> Result<Vec<f32>> {
        unimplemented!()
    }
    /// Q-plane image (Q rows x Q cols) at detector pixel K (row, col), averaged over a K region.
    pub fn q_image(&self, _k: (usize, usize), _half: usize, _part: Part) -> Result<Vec<f32>> {
        unimplemented!()
    }
}
