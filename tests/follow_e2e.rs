//! Following a running acquisition (issue 12): the real binary, with no flags, in a detached
//! tmux session, shows a `.mib` that is still being written. Frames are appended while it runs;
//! without any key, the screen must show the growing frame count ("acquiring ... of 256
//! frames"), then "acquisition complete: 256 frames" and the overview complete — and the values
//! must be those of the whole file (checked against `emdtui overview` of the finished file).

mod common;

use common::tmux::{Tmux, exited, have_tmux, pane_cmd};
use std::io::Write;
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded; the test fails only past this.
const GIVE_UP: Duration = Duration::from_secs(60);

#[test]
fn growing_file_is_followed_without_a_key() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // the whole acquisition, written by the project's generator (16x16 scan, with the .hdr)
    let full = dir.path().join("full.mib");
    let o = common::command()
        .args(["synth", full.to_str().unwrap(), "--scan", "16x16", "--detector", "256", "--hdr"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&full).unwrap();
    let stride = bytes.len() / 256;
    assert_eq!(stride * 256, bytes.len());
    // the acquisition "in progress": its .hdr and the first 64 frames
    let live = dir.path().join("live.mib");
    std::fs::copy(dir.path().join("full.hdr"), dir.path().join("live.hdr")).unwrap();
    std::fs::write(&live, &bytes[..64 * stride]).unwrap();

    let cache = dir.path().join("cache");
    let (t, t0) = Tmux::start("follow", &pane_cmd(&cache, live.to_str().unwrap()));
    let (s, _) = t.wait("the acquiring line", t0, GIVE_UP, |s| s.contains("acquiring") && s.contains("of 256 frames"));
    assert!(s.contains("64 of 256 frames"), "first state:\n{s}");

    // the detector writes the rest in bursts of whole frames, with pauses
    let mut f = std::fs::OpenOptions::new().append(true).open(&live).unwrap();
    let mut seen_between = false;
    for burst in 0..4 {
        let (a, b) = (64 + burst * 48, 64 + (burst + 1) * 48);
        f.write_all(&bytes[a * stride..b * stride]).unwrap();
        f.flush().unwrap();
        let want = format!("{b} of 256 frames");
        let (s, _) =
            t.wait(&want, Instant::now(), GIVE_UP, |s| s.contains(&want) || s.contains("acquisition complete"));
        seen_between |= s.contains(&want);
    }
    assert!(seen_between, "the growing count was never shown");
    let (s, d) = t.wait("the completed acquisition", t0, GIVE_UP, |s| {
        s.contains("acquisition complete: 256 frames") && s.contains("overview complete")
    });
    eprintln!("followed to completion after {:.1} s", d.as_secs_f64());
    assert!(!s.contains("error"), "screen:\n{s}");
    t.send(&["q"]);
    let (s, _) = t.wait("exit", Instant::now(), GIVE_UP, |s| exited(s).is_some());
    assert_eq!(exited(&s), Some("EXITED rc=0"), "screen:\n{s}");

    // the overview the viewer completed was stored in the cache directory: it covers every
    // position and equals a fresh computation on the finished file
    let side: Vec<_> = std::fs::read_dir(cache.join("overviews"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(side.len(), 1, "one complete overview stored: {side:?}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&side[0]).unwrap()).unwrap();
    let geom: emdtui::compute::overview::Geometry = serde_json::from_value(meta["geometry"].clone()).unwrap();
    let ds = emdtui::dataset::MibDataset::open(&live, &Default::default()).unwrap();
    let viewed = emdtui::store::ovcache::load(&cache, &ds, &geom, None).expect("the stored overview matches the file");
    assert!(viewed.complete && viewed.positions_done == 256);
    let opts = emdtui::compute::overview::ComputeOptions { coarse_first: false, ..Default::default() };
    let p = emdtui::jobs::Progress::new("t", 0);
    let fresh = emdtui::compute::overview::compute(&ds, &geom, &opts, &p, &|_| {}).unwrap();
    assert_eq!(viewed.sum, fresh.sum, "sum image of the followed acquisition");
    assert_eq!(viewed.bf, fresh.bf, "BF image of the followed acquisition");
    assert_eq!(viewed.com_x, fresh.com_x);
    let max_rel =
        viewed.mean_dp.iter().zip(&fresh.mean_dp).map(|(a, b)| ((a - b) / b.abs().max(1.0)).abs()).fold(0f32, f32::max);
    assert!(max_rel < 1e-5, "mean pattern merged from the bursts differs by {max_rel}");
    assert_eq!(viewed.max_dp, fresh.max_dp);
}
