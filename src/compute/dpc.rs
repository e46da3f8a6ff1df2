//! Differential phase contrast from centre-of-mass images: descan plane, scan rotation and flip,
//! integrated CoM (iCoM), and the CoM pass restricted to a detector mask.
//!
//! Conventions (scan and detector images alike: x = column, y = row, rows pointing down):
//! * the detector CoM `d = (dx, dy)` is turned into the scan-frame field `v = R(theta) F d`, where
//!   `F` mirrors the detector x axis when `flip` (`dx -> -dx`) and
//!   `R(theta) = [[cos, -sin], [sin, cos]]`: a positive angle turns +x towards +y, i.e.
//!   clockwise as the image is displayed (rows down);
//! * descan: least-squares planes `dx ~ a + b col + c row` (and the same for `dy`) over the scan,
//!   subtracted before anything else;
//! * rotation and flip: the angle and flip whose field has the smallest RMS curl
//!   (`dvy/dx - dvx/dy`, central differences); curl of `R(theta) u` is
//!   `cos(theta) curl(u) + sin(theta) div(u)`, so every angle is evaluated exactly: a 1 degree
//!   search, then a golden-section refinement;
//! * the 180 degree ambiguity (curl is blind to `v -> -v`): the sign is chosen so that the iCoM
//!   image has positive skewness, i.e. sparse positive peaks, as a specimen of positive projected
//!   potential (atoms) gives;
//! * iCoM: `phi = IFFT[(kx FFT(vx) + ky FFT(vy)) / (2 pi i |k|^2)]`, k = 0 term zero, on the
//!   field mirrored to twice its size (vx odd in x and even in y, vy the other way round), so
//!   the periodic transform sees no jump at the edges; units: detector px x scan px.

use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use num_complex::Complex64;
use rayon::prelude::*;

/// A plane `a + b col + c row`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Plane {
    pub a: f64,
    pub b_col: f64,
    pub c_row: f64,
}

impl Plane {
    pub fn at(&self, row: usize, col: usize) -> f64 {
        self.a + self.b_col * col as f64 + self.c_row * row as f64
    }
}

/// Least-squares plane through the finite values of `img` (rows x cols).
pub fn fit_plane(img: &[f32], rows: usize, cols: usize) -> Plane {
    // normal equations of [1, col, row]
    let mut m = [[0f64; 3]; 3];
    let mut r = [0f64; 3];
    for y in 0..rows {
        for x in 0..cols {
            let v = img[y * cols + x] as f64;
            if !v.is_finite() {
                continue;
            }
            let b = [1.0, x as f64, y as f64];
            for i in 0..3 {
                r[i] += b[i] * v;
                for j in 0..3 {
                    m[i][j] += b[i] * b[j];
                }
            }
        }
    }
    match solve3(m, r) {
        Some([a, b_col, c_row]) => Plane { a, b_col, c_row },
        // too few points for a plane (one row or column): the mean
        None => Plane { a: if m[0][0] > 0.0 { r[0] / m[0][0] } else { 0.0 }, ..Default::default() },
    }
}

fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(m);
    if !(d.abs() > 1e-9 * m[0][0].powi(3).max(1.0)) {
        return None;
    }
    let mut out = [0f64; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut a = m;
        for i in 0..3 {
            a[i][k] = r[i];
        }
        *o = det(a) / d;
    }
    Some(out)
}

fn subtract_plane(img: &mut [f32], rows: usize, cols: usize, p: &Plane) {
    for y in 0..rows {
        for x in 0..cols {
            img[y * cols + x] -= p.at(y, x) as f32;
        }
    }
}

/// `R(theta) F d` for every position (see the module conventions).
pub fn to_scan_frame(dx: &[f32], dy: &[f32], theta_deg: f64, flip: bool) -> (Vec<f32>, Vec<f32>) {
    let (s, c) = theta_deg.to_radians().sin_cos();
    let f = if flip { -1.0 } else { 1.0 };
    dx.iter()
        .zip(dy)
        .map(|(&x, &y)| {
            let (ux, uy) = (f * x as f64, y as f64);
            ((c * ux - s * uy) as f32, (s * ux + c * uy) as f32)
        })
        .unzip()
}

/// Mean squares of curl and divergence of `u` (interior positions whose four neighbours are
/// finite): (mean curl^2, mean curl*div, mean div^2).
fn curl_div_moments(ux: &[f32], uy: &[f32], rows: usize, cols: usize) -> (f64, f64, f64) {
    let (mut a, mut b, mut d, mut n) = (0f64, 0f64, 0f64, 0usize);
    for y in 1..rows.saturating_sub(1) {
        for x in 1..cols.saturating_sub(1) {
            let i = y * cols + x;
            let g = |v: &[f32], j: usize| v[j] as f64;
            let dxx = 0.5 * (g(ux, i + 1) - g(ux, i - 1));
            let dxy = 0.5 * (g(uy, i + 1) - g(uy, i - 1));
            let dyx = 0.5 * (g(ux, i + cols) - g(ux, i - cols));
            let dyy = 0.5 * (g(uy, i + cols) - g(uy, i - cols));
            let (curl, div) = (dxy - dyx, dxx + dyy);
            if curl.is_finite() && div.is_finite() {
                a += curl * curl;
                b += curl * div;
                d += div * div;
                n += 1;
            }
        }
    }
    let n = n.max(1) as f64;
    (a / n, b / n, d / n)
}

/// RMS curl of the field `R(theta) F d` for every theta, from the moments of `F d`.
struct CurlModel {
    a: f64,
    b: f64,
    d: f64,
}

impl CurlModel {
    fn new(dx: &[f32], dy: &[f32], rows: usize, cols: usize, flip: bool) -> Self {
        let ux: Vec<f32> = if flip { dx.iter().map(|v| -v).collect() } else { dx.to_vec() };
        let (a, b, d) = curl_div_moments(&ux, dy, rows, cols);
        CurlModel { a, b, d }
    }
    fn rms(&self, theta_deg: f64) -> f64 {
        let (s, c) = theta_deg.to_radians().sin_cos();
        (c * c * self.a + 2.0 * c * s * self.b + s * s * self.d).max(0.0).sqrt()
    }
    /// (best angle in [0, 180), its RMS curl, the worst RMS curl): 1 degree steps, then a
    /// golden-section search within +-1 degree of the best step.
    fn search(&self) -> (f64, f64, f64) {
        let (mut best, mut worst) = ((0.0, f64::INFINITY), 0f64);
        for i in 0..180 {
            let r = self.rms(i as f64);
            if r < best.1 {
                best = (i as f64, r);
            }
            worst = worst.max(r);
        }
        let (mut lo, mut hi) = (best.0 - 1.0, best.0 + 1.0);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..60 {
            let (m1, m2) = (hi - g * (hi - lo), lo + g * (hi - lo));
            if self.rms(m1) < self.rms(m2) {
                hi = m2;
            } else {
                lo = m1;
            }
        }
        let t = 0.5 * (lo + hi);
        (t.rem_euclid(180.0), self.rms(t), worst)
    }
}

/// What the DPC step does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DpcOptions {
    /// Rotation in degrees (None: found from the curl, with the sign rule).
    pub rotation_deg: Option<f64>,
    /// Detector x mirrored (None: the flip with the smaller curl).
    pub flip: Option<bool>,
    /// Subtract a least-squares descan plane.
    pub descan: bool,
}

/// Result of [`dpc`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct DpcResult {
    pub rows: usize,
    pub cols: usize,
    /// iCoM phase image (rows x cols; NaN where there is no data).
    #[serde(skip)]
    pub phase: Vec<f32>,
    /// Corrected CoM field in the scan frame (detector px).
    #[serde(skip)]
    pub com_x: Vec<f32>,
    #[serde(skip)]
    pub com_y: Vec<f32>,
    pub rotation_deg: f64,
    pub flip: bool,
    /// Descan planes of the detector CoM x and y (None when not removed).
    pub descan: Option<[Plane; 2]>,
    /// RMS curl at the chosen orientation and the worst over all angles (same flip).
    pub curl_rms: f64,
    pub curl_worst_rms: f64,
    /// curl_rms / curl_worst_rms (0 = perfectly curl-free; near 1 = no preferred angle).
    pub curl_ratio: f64,
    /// Whether rotation and flip were found (false: given).
    pub rotation_found: bool,
    pub flip_found: bool,
}

/// DPC of detector CoM images `dx`, `dy` (rows x cols, NaN = no data).
pub fn dpc(dx: &[f32], dy: &[f32], rows: usize, cols: usize, opts: &DpcOptions) -> Result<DpcResult> {
    if rows < 2 || cols < 2 {
        return Err(Error::Invalid(format!(
            "DPC needs a 2-D scan of at least 2x2 positions; this scan is {rows}x{cols}"
        )));
    }
    if dx.len() != rows * cols || dy.len() != rows * cols {
        return Err(Error::Invalid("CoM images do not match the scan shape".into()));
    }
    let (mut dx, mut dy) = (dx.to_vec(), dy.to_vec());
    let descan = opts.descan.then(|| {
        let (px, py) = (fit_plane(&dx, rows, cols), fit_plane(&dy, rows, cols));
        subtract_plane(&mut dx, rows, cols, &px);
        subtract_plane(&mut dy, rows, cols, &py);
        [px, py]
    });
    // missing positions count as no shift
    for v in dx.iter_mut().chain(dy.iter_mut()) {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
    let flips: Vec<bool> = match opts.flip {
        Some(f) => vec![f],
        None => vec![false, true],
    };
    // (flip, angle, rms, worst)
    let mut best: Option<(bool, f64, f64, f64)> = None;
    for f in flips {
        let m = CurlModel::new(&dx, &dy, rows, cols, f);
        let (t, r, w) = match opts.rotation_deg {
            Some(t) => (t, m.rms(t), m.search().2),
            None => m.search(),
        };
        if best.is_none_or(|b| r < b.2) {
            best = Some((f, t, r, w));
        }
    }
    let (flip, mut theta, curl, worst) = best.expect("at least one flip");
    let (mut vx, mut vy) = to_scan_frame(&dx, &dy, theta, flip);
    let mut phase = icom(&vx, &vy, rows, cols);
    if opts.rotation_deg.is_none() && skewness(&phase) < 0.0 {
        theta += 180.0;
        for v in vx.iter_mut().chain(vy.iter_mut()).chain(phase.iter_mut()) {
            *v = -*v;
        }
    }
    Ok(DpcResult {
        rows,
        cols,
        phase,
        com_x: vx,
        com_y: vy,
        rotation_deg: theta.rem_euclid(360.0),
        flip,
        descan,
        curl_rms: curl,
        curl_worst_rms: worst,
        curl_ratio: if worst > 0.0 { curl / worst } else { 0.0 },
        rotation_found: opts.rotation_deg.is_none(),
        flip_found: opts.flip.is_none(),
    })
}

/// Sample skewness of the finite values.
pub fn skewness(v: &[f32]) -> f64 {
    let f: Vec<f64> = v.iter().filter(|x| x.is_finite()).map(|&x| x as f64).collect();
    let n = f.len().max(1) as f64;
    let m = f.iter().sum::<f64>() / n;
    let m2 = f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    let m3 = f.iter().map(|x| (x - m).powi(3)).sum::<f64>() / n;
    if m2 > 0.0 { m3 / m2.powf(1.5) } else { 0.0 }
}

/// In-place 2-D FFT of a rows x cols complex image (unnormalised both ways).
fn fft2(buf: &mut [Complex64], rows: usize, cols: usize, inverse: bool) {
    let mut planner = rustfft::FftPlanner::<f64>::new();
    let (fr, fc) = if inverse {
        (planner.plan_fft_inverse(cols), planner.plan_fft_inverse(rows))
    } else {
        (planner.plan_fft_forward(cols), planner.plan_fft_forward(rows))
    };
    buf.par_chunks_mut(cols).for_each(|r| fr.process(r));
    let mut t = vec![Complex64::default(); rows * cols];
    transpose::transpose(buf, &mut t, cols, rows);
    t.par_chunks_mut(rows).for_each(|c| fc.process(c));
    transpose::transpose(&t, buf, rows, cols);
}

/// Frequency (cycles per sample) of FFT index `i` of `n`.
fn freq(i: usize, n: usize) -> f64 {
    let k = if i <= n / 2 { i as f64 } else { i as f64 - n as f64 };
    k / n as f64
}

/// Integrated CoM: the potential whose gradient best matches (vx, vy) (see the module docs).
pub fn icom(vx: &[f32], vy: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let (pr, pc) = (2 * rows, 2 * cols);
    let mut fx = vec![Complex64::default(); pr * pc];
    let mut fy = vec![Complex64::default(); pr * pc];
    for y in 0..pr {
        let (sy, my) = if y < rows { (y, 1.0) } else { (pr - 1 - y, -1.0) };
        for x in 0..pc {
            let (sx, mx) = if x < cols { (x, 1.0) } else { (pc - 1 - x, -1.0) };
            let i = sy * cols + sx;
            let (a, b) = (vx[i] as f64, vy[i] as f64);
            fx[y * pc + x] = Complex64::new(if a.is_finite() { a * mx } else { 0.0 }, 0.0);
            fy[y * pc + x] = Complex64::new(if b.is_finite() { b * my } else { 0.0 }, 0.0);
        }
    }
    fft2(&mut fx, pr, pc, false);
    fft2(&mut fy, pr, pc, false);
    let two_pi_i = Complex64::new(0.0, 2.0 * std::f64::consts::PI);
    for y in 0..pr {
        let ky = freq(y, pr);
        for x in 0..pc {
            let kx = freq(x, pc);
            let k2 = kx * kx + ky * ky;
            let i = y * pc + x;
            fx[i] = if k2 > 0.0 { (fx[i] * kx + fy[i] * ky) / (two_pi_i * k2) } else { Complex64::default() };
        }
    }
    fft2(&mut fx, pr, pc, true);
    let norm = (pr * pc) as f64;
    let mut out = Vec::with_capacity(rows * cols);
    for y in 0..rows {
        for x in 0..cols {
            let i = y * cols + x;
            out.push(if vx[i].is_finite() && vy[i].is_finite() { (fx[y * pc + x].re / norm) as f32 } else { f32::NAN });
        }
    }
    out
}

/// A pixel of the CoM mask: flat index, weight, column, row, and for a bad pixel the good
/// neighbours whose median replaces it.
struct MaskPx {
    i: usize,
    w: f64,
    x: f64,
    y: f64,
    repair: Option<Vec<usize>>,
}

fn mask_pixels(weights: &[f32], flags: Option<&[bool]>, rows: usize, cols: usize) -> Vec<MaskPx> {
    let mut out = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let (y, x) = (i / cols, i % cols);
        let repair = flags.filter(|f| f[i]).map(|f| {
            let mut nb = Vec::new();
            for yy in y.saturating_sub(1)..(y + 2).min(rows) {
                for xx in x.saturating_sub(1)..(x + 2).min(cols) {
                    let j = yy * cols + xx;
                    if !f[j] {
                        nb.push(j);
                    }
                }
            }
            nb
        });
        out.push(MaskPx { i, w: w as f64, x: x as f64, y: y as f64, repair });
    }
    out
}

/// Centre of mass of every frame restricted to detector `weights` (rows x cols, 0 = outside),
/// relative to `origin` (row, col), with the pixels flagged in `bad` replaced by the median of
/// their good neighbours. Returns (com_x, com_y) over the scan; NaN where there is no frame or
/// no counts inside the mask.
pub fn masked_com(
    ds: &dyn Dataset,
    weights: &[f32],
    bad: Option<&[bool]>,
    origin: (f32, f32),
    budget: u64,
    progress: &Progress,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (rows, cols) = ds.det();
    if weights.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "mask has {} values, the detector has {rows}x{cols} = {} pixels",
            weights.len(),
            rows * cols
        )));
    }
    let px = mask_pixels(weights, bad, rows, cols);
    let n = ds.scan().positions();
    let present = ds.positions_present().min(n);
    let block = crate::compute::overview::block_len(ds, budget, rayon::current_num_threads()).max(1);
    progress.set_total(present as u64);
    let fb = (ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64;
    let starts: Vec<usize> = (0..present).step_by(block).collect();
    let parts: Vec<Result<Vec<(f32, f32)>>> = starts
        .par_iter()
        .map_init(
            || (FrameBuf::new(ds.info().pixel_type), ReadScratch::default()),
            |(buf, scratch), &s| {
                progress.check()?;
                let cnt = block.min(present - s);
                ds.read_positions(s, cnt, buf, scratch)?;
                let npx = rows * cols;
                let out = (0..cnt).map(|k| frame_com(buf, k * npx, &px, origin)).collect();
                progress.add(cnt as u64, cnt as u64 * fb);
                Ok(out)
            },
        )
        .collect();
    let (mut cx, mut cy) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    for (s, part) in starts.iter().zip(parts) {
        for (k, (x, y)) in part?.into_iter().enumerate() {
            cx[s + k] = x;
            cy[s + k] = y;
        }
    }
    Ok((cx, cy))
}

fn frame_com(buf: &FrameBuf, off: usize, px: &[MaskPx], origin: (f32, f32)) -> (f32, f32) {
    let (mut s, mut sx, mut sy) = (0f64, 0f64, 0f64);
    let mut nb = Vec::with_capacity(9);
    for p in px {
        let v = match &p.repair {
            None => buf.get_u32(off + p.i) as f64,
            Some(idx) => {
                nb.clear();
                nb.extend(idx.iter().map(|&j| buf.get_u32(off + j) as f64));
                nb.sort_unstable_by(|a, b| a.total_cmp(b));
                match nb.len() {
                    0 => 0.0,
                    l if l % 2 == 1 => nb[l / 2],
                    l => 0.5 * (nb[l / 2 - 1] + nb[l / 2]),
                }
            }
        };
        let wv = p.w * v;
        s += wv;
        sx += wv * p.x;
        sy += wv * p.y;
    }
    if s > 0.0 { ((sx / s - origin.1 as f64) as f32, (sy / s - origin.0 as f64) as f32) } else { (f32::NAN, f32::NAN) }
}

/// Detector weights of a disk (`inner` = 0) or annulus around `center` (row, col).
pub fn annulus_mask(rows: usize, cols: usize, center: (f32, f32), inner: f32, outer: f32) -> Vec<f32> {
    let mut m = vec![0f32; rows * cols];
    for y in 0..rows {
        for x in 0..cols {
            let r = ((y as f32 - center.0).powi(2) + (x as f32 - center.1).powi(2)).sqrt();
            if r >= inner && r <= outer {
                m[y * cols + x] = 1.0;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth positive potential (Gaussian "atoms") and its exact gradient.
    fn phase_object(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut p, mut gx, mut gy) = (vec![0f32; rows * cols], vec![0f32; rows * cols], vec![0f32; rows * cols]);
        let atoms = [(8.0, 9.0), (20.0, 30.0), (33.0, 14.0), (12.0, 36.0), (30.0, 40.0)];
        for y in 0..rows {
            for x in 0..cols {
                for &(ay, ax) in &atoms {
                    let (ddy, ddx) = (y as f64 - ay, x as f64 - ax);
                    let e = (-(ddx * ddx + ddy * ddy) / (2.0 * 9.0)).exp();
                    p[y * cols + x] += e as f32;
                    gx[y * cols + x] += (-ddx / 9.0 * e) as f32;
                    gy[y * cols + x] += (-ddy / 9.0 * e) as f32;
                }
            }
        }
        (p, gx, gy)
    }

    fn corr(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
        let (mut s, mut sa, mut sb) = (0f64, 0f64, 0f64);
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (*x as f64 - ma, *y as f64 - mb);
            s += x * y;
            sa += x * x;
            sb += y * y;
        }
        s / (sa * sb).sqrt()
    }

    /// Detector CoM seen through rotation `t` and flip `f`: d = F R(-t) g.
    fn detector_view(gx: &[f32], gy: &[f32], t: f64, f: bool) -> (Vec<f32>, Vec<f32>) {
        let (rx, ry) = to_scan_frame(gx, gy, -t, false);
        let s = if f { -1.0 } else { 1.0 };
        (rx.iter().map(|v| v * s).collect(), ry)
    }

    #[test]
    fn plane_fit_recovers_a_plane() {
        let (r, c) = (5, 7);
        let img: Vec<f32> = (0..r * c).map(|i| (1.5 + 0.25 * (i % c) as f64 - 0.5 * (i / c) as f64) as f32).collect();
        let p = fit_plane(&img, r, c);
        assert!((p.a - 1.5).abs() < 1e-5 && (p.b_col - 0.25).abs() < 1e-6 && (p.c_row + 0.5).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn icom_integrates_a_gradient() {
        let (r, c) = (44, 52);
        let (p, gx, gy) = phase_object(r, c);
        let phi = icom(&gx, &gy, r, c);
        assert!(corr(&phi, &p) > 0.99, "corr {}", corr(&phi, &p));
    }

    #[test]
    fn rotation_flip_and_sign_are_found() {
        let (r, c) = (44, 52);
        let (p, gx, gy) = phase_object(r, c);
        for (t, f) in [(0.0, false), (37.0, false), (-120.0, true), (200.0, true)] {
            let (dx, dy) = detector_view(&gx, &gy, t, f);
            // (a descan plane would also take the linear part of grad(phi): see tests/dpc.rs)
            let res = dpc(&dx, &dy, r, c, &DpcOptions::default()).unwrap();
            let dt = (res.rotation_deg - f64::rem_euclid(t, 360.0) + 540.0).rem_euclid(360.0) - 180.0;
            assert!(dt.abs() < 0.5, "t {t} f {f}: found {} ({dt})", res.rotation_deg);
            assert_eq!(res.flip, f);
            assert!(corr(&res.phase, &p) > 0.97, "t {t}: corr {}", corr(&res.phase, &p));
            assert!(res.curl_ratio < 0.1, "{}", res.curl_ratio);
        }
    }

    #[test]
    fn one_row_scan_is_refused() {
        let e = dpc(&[0.0; 5], &[0.0; 5], 1, 5, &DpcOptions::default()).unwrap_err();
        assert!(e.to_string().contains("1x5"), "{e}");
    }
}
