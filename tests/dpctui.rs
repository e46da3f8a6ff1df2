//! Quantitative display (issue 13): the DPC result cached inside an EMD (hit, identical output,
//! invalidated by changed data), the TUI DPC view (iCoM + colour wheel with legend, rotation and
//! flip overrides) at two sizes, bad pixels masked in the overviews and the frame view of the two
//! real files with a hot pixel at row 39, column 52, the user mask of the wrong shape, and the
//! calibrated metadata pane with its scale bars.

mod common;

use emdtui::compute::calib::Calibration;
use emdtui::format::synth::SynthSpec;
use emdtui::jobs::Progress;
use emdtui::tui::app::ViewLayout;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::{Graphics, PaneImage};
use ratatui::crossterm::event::KeyCode;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(60);

fn synth_scan(dir: &Path) -> PathBuf {
    let spec = SynthSpec { rows: 16, cols: 24, det: 256, depth: 12, hdr: true, ..Default::default() };
    common::synth(dir, "scan.mib", &spec)
}

fn emd_of(dir: &Path) -> PathBuf {
    let f = synth_scan(dir);
    let emd = dir.join("scan.emd");
    let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
    emdtui::ops::convert::convert(ds.as_ref(), &emd, &Default::default(), &Progress::new("c", 0)).unwrap();
    emd
}

fn open(f: &Path, w: u16, h: u16) -> Harness {
    let mut h = Harness::open(f, w, h, Graphics::Halfblocks).unwrap();
    h.settle(WAIT);
    h.draw();
    h
}

fn emdtui(cache: &Path) -> assert_cmd::Command {
    let mut c = common::emdtui();
    c.env("EMDTUI_CACHE_DIR", cache);
    c
}

fn dpc_json(f: &Path, out: &Path, cache: &Path) -> serde_json::Value {
    let o = emdtui(cache).arg("dpc").arg(f).arg("-o").arg(out).arg("--json").output().unwrap();
    assert!(o.status.success(), "dpc failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn dpc_of_an_emd_is_cached_inside_it_and_invalidated_by_changed_data() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let emd = emd_of(dir.path());
    let (o1, o2, o3) = (dir.path().join("a.npy"), dir.path().join("b.npy"), dir.path().join("c.npy"));
    let j1 = dpc_json(&emd, &o1, &cache);
    assert_eq!(j1["origin"], "computed", "{j1}");
    let j2 = dpc_json(&emd, &o2, &cache);
    assert_eq!(j2["origin"], "loaded from cache", "{j2}");
    assert_eq!(std::fs::read(&o1).unwrap(), std::fs::read(&o2).unwrap(), "a cache hit gives identical output");
    assert_eq!(j1["rotation_deg"], j2["rotation_deg"]);
    assert!(!cache.join("dpc").exists(), "an EMD keeps its DPC cache inside, not in the cache directory");
    // listed with its provenance, valid
    let info = emdtui(&cache).arg("info").arg(&emd).arg("--json").output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let c = info["caches"].as_array().unwrap().iter().find(|c| c["name"] == "dpc_com").expect("dpc_com listed").clone();
    assert_eq!(c["valid"], true, "{c}");
    assert_eq!(c["shape"], serde_json::json!([2, 16, 24]), "{c}");
    assert!(!c["version"].as_str().unwrap().is_empty() && !c["created"].as_str().unwrap().is_empty(), "{c}");
    // change the first frame of the datacube: the fingerprint changes, the cache is stale
    {
        let f = emdtui::format::h5::open_rw(&emd).unwrap();
        let path = info["datacube"].as_str().unwrap().trim_start_matches('/').to_string();
        let d = f.dataset(&path).unwrap();
        let mut fr: ndarray::Array2<u16> = d.read_slice(ndarray::s![0, 0, .., ..]).unwrap();
        fr[[128, 128]] = fr[[128, 128]].wrapping_add(1000);
        d.write_slice(&fr, ndarray::s![0, 0, .., ..]).unwrap();
    }
    let j3 = dpc_json(&emd, &o3, &cache);
    assert_eq!(j3["origin"], "computed", "changed data is recomputed: {j3}");
}

#[test]
fn dpc_view_snapshots_and_orientation_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_scan(dir.path());
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh);
        h.key(KeyCode::Char('i'));
        assert_eq!(h.state.main.layout, ViewLayout::Dpc);
        h.settle(WAIT);
        h.draw();
        let o = h.state.dpc.outcome.clone().expect("DPC computed");
        let (rot, flip) = (o.result.rotation_deg, o.result.flip);
        assert_eq!((o.result.rows, o.result.cols), (16, 24));
        let t = h.text();
        assert!(t.contains("iCoM phase") && t.contains("rotation") && t.contains("curl ratio"), "{t}");
        insta::assert_snapshot!(format!("dpc_{w}x{hh}"), t);
        // the colour wheel carries its legend: the point right of the legend's centre is red
        let Some((_, _, shown)) = &h.state.dpc.prepared[1] else { panic!("wheel prepared") };
        let PaneImage::Half(r) = &shown.img else { panic!("halfblocks raster") };
        let rad = (r.w.min(r.h) / 6).clamp(3, 24);
        let (cx, cy) = (r.w - rad - 2, r.h - rad - 2);
        assert_eq!(
            r.get(cx + rad - 1, cy),
            emdtui::tui::widgets::wheel::wheel_colour(0.0, (rad - 1) as f64 / rad as f64)
        );
        // overrides: recomputed from the CoM in memory
        h.key(KeyCode::Char('.'));
        let r1 = h.state.dpc.outcome.as_ref().unwrap().result.rotation_deg;
        assert!(((r1 - rot - 1.0).rem_euclid(360.0)).abs() < 1e-9, "{r1} vs {rot} + 1");
        h.key(KeyCode::Char('>'));
        let r2 = h.state.dpc.outcome.as_ref().unwrap().result.rotation_deg;
        assert!(((r2 - rot - 16.0).rem_euclid(360.0)).abs() < 1e-9, "{r2} vs {rot} + 16");
        assert_eq!(h.state.dpc.outcome.as_ref().unwrap().result.flip, flip, "turning keeps the flip");
        h.key(KeyCode::Char('/'));
        assert_eq!(h.state.dpc.outcome.as_ref().unwrap().result.flip, !flip);
        h.draw();
        assert!(h.text().contains("(set)"), "overrides are marked in the metadata pane");
        h.key(KeyCode::Char('0'));
        let o = h.state.dpc.outcome.as_ref().unwrap();
        assert_eq!((o.result.rotation_deg, o.result.flip), (rot, flip), "0 goes back to the found orientation");
        h.key(KeyCode::Char('i'));
        assert_eq!(h.state.main.layout, ViewLayout::Single);
    }
}

#[test]
fn tui_dpc_of_an_emd_comes_from_its_cache_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let emd = emd_of(dir.path());
    let mut first = None;
    for want in ["computed", "loaded from cache"] {
        let mut h = open(&emd, 100, 30);
        h.key(KeyCode::Char('i'));
        h.settle(WAIT);
        let o = h.state.dpc.outcome.clone().expect("DPC result");
        assert_eq!(o.origin.describe(), want);
        match &first {
            None => first = Some(o.result.phase.clone()),
            Some(p) => assert_eq!(p, &o.result.phase, "the cached CoM gives the same iCoM"),
        }
    }
}

fn hot_files() -> Vec<PathBuf> {
    let Some(d) = common::testdata_or_skip() else { return Vec::new() };
    let mut v: Vec<PathBuf> = std::fs::read_dir(d.join("rosettasciio"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mib") && p.to_string_lossy().contains("hot_pixel_52x_39y"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 2, "the two rosettasciio files with a hot pixel");
    v
}

#[test]
fn hot_pixel_does_not_dominate_the_frame_view_or_the_overview() {
    for f in hot_files() {
        let mut h = open(&f, 160, 48);
        let (dr, dc) = h.state.ds.det();
        let hot = 39 * dc + 52;
        let b = h.state.quant.bad.clone().expect("bad pixels found");
        assert!(b.hot.contains(&hot), "{}: {:?}", f.display(), b.hot);
        // the overview patterns are repaired: the pixel is no longer the maximum
        let o = h.state.main.overviews.clone().expect("overview");
        let others = o.max_dp.iter().enumerate().filter(|(i, _)| *i != hot).map(|(_, v)| *v).fold(0f32, f32::max);
        assert!(o.max_dp[hot] <= others, "max pattern at the hot pixel {} vs {others}", o.max_dp[hot]);
        // the frame view: the readout of the masked frame stays below the raw hot value
        let raw = h.state.main.frame.as_ref().expect("frame").1.clone();
        assert_eq!(raw.len(), dr * dc);
        let stats = |h: &Harness| h.state.prepared.right.as_ref().unwrap().2.readout.stats.unwrap();
        let masked_max = stats(&h).max;
        let raw_max = raw.iter().copied().fold(0f32, f32::max);
        assert!(raw[hot] >= raw_max && raw[hot] > 2.0, "the raw frame is dominated by the hot pixel: {}", raw[hot]);
        assert!(masked_max < raw[hot], "{}: masked frame max {masked_max} vs hot {}", f.display(), raw[hot]);
        h.state.quant.keep_bad = true;
        h.state.main.frame_version += 1;
        h.draw();
        assert_eq!(stats(&h).max, raw[hot], "--keep-bad-pixels shows the pixel");
    }
}

#[test]
fn overview_masks_the_hot_pixel_unless_kept_and_rejects_a_wrong_mask() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for f in hot_files() {
        let run = |out: &Path, det: &str, extra: &[&str]| {
            let o = emdtui(&cache)
                .arg("overview")
                .arg(&f)
                .arg("-o")
                .arg(out)
                .args(["--detector", det])
                .args(extra)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let a: ndarray::Array2<f32> = ndarray_npy::read_npy(out).unwrap();
            a
        };
        let (m, mk) = (dir.path().join("m.npy"), dir.path().join("mk.npy"));
        let (s, sk) = (dir.path().join("s.npy"), dir.path().join("sk.npy"));
        let max = run(&m, "max", &[]);
        let kept = run(&mk, "max", &["--keep-bad-pixels"]);
        let top = kept.iter().copied().fold(0f32, f32::max);
        assert_eq!(kept[[39, 52]], top, "kept: the hot pixel is the maximum");
        assert!(max[[39, 52]] < top, "masked: {} vs {top}", max[[39, 52]]);
        let (sum, sum_kept) = (run(&s, "sum", &[]), run(&sk, "sum", &["--keep-bad-pixels"]));
        for (a, b) in sum.iter().zip(sum_kept.iter()) {
            assert!(a < b, "every position loses the hot pixel's counts: {a} vs {b}");
        }
        // cached separately: the kept run after the masked one is no cache hit of it
        let again = run(&sk, "sum", &["--keep-bad-pixels"]);
        assert_eq!(again, sum_kept);
        // a user mask of the wrong shape: one clear error, no output
        let bad = dir.path().join("badmask.npy");
        ndarray_npy::write_npy(&bad, &ndarray::Array2::<u8>::zeros((3, 5))).unwrap();
        let out = dir.path().join("never.npy");
        let o =
            emdtui(&cache).arg("overview").arg(&f).arg("-o").arg(&out).arg("--bad-pixels").arg(&bad).output().unwrap();
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("badmask.npy") && e.contains("3x5"), "{e}");
        assert!(!out.exists(), "no output after bad input");
        // the right shape, a pixel of the user's: accepted
        let (dr, dc) = (max.nrows(), max.ncols());
        let mut um = ndarray::Array2::<bool>::from_elem((dr, dc), false);
        um[[10, 10]] = true;
        ndarray_npy::write_npy(&bad, &um).unwrap();
        let o =
            emdtui(&cache).arg("overview").arg(&f).arg("-o").arg(&out).arg("--bad-pixels").arg(&bad).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn calibrated_metadata_and_scale_bar_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth_scan(dir.path());
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh);
        h.state.quant.calibration = Calibration {
            r: Some((0.5, "nm".into())),
            q: Some((0.25, "mrad".into())),
            alpha_mrad: None,
            energy_v: None,
        };
        h.state.main.ov_version += 1;
        h.draw();
        let t = h.text();
        assert!(t.contains("scan step 0.5000 nm/px"), "{t}");
        assert!(t.contains("detector 0.2500 mrad/px"), "{t}");
        let g = h.state.main.geometry.clone();
        let bf = emdtui::tui::images::num(g.bf_radius as f64 * 0.25);
        let radii = emdtui::tui::widgets::quant::radii_text(&h.state.quant, &h.state.main.geometry);
        assert!(radii.starts_with(&format!("BF {bf}  ADF ")) && radii.ends_with(" mrad"), "{radii}");
        if hh >= 48 {
            assert!(t.contains(&radii), "radii as collection angles in the pane: {t}");
        }
        // 24 scan px of 0.5 nm: a bar of 2 nm (about 1/5 of 12 nm)
        assert!(t.contains("━ 2 nm"), "scale bar on the image: {t}");
        insta::assert_snapshot!(format!("scalebar_{w}x{hh}"), t);
        // `e` burns the bar into the PNG: white pixels in the bottom-left corner, none without it
        let png = dir.path().join("scan_bf.png");
        let white_corner = |h: &mut Harness| {
            h.key(KeyCode::Char('e'));
            let img = image::open(&png).unwrap().to_rgb8();
            let (iw, ih) = img.dimensions();
            assert_eq!((iw, ih), (24, 16));
            (0..iw / 2)
                .flat_map(|x| (0..ih).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0 == [255; 3])
                .count()
        };
        let with_bar = white_corner(&mut h);
        h.state.quant.calibration = Calibration::default();
        let without = white_corner(&mut h);
        assert!(with_bar >= without + 10, "scale bar burned into the export: {with_bar} vs {without} white pixels");
    }
}

#[test]
fn info_shows_the_remembered_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let f = synth_scan(dir.path());
    let out = dir.path().join("o.npy");
    let o = emdtui(&cache)
        .arg("overview")
        .arg(&f)
        .arg("-o")
        .arg(&out)
        .args(["--scan-step", "0.5nm", "--q-pixel", "0.25mrad"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = emdtui(&cache).arg("info").arg(&f).output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("scan step 0.5 nm/px; detector 0.25 mrad/px"), "{t}");
    let o = emdtui(&cache).arg("info").arg(&f).arg("--json").output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["calibration"]["r"], serde_json::json!([0.5, "nm"]), "{}", j["calibration"]);
}
