//! The kernel on an in-memory G(Q, K) of a noiseless parallax model.

use super::*;

/// G(Q, K) in memory, layout [Q row][Q col][k row][k col], Q fftshifted.
struct MemG {
    shape: [usize; 4],
    data: Vec<Complex32>,
}

impl GSource for MemG {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn k_chunk(&self) -> (usize, usize) {
        (4, 4)
    }
    fn read_block(&self, rows: Range<usize>, cols: Range<usize>) -> Result<Vec<Complex32>> {
        let [qr, qc, _, kc] = self.shape;
        let mut out = Vec::with_capacity(qr * qc * rows.len() * cols.len());
        for q in 0..qr * qc {
            for y in rows.clone() {
                for x in cols.clone() {
                    out.push(self.data[(q * self.shape[2] + y) * kc + x]);
                }
            }
        }
        Ok(out)
    }
    fn dc_plane(&self) -> Result<Vec<f32>> {
        let [qr, qc, kr, kc] = self.shape;
        let q0 = (qr / 2) * qc + qc / 2;
        Ok((0..kr * kc).map(|k| self.data[q0 * kr * kc + k].re).collect())
    }
}

fn object(y: f64, x: f64) -> f64 {
    let blobs = [(8.3, 9.1, 1.2), (20.0, 7.0, 1.5), (12.5, 25.2, 1.0), (25.0, 22.0, 1.8), (5.0, 18.0, 1.3)];
    1.0 + 0.5
        * blobs.iter().map(|&(by, bx, s)| (-((y - by).powi(2) + (x - bx).powi(2)) / (2.0 * s * s)).exp()).sum::<f64>()
}

const C: (f64, f64) = (7.0, 7.0);

fn model(rot: f64) -> MemG {
    let (s, c) = rot.to_radians().sin_cos();
    model_a([[0.3 * c, 0.3 * s], [-0.3 * s, 0.3 * c]], 100.0, 0)
}

/// Pixel K sees the object moved by A (K - C) (`a`: rows dy, dx; cols K row, K col), `dose`
/// counts per pixel; `noise_seed` != 0 adds deterministic pseudo-Poisson (Gaussian) noise.
fn model_a(a: [[f64; 2]; 2], dose: f64, noise_seed: u64) -> MemG {
    let (qr, qc, kr, kc) = (32, 32, 15, 15);
    let fft = Fft2::new(qr, qc);
    let mut w = Work::default();
    let mut data = vec![Complex32::default(); qr * qc * kr * kc];
    for ky in 0..kr {
        for kx in 0..kc {
            let inside = (ky as f64 - C.0).hypot(kx as f64 - C.1) <= 6.0;
            let d = (ky as f64 - C.0, kx as f64 - C.1);
            let s = (a[0][0] * d.0 + a[0][1] * d.1, a[1][0] * d.0 + a[1][1] * d.1);
            let mut img: Vec<Complex32> = (0..qr * qc)
                .map(|i| {
                    let mut v = if inside { dose * object((i / qc) as f64 - s.0, (i % qc) as f64 - s.1) } else { 0.0 };
                    if noise_seed != 0 && inside {
                        v += v.sqrt() * gauss(noise_seed, (ky * kc + kx) as u64, i as u64);
                    }
                    Complex32::new(v as f32, 0.0)
                })
                .collect();
            fft.run_w(&mut img, false, &mut w);
            let mut sh = vec![Complex32::default(); qr * qc];
            // fftshift: sh[(i + r/2) % r][(j + c/2) % c] = img[i][j]
            for i in 0..qr {
                for j in 0..qc {
                    sh[((i + qr / 2) % qr) * qc + (j + qc / 2) % qc] = img[i * qc + j];
                }
            }
            for q in 0..qr * qc {
                data[(q * kr + ky) * kc + kx] = sh[q];
            }
        }
    }
    MemG { shape: [qr, qc, kr, kc], data }
}

/// A standard normal number from a hash of (seed, a, b).
fn gauss(seed: u64, a: u64, b: u64) -> f64 {
    let h = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let u = |k: u64| ((h(seed ^ h(a ^ h(b.wrapping_mul(2).wrapping_add(k)))) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (-2.0 * u(0).ln()).sqrt() * (2.0 * std::f64::consts::PI * u(1)).cos()
}

const GEOM: KGeometry = KGeometry { det: (20, 20), origin: (2, 3), bin: 1 };

#[test]
fn auto_recovers_shifts_fit_and_sign() {
    let g = model(25.0);
    for budget in [1u64 << 30, 700_000] {
        // the small budget streams blocks instead of keeping every pixel
        let r = run(&g, GEOM, &TcbfParams { upsample: 2, ..Default::default() }, budget, &Progress::new("t", 0))
            .unwrap_or_else(|e| panic!("budget {budget}: {e}"));
        let f = r.fit.as_ref().unwrap();
        assert!((f.scale - 0.3).abs() < 0.01 && (f.rotation_deg - 25.0).abs() < 1.5 && !f.flip, "{f:?}");
        assert!((f.centre[0] - 9.0).abs() < 0.2 && (f.centre[1] - 10.0).abs() < 0.2, "{:?}", f.centre);
        let mut err = 0.0;
        let mut n = 0;
        for ky in 0..15usize {
            for kx in 0..15usize {
                let d = (ky as f64 - C.0).hypot(kx as f64 - C.1);
                let (y, x) = (ky + 2, kx + 3);
                let s = (r.shifts[(y * 20 + x) * 2] as f64, r.shifts[(y * 20 + x) * 2 + 1] as f64);
                if d > 6.0 {
                    assert!(s.0.is_nan(), "outside the disk: NaN");
                } else if d <= 4.8 {
                    let t = fit::rotation_model(0.3, 25.0, (ky as f64 - C.0, kx as f64 - C.1));
                    err += (s.0 - t.0).powi(2) + (s.1 - t.1).powi(2);
                    n += 1;
                }
            }
        }
        let rms = (err / n as f64).sqrt();
        assert!(rms < 0.1, "shift rms error {rms}");
        assert_eq!(r.image.len(), 64 * 64);
        assert!(r.image.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn manual_matches_the_formula_and_bad_params_fail() {
    let g = model(0.0);
    let p = TcbfParams {
        upsample: 1,
        mode: ShiftMode::Manual { max_shift: 1.8, theta_deg: 0.0, transpose: false },
        ..Default::default()
    };
    let r = run(&g, GEOM, &p, 1 << 30, &Progress::new("t", 0)).unwrap();
    assert!(r.fit.is_none());
    // the farthest disk pixel has |s| = max_shift; straight below the centre s points up
    let mags = r.shifts.chunks(2).filter(|s| s[0].is_finite()).map(|s| s[0].hypot(s[1]));
    assert!((mags.fold(0f32, f32::max) - 1.8).abs() < 1e-5);
    let (y, x) = (7 + 4 + 2, 7 + 3);
    assert!(r.shifts[(y * 20 + x) * 2] < -1.0 && r.shifts[(y * 20 + x) * 2 + 1].abs() < 1e-5);
    for bad in [0, 9] {
        let e = run(&g, GEOM, &TcbfParams { upsample: bad, ..p.clone() }, 1 << 30, &Progress::new("t", 0));
        assert!(e.unwrap_err().to_string().contains("outside 1..=8"));
    }
    let e = run(&g, GEOM, &TcbfParams { upsample: 8, ..p.clone() }, 100_000, &Progress::new("t", 0)).unwrap_err();
    assert!(e.to_string().contains("memory budget"), "{e}");
}

#[test]
fn a_hot_pixel_is_left_out_and_does_not_spoil_the_fit() {
    let mut g = model(25.0);
    let [qr, qc, kr, kc] = g.shape;
    let fft = Fft2::new(qr, qc);
    // K (7, 9) inside the disk: 100x brighter than the others, its image a fixed noise pattern
    let mut img: Vec<Complex32> = (0..qr * qc)
        .map(|i| Complex32::new(1e4 * (1.0 + 0.5 * (((i * 7919) % 101) as f32 / 101.0 - 0.5)), 0.0))
        .collect();
    fft.run_w(&mut img, false, &mut Work::default());
    for i in 0..qr {
        for j in 0..qc {
            let q = ((i + qr / 2) % qr) * qc + (j + qc / 2) % qc;
            g.data[(q * kr + 7) * kc + 9] = img[i * qc + j];
        }
    }
    let r = run(&g, GEOM, &TcbfParams::default(), 1 << 30, &Progress::new("t", 0)).unwrap();
    let f = r.fit.unwrap();
    assert!((f.scale - 0.3).abs() < 0.01 && (f.rotation_deg - 25.0).abs() < 1.5, "{f:?}");
    assert!(r.shifts[((7 + 2) * 20 + 9 + 3) * 2].is_nan(), "the hot pixel was used");
    assert!(r.pixels_used >= r.disk.pixels - 3, "{} of {}", r.pixels_used, r.disk.pixels);
}

fn mul(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let mut o = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            o[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    o
}

#[test]
fn the_model_fit_gives_rotation_transpose_defocus_and_astigmatism() {
    // s = U P (K - C): U = rotation by -40 deg then a transpose, P = 0.35 I - 0.06 M(30 deg)
    let (s2, c2) = (60f64.to_radians().sin(), 60f64.to_radians().cos());
    let p = [[0.35 - 0.06 * c2, -0.06 * s2], [-0.06 * s2, 0.35 + 0.06 * c2]];
    let a = mul(aberr::orthogonal(-40.0, true), p);
    let g = model_a(a, 100.0, 9);
    let optics = Optics { scan_step_a: 0.5, det_mrad: 1.0, energy_v: None };
    let params = TcbfParams { upsample: 1, optics: Some(optics), ..Default::default() };
    let r = run(&g, GEOM, &params, 1 << 30, &Progress::new("t", 0)).unwrap();
    let ab = r.aberrations.as_ref().unwrap();
    assert!(ab.transpose && (ab.rotation_deg + 40.0).abs() < 1.0, "{ab:?}");
    assert_eq!(ab.sign_from, aberr::SignFrom::Assumed);
    // 0.35 scan px per detector px = 0.175 Å per µrad... = 175 Å at 0.5 Å and 1 mrad
    let d = ab.defocus_A.unwrap() * aberr::DEFOCUS_SIGN;
    assert!((d - 175.0).abs() < 0.03 * 175.0, "{ab:?}");
    assert!((ab.astigmatism_A.unwrap() - 30.0).abs() < 5.0 && (ab.astigmatism_angle_deg - 30.0).abs() < 8.0, "{ab:?}");
    // the pairs found it; the pixels agree with it
    assert!(r.pairs.iter().filter(|p| p.used).count() >= 8, "{:?}", r.pairs);
    assert!(r.fit.as_ref().unwrap().rms_residual < 0.3, "{:?}", r.fit);
}

#[test]
fn no_structure_or_no_parallax_is_said_not_imaged() {
    // pure noise: nothing correlates
    let g = model_a([[0.3, 0.0], [0.0, 0.3]], 0.0, 0);
    let mut g = g;
    let [qr, qc, kr, kc] = g.shape;
    let fft = Fft2::new(qr, qc);
    for ky in 0..kr {
        for kx in (0..kc).filter(|&kx| (ky as f64 - C.0).hypot(kx as f64 - C.1) <= 6.0) {
            let mut img: Vec<Complex32> = (0..qr * qc)
                .map(|i| Complex32::new((50.0 + 7.0 * gauss(3, (ky * kc + kx) as u64, i as u64)) as f32, 0.0))
                .collect();
            fft.run_w(&mut img, false, &mut Work::default());
            for i in 0..qr {
                for j in 0..qc {
                    let q = ((i + qr / 2) % qr) * qc + (j + qc / 2) % qc;
                    g.data[(q * kr + ky) * kc + kx] = img[i * qc + j];
                }
            }
        }
    }
    let e = run(&g, GEOM, &TcbfParams::default(), 1 << 30, &Progress::new("t", 0)).unwrap_err();
    assert!(matches!(e, Error::NoParallax(_)) && e.to_string().contains("do not correlate"), "{e}");
    // structure but an in-focus probe: every pixel sees the same image
    let g = model_a([[0.0, 0.0], [0.0, 0.0]], 100.0, 5);
    let e = run(&g, GEOM, &TcbfParams::default(), 1 << 30, &Progress::new("t", 0)).unwrap_err();
    assert!(matches!(e, Error::NoParallax(_)) && e.to_string().contains("in focus"), "{e}");
}

#[test]
fn gathered_spectra_equal_the_transposed_and_ifftshifted_columns() {
    for (r, c) in [(5usize, 4usize), (4, 7), (6, 6)] {
        let hw = 9;
        let block: Vec<Complex32> = (0..r * c * hw).map(|i| Complex32::new(i as f32, -(i as f32) * 0.5)).collect();
        let ks = [0usize, 3, 4, 8];
        let got = super::gather_shifted(&block, hw, (r, c), &ks);
        for (g, &k) in got.iter().zip(&ks) {
            let column: Vec<Complex32> = (0..r * c).map(|q| block[q * hw + k]).collect();
            let mut want = vec![Complex32::default(); r * c];
            super::align::ifftshift2(&column, r, c, &mut want);
            assert_eq!(g, &want, "{r}x{c}, column {k}");
        }
    }
}
