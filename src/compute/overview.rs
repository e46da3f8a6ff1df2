//! Scan overviews and virtual detectors, computed in one pass over the data.
//!
//! INTERFACE PINNED FOR OTHER MODULES (convert, TUI): keep these public names and signatures.
//!
//! Engine: parallel over position blocks on the rayon pool (one worker per thread, each reusing
//! its buffers), memory bounded by the budget, all detectors in one pass, coarse pass first.

use super::badpix::BadFix;
use super::kernel16;
use crate::dataset::{Dataset, FrameBuf, RawFrames, ReadScratch};
use crate::error::{Error, Result};
use crate::format::mib::PixelType;
use crate::jobs::Progress;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Default geometry for a detector: centre of the frame, radii from its size.
pub fn default_geometry(det_rows: usize, det_cols: usize) -> Geometry {
    let c = ((det_rows as f32 - 1.0) / 2.0, (det_cols as f32 - 1.0) / 2.0);
    let r = det_rows.min(det_cols) as f32;
    Geometry { center: c, bf_radius: r * 0.08, adf_inner: r * 0.12, adf_outer: r * 0.45, com_origin: c }
}

/// Geometry from a found bright-field disk: BF radius = disk radius, ADF from 1.3x the disk
/// radius to 95 % of the distance from the centre to the nearest detector edge, CoM origin = centre.
pub fn geometry_from_disk(center: (f32, f32), radius: f32, det_rows: usize, det_cols: usize) -> Geometry {
    let (cy, cx) = center;
    let edge = cy.min(cx).min(det_rows as f32 - 1.0 - cy).min(det_cols as f32 - 1.0 - cx).max(1.0);
    let inner = radius * 1.3;
    let outer = (edge * 0.95).max(inner + 1.0);
    Geometry { center, bf_radius: radius, adf_inner: inner, adf_outer: outer, com_origin: center }
}

/// Geometry from a mean pattern: the found disk, or [`default_geometry`] when none is found.
///
/// A found disk is used only when plausible: radius >= 2 px and the disk at least 1.5 radii away
/// from every detector edge (a tiny bright spot or a blob at the edge is not a BF disk).
pub fn auto_geometry(mean_dp: &[f32], det_rows: usize, det_cols: usize) -> Geometry {
    match find_bf_disk(mean_dp, det_rows, det_cols) {
        Some(((cy, cx), r))
            if r >= 2.0 && cy.min(cx).min(det_rows as f32 - 1.0 - cy).min(det_cols as f32 - 1.0 - cx) >= 1.5 * r =>
        {
            geometry_from_disk((cy, cx), r, det_rows, det_cols)
        }
        _ => default_geometry(det_rows, det_cols),
    }
}

/// Find the bright-field disk (centre, radius) in a mean pattern: threshold at half of the
/// robust maximum (99.95th percentile, so a few hot pixels do not count), keep the connected
/// region (4-neighbour) with the largest area, and take its intensity-weighted
/// centroid and the radius of a disk of the same area.
pub fn find_bf_disk(mean_dp: &[f32], rows: usize, cols: usize) -> Option<((f32, f32), f32)> {
    if mean_dp.len() != rows * cols || mean_dp.is_empty() {
        return None;
    }
    let (_, hi) = crate::compute::display::percentiles(mean_dp, 0.0, 99.95)?;
    if !(hi > 0.0) {
        return None;
    }
    let thr = hi * 0.5;
    let mut label = vec![0u32; rows * cols];
    let mut best: Option<(f64, u32)> = None;
    let mut next = 0u32;
    let mut stack = Vec::new();
    let mut stats: Vec<(f64, f64, f64, f64)> = Vec::new(); // (area, weight, wy, wx)
    for start in 0..rows * cols {
        if label[start] != 0 || !(mean_dp[start] >= thr) {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let (mut n, mut w, mut wy, mut wx) = (0f64, 0f64, 0f64, 0f64);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / cols, i % cols);
            let v = mean_dp[i] as f64;
            n += 1.0;
            w += v;
            wy += v * y as f64;
            wx += v * x as f64;
            let mut visit = |j: usize| {
                if label[j] == 0 && mean_dp[j] >= thr {
                    label[j] = next;
                    stack.push(j);
                }
            };
            if y > 0 {
                visit(i - cols);
            }
            if y + 1 < rows {
                visit(i + cols);
            }
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < cols {
                visit(i + 1);
            }
        }
        stats.push((n, w, wy, wx));
        // the largest region wins (hot pixels are bright but tiny)
        if best.is_none_or(|(bn, _)| n > bn) {
            best = Some((n, next));
        }
    }
    let (_, l) = best?;
    let (n, w, wy, wx) = stats[l as usize - 1];
    if n < 3.0 || !(w > 0.0) {
        return None;
    }
    let r = (n / std::f64::consts::PI).sqrt() as f32;
    Some((((wy / w) as f32, (wx / w) as f32), r))
}

/// Pixel types the kernel is generic over (no conversion of the frames).
trait Px: crate::format::mib::Pixel + Copy + Ord + Default + Send + Sync + 'static {
    /// Wide enough for a row sum, a column sum over a frame, and `FLUSH` frames per pixel.
    type W: Copy + Default + Send + std::ops::AddAssign + std::ops::Add<Output = Self::W> + Into<u64> + 'static;
    const FLUSH: u64;
    fn w(self) -> Self::W;
    fn u32(self) -> u32;
    fn f32(self) -> f32;
    fn bufs(s: &mut KScratch) -> (&mut Vec<Self::W>, &mut Vec<Self::W>, &mut Vec<Self>);
}

/// Per-accumulator kernel buffers: pattern sums not yet flushed, column sums of one frame, maxima.
#[derive(Default)]
struct KScratch {
    acc32: Vec<u32>,
    col32: Vec<u32>,
    acc64: Vec<u64>,
    col64: Vec<u64>,
    max8: Vec<u8>,
    max16: Vec<u16>,
    max32: Vec<u32>,
    /// Frames in `acc*` not yet flushed into `dp_sum`.
    pending: u64,
    /// Pixel type of the pending sums.
    pt: Option<crate::format::mib::PixelType>,
}

impl Px for u8 {
    type W = u32;
    const FLUSH: u64 = (u32::MAX / 255) as u64;
    #[inline(always)]
    fn w(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn u32(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn f32(self) -> f32 {
        self as f32
    }
    fn bufs(s: &mut KScratch) -> (&mut Vec<u32>, &mut Vec<u32>, &mut Vec<u8>) {
        (&mut s.acc32, &mut s.col32, &mut s.max8)
    }
}
impl Px for u16 {
    type W = u32;
    const FLUSH: u64 = 65536;
    #[inline(always)]
    fn w(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn u32(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn f32(self) -> f32 {
        self as f32
    }
    fn bufs(s: &mut KScratch) -> (&mut Vec<u32>, &mut Vec<u32>, &mut Vec<u16>) {
        (&mut s.acc32, &mut s.col32, &mut s.max16)
    }
}
impl Px for u32 {
    type W = u64;
    const FLUSH: u64 = u32::MAX as u64;
    #[inline(always)]
    fn w(self) -> u64 {
        self as u64
    }
    #[inline(always)]
    fn u32(self) -> u32 {
        self
    }
    #[inline(always)]
    fn f32(self) -> f32 {
        self as f32
    }
    fn bufs(s: &mut KScratch) -> (&mut Vec<u64>, &mut Vec<u64>, &mut Vec<u32>) {
        (&mut s.acc64, &mut s.col64, &mut s.max32)
    }
}

#[inline(always)]
fn run_sum<T: Px>(px: &[T]) -> u64 {
    let mut r = T::W::default();
    for p in px {
        r += p.w();
    }
    r.into()
}

#[inline(always)]
fn pattern4<T: Px>(acc: &mut [T::W], mx: &mut [T], f0: &[T], f1: &[T], f2: &[T], f3: &[T]) {
    let n = acc.len().min(mx.len()).min(f0.len()).min(f1.len()).min(f2.len()).min(f3.len());
    let (acc, mx, f0, f1, f2, f3) = (&mut acc[..n], &mut mx[..n], &f0[..n], &f1[..n], &f2[..n], &f3[..n]);
    for i in 0..n {
        acc[i] += (f0[i].w() + f1[i].w()) + (f2[i].w() + f3[i].w());
        mx[i] = mx[i].max(f0[i].max(f1[i]).max(f2[i].max(f3[i])));
    }
}

/// Per-position values of the last block (reused, no allocation per frame).
#[derive(Default)]
struct Vals {
    sum: Vec<f32>,
    bf: Vec<f32>,
    adf: Vec<f32>,
    com_x: Vec<f32>,
    com_y: Vec<f32>,
    mask: Vec<f32>,
}

/// Per-worker accumulator: feed decoded frames of consecutive positions, get per-position values.
/// Used by [`compute`] and by the EMD conversion pass (which computes overviews as it converts).
///
/// The kernel is generic over the pixel type and does, per pixel, one fused pass (row sum,
/// column sum for CoM x, pattern sum, pattern max); BF and ADF are sums over precomputed
/// column intervals of each row (a disk meets a row in one interval, an annulus in at most two),
/// CoM y comes from the row sums. Pattern sums are kept in integers (one read-modify-write per
/// 4 frames) and flushed into `dp_sum` at the end of every [`add`](Accumulator::add), so
/// `dp_sum`/`dp_max`/`frames` are current after each `add` ([`compute`] flushes only at the end).
pub struct Accumulator {
    det_rows: usize,
    det_cols: usize,
    /// Runs (row, x0, x1) of bright-field pixels.
    bf_runs: Vec<(u32, u32, u32)>,
    /// Runs (row, x0, x1) of annular dark-field pixels.
    adf_runs: Vec<(u32, u32, u32)>,
    mask: Option<Arc<Vec<f32>>>,
    /// Bad pixels whose per-frame values are corrected (see [`BadFix`]).
    bad: Option<Arc<BadFix>>,
    origin: (f32, f32),
    ks: KScratch,
    vals: Vals,
    /// Per-pattern sums of this worker (mean and max patterns).
    pub dp_sum: Vec<f64>,
    pub dp_max: Vec<u32>,
    pub frames: u64,
}

/// Runs of `true` in a row of a membership predicate.
fn runs_of(rows: usize, cols: usize, inside: impl Fn(usize, usize) -> bool) -> Vec<(u32, u32, u32)> {
    let mut runs = Vec::new();
    for y in 0..rows {
        let mut x = 0;
        while x < cols {
            if inside(y, x) {
                let x0 = x;
                while x < cols && inside(y, x) {
                    x += 1;
                }
                runs.push((y as u32, x0 as u32, x as u32));
            } else {
                x += 1;
            }
        }
    }
    runs
}

/// Distance of detector pixel (y, x) from the centre, exactly as every detector uses it.
#[inline]
pub fn pixel_radius(geometry: &Geometry, y: usize, x: usize) -> f32 {
    let (cy, cx) = geometry.center;
    ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt()
}

/// Whether a pixel belongs to the BF disk (`r <= bf_radius`).
pub fn in_bf(g: &Geometry, y: usize, x: usize) -> bool {
    pixel_radius(g, y, x) <= g.bf_radius
}

/// Whether a pixel belongs to the ADF annulus (`adf_inner <= r <= adf_outer`).
pub fn in_adf(g: &Geometry, y: usize, x: usize) -> bool {
    let r = pixel_radius(g, y, x);
    r >= g.adf_inner && r <= g.adf_outer
}

impl Accumulator {
    pub fn new(geometry: &Geometry, det_rows: usize, det_cols: usize, mask: Option<Arc<Vec<f32>>>) -> Self {
        let mask = mask.filter(|m| m.len() == det_rows * det_cols);
        Accumulator {
            det_rows,
            det_cols,
            bf_runs: runs_of(det_rows, det_cols, |y, x| in_bf(geometry, y, x)),
            adf_runs: runs_of(det_rows, det_cols, |y, x| in_adf(geometry, y, x)),
            mask,
            bad: None,
            origin: geometry.com_origin,
            ks: KScratch::default(),
            vals: Vals::default(),
            dp_sum: vec![0.0; det_rows * det_cols],
            dp_max: vec![0; det_rows * det_cols],
            frames: 0,
        }
    }

    /// Correct every per-frame value for these bad pixels.
    pub fn with_bad(mut self, bad: Option<Arc<BadFix>>) -> Self {
        self.bad = bad.filter(|b| !b.is_empty());
        self
    }

    /// Correct the values of frame `k` for the bad pixels (`px`: the frame's value at an index).
    #[cold]
    fn fix_vals(&mut self, k: usize, px: impl Fn(usize) -> f64) {
        let Some(b) = &self.bad else { return };
        let d = b.delta(px);
        let v = &mut self.vals;
        let s0 = v.sum[k] as f64;
        let (cx, cy) = (v.com_x[k] as f64 + self.origin.1 as f64, v.com_y[k] as f64 + self.origin.0 as f64);
        let s = s0 + d[0];
        v.sum[k] = s as f32;
        v.bf[k] = (v.bf[k] as f64 + d[3]) as f32;
        v.adf[k] = (v.adf[k] as f64 + d[4]) as f32;
        if s > 0.0 {
            // moments back from the stored centre of mass, corrected, divided again
            let (mx, my) = if s0 > 0.0 { (cx * s0, cy * s0) } else { (0.0, 0.0) };
            v.com_x[k] = ((mx + d[2]) / s - self.origin.1 as f64) as f32;
            v.com_y[k] = ((my + d[1]) / s - self.origin.0 as f64) as f32;
        }
    }

    /// Add frames for positions `first..first+n` (frames = n * det pixels) into `out`.
    pub fn add(&mut self, first: usize, frames: &FrameBuf, out: &mut Overviews) {
        let n = self.compute_block(frames);
        self.flush_pending();
        let v = &self.vals;
        let end = (first + n).min(out.sum.len());
        let m = end.saturating_sub(first);
        out.sum[first..end].copy_from_slice(&v.sum[..m]);
        out.bf[first..end].copy_from_slice(&v.bf[..m]);
        out.adf[first..end].copy_from_slice(&v.adf[..m]);
        out.com_x[first..end].copy_from_slice(&v.com_x[..m]);
        out.com_y[first..end].copy_from_slice(&v.com_y[..m]);
        if let Some(mk) = out.mask.as_mut()
            && self.mask.is_some()
        {
            mk[first..end].copy_from_slice(&v.mask[..m]);
        }
    }

    /// Compute the values of every frame in `frames` into `self.vals`; returns the frame count.
    fn compute_block(&mut self, frames: &FrameBuf) -> usize {
        let npx = self.det_rows * self.det_cols;
        if npx == 0 {
            return 0;
        }
        let n = frames.len() / npx;
        self.resize_vals(n);
        crate::with_frames!(frames, f => self.block_typed(f, n));
        n
    }

    fn block_typed<T: Px>(&mut self, f: &[T], n: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above)
            unsafe { self.block_avx2(f, n) };
            return;
        }
        self.block_impl(f, n)
    }

    /// The same kernel compiled for AVX2 (twice the vector width of the x86-64 baseline).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2<T: Px>(&mut self, f: &[T], n: usize) {
        self.block_impl(f, n)
    }

    #[inline(always)]
    fn block_impl<T: Px>(&mut self, f: &[T], n: usize) {
        let (rows, cols) = (self.det_rows, self.det_cols);
        let npx = rows * cols;
        self.use_pixel_type::<T>();
        // pattern sums and maxima: one read-modify-write of the pattern buffers per group of 4
        // frames; the frames of an incomplete group do it inside the fused row pass below
        let grouped = n / 4 * 4;
        let mut k = 0;
        while k < grouped {
            if self.ks.pending + 4 > T::FLUSH {
                self.flush::<T>();
            }
            let (acc, _, mxb) = T::bufs(&mut self.ks);
            let fr = |j: usize| &f[(k + j) * npx..(k + j + 1) * npx];
            pattern4(acc, mxb, fr(0), fr(1), fr(2), fr(3));
            self.ks.pending += 4;
            k += 4;
        }
        for k in 0..n {
            let fused = k >= grouped;
            if fused && self.ks.pending + 1 > T::FLUSH {
                self.flush::<T>();
            }
            let fr = &f[k * npx..(k + 1) * npx];
            let (acc, col, mxb) = T::bufs(&mut self.ks);
            let (mut s, mut my) = (0u64, 0u128);
            let (mut bf, mut adf) = (0u64, 0u64);
            let (mut ib, mut ia) = (0usize, 0usize);
            for y in 0..rows {
                let row = &fr[y * cols..(y + 1) * cols];
                let mut rs = T::W::default();
                if fused {
                    let arow = &mut acc[y * cols..(y + 1) * cols];
                    let mrow = &mut mxb[y * cols..(y + 1) * cols];
                    for (((p, c), a), m) in row.iter().zip(col.iter_mut()).zip(arow.iter_mut()).zip(mrow.iter_mut()) {
                        let w = p.w();
                        *c += w;
                        *a += w;
                        *m = (*m).max(*p);
                        rs += w;
                    }
                } else {
                    for (p, c) in row.iter().zip(col.iter_mut()) {
                        let w = p.w();
                        *c += w;
                        rs += w;
                    }
                }
                let rs: u64 = rs.into();
                s += rs;
                my += y as u128 * rs as u128;
                // detector runs of this row, while it is in L1
                while let Some(&(ry, x0, x1)) = self.bf_runs.get(ib) {
                    if ry as usize != y {
                        break;
                    }
                    bf += run_sum(&row[x0 as usize..x1 as usize]);
                    ib += 1;
                }
                while let Some(&(ry, x0, x1)) = self.adf_runs.get(ia) {
                    if ry as usize != y {
                        break;
                    }
                    adf += run_sum(&row[x0 as usize..x1 as usize]);
                    ia += 1;
                }
            }
            let mut mx = 0u128;
            for (x, c) in col.iter_mut().enumerate() {
                let cv: u64 = (*c).into();
                mx += x as u128 * cv as u128;
                *c = T::W::default();
            }
            if fused {
                self.ks.pending += 1;
            }
            self.set_vals(k, s, my, mx, bf, adf);
            if self.bad.is_some() {
                self.fix_vals(k, |i| fr[i].f32() as f64);
            }
            if let Some(m) = &self.mask {
                let mut t = 0f64;
                for (pr, mr) in fr.chunks(cols).zip(m.chunks(cols)) {
                    let mut lanes = [0f32; 8];
                    let mut pc = pr.chunks_exact(8);
                    let mut mc = mr.chunks_exact(8);
                    for (p8, m8) in (&mut pc).zip(&mut mc) {
                        for j in 0..8 {
                            lanes[j] += p8[j].f32() * m8[j];
                        }
                    }
                    let mut r: f64 = lanes.iter().map(|&v| v as f64).sum();
                    for (p, w) in pc.remainder().iter().zip(mc.remainder()) {
                        r += p.f32() as f64 * *w as f64;
                    }
                    t += r;
                }
                if let Some(b) = &self.bad {
                    t += b.delta_weighted(|i| fr[i].f32() as f64, m);
                }
                self.vals.mask[k] = t as f32;
            }
            self.frames += 1;
        }
    }

    /// Room for the per-position values of a block of `n` frames.
    fn resize_vals(&mut self, n: usize) {
        let v = &mut self.vals;
        for x in [&mut v.sum, &mut v.bf, &mut v.adf, &mut v.com_x, &mut v.com_y] {
            x.resize(n, 0.0);
        }
        if self.mask.is_some() {
            v.mask.resize(n, 0.0);
        }
    }

    /// Make the kernel buffers (pattern sums, column sums, maxima) those of pixel type `T`,
    /// flushing sums pending in another type first.
    fn use_pixel_type<T: Px>(&mut self) {
        if self.ks.pt != Some(T::TYPE) {
            self.flush_pending();
            self.ks.pt = Some(T::TYPE);
        }
        let (npx, cols) = (self.det_rows * self.det_cols, self.det_cols);
        let (acc, col, mx) = T::bufs(&mut self.ks);
        acc.resize(npx, T::W::default());
        col.resize(cols, T::W::default());
        mx.resize(npx, T::default());
    }

    /// Per-position values of frame `k` of the block from its integer sums and moments.
    #[inline(always)]
    fn set_vals(&mut self, k: usize, s: u64, my: u128, mx: u128, bf: u64, adf: u64) {
        self.vals.sum[k] = s as f32;
        self.vals.bf[k] = bf as f32;
        self.vals.adf[k] = adf as f32;
        let (cx, cy) = if s > 0 {
            ((mx as f64 / s as f64 - self.origin.1 as f64) as f32, (my as f64 / s as f64 - self.origin.0 as f64) as f32)
        } else {
            (0.0, 0.0)
        };
        self.vals.com_x[k] = cx;
        self.vals.com_y[k] = cy;
    }

    /// Whether [`compute_block_raw`](Self::compute_block_raw) handles stored frames of this type.
    fn takes_raw(&self, pt: PixelType) -> bool {
        pt == PixelType::U16 && self.mask.is_none() && kernel16::available(self.det_cols)
    }

    /// Compute the values of the stored (big-endian) frames in `raw` into `self.vals` with the
    /// fused 16-bit kernel, reading the file bytes without a decode copy. Returns false, having
    /// done nothing, when the kernel does not apply (see [`takes_raw`](Self::takes_raw)).
    fn compute_block_raw(&mut self, raw: &RawFrames) -> bool {
        let (rows, cols) = (self.det_rows, self.det_cols);
        let npx = rows * cols;
        if npx == 0 || !self.takes_raw(raw.pixel_type) {
            return false;
        }
        let n = raw.count;
        self.resize_vals(n);
        self.use_pixel_type::<u16>();
        let mut k = 0;
        while k < n {
            let g = (n - k).min(4);
            if self.ks.pending + g as u64 > u16::FLUSH {
                self.flush::<u16>();
            }
            let frames: [&[u8]; 4] = std::array::from_fn(|j| raw.frame(k + j.min(g - 1), npx));
            let mut out = [kernel16::FrameSums::default(); 4];
            let (acc, _, mx) = u16::bufs(&mut self.ks);
            let exact = kernel16::group(&frames[..g], rows, cols, acc, mx, &self.bf_runs, &self.adf_runs, &mut out);
            for j in 0..g {
                let f = if exact {
                    out[j]
                } else {
                    kernel16::frame_sums_scalar(frames[j], rows, cols, &self.bf_runs, &self.adf_runs)
                };
                self.set_vals(k + j, f.sum, f.my as u128, f.mx as u128, f.bf, f.adf);
                if self.bad.is_some() {
                    let b = frames[j];
                    self.fix_vals(k + j, |i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]) as f64);
                }
            }
            self.ks.pending += g as u64;
            self.frames += g as u64;
            k += g;
        }
        true
    }

    /// Move pending integer pattern sums into `dp_sum` / `dp_max` (whatever the pixel type).
    fn flush_pending(&mut self) {
        match self.ks.pt {
            Some(crate::format::mib::PixelType::U8) => self.flush::<u8>(),
            Some(crate::format::mib::PixelType::U16) => self.flush::<u16>(),
            Some(crate::format::mib::PixelType::U32) => self.flush::<u32>(),
            None => {}
        }
    }

    /// Move the integer pattern sums and maxima into `dp_sum` / `dp_max`.
    fn flush<T: Px>(&mut self) {
        if self.ks.pending == 0 {
            return;
        }
        let (acc, _, mx) = T::bufs(&mut self.ks);
        for ((d, a), (dm, m)) in
            self.dp_sum.iter_mut().zip(acc.iter_mut()).zip(self.dp_max.iter_mut().zip(mx.iter_mut()))
        {
            let v: u64 = (*a).into();
            *d += v as f64;
            *a = T::W::default();
            *dm = (*dm).max(m.u32());
            *m = T::default();
        }
        self.ks.pending = 0;
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

    /// Mean pattern of the frames added so far (zeros when none).
    pub fn mean_pattern(&self) -> Vec<f32> {
        let nf = self.frames.max(1) as f64;
        self.dp_sum.iter().map(|&v| (v / nf) as f32).collect()
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

    fn copy_vals(&mut self, first: usize, v: &Vals, n: usize, with_mask: bool) {
        let end = (first + n).min(self.sum.len());
        let m = end.saturating_sub(first);
        self.sum[first..end].copy_from_slice(&v.sum[..m]);
        self.bf[first..end].copy_from_slice(&v.bf[..m]);
        self.adf[first..end].copy_from_slice(&v.adf[..m]);
        self.com_x[first..end].copy_from_slice(&v.com_x[..m]);
        self.com_y[first..end].copy_from_slice(&v.com_y[..m]);
        if with_mask && let Some(mk) = self.mask.as_mut() {
            mk[first..end].copy_from_slice(&v.mask[..m]);
        }
    }

    fn set_patterns(&mut self, acc: &Accumulator) {
        self.mean_dp = acc.mean_pattern();
        self.max_dp = acc.dp_max.iter().map(|&v| v as f32).collect();
        if let Some(b) = &acc.bad {
            b.repair(&mut self.mean_dp);
            b.repair(&mut self.max_dp);
        }
    }
}

/// Bytes one frame occupies in flight while it is read and decoded (raw bytes + decoded pixels).
fn frame_cost(ds: &dyn Dataset) -> u64 {
    let px = (ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64;
    // raw file bytes (payload + header) are about the decoded size; count both plus a margin
    2 * px + 1024
}

/// Positions per read block for `threads` workers within `budget` (half of it for frames in
/// flight, the rest for results, patterns and slack); about 256 KiB of raw + decoded frames per block (cache-sized; one 256x256 u16 frame).
pub fn block_len(ds: &dyn Dataset, budget: u64, threads: usize) -> usize {
    block_len_with(ds, budget, threads, KernelTuning::default().block_bytes)
}

/// [`block_len`] with a target block size of `block_bytes` instead of the default.
pub fn block_len_with(ds: &dyn Dataset, budget: u64, threads: usize, block_bytes: u64) -> usize {
    let cost = frame_cost(ds).max(1);
    let by_budget = budget / 2 / (threads.max(1) as u64 * cost);
    // small blocks stay in the CPU caches between the read, the decode and the kernel
    let target = block_bytes.max(1);
    // at least 4 frames: the kernels update the pattern sums once per group of 4 frames
    let by_size = (target / cost).max(4);
    by_budget.min(by_size).clamp(1, 4096) as usize
}

/// Stride `k` of the coarse pass: every k-th row and column, so that it reads at most ~3 % of the
/// positions and at most ~32 MiB.
pub fn coarse_stride(ds: &dyn Dataset) -> usize {
    let n = ds.positions_present().max(1) as f64;
    let by_frac = n * 0.03;
    let by_bytes = (32u64 << 20) as f64 / frame_cost(ds) as f64 * 2.0;
    let target = by_frac.min(by_bytes).max(1.0);
    ((n / target).sqrt().ceil() as usize).max(2)
}

/// Threads for the scattered single-frame reads of the coarse pass and the geometry estimate.
const IO_THREADS: usize = 8;

/// Shared state of a pass.
struct Shared {
    out: Overviews,
    last_partial: Instant,
}

/// Run read+accumulate over `tasks` (position ranges) on the rayon pool (or on `io_threads`
/// plain threads for scattered small reads), one worker per thread,
/// each reusing its frame buffer, read scratch and accumulator. Values are written into
/// `shared.out` (when `write`), `positions_done` counted when `exact`, and `on_partial` called at
/// most every 100 ms when given. Returns the merged accumulator (patterns of the frames read).
#[allow(clippy::too_many_arguments)]
fn run_tasks(
    ds: &dyn Dataset,
    geometry: &Geometry,
    mask: Option<Arc<Vec<f32>>>,
    tasks: Tasks,
    shared: &Mutex<Shared>,
    exact: bool,
    progress: &Progress,
    on_partial: Option<&(dyn Fn(&Overviews) + Sync)>,
    io_threads: Option<usize>,
    raw_kernel: bool,
    bad: Option<&Arc<BadFix>>,
) -> Result<Accumulator> {
    let (dr, dc) = ds.det();
    let pt = ds.info().pixel_type;
    let raw_bytes = frame_cost(ds) / 2;
    let threads = io_threads.unwrap_or_else(rayon::current_num_threads).min(tasks.len()).max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let err: Mutex<Option<Error>> = Mutex::new(None);
    let accs: Mutex<Vec<Accumulator>> = Mutex::new(Vec::new());
    let with_mask = mask.is_some();
    let worker = || {
        let mut buf = FrameBuf::new(pt);
        let mut scratch = ReadScratch::default();
        scratch.mib.scattered = matches!(tasks, Tasks::List(_));
        let mut acc = Accumulator::new(geometry, dr, dc, mask.clone()).with_bad(bad.cloned());
        let raw_ok = acc.takes_raw(pt) && raw_kernel;
        let r = (|| -> Result<()> {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((start, n)) = tasks.get(i) else {
                    return Ok(());
                };
                progress.check()?;
                // stored 16-bit frames go to the fused kernel without a decode copy
                let done = raw_ok
                    && match ds.read_raw_positions(start, n, &mut scratch)? {
                        Some(raw) => acc.compute_block_raw(&raw),
                        None => false,
                    };
                if !done {
                    ds.read_positions(start, n, &mut buf, &mut scratch)?;
                    acc.compute_block(&buf);
                }
                let mut sh = shared.lock().unwrap();
                sh.out.copy_vals(start, &acc.vals, n, with_mask);
                if exact {
                    sh.out.positions_done += n;
                }
                progress.add(n as u64, n as u64 * raw_bytes);
                if let Some(cb) = on_partial
                    && sh.last_partial.elapsed().as_millis() >= 100
                {
                    sh.last_partial = Instant::now();
                    cb(&sh.out);
                }
            }
        })();
        if let Err(e) = r {
            stop.store(true, Ordering::Relaxed);
            err.lock().unwrap().get_or_insert(e);
        }
        acc.flush_pending();
        accs.lock().unwrap().push(acc);
    };
    match io_threads {
        // many small scattered reads (coarse pass): more threads than cores keep the disk busy
        Some(_) => std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(worker);
            }
        }),
        None => rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| worker());
            }
        }),
    }
    if let Some(e) = err.into_inner().unwrap() {
        return Err(e);
    }
    let mut accs = accs.into_inner().unwrap().into_iter();
    let mut total = accs.next().unwrap_or_else(|| Accumulator::new(geometry, dr, dc, None).with_bad(bad.cloned()));
    for a in accs {
        total.merge_patterns(&a);
    }
    Ok(total)
}

/// Work items of a pass: an explicit list of position ranges, or contiguous blocks covering
/// `0..present` (computed on the fly, so a huge scan needs no task list).
enum Tasks<'a> {
    List(&'a [(usize, usize)]),
    /// Blocks of `block` positions covering `start..present`.
    Blocks {
        start: usize,
        present: usize,
        block: usize,
    },
}

impl Tasks<'_> {
    fn len(&self) -> usize {
        match self {
            Tasks::List(l) => l.len(),
            Tasks::Blocks { start, present, block } => present.saturating_sub(*start).div_ceil(*block),
        }
    }
    fn get(&self, i: usize) -> Option<(usize, usize)> {
        match self {
            Tasks::List(l) => l.get(i).copied(),
            Tasks::Blocks { start, present, block } => {
                let s = start.checked_add(i.checked_mul(*block)?)?;
                (s < *present).then(|| (s, (*block).min(present - s)))
            }
        }
    }
}

/// Positions of the coarse pass for stride `k`: the centre of every k x k block of the scan
/// (clamped into the scan), only those with data.
pub fn coarse_positions(rows: usize, cols: usize, present: usize, k: usize) -> Vec<usize> {
    let mut v = Vec::new();
    for br in 0..rows.div_ceil(k) {
        let r = (br * k + k / 2).min(rows - 1);
        for bc in 0..cols.div_ceil(k) {
            let c = (bc * k + k / 2).min(cols - 1);
            let p = r * cols + c;
            if p < present {
                v.push(p);
            }
        }
    }
    v
}

/// Fill every position with data of each k x k block with the value of the block's sample
/// (nearest-neighbour display of the coarse pass).
fn fill_coarse(out: &mut Overviews, present: usize, k: usize) {
    let (rows, cols) = (out.scan_rows, out.scan_cols);
    let fill = |v: &mut Vec<f32>| {
        for p in 0..present {
            let (r, c) = (p / cols, p % cols);
            let sr = ((r / k) * k + k / 2).min(rows - 1);
            let sc = ((c / k) * k + k / 2).min(cols - 1);
            let sp = sr * cols + sc;
            if sp != p && sp < present {
                v[p] = v[sp];
            }
        }
    };
    fill(&mut out.sum);
    fill(&mut out.bf);
    fill(&mut out.adf);
    fill(&mut out.com_x);
    fill(&mut out.com_y);
    if let Some(m) = out.mask.as_mut() {
        fill(m);
    }
}

/// Compute every overview in one pass over `ds`, in parallel on the rayon pool, with at most
/// `opts.memory_budget` bytes of frames in flight.
///
/// With `opts.coarse_first`, a coarse pass first reads the centre position of every k x k block
/// (k from [`coarse_stride`]: at most ~3 % of the positions and ~64 MiB) and `on_partial` gets a
/// snapshot where each block shows its sample's value (nearest neighbour; `positions_done` = 0,
/// `complete` = false, `mean_dp` = mean of the sampled frames). The exact pass then overwrites
/// the values block by block, calling `on_partial` at most every 100 ms (`positions_done` counts
/// exact positions). `on_partial` is called once more with the final result. Positions without
/// data stay NaN. `progress` counts frames read (total = coarse + exact frames) and bytes, and
/// carries cancellation (`Err(Cancelled)`).
pub fn compute(
    ds: &dyn Dataset,
    geometry: &Geometry,
    opts: &ComputeOptions,
    progress: &Progress,
    on_partial: &(dyn Fn(&Overviews) + Sync),
) -> Result<Overviews> {
    let (dr, dc) = ds.det();
    let mask = match &opts.mask {
        Some(m) if m.len() != dr * dc => {
            return Err(Error::Invalid(format!(
                "mask has {} values, the detector has {dr}x{dc} = {} pixels",
                m.len(),
                dr * dc
            )));
        }
        m => m.clone(),
    };
    let present = ds.positions_present();
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    let threads = rayon::current_num_threads();
    let block = block_len_with(ds, opts.memory_budget, threads, opts.kernel.block_bytes);
    let exact_tasks = Tasks::Blocks { start: 0, present, block: block.max(1) };
    let k = coarse_stride(ds);
    let coarse: Vec<(usize, usize)> = if opts.coarse_first && present > 0 && rows > 1 && cols > 1 {
        coarse_positions(rows, cols, present, k).into_iter().map(|p| (p, 1)).collect()
    } else {
        Vec::new()
    };
    progress.set_total((present + coarse.len()) as u64);
    let fix = bad_fix(opts, geometry, dr, dc);
    let shared =
        Mutex::new(Shared { out: Overviews::empty(ds, geometry, mask.is_some()), last_partial: Instant::now() });
    if !coarse.is_empty() {
        let acc = run_tasks(
            ds,
            geometry,
            mask.clone(),
            Tasks::List(&coarse),
            &shared,
            false,
            progress,
            None,
            Some(IO_THREADS),
            opts.kernel.raw_kernel,
            fix.as_ref(),
        )?;
        let mut sh = shared.lock().unwrap();
        fill_coarse(&mut sh.out, present, k);
        sh.out.set_patterns(&acc);
        on_partial(&sh.out);
        sh.last_partial = Instant::now();
    }
    let acc = run_tasks(
        ds,
        geometry,
        mask.clone(),
        exact_tasks,
        &shared,
        true,
        progress,
        Some(on_partial),
        None,
        opts.kernel.raw_kernel,
        fix.as_ref(),
    )?;
    let mut out = shared.into_inner().unwrap().out;
    out.set_patterns(&acc);
    out.positions_done = present;
    out.complete = present == ds.scan().positions();
    on_partial(&out);
    Ok(out)
}

/// The bad-pixel correction of `opts` for this geometry (None when there are no bad pixels).
fn bad_fix(opts: &ComputeOptions, g: &Geometry, dr: usize, dc: usize) -> Option<Arc<BadFix>> {
    bad_fix_for(opts.bad_pixels.as_deref()?, g, dr, dc)
}

/// The bad-pixel correction of the pixels `bad` for this geometry (None when there are none).
pub fn bad_fix_for(bad: &[usize], g: &Geometry, dr: usize, dc: usize) -> Option<Arc<BadFix>> {
    if bad.is_empty() {
        return None;
    }
    Some(Arc::new(BadFix::new(bad, dr, dc, |y, x| in_bf(g, y, x), |y, x| in_adf(g, y, x))))
}

/// Extend complete-so-far results `prev` (exact for positions `0..prev.positions_done`, computed
/// with `prev.geometry` and no mask) to every position present now: only the new frames are
/// read (a running acquisition). Patterns are merged (the mean weighted by frame counts).
pub fn extend(ds: &dyn Dataset, prev: Overviews, opts: &ComputeOptions, progress: &Progress) -> Result<Overviews> {
    let start = prev.positions_done;
    let present = ds.positions_present().min(ds.scan().positions());
    let (dr, dc) = ds.det();
    if present <= start
        || prev.mask.is_some()
        || (prev.scan_rows, prev.scan_cols) != (ds.scan().rows, ds.scan().cols)
        || (prev.det_rows, prev.det_cols) != (dr, dc)
    {
        return Ok(prev);
    }
    let geometry = prev.geometry.clone();
    let block = block_len_with(ds, opts.memory_budget, rayon::current_num_threads(), opts.kernel.block_bytes);
    let tasks = Tasks::Blocks { start, present, block: block.max(1) };
    progress.set_total((present - start) as u64);
    let (old_mean, old_max) = (prev.mean_dp.clone(), prev.max_dp.clone());
    let shared = Mutex::new(Shared { out: prev, last_partial: Instant::now() });
    let fix = bad_fix(opts, &geometry, dr, dc);
    let acc = run_tasks(
        ds,
        &geometry,
        None,
        tasks,
        &shared,
        true,
        progress,
        None,
        None,
        opts.kernel.raw_kernel,
        fix.as_ref(),
    )?;
    let mut out = shared.into_inner().expect("no worker panicked").out;
    let (n_old, n_new) = (start as f64, acc.frames as f64);
    out.mean_dp = old_mean
        .iter()
        .zip(&acc.dp_sum)
        .map(|(&m, &s)| ((m as f64 * n_old + s) / (n_old + n_new).max(1.0)) as f32)
        .collect();
    out.max_dp = old_max.iter().zip(&acc.dp_max).map(|(&m, &x)| m.max(x as f32)).collect();
    if let Some(f) = &fix {
        f.repair(&mut out.mean_dp);
        f.repair(&mut out.max_dp);
    }
    out.positions_done = present;
    out.complete = present == ds.scan().positions();
    Ok(out)
}

/// Mean diffraction pattern over the scan rectangle `rows` x `cols` (half-open ranges of scan
/// rows and columns). Positions without data are left out; Err when the rectangle is empty,
/// outside the scan, or has no data.
pub fn roi_mean(
    ds: &dyn Dataset,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    budget: u64,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let s = ds.scan();
    if rows.is_empty() || cols.is_empty() || rows.end > s.rows || cols.end > s.cols {
        return Err(Error::Invalid(format!(
            "ROI rows {}..{}, cols {}..{} is empty or outside the {}x{} scan",
            rows.start, rows.end, cols.start, cols.end, s.rows, s.cols
        )));
    }
    let present = ds.positions_present();
    let block = block_len(ds, budget, rayon::current_num_threads());
    let mut tasks = Vec::new();
    for r in rows.clone() {
        let a = r * s.cols + cols.start;
        let b = (r * s.cols + cols.end).min(present);
        let mut p = a;
        while p < b {
            let n = block.min(b - p);
            tasks.push((p, n));
            p += n;
        }
    }
    if tasks.is_empty() {
        return Err(Error::Invalid("ROI has no frames yet".into()));
    }
    progress.set_total(tasks.iter().map(|t| t.1 as u64).sum());
    let g = default_geometry(ds.det().0, ds.det().1);
    let shared = Mutex::new(Shared { out: Overviews::empty(ds, &g, false), last_partial: Instant::now() });
    let acc = run_tasks(ds, &g, None, Tasks::List(&tasks), &shared, false, progress, None, None, true, None)?;
    Ok(acc.mean_pattern())
}

/// Geometry from the found BF disk in the mean of up to `samples` frames spread evenly over the
/// scan (a quick look, a few MB of reads); [`default_geometry`] when no disk is found.
/// Returns the geometry and the sampled mean pattern.
pub fn estimate_geometry(ds: &dyn Dataset, samples: usize, progress: &Progress) -> Result<(Geometry, Vec<f32>)> {
    let (dr, dc) = ds.det();
    let present = ds.positions_present();
    if present == 0 {
        return Ok((default_geometry(dr, dc), vec![0.0; dr * dc]));
    }
    let n = samples.clamp(1, present);
    let tasks: Vec<(usize, usize)> = (0..n).map(|i| (i * present / n, 1)).collect();
    let g = default_geometry(dr, dc);
    let shared = Mutex::new(Shared { out: Overviews::empty(ds, &g, false), last_partial: Instant::now() });
    // every sample's read is queued at once (the disk serves them in parallel when cold), then
    // the pool's threads read them: no extra threads, whose setup would cost more than the
    // reads when the file is in the page cache
    for &(p, _) in &tasks {
        ds.prefetch(p);
    }
    let acc = run_tasks(ds, &g, None, Tasks::List(&tasks), &shared, false, progress, None, None, true, None)?;
    let mean = acc.mean_pattern();
    Ok((auto_geometry(&mean, dr, dc), mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_exactly_the_detector_pixels() {
        for (rows, cols) in [(256usize, 256usize), (64, 80)] {
            let g = Geometry {
                center: (rows as f32 * 0.45, cols as f32 * 0.55),
                bf_radius: 9.3,
                adf_inner: 12.0,
                adf_outer: 30.5,
                com_origin: (0.0, 0.0),
            };
            let a = Accumulator::new(&g, rows, cols, None);
            let mut bf = vec![false; rows * cols];
            let mut adf = vec![false; rows * cols];
            let mut per_row = vec![0; rows];
            for &(y, x0, x1) in &a.bf_runs {
                for x in x0..x1 {
                    bf[y as usize * cols + x as usize] = true;
                }
            }
            for &(y, x0, x1) in &a.adf_runs {
                per_row[y as usize] += 1;
                for x in x0..x1 {
                    adf[y as usize * cols + x as usize] = true;
                }
            }
            assert!(a.bf_runs.windows(2).all(|w| w[0].0 != w[1].0), "a disk meets a row in one interval");
            assert!(per_row.iter().all(|&n| n <= 2), "an annulus meets a row in at most two intervals");
            for y in 0..rows {
                for x in 0..cols {
                    assert_eq!(bf[y * cols + x], in_bf(&g, y, x));
                    assert_eq!(adf[y * cols + x], in_adf(&g, y, x));
                }
            }
        }
    }

    #[test]
    fn kernel_matches_per_pixel_sums_for_every_pixel_type() {
        let (rows, cols) = (20usize, 24usize);
        let g =
            Geometry { center: (9.5, 12.2), bf_radius: 4.0, adf_inner: 5.0, adf_outer: 9.0, com_origin: (9.0, 11.0) };
        let n = 7;
        let vals: Vec<u32> = (0..rows * cols * n).map(|i| ((i * 2654435761usize) >> 7) as u32 % 200).collect();
        let mask: Vec<f32> = (0..rows * cols).map(|i| (i % 5) as f32 * 0.25).collect();
        for buf in [
            FrameBuf::U8(vals.iter().map(|&v| v as u8).collect()),
            FrameBuf::U16(vals.iter().map(|&v| v as u16 * 300).collect()),
            FrameBuf::U32(vals.iter().map(|&v| v * 70000).collect()),
        ] {
            let mut a = Accumulator::new(&g, rows, cols, Some(Arc::new(mask.clone())));
            a.compute_block(&buf);
            a.flush_pending();
            let mut dp = vec![0f64; rows * cols];
            for k in 0..n {
                let (mut s, mut b, mut d, mut mx, mut my, mut mk) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
                for y in 0..rows {
                    for x in 0..cols {
                        let p = buf.get_u32(k * rows * cols + y * cols + x) as f64;
                        dp[y * cols + x] += p;
                        s += p;
                        mx += p * x as f64;
                        my += p * y as f64;
                        mk += p * mask[y * cols + x] as f64;
                        if in_bf(&g, y, x) {
                            b += p;
                        }
                        if in_adf(&g, y, x) {
                            d += p;
                        }
                    }
                }
                assert_eq!(a.vals.sum[k], s as f32);
                assert_eq!(a.vals.bf[k], b as f32);
                assert_eq!(a.vals.adf[k], d as f32);
                assert!((a.vals.com_x[k] as f64 - (mx / s - 11.0)).abs() < 1e-4);
                assert!((a.vals.com_y[k] as f64 - (my / s - 9.0)).abs() < 1e-4);
                assert!((a.vals.mask[k] as f64 - mk).abs() <= 1e-5 * mk);
            }
            assert_eq!(a.dp_sum, dp);
            assert_eq!(a.frames, n as u64);
        }
    }

    #[test]
    fn coarse_positions_are_block_centres() {
        let v = coarse_positions(10, 12, 120, 4);
        // block rows 0..3 (centres 2, 6, 9 clamped), block cols 0..3 (centres 2, 6, 10)
        assert_eq!(v, vec![26, 30, 34, 74, 78, 82, 110, 114, 118]);
        let v = coarse_positions(10, 12, 80, 4);
        assert_eq!(v, vec![26, 30, 34, 74, 78]);
    }
}

#[cfg(test)]
mod geometry_tests {
    use super::*;

    #[test]
    fn implausible_disks_fall_back_to_the_default() {
        let (rows, cols) = (64usize, 64usize);
        // a bright disk of radius 8 at the centre
        let disk: Vec<f32> = (0..rows * cols)
            .map(|i| if pixel_radius(&default_geometry(rows, cols), i / cols, i % cols) <= 8.0 { 100.0 } else { 1.0 })
            .collect();
        let g = auto_geometry(&disk, rows, cols);
        assert!((g.bf_radius - 8.0).abs() < 0.6 && (g.center.0 - 31.5).abs() < 0.1, "{g:?}");
        assert!(g.adf_inner > g.bf_radius && g.adf_outer > g.adf_inner && g.adf_outer < 32.0);
        // a blob at the edge is not a BF disk
        let edge: Vec<f32> =
            (0..rows * cols).map(|i| if i / cols < 3 && i % cols < 10 { 100.0 } else { 1.0 }).collect();
        assert_eq!(auto_geometry(&edge, rows, cols), default_geometry(rows, cols));
        // nothing bright at all
        assert_eq!(auto_geometry(&vec![0.0; rows * cols], rows, cols), default_geometry(rows, cols));
    }
}
