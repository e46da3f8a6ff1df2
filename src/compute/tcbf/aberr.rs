//! The aberration model behind the parallax and the CTF of the tcBF image.
//!
//! The image seen through the detector point at angle theta (detector frame, rad) is shifted by
//! the gradient of the aberration function. In abTEM's convention (the wave multiplied by
//! exp(-i chi), chi(theta) = (2 pi / lambda) theta^2 / 2 (C10 + C12 cos 2(phi - phi12)),
//! C10 = -defocus) the image through pixel K is I_K(r) = I_ref(r - s_K) with s_K = P theta_K,
//! P = -(C10 I + C12 M(phi12)) = C1 I - |A1| M(phi), M(phi) = [[cos 2phi, sin 2phi], [sin 2phi,
//! -cos 2phi]], C1 the defocus (positive = underfocus) and (|A1|, phi) abTEM's (C12, phi12). On
//! the scan the shift is seen through the scan-detector rotation U (a rotation, or a rotation
//! followed by a transpose): s = U P theta. The fitted linear map A (scan px per detector px) is
//! therefore U P (theta_px / step_A): its polar decomposition gives the rotation (and transpose)
//! and the symmetric P; C1 = tr P / 2, |A1| and phi from the traceless part. Angles phi are
//! measured in the detector's (row, col) frame from the row axis towards the column axis.
//!
//! (U, P) and (-U, -P) give the same shifts: the parallax cannot tell an underfocus from an
//! overfocus with the scan turned by 180 degrees. The image can: its contrast transfer is
//! sin chi(q), so only one sign makes the phase-flipped image of atoms (positive potential
//! peaks) positively skewed. That choice needs the wavelength (`--energy`) and a calibration;
//! without them the sign with the smaller |rotation| is reported and marked `assumed`.
//!
//! Sign convention of the reported defocus: positive = underfocus (the probe focused above the
//! specimen, as abTEM's `defocus`); see [`DEFOCUS_SIGN`].

use super::align::{Fft2, Work};
use num_complex::Complex32;

/// Factor from tr P / 2 of the chosen polar decomposition to the reported defocus (positive =
/// underfocus): +1 by the derivation in the module doc, checked on abTEM simulations.
pub const DEFOCUS_SIGN: f64 = 1.0;

/// What turns scan and detector pixels into lengths and angles.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optics {
    /// Scan step (Å).
    pub scan_step_a: f64,
    /// Detector step (mrad per detector pixel).
    pub det_mrad: f64,
    /// Accelerating voltage (V), for the wavelength.
    pub energy_v: Option<f64>,
}

impl Optics {
    /// From a calibration with a scan step and a detector step (mrad, or Å^-1 with the energy);
    /// None when either is unknown.
    pub fn from_calibration(c: &crate::compute::calib::Calibration) -> Option<Optics> {
        let (r, ru) = c.r.as_ref()?;
        let scan_step_a = if ru == "nm" { r * 10.0 } else { *r };
        let (q, qu) = c.q.as_ref()?;
        let det_mrad = match qu.as_str() {
            "mrad" => *q,
            _ => q * crate::compute::calib::electron_wavelength_a(c.energy_v?) * 1e3,
        };
        Some(Optics { scan_step_a, det_mrad, energy_v: c.energy_v })
    }
    /// Å of parallax per (scan px per detector px).
    fn length_per_slope(&self) -> f64 {
        self.scan_step_a / (self.det_mrad * 1e-3)
    }
    pub fn wavelength_a(&self) -> Option<f64> {
        self.energy_v.map(crate::compute::calib::electron_wavelength_a)
    }
}

/// How the defocus sign was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignFrom {
    /// From the image contrast (phase-flipped image positively skewed).
    Contrast,
    /// Not decidable (no wavelength or calibration): the sign with |rotation| <= 90 degrees.
    Assumed,
}

/// The fitted aberrations. Lengths in Å when calibrated (`defocus_A`, `astigmatism_A`), always
/// as parallax slopes (scan px per detector px).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[allow(non_snake_case)]
pub struct Aberrations {
    /// Scan-detector rotation (degrees, (-180, 180]); see `fit::LinearFit::rotation_deg`.
    pub rotation_deg: f64,
    /// The scan is transposed against the detector (rows and columns swapped before rotating).
    pub transpose: bool,
    /// Defocus C1 (Å, positive = underfocus) when calibrated.
    pub defocus_A: Option<f64>,
    /// Two-fold astigmatism |A1| (Å) when calibrated.
    pub astigmatism_A: Option<f64>,
    /// Direction of A1 (degrees in [0, 180), detector frame, from the row axis towards the col axis).
    pub astigmatism_angle_deg: f64,
    /// Defocus as a parallax slope (scan px per detector px), same sign as `defocus_A`.
    pub defocus_slope: f64,
    /// |A1| as a parallax slope.
    pub astigmatism_slope: f64,
    pub sign_from: SignFrom,
}

/// One short line: rotation, defocus and astigmatism (Å when calibrated, else slopes).
pub fn summary(ab: &Aberrations) -> String {
    let t = if ab.transpose { " T" } else { "" };
    match (ab.defocus_A, ab.astigmatism_A) {
        (Some(d), Some(a)) => format!("rot {:.1} deg{t}, C1 {d:.0} A, A1 {a:.0} A", ab.rotation_deg),
        _ => format!(
            "rot {:.1} deg{t}, C1 {:.4} px/px, A1 {:.4} px/px",
            ab.rotation_deg, ab.defocus_slope, ab.astigmatism_slope
        ),
    }
}

/// Polar decomposition of A (rows dy, dx; cols K row, K col): (rotation deg, transpose, P).
/// A = U P with U the orthogonal matrix closest to A: R(t) = [[cos, sin], [-sin, cos]] (as
/// `fit::rotation_model`), or T R(t) when `transpose` (T = [[0, 1], [1, 0]] swaps the scan's rows
/// and columns after the rotation).
pub fn polar(a: [[f64; 2]; 2]) -> (f64, bool, [[f64; 2]; 2]) {
    // tr(U^T A) is largest for t = atan2(a01 - a10, a00 + a11) (rotation) or
    // atan2(a11 - a00, a01 + a10) (T R(t)); the larger of the two maxima wins
    let (rc, rs) = (a[0][0] + a[1][1], a[0][1] - a[1][0]);
    let (fc, fs) = (a[0][1] + a[1][0], a[1][1] - a[0][0]);
    let transpose = fc.hypot(fs) > rc.hypot(rs);
    let t = if transpose { fs.atan2(fc) } else { rs.atan2(rc) };
    let mut deg = t.to_degrees();
    if deg <= -180.0 {
        deg += 360.0;
    }
    let u = orthogonal(deg, transpose);
    // P = U^T A
    let mut p = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            p[i][j] = u[0][i] * a[0][j] + u[1][i] * a[1][j];
        }
    }
    let off = (p[0][1] + p[1][0]) / 2.0;
    (deg, transpose, [[p[0][0], off], [off, p[1][1]]])
}

/// U for a rotation angle and transpose flag (rows dy, dx; cols K row, K col).
pub fn orthogonal(deg: f64, transpose: bool) -> [[f64; 2]; 2] {
    let (s, c) = deg.to_radians().sin_cos();
    if transpose { [[-s, c], [c, s]] } else { [[c, s], [-s, c]] }
}

/// Aberrations of the linear map `a` (scan px per detector px) for a sign `sign` (+1: the polar
/// factor with positive trace; -1: rotated by 180 degrees, defocus negated).
pub fn aberrations(a: [[f64; 2]; 2], sign: f64, optics: Option<&Optics>, from: SignFrom) -> Aberrations {
    let (mut deg, transpose, p) = polar(a);
    let p = if sign < 0.0 {
        deg = if deg > 0.0 { deg - 180.0 } else { deg + 180.0 };
        [[-p[0][0], -p[0][1]], [-p[1][0], -p[1][1]]]
    } else {
        p
    };
    let c1 = (p[0][0] + p[1][1]) / 2.0 * DEFOCUS_SIGN;
    // P = C1 I - |A1| M(phi): the traceless part is -|A1| M(phi)
    let (h, q) = ((p[0][0] - p[1][1]) / 2.0 * DEFOCUS_SIGN, p[0][1] * DEFOCUS_SIGN);
    let a1 = h.hypot(q);
    let mut ang = 0.5 * (-q).atan2(-h).to_degrees();
    if ang < 0.0 {
        ang += 180.0;
    }
    let l = optics.map(|o| o.length_per_slope());
    Aberrations {
        rotation_deg: deg,
        transpose,
        defocus_A: l.map(|l| c1 * l),
        astigmatism_A: l.map(|l| a1 * l),
        astigmatism_angle_deg: ang,
        defocus_slope: c1,
        astigmatism_slope: a1,
        sign_from: from,
    }
}

/// P in the scan frame (U P U^T, scan px per detector px) for the sign choice.
fn p_scan(a: [[f64; 2]; 2], sign: f64) -> [[f64; 2]; 2] {
    let (deg, t, p) = polar(a);
    let u = orthogonal(deg, t);
    let mut up = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            up[i][j] = u[i][0] * p[0][j] + u[i][1] * p[1][j];
        }
    }
    let mut out = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            out[i][j] = sign * (up[i][0] * u[j][0] + up[i][1] * u[j][1]);
        }
    }
    out
}

/// Phase-flip the image (`rows` x `cols`, pixel `step_a` Å) for the map `a` with `sign`:
/// multiply its spectrum by sign(sin chi(q)), chi(q) = -pi lambda q^T P q (abTEM's chi: the
/// parallax P theta is -C10 theta, and the BF image of a weak phase object is V * sin chi).
pub fn phase_flip(
    img: &[f32],
    rows: usize,
    cols: usize,
    step_a: f64,
    a: [[f64; 2]; 2],
    sign: f64,
    optics: &Optics,
) -> Option<Vec<f32>> {
    let lambda = optics.wavelength_a()?;
    let ps = p_scan(a, sign);
    let l = optics.length_per_slope();
    let fft = Fft2::new(rows, cols);
    let mean = img.iter().map(|&v| v as f64).sum::<f64>() / img.len().max(1) as f64;
    let mut g: Vec<Complex32> = img.iter().map(|&v| Complex32::new((v as f64 - mean) as f32, 0.0)).collect();
    let mut w = Work::default();
    fft.run_w(&mut g, false, &mut w);
    let freq = |i: usize, n: usize| {
        let f = if i <= n / 2 { i as f64 } else { i as f64 - n as f64 };
        f / (n as f64 * step_a)
    };
    for i in 0..rows {
        let qy = freq(i, rows);
        for j in 0..cols {
            let qx = freq(j, cols);
            let quad = ps[0][0] * qy * qy + 2.0 * ps[0][1] * qy * qx + ps[1][1] * qx * qx;
            let chi = -std::f64::consts::PI * lambda * quad * l;
            if chi.sin() < 0.0 {
                g[i * cols + j] = -g[i * cols + j];
            }
        }
    }
    fft.run_w(&mut g, true, &mut w);
    let n = (rows * cols) as f32;
    Some(g.iter().map(|c| c.re / n + mean as f32).collect())
}

/// Skewness of the image away from a border of `m` pixels.
pub fn skewness(img: &[f32], rows: usize, cols: usize, m: usize) -> f64 {
    let v: Vec<f64> = (m..rows.saturating_sub(m))
        .flat_map(|y| (m..cols.saturating_sub(m)).map(move |x| (y, x)))
        .map(|(y, x)| img[y * cols + x] as f64)
        .collect();
    let n = v.len().max(1) as f64;
    let mu = v.iter().sum::<f64>() / n;
    let m2 = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / n;
    let m3 = v.iter().map(|x| (x - mu).powi(3)).sum::<f64>() / n;
    if m2 > 0.0 { m3 / m2.powf(1.5) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mul(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
        let mut o = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                o[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        o
    }

    /// P = C1 I - |A1| M(phi) (the module doc's convention).
    fn p_of(c1: f64, a1: f64, phi_deg: f64) -> [[f64; 2]; 2] {
        let (s, c) = (2.0 * phi_deg.to_radians()).sin_cos();
        [[c1 - a1 * c, -a1 * s], [-a1 * s, c1 + a1 * c]]
    }

    #[test]
    fn polar_recovers_rotation_transpose_defocus_astigmatism() {
        let optics = Optics { scan_step_a: 0.5, det_mrad: 1.0, energy_v: Some(200e3) };
        for (deg, t) in [(17.0, false), (-120.0, true), (90.0, false)] {
            let a = mul(orthogonal(deg, t), p_of(0.4, 0.05, 30.0));
            let ab = aberrations(a, 1.0, Some(&optics), SignFrom::Assumed);
            assert!((ab.rotation_deg - deg).abs() < 1e-9 && ab.transpose == t, "{ab:?}");
            assert!((ab.defocus_slope - 0.4 * DEFOCUS_SIGN).abs() < 1e-12);
            // 0.4 scan px per detector px = 0.2 Å per mrad = 200 Å
            assert!((ab.defocus_A.unwrap() - 200.0 * DEFOCUS_SIGN).abs() < 1e-9);
            assert!((ab.astigmatism_A.unwrap() - 25.0).abs() < 1e-9 && (ab.astigmatism_angle_deg - 30.0).abs() < 1e-9);
            let flipped = aberrations(a, -1.0, Some(&optics), SignFrom::Contrast);
            assert!((flipped.defocus_A.unwrap() + 200.0 * DEFOCUS_SIGN).abs() < 1e-9);
            let d = (flipped.rotation_deg - deg).rem_euclid(360.0);
            assert!((d - 180.0).abs() < 1e-9, "{flipped:?}");
            assert!((flipped.astigmatism_angle_deg - 120.0).abs() < 1e-9, "{flipped:?}");
        }
    }

    #[test]
    fn phase_flip_undoes_the_sign_of_sin_chi() {
        // an image whose spectrum is a single +-q pair with sin chi < 0 comes back negated
        let (n, step) = (32, 0.5);
        let optics = Optics { scan_step_a: step, det_mrad: 1.0, energy_v: Some(200e3) };
        let a = p_of(2.0, 0.0, 0.0); // 1000 Å
        let lambda = optics.wavelength_a().unwrap();
        // choose a frequency with sin(chi) < 0: chi = -pi lambda C1 q^2
        let k = (1..n / 2)
            .find(|&k| {
                let q = k as f64 / (n as f64 * step);
                (-std::f64::consts::PI * lambda * 1000.0 * q * q).sin() < -0.5
            })
            .unwrap();
        let img: Vec<f32> = (0..n * n)
            .map(|i| (2.0 * std::f64::consts::PI * k as f64 * (i % n) as f64 / n as f64).cos() as f32)
            .collect();
        let out = phase_flip(&img, n, n, step, a, 1.0, &optics).unwrap();
        for (o, i) in out.iter().zip(&img) {
            assert!((o + i).abs() < 1e-4);
        }
        let back = phase_flip(&img, n, n, step, a, -1.0, &optics).unwrap();
        assert!(back.iter().zip(&img).all(|(o, i)| (o - i).abs() < 1e-4));
        assert!(phase_flip(&img, n, n, step, a, 1.0, &Optics { energy_v: None, ..optics }).is_none());
    }

    #[test]
    fn skewness_sign() {
        let mut v = vec![0f32; 100];
        v[7] = 10.0;
        assert!(skewness(&v, 10, 10, 0) > 3.0);
        let neg: Vec<f32> = v.iter().map(|x| -x).collect();
        assert!(skewness(&neg, 10, 10, 0) < -3.0);
    }
}
