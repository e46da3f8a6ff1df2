//! `emdtui ptycho` through the real binary on a small synthetic scan: the clear errors the issue
//! lists, the result cached in the EMD (reused, bypassed with --no-cache, stale when the FFT is
//! recomputed), and the outputs.

mod common;

use common::emdtui;
use emdtui::format::synth_tcbf::ParallaxSpec;
use std::path::{Path, PathBuf};

const CAL: [&str; 6] = ["--energy", "200kV", "--alpha", "20mrad", "--scan-step", "0.5A"];

fn make(dir: &Path) -> PathBuf {
    let p = dir.join("scan.mib");
    ParallaxSpec::default().write(&p).unwrap();
    p
}

fn run(args: &[&str]) -> (bool, String, String) {
    run_in(args, None)
}

/// With `cache` as the cache directory: a `.mib`'s calibration is remembered there once given.
fn run_in(args: &[&str], cache: Option<&Path>) -> (bool, String, String) {
    let mut c = emdtui();
    if let Some(d) = cache {
        c.env("EMDTUI_CACHE_DIR", d);
    }
    let out = c.args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = run(args);
    assert!(ok, "emdtui {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

fn args<'a>(mib: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["ptycho", mib, "-o", out];
    v.extend_from_slice(extra);
    v
}

#[test]
fn missing_calibration_and_coarse_step_are_clear_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let mib = make(dir.path());
    let (m, o) = (mib.to_str().unwrap(), dir.path().join("p.npy"));
    let o = o.to_str().unwrap();
    for (n, (extra, want)) in [
        (vec!["--alpha", "20mrad", "--scan-step", "0.5A"], "--energy"),
        (vec!["--energy", "200kV", "--scan-step", "0.5A"], "--alpha"),
        (vec!["--energy", "200kV", "--alpha", "20mrad"], "--scan-step"),
        (vec!["--energy", "200mrad", "--alpha", "20mrad", "--scan-step", "0.5A"], "--energy"),
        (vec!["--energy", "200kV", "--alpha", "20mrad", "--scan-step", "1A"], "too coarse"),
        (vec!["--center", "30,30"], "--radius together"),
        (vec!["--defocus", "12"], "no units"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = args(m, o, &extra);
        // the cases that give part of the calibration give all they mean to
        if !extra.iter().any(|e| ["--energy", "--alpha", "--scan-step"].contains(e)) {
            a.extend_from_slice(&CAL);
        }
        // a fresh cache directory: nothing remembered from the other cases
        let (ok, _, err) = run_in(&a, Some(&dir.path().join(format!("cache{n}"))));
        assert!(!ok, "{extra:?} should fail");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!dir.path().join("scan.emd").exists(), "{extra:?}: nothing converted");
    }
}

#[test]
fn result_is_cached_in_the_emd_and_stale_with_a_new_fft() {
    let dir = tempfile::tempdir().unwrap();
    let mib = make(dir.path());
    let (m, o, amp) = (mib.to_str().unwrap(), dir.path().join("p.npy"), dir.path().join("a.tiff"));
    let (o, amp) = (o.to_str().unwrap(), amp.to_str().unwrap());
    let mut a = args(m, o, &CAL);
    a.extend_from_slice(&["--json", "--amplitude-out", amp, "--defocus", "-2nm"]);
    let j = run_json(&a);
    assert_eq!(j["origin"], "computed");
    assert!(j["fft_computed"].is_object(), "the FFT is computed first: {j}");
    assert_eq!(j["params"]["defocus_a"], -20.0);
    let s = &j["summary"];
    assert!((s["disk"]["radius"].as_f64().unwrap() - 12.0).abs() < 1.0, "{s}");
    assert!((s["alpha_mrad"].as_f64().unwrap() - 20.0).abs() < 1e-9);
    let phase: ndarray::Array2<f32> = ndarray_npy::read_npy(o).unwrap();
    assert_eq!(phase.dim(), (48, 48));
    assert!(phase.iter().all(|v| v.is_finite()));
    assert!(Path::new(amp).exists());
    // again: from the cache; --no-cache computes and leaves the cache alone
    let j = run_json(&a);
    assert_eq!(j["origin"], "cache");
    let mut nc = a.clone();
    nc.push("--no-cache");
    assert_eq!(run_json(&nc)["origin"], "computed");
    // other parameters: computed
    let mut b = args(m, o, &CAL);
    b.push("--json");
    assert_eq!(run_json(&b)["origin"], "computed");
    assert_eq!(run_json(&b)["origin"], "cache");
    // a new FFT (other crop) makes the stored result stale
    let emd = dir.path().join("scan.emd");
    let (ok, _, err) = run(&["fft", emd.to_str().unwrap(), "--crop", "full"]);
    assert!(ok, "{err}");
    let j = run_json(&b);
    assert_eq!(j["origin"], "computed", "{j}");
}

#[test]
fn an_fft_that_does_not_hold_the_disk_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mib = make(dir.path());
    let (m, o) = (mib.to_str().unwrap(), dir.path().join("p.npy"));
    let emd = dir.path().join("scan.emd");
    let (ok, _, err) =
        run(&["fft", m, "-o", emd.to_str().unwrap(), "--crop", "bf", "--center", "31.3,32.6", "--radius", "6"]);
    assert!(ok, "{err}");
    let mut a = args(m, o.to_str().unwrap(), &CAL);
    a.extend_from_slice(&["--center", "31.3,32.6", "--radius", "12"]);
    let (ok, _, err) = run(&a);
    assert!(!ok);
    assert!(err.contains("does not cover the bright-field disk"), "{err}");
}
