//! Whole-screen snapshots of the terminal UI on a `TestBackend` (two sizes), and key sequences
//! driving the app: move, switch detector, move the detector, start and cancel a job.

mod common;

use emdtui::compute::fft::MemFft;
use emdtui::compute::overview::DetectorKind;
use emdtui::format::synth::{self, SynthSpec};
use emdtui::jobs::{JobState, Progress};
use emdtui::tui::app::{Popup, Screen};
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use ratatui::style::Color;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(60);

/// `scan.mib` in `dir`: 16x24 positions of 256x256 12-bit frames, with a `.hdr`.
fn synth_scan(dir: &tempfile::TempDir) -> (PathBuf, SynthSpec) {
    let spec = SynthSpec { rows: 16, cols: 24, det: 256, depth: 12, hdr: true, ..Default::default() };
    (common::synth(dir.path(), "scan.mib", &spec), spec)
}

fn open(f: &Path, w: u16, h: u16, g: Graphics) -> Harness {
    let mut h = Harness::open(f, w, h, g).unwrap();
    h.settle(WAIT);
    h.draw();
    h
}

#[test]
fn main_screen_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    for (w, hh) in SIZES {
        let h = open(&f, w, hh, Graphics::Halfblocks);
        let o = h.state.main.overviews.as_ref().expect("overview computed");
        assert!(o.complete);
        insta::assert_snapshot!(format!("main_{w}x{hh}"), h.text());
        // the cursor is drawn into the overview in its colour
        let buf = h.terminal.backend().buffer();
        let red = Color::Rgb(255, 60, 60);
        assert!(buf.content().iter().any(|c| c.fg == red || c.bg == red), "cursor colour on screen");
    }
}

#[test]
fn braille_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let h = open(&f, 100, 30, Graphics::Braille);
    let t = h.text();
    assert!(t.chars().any(|c| ('\u{2801}'..='\u{28FF}').contains(&c)), "braille dots drawn");
    insta::assert_snapshot!("main_braille_100x30", t);
}

#[test]
fn help_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh, Graphics::Halfblocks);
        h.key(KeyCode::Char('?'));
        assert_eq!(h.state.popup, Popup::Help(0));
        h.draw();
        let t = h.text();
        assert!(t.contains("cycle detector"), "help lists the key table");
        insta::assert_snapshot!(format!("help_{w}x{hh}"), t);
        // a help longer than the terminal scrolls: its last line (the mouse) comes into view
        let fits = !t.contains("up/down scroll");
        assert_eq!(fits, t.contains("a click on an overview moves the cursor"), "{t}");
        for _ in 0..60 {
            h.key(KeyCode::Down);
        }
        h.draw();
        let end = h.text();
        assert!(end.contains("a click on an overview moves the cursor"), "{end}");
        assert!(end.contains("FFT explorer"), "{end}");
        assert!(matches!(h.state.popup, Popup::Help(_)), "scrolling keeps the help open");
        h.key(KeyCode::Char('z'));
        assert_eq!(h.state.popup, Popup::None, "any key closes help");
    }
}

#[test]
fn fft_explorer_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh, Graphics::Halfblocks);
        // a .mib without an FFT asks to convert first
        h.key(KeyCode::Tab);
        match &h.state.popup {
            Popup::Confirm(_, t) => assert!(t.contains("4D FFT requires conversion to EMD. Convert now?")),
            p => panic!("expected the conversion prompt, got {p:?}"),
        }
        h.draw();
        insta::assert_snapshot!(format!("fft_prompt_{w}x{hh}"), h.text());
        h.key(KeyCode::Char('n'));
        assert_eq!(h.state.popup, Popup::None);
        // plug in a stand-in source (the EMD FftCache plugs in the same way)
        let m = MemFft::compute(h.state.ds.as_ref(), 1 << 20, &Progress::new("t", 0)).unwrap();
        h.state.set_fft(Arc::new(m));
        h.key(KeyCode::Tab);
        assert_eq!(h.state.screen, Screen::Fft);
        h.key(KeyCode::Right);
        h.key(KeyCode::Char('+'));
        assert_eq!(h.state.fft.half, 1);
        h.draw();
        insta::assert_snapshot!(format!("fft_{w}x{hh}"), h.text());
        // reverse view
        h.key(KeyCode::Char('v'));
        assert!(h.state.fft.reverse);
        let [qr, qc, _, _] = h.state.fft.source.as_ref().unwrap().shape();
        assert_eq!(h.state.fft.amp.len(), qr * qc, "reverse view shows G over Q");
        h.key(KeyCode::Tab);
        assert_eq!(h.state.screen, Screen::Main);
    }
}

#[test]
fn keys_move_switch_detector_and_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let (f, spec) = synth_scan(&dir);
    let mut h = open(&f, 100, 30, Graphics::Halfblocks);
    assert_eq!(h.state.main.cursor, (8, 12));
    h.key(KeyCode::Right);
    h.key(KeyCode::Right);
    h.key(KeyCode::Char('k'));
    h.key_mod(KeyCode::Left, KeyModifiers::SHIFT);
    assert_eq!(h.state.main.cursor, (7, 4));
    let pos = 7 * 24 + 4;
    // the frame on screen is the one at the cursor, decoded correctly
    let (fp, fr) = h.state.main.frame.clone().unwrap();
    assert_eq!(fp, pos);
    let expect = synth::expected_frame(&spec, pos);
    assert!(fr.iter().zip(&expect).all(|(a, b)| *a == *b as f32));
    h.draw();
    assert!(h.text().contains(&format!("frame (7, 4) #{pos}")));
    // clamping at the edge
    for _ in 0..5 {
        h.key_mod(KeyCode::Up, KeyModifiers::SHIFT);
    }
    assert_eq!(h.state.main.cursor, (0, 4));
    // detector cycle: BF -> ADF -> CoM x
    h.key(KeyCode::Char('m'));
    assert_eq!(h.state.main.kind, DetectorKind::Adf);
    h.draw();
    assert!(h.text().contains("ADF overview"));
    h.key(KeyCode::Char('m'));
    assert_eq!(h.state.main.kind, DetectorKind::ComX);
    // moving the detector recomputes the overview with the new centre
    let c0 = h.state.main.geometry.center;
    h.keys("dd");
    h.key(KeyCode::Char('w'));
    assert_eq!(h.state.main.geometry.center, (c0.0 - 1.0, c0.1 + 2.0));
    h.settle(WAIT);
    let o = h.state.main.overviews.as_ref().unwrap();
    assert_eq!(o.geometry.center, (c0.0 - 1.0, c0.1 + 2.0));
    assert!(o.complete);
    // radius keys
    let r0 = h.state.main.geometry.bf_radius;
    h.keys("++");
    assert_eq!(h.state.main.geometry.bf_radius, r0 + 2.0);
    // mouse click on the overview moves the cursor to the clicked scan position
    let cells = h.state.prepared.overview_cells.unwrap();
    emdtui::tui::handle(
        &mut h.state,
        emdtui::tui::app::AppEvent::Input(ratatui::crossterm::event::Event::Mouse(
            ratatui::crossterm::event::MouseEvent {
                kind: ratatui::crossterm::event::MouseEventKind::Down(ratatui::crossterm::event::MouseButton::Left),
                column: cells.x,
                row: cells.y,
                modifiers: KeyModifiers::NONE,
            },
        )),
    );
    assert_eq!(h.state.main.cursor, (0, 0));
}

#[test]
fn roi_mean_diffraction() {
    let dir = tempfile::tempdir().unwrap();
    let (f, spec) = synth_scan(&dir);
    let mut h = open(&f, 100, 30, Graphics::Halfblocks);
    h.key(KeyCode::Char('r'));
    h.key(KeyCode::Right);
    h.key(KeyCode::Down);
    h.key(KeyCode::Char('r'));
    h.settle(WAIT);
    let (mean, n) = h.state.main.roi_mean.clone().expect("ROI mean");
    assert_eq!(n, 4);
    let mut expect = vec![0f64; 256 * 256];
    for (r, c) in [(8, 12), (8, 13), (9, 12), (9, 13)] {
        for (e, v) in expect.iter_mut().zip(synth::expected_frame(&spec, r * 24 + c)) {
            *e += v as f64 / 4.0;
        }
    }
    assert!(mean.iter().zip(&expect).all(|(a, b)| (*a as f64 - b).abs() < 1e-3));
    h.draw();
    assert!(h.text().contains("ROI mean diffraction (4 positions)"));
    h.key(KeyCode::Esc);
    assert!(h.state.main.roi_mean.is_none());
}

#[test]
fn running_job_snapshot_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh, Graphics::Halfblocks);
        let p = Progress::new("convert", 100);
        let (tx, rx) = std::sync::mpsc::channel();
        h.state.jobs.table.spawn(
            p.clone(),
            |p| {
                p.set_done(40);
                loop {
                    p.check()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            },
            move |p, r: emdtui::Result<()>| tx.send((p.state(), r.is_err())).unwrap(),
        );
        while p.state() != JobState::Running {
            std::thread::sleep(Duration::from_millis(1));
        }
        // select the new job (the list shows newest first) and snapshot
        h.key(KeyCode::Char('n'));
        assert_eq!(h.state.jobs.selected, 1);
        h.draw();
        let t = h.text();
        assert!(t.contains("running  40/100"), "{t}");
        insta::assert_snapshot!(format!("job_running_{w}x{hh}"), t);
        // q while a job runs asks first; n keeps the app
        h.key(KeyCode::Char('q'));
        assert!(matches!(h.state.popup, Popup::Confirm(..)));
        assert!(!h.state.quit);
        h.key(KeyCode::Char('n'));
        // x cancels the selected job
        h.key(KeyCode::Char('x'));
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (JobState::Cancelled, true));
        h.draw();
        assert!(h.text().contains("cancelled"));
        h.key(KeyCode::Char('q'));
        assert!(h.state.quit);
    }
}

#[test]
fn convert_job_reports_its_end() {
    // `c` starts the conversion as a background job; whatever the engine says (done or an
    // error) ends up in the jobs panel and the status line, and the app stays usable
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let mut h = open(&f, 100, 30, Graphics::Halfblocks);
    h.key(KeyCode::Char('c'));
    assert!(h.state.jobs.table.list().iter().any(|j| j.name == "convert"));
    h.settle(WAIT);
    let j = h.state.jobs.table.list().into_iter().find(|j| j.name == "convert").unwrap();
    assert!(j.state().finished());
    h.draw();
    let t = h.text();
    match j.state() {
        JobState::Done => assert!(f.with_extension("emd").exists() && t.contains("converted to")),
        JobState::Failed => assert!(t.contains("convert failed"), "{t}"),
        s => panic!("unexpected state {s:?}"),
    }
    h.key(KeyCode::Right);
    assert_eq!(h.state.main.cursor, (8, 13));
}

#[test]
fn export_writes_png_next_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let mut h = open(&f, 100, 30, Graphics::Halfblocks);
    h.key(KeyCode::Char('e'));
    let out = dir.path().join("scan_bf.png");
    assert!(h.state.status.contains(&out.display().to_string()), "{}", h.state.status);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (24, 16), "one pixel per scan position");
}

#[test]
fn interrupted_conversion_is_offered_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    std::fs::write(dir.path().join("scan.emd.part"), b"partial").unwrap();
    let mut h = Harness::open(&f, 100, 30, Graphics::Halfblocks).unwrap();
    match &h.state.popup {
        Popup::Confirm(emdtui::tui::app::Confirm::Resume(p), t) => {
            assert!(p.ends_with("scan.emd.part"));
            assert!(t.contains("Resume"));
        }
        p => panic!("expected a resume offer, got {p:?}"),
    }
    h.key(KeyCode::Char('n'));
    assert_eq!(h.state.popup, Popup::None);
    assert!(!h.state.jobs.table.list().iter().any(|j| j.name == "convert"));
    h.settle(WAIT);
}

#[test]
fn real_files_open_and_navigate_without_panics() {
    // every real test file (single/quad, raw, 1..24 bit, non-square ROI detectors, 1-frame scans)
    let Some(root) = common::testdata_or_skip() else { return };
    let Ok(dirs) = std::fs::read_dir(&root) else {
        eprintln!("skipped: cannot list the real test files in {}", root.display());
        return;
    };
    let mut n = 0;
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else { continue };
        for f in files.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "mib")) {
            let mut h = open(&f, 100, 30, Graphics::Halfblocks);
            let (dr, dc) = h.state.ds.det();
            let fr = h.state.main.frame.clone().unwrap_or_else(|| panic!("{}: no frame", f.display()));
            assert_eq!(fr.1.len(), dr * dc, "{}", f.display());
            for k in [
                KeyCode::Right,
                KeyCode::Down,
                KeyCode::Char('m'),
                KeyCode::Char('m'),
                KeyCode::Char('g'),
                KeyCode::Char('p'),
            ] {
                h.key(k);
            }
            h.keys("dd+]");
            h.settle(WAIT);
            h.draw();
            h.key(KeyCode::Tab);
            h.key(KeyCode::Char('n'));
            h.draw();
            assert!(h.text().contains("overview"), "{}", f.display());
            n += 1;
        }
    }
    assert!(n >= 10, "found {n} real files");
}

#[test]
fn emd_opens_with_its_cached_overviews_and_marks_stale_caches() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let emd = dir.path().join("scan.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    let stored = emdtui::store::emd::EmdFile::open(&emd)
        .unwrap()
        .read_overviews()
        .unwrap()
        .expect("overviews cached at conversion");
    let h = open(&emd, 160, 48, Graphics::Halfblocks);
    let o = h.state.main.overviews.as_ref().expect("overview shown");
    assert!(o.complete);
    assert_eq!(o.bf, stored.bf, "the overview comes from the EMD cache");
    assert_eq!(h.state.main.geometry, stored.geometry, "the detector overlay follows the cached geometry");
    assert_eq!(h.state.main.overview_job.as_ref().unwrap().message(), "loaded from cache");
    let t = h.text();
    assert!(t.contains("caches 7 valid"), "{t}");
    assert!(t.contains("complete (from cache)"), "{t}");
    drop(h);
    // a stale cache is marked, and not shown as valid
    let f2 = emdtui::format::h5::open_rw(&emd).unwrap();
    emdtui::format::h5::set_int_attr(
        &f2.group("datacube_root/datacube/cached/virtual_bf").unwrap(),
        "emdtui_cache_format",
        99,
    )
    .unwrap();
    drop(f2);
    let mut h = open(&emd, 160, 48, Graphics::Halfblocks);
    let t = h.text();
    assert!(t.contains("STALE (virtual_bf)"), "{t}");
    assert_ne!(h.state.main.overview_job.as_ref().unwrap().message(), "loaded from cache");
    h.settle(WAIT);
    assert!(h.state.main.overviews.as_ref().unwrap().complete, "recomputed from the datacube");
}

#[test]
fn interrupted_fft_is_offered_for_resume_and_completes() {
    use emdtui::compute::fft;
    use emdtui::store::fft as fft_cache;
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let emd = dir.path().join("scan.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    let eds = emdtui::dataset::open(&emd, &Default::default()).unwrap();
    let params = fft::FftParams { axes: fft::FftAxes::Scan, crop: None, bin: 4 };
    let opts = fft::RunOptions { cancel_after_groups: Some(1), max_tiles_per_group: Some(1), ..Default::default() };
    assert!(fft::compute_with(eds.as_ref(), &emd, &params, 8 << 20, &Progress::new("f", 0), &opts).is_err());
    drop(eds);
    assert!(matches!(fft_cache::FftCache::status(&emd, None), fft_cache::CacheStatus::Incomplete(..)));
    // opening the .mib finds the interrupted FFT in its EMD
    let mut h = open(&f, 160, 48, Graphics::Halfblocks);
    let Popup::Confirm(_, text) = &h.state.popup else { panic!("no resume offer: {:?}", h.state.popup) };
    assert!(text.contains("interrupted 4D FFT") && text.contains("blocks done"), "{text}");
    h.key(KeyCode::Char('y'));
    h.settle(WAIT);
    let c = fft_cache::FftCache::open(&emd).expect("resumed FFT complete");
    assert_eq!(c.params, params, "resumed with the interrupted run's parameters");
    assert!(h.state.fft.source.is_some(), "the explorer has the FFT");
}

#[test]
fn readouts_three_images_and_diffractogram_snapshots() {
    use emdtui::compute::diffractogram::{self, Magnitude};
    use emdtui::tui::app::ViewLayout;
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh, Graphics::Halfblocks);
        // readouts: statistics in the bottom border, colour bar with its limits under the image
        let bf = h.state.main.overviews.as_ref().unwrap().image(DetectorKind::Bf);
        let st = emdtui::compute::display::stats(&bf).unwrap();
        let shown = &h.state.prepared.views[0].as_ref().unwrap().2;
        assert_eq!(shown.readout.stats, Some(st));
        let (lo, hi) = shown.readout.range.unwrap();
        assert!(st.min <= lo && lo < hi && hi <= st.max, "clipped range inside min..max");
        // % cycles the clipping; min-max spans the whole range
        h.keys("%%");
        assert_eq!(h.state.main.overview_display.clip, (1.0, 99.0));
        h.key(KeyCode::Char('%'));
        assert_eq!(h.state.main.overview_display.clip, (0.0, 100.0));
        h.draw();
        let r = &h.state.prepared.views[0].as_ref().unwrap().2.readout;
        assert_eq!(r.range, Some((st.min, st.max)));
        let t = h.text();
        assert!(t.contains("clipping: min-max"), "{t}");
        assert!(t.contains(&emdtui::tui::images::num(st.max as f64)), "upper limit shown: {t}");
        insta::assert_snapshot!(format!("readouts_minmax_{w}x{hh}"), t);
        h.key(KeyCode::Char('%'));
        assert_eq!(h.state.main.overview_display.clip, (0.5, 99.5));
        // three virtual images side by side, all from the one overview pass
        h.key(KeyCode::Char('o'));
        assert_eq!(h.state.main.layout, ViewLayout::Three);
        h.draw();
        let t = h.text();
        assert!(t.contains("▸BF") && t.contains(" ADF") && t.contains("DPC magnitude"), "{t}");
        let cells: Vec<_> = h.state.prepared.views.iter().map(|v| v.as_ref().expect("three images").2.cells).collect();
        // the same scan in panes of (about) the same size: the images fill them alike
        assert!(cells.iter().all(|c| c.width.abs_diff(cells[0].width) <= 1 && c.height == cells[0].height));
        for (_, area, v) in h.state.prepared.views.iter().flatten() {
            // one side uses the whole pane (24x16 scan: scaled up, not only by whole factors)
            assert!(v.cells.width == area.width || v.cells.height == area.height, "{:?} in {area:?}", v.cells);
        }
        insta::assert_snapshot!(format!("three_images_{w}x{hh}"), t);
        // diffractogram of the current image instead of the frame
        h.key(KeyCode::Char('t'));
        assert_eq!(h.state.main.diffractogram, Some(Magnitude::Sqrt));
        h.draw();
        let o = h.state.main.overviews.as_ref().unwrap();
        let d =
            diffractogram::diffractogram(&bf, o.scan_cols, 0..o.scan_rows, 0..o.scan_cols, Magnitude::Sqrt).unwrap();
        let r = &h.state.prepared.right.as_ref().unwrap().2.readout;
        assert_eq!(r.stats, emdtui::compute::display::stats(&d.values));
        let t = h.text();
        assert!(t.contains(if w > 100 { "FFT of BF (Hann, |F|^0.5)" } else { "FFT BF" }), "{t}");
        insta::assert_snapshot!(format!("diffractogram_{w}x{hh}"), t);
        // of the ROI when one is set; log magnitude; t again: the frame
        h.key(KeyCode::Char('r'));
        h.keys("ll");
        h.key(KeyCode::Char('j'));
        h.key(KeyCode::Char('r'));
        h.key(KeyCode::Char('t'));
        assert_eq!(h.state.main.diffractogram, Some(Magnitude::Log));
        h.draw();
        let t = h.text();
        assert!(t.contains(if w > 100 { "FFT of BF ROI 2x3 (Hann, log |F|)" } else { "FFT BF ROI 2x3" }), "{t}");
        assert_eq!(h.state.prepared.right.as_ref().unwrap().2.readout.stats.unwrap().n, 6);
        h.key(KeyCode::Char('t'));
        assert_eq!(h.state.main.diffractogram, None);
        h.settle(WAIT);
        h.draw();
        assert!(h.text().contains("ROI mean diffraction"));
        // back to one image
        h.key(KeyCode::Char('o'));
        assert_eq!(h.state.main.layout, ViewLayout::Single);
    }
}

#[test]
fn three_images_fill_their_panes_in_braille() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = synth_scan(&dir);
    let mut h = open(&f, 160, 48, Graphics::Braille);
    h.key(KeyCode::Char('o'));
    h.draw();
    for v in &h.state.prepared.views {
        let (_, area, s) = v.as_ref().expect("image");
        // one side uses the whole pane (24x16 scan: the width)
        assert_eq!(s.cells.width, area.width, "{:?} in {:?}", s.cells, area);
    }
}
