//! The TUI tcBF view (issue 14): on a synthetic defocused-probe scan converted to EMD, `b` asks
//! for the FFT, runs `ops::tcbf` as a job and shows its image (equal to `ops::tcbf`'s result on
//! a copy of the file), the fit in the metadata pane, snapshots at two sizes; `B` cycles the
//! upsample factor (results of the session come back at once), the second opening loads from
//! the EMD cache, `e` exports the tcBF image, a `.mib` asks before converting, `x` cancels.

mod common;

use emdtui::compute::tcbf::TcbfParams;
use emdtui::format::synth_tcbf::ParallaxSpec;
use emdtui::jobs::{JobState, Progress};
use emdtui::tui::app::{Confirm, Popup, ViewLayout};
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::KeyCode;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(120);

fn spec() -> ParallaxSpec {
    ParallaxSpec { rows: 32, cols: 32, ..Default::default() }
}

fn mib(dir: &Path) -> PathBuf {
    let p = dir.join("defocus.mib");
    spec().write(&p).unwrap();
    p
}

fn emd(dir: &Path) -> PathBuf {
    let f = mib(dir);
    let emd = dir.join("defocus.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    std::fs::remove_file(&f).unwrap();
    emd
}

/// `ops::tcbf` on (a copy of) an EMD: what the view must show.
fn reference(emd: &Path, upsample: usize) -> emdtui::compute::tcbf::TcbfResult {
    let ds = emdtui::dataset::open(emd, &Default::default()).unwrap();
    let p = TcbfParams { upsample, ..Default::default() };
    let o =
        emdtui::ops::tcbf::load_or_compute(ds.as_ref(), emd, &p, 1 << 30, &Progress::new("t", 0), &Default::default())
            .unwrap();
    o.result
}

fn open(f: &Path, w: u16, h: u16) -> Harness {
    let mut h = Harness::open(f, w, h, Graphics::Halfblocks).unwrap();
    h.settle(WAIT);
    h.draw();
    h
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let top = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * top, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn tcbf_view_shows_ops_tcbf_result_fit_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let copy = dir.path().join("copy.emd");
    std::fs::copy(&f, &copy).unwrap();
    let want = reference(&copy, 2);
    let fit = want.fit.clone().expect("a fit on the defocused scan");
    assert!((fit.scale - spec().scale).abs() < 0.01, "reference scale {}", fit.scale);
    for (i, (w, hh)) in SIZES.into_iter().enumerate() {
        let mut h = open(&f, w, hh);
        h.key(KeyCode::Char('b'));
        assert_eq!(h.state.main.layout, ViewLayout::Tcbf);
        if i == 0 {
            // no FFT in the EMD yet: asked first
            match &h.state.popup {
                Popup::Confirm(Confirm::Tcbf, q) => assert!(q.contains("4D FFT"), "{q}"),
                p => panic!("expected the tcBF question, got {p:?}"),
            }
            assert!(h.state.tcbf.job.is_none(), "nothing runs before the answer");
            h.key(KeyCode::Char('y'));
        } else {
            assert_eq!(h.state.popup, Popup::None, "the FFT and the result are in the EMD now");
        }
        h.settle(WAIT);
        h.draw();
        let cur = h.state.tcbf.current().expect("tcBF result").clone();
        let r = &cur.result;
        assert_eq!(cur.origin, if i == 0 { "computed (FFT computed first)" } else { "loaded from the EMD cache" });
        assert_eq!(r.params.upsample, 2);
        assert_eq!(r.image_shape(), (64, 64));
        assert_close(&r.image, &want.image, "tcBF image");
        assert_close(&r.plain, &want.plain, "plain BF");
        let got = r.fit.as_ref().unwrap();
        assert!((got.scale - fit.scale).abs() < 1e-6 && (got.rotation_deg - fit.rotation_deg).abs() < 1e-4);
        // the pane shows that image: its readout has the image's statistics
        let (_, _, shown) = h.state.tcbf.prepared[0].as_ref().expect("tcBF pane prepared");
        let st = shown.readout.stats.expect("stats");
        let (mn, mx) = r.image.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((st.min, st.max), (mn, mx));
        assert!(h.state.tcbf.prepared[1].is_some() && h.state.tcbf.prepared[2].is_some(), "plain BF and shift wheel");
        let t = h.text();
        for s in [
            format!("{:.4}", got.scale),
            format!("{:.1}°", got.rotation_deg),
            format!("{:.3} scan px", got.rms_residual),
            format!("{} of {}", r.pixels_used, r.disk.pixels),
            "tcBF 2x".to_string(),
            "plain BF".to_string(),
        ] {
            assert!(t.contains(&s), "{s:?} missing:\n{t}");
        }
        insta::assert_snapshot!(format!("tcbf_{w}x{hh}"), t);
        h.key(KeyCode::Char('b'));
        assert_eq!(h.state.main.layout, ViewLayout::Single);
    }
}

#[test]
fn upsample_cycles_recompute_and_export_writes_the_tcbf_image() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let mut h = open(&f, 100, 30);
    h.key(KeyCode::Char('b'));
    h.key(KeyCode::Char('y'));
    h.settle(WAIT);
    let two = h.state.tcbf.current().expect("2x").result.clone();
    let job2 = h.state.tcbf.job.clone().unwrap();
    h.key(KeyCode::Char('B'));
    assert_eq!(h.state.tcbf.upsample, 4);
    h.settle(WAIT);
    h.draw();
    let four = h.state.tcbf.current().expect("4x").result.clone();
    assert_eq!(four.image_shape(), (128, 128));
    assert!(!std::sync::Arc::ptr_eq(h.state.tcbf.job.as_ref().unwrap(), &job2), "4x is a new job");
    assert!(h.text().contains("tcBF 4x"), "{}", h.text());
    h.key(KeyCode::Char('B'));
    h.settle(WAIT);
    assert_eq!(h.state.tcbf.current().unwrap().result.image_shape(), (32, 32));
    // back to 2x: the session's result, no job
    let job1 = h.state.tcbf.job.clone().unwrap();
    h.key(KeyCode::Char('B'));
    assert!(!h.state.any_running());
    assert!(std::sync::Arc::ptr_eq(h.state.tcbf.job.as_ref().unwrap(), &job1));
    assert!(std::sync::Arc::ptr_eq(&h.state.tcbf.current().unwrap().result, &two));
    // e: the tcBF image at its own size
    h.key(KeyCode::Char('e'));
    let out = dir.path().join("defocus_tcbf_2x.png");
    assert!(h.state.status.contains("exported"), "{}", h.state.status);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}

#[test]
fn a_mib_asks_before_converting_and_the_job_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let f = mib(dir.path());
    let mut h = open(&f, 100, 30);
    h.key(KeyCode::Char('b'));
    match &h.state.popup {
        Popup::Confirm(Confirm::Tcbf, q) => assert!(q.contains("Convert to defocus.emd"), "{q}"),
        p => panic!("expected the conversion question, got {p:?}"),
    }
    h.key(KeyCode::Char('n'));
    assert!(h.state.tcbf.job.is_none() && !dir.path().join("defocus.emd").exists(), "no answers no work");
    h.key(KeyCode::Char('b'));
    h.key(KeyCode::Char('b'));
    h.key(KeyCode::Char('y'));
    let j = h.state.tcbf.job.clone().expect("job started");
    // x cancels the selected job: the tcBF job is selected when it starts
    h.key(KeyCode::Char('x'));
    let st = &h.state.status;
    assert!(st.contains("cancelling tcbf") || st.contains("tcBF cancelled"), "{st}");
    h.settle(WAIT);
    h.draw();
    assert_eq!(j.state(), JobState::Cancelled);
    assert!(h.state.tcbf.current().is_none());
    assert!(h.text().contains("cancelled"), "{}", h.text());
}

#[test]
fn tcbf_after_the_fft_explorer_has_the_fft_open() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let mut h = open(&f, 100, 30);
    h.key(KeyCode::Char('F'));
    h.key(KeyCode::Char('y'));
    h.settle(WAIT);
    assert!(h.state.fft.source.is_some(), "FFT loaded: {}", h.state.status);
    if h.state.screen == emdtui::tui::app::Screen::Fft {
        h.key(KeyCode::Tab);
    }
    h.key(KeyCode::Char('b'));
    assert_eq!(h.state.popup, Popup::None, "the FFT is there: nothing to ask");
    h.settle(WAIT);
    h.draw();
    let cur = h.state.tcbf.current().unwrap_or_else(|| panic!("no result: {}", h.text()));
    assert_eq!(cur.origin, "computed");
    assert!(h.state.fft.source.is_some(), "the explorer has its FFT again");
    // and it was stored: a second viewer loads it
    drop(h);
    let mut h = open(&f, 100, 30);
    h.key(KeyCode::Char('b'));
    h.settle(WAIT);
    assert_eq!(h.state.tcbf.current().expect("cached").origin, "loaded from the EMD cache");
}
