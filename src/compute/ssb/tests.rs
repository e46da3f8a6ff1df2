//! SSB of a synthetic weak-phase object whose spectrum is known: three plane waves inside the
//! trotter band, imaged with an exact (periodic) probe and far-field model.

use super::*;
use rustfft::FftPlanner;

/// Object grid (1 Å pixels), scan positions per side, scan step (object px), aperture (K px).
const M: usize = 48;
const S: usize = 24;
const STEP: usize = 2;
const APERTURE: f64 = 8.0;
/// The object's plane waves: (Q col, Q row) index on the scan grid and amplitude (rad).
const WAVES: [((i64, i64), f64); 3] = [((3, 5), 0.02), ((-7, 2), 0.02), ((-4, 7), 0.02)];
const ENERGY_V: f64 = 200e3;

struct Mem {
    g: Vec<Complex32>,
    shape: [usize; 4],
}

impl QSource for Mem {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn q_chunk(&self) -> usize {
        5
    }
    fn read_q_rows(&self, rows: Range<usize>) -> Result<Vec<Complex32>> {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        Ok(self.g[rows.start * per..rows.end * per].to_vec())
    }
}

fn fft2(buf: &mut [Complex64], n: usize, m: usize, inverse: bool) {
    let mut p = FftPlanner::<f64>::new();
    let (fr, fc) = if inverse {
        (p.plan_fft_inverse(m), p.plan_fft_inverse(n))
    } else {
        (p.plan_fft_forward(m), p.plan_fft_forward(n))
    };
    buf.chunks_mut(m).for_each(|r| fr.process(r));
    let mut t = vec![Complex64::default(); n * m];
    transpose::transpose(buf, &mut t, m, n);
    t.chunks_mut(n).for_each(|c| fc.process(c));
    transpose::transpose(&t, buf, n, m);
}

/// Frequency index of position i on an unshifted axis of n.
fn f(i: usize, n: usize) -> i64 {
    if i < n.div_ceil(2) { i as i64 } else { i as i64 - n as i64 }
}

fn phi(x: usize, y: usize) -> f64 {
    let per = (M / S / STEP) as f64; // one scan-grid frequency step = 1 / (S STEP) cycles per px
    WAVES
        .iter()
        .map(|&((qx, qy), e)| {
            e * (2.0 * std::f64::consts::PI * (qx as f64 * x as f64 + qy as f64 * y as f64) * per / M as f64).cos()
        })
        .sum()
}

/// G(Q, K) of the object scanned by a probe with `defocus_a`; `transpose` swaps the detector axes.
fn simulate(defocus_a: f64, transpose: bool) -> Mem {
    let lambda = crate::compute::calib::electron_wavelength_a(ENERGY_V);
    let chi = Chi { wavelength_a: lambda, defocus_a };
    let mut probe = vec![Complex64::default(); M * M];
    for y in 0..M {
        for x in 0..M {
            let (ky, kx) = (f(y, M) as f64, f(x, M) as f64);
            if ky.hypot(kx) < APERTURE {
                probe[y * M + x] = Complex64::from_polar(1.0, -chi.at((kx / M as f64, ky / M as f64)));
            }
        }
    }
    fft2(&mut probe, M, M, true);
    let obj: Vec<Complex64> = (0..M * M).map(|i| Complex64::from_polar(1.0, phi(i % M, i / M))).collect();
    // I(R, K), fftshifted detector
    let mut data = vec![0f64; S * S * M * M];
    for r in 0..S * S {
        let (ry, rx) = ((r / S) * STEP, (r % S) * STEP);
        let mut w: Vec<Complex64> = (0..M * M)
            .map(|i| {
                let (y, x) = (i / M, i % M);
                probe[((y + M - ry) % M) * M + (x + M - rx) % M] * obj[i]
            })
            .collect();
        fft2(&mut w, M, M, false);
        for ky in 0..M {
            for kx in 0..M {
                let (sy, sx) = ((ky + M / 2) % M, (kx + M / 2) % M);
                let (dy, dx) = if transpose { (sx, sy) } else { (sy, sx) };
                data[r * M * M + dy * M + dx] = w[ky * M + kx].norm_sqr();
            }
        }
    }
    // G(Q, K): FFT over the scan per K, Q fftshifted
    let mut g = vec![Complex32::default(); S * S * M * M];
    let mut img = vec![Complex64::default(); S * S];
    for k in 0..M * M {
        for (r, v) in img.iter_mut().enumerate() {
            *v = Complex64::new(data[r * M * M + k], 0.0);
        }
        fft2(&mut img, S, S, false);
        for (r, v) in img.iter().enumerate() {
            let (qy, qx) = ((r / S + S / 2) % S, (r % S + S / 2) % S);
            g[(qy * S + qx) * M * M + k] = Complex32::new(v.re as f32, v.im as f32);
        }
    }
    Mem { g, shape: [S, S, M, M] }
}

fn params(defocus_a: f64, orientation: Option<(f64, bool)>) -> SsbParams {
    let lambda = crate::compute::calib::electron_wavelength_a(ENERGY_V);
    SsbParams {
        energy_v: ENERGY_V,
        // a = APERTURE / M 1/Å = alpha / lambda
        angular: Angular::AlphaMrad(APERTURE / M as f64 * lambda * 1e3),
        scan_step_a: STEP as f64,
        defocus_a,
        disk: Some(((M as f64 / 2.0, M as f64 / 2.0), APERTURE)),
        rotation_deg: orientation.map(|o| o.0),
        flip: orientation.map(|o| o.1),
    }
}

fn geom() -> KGeometry {
    KGeometry { det: (M, M), origin: (0, 0), bin: 1 }
}

/// The phase image's spectrum (unshifted, numpy fft2 convention).
fn spectrum(img: &[f32]) -> Vec<Complex64> {
    let mut b: Vec<Complex64> = img.iter().map(|&v| Complex64::new(v as f64, 0.0)).collect();
    fft2(&mut b, S, S, false);
    b
}

/// Largest deviation of the phase spectrum from the object's, relative to a wave's amplitude in
/// the spectrum (e / 2 * positions), over all Q != 0.
fn spectrum_error(phase: &[f32]) -> f64 {
    let sp = spectrum(phase);
    let n = (S * S) as f64;
    let mut worst = 0f64;
    for i in 0..S {
        for j in 0..S {
            if i == 0 && j == 0 {
                continue;
            }
            let (qy, qx) = (f(i, S), f(j, S));
            let want: f64 = WAVES
                .iter()
                .filter(|&&((wx, wy), _)| (wx, wy) == (qx, qy) || (wx, wy) == (-qx, -qy))
                .map(|&(_, e)| e / 2.0 * n)
                .sum();
            let err = (sp[i * S + j] - Complex64::new(want, 0.0)).norm() / (0.01 * n);
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn in_focus_ssb_recovers_the_object_spectrum() {
    let src = simulate(0.0, false);
    let r = run(&src, geom(), &params(0.0, Some((0.0, false))), 1 << 30, &Progress::new("t", 0)).unwrap();
    let e = spectrum_error(&r.phase);
    assert!(e < 0.05, "spectrum deviates by {e:.3} of a wave's amplitude");
    // all but Q = 0 and the corners beyond 2a (|Q| = 12 sqrt 2 > 16 K px)
    assert!(r.summary.q_with_trotter > 0.98 && r.summary.q_with_trotter < 1.0, "{}", r.summary.q_with_trotter);
    let amp_mean = r.amplitude.iter().map(|&v| v as f64).sum::<f64>() / (S * S) as f64;
    assert!((amp_mean - 1.0).abs() < 0.01, "amplitude about 1: {amp_mean}");
    assert_eq!(r.summary.cache_passes, 1);
}

#[test]
fn orientation_is_found_as_dpc_finds_it_and_a_transposed_detector_works() {
    let src = simulate(0.0, false);
    let r = run(&src, geom(), &params(0.0, None), 1 << 30, &Progress::new("t", 0)).unwrap();
    let d = (r.summary.rotation_deg + 180.0).rem_euclid(360.0) - 180.0;
    assert!(d.abs() < 2.0 && !r.summary.flip, "rotation {} flip {}", r.summary.rotation_deg, r.summary.flip);
    assert!(spectrum_error(&r.phase) < 0.05);
    // transposed detector: mirror plus a quarter turn; found, and given
    let t = simulate(0.0, true);
    let r = run(&t, geom(), &params(0.0, None), 1 << 30, &Progress::new("t", 0)).unwrap();
    assert!(r.summary.flip && (r.summary.rotation_deg - 270.0).abs() < 2.0, "{:?}", r.summary);
    assert!(spectrum_error(&r.phase) < 0.05);
    let r = run(&t, geom(), &params(0.0, Some((270.0, true))), 1 << 30, &Progress::new("t", 0)).unwrap();
    assert!(spectrum_error(&r.phase) < 0.05);
}

#[test]
fn known_defocus_is_corrected_and_uncorrected_is_wrong() {
    let df = 1000.0;
    let src = simulate(df, false);
    // small budget: several bands, two passes over the source
    let budget = 3 * (S * M * M * 16) as u64;
    let r = run(&src, geom(), &params(df, Some((0.0, false))), budget, &Progress::new("t", 0)).unwrap();
    assert_eq!(r.summary.cache_passes, 2);
    let e = spectrum_error(&r.phase);
    assert!(e < 0.05, "corrected: {e:.3}");
    let u = run(&src, geom(), &params(0.0, Some((0.0, false))), 1 << 30, &Progress::new("t", 0)).unwrap();
    let eu = spectrum_error(&u.phase);
    assert!(eu > 0.3, "uncorrected should be wrong: {eu:.3}");
    let w = run(&src, geom(), &params(-df, Some((0.0, false))), 1 << 30, &Progress::new("t", 0)).unwrap();
    assert!(spectrum_error(&w.phase) > 0.3, "the opposite sign should be wrong");
}

#[test]
fn coarse_step_and_uncovered_disk_are_clear_errors() {
    let src = simulate(0.0, false);
    let mut p = params(0.0, Some((0.0, false)));
    p.scan_step_a = 4.0; // Nyquist 0.125 < a = 1/6
    let e = run(&src, geom(), &p, 1 << 30, &Progress::new("t", 0)).unwrap_err().to_string();
    assert!(e.contains("too coarse"), "{e}");
    let mut p = params(0.0, Some((0.0, false)));
    p.disk = Some(((5.0, 24.0), 8.0));
    let e = run(&src, geom(), &p, 1 << 30, &Progress::new("t", 0)).unwrap_err().to_string();
    assert!(e.contains("does not cover"), "{e}");
}

/// Of |G(Q, K)|^2 at each wave's Q, the smallest fraction the overlay's trotters hold, and the
/// number of disk pixels the overlay puts in another trotter than SSB's own sums do (`run`'s
/// mapping of the pixels to the scan frame with the result's rotation and flip).
fn overlay_coverage(src: &Mem, r: &SsbResult, truth: &SsbResult) -> (f64, usize) {
    use super::overlay::{Trotter, TrotterOverlay};
    let nk = M * M;
    let t = &truth.summary;
    let disk = KDisk { centre: (M as f64 / 2.0, M as f64 / 2.0), radius: APERTURE, centre_det: [0.0; 2] };
    let (idx, mut px): (Vec<usize>, Vec<Pixel>) = mask_pixels(&disk, M, M).unwrap().into_iter().unzip();
    let chi = Chi { wavelength_a: t.wavelength_a, defocus_a: 0.0 };
    orient(&mut px, t.rotation_deg, t.flip, t.disk_radius_inv_a / APERTURE, &chi);
    let a2 = t.disk_radius_inv_a.powi(2);
    let mut worst = 1f64;
    let mut wrong = 0;
    for &((qx, qy), _) in &WAVES {
        let q = ((S as i64 / 2 + qy) as usize, (S as i64 / 2 + qx) as usize);
        let o = TrotterOverlay::new(r, geom(), src.shape, q).unwrap();
        let g = &src.g[(q.0 * S + q.1) * nk..(q.0 * S + q.1 + 1) * nk];
        let (mut inside, mut all) = (0f64, 0f64);
        for (i, v) in g.iter().enumerate() {
            all += v.norm_sqr() as f64;
            if o.trotter_at((i / M, i % M)) != Trotter::None {
                inside += v.norm_sqr() as f64;
            }
        }
        worst = worst.min(inside / all);
        // SSB's trotters at this Q (1/Å, x along scan columns)
        let qv = (qx as f64 / (S * STEP) as f64, qy as f64 / (S * STEP) as f64);
        for (i, p) in idx.iter().zip(&px).filter(|(_, p)| p.in_disk) {
            let d2 = |sg: f64| (p.k.0 - sg * qv.0).powi(2) + (p.k.1 - sg * qv.1).powi(2) < a2;
            let want = match (d2(1.0), d2(-1.0)) {
                (true, false) => Trotter::Plus,
                (false, true) => Trotter::Minus,
                _ => Trotter::None,
            };
            wrong += usize::from(o.trotter_at((i / M, i % M)) != want);
        }
    }
    (worst, wrong)
}

#[test]
fn the_trotter_overlay_holds_the_signal_of_each_wave() {
    for transpose in [false, true] {
        let src = simulate(0.0, transpose);
        let r = run(&src, geom(), &params(0.0, None), 1 << 30, &Progress::new("t", 0)).unwrap();
        let (f, wrong) = overlay_coverage(&src, &r, &r);
        assert!(f > 0.97, "transpose {transpose}: trotters hold {f:.3} of |G|^2");
        assert_eq!(wrong, 0, "transpose {transpose}: pixels in another trotter than SSB sums");
        // a quarter turn off misses a third of the signal (these Q are short: the lenses of the
        // two orientations overlap); half a turn holds it all but swaps T+ and T-: both are seen
        let mut turned = r.clone();
        turned.summary.rotation_deg += 90.0;
        let (f, wrong) = overlay_coverage(&src, &turned, &r);
        assert!(f < 0.85 && wrong > 50, "transpose {transpose}: a quarter turn holds {f:.3}, {wrong} pixels differ");
        turned.summary.rotation_deg += 90.0;
        let (f, wrong) = overlay_coverage(&src, &turned, &r);
        assert!(f > 0.97 && wrong > 50, "transpose {transpose}: half a turn holds {f:.3}, {wrong} pixels differ");
    }
}
