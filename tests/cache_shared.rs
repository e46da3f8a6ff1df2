//! One overview cache for the terminal UI and `emdtui overview`: a `.mib` opened in the UI stores
//! its complete overviews in the cache directory, and the command line then reuses that entry
//! (no second computation, no second entry).

mod common;

use emdtui::format::synth::SynthSpec;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files in `cache/overviews`, sorted.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(cache.join("overviews")) {
        Ok(r) => r.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Exactly one `.bin` entry and its `.json` sidecar; returns the `.bin`.
fn one_entry(cache: &Path, when: &str) -> PathBuf {
    let e = entries(cache);
    let bins: Vec<&PathBuf> = e.iter().filter(|p| p.extension().is_some_and(|x| x == "bin")).collect();
    assert_eq!(bins.len(), 1, "{when}: one overviews/*.bin expected: {e:?}");
    let sidecar = bins[0].with_extension("json");
    assert_eq!(e, vec![bins[0].clone(), sidecar], "{when}: the entry and its .json sidecar only");
    bins[0].clone()
}

#[test]
fn overview_computed_in_the_tui_is_reused_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let spec = SynthSpec { rows: 6, cols: 8, det: 256, depth: 12, hdr: true, ..Default::default() };
    let mib = common::synth(dir.path(), "shared.mib", &spec);

    // the terminal UI computes the overviews and stores the complete result
    let mut h = Harness::open_with_cache(&mib, 100, 30, Graphics::Halfblocks, &cache).unwrap();
    h.settle(Duration::from_secs(60));
    assert!(!h.state.any_running(), "the overview job did not finish");
    let ov = h.state.main.overviews.clone().expect("the TUI has overviews");
    assert!(ov.complete, "the TUI's overviews are complete");
    assert_eq!((ov.scan_rows, ov.scan_cols), (6, 8));
    let bin = one_entry(&cache, "after the TUI");
    let stored = std::fs::read(&bin).unwrap();
    // the entry is what the TUI shows (read back through the store)
    let hit = emdtui::store::ovcache::load(&cache, h.state.ds.as_ref(), &ov.geometry, None).expect("a cache entry");
    assert_eq!(hit.bf, ov.bf);
    drop(h);

    // the command line finds it: a cache hit, the same BF image, no new entry
    let out = dir.path().join("bf.npy");
    let o = common::command()
        .args(["overview", mib.to_str().unwrap(), "--detector", "bf", "-o", out.to_str().unwrap()])
        .env("EMDTUI_CACHE_DIR", &cache)
        .env("EMDTUI_TIMING", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "emdtui overview failed: {err}");
    assert!(err.contains("timing: cache hit"), "the CLI did not reuse the TUI's cached overviews: {err}");
    assert!(!err.contains("full pass"), "the CLI computed again: {err}");
    let img: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(img.dim(), (6, 8));
    let got: Vec<u32> = img.iter().map(|v| v.to_bits()).collect();
    let want: Vec<u32> = ov.bf.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want, "the CLI's BF image differs from the TUI's");
    assert_eq!(one_entry(&cache, "after the CLI"), bin);
    assert_eq!(std::fs::read(&bin).unwrap(), stored, "the entry was rewritten");
}
