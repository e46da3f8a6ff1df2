//! Refining a found scan rotation with the trotters themselves: at the right rotation the
//! trotter pixels of every Q add coherently, at a wrong one part of each sum is taken over pixels
//! that hold no signal (or the other side band), so the coherent power sum_{Q != 0} |S(Q)|^2 of
//! the normalised spectrum is largest at the right rotation. `dpc`'s curl rule finds the rotation
//! well in focus (there the refinement is not run: on the in-focus MoS2 simulation it moved the
//! rotation 2 degrees away from the truth), but a defocused probe's centre of mass follows the
//! blurred potential and the curl minimum can be several degrees off (6 on the defocused MoS2
//! simulation, refined to 0.2); the refinement is a 1 degree scan of +-[`SPAN_DEG`]
//! around it on every [`Q_STRIDE`]-th Q row and column, and a parabola through the best step and
//! its neighbours. It runs only on mask pixels kept in memory (no IO; the scan costs about
//! 2 * SPAN_DEG / Q_STRIDE^2 full trotter passes).

use super::trotter::{Chi, Pixel};
use super::{Bands, QSource, TrotterJob, orient};
use crate::error::Result;
use crate::jobs::Progress;
use num_complex::{Complex32, Complex64};

/// Half-width of the scan around the found rotation (degrees).
pub const SPAN_DEG: f64 = 15.0;
/// Q subsampling of the scan.
pub const Q_STRIDE: usize = 3;

/// What one evaluation needs.
pub(super) struct Probe<'a> {
    pub(super) bands: &'a Bands,
    pub(super) src: &'a dyn QSource,
    pub(super) idx: &'a [usize],
    pub(super) job: &'a TrotterJob,
    pub(super) kept: &'a Vec<Vec<Complex32>>,
    pub(super) flip: bool,
    pub(super) scale: f64,
    pub(super) chi: Chi,
}

impl Probe<'_> {
    /// Coherent power of the trotter spectrum at `rotation_deg`.
    fn power(&self, px: &mut [Pixel], rotation_deg: f64, progress: &Progress) -> Result<f64> {
        progress.check()?;
        orient(px, rotation_deg, self.flip, self.scale, &self.chi);
        let quiet = Progress::new("ptycho rotation", 0);
        let job = TrotterJob { stride: Q_STRIDE, ..*self.job };
        let (spec, _) = self.bands.trotters(self.src, self.idx, px, &job, Some(self.kept), &quiet)?;
        let (qr, qc) = self.job.shape;
        let centre = (qr / 2) * qc + qc / 2;
        Ok(spec.iter().enumerate().filter(|(i, _)| *i != centre).map(|(_, s): (usize, &Complex64)| s.norm_sqr()).sum())
    }

    /// The rotation near `start` of the largest coherent power.
    pub(super) fn refine(&self, px: &mut [Pixel], start: f64, progress: &Progress) -> Result<f64> {
        let n = SPAN_DEG as i32;
        let mut p = Vec::with_capacity(2 * n as usize + 1);
        for d in -n..=n {
            p.push(self.power(px, start + d as f64, progress)?);
        }
        let b = (0..p.len()).max_by(|&x, &y| p[x].total_cmp(&p[y])).unwrap_or(n as usize);
        let mut best = start + b as f64 - n as f64;
        if b > 0 && b + 1 < p.len() {
            // vertex of the parabola through the best step and its neighbours
            let (l, c, r) = (p[b - 1], p[b], p[b + 1]);
            let den = l - 2.0 * c + r;
            if den < 0.0 {
                best += (0.5 * (l - r) / den).clamp(-0.5, 0.5);
            }
        }
        Ok(best)
    }
}
