//! `emdtui fft --estimate`: the estimate against the sizes a real run writes, its JSON, the
//! "does not fit" verdict; the viewer asks before `F` only when the FFT will not fit.

mod common;

use emdtui::format::synth::SynthSpec;
use emdtui::tui::app::{Confirm, Popup};
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::KeyCode;
use std::path::Path;
use std::time::Duration;

fn scan(dir: &Path) -> std::path::PathBuf {
    let spec = SynthSpec { rows: 16, cols: 24, det: 256, depth: 12, hdr: true, ..Default::default() };
    common::synth(dir, "scan.mib", &spec)
}

fn estimate_json(args: &[&str]) -> serde_json::Value {
    let out = common::emdtui().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn storage(emd: &Path, ds: &str) -> u64 {
    hdf5::File::open(emd).unwrap().dataset(ds).unwrap().storage_size()
}

#[test]
fn estimate_matches_the_sizes_a_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let f = scan(dir.path());
    let fs = f.to_str().unwrap();
    for (axes, crop) in [("scan", "bf"), ("all", "full")] {
        let emd = dir.path().join(format!("out_{axes}.emd"));
        let es = emd.to_str().unwrap();
        let common_args = ["fft", fs, "-o", es, "--axes", axes, "--crop", crop];
        let e = estimate_json(&[&common_args[..], &["--estimate", "--json", "--sample-frames", "64"]].concat());
        assert!(!emd.exists(), "--estimate wrote {}", emd.display());
        let conv = e["conversion_bytes"].as_u64().unwrap();
        let out = common::emdtui().args(common_args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        // the FFT datasets: exact (every chunk is allocated up front)
        let complex = storage(&emd, "/emdtui/cache/fft_complex/data");
        let power = storage(&emd, "/emdtui/cache/fft_power/data");
        assert_eq!(e["fft"]["complex_bytes"].as_u64().unwrap(), complex, "{axes}: {e}");
        assert_eq!(e["fft"]["power_bytes"].as_u64().unwrap(), power, "{axes}");
        assert_eq!(e["output_bytes"].as_u64().unwrap(), complex + power);
        // the conversion: the datacube exactly, the overviews about
        let cube = storage(&emd, "/datacube_root/datacube/data");
        let file = std::fs::metadata(&emd).unwrap().len();
        assert!(conv >= cube && conv <= file, "{axes}: conversion estimate {conv}, datacube {cube}, file {file}");
        assert!((conv - cube) as f64 <= 0.05 * cube as f64, "{axes}: overviews estimated at {}", conv - cube);
        let in_mem = e["fft"]["scratch_in_memory"].as_bool().unwrap();
        assert_eq!(in_mem, stdout.contains("scratch: in memory"), "{axes}: {stdout}");
        assert_eq!(e["scratch_bytes"].as_u64().unwrap(), conv + e["scratch_file_bytes"].as_u64().unwrap());
        // one filesystem: output and conversion (and the scratch file when there is one)
        let disks = e["disks"].as_array().unwrap();
        assert_eq!(disks.len(), 1, "{e}");
        assert!(disks[0]["free"].as_u64().unwrap() > 0);
        assert_eq!(
            disks[0]["bytes"].as_u64().unwrap(),
            e["output_bytes"].as_u64().unwrap() + e["scratch_bytes"].as_u64().unwrap()
        );
        let t = &e["time"];
        assert_eq!(t["sample"]["frames"].as_u64().unwrap(), 64);
        assert!(t["seconds"].as_f64().unwrap() > 0.0 && t["pass1_seconds"].as_f64().unwrap() > 0.0, "{t}");
        assert!(e["fits"].as_bool().unwrap() && e["problems"].as_array().unwrap().is_empty());
        assert!(e["memory_bytes"].as_u64().unwrap() <= e["memory_budget"].as_u64().unwrap());
        // afterwards: nothing to convert, and the same FFT is already there
        let again = estimate_json(&[&common_args[..], &["--estimate", "--json", "--sample-frames", "0"]].concat());
        assert_eq!(again["conversion_bytes"].as_u64().unwrap(), 0);
        assert!(again["already_computed"].as_bool().unwrap());
        assert!(again["time"].is_null());
    }
}

#[test]
fn estimate_text_and_a_budget_too_small() {
    let dir = tempfile::tempdir().unwrap();
    let f = scan(dir.path());
    let fs = f.to_str().unwrap();
    let out = common::emdtui().args(["fft", fs, "--estimate", "--sample-frames", "32"]).output().unwrap();
    assert!(out.status.success());
    let t = String::from_utf8_lossy(&out.stdout);
    for want in ["output:", "scratch:", "disk:", "memory:", "time:", "from 32 frames", "fits: yes"] {
        assert!(t.contains(want), "{want:?} missing in\n{t}");
    }
    assert!(!dir.path().join("scan.emd").exists());
    // a 64 KiB budget holds pass 2's smallest unit but not pass 1's read buffers (one frame of
    // 128 KiB per thread)
    let e = estimate_json(&[
        "--threads",
        "1",
        "--memory",
        "64K",
        "fft",
        fs,
        "--estimate",
        "--json",
        "--sample-frames",
        "0",
    ]);
    assert!(!e["fits"].as_bool().unwrap(), "{e}");
    assert!(e["problems"][0].as_str().unwrap().contains("of memory, the budget is 64 KiB"), "{e}");
    assert!(e["memory_bytes"].as_u64().unwrap() > 64 << 10);
    // --json needs --estimate
    common::emdtui().args(["fft", fs, "--json"]).assert().failure();
}

fn open(f: &Path) -> Harness {
    let mut h = Harness::open(f, 100, 30, Graphics::Halfblocks).unwrap();
    h.settle(Duration::from_secs(60));
    h
}

#[test]
fn viewer_starts_the_fft_when_it_fits_and_asks_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let f = scan(dir.path());
    // fits: after the conversion question, F starts at once with the estimate on the status line
    let mut h = open(&f);
    h.key(KeyCode::Char('F'));
    assert!(matches!(h.state.popup, Popup::Confirm(Confirm::ConvertForFft, _)), "{:?}", h.state.popup);
    h.key(KeyCode::Char('y'));
    assert_eq!(h.state.popup, Popup::None);
    assert!(h.state.fft.job.is_some(), "the FFT started");
    assert!(h.state.status.contains("FFT: output") && h.state.status.contains("free; memory"), "{}", h.state.status);
    h.settle(Duration::from_secs(120));
    assert!(h.state.fft.source.is_some(), "status: {}", h.state.status);
    // does not fit (a budget that holds pass 2's per-thread scratch and smallest unit, but not
    // pass 1's per-thread frame buffers): a question instead, and nothing starts until y
    let g = tempfile::tempdir().unwrap();
    let f2 = scan(g.path());
    let mut h = open(&f2);
    h.state.memory_budget = rayon::current_num_threads() as u64 * 384 * 24 + (48 << 10);
    h.key(KeyCode::Char('F'));
    h.key(KeyCode::Char('y')); // convert
    let text = match &h.state.popup {
        Popup::Confirm(Confirm::Fft, t) => t.clone(),
        p => panic!("expected the FFT question, got {p:?}"),
    };
    assert!(
        text.starts_with("The 4D FFT will not fit. Start anyway? (y/n)\n- needs ") && text.contains("of memory"),
        "{text}"
    );
    assert!(text.contains("output:") && text.contains("memory:"), "{text}");
    assert!(h.state.fft.job.is_none(), "nothing started before the answer");
    h.key(KeyCode::Char('n'));
    assert!(h.state.fft.job.is_none() && h.state.popup == Popup::None);
}

/// The question as drawn, with an estimate of fixed numbers (real free space, thread counts and
/// temporary paths vary from machine to machine).
#[test]
fn fft_question_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let f = scan(dir.path());
    let mut h = open(&f);
    let e: emdtui::ops::fft_estimate::FftEstimate = fixed_estimate();
    let q = emdtui::tui::popups::fft_estimate::question(&Ok(e));
    h.state.popup = Popup::Confirm(Confirm::Fft, q);
    h.draw();
    insta::assert_snapshot!("fft_estimate_question_100x30", h.text());
}

fn fixed_estimate() -> emdtui::ops::fft_estimate::FftEstimate {
    let needs = emdtui::compute::fft::FftNeeds {
        shape: [16, 24, 46, 46],
        chunk: [16, 24, 8, 8],
        complex_bytes: 6_500_352,
        power_bytes: 1536,
        scratch_bytes: 1_625_088,
        scratch_in_memory: true,
        memory_bytes: 9_437_184,
        positions: 384,
        transforms: 2116,
    };
    emdtui::ops::fft_estimate::FftEstimate {
        source: "scan.mib".into(),
        emd: "scan.emd".into(),
        params: Default::default(),
        output_bytes: 6_501_888,
        conversion_bytes: 50_380_800,
        conversion_compressed: false,
        scratch_file_bytes: 0,
        scratch_bytes: 50_380_800,
        fft: needs,
        disks: vec![emdtui::ops::fft_estimate::DiskNeed {
            dir: "/data".into(),
            holds: vec!["output".into(), "conversion".into()],
            bytes: 56_882_688,
            free: Some(40 << 20),
        }],
        memory_bytes: 9_437_184,
        memory_budget: 2 << 20,
        already_computed: false,
        time: None,
        fits: false,
        problems: vec![
            "output + conversion needs 54.25 MiB on /data, 40 MiB free".into(),
            "needs 9 MiB of memory, the budget is 2 MiB".into(),
        ],
    }
}
