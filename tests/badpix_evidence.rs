//! Bad pixels only on evidence (at most 1e-3 expected false flags per data set): nothing flagged
//! on clean data (every simulated multislice case, `emdtui synth` output at five doses), nothing
//! on the one-frame real files (too few frames, and `info` says so), exactly the documented hot
//! pixel (row 39, column 52) on the two rosettasciio files that have it.

mod common;

use common::{emdtui, simdata, testdata};
use std::path::{Path, PathBuf};

fn info_json(file: &Path) -> serde_json::Value {
    let o = emdtui().arg("info").arg(file).arg("--json").output().unwrap();
    assert!(o.status.success(), "emdtui info {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// (hot (row, col) list, number of dead pixels, too few frames) from `info --json`.
fn flagged(file: &Path) -> (Vec<(u64, u64)>, usize, bool) {
    let j = info_json(file);
    let b = &j["bad_pixels"];
    let pairs = |v: &serde_json::Value| -> Vec<(u64, u64)> {
        v.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap())).collect()
    };
    (pairs(&b["hot"]), pairs(&b["dead"]).len(), b["too_few_frames"].as_bool().unwrap())
}

#[test]
fn no_pixel_is_flagged_on_the_simulated_cases() {
    for name in simdata::CASES {
        let case = simdata::case(name);
        let (hot, dead, few) = flagged(&case.mib);
        assert!(hot.is_empty() && dead == 0 && !few, "{name}: {} hot {hot:?}, {dead} dead", hot.len());
    }
}

#[test]
fn no_pixel_is_flagged_on_synthetic_scans_at_five_doses() {
    // the counter depth sets the dose of `emdtui synth` (BF about 0.6, 20, 300 and 3000 counts per
    // pixel and frame at 1, 6, 12 and 24 bits); the defocused-probe generator (`--defocus`) has 40
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for depth in ["1", "6", "12", "24"] {
        let p = dir.path().join(format!("d{depth}.mib"));
        let o = emdtui().args(["synth", p.to_str().unwrap(), "--scan", "24x24", "--depth", depth]).output().unwrap();
        assert!(o.status.success(), "synth depth {depth}: {}", String::from_utf8_lossy(&o.stderr));
        files.push((format!("depth {depth}"), p));
    }
    let p = dir.path().join("tcbf.mib");
    let o = emdtui().args(["synth", p.to_str().unwrap(), "--defocus"]).output().unwrap();
    assert!(o.status.success(), "synth --defocus: {}", String::from_utf8_lossy(&o.stderr));
    files.push(("tcbf".into(), p));
    for (what, p) in files {
        let (hot, dead, few) = flagged(&p);
        assert!(hot.is_empty() && dead == 0 && !few, "synth {what}: {} hot {hot:?}, {dead} dead", hot.len());
    }
}

fn real_files(frames: usize) -> Vec<PathBuf> {
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join("ground_truth.json")).unwrap()).unwrap();
    let mut v: Vec<PathBuf> = gt["files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, f)| f["n_frames"].as_u64() == Some(frames as u64))
        .map(|(k, _)| testdata().join(k))
        .collect();
    v.sort();
    v
}

#[test]
fn one_frame_real_files_flag_nothing_and_say_why() {
    let files = real_files(1);
    assert!(files.len() >= 10, "one-frame real files: {files:?}");
    for f in files {
        let (hot, dead, few) = flagged(&f);
        assert!(hot.is_empty() && dead == 0 && few, "{}: {} hot, {dead} dead, too few {few}", f.display(), hot.len());
        let o = emdtui().arg("info").arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("too few frames to find bad pixels"), "{}: {text}", f.display());
    }
}

#[test]
fn the_documented_hot_pixel_is_the_only_one_flagged() {
    let files: Vec<PathBuf> =
        real_files(8).into_iter().filter(|p| p.to_string_lossy().contains("hot_pixel_52x_39y")).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        let (hot, dead, few) = flagged(&f);
        assert_eq!((hot, dead, few), (vec![(39, 52)], 0, false), "{}", f.display());
    }
}

#[test]
fn the_metadata_pane_says_when_there_are_too_few_frames() {
    use emdtui::tui::harness::Harness;
    use emdtui::tui::images::Graphics;
    let wait = std::time::Duration::from_secs(60);
    let cache = tempfile::tempdir().unwrap();
    let one =
        real_files(1).into_iter().find(|p| p.to_string_lossy().contains("Single_1_Frame_CounterDepth_12")).unwrap();
    let hot = real_files(8).into_iter().find(|p| p.to_string_lossy().contains("hot_pixel_52x_39y")).unwrap();
    for (f, want) in [(one, "bad px too few frames"), (hot, "bad px 1 hot, 0 dead")] {
        let mut h = Harness::open_with_cache(&f, 160, 48, Graphics::Halfblocks, cache.path()).unwrap();
        h.settle(wait);
        h.draw();
        let text = h.text();
        assert!(text.contains(want), "{}: metadata pane lacks {want:?}:\n{text}", f.display());
    }
}
