//! The TUI ptychography view (issue 25): on a synthetic scan converted to EMD, `P` asks for the
//! FFT, runs `ops::ptycho::run` as a job and shows its SSB phase (equal to the workflow's result
//! on a copy of the file) with the run in the metadata pane, snapshots at two sizes; the second
//! opening loads from the EMD cache; the defocus keys recompute at the asked defocus and a
//! session's results come back at once; a missing calibration names the flags to pass; the
//! result reaches the screen after its job has ended (the jobs panel shows it done).

mod common;

use emdtui::compute::calib::Calibration;
use emdtui::compute::ssb::SsbResult;
use emdtui::format::synth_tcbf::ParallaxSpec;
use emdtui::jobs::{JobState, Progress};
use emdtui::tui::app::{AppEvent, Confirm, Popup, Screen, ViewLayout};
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::KeyCode;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(120);

fn cal() -> Calibration {
    Calibration { r: Some((0.5, "A".into())), q: None, alpha_mrad: Some(20.0), energy_v: Some(200e3) }
}

/// A 48x48 synthetic scan converted to `scan.emd` (no FFT yet).
fn emd(dir: &Path) -> PathBuf {
    let mib = dir.join("scan.mib");
    ParallaxSpec::default().write(&mib).unwrap();
    let emd = dir.join("scan.emd");
    let ds = emdtui::dataset::open(&mib, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    std::fs::remove_file(&mib).unwrap();
    emd
}

/// `ops::ptycho::run` on (a copy of) an EMD at `defocus_a`: what the view must show.
fn reference(emd: &Path, defocus_a: f64) -> SsbResult {
    let src = emdtui::dataset::open(emd, &Default::default()).unwrap();
    let o = emdtui::ops::ptycho::PtychoOptions { defocus_a, ..Default::default() };
    let params = emdtui::ops::ptycho::params(&cal(), &o).unwrap();
    let fft = emdtui::ops::fft::FftJob {
        src,
        emd: emd.to_path_buf(),
        convert: Default::default(),
        want: emdtui::ops::fft::FftWant::ScanAxes,
        budget: 1 << 30,
        run: Default::default(),
    };
    let p = Progress::new("t", 0);
    let job = emdtui::ops::ptycho::PtychoJob { fft, params, use_cache: false };
    emdtui::ops::ptycho::run(job, &emdtui::ops::fft::OneProgress(&p)).unwrap().result
}

/// The viewer on `f` with the calibration given at launch.
fn open(f: &Path, w: u16, h: u16) -> Harness {
    let mut h = Harness::open(f, w, h, Graphics::Halfblocks).unwrap();
    h.state.quant.calibration = h.state.quant.calibration.merged(&cal());
    h.settle(WAIT);
    h.draw();
    h
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let top = b.iter().filter(|v| v.is_finite()).fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * top || (x.is_nan() && y.is_nan()), "{what}[{i}]: {x} vs {y}");
    }
}

/// The line of the jobs panel that shows the job `name`.
fn job_line(t: &str, name: &str) -> String {
    t.lines().find(|l| l.contains(&format!("{name:<11}"))).unwrap_or_else(|| panic!("no {name} job:\n{t}")).into()
}

#[test]
fn ptycho_view_shows_the_workflow_result_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let copy = dir.path().join("copy.emd");
    std::fs::copy(&f, &copy).unwrap();
    let want = reference(&copy, 0.0);
    for (i, (w, hh)) in SIZES.into_iter().enumerate() {
        let mut h = open(&f, w, hh);
        h.key(KeyCode::Char('P'));
        assert_eq!(h.state.main.layout, ViewLayout::Ptycho);
        if i == 0 {
            match &h.state.popup {
                Popup::Confirm(Confirm::Ptycho, q) => assert!(q.contains("Ptychography needs the 4D FFT"), "{q}"),
                p => panic!("expected the ptychography question, got {p:?}"),
            }
            assert!(h.state.ptycho.job.is_none(), "nothing runs before the answer");
            h.key(KeyCode::Char('y'));
        } else {
            assert_eq!(h.state.popup, Popup::None, "the FFT and the result are in the EMD now");
        }
        h.settle(WAIT);
        h.draw();
        let cur = h.state.ptycho.current().expect("SSB result").clone();
        let r = &cur.result;
        assert_eq!(cur.origin, if i == 0 { "computed (FFT computed first)" } else { "loaded from the EMD cache" });
        assert_eq!(r.scan, (48, 48));
        assert_eq!(r.params.defocus_a, 0.0);
        assert_close(&r.phase, &want.phase, "SSB phase");
        assert_close(&r.icom, &want.icom, "iCoM");
        // the pane shows that image: its readout has the phase's statistics
        let (_, _, shown) = h.state.ptycho.prepared[0].as_ref().expect("SSB pane prepared");
        let st = shown.readout.stats.expect("stats");
        let (mn, mx) =
            r.phase.iter().filter(|v| v.is_finite()).fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((st.min, st.max), (mn, mx));
        let m = &r.summary;
        let t = h.text();
        for s in [
            " SSB phase (rad) ".to_string(),
            " iCoM (same FFT) ".to_string(),
            " ptychography ".to_string(),
            "0 nm (used".to_string(),
            format!("{:.0} % of Q", m.q_with_trotter * 100.0),
            format!("{:.2} mrad", m.alpha_mrad),
            "200 kV".to_string(),
        ] {
            assert!(t.contains(&s), "{s:?} missing:\n{t}");
        }
        if i == 0 {
            let l = job_line(&t, "ptycho");
            assert!(l.contains("done") && !l.contains("running"), "{l}");
        }
        insta::assert_snapshot!(format!("ptycho_{w}x{hh}"), t);
        h.key(KeyCode::Char('P'));
        assert_eq!(h.state.main.layout, ViewLayout::Single);
    }
}

#[test]
fn defocus_keys_recompute_and_results_of_the_session_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let copy = dir.path().join("copy.emd");
    std::fs::copy(&f, &copy).unwrap();
    let mut h = open(&f, 160, 48);
    h.keys("Py");
    h.settle(WAIT);
    let zero = h.state.ptycho.current().expect("in focus").result.clone();
    // +10 nm: a new job at 100 Å; the view says what it corrects
    h.key(KeyCode::Char(')'));
    assert_eq!(h.state.ptycho.defocus_a, 100.0);
    let j = h.state.ptycho.job.clone().expect("a job");
    assert_eq!(h.state.ptycho.job_defocus_a, 100.0);
    h.settle(WAIT);
    h.draw();
    assert_eq!(j.state(), JobState::Done);
    let hundred = h.state.ptycho.current().expect("at 10 nm").result.clone();
    assert_eq!(hundred.params.defocus_a, 100.0);
    assert_close(&hundred.phase, &reference(&copy, 100.0).phase, "SSB phase at 10 nm");
    assert!(h.text().contains("10 nm (used, 100 Å)"), "{}", h.text());
    // fine steps go down by 1 nm: -1 nm twice -> 80 Å
    h.keys(";;");
    h.settle(WAIT);
    assert_eq!(h.state.ptycho.current().expect("at 8 nm").result.params.defocus_a, 80.0);
    // back to 0: the session's result at once, no new job
    let before = h.state.ptycho.job.clone().unwrap();
    h.key(KeyCode::Char('Z'));
    assert!(std::sync::Arc::ptr_eq(h.state.ptycho.job.as_ref().unwrap(), &before), "no new job");
    assert!(std::sync::Arc::ptr_eq(&h.state.ptycho.current().unwrap().result, &zero));
    // no tcBF fit in this session: the key says how to get one
    h.key(KeyCode::Char('T'));
    assert!(h.state.status.contains("no tcBF fit"), "{}", h.state.status);
    assert_eq!(h.state.ptycho.defocus_a, 0.0);
}

#[test]
fn missing_energy_and_angle_name_the_flags_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let mut h = Harness::open(&f, 160, 48, Graphics::Halfblocks).unwrap();
    h.settle(WAIT);
    h.key(KeyCode::Char('P'));
    h.draw();
    assert!(h.state.ptycho.job.is_none() && h.state.popup == Popup::None);
    let b = h.state.ptycho.blocked.clone().expect("blocked");
    for s in ["--energy 200kV", "--alpha 22mrad", "--scan-step 0.3A", "accelerating voltage", "scan.emd"] {
        assert!(b.contains(s), "{s:?} missing: {b}");
    }
    assert!(h.text().contains("SSB needs the accelerating voltage"), "{}", h.text());
}

#[test]
fn the_result_arrives_after_its_job_ended_and_the_panel_says_done() {
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let mut h = open(&f, 160, 48);
    h.keys("Py");
    let job = h.state.ptycho.job.clone().expect("a job");
    let t0 = Instant::now();
    loop {
        let e = h.rx.recv_timeout(WAIT).expect("an event");
        let is_result = matches!(e, AppEvent::Ptycho(_));
        if is_result {
            assert!(job.state().finished(), "the result came while the job was {:?}", job.state());
        }
        emdtui::tui::handle(&mut h.state, e);
        if is_result {
            break;
        }
        assert!(t0.elapsed() < WAIT, "no result");
    }
    h.draw();
    let t = h.text();
    assert!(job_line(&t, "ptycho").contains("done"), "{t}");
    assert!(!t.contains("computing"), "{t}");
    // a tick just after a job ended redraws (the panel shows its final state)
    assert!(!h.state.any_running());
    assert!(emdtui::tui::app::on_event(&mut h.state, AppEvent::Tick), "a job just ended: redraw");
}

/// Cells of the screen inside `area` drawn in colour `c` (foreground or background).
fn cells_in(h: &Harness, area: ratatui::layout::Rect, c: [u8; 3]) -> usize {
    let want = ratatui::style::Color::Rgb(c[0], c[1], c[2]);
    let buf = h.terminal.backend().buffer();
    let mut n = 0;
    for y in area.y..area.y + area.height {
        for x in area.x..area.x + area.width {
            let cell = &buf[(x, y)];
            n += usize::from(cell.fg == want || cell.bg == want);
        }
    }
    n
}

#[test]
fn the_fft_explorer_draws_the_trotters_of_the_ssb_result() {
    use emdtui::tui::images::{TROTTER_COPY, TROTTER_DISK};
    let dir = tempfile::tempdir().unwrap();
    let f = emd(dir.path());
    let mut h = open(&f, 160, 48);
    // before any SSB result the explorer says how to get one
    h.key(KeyCode::Char('F'));
    if h.state.popup != Popup::None {
        h.key(KeyCode::Char('y'));
    }
    h.settle(WAIT);
    if h.state.screen == Screen::Main {
        h.key(KeyCode::Tab);
    }
    h.draw();
    assert_eq!(h.state.screen, Screen::Fft);
    assert!(h.state.fft.source.is_some(), "the FFT is computed");
    assert!(h.text().contains("trotters: no SSB result yet"), "{}", h.text());
    assert!(emdtui::tui::trotters::overlay(&h.state).is_none());
    h.key(KeyCode::Tab);
    h.keys("P");
    assert_eq!(h.state.popup, Popup::None, "the FFT is cached");
    h.settle(WAIT);
    let r = h.state.ptycho.current().expect("SSB result").result.clone();
    h.key(KeyCode::Tab);
    h.draw();
    assert_eq!(h.state.screen, Screen::Fft);
    let t = h.text();
    assert!(t.contains("trotters of the SSB at 0 nm"), "{t}");
    let o = emdtui::tui::trotters::overlay(&h.state).expect("overlay");
    // the disk sits where SSB found it: inside the FFT's bright-field crop, its radius the found one
    let [qr, qc, kr, kc] = h.state.fft.source.as_ref().unwrap().shape();
    assert_eq!((qr, qc), r.scan);
    assert!((o.radius - r.summary.disk.radius).abs() < 1e-9, "{o:?}");
    assert!(o.centre.0 > o.radius - 1.0 && o.centre.0 < kr as f64 - o.radius, "{o:?} in {kr}x{kc}");
    assert!(o.centre.1 > o.radius - 1.0 && o.centre.1 < kc as f64 - o.radius, "{o:?} in {kr}x{kc}");
    // the band |Q| = 2a in Q pixels, and the copy's offset |Q| / a disk radii for the cursor's Q
    let a = r.summary.disk_radius_inv_a;
    let step = r.params.scan_step_a;
    assert!((o.band.1 - 2.0 * a * qc as f64 * step).abs() < 1e-9);
    let q = h.state.fft.q;
    let qmag = ((q.0 as f64 - (qr / 2) as f64) / (qr as f64 * step))
        .hypot((q.1 as f64 - (qc / 2) as f64) / (qc as f64 * step));
    assert!((o.shift.0.hypot(o.shift.1) - qmag / a * o.radius).abs() < 1e-6, "{o:?}");
    // drawn: the disk on the detector panes, the band on the power; `o` takes them away
    let a = emdtui::tui::render::layout(h.terminal.backend().buffer().area, h.state.screen, h.state.main.layout);
    assert!(cells_in(&h, a.panes[1], TROTTER_DISK) > 0 && cells_in(&h, a.panes[1], TROTTER_COPY) > 0);
    // here 2a lies beyond the scan's Nyquist (alpha 20 mrad, step 0.5 Å): no band on the map, and
    // the line says why
    assert!(!emdtui::tui::trotters::band_visible(&o, (qr, qc)), "{o:?}");
    assert_eq!(cells_in(&h, a.panes[0], TROTTER_COPY), 0);
    assert!(t.contains("beyond the scan's Nyquist"), "{t}");
    h.key(KeyCode::Char('o'));
    h.draw();
    assert!(emdtui::tui::trotters::overlay(&h.state).is_none());
    assert_eq!(cells_in(&h, a.panes[1], TROTTER_DISK) + cells_in(&h, a.panes[0], TROTTER_COPY), 0);
    assert!(!h.text().contains("trotters of the SSB"), "{}", h.text());
}
