//! Per-pixel alignment pieces: 2-D FFTs over the scan, the apodising window, the windowed
//! spectrum of one detector pixel's image, cross-correlation with sub-pixel peak refinement and
//! the Fourier shift of a spectrum.

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Forward and inverse 2-D FFT plans over a rows x cols scan (unnormalised, unshifted).
pub(crate) struct Fft2 {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    plans: [Arc<dyn Fft<f32>>; 4],
    scratch_len: usize,
}

/// Per-thread buffers of the transforms.
#[derive(Default)]
pub(crate) struct Work {
    tmp: Vec<Complex32>,
    scratch: Vec<Complex32>,
    pub(crate) b: Vec<Complex32>,
}

impl Fft2 {
    pub(crate) fn new(rows: usize, cols: usize) -> Fft2 {
        let mut pl = FftPlanner::<f32>::new();
        let plans = [
            pl.plan_fft_forward(cols),
            pl.plan_fft_forward(rows),
            pl.plan_fft_inverse(cols),
            pl.plan_fft_inverse(rows),
        ];
        let scratch_len = plans.iter().map(|p| p.get_inplace_scratch_len()).max().unwrap_or(0);
        Fft2 { rows, cols, plans, scratch_len }
    }
    pub(crate) fn n(&self) -> usize {
        self.rows * self.cols
    }
    /// In-place 2-D transform (forward: exp(-2 pi i), inverse: exp(+2 pi i), no 1/N).
    pub(crate) fn run(&self, buf: &mut [Complex32], inverse: bool, tmp: &mut Vec<Complex32>, scr: &mut Vec<Complex32>) {
        let (r, c) = (self.rows, self.cols);
        let o = if inverse { 2 } else { 0 };
        tmp.resize(r * c, Complex32::default());
        scr.resize(self.scratch_len, Complex32::default());
        self.plans[o].process_with_scratch(buf, scr);
        transpose::transpose(buf, tmp, c, r);
        self.plans[o + 1].process_with_scratch(tmp, scr);
        transpose::transpose(tmp, buf, r, c);
    }
    pub(crate) fn run_w(&self, buf: &mut [Complex32], inverse: bool, w: &mut Work) {
        self.run(buf, inverse, &mut w.tmp, &mut w.scratch)
    }
}

/// Separable Tukey window (flat middle, cosine edges over `frac` of each side).
pub(crate) fn tukey(rows: usize, cols: usize, frac: f64) -> Vec<f32> {
    let w1 = |n: usize| -> Vec<f64> {
        let m = ((n as f64) * frac).max(1.0);
        (0..n)
            .map(|i| {
                let d = (i as f64 + 0.5).min(n as f64 - i as f64 - 0.5);
                if d >= m { 1.0 } else { 0.5 - 0.5 * (std::f64::consts::PI * d / m).cos() }
            })
            .collect()
    };
    let (wy, wx) = (w1(rows), w1(cols));
    let mut w = Vec::with_capacity(rows * cols);
    for y in &wy {
        w.extend(wx.iter().map(|x| (y * x) as f32));
    }
    w
}

/// numpy.fft.ifftshift over both axes: from Q = 0 at (r/2, c/2) to Q = 0 at (0, 0) (the
/// reference for `Pixels::read`'s gather, which shifts on the way).
#[cfg(test)]
pub(crate) fn ifftshift2(src: &[Complex32], r: usize, c: usize, dst: &mut [Complex32]) {
    let (hr, hc) = (r / 2, c / 2);
    for i in 0..r {
        let si = (i + hr) % r;
        for j in 0..c {
            dst[i * c + j] = src[si * c + (j + hc) % c];
        }
    }
}

/// The windowed, mean-free spectrum of the image whose spectrum (unshifted) is `g`: the image
/// is transformed back, its mean removed, multiplied by `window` and transformed again, with
/// Q = 0 zeroed. Result in `out`; returns sum |out|^2.
pub(crate) fn windowed(g: &[Complex32], fft: &Fft2, window: &[f32], out: &mut Vec<Complex32>, w: &mut Work) -> f64 {
    let n = fft.n();
    out.clear();
    out.extend_from_slice(g);
    fft.run_w(out, true, w);
    let mean = out.iter().map(|c| c.re as f64).sum::<f64>() / n as f64;
    for (v, &wv) in out.iter_mut().zip(window) {
        *v = Complex32::new(((v.re as f64 - mean) * wv as f64) as f32, 0.0);
    }
    fft.run_w(out, false, w);
    out[0] = Complex32::default();
    out.iter().map(|c| c.norm_sqr() as f64).sum()
}

/// Shift and quality of one pixel against the reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peak {
    /// (dy, dx): the pixel's image is the reference moved by +shift.
    pub(crate) shift: (f64, f64),
    /// Pearson correlation of the windowed images at the peak.
    pub(crate) quality: f64,
}

/// Cross-correlate the windowed spectra `wk` (energy `ek`) and `wref` (energy `eref`); peak
/// searched within `max_lag` scan pixels of `centre`, refined to sub-pixel by a 3-point Gaussian
/// fit per axis.
pub(crate) fn correlate(
    wk: &[Complex32],
    ek: f64,
    wref: &[Complex32],
    eref: f64,
    fft: &Fft2,
    (centre, max_lag): ((f64, f64), (usize, usize)),
    w: &mut Work,
) -> Peak {
    let mut c = std::mem::take(&mut w.b);
    c.clear();
    c.extend(wk.iter().zip(wref).map(|(a, b)| a * b.conj()));
    fft.run_w(&mut c, true, w);
    let (r, cc) = (fft.rows as isize, fft.cols as isize);
    let at = |y: isize, x: isize| c[(y.rem_euclid(r) * cc + x.rem_euclid(cc)) as usize].re as f64;
    let ((sy, sx), v0) = peak_in_window(at, centre, (max_lag.0 as isize, max_lag.1 as isize));
    w.b = c;
    let norm = (ek * eref).sqrt();
    Peak { shift: (sy, sx), quality: if norm > 0.0 { v0 / norm } else { 0.0 } }
}

/// The maximum of `at` over the window `centre` +- `half` (rows, cols) and its sub-pixel
/// position (a parabola through the peak and its neighbours on each axis): ((y, x), value).
pub(crate) fn peak_in_window(
    at: impl Fn(isize, isize) -> f64,
    centre: (f64, f64),
    half: (isize, isize),
) -> ((f64, f64), f64) {
    let (cy, cx) = (centre.0.round() as isize, centre.1.round() as isize);
    let mut best = (f64::NEG_INFINITY, cy, cx);
    for y in cy - half.0..=cy + half.0 {
        for x in cx - half.1..=cx + half.1 {
            let v = at(y, x);
            if v > best.0 {
                best = (v, y, x);
            }
        }
    }
    let (v0, py, px) = best;
    let dy = refine(at(py - 1, px), v0, at(py + 1, px));
    let dx = refine(at(py, px - 1), v0, at(py, px + 1));
    ((py as f64 + dy, px as f64 + dx), v0)
}

/// Sub-pixel offset of a peak from three samples: Gaussian (log-parabola) when all are
/// positive, else a parabola; within +-0.5.
pub(crate) fn refine(m: f64, c: f64, p: f64) -> f64 {
    let d = if m > 0.0 && c > 0.0 && p > 0.0 {
        let (lm, lc, lp) = (m.ln(), c.ln(), p.ln());
        let den = lm - 2.0 * lc + lp;
        if den < 0.0 { 0.5 * (lm - lp) / den } else { 0.0 }
    } else {
        let den = m - 2.0 * c + p;
        if den < 0.0 { 0.5 * (m - p) / den } else { 0.0 }
    };
    d.clamp(-0.5, 0.5)
}

/// Spatial frequency (cycles per pixel) of unshifted index i of n (numpy fftfreq).
fn freq(i: usize, n: usize) -> f64 {
    let i = i as f64;
    let n_f = n as f64;
    if i < n_f / 2.0 || (n % 2 == 1 && i <= n_f / 2.0) { i / n_f } else { (i - n_f) / n_f }
}

/// acc += weight * g * exp(+2 pi i Q.s): adds the image of `g` moved by -s (aligned to the
/// reference when the image is the reference moved by +s).
pub(crate) fn add_shifted(acc: &mut [Complex32], g: &[Complex32], s: (f64, f64), weight: f64, fft: &Fft2) {
    let tau = 2.0 * std::f64::consts::PI;
    let py: Vec<Complex32> = (0..fft.rows)
        .map(|i| {
            let a = tau * freq(i, fft.rows) * s.0;
            Complex32::new((a.cos() * weight) as f32, (a.sin() * weight) as f32)
        })
        .collect();
    let px: Vec<Complex32> = (0..fft.cols)
        .map(|j| {
            let a = tau * freq(j, fft.cols) * s.1;
            Complex32::new(a.cos() as f32, a.sin() as f32)
        })
        .collect();
    for (i, row) in acc.chunks_exact_mut(fft.cols).enumerate() {
        let gr = &g[i * fft.cols..(i + 1) * fft.cols];
        for ((a, &v), &x) in row.iter_mut().zip(gr).zip(&px) {
            *a += v * py[i] * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_image(rows: usize, cols: usize, s: (f64, f64)) -> Vec<f32> {
        let mut v = vec![0f32; rows * cols];
        let blobs = [(10.3, 12.1, 1.5), (20.0, 10.0, 2.0), (12.5, 20.2, 1.2), (19.0, 19.0, 1.6)];
        for y in 0..rows {
            for x in 0..cols {
                let (fy, fx) = (y as f64 - s.0, x as f64 - s.1);
                v[y * cols + x] = blobs
                    .iter()
                    .map(|&(by, bx, sg)| (-((fy - by).powi(2) + (fx - bx).powi(2)) / (2.0 * sg * sg)).exp())
                    .sum::<f64>() as f32;
            }
        }
        v
    }

    fn spectrum(img: &[f32], fft: &Fft2) -> Vec<Complex32> {
        let mut g: Vec<Complex32> = img.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        let mut w = Work::default();
        fft.run_w(&mut g, false, &mut w);
        g
    }

    #[test]
    fn correlation_finds_subpixel_shift_with_sign() {
        let (r, c) = (32, 32);
        let fft = Fft2::new(r, c);
        let win = tukey(r, c, 0.2);
        let mut w = Work::default();
        let gref = spectrum(&blob_image(r, c, (0.0, 0.0)), &fft);
        let (mut wr, mut wk) = (Vec::new(), Vec::new());
        let er = windowed(&gref, &fft, &win, &mut wr, &mut w);
        for s in [(1.3, -2.6), (-0.4, 0.25), (0.0, 3.5)] {
            let g = spectrum(&blob_image(r, c, s), &fft);
            let ek = windowed(&g, &fft, &win, &mut wk, &mut w);
            let p = correlate(&wk, ek, &wr, er, &fft, ((0.0, 0.0), (8, 8)), &mut w);
            assert!((p.shift.0 - s.0).abs() < 0.12 && (p.shift.1 - s.1).abs() < 0.12, "{s:?} -> {:?}", p.shift);
            assert!(p.quality > 0.8, "quality {}", p.quality);
        }
    }

    #[test]
    fn add_shifted_moves_back() {
        let (r, c) = (32, 32);
        let fft = Fft2::new(r, c);
        let g = spectrum(&blob_image(r, c, (0.0, 0.0)), &fft);
        // moved by +3 rows, -2 cols (integer: exact circular shift)
        let g2 = spectrum(&blob_image(r, c, (3.0, -2.0)), &fft);
        let mut acc = vec![Complex32::default(); r * c];
        add_shifted(&mut acc, &g2, (3.0, -2.0), 1.0, &fft);
        let mut w = Work::default();
        fft.run_w(&mut acc, true, &mut w);
        let mut back = g.clone();
        fft.run_w(&mut back, true, &mut w);
        // compare away from the wrapped border
        for y in 6..26 {
            for x in 6..26 {
                let (a, b) = (acc[y * c + x].re / (r * c) as f32, back[y * c + x].re / (r * c) as f32);
                assert!((a - b).abs() < 1e-3, "({y},{x}) {a} vs {b}");
            }
        }
    }

    #[test]
    fn refine_is_exact_for_a_gaussian() {
        let g = |x: f64| (-(x - 0.3).powi(2) / 2.0).exp();
        assert!((refine(g(-1.0), g(0.0), g(1.0)) - 0.3).abs() < 1e-9);
        assert_eq!(refine(1.0, 1.0, 1.0), 0.0);
    }
}
