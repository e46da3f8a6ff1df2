//! The built-in demos (issue 26): plain `emdtui` opens a weak phase object scanned by a
//! defocused probe, with its calibration known, so tcBF (`b`), DPC (`i`) and ptychography (`P`)
//! run on it without flags (tcBF and ptychography on its conversion in the cache directory) and
//! find what it was made with: the defocus, no scan rotation. `emdtui --demo eels` opens an Nx1
//! spectrometer scan. The EELS spectrum image of a growing Nx1 acquisition grows with it. The
//! real binary with no arguments in tmux shows the tcBF result after `b`.

mod common;

use emdtui::format::synth::{self, SynthSpec};
use emdtui::ops::demo::{self, Demo};
use emdtui::tui::app::{AppEvent, ViewLayout};
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::KeyCode;
use std::io::Write;
use std::time::{Duration, Instant};

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(180);

fn open_demo(d: Demo, w: u16, h: u16, cache: &std::path::Path) -> Harness {
    let mut h = Harness::demo(d, w, h, Graphics::Halfblocks, cache).unwrap();
    h.settle(WAIT);
    h.draw();
    h
}

#[test]
fn the_demo_is_deterministic_and_its_calibration_remembered() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fa, fb) = (demo::file(a.path(), Demo::FourD).unwrap(), demo::file(b.path(), Demo::FourD).unwrap());
    assert_eq!(fa.file_name(), fb.file_name());
    assert!(std::fs::read(&fa).unwrap() == std::fs::read(&fb).unwrap(), "the same bytes every time");
    let ds = emdtui::dataset::open(&fa, &Default::default()).unwrap();
    assert_eq!((ds.scan().rows, ds.scan().cols, ds.det()), (64, 64, (64, 64)));
    let cal = emdtui::ops::calib::stored(ds.as_ref(), Some(a.path()));
    assert_eq!(cal, demo::calibration(Demo::FourD));
    assert_eq!(cal.energy_v, Some(200e3));
    // a second call reuses the file
    let t = std::fs::metadata(&fa).unwrap().modified().unwrap();
    demo::file(a.path(), Demo::FourD).unwrap();
    assert_eq!(std::fs::metadata(&fa).unwrap().modified().unwrap(), t);
}

#[test]
fn demo_tcbf_finds_the_demo_defocus_without_asking() {
    let cache = tempfile::tempdir().unwrap();
    let truth = demo::phase_spec().defocus_a;
    for (i, (w, hh)) in SIZES.into_iter().enumerate() {
        let mut h = open_demo(Demo::FourD, w, hh, cache.path());
        assert!(h.state.demo);
        h.key(KeyCode::Char('b'));
        assert_eq!(h.state.main.layout, ViewLayout::Tcbf);
        assert_eq!(h.state.popup, emdtui::tui::app::Popup::None, "the demo is converted without a question");
        h.settle(WAIT);
        h.draw();
        let cur = h.state.tcbf.current().unwrap_or_else(|| panic!("tcBF result; status {}", h.state.status)).clone();
        assert_eq!(cur.origin, if i == 0 { "computed (FFT computed first)" } else { "loaded from the EMD cache" });
        let ab = cur.result.aberrations.clone().expect("aberrations");
        let df = ab.defocus_A.expect("defocus in Å: the demo is calibrated");
        assert!((df - truth).abs() < 0.1 * truth, "fitted defocus {df} Å, the demo's {truth} Å");
        assert_eq!(ab.sign_from, emdtui::compute::tcbf::aberr::SignFrom::Contrast, "the energy is known");
        assert!(ab.rotation_deg.abs() < 3.0, "no scan rotation in the demo: {}", ab.rotation_deg);
        let t = h.text();
        assert!(t.contains(&format!("defocus {df:.0} Å")), "{t}");
        assert!(!t.contains("needs a file"), "{t}");
        insta::assert_snapshot!(format!("demo_tcbf_{w}x{hh}"), t);
    }
    let emd = cache
        .path()
        .join("demo")
        .read_dir()
        .unwrap()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "emd"));
    assert!(emd, "the conversion lives in the cache directory");
}

#[test]
fn demo_dpc_finds_no_rotation() {
    let cache = tempfile::tempdir().unwrap();
    for (w, hh) in SIZES {
        let mut h = open_demo(Demo::FourD, w, hh, cache.path());
        h.key(KeyCode::Char('i'));
        assert_eq!(h.state.main.layout, ViewLayout::Dpc);
        h.settle(WAIT);
        h.draw();
        let o = h.state.dpc.outcome.clone().expect("DPC computed");
        assert_eq!((o.result.rows, o.result.cols), (64, 64));
        let r = o.result.rotation_deg.rem_euclid(360.0);
        let off = r.min(360.0 - r);
        assert!(off < 10.0 && !o.result.flip, "the demo's scan is not rotated: {r} deg, flip {}", o.result.flip);
        let p = &o.result.phase;
        let (mn, mx) = p.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(mx - mn > 0.0 && p.iter().all(|v| v.is_finite()), "an iCoM image with contrast");
        let t = h.text();
        assert!(t.contains("iCoM phase") && t.contains("curl ratio"), "{t}");
        insta::assert_snapshot!(format!("demo_dpc_{w}x{hh}"), t);
    }
}

#[test]
fn demo_ptychography_runs_with_the_demo_calibration() {
    let cache = tempfile::tempdir().unwrap();
    let mut h = open_demo(Demo::FourD, 100, 30, cache.path());
    h.key(KeyCode::Char('P'));
    h.settle(WAIT);
    h.draw();
    let r = h.state.ptycho.current().unwrap_or_else(|| panic!("ptycho result; status {}", h.state.status));
    assert_eq!(r.result.params.defocus_a, demo::phase_spec().defocus_a, "the demo's defocus is used");
    // the SSB phase follows the object's phase at the scan positions
    let spec = demo::phase_spec();
    let (_, w, truth) = spec.phase();
    let (os, half) = (spec.oversample, spec.det / 2);
    let at: Vec<f32> = (0..spec.rows * spec.cols)
        .map(|p| truth[((p / spec.cols) * os + half) * w + (p % spec.cols) * os + half] as f32)
        .collect();
    let c = common::simdata::pearson(&r.result.phase, &at);
    eprintln!("SSB phase vs the demo's phase: Pearson {c:.3}");
    assert!(c > 0.3, "SSB phase vs the demo's phase: Pearson {c:.3}");
    assert!(!h.text().contains("needs a file"), "{}", h.text());
}

#[test]
fn eels_demo_screen() {
    let cache = tempfile::tempdir().unwrap();
    let mut h = open_demo(Demo::Eels, 100, 30, cache.path());
    let e = h.state.eels.as_ref().expect("the EELS screen");
    let si = e.si.clone().expect("spectrum image");
    let spec = demo::eels_spec();
    assert_eq!((si.rows, si.cols), (spec.rows, spec.cols));
    assert_eq!(emdtui::ops::eels::positions_covered(&si), spec.rows * spec.cols);
    // the zero-loss peak is the brightest channel, the edge strength varies over the scan
    let s0 = &si.data[..si.channels];
    let zlp = s0.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0;
    assert!(zlp.abs_diff(synth::NX1_ZLP) <= 2, "ZLP at channel {zlp}");
    let edge: Vec<f32> = si
        .data
        .chunks_exact(si.channels)
        .map(|s| s[synth::NX1_EDGE + 5..synth::NX1_EDGE + 40].iter().sum::<f32>())
        .collect();
    let (mn, mx) = edge.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(mx > 1.2 * mn, "the edge varies over the scan: {mn}..{mx}");
    // it opens with the window on the edge: the map shows where the edge is strong
    let e = h.state.eels.as_ref().unwrap();
    assert_eq!(e.window, demo::eels_window(si.channels));
    let (mn, mx) = e.map.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(mx > 2.0 * mn, "the edge map has contrast: {mn}..{mx}");
    h.draw();
    let t = h.text();
    assert!(t.contains("EELS") && t.contains("(demo)"), "{t}");
    insta::assert_snapshot!("demo_eels_100x30", t);
}

/// An Nx1 acquisition written in steps: the spectrum image covers the new positions after a poll.
#[test]
fn eels_spectrum_image_grows_with_the_acquisition() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 4, cols: 6, depth: 12, hdr: true, nx1: true, ..Default::default() };
    let full = common::synth(dir.path(), "full.mib", &spec);
    let bytes = std::fs::read(&full).unwrap();
    let stride = bytes.len() / 24;
    assert_eq!(stride * 24, bytes.len());
    let live = dir.path().join("live.mib");
    std::fs::copy(full.with_extension("hdr"), live.with_extension("hdr")).unwrap();
    std::fs::write(&live, &bytes[..8 * stride]).unwrap();
    let cache = dir.path().join("cache");
    let mut h = Harness::open_with_cache(&live, 100, 30, Graphics::Halfblocks, &cache).unwrap();
    h.settle(WAIT);
    let covered =
        |h: &Harness| emdtui::ops::eels::positions_covered(h.state.eels.as_ref().unwrap().si.as_ref().unwrap());
    assert_eq!(covered(&h), 8, "the spectra of the frames written so far");
    h.draw();
    assert!(h.text().contains("spectra 8 of 24"), "{}", h.text());
    let rows_with_data = |h: &Harness| {
        let m = &h.state.eels.as_ref().unwrap().map;
        (0..4).filter(|r| m[r * 6..(r + 1) * 6].iter().any(|v| v.is_finite())).count()
    };
    assert_eq!(rows_with_data(&h), 2);
    let mut f = std::fs::OpenOptions::new().append(true).open(&live).unwrap();
    for (to, rows) in [(15, 3), (24, 4)] {
        let from = covered(&h);
        f.write_all(&bytes[from * stride..to * stride]).unwrap();
        f.flush().unwrap();
        h.state.follow.last_poll = Instant::now() - Duration::from_secs(1);
        h.state.tx.send(AppEvent::Tick).unwrap();
        h.pump();
        h.settle(WAIT);
        h.draw();
        assert_eq!(covered(&h), to, "after growing to {to} frames");
        assert_eq!(rows_with_data(&h), rows, "the map covers more rows");
    }
    // the grown spectrum image equals the one of the complete file
    let whole = emdtui::ops::eels::spectrum_image(
        &full,
        &Default::default(),
        &Default::default(),
        &emdtui::jobs::Progress::new("e", 0),
    )
    .unwrap();
    assert_eq!(h.state.eels.as_ref().unwrap().si.as_ref().unwrap().data, whole.data);
    assert!(!h.text().contains("spectra 24 of 24"), "{}", h.text());
}

/// The real binary with no arguments: `b` shows the tcBF result, not "needs a file".
#[test]
fn real_binary_demo_tcbf_in_tmux() {
    use common::tmux::{Tmux, have_tmux, pane_cmd};
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (t, t0) = Tmux::start_sized("demo", &pane_cmd(&cache, ""), 160, 48);
    t.wait("the demo", t0, WAIT, |s| s.contains("(demo)") && s.contains("overview complete"));
    t.send(&["b"]);
    let (s, d) = t.wait("the tcBF result", Instant::now(), WAIT, |s| s.contains("tcBF 2x") && s.contains("defocus"));
    eprintln!("tcBF on the demo after {:.1} s", d.as_secs_f64());
    assert!(!s.contains("needs a file"), "{s}");
    let df: f64 = s
        .lines()
        .find_map(|l| l.split("defocus ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no defocus value:\n{s}"));
    let truth = demo::phase_spec().defocus_a;
    assert!((df - truth).abs() < 0.1 * truth, "defocus {df} Å shown, the demo's {truth} Å");
    t.send(&["q"]);
}
