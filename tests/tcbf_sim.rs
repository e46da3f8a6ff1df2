//! tcBF on abTEM multislice simulations (`scripts/simulate.py`, cases in `$EMDTUI_SIMDATA`):
//! the fitted defocus and scan rotation against the simulated ones and the 4x image against the
//! simulated weak-phase tcBF image, on a crystal (MoS2) and an amorphous film (carbon with Au),
//! without being told the geometry; and "no parallax found" on vacuum.

mod common;

use common::emdtui;
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// The case's `.mib` and parsed `truth.json` (`common::simdata`: fails with how to make the
/// cases when `EMDTUI_SIMDATA` is not set).
fn case(name: &str) -> (PathBuf, serde_json::Value) {
    let d = common::simdata::dir().join(name);
    let truth = std::fs::read_to_string(d.join("truth.json"))
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/simulate.py)", d.display()));
    (d.join(format!("{name}.mib")), serde_json::from_str(&truth).unwrap())
}

fn f(t: &serde_json::Value, k: &str) -> f64 {
    t[k].as_f64().unwrap_or_else(|| panic!("truth.json lacks {k}"))
}

/// `emdtui tcbf` with the calibration of the truth file (and not the geometry).
fn tcbf(mib: &Path, t: &serde_json::Value, dir: &Path, extra: &[&str]) -> (std::process::Output, PathBuf) {
    let out = dir.join("tcbf.npy");
    let emd = dir.join("x.emd");
    let mut args: Vec<String> = vec![
        "tcbf".into(),
        mib.to_str().unwrap().into(),
        "--emd".into(),
        emd.to_str().unwrap().into(),
        "-o".into(),
        out.to_str().unwrap().into(),
        "--json".into(),
        format!("--scan-step={}A", f(t, "scan_step_A")),
        format!("--alpha={}mrad", f(t, "alpha_mrad")),
        format!("--energy={}V", f(t, "energy_V")),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = emdtui().env("EMDTUI_CACHE_DIR", dir).args(&args).output().unwrap();
    (o, out)
}

/// Pearson correlation of `a` and `b[y + dy, x + dx]` over the interior (`m` pixels from each
/// edge of `a`).
fn pearson_at(a: &Array2<f64>, b: &Array2<f64>, m: usize, (dy, dx): (isize, isize)) -> f64 {
    let (r, c) = a.dim();
    let (mut sa, mut sb, mut saa, mut sbb, mut sab, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for y in m..r - m {
        for x in m..c - m {
            let (u, v) = (a[[y, x]], b[[(y as isize + dy) as usize, (x as isize + dx) as usize]]);
            sa += u;
            sb += v;
            saa += u * u;
            sbb += v * v;
            sab += u * v;
            n += 1.0;
        }
    }
    (sab / n - sa * sb / n / n) / ((saa / n - (sa / n).powi(2)) * (sbb / n - (sb / n).powi(2))).sqrt()
}

/// `img` moved by (dy, dx) pixels (periodic, Fourier shift): out(r) = img(r - d).
fn fourier_shift(img: &Array2<f64>, dy: f64, dx: f64) -> Array2<f64> {
    use rustfft::{FftPlanner, num_complex::Complex64};
    let (r, c) = img.dim();
    let mut pl = FftPlanner::<f64>::new();
    let (fr, fc, ir, ic) =
        (pl.plan_fft_forward(r), pl.plan_fft_forward(c), pl.plan_fft_inverse(r), pl.plan_fft_inverse(c));
    let mut g: Vec<Complex64> = img.iter().map(|&v| Complex64::new(v, 0.0)).collect();
    let rows_then_cols = |g: &mut Vec<Complex64>,
                          f_c: &std::sync::Arc<dyn rustfft::Fft<f64>>,
                          f_r: &std::sync::Arc<dyn rustfft::Fft<f64>>| {
        for row in g.chunks_mut(c) {
            f_c.process(row);
        }
        let mut t = vec![Complex64::default(); r * c];
        transpose::transpose(g, &mut t, c, r);
        for col in t.chunks_mut(r) {
            f_r.process(col);
        }
        transpose::transpose(&t, g, r, c);
    };
    rows_then_cols(&mut g, &fc, &fr);
    let freq = |i: usize, n: usize| if i <= n / 2 { i as f64 / n as f64 } else { i as f64 / n as f64 - 1.0 };
    for y in 0..r {
        for x in 0..c {
            let ph = -2.0 * std::f64::consts::PI * (freq(y, r) * dy + freq(x, c) * dx);
            g[y * c + x] *= Complex64::from_polar(1.0, ph);
        }
    }
    rows_then_cols(&mut g, &ic, &ir);
    Array2::from_shape_fn((r, c), |(y, x)| g[y * c + x].re / (r * c) as f64)
}

/// The Pearson correlation of `a` with `b` moved by the shift within `w` pixels that makes it
/// largest in absolute value (integer search, then refined on a 1/4-pixel grid by Fourier
/// shifts), over the interior `m` pixels from each edge: (correlation with its sign, shift).
fn best_corr(a: &Array2<f32>, b: &Array2<f32>, m: usize, w: isize) -> (f64, (f64, f64)) {
    let a = a.mapv(|v| v as f64);
    let b = b.mapv(|v| v as f64);
    let mut best = (0.0f64, (0isize, 0isize));
    for dy in -w..=w {
        for dx in -w..=w {
            let p = pearson_at(&a, &b, m, (dy, dx));
            if p.abs() > best.0.abs() {
                best = (p, (dy, dx));
            }
        }
    }
    let (iy, ix) = best.1;
    let mut fine = (best.0, (iy as f64, ix as f64));
    for sy in -3..=3 {
        for sx in -3..=3 {
            let (fy, fx) = (sy as f64 * 0.25, sx as f64 * 0.25);
            // b(r + i + f) = (b moved by -f)(r + i)
            let p = pearson_at(&a, &fourier_shift(&b, -fy, -fx), m, (iy, ix));
            if p.abs() > fine.0.abs() {
                fine = (p, (iy as f64 + fy, ix as f64 + fx));
            }
        }
    }
    fine
}

fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

fn check_defocused(name: &str, min_corr: f64) {
    let (mib, t) = case(name);
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = tcbf(&mib, &t, dir.path(), &["--upsample", "4"]);
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ab = &j["aberrations"];
    eprintln!("{name}: {ab}\nfit {}", j["fit"]);
    let (df, want_df) = (ab["defocus_A"].as_f64().unwrap(), f(&t, "defocus_A"));
    let (rot, want_rot) = (ab["rotation_deg"].as_f64().unwrap(), f(&t, "scan_rotation_deg"));
    assert_eq!(ab["sign_from"], "contrast");
    assert!((df - want_df).abs() <= 0.1 * want_df, "{name}: defocus {df} A, simulated {want_df} A");
    assert!(angle_diff(rot, want_rot) <= 2.0, "{name}: rotation {rot} deg, simulated {want_rot} deg");
    assert_eq!(ab["transpose"].as_bool().unwrap(), t["transpose"].as_bool().unwrap(), "{name}: transpose");
    // two-fold astigmatism, abTEM's (C12, phi12)
    let (a1, want_a1) = (ab["astigmatism_A"].as_f64().unwrap(), f(&t, "astigmatism_A"));
    assert!((a1 - want_a1).abs() <= 5.0 + 0.1 * want_a1, "{name}: astigmatism {a1} A, simulated {want_a1} A");
    if want_a1 > 0.0 {
        let (phi, want_phi) = (ab["astigmatism_angle_deg"].as_f64().unwrap(), f(&t, "astigmatism_angle_deg"));
        let d = (phi - want_phi).rem_euclid(180.0);
        assert!(d.min(180.0 - d) <= 10.0, "{name}: astigmatism angle {phi} deg, simulated {want_phi} deg");
    }
    let img: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    let ideal: Array2<f32> = ndarray_npy::read_npy(mib.with_file_name("tcbf_ideal_4x.npy")).unwrap();
    assert_eq!(img.dim(), ideal.dim());
    let (r, sh) = best_corr(&img, &ideal, 24, 8);
    eprintln!("{name}: 4x image vs the ideal tcBF image: {r:.3} at shift {sh:?} (fine px)");
    assert!(r.abs() >= min_corr, "{name}: correlation {r} with the ideal tcBF image");
    // the phase-flipped image transfers the potential with one sign: positive correlation
    let (o, out) = tcbf(&mib, &t, dir.path(), &["--upsample", "4", "--ctf-correct"]);
    assert!(o.status.success(), "{name} --ctf-correct: {}", String::from_utf8_lossy(&o.stderr));
    let pot: Array2<f32> = ndarray_npy::read_npy(mib.with_file_name("potential_4x.npy")).unwrap();
    let (rp, _) = best_corr(&ndarray_npy::read_npy(&out).unwrap(), &pot, 24, 8);
    let (raw, _) = best_corr(&img, &pot, 24, 8);
    eprintln!("{name}: against the potential: --ctf-correct {rp:.3}, uncorrected {raw:.3}");
    assert!(rp >= 0.7 && rp > raw.abs() + 0.3, "{name}: --ctf-correct {rp}, uncorrected {raw}");
}

#[test]
fn crystal_mos2_defocus_rotation_and_image() {
    check_defocused("mos2_df", 0.95);
}

#[test]
fn amorphous_carbon_au_defocus_rotation_and_image() {
    check_defocused("carbon_au_df", 0.95);
}

#[test]
fn vacuum_says_no_parallax_and_writes_nothing() {
    let (mib, t) = case("vacuum_df");
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = tcbf(&mib, &t, dir.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "vacuum: tcbf succeeded: {err}");
    assert!(err.contains("no parallax found"), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["parallax_found"], false);
    assert!(!out.exists());
}
