//! EWPC (exponent-weighted power cepstrum) of a diffraction pattern: |FFT(log max(DP, eps))|,
//! fftshifted so the zero quefrency sits at (rows / 2, cols / 2). The log turns the lattice of
//! Bragg spots into a sum of periodic terms, so a spot lattice of spacing d px on an N px
//! detector gives EWPC peaks N / d px from the centre (a real-space lattice of peaks used for
//! strain mapping; py4D-browser's EWPC, Padgett et al. 2020).
//!
//! A 2-D Hann window (from [`diffractogram::hann`]) is applied after the log by default, as the
//! PC-STEM reference code does, so the pattern edges do not add streaks through the centre.

use super::diffractogram::hann;
use crate::error::{Error, Result};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// EWPC options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwpcOptions {
    /// The floor before the log, as a fraction of the pattern maximum (default 1e-3), unless
    /// `eps_abs` is given.
    pub eps_rel: f32,
    /// An absolute floor (counts) instead of `eps_rel`.
    pub eps_abs: Option<f32>,
    /// Apply a 2-D Hann window to the log pattern (default true).
    pub window: bool,
}

impl Default for EwpcOptions {
    fn default() -> Self {
        EwpcOptions { eps_rel: 1e-3, eps_abs: None, window: true }
    }
}

/// The EWPC of the row-major `rows` x `cols` pattern: `rows * cols` values, zero quefrency at
/// (rows / 2, cols / 2). Non-finite pixels count as the floor. Err for a shape mismatch, an
/// empty pattern or one with no positive pixel (no floor to take the log of).
pub fn ewpc(pattern: &[f32], rows: usize, cols: usize, opts: &EwpcOptions) -> Result<Vec<f32>> {
    if rows == 0 || cols == 0 || pattern.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "EWPC: a {rows}x{cols} pattern needs {} values, got {}",
            rows * cols,
            pattern.len()
        )));
    }
    let max = pattern.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let eps = opts.eps_abs.unwrap_or(max * opts.eps_rel);
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::Invalid(format!(
            "EWPC: the floor {eps} is not positive (pattern maximum {max}): nothing to take the log of"
        )));
    }
    let (wr, wc) = if opts.window { (hann(rows), hann(cols)) } else { (vec![1.0; rows], vec![1.0; cols]) };
    let mut buf: Vec<Complex32> = pattern
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let v = if v.is_finite() { v.max(eps) } else { eps };
            Complex32::new(v.ln() * wr[i / cols] * wc[i % cols], 0.0)
        })
        .collect();
    let mut planner = FftPlanner::<f32>::new();
    let row_fft = planner.plan_fft_forward(cols);
    for r in buf.chunks_exact_mut(cols) {
        row_fft.process(r);
    }
    let col_fft = planner.plan_fft_forward(rows);
    let mut col = vec![Complex32::default(); rows];
    let mut out = vec![0f32; rows * cols];
    for c in 0..cols {
        for (r, v) in col.iter_mut().enumerate() {
            *v = buf[r * cols + c];
        }
        col_fft.process(&mut col);
        for (r, v) in col.iter().enumerate() {
            out[((r + rows / 2) % rows) * cols + (c + cols / 2) % cols] = v.norm();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A square lattice of Gaussian spots of spacing `d` on an `n` x `n` detector, on a weak background.
    fn lattice(n: usize, d: usize) -> Vec<f32> {
        (0..n * n)
            .map(|i| {
                let (y, x) = ((i / n) as f32, (i % n) as f32);
                let (dy, dx) = ((y % d as f32) - d as f32 / 2.0, (x % d as f32) - d as f32 / 2.0);
                0.5 + 1000.0 * (-(dy * dy + dx * dx) / 2.0).exp()
            })
            .collect()
    }

    #[test]
    fn spot_lattice_gives_peaks_at_the_lattice_frequency() {
        for (n, d) in [(64usize, 8usize), (128, 16), (64, 4)] {
            for window in [true, false] {
                let e = ewpc(&lattice(n, d), n, n, &EwpcOptions { window, ..Default::default() }).unwrap();
                let c = n / 2;
                let f = n / d;
                let at = |r: usize, cc: usize| e[r * n + cc];
                // the strongest value off the centre cross region is at one of (c +- f, c) / (c, c +- f)
                let mut best = (0usize, 0usize, 0f32);
                for r in 0..n {
                    for cc in 0..n {
                        let dist = (r as i64 - c as i64).abs().max((cc as i64 - c as i64).abs());
                        if dist >= 2 && at(r, cc) > best.2 {
                            best = (r, cc, at(r, cc));
                        }
                    }
                }
                let peaks = [(c - f, c), (c + f, c), (c, c - f), (c, c + f)];
                assert!(peaks.contains(&(best.0, best.1)), "n={n} d={d} window={window}: best at {best:?}");
                // the four peaks are symmetric and well above the midway between them
                let p = at(c, c + f);
                assert!((at(c, c - f) - p).abs() < 1e-3 * p && (at(c + f, c) - p).abs() < 1e-3 * p);
                assert!(at(c, c + f / 2) < 0.2 * p, "n={n} d={d}: midway {} vs peak {p}", at(c, c + f / 2));
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(ewpc(&[1.0; 5], 2, 3, &EwpcOptions::default()).unwrap_err().to_string().contains("2x3"));
        assert!(ewpc(&[0.0; 6], 2, 3, &EwpcOptions::default()).unwrap_err().to_string().contains("not positive"));
        assert!(ewpc(&[0.0; 6], 2, 3, &EwpcOptions { eps_abs: Some(1.0), ..Default::default() }).is_ok());
    }
}
