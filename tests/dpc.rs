//! DPC end to end through the real read path: a synthetic phase object written as a Merlin
//! `.mib` (BF disk shifted by gain * F R(-theta) grad(phi) + a descan plane, Poisson counts) and
//! `emdtui dpc` on it: rotation within 1 degree, the right flip, iCoM correlating with phi at
//! r >= 0.95 with positive peaks, found and given; the cache; bad input leaving no output; hot
//! pixels of the real files; calibration remembered and written into EMD output.

use emdtui::dataset::{self, OpenOptions};
use emdtui::format::synth::{self, SynthSpec};
use std::path::{Path, PathBuf};

const ROWS: usize = 40;
const COLS: usize = 48;
const DET: usize = 64;
const THETA: f64 = 27.0;
const FLIP: bool = true;
const ATOMS: [(f64, f64); 6] = [(8.0, 10.0), (12.0, 33.0), (20.0, 22.0), (29.0, 9.0), (31.0, 38.0), (22.0, 44.0)];

fn phi(y: f64, x: f64) -> (f64, f64, f64) {
    // sparse, narrow atoms: a descan plane fitted to the CoM also takes the plane part of
    // grad(phi), i.e. a bowl of depth ~ mean(phi) in the phase (the two cannot be told apart),
    // so a specimen covering little of the field keeps that bias small
    let s2 = 4.0;
    let (mut p, mut gx, mut gy) = (0.0, 0.0, 0.0);
    for (ay, ax) in ATOMS {
        let (dy, dx) = (y - ay, x - ax);
        let e = (-(dx * dx + dy * dy) / (2.0 * s2)).exp();
        p += e;
        gx -= dx / s2 * e;
        gy -= dy / s2 * e;
    }
    (p, gx, gy)
}

/// Knuth's Poisson sampler on a per-frame xorshift.
fn poisson(lambda: f64, s: &mut u64) -> u32 {
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        p *= (*s >> 11) as f64 / (1u64 << 53) as f64;
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn phase_object_mib(dir: &Path) -> PathBuf {
    let spec = SynthSpec { rows: ROWS, cols: COLS, det: DET, depth: 12, hdr: true, ..Default::default() };
    let out = dir.join("phase.mib");
    let gain = 5.0;
    synth::write_with(&out, &spec, &|i, f| {
        let (r, c) = ((i / COLS) as f64, (i % COLS) as f64);
        let (_, gx, gy) = phi(r, c);
        // d = F R(-theta) gain grad(phi) + descan
        let (s, co) = (-THETA).to_radians().sin_cos();
        let (vx, vy) = (gain * gx, gain * gy);
        let (mut dx, dy) = (co * vx - s * vy, s * vx + co * vy);
        if FLIP {
            dx = -dx;
        }
        let dx = dx + 0.5 + 0.015 * c - 0.01 * r;
        let dy = dy - 0.3 + 0.005 * c + 0.012 * r;
        let (cy, cx) = (31.5 + dy, 31.5 + dx);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        for y in 0..DET {
            for x in 0..DET {
                let d = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt();
                let inside = (8.5 - d).clamp(0.0, 1.0);
                f[y * DET + x] = poisson(0.2 + 30.0 * inside, &mut seed);
            }
        }
    })
    .unwrap();
    out
}

fn emdtui(cache: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("emdtui").unwrap();
    c.env("EMDTUI_CACHE_DIR", cache);
    c
}

fn read_npy(p: &Path) -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap();
    assert_eq!(a.dim(), (ROWS, COLS));
    a.iter().copied().collect()
}

fn corr(a: &[f32], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut s, mut sa, mut sb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64 - ma, y - mb);
        s += x * y;
        sa += x * x;
        sb += y * y;
    }
    s / (sa * sb).sqrt()
}

fn run_dpc(mib: &Path, out: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let o = emdtui(cache).arg("dpc").arg(mib).arg("-o").arg(out).arg("--json").args(extra).output().unwrap();
    assert!(o.status.success(), "dpc failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn check_phase(out: &Path, j: &serde_json::Value) {
    let found = j["rotation_deg"].as_f64().unwrap();
    let dt = (found - THETA + 540.0).rem_euclid(360.0) - 180.0;
    assert!(dt.abs() < 1.0, "rotation {found} vs {THETA}: {j}");
    assert_eq!(j["flip"].as_bool(), Some(FLIP), "{j}");
    let img = read_npy(out);
    let truth: Vec<f64> = (0..ROWS * COLS).map(|i| phi((i / COLS) as f64, (i % COLS) as f64).0).collect();
    let r = corr(&img, &truth);
    eprintln!("rotation {found:.3} deg (true {THETA}), flip {}, iCoM vs phi r = {r:.4}", j["flip"]);
    assert!(r >= 0.95, "iCoM vs phi: r = {r}");
    // positive peaks: every atom is above the image median
    let mut s = img.clone();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = s[s.len() / 2];
    for (ay, ax) in ATOMS {
        let v = img[ay as usize * COLS + ax as usize];
        assert!(v > med, "atom at ({ay},{ax}) is {v}, median {med}: peaks must be positive");
    }
    for sfx in ["comx", "comy"] {
        let p = out.with_file_name(format!("phase_{sfx}.npy"));
        assert!(p.is_file(), "{} missing", p.display());
    }
}

#[test]
fn phase_object_rotation_flip_and_icom_found_and_given() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mib = phase_object_mib(dir.path());
    let out = dir.path().join("phase.npy");
    let j = run_dpc(&mib, &out, &cache, &[]);
    check_phase(&out, &j);
    assert!(j["curl_ratio"].as_f64().unwrap() < 0.3, "{j}");
    assert_eq!(j["origin"], "computed");
    // descan plane reported: the slopes put in
    let dx = &j["descan"]["comx"];
    assert!((dx["b_col"].as_f64().unwrap() - 0.015).abs() < 0.005, "{j}");
    assert!((j["descan"]["comy"]["c_row"].as_f64().unwrap() - 0.012).abs() < 0.005, "{j}");
    // given rotation and flip: same result, read from the cache this time
    let j2 = run_dpc(&mib, &out, &cache, &["--rotation", "27", "--flip", "yes"]);
    check_phase(&out, &j2);
    assert_eq!(j2["rotation_found"], false);
    assert_eq!(j2["origin"], "loaded from cache");
}

#[test]
fn bad_dpc_input_is_a_clear_error_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mib = phase_object_mib(dir.path());
    let bad_mask = dir.path().join("m.npy");
    ndarray_npy::write_npy(&bad_mask, &ndarray::Array2::<f32>::ones((10, 12))).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--rotation".into(), "abc".into()], "not a number"),
        (vec!["--mask".into(), bad_mask.display().to_string()], "does not match"),
        (vec!["--scan-step".into(), "0.5".into()], "no units"),
        (vec!["--alpha".into(), "20".into()], "no units"),
        (vec!["--scan".into(), "1x1920".into()], "1x1920"),
        (vec!["--flip".into(), "maybe".into()], "--flip"),
        (vec!["--descan".into(), "cubic".into()], "--descan"),
    ];
    for (args, want) in cases {
        let out = dir.path().join("o.npy");
        let o = emdtui(&cache).arg("dpc").arg(&mib).arg("-o").arg(&out).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        for p in ["o.npy", "o_comx.npy", "o_comy.npy"] {
            assert!(!dir.path().join(p).exists(), "{args:?} left {p}");
        }
    }
}

fn testdata() -> PathBuf {
    std::env::var_os("EMDTUI_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mib"))
}

#[test]
fn hot_pixel_of_the_real_files_is_found() {
    let root = testdata();
    let mut files: Vec<PathBuf> = ["epsic_tools", "rosettasciio"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mib"))
        .collect();
    files.sort();
    let mut named = 0;
    for p in files {
        let ds = dataset::open(&p, &OpenOptions::default()).unwrap();
        let (_, b) = emdtui::ops::dpc::bad_pixels(ds.as_ref(), &[]).unwrap();
        let hot = b.coords(&b.hot);
        eprintln!(
            "{}: {} hot {:?}{}, {} dead",
            p.file_name().unwrap().to_string_lossy(),
            hot.len(),
            &hot[..hot.len().min(12)],
            if hot.len() > 12 { " ..." } else { "" },
            b.dead.len()
        );
        if p.to_string_lossy().contains("hot_pixel_52x_39y") {
            named += 1;
            assert!(hot.contains(&(39, 52)), "{}: hot pixels {hot:?}", p.display());
            assert!(hot.len() <= 3, "{}: MAD = 0 must not flag every non-zero pixel: {hot:?}", p.display());
        }
    }
    assert_eq!(named, 2, "both hot-pixel files checked");
}

#[test]
fn calibration_is_remembered_and_written_into_the_emd() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mib = phase_object_mib(dir.path());
    let emd = dir.path().join("a.emd");
    let o = emdtui(&cache)
        .args([
            "convert",
            mib.to_str().unwrap(),
            "-o",
            emd.to_str().unwrap(),
            "--scan-step",
            "0.5nm",
            "--alpha",
            "20mrad",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rs, ru, qs, qu) = emdtui::format::emd::calibration(&emd).unwrap();
    assert_eq!((rs, ru.as_str()), (0.5, "nm"));
    // alpha / r_BF: the disk (full counts to 7.5 px, falling to 0 at 8.5 px) is found at ~8 px
    assert_eq!(qu, "mrad");
    assert!((qs - 20.0 / 8.0).abs() < 0.15, "q step {qs}");
    // remembered for the .mib: a second conversion without flags carries it
    let emd2 = dir.path().join("b.emd");
    let o = emdtui(&cache).args(["convert", mib.to_str().unwrap(), "-o", emd2.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(emdtui::format::emd::calibration(&emd2).unwrap(), (rs, ru.clone(), qs, qu.clone()));
    // the peer readers see the calibrated axes
    let (Some(py), Some(check)) = (std::env::var_os("EMDTUI_PYTHON"), std::env::var_os("EMD_CHECK")) else {
        eprintln!("SKIP emd_check: set EMDTUI_PYTHON and EMD_CHECK");
        return;
    };
    let o = std::process::Command::new(py)
        .arg(check)
        .arg(&emd2)
        .arg("--expect-r")
        .arg(format!("{rs}:{ru}"))
        .arg("--expect-q")
        .arg(format!("{qs}:{qu}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "emd_check failed:\n{text}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("nm") && text.contains("mrad"), "{text}");
}
