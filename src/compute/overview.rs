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

/// Find the bright-field disk (centre, radius) in a mean pattern: threshold at half of the
/// (robust) maximum, take the intensity-weighted centroid and the radius of the same area.
pub fn find_bf_disk(mean_dp: &[f32], rows: usize, cols: usize) -> Option<((f32, f32), f32)> {
    if mean_dp.len() != rows * cols || mean_dp.is_empty() {
        return None;
    }
    let (_, hi) = crate::compute::display::percentiles(mean_dp, 0.0, 99.95)?;
    if !(hi > 0.0) {
        return None;
    }
    let thr = hi * 0.5;
    let (mut n, mut sy, mut sx) = (0f64, 0f64, 0f64);
    for y in 0..rows {
        for x in 0..cols {
            if mean_dp[y * cols + x] >= thr {
                n += 1.0;
                sy += y as f64;
                sx += x as f64;
            }
        }
    }
    if n < 3.0 {
        return None;
    }
    let r = (n / std::f64::consts::PI).sqrt() as f32;
    Some((((sy / n) as f32, (sx / n) as f32), r))
}

/// Per-worker accumulator: feed decoded frames of consecutive positions, get per-position values.
/// Used by [`compute`] and by the EMD conversion pass (which computes overviews as it converts).
pub struct Accumulator {
    det_rows: usize,
    det_cols: usize,
    /// Per pixel: 1 = bf, 2 = adf, 0 = neither.
    region: Vec<u8>,
    mask: Option<Arc<Vec<f32>>>,
    origin: (f32, f32),
    /// Per-pattern sums of this worker (mean and max patterns).
    pub dp_sum: Vec<f64>,
    pub dp_max: Vec<u32>,
    pub frames: u64,
}

impl Accumulator {
    pub fn new(geometry: &Geometry, det_rows: usize, det_cols: usize, mask: Option<Arc<Vec<f32>>>) -> Self {
        let mut region = vec![0u8; det_rows * det_cols];
        let (cy, cx) = geometry.center;
        for y in 0..det_rows {
            for x in 0..det_cols {
                let r = ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt();
                region[y * det_cols + x] = if r <= geometry.bf_radius {
                    1
                } else if r >= geometry.adf_inner && r <= geometry.adf_outer {
                    2
                } else {
                    0
                };
            }
        }
        Accumulator {
            det_rows,
            det_cols,
            region,
            mask,
            origin: geometry.com_origin,
            dp_sum: vec![0.0; det_rows * det_cols],
            dp_max: vec![0; det_rows * det_cols],
            frames: 0,
        }
    }

    /// Add frames for positions `first..first+n` (frames = n * det pixels) into `out`.
    pub fn add(&mut self, first: usize, frames: &FrameBuf, out: &mut Overviews) {
        let npx = self.det_rows * self.det_cols;
        let n = frames.len() / npx;
        crate::with_frames!(frames, v => {
            for k in 0..n {
                let f = &v[k * npx..(k + 1) * npx];
                let (mut s, mut bf, mut adf, mut mx, mut my, mut mk) = (0u64, 0u64, 0u64, 0f64, 0f64, 0f64);
                for y in 0..self.det_rows {
                    let row = &f[y * self.det_cols..(y + 1) * self.det_cols];
                    let mut rs = 0u64;
                    for (x, &p) in row.iter().enumerate() {
                        let p = p as u64;
                        rs += p;
                        mx += p as f64 * x as f64;
                        let i = y * self.det_cols + x;
                        match self.region[i] {
                            1 => bf += p,
                            2 => adf += p,
                            _ => {}
                        }
                        self.dp_sum[i] += p as f64;
                        if p as u32 > self.dp_max[i] {
                            self.dp_max[i] = p as u32;
                        }
                        if let Some(m) = &self.mask {
                            mk += m[i] as f64 * p as f64;
                        }
                    }
                    s += rs;
                    my += rs as f64 * y as f64;
                }
                let pos = first + k;
                out.sum[pos] = s as f32;
                out.bf[pos] = bf as f32;
                out.adf[pos] = adf as f32;
                let (cx, cy) = if s > 0 {
                    ((mx / s as f64) as f32 - self.origin.1, (my / s as f64) as f32 - self.origin.0)
                } else {
                    (0.0, 0.0)
                };
                out.com_x[pos] = cx;
                out.com_y[pos] = cy;
                if let Some(m) = out.mask.as_mut() {
                    m[pos] = mk as f32;
                }
                self.frames += 1;
            }
        });
    }

    /// Fold another worker's pattern sums into this one.
    pub fn merge_patterns(&mut self, o: &Accumulator) {
        for (a, b) in self.dp_sum.iter_mut().zip(&o.dp_sum) {
            *a += b;
        }
        for (a, b) in self.dp_max.iter_mut().zip(&o.dp_max) {
            *a = (*a).max(*b);
        }
        self.frames += o.frames;
    }
}

impl Overviews {
    /// Empty results (all NaN) for a dataset.
    pub fn empty(ds: &dyn Dataset, geometry: &Geometry, with_mask: bool) -> Self {
        let s = ds.scan();
        let (dr, dc) = ds.det();
        let n = s.positions();
        Overviews {
            scan_rows: s.rows,
            scan_cols: s.cols,
            det_rows: dr,
            det_cols: dc,
            geometry: geometry.clone(),
            sum: vec![f32::NAN; n],
            bf: vec![f32::NAN; n],
            adf: vec![f32::NAN; n],
            com_x: vec![f32::NAN; n],
            com_y: vec![f32::NAN; n],
            mask: with_mask.then(|| vec![f32::NAN; n]),
            mean_dp: vec![0.0; dr * dc],
            max_dp: vec![0.0; dr * dc],
            positions_done: 0,
            complete: false,
        }
    }
}

/// Compute every overview in one pass over `ds`. `on_partial` receives snapshots as results
/// arrive (a coarse strided subset first when `coarse_first`), `progress` counts positions and
/// bytes and carries cancellation.
///
/// Simple reference implementation (sequential blocks); to be replaced by the parallel engine.
pub fn compute(
    ds: &dyn Dataset,
    geometry: &Geometry,
    opts: &ComputeOptions,
    progress: &Progress,
    on_partial: &(dyn Fn(&Overviews) + Sync),
) -> Result<Overviews> {
    let mut out = Overviews::empty(ds, geometry, opts.mask.is_some());
    let present = ds.positions_present();
    progress.set_total(present as u64);
    let (dr, dc) = ds.det();
    let frame_bytes = (dr * dc * ds.info().pixel_type.bytes()) as u64;
    let block = ((opts.memory_budget / 4) / frame_bytes.max(1)).clamp(1, 256) as usize;
    let mut acc = Accumulator::new(geometry, dr, dc, opts.mask.clone());
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    let mut scratch = crate::dataset::ReadScratch::default();
    let mut p = 0;
    while p < present {
        progress.check()?;
        let n = block.min(present - p);
        ds.read_positions(p, n, &mut buf, &mut scratch)?;
        acc.add(p, &buf, &mut out);
        p += n;
        out.positions_done = p;
        progress.add(n as u64, n as u64 * frame_bytes);
        on_partial(&out);
    }
    let nf = acc.frames.max(1) as f64;
    out.mean_dp = acc.dp_sum.iter().map(|&v| (v / nf) as f32).collect();
    out.max_dp = acc.dp_max.iter().map(|&v| v as f32).collect();
    out.complete = present == ds.scan().positions();
    Ok(out)
}
