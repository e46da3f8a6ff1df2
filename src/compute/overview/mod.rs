//! Scan overviews and virtual detectors, computed in one pass over the data.
//!
//! INTERFACE PINNED FOR OTHER MODULES (convert, TUI): keep these public names and signatures.
//!
//! Engine: parallel over position blocks on the rayon pool (one worker per thread, each reusing
//! its buffers), memory bounded by the budget, all detectors in one pass, coarse pass first.
//!
//! One file each: [`geometry`] (the detector geometry and finding the bright-field disk),
//! [`kernels`] (the per-frame pixel kernels accumulating every detector at once) and
//! [`schedule`] (blocks of positions on the pool, the coarse pass, partial results, extending).

pub mod geometry;
pub mod kernels;
pub mod schedule;

pub use geometry::{
    Geometry, auto_geometry, default_geometry, find_bf_disk, geometry_from_disk, in_adf, in_bf, pixel_radius,
};
pub use kernels::Accumulator;
pub use schedule::{
    bad_fix_for, block_len, block_len_with, coarse_positions, coarse_stride, compute, estimate_geometry, extend,
    roi_mean,
};
use std::sync::Arc;

/// Which image to show / export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DetectorKind {
    Sum,
    Bf,
    Adf,
    ComX,
    ComY,
    /// Magnitude of the centre-of-mass shift (DPC magnitude).
    DpcMag,
    /// Angle of the centre-of-mass shift (radians, cyclic).
    DpcAngle,
    Mask,
}

impl DetectorKind {
    /// The order `m` cycles through in the UI.
    pub const CYCLE: [DetectorKind; 6] = [
        DetectorKind::Sum,
        DetectorKind::Bf,
        DetectorKind::Adf,
        DetectorKind::ComX,
        DetectorKind::ComY,
        DetectorKind::DpcMag,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Sum => "sum",
            DetectorKind::Bf => "bf",
            DetectorKind::Adf => "adf",
            DetectorKind::ComX => "comx",
            DetectorKind::ComY => "comy",
            DetectorKind::DpcMag => "dpc",
            DetectorKind::DpcAngle => "dpc-angle",
            DetectorKind::Mask => "mask",
        }
    }
}

/// Results of one pass: one value per scan position for each detector (NaN = not computed yet or
/// no frame), plus per-dataset patterns.
#[derive(Debug, Clone)]
pub struct Overviews {
    pub scan_rows: usize,
    pub scan_cols: usize,
    pub det_rows: usize,
    pub det_cols: usize,
    pub geometry: Geometry,
    pub sum: Vec<f32>,
    pub bf: Vec<f32>,
    pub adf: Vec<f32>,
    pub com_x: Vec<f32>,
    pub com_y: Vec<f32>,
    pub mask: Option<Vec<f32>>,
    /// Mean diffraction pattern over the positions computed so far.
    pub mean_dp: Vec<f32>,
    pub max_dp: Vec<f32>,
    /// Positions computed (exactly) so far.
    pub positions_done: usize,
    /// True when every position has its exact value.
    pub complete: bool,
}

impl Overviews {
    /// The image for a detector kind (derives DPC magnitude and angle from CoM).
    pub fn image(&self, kind: DetectorKind) -> Vec<f32> {
        match kind {
            DetectorKind::Sum => self.sum.clone(),
            DetectorKind::Bf => self.bf.clone(),
            DetectorKind::Adf => self.adf.clone(),
            DetectorKind::ComX => self.com_x.clone(),
            DetectorKind::ComY => self.com_y.clone(),
            DetectorKind::DpcMag => self.com_x.iter().zip(&self.com_y).map(|(x, y)| (x * x + y * y).sqrt()).collect(),
            DetectorKind::DpcAngle => self.com_x.iter().zip(&self.com_y).map(|(x, y)| y.atan2(*x)).collect(),
            DetectorKind::Mask => self.mask.clone().unwrap_or_else(|| vec![f32::NAN; self.sum.len()]),
        }
    }
}

/// Options for [`compute`].
#[derive(Debug, Clone)]
pub struct ComputeOptions {
    /// Bytes of frames that may be in memory at once.
    pub memory_budget: u64,
    /// Custom mask (det_rows*det_cols weights).
    pub mask: Option<Arc<Vec<f32>>>,
    /// Compute a strided subset first and report it as a partial result.
    pub coarse_first: bool,
    /// Block size and kernel choice (experiments and benchmarks).
    pub kernel: KernelTuning,
    /// Bad detector pixels (flat indices) counted as the median of their good neighbours in
    /// every per-frame value (the custom-mask value included) and in the mean and maximum patterns.
    pub bad_pixels: Option<Arc<Vec<usize>>>,
}

impl Default for ComputeOptions {
    fn default() -> Self {
        ComputeOptions {
            memory_budget: crate::compute::budget::default_budget(),
            mask: None,
            coarse_first: true,
            kernel: KernelTuning::default(),
            bad_pixels: None,
        }
    }
}

/// How the overview pass reads and reduces frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelTuning {
    /// Target bytes of raw + decoded frames per read block (cache-sized; default 256 KiB).
    pub block_bytes: u64,
    /// Use the fused kernel on stored big-endian 16-bit frames (default true).
    pub raw_kernel: bool,
}

impl Default for KernelTuning {
    fn default() -> Self {
        KernelTuning { block_bytes: 256 << 10, raw_kernel: true }
    }
}
