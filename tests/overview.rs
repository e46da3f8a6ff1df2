//! Overview engine: real-file sums against ground truth, every detector on synthetic data
//! against a direct per-pixel reference, progressive partials, cancellation, cache, CLI errors.

mod common;

use common::{emdtui, synth_file, testdata};
use emdtui::compute::overview::{self, ComputeOptions, Geometry, Overviews};
use emdtui::dataset::{Dataset, MibDataset, OpenOptions};
use emdtui::format::synth::{self, SynthSpec};
use emdtui::jobs::Progress;
use std::sync::{Arc, Mutex};

fn opts(budget: u64, mask: Option<Arc<Vec<f32>>>, coarse: bool) -> ComputeOptions {
    ComputeOptions { memory_budget: budget, mask, coarse_first: coarse, ..Default::default() }
}

fn no_partial(_: &Overviews) {}

/// Direct per-pixel reference for one frame: (sum, bf, adf, com_x, com_y, mask).
fn reference(f: &[u32], rows: usize, cols: usize, g: &Geometry, mask: Option<&[f32]>) -> [f64; 6] {
    let (mut s, mut bf, mut adf, mut mx, mut my, mut mk) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for y in 0..rows {
        for x in 0..cols {
            let p = f[y * cols + x] as f64;
            s += p;
            mx += p * x as f64;
            my += p * y as f64;
            let r = ((y as f32 - g.center.0).powi(2) + (x as f32 - g.center.1).powi(2)).sqrt();
            if r <= g.bf_radius {
                bf += p;
            }
            if r >= g.adf_inner && r <= g.adf_outer {
                adf += p;
            }
            if let Some(m) = mask {
                mk += p * m[y * cols + x] as f64;
            }
        }
    }
    let (cx, cy) = if s > 0.0 { (mx / s - g.com_origin.1 as f64, my / s - g.com_origin.0 as f64) } else { (0.0, 0.0) };
    [s, bf, adf, cx, cy, mk]
}

/// Equal including NaN positions.
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn close(a: f32, b: f64, rel: f64, abs: f64) -> bool {
    (a as f64 - b).abs() <= abs + rel * b.abs()
}

fn check_against_reference(
    ds: &dyn Dataset,
    o: &Overviews,
    g: &Geometry,
    mask: Option<&[f32]>,
    spec: Option<&SynthSpec>,
) {
    let (rows, cols) = ds.det();
    let present = ds.positions_present();
    let n = ds.scan().positions();
    let mut dp_sum = vec![0f64; rows * cols];
    let mut dp_max = vec![0u32; rows * cols];
    for p in 0..n {
        if p >= present {
            assert!(o.sum[p].is_nan() && o.bf[p].is_nan() && o.com_x[p].is_nan(), "position {p} has no frame: NaN");
            continue;
        }
        let f = ds.frame_u32(p).unwrap();
        if let Some(spec) = spec
            && p.is_multiple_of(7)
        {
            assert_eq!(f, synth::expected_frame(spec, p), "decoded synthetic frame {p}");
        }
        for (i, &v) in f.iter().enumerate() {
            dp_sum[i] += v as f64;
            dp_max[i] = dp_max[i].max(v);
        }
        let r = reference(&f, rows, cols, g, mask);
        assert_eq!(o.sum[p] as f64, r[0] as f32 as f64, "sum at {p}");
        assert_eq!(o.bf[p] as f64, r[1] as f32 as f64, "bf at {p}");
        assert_eq!(o.adf[p] as f64, r[2] as f32 as f64, "adf at {p}");
        assert!(close(o.com_x[p], r[3], 1e-5, 1e-3), "com_x at {p}: {} vs {}", o.com_x[p], r[3]);
        assert!(close(o.com_y[p], r[4], 1e-5, 1e-3), "com_y at {p}: {} vs {}", o.com_y[p], r[4]);
        if mask.is_some() {
            let m = o.mask.as_ref().unwrap()[p];
            assert!(close(m, r[5], 1e-5, 1e-3), "mask at {p}: {m} vs {}", r[5]);
        }
        assert!(r[1] > 0.0 || r[0] == 0.0, "reference BF should see counts");
    }
    for i in 0..rows * cols {
        assert!(close(o.mean_dp[i], dp_sum[i] / present as f64, 1e-5, 1e-4), "mean_dp {i}");
        assert_eq!(o.max_dp[i], dp_max[i] as f32, "max_dp {i}");
    }
    assert_eq!(o.positions_done, present);
    assert_eq!(o.complete, present == n);
}

fn test_mask(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| ((i * 37) % 11) as f32 / 10.0 - 0.2).collect()
}

#[test]
fn every_detector_matches_reference_on_synthetic_data() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        SynthSpec { rows: 7, cols: 9, det: 256, depth: 12, ..Default::default() },
        SynthSpec { rows: 5, cols: 8, det: 256, depth: 6, frames: Some(29), ..Default::default() },
        SynthSpec { rows: 6, cols: 5, det: 256, depth: 24, ..Default::default() },
        SynthSpec { rows: 3, cols: 4, det: 256, depth: 1, raw: true, ..Default::default() },
        SynthSpec { rows: 4, cols: 6, det: 512, depth: 12, frames: Some(19), ..Default::default() },
    ];
    for (i, spec) in cases.iter().enumerate() {
        let ds = synth_file(dir.path(), &format!("c{i}.mib"), spec);
        let (rows, cols) = ds.det();
        assert_eq!((ds.scan().rows, ds.scan().cols), (spec.rows, spec.cols), "case {i}: scan from .hdr");
        // off-centre geometry; a second one with the found disk
        let s = rows as f32 / 256.0;
        let g1 = Geometry {
            center: (120.3 * s, 131.7 * s),
            bf_radius: 17.5 * s,
            adf_inner: 25.0 * s,
            adf_outer: 100.2 * s,
            com_origin: (127.5 * s, 126.0 * s),
        };
        let mask = Arc::new(test_mask(rows, cols));
        // small budget: many blocks of a few frames
        let budget = 6 * (rows * cols * 4) as u64;
        let o =
            overview::compute(&ds, &g1, &opts(budget, Some(mask.clone()), true), &Progress::new("t", 0), &no_partial)
                .unwrap();
        check_against_reference(&ds, &o, &g1, Some(&mask), Some(spec));
        let (g2, _) = overview::estimate_geometry(&ds, 64, &Progress::new("g", 0)).unwrap();
        let o2 = overview::compute(&ds, &g2, &opts(1 << 30, None, false), &Progress::new("t", 0), &no_partial).unwrap();
        assert!(o2.mask.is_none());
        check_against_reference(&ds, &o2, &g2, None, None);
    }
}

#[test]
fn accumulator_per_block_matches_compute() {
    // the EMD conversion feeds blocks to Accumulator itself
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 5, cols: 6, depth: 12, ..Default::default() };
    let ds = synth_file(dir.path(), "a.mib", &spec);
    let g = overview::default_geometry(256, 256);
    let full = overview::compute(&ds, &g, &opts(1 << 30, None, false), &Progress::new("t", 0), &no_partial).unwrap();
    let mut out = Overviews::empty(&ds, &g, false);
    let mut a = overview::Accumulator::new(&g, 256, 256, None);
    let mut b = overview::Accumulator::new(&g, 256, 256, None);
    let mut buf = emdtui::dataset::FrameBuf::new(ds.info().pixel_type);
    let mut sc = emdtui::dataset::ReadScratch::default();
    for (start, n) in [(0, 7), (7, 11), (18, 12)] {
        ds.read_positions(start, n, &mut buf, &mut sc).unwrap();
        if start == 7 { b.add(start, &buf, &mut out) } else { a.add(start, &buf, &mut out) }
    }
    a.merge_patterns(&b);
    assert_eq!(a.frames, 30);
    assert_eq!(out.sum, full.sum);
    assert_eq!(out.bf, full.bf);
    assert_eq!(out.adf, full.adf);
    assert_eq!(out.com_x, full.com_x);
    let mean: Vec<f32> = a.dp_sum.iter().map(|v| (v / 30.0) as f32).collect();
    assert_eq!(mean, full.mean_dp);
    assert_eq!(a.dp_max.iter().map(|&v| v as f32).collect::<Vec<_>>(), full.max_dp);
}

#[test]
fn sum_image_matches_ground_truth_for_every_real_file() {
    let dir = testdata();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("ground_truth.json")).unwrap()).unwrap();
    let files = v["files"].as_object().unwrap();
    assert!(files.len() >= 32);
    for (name, gt) in files {
        let ds = MibDataset::open(&dir.join(name), &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sums: Vec<u64> = gt["per_frame_sums"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let (r, c) = ds.det();
        let g = overview::default_geometry(r, c);
        let o = overview::compute(&ds, &g, &opts(256 << 20, None, true), &Progress::new("t", 0), &no_partial)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let present = ds.positions_present();
        assert!(present > 0, "{name}");
        for p in 0..ds.scan().positions() {
            if p < present {
                let f = ds.scan().frame_of(p);
                assert_eq!(o.sum[p] as f64, sums[f] as f32 as f64, "{name}: sum at position {p} (frame {f})");
            } else {
                assert!(o.sum[p].is_nan(), "{name}: position {p} without a frame");
            }
        }
        let total: f64 = o.mean_dp.iter().map(|&v| v as f64).sum::<f64>() * present as f64;
        let want: u64 = (0..present).map(|p| sums[ds.scan().frame_of(p)]).sum();
        assert!(
            (total - want as f64).abs() <= 1e-4 * want as f64 + 1.0,
            "{name}: mean pattern total {total} vs {want}"
        );
    }
}

#[test]
fn coarse_partial_comes_first_then_exact() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 40, cols: 30, depth: 6, frames: Some(1100), ..Default::default() };
    let ds = synth_file(dir.path(), "p.mib", &spec);
    let g = overview::default_geometry(256, 256);
    let snaps: Mutex<Vec<Overviews>> = Mutex::new(Vec::new());
    let cb = |o: &Overviews| snaps.lock().unwrap().push(o.clone());
    let o = overview::compute(&ds, &g, &opts(1 << 30, None, true), &Progress::new("t", 0), &cb).unwrap();
    let snaps = snaps.into_inner().unwrap();
    assert!(snaps.len() >= 2, "a coarse partial and the final result");
    let first = &snaps[0];
    assert_eq!(first.positions_done, 0);
    assert!(!first.complete);
    let k = overview::coarse_stride(&ds);
    assert!(k >= 2);
    let coarse = overview::coarse_positions(40, 30, 1100, k);
    assert!(coarse.len() * 100 <= 1100 * 5 + 100, "coarse pass reads few frames: {} of 1100", coarse.len());
    for &p in &coarse {
        assert_eq!(first.sum[p], o.sum[p], "coarse sample {p} is exact");
        assert_eq!(first.bf[p], o.bf[p]);
    }
    // block fill: a neighbour in the same block shows the sample's value; no data → NaN
    let p0 = coarse[0];
    let (r0, c0) = (p0 / 30, p0 % 30);
    let q = (r0 - k / 2) * 30 + (c0 - k / 2);
    assert_eq!(first.sum[q], first.sum[p0]);
    assert!(first.sum[1100..].iter().all(|v| v.is_nan()));
    assert!(o.sum[..1100].iter().all(|v| v.is_finite()));
    assert!(o.sum[1100..].iter().all(|v| v.is_nan()));
    assert!(!o.complete);
    let last = snaps.last().unwrap();
    assert!(same(&last.sum, &o.sum));
    assert_eq!(last.positions_done, 1100);
    // coarse mean pattern is a usable estimate for the disk
    let (c1, _) = overview::find_bf_disk(&first.mean_dp, 256, 256).unwrap();
    let (c2, _) = overview::find_bf_disk(&o.mean_dp, 256, 256).unwrap();
    assert!((c1.0 - c2.0).abs() < 2.0 && (c1.1 - c2.1).abs() < 2.0);
}

#[test]
fn cancellation_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 16, cols: 16, depth: 6, ..Default::default() };
    let ds = synth_file(dir.path(), "c.mib", &spec);
    let g = overview::default_geometry(256, 256);
    let p = Progress::new("t", 0);
    p.cancel();
    let r = overview::compute(&ds, &g, &opts(1 << 30, None, true), &p, &no_partial);
    assert!(matches!(r, Err(emdtui::Error::Cancelled)));
    // cancel from the first (coarse) partial: the exact pass stops early
    let p = Progress::new("t", 0);
    let cb = |_: &Overviews| p.cancel();
    let r = overview::compute(&ds, &g, &opts(300_000, None, true), &p, &cb);
    assert!(matches!(r, Err(emdtui::Error::Cancelled)));
    assert!(p.done() < 256 + 64, "stopped early: {} frames", p.done());
}

#[test]
fn bf_disk_is_found_on_synthetic_data() {
    let dir = tempfile::tempdir().unwrap();
    for det in [256usize, 512] {
        let spec = SynthSpec { rows: 8, cols: 8, det, depth: 12, ..Default::default() };
        let ds = synth_file(dir.path(), &format!("d{det}.mib"), &spec);
        let (g, mean) = overview::estimate_geometry(&ds, 64, &Progress::new("g", 0)).unwrap();
        let c = (det as f32 - 1.0) / 2.0;
        let r = det as f32 * 0.06;
        assert!((g.center.0 - c).abs() < 1.5 && (g.center.1 - c).abs() < 1.5, "{det}: centre {:?}", g.center);
        assert!((g.bf_radius - r).abs() < 0.15 * r, "{det}: radius {} vs {r}", g.bf_radius);
        assert!(g.adf_inner > g.bf_radius * 1.05 && g.adf_inner < g.bf_radius * 1.6);
        assert!(g.adf_outer > g.adf_inner && g.adf_outer < det as f32 / 2.0);
        // a hot pixel does not move it
        let mut m = mean.clone();
        m[5 * det + 7] = 1e7;
        let (c2, r2) = overview::find_bf_disk(&m, det, det).unwrap();
        assert!((c2.0 - g.center.0).abs() < 0.5 && (r2 - g.bf_radius).abs() < 0.5);
    }
    assert!(overview::find_bf_disk(&vec![0.0; 64], 8, 8).is_none());
}

#[test]
fn roi_mean_is_the_mean_of_the_region() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 6, cols: 7, depth: 12, frames: Some(38), ..Default::default() };
    let ds = synth_file(dir.path(), "r.mib", &spec);
    let m = overview::roi_mean(&ds, 2..6, 3..6, 1 << 26, &Progress::new("t", 0)).unwrap();
    let mut want = vec![0f64; 256 * 256];
    let mut n = 0;
    for r in 2..6 {
        for c in 3..6 {
            let p = r * 7 + c;
            if p < 38 {
                n += 1;
                for (w, v) in want.iter_mut().zip(ds.frame_u32(p).unwrap()) {
                    *w += v as f64;
                }
            }
        }
    }
    assert_eq!(n, 9);
    for (a, b) in m.iter().zip(&want) {
        assert!(close(*a, b / n as f64, 1e-6, 1e-6));
    }
    assert!(overview::roi_mean(&ds, 2..2, 0..3, 1 << 26, &Progress::new("t", 0)).is_err());
    assert!(overview::roi_mean(&ds, 0..7, 0..3, 1 << 26, &Progress::new("t", 0)).is_err());
}

// ---- cache ----

#[test]
fn cache_hits_and_is_invalidated_by_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let spec = SynthSpec { rows: 6, cols: 6, depth: 12, ..Default::default() };
    let path = common::synth(dir.path(), "k.mib", &spec);
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let ds = MibDataset::open(&path, &OpenOptions::default()).unwrap();
    let g = overview::default_geometry(256, 256);
    assert!(emdtui::store::ovcache::load(&cache, &ds, &g, None).is_none());
    let o = overview::compute(&ds, &g, &opts(1 << 30, None, false), &Progress::new("t", 0), &no_partial).unwrap();
    emdtui::store::ovcache::store(&cache, &ds, &o, None).unwrap();
    let hit = emdtui::store::ovcache::load(&cache, &ds, &g, None).expect("cache hit");
    assert_eq!(hit.sum, o.sum);
    assert_eq!(hit.com_y, o.com_y);
    assert_eq!(hit.mean_dp, o.mean_dp);
    assert_eq!(hit.max_dp, o.max_dp);
    assert!(hit.complete);
    // other geometry or a mask: miss
    let mut g2 = g.clone();
    g2.bf_radius += 1.0;
    assert!(emdtui::store::ovcache::load(&cache, &ds, &g2, None).is_none());
    assert!(emdtui::store::ovcache::load(&cache, &ds, &g, Some(&[1.0; 65536])).is_none());
    // nothing written next to the .mib (only k.mib, k.hdr, cache/)
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before + 1);
    let side: Vec<_> = std::fs::read_dir(cache.join("overviews")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(side.iter().any(|p| p.extension().unwrap() == "json"));
    // the file changes (same size, other content): stale entry is not used
    std::thread::sleep(std::time::Duration::from_millis(20));
    synth::write(&path, &SynthSpec { seed: 7, ..spec.clone() }, &|_, _| {}).unwrap();
    let ds2 = MibDataset::open(&path, &OpenOptions::default()).unwrap();
    assert!(emdtui::store::ovcache::load(&cache, &ds2, &g, None).is_none());
}

// ---- CLI ----

#[test]
fn cli_writes_float32_images_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 5, cols: 7, depth: 12, ..Default::default() };
    let ds = synth_file(dir.path(), "s.mib", &spec);
    let mib = dir.path().join("s.mib");
    let out = dir.path().join("bf.npy");
    emdtui()
        .args(["overview", mib.to_str().unwrap(), "--detector", "bf", "--center", "127.5,127.5", "--inner", "20", "-o"])
        .arg(&out)
        .arg("--no-cache")
        .assert()
        .success();
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(a.dim(), (5, 7));
    let g = overview::geometry_from_disk((127.5, 127.5), 20.0, 256, 256);
    let o = overview::compute(&ds, &g, &opts(1 << 30, None, false), &Progress::new("t", 0), &no_partial).unwrap();
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), o.bf);
    // mask from .npy (bool) and from PNG agree with the library
    let mask: Vec<bool> = (0..65536).map(|i| (i / 256 + i % 256) % 3 == 0).collect();
    let mnpy = dir.path().join("m.npy");
    ndarray_npy::write_npy(&mnpy, &ndarray::Array2::from_shape_vec((256, 256), mask.clone()).unwrap()).unwrap();
    let mpng = dir.path().join("m.png");
    image::GrayImage::from_raw(256, 256, mask.iter().map(|&b| if b { 255 } else { 0 }).collect())
        .unwrap()
        .save(&mpng)
        .unwrap();
    let mf: Vec<f32> = mask.iter().map(|&b| b as u8 as f32).collect();
    let om = overview::compute(&ds, &g, &opts(1 << 30, Some(Arc::new(mf)), false), &Progress::new("t", 0), &no_partial)
        .unwrap();
    for m in [&mnpy, &mpng] {
        let out = dir.path().join("mask.tiff");
        emdtui()
            .args(["overview", mib.to_str().unwrap(), "--detector", &format!("mask:{}", m.display()), "-o"])
            .arg(&out)
            .assert()
            .success();
        let mut dec = tiff::decoder::Decoder::new(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (7, 5));
        match dec.read_image().unwrap() {
            tiff::decoder::DecodingResult::F32(v) => assert_eq!(&v, om.mask.as_ref().unwrap()),
            _ => panic!("tiff is not float32"),
        }
    }
    // com writes two files; png works
    let out = dir.path().join("c.npy");
    emdtui().args(["overview", mib.to_str().unwrap(), "--detector", "com", "-o"]).arg(&out).assert().success();
    assert!(dir.path().join("c_comx.npy").is_file() && dir.path().join("c_comy.npy").is_file());
    let out = dir.path().join("a.png");
    emdtui().args(["overview", mib.to_str().unwrap(), "--detector", "dpc-angle", "-o"]).arg(&out).assert().success();
    assert!(out.is_file());
}

#[test]
fn cli_bad_input_is_a_clear_error_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 4, cols: 4, depth: 6, ..Default::default() };
    synth_file(dir.path(), "s.mib", &spec);
    let mib = dir.path().join("s.mib");
    let small = dir.path().join("small.png");
    image::GrayImage::new(10, 10).save(&small).unwrap();
    let bad_npy = dir.path().join("bad.npy");
    ndarray_npy::write_npy(&bad_npy, &ndarray::Array2::<f32>::zeros((256, 255))).unwrap();
    let out = dir.path().join("o.npy");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--center".into(), "300,10".into()], "outside"),
        (vec!["--center=-1,10".into()], "outside"),
        (
            vec!["--detector".into(), "adf".into(), "--inner".into(), "50".into(), "--outer".into(), "40".into()],
            "smaller",
        ),
        (vec!["--detector".into(), "bf".into(), "--inner".into(), "1000".into()], "outside the frame"),
        (vec!["--detector".into(), "bf".into(), "--inner".into(), "0".into()], "positive"),
        (vec!["--detector".into(), format!("mask:{}", small.display())], "does not match"),
        (vec!["--detector".into(), format!("mask:{}", bad_npy.display())], "does not match"),
        (vec!["--detector".into(), "mask:/nonexistent/m.png".into()], "mask"),
        (vec!["--detector".into(), "mean".into(), "--roi".into(), "2:2,0:3".into()], "empty"),
        (vec!["--detector".into(), "mean".into(), "--roi".into(), "0:9,0:3".into()], "outside"),
        (vec!["--detector".into(), "nonsense".into()], "--detector"),
    ];
    for (args, msg) in cases {
        emdtui()
            .args(["overview", mib.to_str().unwrap(), "-o"])
            .arg(&out)
            .args(&args)
            .assert()
            .failure()
            .stderr(predicates::str::contains(msg));
        assert!(!out.exists(), "{args:?}: no output file");
    }
    let missing = dir.path().join("nodir/o.npy");
    emdtui()
        .args(["overview", mib.to_str().unwrap(), "-o"])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicates::str::contains("does not exist"));
    assert!(!dir.path().join("nodir").exists());
    // no stray temp files
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().all(|n| !n.contains(".part")), "{names:?}");
}

#[test]
fn blocks_in_flight_stay_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synth_file(dir.path(), "b.mib", &SynthSpec { rows: 4, cols: 4, depth: 12, ..Default::default() });
    let frame = 256 * 256 * 2u64; // decoded u16
    for budget in [4 << 20, 16 << 20, 256 << 20, 8 << 30] {
        for threads in [1usize, 2, 8] {
            let b = overview::block_len(&ds, budget, threads) as u64;
            assert!(b >= 1);
            // raw + decoded bytes of all workers' blocks within half the budget
            assert!(threads as u64 * b * 2 * frame <= budget / 2, "budget {budget} threads {threads}: block {b}");
        }
    }
}
