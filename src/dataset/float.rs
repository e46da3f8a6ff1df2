//! Float datacubes (`convert --bin-mode mean` writes float32; py4DSTEM saves float data) read
//! like integer ones: each value times a scale, rounded, as uint32 counts. The scale is the
//! smallest integer 1..=256 that makes every sampled value an integer (exact: integer counts
//! stored as floats, means of that many pixels); for fractional data it is the power of two that
//! brings the largest sampled value to about 65535 (16-bit resolution). Negative values read
//! as 0, as signed integer datacubes do.

use crate::error::Result;
use crate::format::h5;
use hdf5::types::TypeDescriptor;
use std::path::Path;

/// How a float datacube is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatScale {
    /// Counts = round(value * scale).
    pub scale: f32,
    /// Every sampled value times `scale` was an integer (nothing rounded away).
    pub exact: bool,
    pub dtype: &'static str,
}

impl FloatScale {
    /// What the metadata pane and `info` say about the pixel type.
    pub fn note(&self) -> String {
        match (self.exact, self.scale) {
            (true, 1.0) => format!("{} (integer values, read as uint32 counts)", self.dtype),
            (true, s) => format!("{} (values x {s} are integers: read as uint32 counts x {s}, exact)", self.dtype),
            (false, s) => format!("{} (fractional: read as round(value x {s}) uint32, negatives as 0)", self.dtype),
        }
    }
}

/// None when `d` is not a float datacube; else its scale from up to 8 frames sampled over the
/// scan (as the fingerprint samples them).
pub fn float_scale(d: &hdf5::Dataset, path: &Path) -> Result<Option<FloatScale>> {
    let dtype = match d.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Float(hdf5::types::FloatSize::U4)) => "float32",
        Ok(TypeDescriptor::Float(hdf5::types::FloatSize::U8)) => "float64",
        _ => return Ok(None),
    };
    let sh = d.shape();
    let n = sh[0] * sh[1];
    let mut vals: Vec<f32> = Vec::new();
    let mut samples: Vec<usize> = (0..8).map(|i| i * n.saturating_sub(1) / 7).collect();
    samples.dedup();
    for p in samples.into_iter().filter(|_| n > 0) {
        let fr: ndarray::Array2<f32> =
            d.read_slice(ndarray::s![p / sh[1], p % sh[1], .., ..]).map_err(h5::err(path))?;
        vals.extend(fr.iter().copied());
    }
    let (scale, exact) = choose_scale(&vals);
    Ok(Some(FloatScale { scale, exact, dtype }))
}

/// The scale of [`float_scale`] for the sampled `vals`.
pub fn choose_scale(vals: &[f32]) -> (f32, bool) {
    let max = vals.iter().filter(|x| x.is_finite()).fold(0f64, |m, &x| m.max(x as f64));
    let integral = |s: f64| {
        vals.iter().all(|&x| {
            let y = x as f64 * s;
            !y.is_finite() || (y - y.round()).abs() <= 1e-3 + 1e-6 * y.abs()
        })
    };
    for s in 1..=256u32 {
        if max * s as f64 > u32::MAX as f64 {
            break;
        }
        if integral(s as f64) {
            return (s as f32, true);
        }
    }
    let mut s = 1f64;
    while max > 0.0 && max * s * 2.0 <= 65535.0 {
        s *= 2.0;
    }
    (s as f32, false)
}

/// `src` float values as counts into `out`: round(value * scale), negatives and NaN as 0.
pub fn to_counts(src: &[f32], scale: f32, out: &mut [u32]) {
    for (o, &x) in out.iter_mut().zip(src) {
        let y = (x * scale).round();
        *o = if y.is_nan() || y <= 0.0 { 0 } else { y.min(u32::MAX as f32) as u32 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_recovers_means_and_integers() {
        // means of 4 pixels (bin 2): x 4 is exact
        let v: Vec<f32> = (0..1000).map(|k| k as f32 / 4.0).collect();
        assert_eq!(choose_scale(&v), (4.0, true));
        // means of 9 pixels (bin 3)
        let v: Vec<f32> = (0..1000).map(|k| (k * 7) as f32 / 9.0).collect();
        assert_eq!(choose_scale(&v), (9.0, true));
        // integer counts stored as floats
        let v: Vec<f32> = (0..1000).map(|k| (k % 37) as f32).collect();
        assert_eq!(choose_scale(&v), (1.0, true));
        // fractional data below 1.0: the power of two that brings the maximum to 32768..65535
        let v: Vec<f32> = (0..1000).map(|k| (k as f32 * 0.618).fract()).collect();
        let (s, exact) = choose_scale(&v);
        let max = v.iter().cloned().fold(0f32, f32::max) as f64;
        assert!(!exact);
        assert!(max * s as f64 <= 65535.0 && max * s as f64 * 2.0 > 65535.0, "scale {s}, max {max}");
        let mut out = vec![0u32; 3];
        to_counts(&[0.5, -2.0, f32::NAN], 4.0, &mut out);
        assert_eq!(out, [2, 0, 0]);
    }
}
