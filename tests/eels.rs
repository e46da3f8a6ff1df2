//! EELS mode (issue 15): synthetic Merlin Nx1 files (zero-loss peak, plasmon, an edge whose
//! strength varies over the scan, counting noise). Maps, spectra and the 3-D spectrum-image EMD
//! are checked against sums computed here from the decoded frames (`Dataset::frame_u32`, not the
//! EELS kernels); the EMD is opened by py4DSTEM and HyperSpy when `EMDTUI_PYTHON` (or the
//! crate's `.venv`) has them, else that part is skipped with a message. The real row-ROI files
//! open as diffraction by default and as spectra with `--mode eels`.

use emdtui::dataset::{Dataset, MibDataset, Mode, OpenOptions};
use emdtui::format::synth::{self, SynthSpec};
use std::path::{Path, PathBuf};
use std::process::Command;

fn emdtui(cache: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("emdtui").unwrap();
    c.env("EMDTUI_CACHE_DIR", cache);
    c
}

fn testdata() -> PathBuf {
    std::env::var_os("EMDTUI_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mib"))
}

fn nx1(dir: &Path, name: &str, rows: usize, cols: usize, depth: u8) -> (PathBuf, SynthSpec) {
    let spec = SynthSpec { rows, cols, depth, nx1: true, hdr: true, seed: 11, ..Default::default() };
    let p = dir.join(name);
    synth::write(&p, &spec, &|_, _| {}).unwrap();
    (p, spec)
}

/// Reference spectra: every decoded frame summed over its 256 rows (channels = columns).
fn reference(p: &Path) -> (usize, usize, Vec<Vec<u64>>) {
    let ds = MibDataset::open(p, &OpenOptions::default()).unwrap();
    let (dr, dc) = ds.det();
    assert_eq!((dr, dc), (256, 1024));
    let s = ds.scan().clone();
    let spectra = (0..s.positions())
        .map(|pos| {
            let f = ds.frame_u32(pos).unwrap();
            let mut sp = vec![0u64; dc];
            for row in f.chunks_exact(dc) {
                for (a, &v) in sp.iter_mut().zip(row) {
                    *a += v as u64;
                }
            }
            sp
        })
        .collect();
    (s.rows, s.cols, spectra)
}

fn npy1(p: &Path) -> Vec<f32> {
    let a: ndarray::Array1<f32> = ndarray_npy::read_npy(p).unwrap();
    a.to_vec()
}

fn npy2(p: &Path) -> (usize, usize, Vec<f32>) {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap();
    let (r, c) = a.dim();
    (r, c, a.iter().copied().collect())
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn mean_of(refs: &[Vec<u64>], cols: usize, rr: std::ops::Range<usize>, cc: std::ops::Range<usize>) -> Vec<f64> {
    let n = (rr.len() * cc.len()) as f64;
    let mut m = vec![0f64; refs[0].len()];
    for r in rr {
        for c in cc.clone() {
            for (a, &v) in m.iter_mut().zip(&refs[r * cols + c]) {
                *a += v as f64;
            }
        }
    }
    m.iter().map(|v| v / n).collect()
}

#[test]
fn nx1_file_is_spectrum_data_with_the_model_features() {
    let dir = tempfile::tempdir().unwrap();
    let (p, spec) = nx1(dir.path(), "s.mib", 6, 7, 12);
    let ds = MibDataset::open(&p, &OpenOptions::default()).unwrap();
    assert_eq!(ds.info().mode.mode, Mode::Eels, "{}", ds.info().mode.reason);
    assert!(ds.info().mode.reason.contains("Nx1"), "{}", ds.info().mode.reason);
    let forced =
        MibDataset::open(&p, &OpenOptions { mode: emdtui::dataset::ModeChoice::Diffraction, ..Default::default() })
            .unwrap();
    assert_eq!(forced.info().mode.mode, Mode::Diffraction);
    let (_, cols, refs) = reference(&p);
    // zero-loss peak at its channel, a plasmon after it, an edge whose strength follows the scan
    let total = mean_of(&refs, cols, 0..6, 0..7);
    let argmax = (0..1024).max_by(|&a, &b| total[a].total_cmp(&total[b])).unwrap();
    assert!(argmax.abs_diff(synth::NX1_ZLP) <= 2, "zero-loss peak at {argmax}");
    assert!(total[synth::NX1_ZLP + 220] > 2.0 * total[synth::NX1_ZLP + 400], "plasmon");
    let jump = |s: &Vec<u64>| {
        let pre: u64 = s[synth::NX1_EDGE - 20..synth::NX1_EDGE].iter().sum();
        let post: u64 = s[synth::NX1_EDGE..synth::NX1_EDGE + 20].iter().sum();
        post as f64 - pre as f64
    };
    let steps: Vec<usize> = (0..42).map(|q| synth::nx1_edge_step(&spec, q)).collect();
    let lo = (0..42).min_by_key(|&q| steps[q]).unwrap();
    let hi = (0..42).max_by_key(|&q| steps[q]).unwrap();
    assert!(steps[hi] > steps[lo] + 8, "{steps:?}");
    assert!(jump(&refs[hi]) > jump(&refs[lo]) + 1000.0, "edge {} vs {}", jump(&refs[hi]), jump(&refs[lo]));
    // counting noise: neighbouring channels of one flat region differ
    let s = &refs[0];
    assert!((900..960).any(|c| s[c] != s[c + 1]));
}

#[test]
fn map_and_spectrum_equal_sums_of_the_decoded_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // 12-bit (stored 16-bit: the no-copy kernel), 24-bit and 6-bit (decoded)
    for depth in [12u8, 24, 6] {
        let (p, _) = nx1(dir.path(), &format!("d{depth}.mib"), 5, 6, depth);
        let (rows, cols, refs) = reference(&p);
        let out = dir.path().join(format!("m{depth}.npy"));
        for extra in [&["--no-cache"][..], &[], &[]] {
            // computed, computed and stored, loaded from the cache: all equal
            emdtui(&cache)
                .args(["eels", p.to_str().unwrap(), "--window", "600:1000", "-o"])
                .arg(&out)
                .args(extra)
                .assert()
                .success();
            let (r, c, m) = npy2(&out);
            assert_eq!((r, c), (rows, cols));
            for (q, v) in m.iter().enumerate() {
                let want: u64 = refs[q][600..1000].iter().sum();
                assert!(close(*v, want as f64), "depth {depth} position {q}: {v} vs {want}");
            }
        }
        let sp = dir.path().join(format!("s{depth}.npy"));
        for (args, rr, cc) in
            [(vec![], 0..rows, 0..cols), (vec!["--roi", "1:3,2:5"], 1..3, 2..5), (vec!["--at", "4,1"], 4..5, 1..2)]
        {
            emdtui(&cache)
                .args(["eels", p.to_str().unwrap(), "--spectrum", "-o"])
                .arg(&sp)
                .args(&args)
                .assert()
                .success();
            let got = npy1(&sp);
            let want = mean_of(&refs, cols, rr, cc);
            assert_eq!(got.len(), 1024);
            assert!(got.iter().zip(&want).all(|(a, b)| close(*a, *b)), "depth {depth} {args:?}");
        }
    }
}

#[test]
fn reversed_and_calibrated_windows_and_the_remembered_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (p, _) = nx1(dir.path(), "s.mib", 4, 5, 12);
    let (_, _, refs) = reference(&p);
    let out = dir.path().join("m.npy");
    // reversed: channel i = stored channel 1023 - i; 0.5 eV per channel from -10 eV:
    // [0, 5) eV = channels [20, 30) = stored channels 994..=1003
    let args = ["--reverse-energy", "--dispersion", "0.5", "--offset", "-10", "--window", "0:5eV"];
    emdtui(&cache).args(["eels", p.to_str().unwrap(), "-o"]).arg(&out).args(args).assert().success();
    let (_, _, m) = npy2(&out);
    for (q, v) in m.iter().enumerate() {
        let want: u64 = refs[q][994..1004].iter().sum();
        assert!(close(*v, want as f64), "{q}: {v} vs {want}");
    }
    // the calibration is remembered for the file
    let out2 = dir.path().join("m2.npy");
    emdtui(&cache)
        .args(["eels", p.to_str().unwrap(), "--reverse-energy", "--window", "0:5eV", "-o"])
        .arg(&out2)
        .assert()
        .success();
    assert_eq!(npy2(&out2).2, m);
    let csv = dir.path().join("s.csv");
    emdtui(&cache).args(["eels", p.to_str().unwrap(), "--spectrum", "-o"]).arg(&csv).assert().success();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("channel,energy_ev,value"));
    assert!(lines.nth(20).unwrap().starts_with("20,0,"), "{}", text.lines().nth(21).unwrap());
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("EMDTUI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED the py4DSTEM/HyperSpy check: no python at {} (set EMDTUI_PYTHON)", p.display());
        None
    }
}

const PEER_CHECK: &str = r#"
import sys, warnings, json
warnings.filterwarnings("ignore")
import numpy as np, h5py
path, units = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    ref = f["spectrum_root/spectrum_image/data"][()]
import py4DSTEM
a = py4DSTEM.read(path)
assert a.data.shape == ref.shape, (a.data.shape, ref.shape)
assert a.dim_names[2] == "energy" and a.dim_units[2] == units, (a.dim_names, a.dim_units)
assert np.array_equal(a.data, ref)
import hyperspy.api as hs
s = hs.load(path)
axes = {ax.name: ax for ax in s.axes_manager._axes}
assert "energy" in axes and axes["energy"].units == units, [(x.name, x.units) for x in s.axes_manager._axes]
assert axes["energy"].size == ref.shape[2]
assert np.array_equal(np.asarray(s.data), ref)
print(json.dumps({"ok": True, "energy_scale": axes["energy"].scale, "energy_offset": axes["energy"].offset}))
"#;

#[test]
fn converted_spectrum_image_equals_the_sums_and_opens_in_py4dstem_and_hyperspy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (p, _) = nx1(dir.path(), "s.mib", 5, 6, 12);
    let (rows, cols, refs) = reference(&p);
    let out = dir.path().join("s.emd");
    emdtui(&cache)
        .args(["convert", p.to_str().unwrap(), "-o"])
        .arg(&out)
        .args(["--dispersion", "0.25", "--offset", "-20"])
        .assert()
        .success()
        .stdout(predicates::str::contains("estimate"));
    let f = hdf5::File::open(&out).unwrap();
    let d = f.dataset("spectrum_root/spectrum_image/data").unwrap();
    assert_eq!(d.shape(), vec![rows, cols, 1024]);
    let v: Vec<f32> = d.read_raw().unwrap();
    for (q, r) in refs.iter().enumerate() {
        assert!(v[q * 1024..(q + 1) * 1024].iter().zip(r).all(|(a, &b)| *a == b as f32), "position {q}");
    }
    let dim2: Vec<f64> = f.dataset("spectrum_root/spectrum_image/dim2").unwrap().read_raw().unwrap();
    assert_eq!(dim2, vec![-20.0, -19.75]);
    drop(f);
    // `eels` on the EMD and on the .mib agree; `info` reads it
    let (m1, m2) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    emdtui(&cache).args(["eels", p.to_str().unwrap(), "--window", "70:90", "-o"]).arg(&m1).assert().success();
    emdtui(&cache).args(["eels", out.to_str().unwrap(), "--window", "70:90", "-o"]).arg(&m2).assert().success();
    assert_eq!(npy2(&m1), npy2(&m2));
    let info = emdtui(&cache).args(["info", "--json", out.to_str().unwrap()]).assert().success();
    let j: serde_json::Value = serde_json::from_slice(&info.get_output().stdout).unwrap();
    assert_eq!(j["mode"]["mode"], "eels");
    assert_eq!(j["energy"]["units"], "eV");
    // binned by 4 with the mean (float32), gzip level 6, calibration remembered
    let out4 = dir.path().join("b4.emd");
    emdtui(&cache)
        .args(["convert", p.to_str().unwrap(), "--sum-short-axis", "--bin-detector", "4", "--bin-mode", "mean"])
        .args(["--compress", "gzip:6", "-o"])
        .arg(&out4)
        .assert()
        .success();
    let f = hdf5::File::open(&out4).unwrap();
    let d = f.dataset("spectrum_root/spectrum_image/data").unwrap();
    assert_eq!(d.shape(), vec![rows, cols, 256]);
    assert!(d.filters().contains(&hdf5::filters::Filter::Deflate(6)), "{:?}", d.filters());
    let v: Vec<f32> = d.read_raw().unwrap();
    for (q, r) in refs.iter().enumerate() {
        for b in 0..256 {
            let want = r[4 * b..4 * b + 4].iter().sum::<u64>() as f64 / 16.0;
            assert!(close(v[q * 256 + b], want), "binned position {q} bin {b}");
        }
    }
    // the calibration given to the first conversion is remembered; bins are centred
    let dim2: Vec<f64> = f.dataset("spectrum_root/spectrum_image/dim2").unwrap().read_raw().unwrap();
    assert_eq!(dim2, vec![-19.625, -18.625]);
    drop(f);
    let Some(py) = python() else { return };
    for (file, units) in [(&out, "eV"), (&out4, "eV")] {
        let o = Command::new(&py).arg("-c").arg(PEER_CHECK).arg(file).arg(units).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success() && text.contains("\"ok\": true"), "{text}\n{}", String::from_utf8_lossy(&o.stderr));
        eprintln!("peer readers on {}: {}", file.display(), text.trim());
    }
}

#[test]
fn mib_viewer_eels_emd_opens_for_info_and_eels() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = dir.path().join("mv.emd");
    let (sy, sx, e) = (3usize, 4usize, 50usize);
    let data: Vec<f32> = (0..sy * sx * e).map(|i| (i % 97) as f32).collect();
    {
        let f = hdf5::File::create(&p).unwrap();
        let g = f.create_group("version_1/data/datacubes/datacube_000").unwrap();
        let a = g.new_attr::<hdf5::types::VarLenUnicode>().create("data_type").unwrap();
        a.write_scalar(&"EELS".parse::<hdf5::types::VarLenUnicode>().unwrap()).unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::Array4::from_shape_vec((sy, sx, 1, e), data.clone()).unwrap())
            .create("data")
            .unwrap();
        for (k, name, n) in [(1, "scan_y", sy), (2, "scan_x", sx), (3, "detector_y", 1), (4, "energy", e)] {
            let dg = g.create_group(&format!("dim{k}")).unwrap();
            let a = dg.new_attr::<hdf5::types::VarLenUnicode>().create("name").unwrap();
            a.write_scalar(&name.parse::<hdf5::types::VarLenUnicode>().unwrap()).unwrap();
            let a = dg.new_attr::<hdf5::types::VarLenUnicode>().create("units").unwrap();
            a.write_scalar(&"channels".parse::<hdf5::types::VarLenUnicode>().unwrap()).unwrap();
            dg.new_dataset_builder()
                .with_data(&ndarray::Array1::from_iter(0..n as i64))
                .create(format!("dim{k}").as_str())
                .unwrap();
        }
    }
    let info = emdtui(&cache).args(["info", "--json", p.to_str().unwrap()]).assert().success();
    let j: serde_json::Value = serde_json::from_slice(&info.get_output().stdout).unwrap();
    assert_eq!(j["shape"], serde_json::json!([sy, sx, e]));
    assert_eq!(j["mode"]["mode"], "eels");
    let out = dir.path().join("m.npy");
    emdtui(&cache).args(["eels", p.to_str().unwrap(), "--window", "10:20", "-o"]).arg(&out).assert().success();
    let (r, c, m) = npy2(&out);
    assert_eq!((r, c), (sy, sx));
    for (q, v) in m.iter().enumerate() {
        let want: f32 = data[q * e + 10..q * e + 20].iter().sum();
        assert_eq!(*v, want);
    }
}

#[test]
fn real_row_roi_files_are_diffraction_unless_mode_eels() {
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join("ground_truth.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut seen = 0;
    for (name, f) in gt["files"].as_object().unwrap() {
        if !name.contains("roi") {
            continue;
        }
        seen += 1;
        let p = testdata().join(name);
        let (rows, cols) =
            (f["signal_shape"][0].as_u64().unwrap() as usize, f["signal_shape"][1].as_u64().unwrap() as usize);
        assert!(rows < cols, "{name}: a row ROI");
        let j = |extra: &[&str]| -> serde_json::Value {
            let a = emdtui(&cache).args(["info", "--json"]).arg(&p).args(extra).assert().success();
            serde_json::from_slice(&a.get_output().stdout).unwrap()
        };
        assert_eq!(j(&[])["mode"]["mode"], "diffraction", "{name}");
        assert_eq!(j(&["--mode", "eels"])["mode"]["mode"], "eels", "{name}");
        let out = dir.path().join("s.npy");
        emdtui(&cache).args(["eels", p.to_str().unwrap(), "--spectrum", "-o"]).arg(&out).assert().failure().stderr(
            predicates::str::contains("not spectrum data")
                .and(predicates::str::contains(name.rsplit('/').next().unwrap())),
        );
        assert!(!out.exists());
        emdtui(&cache)
            .args(["eels", p.to_str().unwrap(), "--spectrum", "--mode", "eels", "-o"])
            .arg(&out)
            .assert()
            .success();
        let s = npy1(&out);
        assert_eq!(s.len(), cols, "{name}: spectra of the long axis");
        // the mean spectrum's total is the mean frame sum of the ground truth
        let sums: Vec<f64> = f["per_frame_sums"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let want = sums.iter().sum::<f64>() / sums.len() as f64;
        let got: f64 = s.iter().map(|&v| v as f64).sum();
        assert!((got - want).abs() <= 1e-4 * want.max(1.0), "{name}: {got} vs {want}");
        std::fs::remove_file(&out).unwrap();
    }
    assert!(seen >= 3, "the real row-ROI files were not found");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn bad_eels_input_is_a_clear_error_naming_the_file_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (p, _) = nx1(dir.path(), "s.mib", 3, 3, 12);
    let out = dir.path().join("o.npy");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--window", "0:2000"], "outside the spectrum"),
        (vec!["--window", "-5:10"], "outside the spectrum"),
        (vec!["--window", "300:300"], "empty"),
        (vec!["--window", "300:200"], "empty"),
        (vec!["--window", "1:5eV"], "calibration"),
        (vec!["--dispersion", "0.1", "--offset", "0", "--window", "900:950eV"], "outside"),
        (vec!["--spectrum", "--roi", "2:2,0:1"], "empty"),
        (vec!["--spectrum", "--at", "5,0"], "outside"),
        (vec![], "--window"),
    ];
    for (args, msg) in cases {
        let a = emdtui(&cache).args(["eels", p.to_str().unwrap(), "-o"]).arg(&out).args(&args).assert().failure();
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(err.contains(msg), "{args:?}: {err}");
        if !err.contains("--window E0:E1") {
            assert!(err.contains("s.mib"), "{args:?}: the error names the file: {err}");
        }
        assert!(!out.exists(), "{args:?}: no output file");
    }
    // --sum-short-axis on a square diffraction detector
    let sq = dir.path().join("sq.mib");
    synth::write(&sq, &SynthSpec { rows: 2, cols: 2, ..Default::default() }, &|_, _| {}).unwrap();
    let emd = dir.path().join("sq.emd");
    emdtui(&cache)
        .args(["convert", sq.to_str().unwrap(), "--sum-short-axis", "-o"])
        .arg(&emd)
        .assert()
        .failure()
        .stderr(predicates::str::contains("sq.mib").and(predicates::str::contains("square")));
    assert!(!emd.exists() && !dir.path().join("sq.emd.part").exists());
    // with --mode eels it is allowed
    emdtui(&cache)
        .args(["convert", sq.to_str().unwrap(), "--sum-short-axis", "--mode", "eels", "-o"])
        .arg(&emd)
        .assert()
        .success();
    assert!(emd.is_file());
}
