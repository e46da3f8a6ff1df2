//! The pixel kernels: one pass over a frame adds it to every detector at once (sum, BF, ADF,
//! CoM, mask, the mean and maximum pattern), per pixel type, over precomputed runs of pixels.

use super::Overviews;
use super::geometry::{Geometry, in_adf, in_bf};
use crate::compute::badpix::BadFix;
use crate::compute::kernel16;
use crate::dataset::{FrameBuf, RawFrames};
use crate::format::mib::PixelType;
use std::sync::Arc;

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

/// The mask-weighted sum of frame `fr` (rows of `cols` pixels): f32 products in 8 lanes per row,
/// the rows summed in f64. Inlined into [`Accumulator::block_impl`] (and its AVX2 copy).
#[inline(always)]
fn mask_sum<T: Px>(fr: &[T], m: &[f32], cols: usize) -> f64 {
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
    t
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
pub(crate) struct Vals {
    pub(crate) sum: Vec<f32>,
    pub(crate) bf: Vec<f32>,
    pub(crate) adf: Vec<f32>,
    pub(crate) com_x: Vec<f32>,
    pub(crate) com_y: Vec<f32>,
    pub(crate) mask: Vec<f32>,
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
    pub(crate) det_rows: usize,
    pub(crate) det_cols: usize,
    /// Runs (row, x0, x1) of bright-field pixels.
    pub(crate) bf_runs: Vec<(u32, u32, u32)>,
    /// Runs (row, x0, x1) of annular dark-field pixels.
    pub(crate) adf_runs: Vec<(u32, u32, u32)>,
    pub(crate) mask: Option<Arc<Vec<f32>>>,
    /// Bad pixels whose per-frame values are corrected (see [`BadFix`]).
    pub(crate) bad: Option<Arc<BadFix>>,
    pub(crate) origin: (f32, f32),
    ks: KScratch,
    pub(crate) vals: Vals,
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
    pub(crate) fn fix_vals(&mut self, k: usize, px: impl Fn(usize) -> f64) {
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
    pub(crate) fn compute_block(&mut self, frames: &FrameBuf) -> usize {
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
                let mut t = mask_sum(fr, m, cols);
                if let Some(b) = &self.bad {
                    t += b.delta_weighted(|i| fr[i].f32() as f64, m);
                }
                self.vals.mask[k] = t as f32;
            }
            self.frames += 1;
        }
    }

    /// Room for the per-position values of a block of `n` frames.
    pub(crate) fn resize_vals(&mut self, n: usize) {
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
    pub(crate) fn set_vals(&mut self, k: usize, s: u64, my: u128, mx: u128, bf: u64, adf: u64) {
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
    pub(crate) fn takes_raw(&self, pt: PixelType) -> bool {
        pt == PixelType::U16 && self.mask.is_none() && kernel16::available(self.det_cols)
    }

    /// Compute the values of the stored (big-endian) frames in `raw` into `self.vals` with the
    /// fused 16-bit kernel, reading the file bytes without a decode copy. Returns false, having
    /// done nothing, when the kernel does not apply (see [`takes_raw`](Self::takes_raw)).
    pub(crate) fn compute_block_raw(&mut self, raw: &RawFrames) -> bool {
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
            let t = &mut kernel16::Target { acc, max: mx, bf_runs: &self.bf_runs, adf_runs: &self.adf_runs };
            let exact = kernel16::group(&frames[..g], (rows, cols), t, &mut out);
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
    pub(crate) fn flush_pending(&mut self) {
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
}
