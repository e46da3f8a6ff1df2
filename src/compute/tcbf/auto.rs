//! Automatic mode: the parallax model from pairs of pixels ([`super::pairs`]), then each pixel
//! re-aligned against the sum aligned with that model (searched only near the shift the model
//! predicts, so a lattice translation cannot be taken for it) to measure its own shift and
//! quality and to leave out the pixels that disagree (hot or dead pixels, noise).

use super::align::{self, Fft2, Work};
use super::fit::{self, LinearFit};
use super::pairs::{self, LowSpectra, NoFit};
use super::{Disk, Fitted, KGeometry, Pixels, WINDOW_FRAC, median};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use num_complex::Complex32;
use rayon::prelude::*;

/// Below this largest parallax over the disk (scan pixels) there is nothing to correct.
pub const NO_SHIFT_PX: f64 = 0.25;
/// Pixels whose correlation quality is below this fraction of the median are left out.
pub const QUALITY_REL: f64 = 0.5;
/// A pixel whose own shift differs from the model's by more than this many robust standard
/// deviations...
pub const OUTLIER_K: f64 = 4.0;
/// ...and more than this many scan pixels is left out.
pub const OUTLIER_FLOOR: f64 = 0.5;
/// Half-width (scan pixels) of the per-pixel search around the model's shift.
pub const REALIGN_WINDOW: usize = 2;

/// What the automatic mode needs besides the pixels.
pub(super) struct AutoInput<'a> {
    pub(super) low: LowSpectra,
    pub(super) means: &'a [f64],
    pub(super) kdet: &'a [(f64, f64)],
    pub(super) disk: &'a Disk,
    pub(super) geom: KGeometry,
    pub(super) kgrid: (usize, usize),
}

/// Per disk pixel: measured shift and correlation quality.
type ShiftsQuality = (Vec<(f64, f64)>, Vec<f64>);

/// The model, the per-pixel shifts and the pixels kept (see the module doc).
pub(super) fn fit(px: &mut Pixels, fft: &Fft2, inp: AutoInput, progress: &Progress) -> Result<Fitted> {
    progress.set_message("tcBF: parallax from pixel pairs");
    let bin = inp.geom.bin as f64;
    let radius_k = inp.disk.radius / bin;
    let pf = pairs::fit(&inp.low, &px.members, inp.kgrid, radius_k, fft).map_err(|e| match e {
        NoFit::NoCorrelation { best_z } => Error::NoParallax(format!(
            "tcBF: no parallax found: the images of neighbouring bright-field pixels do not correlate (best peak \
             {best_z:.1} sd above the noise, {} needed): the scan shows no structure to align (vacuum or a uniform \
             film), so the tcBF image would be noise; the plain BF image is all there is",
            pairs::Z_MIN
        )),
    })?;
    drop(inp.low);
    let a = [[pf.a[0][0] / bin, pf.a[0][1] / bin], [pf.a[1][0] / bin, pf.a[1][1] / bin]];
    let c = (inp.disk.centre[0], inp.disk.centre[1]);
    let model: Vec<(f64, f64)> = inp.kdet.iter().map(|&k| apply(&a, (k.0 - c.0, k.1 - c.1))).collect();
    let largest = model.iter().map(|s| s.0.hypot(s.1)).fold(0.0, f64::max);
    if largest < NO_SHIFT_PX {
        return Err(Error::NoParallax(format!(
            "tcBF: no parallax found: the images of the bright-field pixels correlate but move by at most {largest:.2} \
             scan px across the disk (below {NO_SHIFT_PX}): the probe is in focus, there is nothing to tilt-correct \
             and the plain BF image is the result"
        )));
    }
    progress.set_message("tcBF: sum aligned with the model");
    let reference = model_sum(px, fft, &model, inp.means, progress)?;
    progress.set_message("tcBF: each pixel against the aligned sum");
    let (measured, quality) = realign(px, fft, &reference, &model, progress)?;
    let resid: Vec<f64> = measured.iter().zip(&model).map(|(m, p)| (m.0 - p.0).hypot(m.1 - p.1)).collect();
    let qthr = QUALITY_REL * median(quality.clone());
    let good: Vec<bool> = quality.iter().zip(inp.means).map(|(&q, &m)| q >= qthr && q > 0.0 && m > 0.0).collect();
    let sd = 1.4826 * median((0..resid.len()).filter(|&i| good[i]).map(|i| resid[i]).collect());
    let thr = (OUTLIER_K * sd).max(OUTLIER_FLOOR);
    let used: Vec<bool> = (0..resid.len()).map(|i| good[i] && resid[i] <= thr).collect();
    let n_used = used.iter().filter(|&&u| u).count();
    let n_good = good.iter().filter(|&&g| g).count();
    let rms =
        ((0..resid.len()).filter(|&i| used[i]).map(|i| resid[i].powi(2)).sum::<f64>() / n_used.max(1) as f64).sqrt();
    let (scale, rotation_deg, flip, anisotropy) = fit::decompose(a);
    let lf = LinearFit {
        matrix: a,
        centre: inp.disk.centre,
        scale,
        rotation_deg,
        flip,
        anisotropy,
        rms_residual: rms,
        pixels_used: n_used,
        pixels_rejected: n_good - n_used,
    };
    Ok(Fitted { reported: measured, image: model, quality, fit: Some(lf), used, pairs: pf.shifts })
}

fn apply(a: &[[f64; 2]; 2], d: (f64, f64)) -> (f64, f64) {
    (a[0][0] * d.0 + a[0][1] * d.1, a[1][0] * d.0 + a[1][1] * d.1)
}

/// The sum of the pixels' images (divided by their means) moved back by the model's shifts.
fn model_sum(
    px: &mut Pixels,
    fft: &Fft2,
    model: &[(f64, f64)],
    means: &[f64],
    progress: &Progress,
) -> Result<Vec<Complex32>> {
    let mut acc = vec![Complex32::default(); fft.n()];
    px.for_each_batch(progress, &mut |idx, gs| {
        for (&i, g) in idx.iter().zip(gs) {
            if means[i] > 0.0 {
                align::add_shifted(&mut acc, g, model[i], 1.0 / means[i], fft);
            }
        }
        Ok(())
    })?;
    Ok(acc)
}

/// Each pixel's shift and quality against `reference`, searched near the model's shift.
fn realign(
    px: &mut Pixels,
    fft: &Fft2,
    reference: &[Complex32],
    model: &[(f64, f64)],
    progress: &Progress,
) -> Result<ShiftsQuality> {
    let m = px.members.len();
    let win = align::tukey(fft.rows, fft.cols, WINDOW_FRAC);
    let lag = (REALIGN_WINDOW.min(fft.rows / 3).max(1), REALIGN_WINDOW.min(fft.cols / 3).max(1));
    let mut w = Work::default();
    let mut wref = Vec::new();
    let eref = align::windowed(reference, fft, &win, &mut wref, &mut w);
    let mut shifts = vec![(0f64, 0f64); m];
    let mut quality = vec![0f64; m];
    px.for_each_batch(progress, &mut |idx, gs| {
        let peaks: Vec<align::Peak> = idx
            .par_iter()
            .zip(gs.par_iter())
            .map_init(
                || (Work::default(), Vec::new()),
                |(w, wk), (&i, g)| {
                    let ek = align::windowed(g, fft, &win, wk, w);
                    align::correlate(wk, ek, &wref, eref, fft, (model[i], lag), w)
                },
            )
            .collect();
        for (&i, pk) in idx.iter().zip(peaks) {
            shifts[i] = pk.shift;
            quality[i] = pk.quality;
        }
        Ok(())
    })?;
    Ok((shifts, quality))
}

/// Keep pixel spectra for the pairs: windowed, divided by the pixel's mean, low-passed.
pub(super) fn keep_low(
    low: &mut LowSpectra,
    idx: &[usize],
    gs: &[Vec<Complex32>],
    means: &[f64],
    fft: &Fft2,
    win: &[f32],
) {
    let out: Vec<Vec<Complex32>> = gs
        .par_iter()
        .map_init(
            || (Work::default(), Vec::new()),
            |(w, buf), g| {
                align::windowed(g, fft, win, buf, w);
                buf.clone()
            },
        )
        .collect();
    for (&i, o) in idx.iter().zip(out) {
        let s = if means[i] > 0.0 { (1.0 / means[i]) as f32 } else { 0.0 };
        low.put(i, &o, s);
    }
}
