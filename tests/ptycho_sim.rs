//! SSB ptychography on the multislice simulations of scripts/simulate.py (directory in
//! `EMDTUI_SIMDATA`): the phase against the projected potential, next to emdtui's own iCoM of the
//! same file and py4DSTEM 0.14's `SSB` (its figures stored by scripts/peer_ptycho.py in
//! tests/data/ptycho_py4dstem.json; emdtui's are recomputed here), and the defocused case corrected
//! with its known defocus against the in-focus case and against no correction.

mod common;

use common::emdtui;
use std::path::{Path, PathBuf};

fn case(name: &str) -> (PathBuf, serde_json::Value) {
    let c = common::simdata::case(name);
    (c.dir, c.truth)
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

fn read(p: &Path) -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    a.iter().copied().collect()
}

fn cal(t: &serde_json::Value) -> Vec<String> {
    vec![
        "--energy".into(),
        format!("{}V", t["energy_V"].as_f64().unwrap()),
        "--alpha".into(),
        format!("{}mrad", t["alpha_mrad"].as_f64().unwrap()),
        "--scan-step".into(),
        format!("{}A", t["scan_step_A"].as_f64().unwrap()),
    ]
}

/// `emdtui ptycho` of a case with `defocus` (Å): (phase, JSON report).
fn ptycho(dir: &Path, out: &Path, name: &str, t: &serde_json::Value, defocus: f64) -> (Vec<f32>, serde_json::Value) {
    let mib = dir.join(format!("{name}.mib"));
    let phase = out.join(format!("{name}_df{defocus}.npy"));
    let emd = out.join(format!("{name}.emd"));
    let mut args: Vec<String> = vec!["ptycho".into(), mib.to_str().unwrap().into(), "-o".into()];
    args.push(phase.to_str().unwrap().into());
    args.extend(["--emd".into(), emd.to_str().unwrap().into(), "--json".into(), "--no-cache".into()]);
    args.extend(["--defocus".into(), format!("{defocus}A")]);
    args.extend(cal(t));
    let o = emdtui().args(&args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    (read(&phase), serde_json::from_slice(&o.stdout).unwrap())
}

/// `emdtui dpc` of the same file: its iCoM.
fn icom(dir: &Path, out: &Path, name: &str, t: &serde_json::Value) -> Vec<f32> {
    let mib = dir.join(format!("{name}.mib"));
    let p = out.join(format!("{name}_icom.npy"));
    let mut args: Vec<String> =
        vec!["dpc".into(), mib.to_str().unwrap().into(), "-o".into(), p.to_str().unwrap().into()];
    args.push("--no-cache".into());
    args.extend(cal(t));
    let o = emdtui().args(&args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    read(&p)
}

/// py4DSTEM's best correlation on the case: with the rotation it found or the true one.
fn peer(name: &str) -> f64 {
    let p = common::repo_root().join("tests/data/ptycho_py4dstem.json");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    ["found", "truth_rotation"]
        .iter()
        .filter_map(|k| j[name][k]["corr_potential_1x"].as_f64())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .unwrap_or_else(|| panic!("{}: no figures for {name}", p.display()))
}

#[test]
fn in_focus_ssb_beats_icom_and_matches_py4dstem() {
    let out = tempfile::tempdir().unwrap();
    let (d, t) = case("mos2_focus");
    let pot = read(&d.join("potential_1x.npy"));
    let (phase, j) = ptycho(&d, out.path(), "mos2_focus", &t, 0.0);
    let c_ssb = pearson(&phase, &pot);
    let c_icom = pearson(&icom(&d, out.path(), "mos2_focus", &t), &pot);
    let c_peer = peer("mos2_focus");
    eprintln!("mos2_focus: corr SSB {c_ssb:.4}, emdtui iCoM {c_icom:.4}, py4DSTEM SSB {c_peer:.4}; {}", j["summary"]);
    assert!(c_ssb > c_icom + 0.02, "SSB {c_ssb:.4} vs iCoM {c_icom:.4}");
    assert!(c_ssb >= c_peer - 0.005, "SSB {c_ssb:.4} vs py4DSTEM {c_peer:.4}");
    // the orientation DPC expects for this geometry
    let e = &t["dpc_expected"];
    let s = &j["summary"];
    assert_eq!(s["flip"], e["flip"], "{s} vs {e}");
    let d_rot =
        (s["rotation_deg"].as_f64().unwrap() - e["rotation_deg"].as_f64().unwrap() + 180.0).rem_euclid(360.0) - 180.0;
    assert!(d_rot.abs() < 3.0, "rotation {s} vs {e}");
}

#[test]
fn known_defocus_is_corrected_about_as_well_as_in_focus() {
    let out = tempfile::tempdir().unwrap();
    let (d, t) = case("mos2_df");
    let (df_d, df_t) = case("mos2_focus");
    let df = t["defocus_A"].as_f64().unwrap();
    assert!(df > 50.0, "mos2_df is defocused: {df}");
    let pot = read(&d.join("potential_1x.npy"));
    let (corrected, _) = ptycho(&d, out.path(), "mos2_df", &t, df);
    let (plain, _) = ptycho(&d, out.path(), "mos2_df", &t, 0.0);
    let (focus, _) = ptycho(&df_d, out.path(), "mos2_focus", &df_t, 0.0);
    let c_cor = pearson(&corrected, &pot);
    let c_plain = pearson(&plain, &pot);
    let c_focus = pearson(&focus, &read(&df_d.join("potential_1x.npy")));
    let c_peer = peer("mos2_df");
    eprintln!(
        "mos2_df: corr corrected {c_cor:.4}, uncorrected {c_plain:.4}, py4DSTEM {c_peer:.4}; in focus {c_focus:.4}"
    );
    assert!(c_cor > c_plain + 0.1, "corrected {c_cor:.4} vs uncorrected {c_plain:.4}");
    assert!(c_cor > c_focus - 0.08, "corrected {c_cor:.4} vs in focus {c_focus:.4}");
    assert!(c_cor >= c_peer - 0.005, "corrected {c_cor:.4} vs py4DSTEM {c_peer:.4}");
}
