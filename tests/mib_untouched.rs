//! The `.mib` is never written to: every command and the terminal UI run on a `.mib` (and its
//! `.hdr`), then their bytes and mtimes are compared. Also: processed 2x2G (514x514) and Nx1
//! layouts decode as stored.

mod common;

use emdtui::dataset;
use emdtui::format::synth::SynthSpec;
use std::path::{Path, PathBuf};

fn snapshot(paths: &[PathBuf]) -> Vec<(u64, std::time::SystemTime)> {
    paths
        .iter()
        .map(|p| {
            (xxhash_rust::xxh3::xxh3_64(&std::fs::read(p).unwrap()), std::fs::metadata(p).unwrap().modified().unwrap())
        })
        .collect()
}

#[test]
fn no_command_and_no_ui_action_modifies_the_mib() {
    let d = tempfile::tempdir().unwrap();
    let mib =
        common::synth(d.path(), "u.mib", &SynthSpec { rows: 8, cols: 10, depth: 12, hdr: true, ..Default::default() });
    let files = vec![mib.clone(), mib.with_extension("hdr")];
    let before = snapshot(&files);
    // age the mtimes so that a rewrite with the same content would still show
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cache = d.path().join("cache");
    let m = mib.to_str().unwrap();
    let o = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let runs: Vec<Vec<String>> = vec![
        vec!["info".into(), m.into()],
        vec!["info".into(), m.into(), "--json".into()],
        vec!["--mmap".into(), "info".into(), m.into()],
        vec!["export".into(), m.into(), "--frame".into(), "3".into(), "-o".into(), o("f.npy")],
        vec!["overview".into(), m.into(), "--detector".into(), "com".into(), "-o".into(), o("c.npy")],
        vec!["overview".into(), m.into(), "--detector".into(), "adf".into(), "-o".into(), o("a.png")],
        vec!["convert".into(), m.into(), "--compress".into()],
        vec!["fft".into(), m.into()],
        vec!["export".into(), o("u.emd"), "--fft-k".into(), "2,2".into(), "-o".into(), o("k.npy")],
    ];
    for args in &runs {
        let out = common::command().args(args).env("EMDTUI_CACHE_DIR", &cache).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // the terminal UI: navigate, switch detectors, move the detector, ROI, export, convert
    {
        use ratatui::crossterm::event::KeyCode;
        let mut h =
            emdtui::tui::harness::Harness::open(&mib, 120, 40, emdtui::tui::images::Graphics::Halfblocks).unwrap();
        h.settle(std::time::Duration::from_secs(60));
        for k in [KeyCode::Right, KeyCode::Down, KeyCode::Char('m'), KeyCode::Char('d'), KeyCode::Char('+')] {
            h.key(k);
        }
        h.keys("rjjlr");
        h.key(KeyCode::Char('e'));
        h.settle(std::time::Duration::from_secs(60));
        h.draw();
    }
    assert_eq!(snapshot(&files), before, "a command or the UI modified the .mib or its .hdr");
    // and the outputs went elsewhere, nothing new next to the .mib but the EMD and its lock
    let mut names: Vec<String> =
        std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert!(names.iter().all(|n| !n.starts_with("u.mib.")), "{names:?}");
}

/// Write a processed frame file with the given header geometry and return its path.
fn processed(dir: &Path, name: &str, chips: u32, w: usize, h: usize, layout: &str) -> (PathBuf, Vec<u16>) {
    let hl = if chips == 1 { 384 } else { 768 };
    let hdr = format!(
        "MQ1,000001,{hl:05},{chips:02},{w:04},{h:04},U16,{layout:>6},0F,2024-01-01 00:00:00.000000,0.001000,0,0,0,2.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,MQ1A,2024-01-01T00:00:00.000000000Z,1000000ns,12,"
    );
    let mut b = hdr.into_bytes();
    b.resize(hl, 0);
    let px: Vec<u16> = (0..w * h).map(|i| ((i * 7 + i / w) % 4096) as u16).collect();
    for v in &px {
        b.extend_from_slice(&v.to_be_bytes());
    }
    let p = dir.join(name);
    std::fs::write(&p, &b).unwrap();
    (p, px)
}

#[test]
fn gap_filled_2x2g_and_nx1_processed_frames_decode_as_stored() {
    let d = tempfile::tempdir().unwrap();
    for (name, chips, w, h, layout) in
        [("g.mib", 4, 514, 514, "2x2G"), ("n.mib", 4, 1024, 256, "Nx1"), ("ng.mib", 4, 1030, 256, "Nx1G")]
    {
        let (p, px) = processed(d.path(), name, chips, w, h, layout);
        let ds = dataset::open(&p, &Default::default()).unwrap();
        assert_eq!(ds.det(), (h, w), "{name}: geometry from the width/height fields");
        let got = ds.frame_u32(0).unwrap();
        assert!(got.iter().zip(&px).all(|(a, b)| *a == *b as u32), "{name}: pixels differ");
    }
}
