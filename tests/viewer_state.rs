//! What the viewer shows about its own state: the dataset pane while following a growing
//! acquisition, and a finished job's elapsed time and rate.

use emdtui::format::synth::{self, SynthSpec};
use emdtui::jobs::{JobState, Progress};
use emdtui::tui::app::AppEvent;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use std::io::Write;
use std::time::{Duration, Instant};

fn meta<'a>(h: &'a Harness, key: &str) -> &'a str {
    let m = &h.state.info.metadata;
    m.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key} in {m:?}"))
}

#[test]
fn the_dataset_pane_follows_a_growing_acquisition() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 6, cols: 8, det: 256, depth: 6, hdr: true, ..Default::default() };
    let full = dir.path().join("full.mib");
    synth::write(&full, &spec, &|_, _| {}).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let stride = bytes.len() / 48;
    let live = dir.path().join("live.mib");
    std::fs::write(&live, &bytes[..20 * stride]).unwrap();
    std::fs::copy(full.with_extension("hdr"), live.with_extension("hdr")).unwrap();
    let mut h = Harness::open(&live, 100, 30, Graphics::Halfblocks).unwrap();
    h.settle(Duration::from_secs(60));
    assert_eq!(meta(&h, "frames"), "20");
    assert!(meta(&h, "scan").contains("20 of 48 positions have frames"), "{}", meta(&h, "scan"));
    // the rest of the acquisition arrives; the next poll sees it
    let mut f = std::fs::OpenOptions::new().append(true).open(&live).unwrap();
    f.write_all(&bytes[20 * stride..]).unwrap();
    f.flush().unwrap();
    h.state.follow.last_poll = Instant::now() - Duration::from_secs(1);
    h.state.tx.send(AppEvent::Tick).unwrap();
    h.pump();
    assert_eq!(meta(&h, "frames"), "48", "the frame count of the complete acquisition");
    assert!(!meta(&h, "scan").contains("positions have frames"), "{}", meta(&h, "scan"));
    assert_eq!(meta(&h, "size"), meta_size(bytes.len() as u64));
    h.settle(Duration::from_secs(60));
    h.draw();
    let text = h.text();
    assert!(text.contains("frames 48"), "{text}");
    assert!(!text.contains("20 of 48"), "{text}");
}

fn meta_size(b: u64) -> String {
    humansize::format_size(b, humansize::BINARY)
}

#[test]
fn a_finished_job_shows_the_time_and_rate_it_ended_with() {
    let p = Progress::new("quick", 1);
    p.set_state(JobState::Running);
    p.add(1, 10 << 20);
    p.set_state(JobState::Done);
    let (e, r) = (p.elapsed_s(), p.throughput());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!((p.elapsed_s(), p.throughput()), (e, r), "frozen at completion");
    assert!(e < 0.05, "a quick job stays quick: {e}");
}

#[test]
fn the_viewers_fft_of_a_mib_runs_pass_1_alongside_the_conversion() {
    use emdtui::tui::app::{Popup, Screen};
    use ratatui::crossterm::event::KeyCode;
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 8, cols: 8, det: 256, depth: 12, hdr: true, ..Default::default() };
    let mib = dir.path().join("s.mib");
    synth::write(&mib, &spec, &|_, _| {}).unwrap();
    let mut h = Harness::open(&mib, 100, 30, Graphics::Halfblocks).unwrap();
    h.settle(Duration::from_secs(60));
    // a scratch file (a scan this small would keep it in memory, and pass 1 then runs after)
    h.state.tuning.fft_scratch_on_disk = true;
    h.key(KeyCode::Char('F'));
    assert!(matches!(&h.state.popup, Popup::Confirm(..)), "asks before converting");
    h.key(KeyCode::Char('y'));
    assert_eq!(h.state.popup, Popup::None, "the FFT fits: it starts, its estimate on the status line");
    h.settle(Duration::from_secs(120));
    let emd = dir.path().join("s.emd");
    assert!(emd.is_file(), "converted");
    assert!(h.state.fft.source.is_some(), "the FFT is loaded: {}", h.state.status);
    assert!(h.state.status.contains("pass 1 ran alongside the conversion"), "{}", h.state.status);
    let (scratch, state) = emdtui::compute::fft::scratch_paths(&emd);
    assert!(!scratch.exists() && !state.exists(), "the scratch was taken over and removed");
    // the same transform as the FFT computed from the EMD alone
    let cache = emdtui::store::fft::FftCache::open(&emd).unwrap();
    let again = dir.path().join("again.emd");
    std::fs::copy(&emd, &again).unwrap();
    let ds = emdtui::dataset::open(&again, &Default::default()).unwrap();
    let r = emdtui::compute::fft::compute_with(
        ds.as_ref(),
        &again,
        &cache.params,
        1 << 30,
        &Progress::new("t", 0),
        &emdtui::compute::fft::RunOptions::default(),
    )
    .unwrap();
    assert!(r.already_complete, "the viewer's cache is complete and valid for its parameters");
    h.key(KeyCode::Tab);
    assert_eq!(h.state.screen, Screen::Fft);
}
