//! Tilt-corrected / super-resolution BF through the real `emdtui tcbf` binary, on a synthetic
//! defocused-probe scan whose object (on a 4x finer grid) and parallax are known.

mod common;

use common::emdtui;
use emdtui::format::synth_tcbf::{FINE, Object, ParallaxSpec};
use ndarray::{Array2, Array3};
use std::path::{Path, PathBuf};

fn make(dir: &Path, name: &str, spec: &ParallaxSpec) -> PathBuf {
    let p = dir.join(name);
    spec.write(&p).unwrap();
    p
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa * sbb).sqrt()
}

/// Pearson correlation of a fine image with the fine object, away from a border of `m` scan px.
fn corr_fine(img: &Array2<f32>, obj: &[f32], spec: &ParallaxSpec, m: usize) -> f64 {
    let fc = spec.cols * FINE;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for y in m * FINE..(spec.rows - m) * FINE {
        for x in m * FINE..(spec.cols - m) * FINE {
            a.push(img[[y, x]] as f64);
            b.push(obj[y * fc + x] as f64);
        }
    }
    pearson(&a, &b)
}

/// Bilinear upsampling of a scan image onto the fine grid (same coordinate convention).
fn upsample(img: &Array2<f32>, f: usize) -> Array2<f32> {
    let (r, c) = img.dim();
    Array2::from_shape_fn((r * f, c * f), |(fy, fx)| {
        let y = ((fy as f64 + 0.5) / f as f64 - 0.5).clamp(0.0, (r - 1) as f64);
        let x = ((fx as f64 + 0.5) / f as f64 - 0.5).clamp(0.0, (c - 1) as f64);
        let (y0, x0) = ((y.floor() as usize).min(r - 2), (x.floor() as usize).min(c - 2));
        let (ty, tx) = (y - y0 as f64, x - x0 as f64);
        let v = |a: usize, b: usize| img[[a, b]] as f64;
        ((v(y0, x0) * (1.0 - tx) + v(y0, x0 + 1) * tx) * (1.0 - ty)
            + (v(y0 + 1, x0) * (1.0 - tx) + v(y0 + 1, x0 + 1) * tx) * ty) as f32
    })
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let out = emdtui().args(args).output().unwrap();
    assert!(out.status.success(), "emdtui {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn auto_tcbf_recovers_parallax_and_super_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ParallaxSpec::default();
    let mib = make(dir.path(), "defocus.mib", &spec);
    let (img_p, sh_p) = (dir.path().join("tcbf.npy"), dir.path().join("shifts.npy"));
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let args =
        ["tcbf", mib.to_str().unwrap(), "-o", &s(&img_p), "--upsample", "4", "--shifts-out", &s(&sh_p), "--json"];
    let j = run_json(&args);
    assert_eq!(j["origin"], "computed");
    let fit = &j["fit"];
    let (scale, rot) = (fit["scale"].as_f64().unwrap(), fit["rotation_deg"].as_f64().unwrap());
    assert!((scale - spec.scale).abs() < 0.01, "scale {scale}");
    assert!((rot - spec.rotation_deg).abs() < 2.0, "rotation {rot}");
    assert_eq!(fit["flip"], false);
    assert!(fit["rms_residual"].as_f64().unwrap() < 0.25, "{fit}");
    let disk_px = j["disk"]["pixels"].as_u64().unwrap();
    assert!(j["pixels_used"].as_u64().unwrap() as f64 > 0.7 * disk_px as f64, "{j}");

    // SHIFTS: (det rows, det cols, 2) float32, (dy, dx), I_K(r) = I_ref(r - s_K), NaN where unused
    let sh: Array3<f32> = ndarray_npy::read_npy(&sh_p).unwrap();
    assert_eq!(sh.dim(), (spec.det, spec.det, 2));
    let (mut e2, mut n, mut used_far) = (0.0, 0, 0);
    for y in 0..spec.det {
        for x in 0..spec.det {
            let k = (y as f64, x as f64);
            let d = (k.0 - spec.centre.0).hypot(k.1 - spec.centre.1);
            let got = (sh[[y, x, 0]] as f64, sh[[y, x, 1]] as f64);
            if d > spec.radius + 1.5 {
                assert!(got.0.is_nan() && got.1.is_nan(), "pixel ({y}, {x}) outside the disk has a shift {got:?}");
            } else if d <= 0.8 * spec.radius {
                assert!(got.0.is_finite(), "pixel ({y}, {x}) inside 0.8 r unused");
                let t = spec.shift(k);
                e2 += (got.0 - t.0).powi(2) + (got.1 - t.1).powi(2);
                n += 1;
                if d > 0.6 * spec.radius {
                    used_far += 1;
                }
            }
        }
    }
    let rms = (e2 / n as f64).sqrt();
    eprintln!("shift rms error inside 0.8 r: {rms:.3} scan px over {n} pixels");
    assert!(rms <= 0.25, "shift rms error {rms}");
    assert!(used_far > 50);

    // the 4x image against the fine object, and against the plain BF upsampled
    let img: Array2<f32> = ndarray_npy::read_npy(&img_p).unwrap();
    assert_eq!(img.dim(), (spec.rows * FINE, spec.cols * FINE));
    let obj = spec.object_fine(&Object::new(&spec));
    let r_tcbf = corr_fine(&img, &obj, &spec, 4);
    let emd = mib.with_extension("emd");
    let f = hdf5::File::open(&emd).unwrap();
    let plain: Array2<f32> = f.dataset("/emdtui/cache/tcbf_auto_x4/plain_bf").unwrap().read_2d().unwrap();
    drop(f);
    let r_plain = corr_fine(&upsample(&plain, FINE), &obj, &spec, 4);
    eprintln!("correlation with the fine object: tcBF x4 {r_tcbf:.3}, plain BF upsampled {r_plain:.3}");
    assert!(r_tcbf >= 0.9, "tcBF x4 correlation {r_tcbf}");
    assert!(r_tcbf > r_plain + 0.2, "tcBF {r_tcbf} not clearly better than the plain BF {r_plain}");

    // a second run uses the cache and gives the same image
    let j2 = run_json(&args);
    assert_eq!(j2["origin"], "cache");
    assert_eq!(j2["fit"], j["fit"]);
    let img2: Array2<f32> = ndarray_npy::read_npy(&img_p).unwrap();
    assert_eq!(img2, img);

    // 1x: Fourier shift-and-add on the scan grid, sharper than the plain BF too
    let one = dir.path().join("one.npy");
    let j1 = run_json(&["tcbf", mib.to_str().unwrap(), "-o", &s(&one), "--json"]);
    assert_eq!(j1["origin"], "computed");
    let img1: Array2<f32> = ndarray_npy::read_npy(&one).unwrap();
    assert_eq!(img1.dim(), (spec.rows, spec.cols));
    let r1 = corr_fine(&upsample(&img1, FINE), &obj, &spec, 4);
    eprintln!("tcBF x1 upsampled: {r1:.3}");
    assert!(r1 > r_plain + 0.1, "tcBF x1 {r1} vs plain {r_plain}");
}

#[test]
fn manual_mode_uses_the_given_model() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ParallaxSpec { seed: 11, ..Default::default() };
    let mib = make(dir.path(), "m.mib", &spec);
    let (img_p, sh_p) = (dir.path().join("m.npy"), dir.path().join("ms.npy"));
    // the true model in py4D-browser's terms: max_shift = -scale * max|k - k_com|, theta = rotation
    let max_shift = -spec.scale * spec.radius;
    let j = run_json(&[
        "tcbf",
        mib.to_str().unwrap(),
        "-o",
        img_p.to_str().unwrap(),
        "--shifts-out",
        sh_p.to_str().unwrap(),
        "--upsample",
        "4",
        "--manual",
        "--max-shift",
        &max_shift.to_string(),
        "--theta",
        &spec.rotation_deg.to_string(),
        "--json",
    ]);
    assert!(j["fit"].is_null());
    let sh: Array3<f32> = ndarray_npy::read_npy(&sh_p).unwrap();
    let mut worst = 0f64;
    for y in 0..spec.det {
        for x in 0..spec.det {
            let k = (y as f64, x as f64);
            if (k.0 - spec.centre.0).hypot(k.1 - spec.centre.1) <= 0.8 * spec.radius {
                let t = spec.shift(k);
                worst = worst.max((sh[[y, x, 0]] as f64 - t.0).hypot(sh[[y, x, 1]] as f64 - t.1));
            }
        }
    }
    assert!(worst < 0.2, "manual shifts differ from the model by {worst}");
    let img: Array2<f32> = ndarray_npy::read_npy(&img_p).unwrap();
    let r = corr_fine(&img, &spec.object_fine(&Object::new(&spec)), &spec, 4);
    assert!(r > 0.85, "manual tcBF correlation {r}");
    // the opposite sign blurs
    let bad = dir.path().join("bad.npy");
    run_json(&[
        "tcbf",
        mib.to_str().unwrap(),
        "-o",
        bad.to_str().unwrap(),
        "--upsample",
        "4",
        "--manual",
        "--max-shift",
        &(-max_shift).to_string(),
        "--theta",
        &spec.rotation_deg.to_string(),
        "--json",
    ]);
    let rb = corr_fine(&ndarray_npy::read_npy(&bad).unwrap(), &spec.object_fine(&Object::new(&spec)), &spec, 4);
    assert!(rb < r - 0.3, "wrong sign {rb} vs {r}");
}

#[test]
fn bad_input_gives_one_clear_error_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ParallaxSpec { rows: 8, cols: 8, det: 32, centre: (15.5, 15.5), radius: 6.0, ..Default::default() };
    let mib = make(dir.path(), "small.mib", &spec);
    let row = make(dir.path(), "row.mib", &ParallaxSpec { rows: 1, cols: 64, ..spec.clone() });
    let out = dir.path().join("o.npy");
    let o = out.to_str().unwrap();
    let m = mib.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["tcbf", m, "-o", o, "--upsample", "0"], "--upsample 0: use 1..=8"),
        (vec!["tcbf", m, "-o", o, "--upsample", "9"], "--upsample 9: use 1..=8"),
        (vec!["tcbf", row.to_str().unwrap(), "-o", o], "at least 8x8 positions; this scan is 1x64"),
        (vec!["tcbf", m, "-o", o, "--manual"], "--manual needs --max-shift"),
        (vec!["tcbf", m, "-o", o, "--max-shift", "2"], "only apply with --manual"),
        (vec!["tcbf", m, "-o", o, "--shifts-out", "s.tiff"], "written as .npy"),
        (vec!["tcbf", m, "-o", "x.jpg"], "unknown output format"),
        (vec!["tcbf", "/nonexistent/a.mib", "-o", o], "a.mib"),
    ];
    for (args, want) in cases {
        let r = emdtui().current_dir(dir.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: stderr {err:?} lacks {want:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    // none of them converted anything
    assert!(!mib.with_extension("emd").exists() && !row.with_extension("emd").exists());
    // a budget too small for the fine grid: refused before the image is made, no output (the
    // FFT is made first with a budget it fits)
    emdtui().args(["fft", m]).assert().success();
    let r = emdtui().args(["--memory", "30K", "tcbf", m, "-o", o, "--upsample", "8"]).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("memory budget 30 KiB too small") && err.contains("fine grid"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists());
}

#[test]
fn synth_defocus_flag_writes_a_scan_tcbf_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mib = dir.path().join("d.mib");
    emdtui().args(["synth", mib.to_str().unwrap(), "--scan", "24x24", "--defocus"]).assert().success();
    let out = dir.path().join("d.tiff");
    let j = run_json(&["tcbf", mib.to_str().unwrap(), "-o", out.to_str().unwrap(), "--upsample", "2", "--json"]);
    let fit = &j["fit"];
    assert!((fit["scale"].as_f64().unwrap() - 0.25).abs() < 0.02, "{fit}");
    assert!((fit["rotation_deg"].as_f64().unwrap() - 25.0).abs() < 3.0, "{fit}");
    assert_eq!(j["image_shape"], serde_json::json!([48, 48]));
    assert!(out.is_file());
}
