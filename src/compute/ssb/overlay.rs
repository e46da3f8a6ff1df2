//! Where an SSB result puts the trotters of one spatial frequency Q: on the K grid of a scan-axes
//! FFT (the bright-field disk and its copies shifted by +Q and -Q; a pixel in the disk and in
//! exactly one copy is in a trotter) and on the Q grid (the band |Q| < 2 a outside which no Q has
//! a trotter). The FFT explorer draws it over |G(Q, K)| and the Q-space power; it uses the disk,
//! scan rotation and flip the result was computed with, so a drawn trotter that misses the
//! signal shows a wrong orientation or calibration at a glance.

use super::SsbResult;
use crate::compute::tcbf::KGeometry;

/// The trotters of one Q on a K grid, in K pixels as (row, col), and SSB's Q band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrotterOverlay {
    /// The bright-field disk's centre on the K grid.
    pub centre: (f64, f64),
    /// Its radius (K pixels).
    pub radius: f64,
    /// The offset of the disk's copy shifted by +Q (the -Q copy is its mirror about the centre).
    pub shift: (f64, f64),
    /// The band |Q| = 2 a (a = alpha / lambda) about the Q grid's centre: its semi-axes in Q
    /// pixels (rows, cols).
    pub band: (f64, f64),
}

/// Which trotter a K pixel is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trotter {
    /// In the disk and its +Q copy only (T+).
    Plus,
    /// In the disk and its -Q copy only (T-).
    Minus,
    /// Neither: outside the disk, in no copy, or in both (the triple overlap).
    None,
}

impl TrotterOverlay {
    /// For the FFT of shape `[qr, qc, kr, kc]` whose K grid maps to the detector by `geom`, at the
    /// (fftshifted) Q pixel `q`. None when the result belongs to another scan shape.
    pub fn new(r: &SsbResult, geom: KGeometry, shape: [usize; 4], q: (usize, usize)) -> Option<Self> {
        let [qr, qc, _, _] = shape;
        let s = &r.summary;
        let step = r.params.scan_step_a;
        let a = s.disk_radius_inv_a;
        if r.scan != (qr, qc) || !(step > 0.0 && a > 0.0 && s.disk.radius > 0.0) {
            return None;
        }
        let b = geom.bin as f64;
        let centre = (
            (s.disk.centre[0] - geom.origin.0 as f64 + 0.5) / b - 0.5,
            (s.disk.centre[1] - geom.origin.1 as f64 + 0.5) / b - 0.5,
        );
        let radius = s.disk.radius / b;
        // Q in 1/Å (x along scan columns, y along rows), as SSB indexes it
        let qx = (q.1 as f64 - (qc / 2) as f64) / (qc as f64 * step);
        let qy = (q.0 as f64 - (qr / 2) as f64) / (qr as f64 * step);
        // SSB maps a detector offset d to k = R(theta) F d * scale; invert it for Q
        let scale = a / radius;
        let (sn, cs) = s.rotation_deg.to_radians().sin_cos();
        let f = if s.flip { -1.0 } else { 1.0 };
        let (ux, uy) = (cs * qx + sn * qy, -sn * qx + cs * qy);
        let shift = (uy / scale, f * ux / scale);
        let band = (2.0 * a * qr as f64 * step, 2.0 * a * qc as f64 * step);
        Some(TrotterOverlay { centre, radius, shift, band })
    }

    /// The trotter K pixel `(row, col)` lies in.
    pub fn trotter_at(&self, (y, x): (usize, usize)) -> Trotter {
        let (dy, dx) = (y as f64 - self.centre.0, x as f64 - self.centre.1);
        let r2 = self.radius * self.radius;
        let inside = |oy: f64, ox: f64| (dy - oy).powi(2) + (dx - ox).powi(2) < r2;
        if !inside(0.0, 0.0) {
            return Trotter::None;
        }
        match (inside(self.shift.0, self.shift.1), inside(-self.shift.0, -self.shift.1)) {
            (true, false) => Trotter::Plus,
            (false, true) => Trotter::Minus,
            _ => Trotter::None,
        }
    }
}
