//! The linear parallax model s(k) = A (k - c) + b fitted to the measured shifts by least squares
//! with iterative outlier rejection (residual above `k` robust standard deviations), and its
//! reading as scale and rotation (defocus and scan rotation).

/// The fitted model and how well it explains the shifts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearFit {
    /// A: rows (dy, dx) of the shift, columns (row, col) of the detector pixel; scan pixels per
    /// detector pixel.
    pub matrix: [[f64; 2]; 2],
    /// Detector point (row, col) where the model's shift is zero (the disk centre).
    pub centre: [f64; 2],
    /// Parallax per detector pixel (scan pixels): the size of the closest scaled rotation
    /// (scaled reflection when `flip`). Proportional to the defocus.
    pub scale: f64,
    /// Angle of that rotation in degrees, in (-180, 180]: s = scale R(theta) (k - c) with
    /// (dy, dx) = scale (cos t dy_k + sin t dx_k, -sin t dy_k + cos t dx_k).
    pub rotation_deg: f64,
    /// The model mirrors the detector (det A < 0): s = scale R(theta) (dx_k, dy_k)-swapped.
    pub flip: bool,
    /// |A - scaled rotation| / scale: 0 for pure defocus; astigmatism makes it grow.
    pub anisotropy: f64,
    /// Root-mean-square residual of the pixels used (scan pixels).
    pub rms_residual: f64,
    /// Pixels the model was fitted to (after rejection).
    pub pixels_used: usize,
    /// Pixels rejected as outliers.
    pub pixels_rejected: usize,
}

/// Solve a 3x3 system (Cramer); None when singular.
fn solve3(m: [[f64; 3]; 3], v: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    let scale: f64 = m.iter().flatten().map(|x| x.abs()).fold(0.0, f64::max);
    if !(d.abs() > 1e-12 * scale.powi(3)) {
        return None;
    }
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = v[i];
        }
        *o = det(&mk) / d;
    }
    Some(out)
}

/// Least-squares (a0 + a1 dy_k + a2 dx_k) for both components over the pixels with `use_`.
fn lsq(k: &[(f64, f64)], s: &[(f64, f64)], use_: &[bool], c: (f64, f64)) -> Option<[[f64; 3]; 2]> {
    let mut m = [[0f64; 3]; 3];
    let mut vy = [0f64; 3];
    let mut vx = [0f64; 3];
    for i in (0..k.len()).filter(|&i| use_[i]) {
        let row = [1.0, k[i].0 - c.0, k[i].1 - c.1];
        for a in 0..3 {
            for b in 0..3 {
                m[a][b] += row[a] * row[b];
            }
            vy[a] += row[a] * s[i].0;
            vx[a] += row[a] * s[i].1;
        }
    }
    Some([solve3(m, vy)?, solve3(m, vx)?])
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Fit s(k) = A (k - c) + b to the pixels `k` (detector row, col) with shifts `s`, using those
/// with `use_`; reject pixels whose residual exceeds `k_sigma` robust standard deviations
/// (1.4826 MAD of the residual lengths, at least `floor` scan pixels) and refit until stable.
/// Returns the coefficients [[b_y, A_yy, A_yx], [b_x, A_xy, A_xx]] and the inlier mask; None
/// with fewer than 3 usable pixels or collinear ones.
pub fn robust_fit(
    k: &[(f64, f64)],
    s: &[(f64, f64)],
    use_: &[bool],
    c: (f64, f64),
    k_sigma: f64,
    floor: f64,
) -> Option<([[f64; 3]; 2], Vec<bool>)> {
    let mut inl: Vec<bool> = use_.to_vec();
    let mut coef = lsq(k, s, &inl, c)?;
    for _ in 0..20 {
        let res: Vec<f64> = (0..k.len()).map(|i| residual(&coef, k[i], s[i], c)).collect();
        let sigma = 1.4826 * median((0..k.len()).filter(|&i| inl[i]).map(|i| res[i]).collect());
        let thr = (k_sigma * sigma).max(floor);
        let next: Vec<bool> = (0..k.len()).map(|i| use_[i] && res[i] <= thr).collect();
        if next.iter().filter(|&&b| b).count() < 3 {
            break;
        }
        let changed = next != inl;
        inl = next;
        coef = lsq(k, s, &inl, c)?;
        if !changed {
            break;
        }
    }
    Some((coef, inl))
}

pub fn residual(coef: &[[f64; 3]; 2], k: (f64, f64), s: (f64, f64), c: (f64, f64)) -> f64 {
    let (py, px) = eval(coef, k, c);
    (s.0 - py).hypot(s.1 - px)
}

pub fn eval(coef: &[[f64; 3]; 2], k: (f64, f64), c: (f64, f64)) -> (f64, f64) {
    let (dy, dx) = (k.0 - c.0, k.1 - c.1);
    (coef[0][0] + coef[0][1] * dy + coef[0][2] * dx, coef[1][0] + coef[1][1] * dy + coef[1][2] * dx)
}

/// Scale, rotation, flip and anisotropy of the matrix A (rows dy, dx; columns row, col).
pub fn decompose(a: [[f64; 2]; 2]) -> (f64, f64, bool, f64) {
    // rotation part: A = s [[cos, sin], [-sin, cos]]; reflection part: s [[cos, sin], [sin, -cos]]
    let (rc, rs) = ((a[0][0] + a[1][1]) / 2.0, (a[0][1] - a[1][0]) / 2.0);
    let (fc, fs) = ((a[0][0] - a[1][1]) / 2.0, (a[0][1] + a[1][0]) / 2.0);
    let (rot, refl) = (rc.hypot(rs), fc.hypot(fs));
    let (scale, t, flip, other) =
        if rot >= refl { (rot, rs.atan2(rc), false, refl) } else { (refl, fs.atan2(fc), true, rot) };
    let mut deg = t.to_degrees();
    if deg <= -180.0 {
        deg += 360.0;
    }
    (scale, deg, flip, if scale > 0.0 { other / scale } else { 0.0 })
}

/// The shift (dy, dx) of a pure scaled rotation: the model [`LinearFit::rotation_deg`] describes.
pub fn rotation_model(scale: f64, deg: f64, dk: (f64, f64)) -> (f64, f64) {
    let (s, c) = deg.to_radians().sin_cos();
    (scale * (c * dk.0 + s * dk.1), scale * (-s * dk.0 + c * dk.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_rotation_and_rejects_outliers() {
        let c = (20.3, 19.7);
        let (mut k, mut s) = (Vec::new(), Vec::new());
        for y in 10..31usize {
            for x in 10..31 {
                let kk = (y as f64, x as f64);
                let mut v = rotation_model(0.3, 25.0, (kk.0 - c.0, kk.1 - c.1));
                v.0 += 0.5;
                if (y * 7 + x as usize).is_multiple_of(37) {
                    v.1 += 4.0; // outliers
                }
                k.push(kk);
                s.push(v);
            }
        }
        let use_ = vec![true; k.len()];
        let (coef, inl) = robust_fit(&k, &s, &use_, c, 4.0, 0.05).unwrap();
        let a = [[coef[0][1], coef[0][2]], [coef[1][1], coef[1][2]]];
        let (scale, deg, flip, aniso) = decompose(a);
        assert!((scale - 0.3).abs() < 1e-9 && (deg - 25.0).abs() < 1e-6 && !flip && aniso < 1e-9, "{scale} {deg}");
        assert!((coef[0][0] - 0.5).abs() < 1e-9);
        let rejected = inl.iter().filter(|&&b| !b).count();
        assert_eq!(
            rejected,
            (0..k.len()).filter(|&i| (k[i].0 as usize * 7 + k[i].1 as usize).is_multiple_of(37)).count()
        );
        assert!(rejected > 5);
    }

    #[test]
    fn decompose_flip_and_negative_angles() {
        let a = [[0.0, 0.2], [0.2, 0.0]]; // a reflection (swap)
        let (scale, _, flip, _) = decompose(a);
        assert!(flip && (scale - 0.2).abs() < 1e-12);
        let m = |deg: f64| {
            let (s, c) = deg.to_radians().sin_cos();
            [[c, s], [-s, c]]
        };
        let (_, deg, flip, _) = decompose(m(-130.0));
        assert!(!flip && (deg + 130.0).abs() < 1e-9);
        assert!(
            robust_fit(&[(0.0, 0.0), (1.0, 1.0)], &[(0.0, 0.0), (1.0, 1.0)], &[true, true], (0.0, 0.0), 3.0, 0.1)
                .is_none()
        );
    }
}
