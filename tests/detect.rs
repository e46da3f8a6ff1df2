//! Custom detectors (point, rectangle, BF/ADF maximum, masks from a pattern) and EWPC: exact
//! values from the decoded frames of synthetic files, the cache, the CLI and its errors.

mod common;

use common::{emdtui, synth, synth_file};
use emdtui::compute::detectors::{CustomDetector, Region, Response, custom_image, mask_from_pattern};
use emdtui::compute::overview::{Geometry, default_geometry};
use emdtui::dataset::Dataset;
use emdtui::format::synth::{SynthSpec, expected_frame};
use emdtui::jobs::Progress;
use emdtui::ops::overview::Origin;
use ndarray::Array2;

/// The reference response of `det` for every position of `spec` (NaN past the frames written).
fn reference(spec: &SynthSpec, det: &CustomDetector, rows: usize, cols: usize) -> Vec<f32> {
    let px = det.pixels(rows, cols).unwrap();
    let n = spec.rows * spec.cols;
    let present = spec.frames.unwrap_or(n).min(n);
    (0..n)
        .map(|p| {
            if p >= present {
                return f32::NAN;
            }
            let f = expected_frame(spec, p);
            match det.response {
                Response::Sum => px.iter().map(|&(i, w)| f[i as usize] as f64 * w as f64).sum::<f64>() as f32,
                Response::Max => px.iter().map(|&(i, _)| f[i as usize]).max().unwrap() as f32,
            }
        })
        .collect()
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

fn detectors(g: &Geometry, pattern_mask: Vec<f32>) -> Vec<CustomDetector> {
    let mut w = vec![0f32; 256 * 256];
    w[128 * 256 + 127] = 0.5;
    w[3] = 2.0;
    let regions = [
        Region::Point { row: 128, col: 128, radius: 0.0 },
        Region::Point { row: 120, col: 131, radius: 1.0 },
        Region::Rect { r0: 100, r1: 140, c0: 110, c1: 150 },
        Region::Rect { r0: 0, r1: 256, c0: 250, c1: 256 },
        Region::Disk(g.clone()),
        Region::Annulus(g.clone()),
        Region::Weights(w),
        Region::Weights(pattern_mask),
    ];
    regions
        .into_iter()
        .flat_map(|r| [Response::Sum, Response::Max].map(|response| CustomDetector { region: r.clone(), response }))
        .collect()
}

#[test]
fn custom_detectors_equal_exact_values_from_the_decoded_frames() {
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in [
        SynthSpec { rows: 6, cols: 7, depth: 12, ..Default::default() },
        SynthSpec { rows: 5, cols: 8, depth: 6, frames: Some(29), ..Default::default() },
        SynthSpec { rows: 4, cols: 5, depth: 24, ..Default::default() },
        SynthSpec { rows: 3, cols: 4, depth: 1, raw: true, ..Default::default() },
    ]
    .into_iter()
    .enumerate()
    {
        let ds = synth_file(dir.path(), &format!("d{i}.mib"), &spec);
        let (dr, dc) = ds.det();
        let g = Geometry { bf_radius: 20.0, adf_inner: 30.0, adf_outer: 90.0, ..default_geometry(dr, dc) };
        let pat: Vec<f32> = expected_frame(&spec, 2).iter().map(|&v| v as f32).collect();
        let pm = mask_from_pattern(&pat, 0.5).unwrap();
        assert!(pm.contains(&1.0) && pm.contains(&0.0), "the pattern mask selects some pixels");
        for det in detectors(&g, pm) {
            // a small budget: many blocks
            let got = custom_image(&ds, &det, 4 << 20, &Progress::new("t", 0)).unwrap();
            let want = reference(&spec, &det, dr, dc);
            assert!(same(&got, &want), "spec {i} {}: {:?} vs {:?}", det.label(), &got[..4], &want[..4]);
        }
    }
}

#[test]
fn custom_images_are_cached_by_their_definition() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let spec = SynthSpec { rows: 4, cols: 4, ..Default::default() };
    let ds = synth_file(dir.path(), "c.mib", &spec);
    let a = CustomDetector { region: Region::Rect { r0: 120, r1: 136, c0: 120, c1: 136 }, response: Response::Sum };
    let b = CustomDetector { response: Response::Max, ..a.clone() };
    let run = |d: &CustomDetector| {
        emdtui::ops::detectors::custom_image(&ds, d, 64 << 20, Some(&cache), &Progress::new("t", 0)).unwrap()
    };
    let (va, oa) = run(&a);
    assert_eq!(oa, Origin::Computed);
    let (va2, oa2) = run(&a);
    assert_eq!(oa2, Origin::CacheDir);
    assert!(same(&va, &va2));
    let (vb, ob) = run(&b);
    assert_eq!(ob, Origin::Computed, "another response is another entry");
    assert!(same(&vb, &reference(&spec, &b, 256, 256)));
    assert!(!same(&va, &vb));
    // a bad definition is an error before any cache lookup
    let bad = CustomDetector { region: Region::Point { row: 256, col: 0, radius: 0.0 }, response: Response::Sum };
    let e = emdtui::ops::detectors::custom_image(&ds, &bad, 1 << 20, Some(&cache), &Progress::new("t", 0));
    assert!(e.unwrap_err().to_string().contains("outside the 256x256 detector"));
}

fn read_npy(p: &std::path::Path) -> (Vec<f32>, (usize, usize)) {
    let a: Array2<f32> = ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (a.iter().copied().collect(), a.dim())
}

#[test]
fn cli_custom_detectors_write_exact_images() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 5, cols: 6, ..Default::default() };
    let f = synth(dir.path(), "cli.mib", &spec);
    let g = Geometry {
        center: (127.5, 127.5),
        bf_radius: 12.0,
        adf_inner: 20.0,
        adf_outer: 80.0,
        com_origin: (127.5, 127.5),
    };
    let pat: Vec<f32> = expected_frame(&spec, 6 + 2).iter().map(|&v| v as f32).collect();
    let cases: Vec<(Vec<&str>, CustomDetector)> = vec![
        (
            vec!["point:130,125"],
            CustomDetector { region: Region::Point { row: 130, col: 125, radius: 0.0 }, response: Response::Sum },
        ),
        (
            vec!["point:130,125,1", "--response", "max"],
            CustomDetector { region: Region::Point { row: 130, col: 125, radius: 1.0 }, response: Response::Max },
        ),
        (
            vec!["rect:100:150,90:200"],
            CustomDetector { region: Region::Rect { r0: 100, r1: 150, c0: 90, c1: 200 }, response: Response::Sum },
        ),
        (
            vec!["bf", "--response", "max", "--center", "127.5,127.5", "--inner", "12"],
            CustomDetector { region: Region::Disk(g.clone()), response: Response::Max },
        ),
        (
            vec!["pattern:1,2,0.4"],
            CustomDetector { region: Region::Weights(mask_from_pattern(&pat, 0.4).unwrap()), response: Response::Sum },
        ),
    ];
    for (k, (args, det)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("o{k}.npy"));
        emdtui()
            .arg("overview")
            .arg(&f)
            .arg("--detector")
            .args(&args)
            .arg("-o")
            .arg(&out)
            .arg("--no-cache")
            .assert()
            .success();
        let (v, dim) = read_npy(&out);
        assert_eq!(dim, (5, 6));
        assert!(same(&v, &reference(&spec, &det, 256, 256)), "{args:?}");
    }
}

#[test]
fn cli_bad_custom_detectors_are_one_clear_error_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "bad.mib", &SynthSpec { rows: 3, cols: 3, ..Default::default() });
    let out = dir.path().join("o.npy");
    for (args, msg) in [
        (vec!["point:256,3"], "outside the 256x256 detector"),
        (vec!["point:1,2,3"], "0 to 1"),
        (vec!["rect:10:5,0:4"], "empty"),
        (vec!["rect:0:300,0:4"], "empty or outside"),
        (vec!["pattern:3,0"], "outside the 3x3 scan"),
        (vec!["comx", "--response", "max"], "--response max applies to"),
        (vec!["bf", "--response", "mean"], "use sum or max"),
    ] {
        let o = emdtui().arg("overview").arg(&f).arg("--detector").args(&args).arg("-o").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{args:?}: no output on error");
    }
}

#[test]
fn cli_ewpc_of_a_pattern_and_of_the_mean() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 4, cols: 5, ..Default::default() };
    let f = synth(dir.path(), "e.mib", &spec);
    let out = dir.path().join("ewpc.npy");
    emdtui().arg("ewpc").arg(&f).args(["--at", "2,3", "-o"]).arg(&out).assert().success();
    let (v, dim) = read_npy(&out);
    assert_eq!(dim, (256, 256));
    let pat: Vec<f32> = expected_frame(&spec, 2 * 5 + 3).iter().map(|&v| v as f32).collect();
    let want = emdtui::compute::ewpc::ewpc(&pat, 256, 256, &Default::default()).unwrap();
    assert!(v.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)));
    // the mean pattern
    let out2 = dir.path().join("mean.npy");
    emdtui().arg("ewpc").arg(&f).arg("-o").arg(&out2).arg("--no-cache").assert().success();
    let (m, _) = read_npy(&out2);
    let n = spec.rows * spec.cols;
    let mut mean = vec![0f64; 256 * 256];
    for p in 0..n {
        for (a, b) in mean.iter_mut().zip(expected_frame(&spec, p)) {
            *a += b as f64;
        }
    }
    let mean: Vec<f32> = mean.iter().map(|v| (v / n as f64) as f32).collect();
    let want = emdtui::compute::ewpc::ewpc(&mean, 256, 256, &Default::default()).unwrap();
    let worst = m.iter().zip(&want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst < 1e-3, "mean EWPC differs by {worst}");
    // bad input
    let o = emdtui().arg("ewpc").arg(&f).args(["--at", "4,0", "-o"]).arg(dir.path().join("x.npy")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("outside the 4x5 scan"), "{err}");
    assert!(!dir.path().join("x.npy").exists());
}

/// A multi-file acquisition still running (issue 12): the viewer, with no flags in a detached tmux
/// session, opens the first file; the next files of the set appear one by one and, without a
/// key, the frame count grows to the complete scan.
#[test]
fn multi_file_acquisition_is_followed_as_new_files_appear() {
    use common::tmux::{Tmux, exited, have_tmux, pane_cmd};
    use std::time::{Duration, Instant};
    if !have_tmux() {
        return;
    }
    const GIVE_UP: Duration = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let o = common::command()
        .args(["synth", dir.path().join("acq.mib").to_str().unwrap(), "--scan", "16x16", "--hdr"])
        .args(["--images-per-file", "64"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let later = dir.path().join("later");
    std::fs::create_dir(&later).unwrap();
    for k in 2..=4 {
        std::fs::rename(dir.path().join(format!("acq{k}.mib")), later.join(format!("acq{k}.mib"))).unwrap();
    }
    let cache = dir.path().join("cache");
    let first = dir.path().join("acq1.mib");
    let (t, t0) = Tmux::start("multifollow", &pane_cmd(&cache, first.to_str().unwrap()));
    let (s, _) = t.wait("the acquiring line", t0, GIVE_UP, |s| s.contains("acquiring") && s.contains("of 256 frames"));
    assert!(s.contains("64 of 256 frames"), "first state:\n{s}");
    for k in 2..=4 {
        // the detector finishes a file elsewhere and moves it in (a whole file appears at once)
        std::fs::rename(later.join(format!("acq{k}.mib")), dir.path().join(format!("acq{k}.mib"))).unwrap();
        if k < 4 {
            let want = format!("{} of 256 frames", 64 * k);
            t.wait(&want, Instant::now(), GIVE_UP, |s| s.contains(&want));
        }
    }
    let (s, d) = t.wait("the completed acquisition", t0, GIVE_UP, |s| {
        s.contains("acquisition complete: 256 frames") && s.contains("overview complete")
    });
    eprintln!("multi-file acquisition followed to completion after {:.1} s", d.as_secs_f64());
    assert!(!s.contains("error"), "screen:\n{s}");
    t.send(&["q"]);
    let (s, _) = t.wait("exit", Instant::now(), GIVE_UP, |s| exited(s).is_some());
    assert_eq!(exited(&s), Some("EXITED rc=0"), "screen:\n{s}");
}

// ---- the TUI: custom detector views and the EWPC pane (snapshots at two sizes) ----

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];

fn tui(f: &std::path::Path, w: u16, h: u16) -> emdtui::tui::harness::Harness {
    let mut h = emdtui::tui::harness::Harness::open(f, w, h, emdtui::tui::images::Graphics::Halfblocks).unwrap();
    h.settle(std::time::Duration::from_secs(60));
    h.draw();
    h
}

fn key(h: &mut emdtui::tui::harness::Harness, c: char) {
    h.key(ratatui::crossterm::event::KeyCode::Char(c));
    h.settle(std::time::Duration::from_secs(60));
    h.draw();
}

#[test]
fn tui_custom_detector_views() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 16, cols: 24, hdr: true, ..Default::default() };
    let f = synth(dir.path(), "scan.mib", &spec);
    for (w, hh) in SIZES {
        let mut h = tui(&f, w, hh);
        // u: a point detector at the detector centre, its image in the first pane
        key(&mut h, 'u');
        let det = h.state.main.detect.det.clone().expect("a custom detector");
        assert!(matches!(det.region, Region::Point { radius: 0.0, .. }), "{det:?}");
        let img = h.state.main.detect.image.clone().expect("the point image");
        assert!(same(&img, &reference(&spec, &det, 256, 256)));
        let t = h.text();
        assert!(t.contains(" custom point "), "{t}");
        insta::assert_snapshot!(format!("custom_point_{w}x{hh}"), t);
        // u: a rectangle; U: its maximum response
        key(&mut h, 'u');
        key(&mut h, 'U');
        let det = h.state.main.detect.det.clone().unwrap();
        assert!(matches!(det.region, Region::Rect { .. }) && det.response == Response::Max, "{det:?}");
        assert!(same(h.state.main.detect.image.as_ref().unwrap(), &reference(&spec, &det, 256, 256)));
        // in the three-image layout the custom image takes the first pane
        key(&mut h, 'o');
        let t = h.text();
        assert!(t.contains("┌ custom rect max = "), "{t}");
        insta::assert_snapshot!(format!("custom_rect_max_three_{w}x{hh}"), t);
        // e exports the custom image shown
        let png = dir.path().join("scan_custom.png");
        let _ = std::fs::remove_file(&png);
        h.key(ratatui::crossterm::event::KeyCode::Char('e'));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e} ({})", png.display(), h.state.status));
        assert_eq!((img.width(), img.height()), (24, 16));
        // u: the mask from the frame on screen (pixels >= half its maximum)
        key(&mut h, 'u');
        let det = h.state.main.detect.det.clone().unwrap();
        let Region::Weights(m) = &det.region else { panic!("{det:?}") };
        let p = h.state.pos();
        let frame: Vec<f32> = expected_frame(&spec, p).iter().map(|&v| v as f32).collect();
        assert_eq!(m, &mask_from_pattern(&frame, 0.5).unwrap());
        assert!(same(h.state.main.detect.image.as_ref().unwrap(), &reference(&spec, &det, 256, 256)));
        // moving the detector centre moves the BF disk of the custom detector
        key(&mut h, 'u');
        let before = h.state.main.detect.det.clone().unwrap();
        h.key(ratatui::crossterm::event::KeyCode::Char('d'));
        h.settle(std::time::Duration::from_secs(60));
        let after = h.state.main.detect.det.clone().unwrap();
        match (&before.region, &after.region) {
            (Region::Disk(a), Region::Disk(b)) => assert_eq!(b.center.1, a.center.1 + 1.0),
            r => panic!("{r:?}"),
        }
        assert!(same(h.state.main.detect.image.as_ref().unwrap(), &reference(&spec, &after, 256, 256)));
        // ADF, then off: the pane shows the overview again
        key(&mut h, 'u');
        key(&mut h, 'u');
        assert!(h.state.main.detect.det.is_none());
        assert!(!h.text().contains("┌ custom"), "{}", h.text());
    }
}

#[test]
fn tui_ewpc_pane() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 16, cols: 24, hdr: true, ..Default::default() };
    let f = synth(dir.path(), "scan.mib", &spec);
    for (w, hh) in SIZES {
        let mut h = tui(&f, w, hh);
        key(&mut h, 'E');
        assert!(h.state.main.detect.ewpc);
        let t = h.text();
        let (r, c) = h.state.main.cursor;
        assert!(t.contains(&format!(" EWPC of frame ({r}, {c}) ")), "{t}");
        // the pane holds the EWPC of the frame: its readout maximum is the EWPC maximum
        let frame: Vec<f32> = expected_frame(&spec, h.state.pos()).iter().map(|&v| v as f32).collect();
        let e = emdtui::compute::ewpc::ewpc(&frame, 256, 256, &Default::default()).unwrap();
        let shown = h.state.prepared.right.as_ref().expect("the EWPC pane").2.readout.stats.expect("stats");
        let emax = e.iter().copied().fold(0f32, f32::max);
        assert!((shown.max - emax).abs() <= 1e-3 * emax, "{} vs {emax}", shown.max);
        insta::assert_snapshot!(format!("ewpc_{w}x{hh}"), t);
        key(&mut h, 'E');
        assert!(!h.text().contains("EWPC"));
    }
}
