//! Bad pixels everywhere a derived image is made (issue 13, last gaps): the overviews `convert`
//! stores in the EMD are masked like `emdtui overview`'s (the datacube stays bit-exact), the
//! masked list is in the cache's provenance; custom detectors and `mask:PATH` images are masked.

mod common;

use common::{emdtui, testdata};
use emdtui::dataset::{self, OpenOptions};
use emdtui::ops::overview::{GeometryChoice, Origin, OverviewJob};
use emdtui::store::emd::EmdFile;
use std::path::{Path, PathBuf};

fn hot_pixel_files() -> Vec<PathBuf> {
    let d = testdata().join("rosettasciio");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mib") && p.to_string_lossy().contains("hot_pixel_52x_39y"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 2, "the two hot-pixel files in {}", d.display());
    v
}

fn read_npy(p: &Path) -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    a.iter().copied().collect()
}

fn run_ok(args: &[&str]) {
    let o = emdtui().args(args).output().unwrap();
    assert!(o.status.success(), "emdtui {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * x.abs().max(1.0))
}

fn job(keep: bool) -> OverviewJob {
    OverviewJob {
        geometry: GeometryChoice::Auto { fallback: emdtui::compute::overview::default_geometry(8, 8) },
        compute: Default::default(),
        cache_dir: None,
        emd_cache: true,
        keep_bad_pixels: keep,
        user_bad: Vec::new(),
    }
}

#[test]
fn converted_overviews_are_masked_like_overview_and_the_datacube_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for mib in hot_pixel_files() {
        let name = mib.file_stem().unwrap().to_string_lossy().to_string();
        let emd = dir.path().join(format!("{name}.emd"));
        let kept = dir.path().join(format!("{name}_kept.emd"));
        run_ok(&["convert", mib.to_str().unwrap(), "-o", emd.to_str().unwrap()]);
        run_ok(&["--keep-bad-pixels", "convert", mib.to_str().unwrap(), "-o", kept.to_str().unwrap()]);
        let (ov, bad) = EmdFile::open(&emd).unwrap().read_overviews_masked().unwrap().expect("overviews cached");
        let (ovk, badk) = EmdFile::open(&kept).unwrap().read_overviews_masked().unwrap().expect("overviews cached");
        let hot = 39 * ov.det_cols + 52;
        assert!(bad.contains(&hot), "{name}: masked {bad:?}");
        assert!(bad.len() <= 3, "{name}: masked {bad:?}");
        assert!(badk.is_empty(), "{name}: --keep-bad-pixels masks nothing: {badk:?}");
        // the stored overviews equal the overview command's (masked) ones
        let sum = dir.path().join(format!("{name}_sum.npy"));
        let mean = dir.path().join(format!("{name}_mean.npy"));
        run_ok(&["overview", mib.to_str().unwrap(), "--no-cache", "--detector", "sum", "-o", sum.to_str().unwrap()]);
        run_ok(&["overview", mib.to_str().unwrap(), "--no-cache", "--detector", "mean", "-o", mean.to_str().unwrap()]);
        let (sum, mean) = (read_npy(&sum), read_npy(&mean));
        assert!(close(&ov.sum, &sum), "{name}: stored sum {:?} != overview {:?}", ov.sum, sum);
        assert!(close(&ov.mean_dp, &mean), "{name}: stored mean pattern differs from the overview's");
        // ... and not the unmasked ones: the hot pixel is in every frame
        let hot_counts = ovk.mean_dp[hot] - ov.mean_dp[hot];
        assert!(hot_counts > 5.0, "{name}: the hot pixel has {} counts per frame above its repair", hot_counts);
        let diff: f32 = ovk.sum.iter().zip(&ov.sum).map(|(a, b)| a - b).sum();
        let n = ov.sum.len() as f32;
        assert!((diff / n - hot_counts).abs() < 0.01 * hot_counts, "{name}: {diff} / {n} vs {hot_counts}");
        assert!(ovk.sum.iter().zip(&ov.sum).all(|(a, b)| a > b), "{name}: the hot pixel is taken out of every frame");
        // masking is for derived images only: the datacube is bit-exact
        let (src, out) = (
            dataset::open(&mib, &OpenOptions::default()).unwrap(),
            dataset::open(&emd, &OpenOptions::default()).unwrap(),
        );
        assert_eq!(src.scan().positions(), out.scan().positions());
        for p in 0..src.scan().positions() {
            assert_eq!(src.frame_u32(p).unwrap(), out.frame_u32(p).unwrap(), "{name}: frame {p}");
        }
        // the viewer and `overview` take the EMD's cache only when it is masked as they mask
        let (o, origin) =
            emdtui::ops::overview::overview(out.as_ref(), &job(false), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::EmdCache, "{name}: the masked cache is used when masking");
        assert!(close(&o.sum, &ov.sum));
        let (o, origin) =
            emdtui::ops::overview::overview(out.as_ref(), &job(true), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::Computed, "{name}: a masked cache is not taken for an unmasked one");
        assert!(close(&o.sum, &ovk.sum), "{name}: --keep-bad-pixels recomputes the unmasked sum");
        let kds = dataset::open(&kept, &OpenOptions::default()).unwrap();
        let (_, origin) =
            emdtui::ops::overview::overview(kds.as_ref(), &job(false), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::Computed, "{name}: an unmasked cache is not taken for a masked one");
        let (_, origin) =
            emdtui::ops::overview::overview(kds.as_ref(), &job(true), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::EmdCache, "{name}");
    }
}

// ---- custom detectors and mask:PATH on a synthetic hot pixel ----

/// The expected (masked, kept) value at a scan position.
type Expect = Box<dyn Fn(usize) -> (f32, f32)>;

const SR: usize = 6;
const SC: usize = 8;
const DET: usize = 32;
const HOT: (usize, usize) = (10, 12);

/// A textured frame (50..54 counts, varying with the position) with a hot pixel of 3000 counts.
fn frame(i: usize) -> Vec<u32> {
    let mut f: Vec<u32> = (0..DET * DET).map(|j| 50 + ((j / DET) * 7 + (j % DET) * 3 + i) as u32 % 5).collect();
    f[HOT.0 * DET + HOT.1] = 3000;
    f
}

/// The frame with the hot pixel replaced by the median of its 8 neighbours.
fn repaired(i: usize) -> Vec<f32> {
    let mut f: Vec<f32> = frame(i).into_iter().map(|v| v as f32).collect();
    let mut nb: Vec<f32> = Vec::new();
    for y in HOT.0 - 1..=HOT.0 + 1 {
        for x in HOT.1 - 1..=HOT.1 + 1 {
            if (y, x) != HOT {
                nb.push(f[y * DET + x]);
            }
        }
    }
    nb.sort_unstable_by(f32::total_cmp);
    f[HOT.0 * DET + HOT.1] = (nb[3] + nb[4]) / 2.0;
    f
}

fn hot_mib(dir: &Path) -> PathBuf {
    let spec =
        emdtui::format::synth::SynthSpec { rows: SR, cols: SC, det: DET, depth: 12, hdr: true, ..Default::default() };
    let out = dir.join("hot.mib");
    emdtui::format::synth::write_with(&out, &spec, &|i, f| f.copy_from_slice(&frame(i))).unwrap();
    out
}

/// `emdtui GLOBAL overview MIB -o OUT ARGS` with its own cache directory; the image written.
fn overview_npy(cache: &Path, mib: &Path, out: &Path, global: &[&str], args: &[&str]) -> Vec<f32> {
    let mut c = assert_cmd::Command::new(common::bin());
    c.env("EMDTUI_CACHE_DIR", cache);
    let o = c
        .args(global)
        .args(["overview", mib.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "overview {global:?} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    read_npy(out)
}

#[test]
fn custom_detectors_and_mask_overviews_replace_a_hot_pixel_by_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mib = hot_mib(dir.path());
    let out = dir.path().join("o.npy");
    let n = SR * SC;
    let fl = |i: usize| -> Vec<f32> { frame(i).into_iter().map(|v| v as f32).collect() };
    let rect = |f: &[f32], max: bool| {
        let v = (8..14).flat_map(|y| (10..15).map(move |x| y * DET + x)).map(|j| f[j]);
        if max { v.fold(0.0, f32::max) } else { v.sum() }
    };
    let hot_i = HOT.0 * DET + HOT.1;
    // (detector args, expected masked, expected kept)
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["--detector", "point:10,12"], Box::new(move |i| (repaired(i)[hot_i], 3000.0))),
        (vec!["--detector", "rect:8:14,10:15"], Box::new(move |i| (rect(&repaired(i), false), rect(&fl(i), false)))),
        (
            vec!["--detector", "rect:8:14,10:15", "--response", "max"],
            Box::new(move |i| (rect(&repaired(i), true), 3000.0)),
        ),
    ];
    for (args, want) in &cases {
        // masked first, into the cache; then kept: the cache must not answer with the masked image
        let got = overview_npy(&cache, &mib, &out, &[], args);
        let kept = overview_npy(&cache, &mib, &out, &["--keep-bad-pixels"], args);
        let again = overview_npy(&cache, &mib, &out, &[], args);
        assert_eq!((got.len(), kept.len()), (n, n));
        assert_eq!(again, got, "{args:?}: the masked image again (from the cache)");
        for i in 0..n {
            let (wm, wk) = want(i);
            assert_eq!(got[i], wm, "{args:?} masked, position {i}");
            assert_eq!(kept[i], wk, "{args:?} --keep-bad-pixels, position {i}");
        }
    }
    // mask:PATH (sum response: the overview pass) weights the hot pixel and a neighbour
    let mut m = ndarray::Array2::<f32>::zeros((DET, DET));
    m[[HOT.0, HOT.1]] = 2.0;
    m[[HOT.0, HOT.1 + 1]] = 1.0;
    let mp = dir.path().join("m.npy");
    ndarray_npy::write_npy(&mp, &m).unwrap();
    let det = format!("mask:{}", mp.display());
    let masked = overview_npy(&cache, &mib, &out, &[], &["--detector", &det]);
    let kept = overview_npy(&cache, &mib, &out, &["--keep-bad-pixels"], &["--detector", &det]);
    assert_eq!((masked.len(), kept.len()), (n, n));
    for i in 0..n {
        let (r, f) = (repaired(i), fl(i));
        let w = |v: &[f32]| 2.0 * v[hot_i] + v[hot_i + 1];
        assert_eq!(masked[i], w(&r), "mask:PATH masked, position {i}");
        assert_eq!(kept[i], w(&f), "mask:PATH kept, position {i}");
    }
}

// ---- the DPC rotation prompt in the TUI ----

#[test]
fn dpc_rotation_is_typed_in_a_prompt_with_errors_for_non_numbers() {
    use emdtui::tui::app::Popup;
    use emdtui::tui::harness::Harness;
    use emdtui::tui::images::Graphics;
    use ratatui::crossterm::event::KeyCode;
    let dir = tempfile::tempdir().unwrap();
    let spec =
        emdtui::format::synth::SynthSpec { rows: 16, cols: 24, det: 256, depth: 12, hdr: true, ..Default::default() };
    let f = common::synth(dir.path(), "scan.mib", &spec);
    let wait = std::time::Duration::from_secs(60);
    for (w, hh) in [(100u16, 30u16), (160, 48)] {
        let mut h = Harness::open_with_cache(&f, w, hh, Graphics::Halfblocks, &dir.path().join("cache")).unwrap();
        h.settle(wait);
        h.key(KeyCode::Char('R'));
        assert_eq!(h.state.popup, Popup::None, "no prompt before a DPC result");
        assert!(h.state.status.contains("no DPC result"), "{}", h.state.status);
        h.key(KeyCode::Char('i'));
        h.settle(wait);
        let found = h.state.dpc.outcome.as_ref().expect("DPC computed").result.clone();
        h.key(KeyCode::Char('R'));
        h.keys("-12.55");
        h.key(KeyCode::Backspace);
        assert_eq!(h.state.popup, Popup::Rotation("-12.5".into()));
        h.draw();
        let t = h.text();
        assert!(t.contains("DPC rotation") && t.contains("degrees: -12.5_"), "{t}");
        insta::assert_snapshot!(format!("badpix2_rotation_prompt_{w}x{hh}"), t);
        // letters and other keys are not typed (and do not act behind the prompt)
        h.key(KeyCode::Char('x'));
        h.key(KeyCode::Char('i'));
        assert_eq!(h.state.popup, Popup::Rotation("-12.5".into()));
        h.key(KeyCode::Enter);
        assert_eq!(h.state.popup, Popup::None);
        let o = h.state.dpc.outcome.as_ref().unwrap();
        assert!((o.result.rotation_deg - 347.5).abs() < 1e-9, "{}", o.result.rotation_deg);
        assert_eq!(o.result.flip, found.flip, "typing the rotation keeps the flip");
        assert!(h.state.status.contains("347.5 deg (typed)"), "{}", h.state.status);
        // not a number: a clear error, the prompt stays open, nothing changes
        for bad in ["1.2.3", "-", "4-5", ""] {
            h.key(KeyCode::Char('R'));
            h.keys(bad);
            h.key(KeyCode::Enter);
            assert_eq!(h.state.popup, Popup::Rotation(bad.into()), "{bad:?}: the prompt stays open");
            let want = if bad.is_empty() {
                "type a number of degrees".to_string()
            } else {
                format!("{bad:?} is not a number")
            };
            assert!(h.state.status.contains(&want), "{bad:?}: {}", h.state.status);
            h.key(KeyCode::Esc);
            assert_eq!(h.state.popup, Popup::None);
            assert!((h.state.dpc.outcome.as_ref().unwrap().result.rotation_deg - 347.5).abs() < 1e-9);
        }
        // typed 400 -> 40; 0 returns to the found orientation
        h.key(KeyCode::Char('R'));
        h.keys("400");
        h.key(KeyCode::Enter);
        assert!((h.state.dpc.outcome.as_ref().unwrap().result.rotation_deg - 40.0).abs() < 1e-9);
        h.key(KeyCode::Char('0'));
        assert_eq!(h.state.dpc.outcome.as_ref().unwrap().result.rotation_deg, found.rotation_deg);
    }
}

#[test]
fn rotation_prompt_parses_numbers_only() {
    use emdtui::tui::popups::rotation::parse_rotation;
    assert_eq!(parse_rotation("-12.5"), Ok(347.5));
    assert_eq!(parse_rotation("720.25"), Ok(0.25));
    assert!(parse_rotation("1.2.3").unwrap_err().contains("\"1.2.3\" is not a number of degrees"));
    assert!(parse_rotation("").unwrap_err().contains("type a number"));
    assert!(parse_rotation("1e999").is_err(), "infinite");
}

#[test]
fn binned_conversion_masks_the_binned_hot_pixel_and_maps_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let mib = hot_mib(dir.path());
    // the user's mask marks detector pixel (20, 7): bin (10, 3) of the 16x16 output
    let mut m = ndarray::Array2::<u8>::zeros((DET, DET));
    m[[20, 7]] = 1;
    let mp = dir.path().join("user.npy");
    ndarray_npy::write_npy(&mp, &m).unwrap();
    let emd = dir.path().join("b.emd");
    run_ok(&[
        "--bad-pixels",
        mp.to_str().unwrap(),
        "convert",
        mib.to_str().unwrap(),
        "-o",
        emd.to_str().unwrap(),
        "--bin-detector",
        "2",
    ]);
    let (ov, bad) = EmdFile::open(&emd).unwrap().read_overviews_masked().unwrap().expect("overviews cached");
    assert_eq!((ov.det_rows, ov.det_cols), (16, 16));
    assert_eq!(bad, vec![5 * 16 + 6, 10 * 16 + 3], "the user's pixel and the bin holding the hot pixel");
    // no binned pixel keeps the spike in the stored maximum pattern
    let top = ov.max_dp.iter().copied().fold(0.0, f32::max);
    assert!(top < 4.0 * 54.0 + 1.0, "max pattern peaks at {top}");
}
