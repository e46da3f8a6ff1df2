//! The parallax map from pairs of detector pixels, coarse to fine.
//!
//! With s_K = A K (linear in K: defocus, astigmatism, scan rotation), the images of pixels K and
//! K + D differ by the same shift A D whatever K is: in the scan-axes FFT,
//! G(Q, K + D) conj(G(Q, K)) = |O(Q) T(Q)|^2 exp(-2 pi i Q.A D) with a K-independent weight.
//! Summed over every pair of disk pixels D apart, the cross-spectrum's inverse transform peaks at
//! A D with the signal of the whole disk (noise, independent between pixels, averages out).
//! The ladder: first D of one or two detector pixels, searched within [`FIRST_WINDOW`] scan pixels
//! of zero (a lattice period is longer than that, so a crystal's translations cannot be taken
//! for the shift); then D doubling up to the disk radius, each searched within [`WINDOW`] scan
//! pixels of the shift the model fitted so far predicts. A is the least-squares fit of all
//! measured (D, A D) pairs with outlier rejection. A measurement counts when its peak stands
//! [`Z_MIN`] times above the rms of the null map: the same pairs summed with pseudo-random
//! signs, which cancels the coherent signal but keeps the noise (for data without structure the
//! two maps have the same distribution).

use super::align::{Fft2, Work, peak_in_window};
use num_complex::Complex32;
use rayon::prelude::*;

/// Search half-width (scan pixels) around zero for the first, shortest pairs.
pub const FIRST_WINDOW: isize = 4;
/// Search half-width (scan pixels) around the predicted shift for the longer pairs.
pub const WINDOW: isize = 2;
/// A correlation peak must stand this many times above the rms of the null map.
pub const Z_MIN: f64 = 8.0;

/// Each disk pixel's windowed, mean-normalised spectrum restricted to a low-pass set of Q.
pub(crate) struct LowSpectra {
    /// Positions (unshifted full grid) of the Q kept.
    pub(crate) idx: Vec<usize>,
    /// Per disk pixel, the spectrum at `idx`.
    pub(crate) data: Vec<Vec<Complex32>>,
}

impl LowSpectra {
    /// The Q set for a qr x qc scan holding at most `max_q` frequencies: all of them, or the
    /// centred low-pass box that fits.
    pub(crate) fn new(qr: usize, qc: usize, max_q: usize, members: usize) -> LowSpectra {
        let all = qr * qc;
        let idx = if all <= max_q {
            (0..all).collect()
        } else {
            let f = (max_q as f64 / all as f64).sqrt();
            let hy = ((qr as f64 * f / 2.0).floor() as usize).max(1).min(qr / 2);
            let hx = ((qc as f64 * f / 2.0).floor() as usize).max(1).min(qc / 2);
            let keep = |i: usize, n: usize, h: usize| i <= h || i + h >= n;
            let mut v = Vec::new();
            for i in (0..qr).filter(|&i| keep(i, qr, hy)) {
                for j in (0..qc).filter(|&j| keep(j, qc, hx)) {
                    v.push(i * qc + j);
                }
            }
            v
        };
        LowSpectra { idx, data: vec![Vec::new(); members] }
    }
    /// Keep pixel `i`'s windowed spectrum `w` (full grid) scaled by `scale`.
    pub(crate) fn put(&mut self, i: usize, w: &[Complex32], scale: f32) {
        self.data[i] = self.idx.iter().map(|&q| w[q] * scale).collect();
    }
}

/// One measured pair shift.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairShift {
    /// Pixel offset D (K rows, K cols).
    pub d: (isize, isize),
    /// Measured A D (scan pixels, dy dx).
    pub shift: (f64, f64),
    /// Peak height over the rms of the null map (the pairs with random signs).
    pub z: f64,
    /// Pearson correlation at the peak.
    pub quality: f64,
    pub pairs: usize,
    /// Kept by the fit (not an outlier).
    pub used: bool,
}

/// The ladder's result: A (scan px per K pixel; rows dy, dx; columns K row, K col).
#[derive(Debug, Clone)]
pub(crate) struct PairFit {
    pub(crate) a: [[f64; 2]; 2],
    pub(crate) shifts: Vec<PairShift>,
}

/// Why no parallax was found.
pub(crate) enum NoFit {
    /// The shortest pairs do not correlate: no structure (vacuum, a uniform film) or only noise.
    NoCorrelation { best_z: f64 },
}

struct Ctx<'a> {
    ls: &'a LowSpectra,
    grid: Vec<Option<usize>>,
    kc: usize,
    kr: usize,
    members: &'a [(usize, usize)],
    fft: &'a Fft2,
}

/// Run the ladder over the disk pixels `members` (K coordinates in a kr x kc grid).
pub(crate) fn fit(
    ls: &LowSpectra,
    members: &[(usize, usize)],
    kgrid: (usize, usize),
    radius_k: f64,
    fft: &Fft2,
) -> Result<PairFit, NoFit> {
    let (kr, kc) = kgrid;
    let mut grid = vec![None; kr * kc];
    for (i, &(y, x)) in members.iter().enumerate() {
        grid[y * kc + x] = Some(i);
    }
    let ctx = Ctx { ls, grid, kc, kr, members, fft };
    let d0: isize = if radius_k >= 8.0 { 2 } else { 1 };
    let lim = (FIRST_WINDOW).min((fft.rows.min(fft.cols) / 4) as isize).max(1);
    let mut shifts: Vec<PairShift> =
        directions(d0).into_iter().filter_map(|d| measure(&ctx, d, (0.0, 0.0), lim)).collect();
    let good = shifts.iter().filter(|s| s.z >= Z_MIN).count();
    if good < 2 {
        let best_z = shifts.iter().map(|s| s.z).fold(0.0, f64::max);
        return Err(NoFit::NoCorrelation { best_z });
    }
    let mut a = refit(&mut shifts);
    let mut d = d0 * 2;
    while (d as f64) <= radius_k {
        for dir in directions(d) {
            let p = apply(&a, dir);
            if let Some(m) = measure(&ctx, dir, p, WINDOW) {
                shifts.push(m);
            }
        }
        a = refit(&mut shifts);
        d = if d < 4 { d + 1 } else { (d as f64 * 1.5).round() as isize };
    }
    Ok(PairFit { a, shifts })
}

/// Offsets along the rows, the columns and both diagonals, about `d` pixels long.
fn directions(d: isize) -> Vec<(isize, isize)> {
    let g = ((d as f64) / std::f64::consts::SQRT_2).round().max(1.0) as isize;
    vec![(d, 0), (0, d), (g, g), (g, -g)]
}

fn apply(a: &[[f64; 2]; 2], d: (isize, isize)) -> (f64, f64) {
    let (y, x) = (d.0 as f64, d.1 as f64);
    (a[0][0] * y + a[0][1] * x, a[1][0] * y + a[1][1] * x)
}

/// Least squares of s = A D over the significant measurements, rejecting outliers one at a
/// time: the measurement farthest from the fit of all the others (leave-one-out residual) goes
/// when that residual exceeds max(0.5 px, 4 robust sd of those residuals); marked `used = false`.
fn refit(shifts: &mut [PairShift]) -> [[f64; 2]; 2] {
    for s in shifts.iter_mut() {
        s.used = s.z >= Z_MIN;
    }
    loop {
        let used: Vec<usize> = (0..shifts.len()).filter(|&i| shifts[i].used).collect();
        if used.len() <= 3 {
            break;
        }
        let loo: Vec<f64> = used
            .iter()
            .map(|&i| {
                shifts[i].used = false;
                let a = lsq(shifts);
                shifts[i].used = true;
                let p = apply(&a, shifts[i].d);
                (shifts[i].shift.0 - p.0).hypot(shifts[i].shift.1 - p.1)
            })
            .collect();
        let mut sorted = loo.clone();
        sorted.sort_by(|x, y| x.total_cmp(y));
        let thr = (4.0 * 1.4826 * sorted[sorted.len() / 2]).max(0.5);
        let (worst, r) = loo.iter().enumerate().fold((0, 0.0), |b, (k, &r)| if r > b.1 { (k, r) } else { b });
        if r <= thr {
            break;
        }
        shifts[used[worst]].used = false;
    }
    lsq(shifts)
}

/// Least squares of s = A D over the used measurements (2x2 normal equations per component).
fn lsq(shifts: &[PairShift]) -> [[f64; 2]; 2] {
    let (mut m00, mut m01, mut m11) = (0.0, 0.0, 0.0);
    let (mut vy, mut vx) = ([0.0; 2], [0.0; 2]);
    for s in shifts.iter().filter(|s| s.used) {
        let (y, x) = (s.d.0 as f64, s.d.1 as f64);
        m00 += y * y;
        m01 += y * x;
        m11 += x * x;
        vy[0] += y * s.shift.0;
        vy[1] += x * s.shift.0;
        vx[0] += y * s.shift.1;
        vx[1] += x * s.shift.1;
    }
    let det = m00 * m11 - m01 * m01;
    if det.abs() < 1e-12 {
        return [[0.0; 2]; 2];
    }
    let solve = |v: [f64; 2]| [(m11 * v[0] - m01 * v[1]) / det, (m00 * v[1] - m01 * v[0]) / det];
    [solve(vy), solve(vx)]
}

/// The summed cross-spectrum of the pairs D apart, its correlation map and the peak near `p`
/// (within `w` scan pixels). None when no pair exists.
fn measure(ctx: &Ctx, d: (isize, isize), p: (f64, f64), w: isize) -> Option<PairShift> {
    let pairs: Vec<(usize, usize)> = ctx
        .members
        .iter()
        .enumerate()
        .filter_map(|(i, &(y, x))| {
            let (yy, xx) = (y as isize + d.0, x as isize + d.1);
            if yy < 0 || xx < 0 || yy >= ctx.kr as isize || xx >= ctx.kc as isize {
                return None;
            }
            ctx.grid[yy as usize * ctx.kc + xx as usize].map(|j| (i, j))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let m = ctx.ls.idx.len();
    // Fixed blocks summed in order: the result does not depend on how rayon splits the work.
    let parts: Vec<_> = pairs
        .par_chunks(64)
        .map(|ch| {
            let (mut acc, mut nul) = (vec![Complex32::default(); m], vec![Complex32::default(); m]);
            let (mut ea, mut eb) = (0f64, 0f64);
            for &(i, j) in ch {
                let (gi, gj) = (&ctx.ls.data[i], &ctx.ls.data[j]);
                let sign = if mix(((i as u64) << 32) | j as u64) & 1 == 0 { 1.0 } else { -1.0 };
                for (((a, n), x), y) in acc.iter_mut().zip(nul.iter_mut()).zip(gj).zip(gi) {
                    let v = x * y.conj();
                    *a += v;
                    *n += v * sign;
                }
                ea += gi.iter().map(|c| c.norm_sqr() as f64).sum::<f64>();
                eb += gj.iter().map(|c| c.norm_sqr() as f64).sum::<f64>();
            }
            (acc, nul, ea, eb)
        })
        .collect();
    let (mut cross, mut null, mut ea, mut eb) =
        (vec![Complex32::default(); m], vec![Complex32::default(); m], 0f64, 0f64);
    for (b, nb, fa, fb) in parts {
        cross.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
        null.iter_mut().zip(&nb).for_each(|(x, y)| *x += y);
        ea += fa;
        eb += fb;
    }
    let map = correlation_map(ctx, &cross);
    let null_rms = {
        let nm = correlation_map(ctx, &null);
        (nm.iter().map(|v| v * v).sum::<f64>() / nm.len() as f64).sqrt()
    };
    let fft = ctx.fft;
    let (shift, peak) = peak_near(&map, fft.rows, fft.cols, p, w);
    let z = if null_rms > 0.0 { peak / null_rms } else { 0.0 };
    let norm = (ea * eb).sqrt();
    Some(PairShift {
        d,
        shift,
        z,
        quality: if norm > 0.0 { peak / norm } else { 0.0 },
        pairs: pairs.len(),
        used: false,
    })
}

/// The maximum of the (periodic) map within `w` pixels of `p`, refined to sub-pixel.
fn peak_near(map: &[f64], rows: usize, cols: usize, p: (f64, f64), w: isize) -> ((f64, f64), f64) {
    let (r, c) = (rows as isize, cols as isize);
    let at = |y: isize, x: isize| map[(y.rem_euclid(r) * c + x.rem_euclid(c)) as usize];
    peak_in_window(at, p, (w, w))
}

/// The inverse transform (real part) of a low-passed spectrum on the full scan grid.
fn correlation_map(ctx: &Ctx, spec: &[Complex32]) -> Vec<f64> {
    let mut full = vec![Complex32::default(); ctx.fft.n()];
    for (&q, c) in ctx.ls.idx.iter().zip(spec) {
        full[q] = *c;
    }
    ctx.fft.run_w(&mut full, true, &mut Work::default());
    full.iter().map(|c| c.re as f64).collect()
}

/// A 64-bit mixing function (splitmix64's finaliser): the null map's pseudo-random signs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsq_recovers_a_and_rejects_an_outlier() {
        let a = [[0.4, 0.2], [-0.2, 0.4]];
        let mut v: Vec<PairShift> = [(1, 0), (0, 1), (1, 1), (1, -1), (4, 0), (0, 4), (3, 3), (3, -3)]
            .iter()
            .map(|&d| PairShift { d, shift: apply(&a, d), z: 20.0, quality: 0.5, pairs: 10, used: true })
            .collect();
        v[5].shift.0 += 3.0;
        let got = refit(&mut v);
        for i in 0..2 {
            for j in 0..2 {
                assert!((got[i][j] - a[i][j]).abs() < 1e-9, "{got:?}");
            }
        }
        assert!(!v[5].used && v.iter().filter(|s| s.used).count() == 7);
    }

    #[test]
    fn low_pass_box_fits_the_limit() {
        let ls = LowSpectra::new(64, 48, 1000, 3);
        assert!(ls.idx.len() <= 1000 && ls.idx.len() > 500, "{}", ls.idx.len());
        assert!(ls.idx.contains(&0) && ls.idx.contains(&(63 * 48 + 47)));
        assert_eq!(LowSpectra::new(8, 8, 1000, 1).idx.len(), 64);
    }
}
