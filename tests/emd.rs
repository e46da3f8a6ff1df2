//! EMD conversion, reading, caches, crash safety, disk full and locking.
//!
//! Python checks use the interpreter from `EMDTUI_PYTHON` (default `.venv/bin/python` in the crate)
//! and the checker from `EMD_CHECK` (default `../shared/tools/emd_check.py`), found by
//! `common::peer_python`. When either is missing, the Python part of a test is skipped with a
//! printed reason (the Rust checks before it still run); `.ci/run` installs both.

mod common;

use emdtui::compute::convert::ConvertOptions;
use emdtui::dataset::EmdDataset;
use emdtui::dataset::{self, Dataset, FrameBuf, MibDataset, OpenOptions, ReadScratch};
use emdtui::format::emd;
use emdtui::format::synth::{self, SynthSpec};
use emdtui::jobs::Progress;
use emdtui::ops::convert;
use emdtui::store::emd::EmdFile;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

use common::{command, peer_python, synth, testdata_dir};

/// Run `emd_check.py` (the peer readers) on `file`, which must pass every check.
fn emd_check(peer: &(PathBuf, PathBuf), file: &Path, shape: [usize; 4], dtype: &str) {
    let (python, checker) = peer;
    let out = Command::new(python)
        .arg(checker)
        .arg(file)
        .arg("--expect-shape")
        .arg(format!("{},{},{},{}", shape[0], shape[1], shape[2], shape[3]))
        .arg("--expect-dtype")
        .arg(dtype)
        .output()
        .expect("run emd_check.py");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "emd_check failed on {}:\n{text}", file.display());
    assert!(text.contains("0 failed"), "{text}");
}

fn run_py(python: &Path, code: &str, args: &[&Path]) -> String {
    let out = Command::new(python).arg("-c").arg(code).args(args).output().expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "python failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn all_frames(ds: &dyn Dataset) -> Vec<u32> {
    let mut b = FrameBuf::new(ds.info().pixel_type);
    ds.read_positions(0, ds.scan().positions(), &mut b, &mut ReadScratch::default()).unwrap();
    b.to_u32()
}

fn opts() -> ConvertOptions {
    ConvertOptions { memory_budget: 256 << 20, ..Default::default() }
}

fn convert_file(mib: &Path, out: &Path, o: &ConvertOptions) -> MibDataset {
    let ds = MibDataset::open(mib, &OpenOptions::default()).unwrap();
    convert::convert(&ds, out, o, &Progress::new("t", 0)).unwrap_or_else(|e| panic!("{}: {e}", mib.display()));
    ds
}

fn find_mibs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            find_mibs(&p, out);
        } else if p.extension().is_some_and(|e| e == "mib") {
            out.push(p);
        }
    }
}

#[test]
fn real_files_round_trip_exactly() {
    let mut mibs = Vec::new();
    find_mibs(&testdata_dir(), &mut mibs);
    mibs.sort();
    assert!(mibs.len() >= 20, "expected the real test files, found {}", mibs.len());
    let tmp = TempDir::new().unwrap();
    let mut done = 0;
    for (i, m) in mibs.iter().enumerate() {
        let Ok(ds) = MibDataset::open(m, &OpenOptions::default()) else { continue };
        let out = tmp.path().join(format!("r{i}.emd"));
        convert::convert(&ds, &out, &opts(), &Progress::new("t", 0)).unwrap_or_else(|e| panic!("{}: {e}", m.display()));
        let e = dataset::open(&out, &OpenOptions::default()).unwrap();
        assert_eq!(e.scan().rows, ds.scan().rows, "{}", m.display());
        assert_eq!(e.scan().cols, ds.scan().cols, "{}", m.display());
        assert_eq!(e.det(), ds.det(), "{}", m.display());
        assert_eq!(e.info().pixel_type, ds.info().pixel_type, "{}", m.display());
        assert_eq!(all_frames(e.as_ref()), all_frames(&ds), "{}: converted frames differ", m.display());
        done += 1;
    }
    assert!(done >= 20, "only {done} real files converted");
    // one real file through the external readers
    // (a 2-D scan: py4DSTEM cannot calibrate a length-1 scan axis, which emd_check flags)
    let Some(peer) = peer_python() else { return };
    let q = mibs.iter().position(|p| p.ends_with("001_4x2_6bit.mib")).unwrap();
    let e = EmdDataset::open(&tmp.path().join(format!("r{q}.emd")), &OpenOptions::default()).unwrap();
    emd_check(&peer, &tmp.path().join(format!("r{q}.emd")), e.shape, e.info().pixel_type.name());
}

#[test]
fn synthetic_every_depth_round_trips_and_passes_emd_check() {
    let tmp = TempDir::new().unwrap();
    for det in [256, 512] {
        for depth in [1u8, 6, 12, 24] {
            for raw in [false, true] {
                let spec = SynthSpec {
                    rows: 3,
                    cols: 5,
                    det,
                    depth,
                    raw,
                    seed: depth as u64 + det as u64,
                    ..Default::default()
                };
                let name = format!("s{det}_{depth}_{raw}");
                let mib = synth(tmp.path(), &format!("{name}.mib"), &spec);
                let out = tmp.path().join(format!("{name}.emd"));
                let compress = depth == 24 || (depth == 6 && raw);
                let ds = convert_file(&mib, &out, &ConvertOptions { compress, ..opts() });
                let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
                assert_eq!(e.shape, [3, 5, det, det]);
                let got = all_frames(&e);
                assert_eq!(got, all_frames(&ds), "{name}");
                // and equal to the model the synthetic file was made from
                let npx = det * det;
                for p in [0, 7, 14] {
                    assert_eq!(
                        &got[p * npx..(p + 1) * npx],
                        synth::expected_frame(&spec, p).as_slice(),
                        "{name} pos {p}"
                    );
                }
                let want_chunks = vec![1, emd::chunk_k(e.shape, e.info().pixel_type), det, det];
                assert_eq!(e.chunks.as_ref().unwrap(), &want_chunks, "{name}");
                if compress {
                    assert!(e.compression.contains("Deflate"), "{name}: {}", e.compression);
                    assert!(std::fs::metadata(&out).unwrap().len() < (15 * npx * e.info().pixel_type.bytes()) as u64);
                }
            }
        }
    }
    let Some(peer) = peer_python() else { return };
    emd_check(&peer, &tmp.path().join("s256_12_false.emd"), [3, 5, 256, 256], "uint16");
    emd_check(&peer, &tmp.path().join("s512_24_true.emd"), [3, 5, 512, 512], "uint32");
}

#[test]
fn binning_and_crop_sum_exactly() {
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 6, cols: 7, det: 256, depth: 12, ..Default::default() };
    let mib = synth(tmp.path(), "b.mib", &spec);
    let out = tmp.path().join("b.emd");
    let o = ConvertOptions { bin_detector: 4, bin_scan: 2, crop: Some(((1, 6), (2, 7))), compress: true, ..opts() };
    let ds = convert_file(&mib, &out, &o);
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    assert_eq!(e.shape, [2, 2, 64, 64]);
    let got = all_frames(&e);
    for r in 0..2 {
        for c in 0..2 {
            let mut want = vec![0u32; 64 * 64];
            for sr in 0..2 {
                for sc in 0..2 {
                    let f = ds.frame_u32((1 + r * 2 + sr) * 7 + 2 + c * 2 + sc).unwrap();
                    for y in 0..256 {
                        for x in 0..256 {
                            want[(y / 4) * 64 + x / 4] += f[y * 256 + x];
                        }
                    }
                }
            }
            let p = r * 2 + c;
            assert_eq!(&got[p * 4096..(p + 1) * 4096], want.as_slice(), "binned position {r},{c}");
        }
    }
    // bad options are refused with clear errors
    let err = convert::convert(
        &ds,
        &tmp.path().join("x.emd"),
        &ConvertOptions { bin_detector: 3, ..opts() },
        &Progress::new("t", 0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--bin-detector 3"), "{err}");
    let err = convert::convert(
        &ds,
        &tmp.path().join("x.emd"),
        &ConvertOptions { crop: Some(((0, 9), (0, 2))), ..opts() },
        &Progress::new("t", 0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--crop 0:9,0:2"), "{err}");
    let err = convert::convert(&ds, &out, &opts(), &Progress::new("t", 0)).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn overviews_cached_at_conversion_match_compute() {
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 8, cols: 9, ..Default::default() };
    let mib = synth(tmp.path(), "o.mib", &spec);
    let out = tmp.path().join("o.emd");
    convert_file(&mib, &out, &opts());
    let f = EmdFile::open(&out).unwrap();
    let ov = f.read_overviews().unwrap().expect("overviews valid after conversion");
    assert!(ov.complete);
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    let co = emdtui::compute::overview::ComputeOptions {
        memory_budget: 64 << 20,
        mask: None,
        coarse_first: false,
        ..Default::default()
    };
    let r = emdtui::compute::overview::compute(&e, &ov.geometry, &co, &Progress::new("t", 0), &|_| {}).unwrap();
    assert_eq!(ov.sum, r.sum);
    assert_eq!(ov.bf, r.bf);
    assert_eq!(ov.adf, r.adf);
    for (a, b) in ov.com_x.iter().zip(&r.com_x) {
        assert!((a - b).abs() < 1e-3, "{a} {b}");
    }
    for (a, b) in ov.mean_dp.iter().zip(&r.mean_dp) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} {b}");
    }
    assert_eq!(ov.max_dp, r.max_dp);
    assert!(ov.sum.iter().all(|v| *v > 0.0));
    // the BF disk was found, not just the default geometry
    let d = emdtui::compute::overview::default_geometry(256, 256);
    assert_ne!(ov.geometry, d);
}

#[test]
fn caches_valid_then_stale_and_selectively_removed() {
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 4, cols: 6, ..Default::default() };
    let mib = synth(tmp.path(), "c.mib", &spec);
    let out = tmp.path().join("c.emd");
    convert_file(&mib, &out, &opts());
    let f = EmdFile::open(&out).unwrap();
    let list = f.list_caches().unwrap();
    assert_eq!(list.len(), 7);
    assert!(list.iter().all(|c| c.valid), "{list:?}");
    assert!(list.iter().all(|c| c.version == emdtui::VERSION && !c.created.is_empty()));
    assert_eq!(list.iter().find(|c| c.name == "virtual_bf").unwrap().kind, "RealSlice");
    assert!(list[0].params["geometry"]["bf_radius"].as_f64().unwrap() > 0.0);
    assert_eq!(f.log().unwrap().len(), 1);
    assert_eq!(f.datacube_unchanged(), Some(true));
    let src = MibDataset::open(&mib, &OpenOptions::default()).unwrap();
    assert_eq!(f.source_matches(&src), Some(true));
    let other = synth(tmp.path(), "other.mib", &SynthSpec { rows: 4, cols: 6, seed: 9, ..Default::default() });
    assert_eq!(f.source_matches(&MibDataset::open(&other, &OpenOptions::default()).unwrap()), Some(false));

    // a format-version bump on one entry: only that one is stale and removed
    let Some(peer) = peer_python() else { return };
    run_py(
        &peer.0,
        "import h5py,sys\nf=h5py.File(sys.argv[1],'r+')\nf['datacube_root/datacube/cached/dp_max'].attrs['emdtui_cache_format']=0\n",
        &[&out],
    );
    let f = EmdFile::open(&out).unwrap();
    let list = f.list_caches().unwrap();
    let stale: Vec<_> = list.iter().filter(|c| !c.valid).collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].name, "dp_max");
    assert!(stale[0].reason.contains("format version 0"), "{}", stale[0].reason);
    assert!(f.read_overviews().unwrap().is_none(), "stale entries must never be shown as valid");
    let removed = f.remove_stale().unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    let list = f.list_caches().unwrap();
    assert_eq!(list.len(), 6);
    assert!(list.iter().all(|c| c.valid));

    // the datacube changes: everything is stale
    run_py(
        &peer.0,
        "import h5py,sys\nf=h5py.File(sys.argv[1],'r+')\nd=f['datacube_root/datacube/data']\nd[0,0,10,10]=d[0,0,10,10]+1\n",
        &[&out],
    );
    let f = EmdFile::open(&out).unwrap();
    let list = f.list_caches().unwrap();
    assert!(list.iter().all(|c| !c.valid && c.reason.contains("datacube changed")), "{list:?}");
    assert!(f.read_overviews().unwrap().is_none());
    assert_ne!(f.converted_fingerprint.as_deref(), Some(f.fingerprint.as_str()));

    // recompute on request and store incrementally: valid again, the log grows
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    let g = emdtui::compute::overview::default_geometry(256, 256);
    let co = emdtui::compute::overview::ComputeOptions {
        memory_budget: 64 << 20,
        mask: None,
        coarse_first: false,
        ..Default::default()
    };
    let ov = emdtui::compute::overview::compute(&e, &g, &co, &Progress::new("t", 0), &|_| {}).unwrap();
    f.write_overviews(&ov).unwrap(); // while `e` holds the file open read-only in this process
    let back = f.read_overviews().unwrap().expect("valid after recompute");
    assert_eq!(back.sum, ov.sum);
    assert_eq!(back.geometry, g);
    assert!(f.list_caches().unwrap().iter().all(|c| c.valid));
    assert_eq!(f.log().unwrap().len(), 3, "{:?}", f.log().unwrap());
    // the reader still works after the in-process writer closed its handle
    assert_eq!(e.frame_u32(5).unwrap(), synth::expected_frame(&spec, 5));
    emd_check(&peer, &out, [4, 6, 256, 256], "uint16");
}

#[test]
fn py4dstem_and_legacy_files_open_as_datasets() {
    let tmp = TempDir::new().unwrap();
    let p4 = tmp.path().join("p4.emd");
    let legacy = tmp.path().join("legacy.h5");
    let code = r#"
import sys, numpy as np, h5py, py4DSTEM
d = (np.arange(3*4*16*12) % 1000).astype(np.uint16).reshape(3,4,16,12)
py4DSTEM.save(sys.argv[1], py4DSTEM.DataCube(data=d), mode='w')
with h5py.File(sys.argv[2], 'w') as f:
    g = f.create_group('version_1/data/datacubes/datacube_000')
    g.create_dataset('data', data=(d.astype(np.uint32) * 3), chunks=(1, 3, 16, 12), compression='gzip', shuffle=True)
    for i, n in enumerate(d.shape):
        ds = g.create_dataset('dim%d' % (i+1), data=np.arange(n, dtype=float))
        ds.attrs['name'] = 'R_x R_y Q_x Q_y'.split()[i]; ds.attrs['units'] = '[pix]'
print('ok')
"#;
    let Some((python, _)) = peer_python() else { return };
    run_py(&python, code, &[&p4, &legacy]);
    let want: Vec<u32> = (0..3 * 4 * 16 * 12).map(|i| (i % 1000) as u32).collect();
    let a = dataset::open(&p4, &OpenOptions { scan: Some((2, 6)), ..Default::default() }).unwrap();
    assert_eq!((a.scan().rows, a.scan().cols, a.det()), (3, 4, (16, 12)));
    assert!(a.info().warnings.iter().any(|w| w.contains("--scan is ignored")));
    assert_eq!(all_frames(a.as_ref()), want);
    let mut b = FrameBuf::new(a.info().pixel_type);
    a.read_positions(5, 4, &mut b, &mut ReadScratch::default()).unwrap();
    assert_eq!(b.to_u32(), want[5 * 192..9 * 192].to_vec());
    let l = EmdDataset::open(&legacy, &OpenOptions::default()).unwrap();
    assert_eq!(l.layout, emd::Layout::Legacy);
    assert_eq!(l.shape, [3, 4, 16, 12]);
    assert_eq!(all_frames(&l), want.iter().map(|v| v * 3).collect::<Vec<_>>());
    // caches can be added to a py4DSTEM file and are then valid
    let f = EmdFile::open(&p4).unwrap();
    assert!(f.list_caches().unwrap().is_empty());
    let co = emdtui::compute::overview::ComputeOptions {
        memory_budget: 64 << 20,
        mask: None,
        coarse_first: false,
        ..Default::default()
    };
    let g = emdtui::compute::overview::default_geometry(16, 12);
    let ov = emdtui::compute::overview::compute(a.as_ref(), &g, &co, &Progress::new("t", 0), &|_| {}).unwrap();
    f.write_overviews(&ov).unwrap();
    assert!(f.read_overviews().unwrap().is_some());
}

#[test]
fn bad_emd_input_gives_clear_errors() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("text.emd"), b"this is not hdf5").unwrap();
    let e = EmdDataset::open(&t.join("text.emd"), &OpenOptions::default()).err().unwrap().to_string();
    assert!(e.contains("text.emd") && e.contains("not an HDF5"), "{e}");
    let e = EmdDataset::open(&t.join("missing.emd"), &OpenOptions::default()).err().unwrap().to_string();
    assert!(e.contains("missing.emd"), "{e}");
    let code = r#"
import sys, numpy as np, h5py
with h5py.File(sys.argv[1], 'w') as f: f['x'] = np.zeros(3)
with h5py.File(sys.argv[2], 'w') as f:
    g = f.create_group('version_1/data/datacubes/datacube_000'); g['data'] = np.zeros((3,4,5), np.uint16)
with h5py.File(sys.argv[3], 'w') as f:
    g = f.create_group('version_1/data/datacubes/datacube_000'); g['data'] = np.zeros((2,3,4,5), np.float32)
with h5py.File(sys.argv[4], 'w') as f:
    g = f.create_group('version_1/data/datacubes/datacube_000'); g['data'] = np.zeros((2,3,4,5), np.uint16)
    g['dim1'] = np.arange(7.0)
"#;
    let names = ["empty.h5", "rank3.h5", "float.h5", "lying.h5"];
    let paths: Vec<PathBuf> = names.iter().map(|n| t.join(n)).collect();
    let Some((python, _)) = peer_python() else { return };
    run_py(&python, code, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    let msgs: Vec<String> = [0, 1, 3]
        .iter()
        .map(|&i| EmdDataset::open(&paths[i], &OpenOptions::default()).err().expect("must fail").to_string())
        .collect();
    assert!(msgs[0].contains("empty.h5") && msgs[0].contains("no 4D datacube"), "{}", msgs[0]);
    assert!(msgs[1].contains("rank3.h5") && msgs[1].contains("expected 4 dimensions"), "{}", msgs[1]);
    assert!(msgs[2].contains("lying.h5") && msgs[2].contains("dim1 has 7 entries"), "{}", msgs[2]);
    // a float datacube is not bad input: it opens like an integer one (read as scaled counts)
    let float = EmdDataset::open(&paths[2], &OpenOptions::default()).expect("a float32 datacube opens");
    let scan = &float.info().scan;
    assert_eq!((scan.rows, scan.cols), (2, 3));
}

#[test]
fn killed_conversion_never_looks_complete_and_rerun_works() {
    let tmp = TempDir::new().unwrap();
    // ~800 MB uncompressed 512x512 u16 frames: direct writes convert it in about a second here
    let spec = SynthSpec { rows: 40, cols: 40, det: 512, depth: 12, ..Default::default() };
    let mib = synth(tmp.path(), "k.mib", &spec);
    let out = tmp.path().join("k.emd");
    let part = convert::part_path(&out);
    let mut child = command()
        .args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    // the layout is flushed (the file then has its full allocated size) before any chunk
    let laid_out = || std::fs::metadata(&part).is_ok_and(|m| m.len() > 1 << 20);
    while !laid_out() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(part.exists(), "the conversion never created its temporary file");
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(!st.success(), "the conversion finished before it was killed; make the test file bigger");
    assert!(!out.exists(), "a killed conversion must not leave {}", out.display());
    // the partial file, opened directly, is refused
    if part.exists() {
        // even renamed to .emd by hand, the partial file is refused
        let copy = tmp.path().join("renamed.emd");
        std::fs::copy(&part, &copy).unwrap();
        let o = command().args(["info", copy.to_str().unwrap()]).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains("incomplete") || err.contains("HDF5"), "{err}");
    }
    // a second run replaces the partial file and produces a correct file
    let o = command().args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("MiB/s"));
    assert!(!part.exists());
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    for p in [0, 399, 799] {
        assert_eq!(e.frame_u32(p).unwrap(), synth::expected_frame(&spec, p), "position {p}");
    }
    let o = command().args(["info", out.to_str().unwrap(), "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(v["caches"].as_array().unwrap().len(), 7);
    assert!(v["caches"].as_array().unwrap().iter().all(|c| c["valid"] == true));
}

#[test]
fn disk_full_gives_clear_error_and_leaves_no_complete_file() {
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 8, cols: 16, ..Default::default() }; // 16 MiB of u16 frames
    let mib = synth(tmp.path(), "d.mib", &spec);
    // injected write failure
    let out = tmp.path().join("d.emd");
    let o = command()
        .env("EMDTUI_FAIL_WRITE_AFTER", "5000000")
        .args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("injected write failure") && err.contains("d.emd"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear error line: {err}");
    assert!(!out.exists() && !convert::part_path(&out).exists());
    // the input is untouched and a normal run still works
    let o = command().args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // a real small filesystem (root only): refused up front, and a real ENOSPC mid-way
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("note: cannot mount a tmpfs here (not root?); only the injected failure was tested");
        return;
    }
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.clone());
    let out = mnt.join("d.emd");
    let o = command().args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("not enough free disk space") && err.contains("needs about"), "{err}");
    assert!(!out.exists());
    let o = command()
        .env("EMDTUI_NO_SPACE_CHECK", "1")
        .args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("disk is full") && err.contains("d.emd"), "{err}");
    assert!(!out.exists() && !convert::part_path(&out).exists(), "partial output must be removed");
    // the filesystem is usable again
    std::fs::write(mnt.join("after"), b"ok").unwrap();
}

/// Helper run as a child process by `two_processes_lock_and_read_while_writing`.
#[test]
fn child_cache_writer() {
    let Some(path) = std::env::var_os("EMDTUI_TEST_CHILD_EMD") else { return };
    let path = PathBuf::from(path);
    let f = EmdFile::open(&path).unwrap();
    let ov = f.read_overviews().unwrap().unwrap();
    {
        let _l = emdtui::format::h5::lock_exclusive(&path, std::time::Duration::ZERO, &|_| {}).unwrap();
        println!("LOCKED");
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    for _ in 0..15 {
        f.write_overviews(&ov).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    println!("DONE");
}

#[test]
fn two_processes_lock_and_read_while_writing() {
    use std::io::BufRead;
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 6, cols: 8, ..Default::default() };
    let mib = synth(tmp.path(), "l.mib", &spec);
    let out = tmp.path().join("l.emd");
    convert_file(&mib, &out, &opts());
    let reader = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_cache_writer", "--nocapture", "--test-threads=1"])
        .env("EMDTUI_TEST_CHILD_EMD", &out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines.next().expect("child ended early").unwrap();
        if l.contains("LOCKED") {
            break;
        }
    }
    // a second writer is told who holds the file
    let err = emdtui::format::h5::lock_exclusive(&out, std::time::Duration::ZERO, &|_| {}).err().unwrap().to_string();
    assert!(err.contains(&format!("pid {}", child.id())) && err.contains("another emdtui process"), "{err}");
    // a second conversion to the same output is refused with the same message
    let o =
        command().args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap(), "--force"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("being written by another emdtui process"));
    // while the child writes caches, this process keeps browsing frames and listing caches
    let f = EmdFile::open(&out).unwrap();
    let mut reads = 0;
    while child.try_wait().unwrap().is_none() {
        let p = reads % 48;
        assert_eq!(reader.frame_u32(p).unwrap(), synth::expected_frame(&spec, p));
        let list = f.list_caches().unwrap();
        assert_eq!(list.len(), 7);
        assert!(list.iter().all(|c| c.valid));
        reads += 1;
    }
    assert!(child.wait().unwrap().success(), "the child writer failed");
    assert!(reads > 0);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l.contains("DONE")), "{rest:?}");
    assert_eq!(f.log().unwrap().len(), 16);
    assert!(f.read_overviews().unwrap().is_some());
}

#[test]
fn truncated_acquisition_converts_with_empty_positions() {
    let tmp = TempDir::new().unwrap();
    let spec = SynthSpec { rows: 4, cols: 5, frames: Some(13), ..Default::default() };
    let mib = synth(tmp.path(), "t.mib", &spec);
    let out = tmp.path().join("t.emd");
    let ds = convert_file(&mib, &out, &opts());
    assert_eq!((ds.scan().rows, ds.scan().cols, ds.positions_present()), (4, 5, 13));
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    let b = all_frames(&e);
    assert_eq!(b, all_frames(&ds));
    assert!(b[13 * 65536..].iter().all(|&v| v == 0));
    let ov = EmdFile::open(&out).unwrap().read_overviews().unwrap().unwrap();
    assert_eq!(ov.positions_done, 13);
    assert!(ov.sum[..13].iter().all(|v| *v > 0.0) && ov.sum[13..].iter().all(|v| v.is_nan()));
}

#[test]
fn emd_to_emd_conversion_keeps_scaled_calibration() {
    let tmp = TempDir::new().unwrap();
    let ex = tmp.path().join("ex.emd");
    let Some((python, checker)) = peer_python() else { return };
    let o = Command::new(python).arg(checker).arg("--write-example").arg(&ex).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = dataset::open(&ex, &OpenOptions::default()).unwrap();
    let out = tmp.path().join("ex2.emd");
    let co = ConvertOptions { bin_detector: 2, bin_scan: 2, ..opts() };
    convert::convert(src.as_ref(), &out, &co, &Progress::new("t", 0)).unwrap();
    assert_eq!(emd::calibration(&ex), Some((2.5, "nm".into(), 0.1, "A^-1".into())));
    let (r, ru, q, qu) = emd::calibration(&out).unwrap();
    assert!((r - 5.0).abs() < 1e-9 && ru == "nm" && (q - 0.2).abs() < 1e-9 && qu == "A^-1", "{r} {ru} {q} {qu}");
    let e = EmdDataset::open(&out, &OpenOptions::default()).unwrap();
    assert_eq!(e.shape, [4, 3, 16, 12]);
    let a = all_frames(src.as_ref());
    let b = all_frames(&e);
    // position (1, 2) of the output = sum of input positions (2..4, 4..6), each binned 2x2
    let mut want = vec![0u32; 16 * 12];
    for (sr, sc) in [(2, 4), (2, 5), (3, 4), (3, 5)] {
        let f = &a[(sr * 6 + sc) * 32 * 24..][..32 * 24];
        for y in 0..32 {
            for x in 0..24 {
                want[(y / 2) * 12 + x / 2] += f[y * 24 + x];
            }
        }
    }
    assert_eq!(&b[5 * 192..6 * 192], want.as_slice());
}
