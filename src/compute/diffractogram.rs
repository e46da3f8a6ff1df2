//! The diffractogram of a 2-D image (a virtual image, or a rectangle of it): the mean is
//! subtracted, a 2-D Hann window applied, the image Fourier-transformed (rustfft) and the
//! magnitude shown as |F|^0.5 or ln(1 + |F|), fftshifted so the zero frequency is at
//! (rows / 2, cols / 2). Like mib-viewer's Ctrl+F and py4D-browser's FFT pane.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// How the magnitude is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magnitude {
    /// |F|^0.5 (py4D-browser's default).
    Sqrt,
    /// ln(1 + |F|).
    Log,
}

impl Magnitude {
    pub fn name(self) -> &'static str {
        match self {
            Magnitude::Sqrt => "|F|^0.5",
            Magnitude::Log => "log |F|",
        }
    }
}

/// The periodic Hann window of length `n`: w[i] = 0.5 - 0.5 cos(2 pi i / n). It sums to n / 2
/// (n > 1); a window of length 1 is [1].
pub fn hann(n: usize) -> Vec<f32> {
    if n <= 1 {
        return vec![1.0; n];
    }
    (0..n).map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos()) as f32).collect()
}

/// A diffractogram: `rows` x `cols` values, zero frequency at (rows / 2, cols / 2).
#[derive(Debug, Clone, PartialEq)]
pub struct Diffractogram {
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// The diffractogram of the rectangle `rows` x `cols` of the row-major image `img` (`width`
/// columns). Non-finite values (scan positions without data) count as the mean. None for an
/// empty rectangle or one outside the image.
pub fn diffractogram(
    img: &[f32],
    width: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    mag: Magnitude,
) -> Option<Diffractogram> {
    let (h, w) = (rows.len(), cols.len());
    if h == 0 || w == 0 || cols.end > width || rows.end * width > img.len() {
        return None;
    }
    let sub = |r: usize, c: usize| img[(rows.start + r) * width + cols.start + c];
    let (mut sum, mut n) = (0f64, 0usize);
    for r in 0..h {
        for c in 0..w {
            let v = sub(r, c);
            if v.is_finite() {
                sum += v as f64;
                n += 1;
            }
        }
    }
    let mean = if n > 0 { (sum / n as f64) as f32 } else { 0.0 };
    let (wr, wc) = (hann(h), hann(w));
    let mut buf: Vec<Complex32> = (0..h * w)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            let v = sub(r, c);
            let v = if v.is_finite() { v - mean } else { 0.0 };
            Complex32::new(v * wr[r] * wc[c], 0.0)
        })
        .collect();
    let mut planner = FftPlanner::<f32>::new();
    // rows, then columns (through a transpose)
    planner.plan_fft_forward(w).process(&mut buf);
    let mut t = vec![Complex32::default(); h * w];
    for r in 0..h {
        for c in 0..w {
            t[c * h + r] = buf[r * w + c];
        }
    }
    planner.plan_fft_forward(h).process(&mut t);
    let mut values = vec![0f32; h * w];
    for c in 0..w {
        for r in 0..h {
            let a = t[c * h + r].norm();
            let v = match mag {
                Magnitude::Sqrt => a.sqrt(),
                Magnitude::Log => a.ln_1p(),
            };
            // fftshift: frequency index k goes to (k + n / 2) mod n
            values[((r + h / 2) % h) * w + (c + w / 2) % w] = v;
        }
    }
    Some(Diffractogram { values, rows: h, cols: w })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_sums_to_half_its_length() {
        for n in [2usize, 7, 16, 63, 64] {
            let s: f64 = hann(n).iter().map(|&v| v as f64).sum();
            assert!((s - n as f64 / 2.0).abs() < 1e-4, "n={n}: {s}");
        }
        let w = hann(8);
        assert_eq!(w[0], 0.0);
        assert!((w[4] - 1.0).abs() < 1e-6, "peak in the middle");
        assert_eq!(hann(1), vec![1.0]);
    }

    #[test]
    fn cosine_peaks_at_plus_minus_its_frequency() {
        // 5 periods across 64 columns, 3 periods down 32 rows, on an offset
        let (h, w, kx, ky) = (32usize, 64usize, 5usize, 3usize);
        let img: Vec<f32> = (0..h * w)
            .map(|i| {
                let (r, c) = ((i / w) as f32, (i % w) as f32);
                let t = std::f32::consts::TAU;
                100.0 + (t * kx as f32 * c / w as f32).cos() + 0.5 * (t * ky as f32 * r / h as f32).cos()
            })
            .collect();
        for mag in [Magnitude::Sqrt, Magnitude::Log] {
            let d = diffractogram(&img, w, 0..h, 0..w, mag).unwrap();
            assert_eq!((d.rows, d.cols), (h, w));
            let at = |r: usize, c: usize| d.values[r * w + c];
            let (cr, cc) = (h / 2, w / 2);
            // along the centre row the maxima are at +-kx; the mean is gone
            let row: Vec<f32> = (0..w).map(|c| at(cr, c)).collect();
            let mut idx: Vec<usize> = (0..w).collect();
            idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            let mut top = [idx[0], idx[1]];
            top.sort();
            assert_eq!(top, [cc - kx, cc + kx], "{mag:?}");
            assert!((row[cc - kx] - row[cc + kx]).abs() < 1e-3 * row[cc + kx], "symmetric");
            assert!(at(cr, cc) < 1e-2 * row[cc + kx], "mean removed: {}", at(cr, cc));
            // down the centre column: +-ky
            let col: Vec<f32> = (0..h).map(|r| at(r, cc)).collect();
            let best = (0..h).filter(|&r| r != cr).max_by(|a, b| col[*a].total_cmp(&col[*b])).unwrap();
            assert!(best == cr - ky || best == cr + ky, "{best}");
        }
    }

    #[test]
    fn sub_rectangle_and_missing_values() {
        let w = 10;
        let mut img = vec![1f32; 10 * 8];
        img[3] = f32::NAN;
        let d = diffractogram(&img, w, 2..6, 1..9, Magnitude::Sqrt).unwrap();
        assert_eq!((d.rows, d.cols, d.values.len()), (4, 8, 32));
        // a constant image (NaN counts as the mean) has no spectrum at all
        let d = diffractogram(&img, w, 0..8, 0..10, Magnitude::Log).unwrap();
        assert!(d.values.iter().all(|v| v.abs() < 1e-5));
        assert!(diffractogram(&img, w, 0..9, 0..10, Magnitude::Log).is_none());
        assert!(diffractogram(&img, w, 0..0, 0..10, Magnitude::Log).is_none());
    }
}
