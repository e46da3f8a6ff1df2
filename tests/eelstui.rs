//! The EELS screen (issue 15) and 3-D spectrum-image EMD input: synthetic Merlin Nx1 files
//! (zero-loss peak, plasmon, an edge whose strength varies over the scan, counting noise) opened
//! in the TUI on a `TestBackend`. Maps and spectra on screen are checked against sums computed
//! here from the decoded frames (`Dataset::frame_u32`); snapshots at two sizes; the real binary
//! in tmux. A 3-D spectrum-image EMD (emdtui's own and mib-viewer's layout) opens through
//! `dataset::open` in EELS mode.

mod common;

use emdtui::compute::spectra::SpectraOptions;
use emdtui::dataset::{self, Kind, Mode, OpenOptions};
use emdtui::format::synth::{NX1_EDGE, NX1_ZLP, SynthSpec};
use emdtui::jobs::Progress;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIZES: [(u16, u16); 2] = [(100, 30), (160, 48)];
const WAIT: Duration = Duration::from_secs(120);

fn nx1(dir: &Path, rows: usize, cols: usize) -> PathBuf {
    let spec = SynthSpec { rows, cols, depth: 12, nx1: true, hdr: true, seed: 5, ..Default::default() };
    common::synth(dir, "eels.mib", &spec)
}

/// Spectra summed here from the decoded frames (256 rows summed, channels = the 1024 columns).
fn reference(p: &Path) -> Vec<Vec<u64>> {
    let ds = dataset::open(p, &OpenOptions::default()).unwrap();
    let (dr, dc) = ds.det();
    assert_eq!((dr, dc), (256, 1024));
    (0..ds.scan().positions())
        .map(|pos| {
            let f = ds.frame_u32(pos).unwrap();
            let mut s = vec![0u64; dc];
            for row in f.chunks_exact(dc) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as u64;
                }
            }
            s
        })
        .collect()
}

fn open(f: &Path, w: u16, h: u16) -> Harness {
    let mut h = Harness::open(f, w, h, Graphics::Halfblocks).unwrap();
    h.settle(WAIT);
    h.draw();
    h
}

fn window_sum(s: &[u64], a: usize, b: usize) -> f32 {
    s[a..b].iter().sum::<u64>() as f32
}

#[test]
fn eels_screen_map_spectrum_window_keys_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 6, 10);
    let refs = reference(&f);
    for (w, hh) in SIZES {
        let mut h = open(&f, w, hh);
        let e = h.state.eels.as_ref().expect("spectrum data opens the EELS screen");
        let si = e.si.as_ref().expect("spectrum image computed");
        assert_eq!((si.rows, si.cols, si.channels), (6, 10, 1024));
        assert_eq!(e.window, (10, 200), "mib-viewer's default window");
        for (p, r) in refs.iter().enumerate() {
            assert_eq!(e.map[p], window_sum(r, 10, 200), "map at {p}");
        }
        // the spectrum at the cursor (centre of the scan) is that frame's short-axis sum
        let pos = h.state.pos();
        assert_eq!(h.state.main.cursor, (3, 5));
        let want: Vec<f32> = refs[pos].iter().map(|&v| v as f32).collect();
        assert_eq!(e.spectrum, want);
        let t = h.text();
        for s in ["EELS (spectrum) mode", "Merlin Nx1", "EELS map ch 10-200", "spectrum at (3, 5)", "window"] {
            assert!(t.contains(s), "{s:?} on screen:\n{t}");
        }
        assert!(t.chars().any(|c| ('\u{2801}'..='\u{28FF}').contains(&c)), "braille line plot");
        assert!(!t.contains("BF overview") && !t.contains("radii"), "no virtual detectors:\n{t}");
        insta::assert_snapshot!(format!("eels_{w}x{hh}"), t);

        // move the window onto the edge: `>` by its width (190) x 3, then `.` once (8 channels)
        h.keys(">>>.");
        h.draw(); // the map follows the window before a draw (one map per burst of keys)
        let e = h.state.eels.as_ref().unwrap();
        assert_eq!(e.window, (588, 778));
        assert!(e.window.0 < NX1_EDGE && NX1_EDGE < e.window.1 && NX1_ZLP < e.window.0);
        for (p, r) in refs.iter().enumerate() {
            assert_eq!(e.map[p], window_sum(r, 588, 778), "map at {p} after moving the window");
        }
        // narrow by two steps, widen by one
        h.keys("{{}");
        assert_eq!(h.state.eels.as_ref().unwrap().window, (588, 770));
        assert_eq!(h.state.eels.as_ref().unwrap().map_window, Some((588, 778)), "no map per key");
        h.draw();
        let m = &h.state.eels.as_ref().unwrap().map;
        assert_eq!(m[17], window_sum(&refs[17], 588, 770));
        // log toggle
        h.key(KeyCode::Char('y'));
        assert!(h.state.eels.as_ref().unwrap().log);
        h.draw();
        assert!(h.text().contains("log10(1+counts)"));
        // arrows move the scan cursor; the spectrum follows
        h.key(KeyCode::Right);
        h.key_mod(KeyCode::Down, KeyModifiers::NONE);
        assert_eq!(h.state.main.cursor, (4, 6));
        let want: Vec<f32> = refs[46].iter().map(|&v| v as f32).collect();
        assert_eq!(h.state.eels.as_ref().unwrap().spectrum, want);
        // detector keys are not live here; a detector action (a user binding) is refused
        let before = h.state.status.clone();
        h.key(KeyCode::Char('m'));
        assert_eq!(h.state.status, before);
        emdtui::tui::app::update(&mut h.state, emdtui::tui::keys::Action::CycleDetector);
        assert!(h.state.status.contains("spectrum data"), "{}", h.state.status);
        assert!(h.state.jobs.table.list().iter().all(|j| j.name != "overview"), "no diffraction overview job");
    }
}

#[test]
fn roi_mean_spectrum_and_help_on_the_eels_screen() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 4, 5);
    let refs = reference(&f);
    let mut h = open(&f, 120, 40);
    // ROI from (2, 2) to (3, 4)
    h.key(KeyCode::Char('r'));
    h.keys("jll");
    h.key(KeyCode::Char('r'));
    let e = h.state.eels.as_ref().unwrap();
    assert!(e.spectrum_of.contains("ROI mean, 6 positions"), "{}", e.spectrum_of);
    for ch in [0, NX1_ZLP, 300, NX1_EDGE + 5, 1023] {
        let mut want = 0f64;
        for r in 2..4 {
            for c in 2..5 {
                want += refs[r * 5 + c][ch] as f64;
            }
        }
        let want = want / 6.0;
        assert!((e.spectrum[ch] as f64 - want).abs() <= 1e-6 * want.max(1.0), "channel {ch}");
    }
    assert!(h.state.jobs.table.list().iter().all(|j| j.name != "roi mean"), "no diffraction ROI mean job");
    h.key(KeyCode::Esc);
    assert!(h.state.eels.as_ref().unwrap().spectrum_of.starts_with("at ("));
    h.key(KeyCode::Char('?'));
    h.draw();
    let t = h.text();
    for s in ["EELS screen", "move the energy window", "narrow / widen", "log / linear"] {
        assert!(t.contains(s), "{s:?} in the help:\n{t}");
    }
    assert!(!t.contains("cycle detector"), "diffraction-only keys hidden:\n{t}");
}

/// emdtui's own 3-D EMD, via the library's conversion.
fn convert_3d(f: &Path, out: &Path) {
    let ds = dataset::open(f, &OpenOptions::default()).unwrap();
    let o = SpectraOptions {
        bin: 1,
        mean: false,
        reverse: false,
        energy: Some((0.25, -10.0)),
        deflate_level: Some(1),
        memory_budget: 1 << 30,
        force: false,
        no_space_check: true,
    };
    emdtui::ops::convert::convert_spectra(ds.as_ref(), out, &o, &Progress::new("t", 0)).unwrap();
}

#[test]
fn spectrum_image_emd_opens_in_eels_mode_and_on_the_eels_screen() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 3, 4);
    let refs = reference(&f);
    let out = dir.path().join("si.emd");
    convert_3d(&f, &out);
    let ds = dataset::open(&out, &OpenOptions::default()).unwrap();
    let i = ds.info();
    assert_eq!((i.kind, i.mode.mode), (Kind::Emd, Mode::Eels));
    assert!(i.mode.reason.contains("3-D spectrum-image EMD"), "{}", i.mode.reason);
    assert_eq!(ds.det(), (1, 1024));
    assert_eq!((ds.scan().rows, ds.scan().cols), (3, 4));
    // frames are the stored spectra (integer counts here)
    for p in [0, 5, 11] {
        let fr = ds.frame_u32(p).unwrap();
        assert_eq!(fr, refs[p].iter().map(|&v| v as u32).collect::<Vec<_>>(), "spectrum {p}");
    }
    let again = dataset::open(&out, &OpenOptions::default()).unwrap();
    assert_eq!(ds.fingerprint(), again.fingerprint());
    // the TUI: map from the EMD, calibrated eV axis from its energy dim
    let h = open(&out, 120, 36);
    let e = h.state.eels.as_ref().expect("EELS screen");
    let si = e.si.as_ref().unwrap();
    assert_eq!(si.origin, emdtui::ops::overview::Origin::EmdCache);
    assert!(si.calibrated());
    assert_eq!((si.energy_step, si.energy_offset), (0.25, -10.0));
    for (p, r) in refs.iter().enumerate() {
        assert_eq!(e.map[p], window_sum(r, 10, 200));
    }
    let t = h.text();
    assert!(t.contains("EELS map -7.5 to 40.0 eV") && t.contains("ch 10-200 (-7.5 to 40.0 eV)"), "{t}");
    assert!(t.contains("eV/ch"), "{t}");
}

#[test]
fn mib_viewer_eels_emd_opens_in_eels_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mv.emd");
    let (sy, sx, e) = (3usize, 4usize, 50usize);
    let data: Vec<f32> = (0..sy * sx * e).map(|i| ((i * 7) % 97) as f32 + 0.25).collect();
    {
        let f = hdf5::File::create(&p).unwrap();
        let g = f.create_group("version_1/data/datacubes/datacube_000").unwrap();
        let a = g.new_attr::<hdf5::types::VarLenUnicode>().create("data_type").unwrap();
        a.write_scalar(&"EELS".parse::<hdf5::types::VarLenUnicode>().unwrap()).unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::Array4::from_shape_vec((sy, sx, 1, e), data.clone()).unwrap())
            .create("data")
            .unwrap();
        let dg = g.create_group("dim4").unwrap();
        dg.new_dataset_builder()
            .with_data(&ndarray::Array1::from_iter((0..e).map(|i| i as f64)))
            .create("dim4")
            .unwrap();
    }
    let ds = dataset::open(&p, &OpenOptions::default()).unwrap();
    assert_eq!(ds.info().mode.mode, Mode::Eels);
    assert!(ds.info().mode.reason.contains("mib-viewer"), "{}", ds.info().mode.reason);
    assert_eq!(ds.det(), (1, e));
    let fr = ds.frame_u32(7).unwrap();
    let want: Vec<u32> = data[7 * e..8 * e].iter().map(|v| v.round() as u32).collect();
    assert_eq!(fr, want);
    // on the EELS screen the map holds the exact stored floats (window 10-50 of 50 channels)
    let h = open(&p, 100, 30);
    let v = h.state.eels.as_ref().unwrap();
    assert_eq!(v.window, (10, 50));
    for q in 0..sy * sx {
        let want: f32 = data[q * e + 10..q * e + 50].iter().map(|&x| x as f64).sum::<f64>() as f32;
        assert_eq!(v.map[q], want);
    }
}

#[test]
fn tmux_opens_an_nx1_file_on_the_eels_screen() {
    if !common::tmux::have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 8, 12);
    let cache = dir.path().join("cache");
    let cmd = common::tmux::pane_cmd(&cache, &format!("--no-query --graphics halfblocks '{}'", f.display()));
    let (t, t0) = common::tmux::Tmux::start("eels", &cmd);
    let limit = Duration::from_secs(60);
    let (s, _) = t.wait("the EELS screen with its map", t0, limit, |s| {
        s.contains("EELS (spectrum) mode") && s.contains("EELS map ch 10-200") && s.contains("computed")
    });
    assert!(s.contains("spectrum at (4, 6)"), "{s}");
    t.send(&["Right", ">"]);
    t.wait("cursor and window moved", t0, limit, |s| s.contains("spectrum at (4, 7)") && s.contains("ch 200-390"));
    t.send(&["y"]);
    t.wait("log scale", t0, limit, |s| s.contains("log10(1+counts)"));
    t.send(&["q"]);
    let (s, _) = t.wait("exit", t0, limit, |s| common::tmux::exited(s).is_some());
    assert_eq!(common::tmux::exited(&s), Some("EXITED rc=0"), "{s}");
}

#[test]
fn convert_key_on_the_eels_screen_writes_the_spectrum_image() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 3, 4);
    let refs = reference(&f);
    let mut h = open(&f, 100, 30);
    h.key(KeyCode::Char('c'));
    h.settle(WAIT);
    let out = emdtui::ops::convert::default_output(&f);
    assert!(h.state.status.contains("spectrum image"), "{}", h.state.status);
    let si = emdtui::format::emd::read_spectrum_image(&out).unwrap().expect("a 3-D spectrum image");
    assert_eq!(si.shape, [3, 4, 1024]);
    for (p, r) in refs.iter().enumerate() {
        let want: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        assert_eq!(si.data[p * 1024..(p + 1) * 1024], want[..], "spectrum {p}");
    }
    // and it opens on the EELS screen
    let h2 = open(&out, 100, 30);
    assert_eq!(h2.state.eels.as_ref().unwrap().map, h.state.eels.as_ref().unwrap().map);
}

/// `data` of the datacube of an emdtui EMD as f64 (any stored type), with its HDF5 type name.
fn datacube(p: &Path) -> (Vec<usize>, Vec<f64>, String) {
    let f = hdf5::File::open(p).unwrap();
    let d = f.dataset("datacube_root/datacube/data").unwrap();
    let t = format!("{:?}", d.dtype().unwrap().to_descriptor().unwrap());
    let v: Vec<f64> = if t.starts_with("Float") {
        d.read_raw::<f32>().unwrap().into_iter().map(f64::from).collect()
    } else {
        d.read_raw::<u32>().unwrap().into_iter().map(f64::from).collect()
    };
    (d.shape(), v, t)
}

#[test]
fn bin_mode_mean_4d_is_float32_and_equals_the_sum_over_factor_squared() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 4, cols: 6, det: 256, depth: 12, hdr: true, seed: 2, ..Default::default() };
    let f = common::synth(dir.path(), "d.mib", &spec);
    let cache = dir.path().join("cache");
    let run = |args: &[&str], out: &Path| {
        let mut c = assert_cmd::Command::cargo_bin("emdtui").unwrap();
        c.env("EMDTUI_CACHE_DIR", &cache).arg("convert").arg(&f).args(args).arg("-o").arg(out).assert().success();
    };
    for (bd, bs, compress) in [(2usize, 1usize, "none"), (4, 2, "gzip:1")] {
        let (sum, mean) = (dir.path().join(format!("s{bd}.emd")), dir.path().join(format!("m{bd}.emd")));
        let (b, s) = (bd.to_string(), bs.to_string());
        run(&["--bin-detector", &b, "--bin-scan", &s, "--compress", compress], &sum);
        run(&["--bin-detector", &b, "--bin-scan", &s, "--bin-mode", "mean", "--compress", compress], &mean);
        let (sh_s, vs, ts) = datacube(&sum);
        let (sh_m, vm, tm) = datacube(&mean);
        assert_eq!(sh_s, sh_m);
        assert_eq!(sh_m, vec![4 / bs, 6 / bs, 256 / bd, 256 / bd]);
        assert!(ts.starts_with("Unsigned") && tm.starts_with("Float"), "{ts} / {tm}");
        let factor = (bd * bd * bs * bs) as f64;
        assert!(vs.iter().any(|&v| v > 0.0));
        for (i, (s, m)) in vs.iter().zip(&vm).enumerate() {
            assert_eq!(*m, s / factor, "pixel {i}: mean = sum / {factor}");
        }
        // the overviews cached inside come from the same values (sum image = mean-data frame sums)
        let ff = hdf5::File::open(&mean).unwrap();
        let vsum: Vec<f32> = ff.dataset("datacube_root/datacube/cached/virtual_sum/data").unwrap().read_raw().unwrap();
        let npx = (256 / bd) * (256 / bd);
        for (p, got) in vsum.iter().enumerate() {
            let want: f64 = vm[p * npx..(p + 1) * npx].iter().sum();
            assert!((*got as f64 - want).abs() <= 1e-4 * want.max(1.0), "virtual sum {p}: {got} vs {want}");
        }
        if let Some(peer) = common::peer_python() {
            let o = std::process::Command::new(&peer.0)
                .arg(&peer.1)
                .arg(&mean)
                .args(["--expect-dtype", "float32"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() && text.contains("0 failed"), "emd_check on the float32 datacube:\n{text}");
        }
    }
}

#[test]
fn export_key_writes_the_current_energy_window_map() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 3, 4);
    let mut h = open(&f, 100, 30);
    h.keys(">e"); // the export right after a window key, before any draw
    let png = dir.path().join("eels_eels-map-ch200-390.png");
    assert!(png.is_file(), "{}: {}", png.display(), h.state.status);
    assert!(h.state.status.contains("exported"), "{}", h.state.status);
}

#[test]
fn remembered_calibration_and_cached_spectra_of_a_mib() {
    let dir = tempfile::tempdir().unwrap();
    let f = nx1(dir.path(), 3, 4);
    let refs = reference(&f);
    let cache = dir.path().join("cache");
    // `emdtui eels` with a calibration: it is remembered and the spectrum image cached
    let out = dir.path().join("m.npy");
    let mut c = assert_cmd::Command::cargo_bin("emdtui").unwrap();
    c.env("EMDTUI_CACHE_DIR", &cache).arg("eels").arg(&f);
    c.args(["--window", "10:20", "--dispersion", "0.5", "--offset", "3", "-o"]).arg(&out).assert().success();
    let mut h = Harness::open_with_cache(&f, 120, 36, Graphics::Halfblocks, &cache).unwrap();
    h.settle(WAIT);
    h.draw();
    let e = h.state.eels.as_ref().unwrap();
    let si = e.si.as_ref().unwrap();
    assert_eq!(si.origin, emdtui::ops::overview::Origin::CacheDir, "spectra from the cache directory");
    assert!(si.calibrated());
    assert_eq!((si.energy_step, si.energy_offset), (0.5, 3.0));
    for (p, r) in refs.iter().enumerate() {
        assert_eq!(e.map[p], window_sum(r, 10, 200));
    }
    let t = h.text();
    assert!(t.contains("EELS map 8.0 to 103.0 eV"), "{t}");
    assert!(t.contains("spectra from the cache") && t.contains("0.500 eV/ch"), "{t}");
}
