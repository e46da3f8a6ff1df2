//! Scan overviews and virtual detectors, computed in one pass over the data.
//!
//! INTERFACE PINNED FOR OTHER MODULES (convert, TUI): keep these public names and signatures.
//! Bodies marked `todo!()` are to be implemented.

use crate::dataset::{Dataset, FrameBuf};
use crate::error::Result;
use crate::jobs::Progress;
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
    pub const CYCLE: [DetectorKind; 6] =
        [DetectorKind::Sum, DetectorKind::Bf, DetectorKind::Adf, DetectorKind::ComX, DetectorKind::ComY, DetectorKind::DpcMag];
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

/// Detector geometry in detector pixels (row, col).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    pub center: (f32, f32),
    /// Bright-field disk radius.
    pub bf_radius: f32,
    pub adf_inner: f32,
    pub adf_outer: f32,
    /// Origin for the centre of mass (default: `center`).
    pub com_origin: (f32, f32),
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
}

/// Default geometry for a detector: centre of the frame, radii from its size.
pub fn default_geometry(det_rows: usize, det_cols: usize) -> Geometry {
    let c = ((det_rows as f32 - 1.0) / 2.0, (det_cols as f32 - 1.0) / 2.0);
    let r = det_rows.min(det_cols) as f32;
    Geometry { center: c, bf_radius: r * 0.08, adf_inner: r * 0.12, adf_outer: r * 0.45, com_origin: c }
}

/// Find the bright-field disk (centre, radius) in a mean pattern.
pub fn find_bf_disk(_mean_dp: &[f32], _rows: usize, _cols: usize) -> Option<((f32, f32), f32)> {
    todo!()
}

/// Per-worker accumulator: feed decoded frames of consecutive positions, get per-position values.
/// Used by [`compute`] and by the EMD conversion pass (which computes overviews as it converts).
pub struct Accumulator {
    _private: (),
}

impl Accumulator {
    pub fn new(_geometry: &Geometry, _det_rows: usize, _det_cols: usize, _mask: Option<Arc<Vec<f32>>>) -> Self {
        todo!()
    }
    /// Add frames for positions `first..first+n` (frames = n * det pixels) into `out`.
    pub fn add(&mut self, _first: usize, _frames: &FrameBuf, _out: &mut Overviews) {
        todo!()
    }
}

/// Compute every overview in one pass over `ds`. `on_partial` receives snapshots as results
/// arrive (a coarse strided subset first when `coarse_first`), `progress` counts positions and
/// bytes and carries cancellation.
pub fn compute(
    _ds: &dyn Dataset,
    _geometry: &Geometry,
    _opts: &ComputeOptions,
    _progress: &Progress,
    _on_partial: &(dyn Fn(&Overviews) + Sync),
) -> Result<Overviews> {
    todo!()
}
