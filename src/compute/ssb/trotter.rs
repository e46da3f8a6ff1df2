//! The per-Q work of SSB: the bright-field pixels as vectors in the scan frame, and, for one
//! spatial frequency Q, the aberration-corrected sums of G(Q, K) over the two trotters.

use num_complex::{Complex32, Complex64};

/// One detector pixel inside the CoM mask (the disk plus a margin).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pixel {
    /// Offset from the disk centre in K-grid pixels (x = column, y = row), detector frame.
    pub(crate) det: (f64, f64),
    /// The same as a scan-frame spatial frequency (1/Å): x along scan columns, y along rows.
    pub(crate) k: (f64, f64),
    /// Inside the bright-field disk.
    pub(crate) in_disk: bool,
    /// Aberration phase chi(K) (rad).
    pub(crate) chi: f64,
}

/// The aberration function chi(k) = -pi lambda df |k|^2 (k in 1/Å), for a probe
/// A(k) exp(-i chi(k)): positive `defocus_a` is underfocus (abTEM's `defocus`, C10 = -df).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chi {
    pub(crate) wavelength_a: f64,
    pub(crate) defocus_a: f64,
}

impl Chi {
    pub(crate) fn at(&self, k: (f64, f64)) -> f64 {
        -std::f64::consts::PI * self.wavelength_a * self.defocus_a * (k.0 * k.0 + k.1 * k.1)
    }
    pub(crate) fn is_zero(&self) -> bool {
        self.defocus_a == 0.0
    }
}

/// The trotter sums at one Q: (sum over T+ minus sum over T-, aberration removed; pixels in both).
///
/// T+ = {|K| < a, |K - Q| < a, |K + Q| >= a} carries i O(Q) exp(i (chi(K) - chi(K - Q))) and
/// T- = {|K| < a, |K + Q| < a, |K - Q| >= a} carries -i O(Q) exp(-i (chi(K) - chi(K + Q))) (weak
/// phase object, probe A exp(-i chi)); removing the phases and subtracting T- from T+ adds both
/// measurements of O(Q) with the same sign.
pub(crate) fn trotter_sum(g: &[Complex32], px: &[Pixel], q: (f64, f64), a2: f64, chi: &Chi) -> (Complex64, usize) {
    let mut acc = Complex64::default();
    let mut n = 0usize;
    for (v, p) in g.iter().zip(px) {
        if !p.in_disk {
            continue;
        }
        let m = (p.k.0 - q.0, p.k.1 - q.1);
        let pl = (p.k.0 + q.0, p.k.1 + q.1);
        let dm = m.0 * m.0 + m.1 * m.1 < a2;
        let dp = pl.0 * pl.0 + pl.1 * pl.1 < a2;
        if dm == dp {
            continue;
        }
        let gv = Complex64::new(v.re as f64, v.im as f64);
        let term = if chi.is_zero() {
            gv
        } else if dm {
            gv * Complex64::from_polar(1.0, -(p.chi - chi.at(m)))
        } else {
            gv * Complex64::from_polar(1.0, p.chi - chi.at(pl))
        };
        if dm {
            acc += term;
        } else {
            acc -= term;
        }
        n += 1;
    }
    (acc, n)
}

/// Weighted sums of G(Q, K) over the mask for the virtual images: (total, sum x, sum y), x and y
/// the detector-frame offsets from the disk centre.
pub(crate) fn moment_sums(g: &[Complex32], px: &[Pixel]) -> [Complex64; 3] {
    let mut s = [Complex64::default(); 3];
    for (v, p) in g.iter().zip(px) {
        let gv = Complex64::new(v.re as f64, v.im as f64);
        s[0] += gv;
        s[1] += gv * p.det.0;
        s[2] += gv * p.det.1;
    }
    s
}
