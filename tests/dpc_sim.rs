//! DPC on a multislice simulation (abTEM, `scripts/simulate.py` case `mos2_focus`: MoS2 monolayer
//! with vacancies, in focus, 200 kV, 22 mrad, 0.3 A step, scan transposed and rotated 23 degrees,
//! Poisson noise): `emdtui dpc` finds the transpose (as its flip) and the 180 degree choice, and
//! its iCoM correlates with the simulated projected potential within 0.02 of abTEM's own iCoM of
//! the same noisy frames with the true geometry.

mod common;

use common::simdata::{self, pearson};

/// Angle difference in degrees, in (-180, 180].
fn angle_diff(a: f64, b: f64) -> f64 {
    (a - b + 540.0).rem_euclid(360.0) - 180.0
}

#[test]
fn icom_on_simulated_mos2_matches_abtems_own() {
    let case = simdata::case("mos2_focus");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("icom.npy");
    let o = common::emdtui().arg("dpc").arg(&case.mib).arg("-o").arg(&out).arg("--json").output().unwrap();
    assert!(o.status.success(), "emdtui dpc: {}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let want = &case.truth["dpc_expected"];
    let (rot, flip) = (j["rotation_deg"].as_f64().unwrap(), j["flip"].as_bool().unwrap());
    assert_eq!(flip, want["flip"].as_bool().unwrap(), "the transpose is found as a flip: {j}");
    let d = angle_diff(rot, want["rotation_deg"].as_f64().unwrap());
    // within 2 degrees of the truth, and not 180 degrees off (the sign of the iCoM)
    assert!(d.abs() < 2.0, "rotation {rot} vs simulated {want}: {d:.2} degrees off");
    assert!(j["hot_pixels"].as_array().unwrap().is_empty() && j["dead_pixels"] == 0, "no bad pixel: {j}");

    let (r, c) = case.scan_shape();
    let (pr, pc, pot) = case.npy("potential_1x.npy");
    let (ar, ac, abtem) = case.npy("abtem_icom.npy");
    let (er, ec, ours) = simdata::read_npy_2d(&out);
    assert_eq!([(pr, pc), (ar, ac), (er, ec)], [(r, c); 3], "every image on the scan grid");
    let (c_ours, c_abtem) = (pearson(&ours, &pot), pearson(&abtem, &pot));
    eprintln!("iCoM vs projected potential: emdtui {c_ours:.4}, abTEM {c_abtem:.4}; rotation {rot:.2} flip {flip}");
    assert!(c_abtem > 0.7, "abTEM's iCoM reference looks wrong: {c_abtem}");
    assert!(c_ours >= c_abtem - 0.02, "emdtui iCoM {c_ours:.4} vs abTEM's {c_abtem:.4}");
    assert!(pearson(&ours, &abtem) > 0.9, "emdtui's and abTEM's iCoM agree: {}", pearson(&ours, &abtem));
}
