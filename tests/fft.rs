//! Chunked out-of-core 4D FFT: accuracy against an in-memory reference, cancel/kill + resume,
//! cache validation and accessors.

mod common;

use common::command;
use emdtui::compute::fft::{self, FftAxes, FftParams, Part, RunOptions};
use emdtui::dataset::{Dataset, FrameBuf, MibDataset, OpenOptions, ReadScratch};
use emdtui::format::synth::SynthSpec;
use emdtui::jobs::Progress;
use emdtui::store::fft::{self as fft_cache, FftCache};
use num_complex::{Complex32, Complex64};
use std::path::Path;

fn make(dir: &Path, name: &str, rows: usize, cols: usize) -> MibDataset {
    let spec = SynthSpec { rows, cols, seed: (rows * 31 + cols) as u64, ..Default::default() };
    let p = common::synth(dir, &format!("{name}.mib"), &spec);
    MibDataset::open(&p, &OpenOptions { scan: Some((rows, cols)), ..Default::default() }).unwrap()
}

/// In-memory reference: crop/bin every frame, FFT (f64) over the scan axes (and detector axes
/// for All), fftshift those axes. Shape (Ry, Rx, Kr, Kc).
fn reference(ds: &dyn Dataset, det_box: [usize; 4], bin: usize, axes: FftAxes) -> (Vec<Complex64>, [usize; 4]) {
    let (ry, rx) = (ds.scan().rows, ds.scan().cols);
    let (_, dc) = ds.det();
    let [y0, x0, h, w] = det_box;
    let (kr, kc) = (h / bin, w / bin);
    let shape = [ry, rx, kr, kc];
    let mut a = vec![Complex64::default(); ry * rx * kr * kc];
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    let mut rs = ReadScratch::default();
    for p in 0..ry * rx {
        ds.read_positions(p, 1, &mut buf, &mut rs).unwrap();
        let f = buf.to_u32();
        for y in 0..kr * bin {
            for x in 0..kc * bin {
                a[p * kr * kc + (y / bin) * kc + x / bin].re += f[(y0 + y) * dc + x0 + x] as f64;
            }
        }
    }
    let ax: &[usize] = if axes == FftAxes::All { &[0, 1, 2, 3] } else { &[0, 1] };
    for &axis in ax {
        fft_axis_shift(&mut a, shape, axis);
    }
    (a, shape)
}

fn fft_axis_shift(a: &mut [Complex64], shape: [usize; 4], axis: usize) {
    let n = shape[axis];
    let stride: usize = shape[axis + 1..].iter().product();
    let plan = rustfft::FftPlanner::<f64>::new().plan_fft_forward(n);
    let mut line = vec![Complex64::default(); n];
    let total: usize = shape.iter().product();
    for base in 0..total {
        if !(base / stride).is_multiple_of(n) {
            continue;
        }
        for i in 0..n {
            line[i] = a[base + i * stride];
        }
        plan.process(&mut line);
        for i in 0..n {
            a[base + ((i + n / 2) % n) * stride] = line[i];
        }
    }
}

fn read_all(emd: &Path) -> Vec<Complex32> {
    let f = emdtui::format::h5::open_ro(emd).unwrap();
    f.dataset("/emdtui/cache/fft_complex/data").unwrap().read_raw::<Complex32>().unwrap()
}

fn rel_l2(got: &[Complex32], want: &[Complex64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut e, mut s) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        let g = Complex64::new(g.re as f64, g.im as f64);
        e += (g - w).norm_sqr();
        s += w.norm_sqr();
    }
    (e / s).sqrt()
}

/// Many small groups through the resumable scratch-file path (small data would fit in memory).
fn small_opts() -> RunOptions {
    RunOptions { max_tiles_per_group: Some(2), chunk: Some([2, 3, 4, 5]), scratch_on_disk: true, ..Default::default() }
}

const SMALL_BUDGET: u64 = 8 << 20;

#[test]
fn chunked_equals_reference_fft() {
    let dir = tempfile::tempdir().unwrap();
    // (scan rows, cols, crop, bin, axes)
    type Case = (usize, usize, Option<((f32, f32), f32)>, usize, FftAxes);
    let cases: Vec<Case> = vec![
        (6, 5, Some(((127.5, 127.5), 9.0)), 1, FftAxes::Scan), // even x odd, cropped
        (7, 9, Some(((120.0, 131.0), 12.3)), 2, FftAxes::Scan), // odd x odd, off-centre crop, binned
        (5, 7, None, 1, FftAxes::Scan),                        // full 256x256 detector
        (8, 6, Some(((127.5, 127.5), 10.0)), 1, FftAxes::All), // 4-D, cropped
        (4, 3, None, 4, FftAxes::All),                         // 4-D, full detector binned 4
        (5, 7, Some(((127.7, 127.2), 9.0)), 1, FftAxes::All),  // 4-D, odd x even K, odd x odd Q
        (7, 4, Some(((127.7, 127.7), 9.0)), 1, FftAxes::All),  // 4-D, odd x odd K
    ];
    for (i, (r, c, crop, bin, axes)) in cases.into_iter().enumerate() {
        let ds = make(dir.path(), &format!("d{i}"), r, c);
        let emd = dir.path().join(format!("d{i}.emd"));
        let params = FftParams { axes, crop, bin };
        let rep = fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts()).unwrap();
        assert!(rep.pass2_groups >= 3, "case {i}: only {} groups", rep.pass2_groups);
        // every frame read once, whole
        let frame = ds.frame_pixels() * ds.info().pixel_type.bytes();
        assert_eq!(rep.input_bytes_read, (r * c * frame) as u64, "case {i}");
        assert_eq!(rep.blocks_computed, rep.blocks_total);
        let cache = FftCache::open_validated(&emd, &ds.fingerprint()).unwrap();
        let (want, shape) = reference(&ds, cache.det_box, bin, axes);
        assert_eq!(cache.shape, shape, "case {i}");
        if crop.is_none() {
            assert_eq!(cache.det_box, [0, 0, 256, 256]);
        }
        let got = read_all(&emd);
        let err = rel_l2(&got, &want);
        assert!(err < 1e-4, "case {i} ({r}x{c}, {crop:?}, bin {bin}, {axes:?}): relative L2 error {err}");
        // power map = sum_K |G|^2
        let pm = cache.power_map().unwrap();
        let kp = shape[2] * shape[3];
        for q in [0, shape[0] * shape[1] / 2, shape[0] * shape[1] - 1] {
            let w: f64 = want[q * kp..(q + 1) * kp].iter().map(|v| v.norm_sqr()).sum();
            assert!(((pm[q] as f64) - w).abs() <= 1e-4 * w.max(1.0), "case {i} power at {q}: {} vs {w}", pm[q]);
        }
        // Q = 0 of the scan FFT is the sum over the scan: real and at the centre
        if axes == FftAxes::Scan {
            let (oy, ox) = cache.q_origin();
            let img = cache.detector_image((oy, ox), 0, Part::Imag).unwrap();
            assert!(img.iter().all(|v| v.abs() < 1e-2));
        }
        drop(cache);
        assert!(!fft::scratch_paths(&emd).0.exists(), "scratch left behind");
    }
}

#[test]
fn default_chunking_and_budget_many_blocks() {
    // default chunk choice, budget-driven grouping only
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "b", 16, 12);
    let emd = dir.path().join("b.emd");
    let params = FftParams { axes: FftAxes::Scan, crop: None, bin: 2 };
    let rep = fft::compute(&ds, &emd, &params, 3 << 20, &Progress::new("t", 0)).unwrap();
    assert!(rep.pass2_groups > 1, "budget did not force blocks: {rep:?}");
    // default chunks are 128 KiB: written with O_DIRECT at the addresses HDF5 allocated
    assert_eq!(rep.output_io, "direct", "{rep:?}");
    let cache = FftCache::open(&emd).unwrap();
    let (want, _) = reference(&ds, cache.det_box, 2, FftAxes::Scan);
    let got = read_all(&emd);
    let err = rel_l2(&got, &want);
    assert!(err < 1e-4, "error {err}");
    // the same through HDF5's buffered chunk writes: bit-identical
    let emd_b = dir.path().join("b_buffered.emd");
    let opts = RunOptions { buffered_output: true, ..Default::default() };
    let rep_b = fft::compute_with(&ds, &emd_b, &params, 3 << 20, &Progress::new("t", 0), &opts).unwrap();
    assert!(rep_b.output_io.starts_with("buffered"), "{rep_b:?}");
    assert!(read_all(&emd_b) == got, "direct and buffered outputs differ");
    drop(cache); // HDF5 cannot open a file read-write while this process has it open read-only
    // a second run finds the complete cache and does nothing
    let rep2 = fft::compute(&ds, &emd, &params, 3 << 20, &Progress::new("t", 0)).unwrap();
    assert!(rep2.already_complete);
}

#[test]
fn accessors_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "a", 9, 8);
    let emd = dir.path().join("a.emd");
    let params = FftParams { axes: FftAxes::Scan, crop: Some(((127.5, 127.5), 8.0)), bin: 1 };
    fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts()).unwrap();
    let cache = FftCache::open(&emd).unwrap();
    let (want, s) = reference(&ds, cache.det_box, 1, FftAxes::Scan);
    let [qr, qc, kr, kc] = s;
    let at = |a: usize, b: usize, c: usize, d: usize| want[((a * qc + b) * kr + c) * kc + d];
    let close = |x: f32, y: f64, scale: f64| (x as f64 - y).abs() <= 1e-4 * scale.max(1.0);
    // fixed Q, averaged over a 3x3 Q region (clipped at the edge for q = (0, 1))
    for (q, half) in [((3usize, 5usize), 1usize), ((0, 1), 1), ((4, 4), 0)] {
        let (a0, a1) = (q.0.saturating_sub(half), (q.0 + half + 1).min(qr));
        let (b0, b1) = (q.1.saturating_sub(half), (q.1 + half + 1).min(qc));
        let m = ((a1 - a0) * (b1 - b0)) as f64;
        for part in [Part::Amp, Part::Phase, Part::Real, Part::Imag] {
            let img = cache.detector_image(q, half, part).unwrap();
            assert_eq!(img.len(), kr * kc);
            for (i, &v) in img.iter().enumerate() {
                let (y, x) = (i / kc, i % kc);
                let mut sum = Complex64::default();
                let mut amp = 0.0;
                for a in a0..a1 {
                    for b in b0..b1 {
                        sum += at(a, b, y, x);
                        amp += at(a, b, y, x).norm();
                    }
                }
                let (w, scale) = match part {
                    Part::Amp => (amp / m, amp / m),
                    Part::Real => (sum.re / m, sum.norm() / m),
                    Part::Imag => (sum.im / m, sum.norm() / m),
                    Part::Phase => {
                        if sum.norm() / m < 1e-2 * (amp / m).max(1.0) {
                            continue; // phase of ~0 is undefined
                        }
                        let d = (v as f64 - sum.arg()).rem_euclid(std::f64::consts::TAU);
                        assert!(d.min(std::f64::consts::TAU - d) < 1e-3, "phase at {q:?} {i}");
                        continue;
                    }
                };
                assert!(close(v, w, scale), "{part:?} at Q {q:?} K {i}: {v} vs {w}");
            }
        }
    }
    // fixed K, averaged over a K region
    for (k, half) in [((2usize, 3usize), 1usize), ((kr / 2, kc / 2), 0)] {
        let (a0, a1) = (k.0.saturating_sub(half), (k.0 + half + 1).min(kr));
        let (b0, b1) = (k.1.saturating_sub(half), (k.1 + half + 1).min(kc));
        let m = ((a1 - a0) * (b1 - b0)) as f64;
        let amp_img = cache.q_image(k, half, Part::Amp).unwrap();
        let re_img = cache.q_image(k, half, Part::Real).unwrap();
        assert_eq!(amp_img.len(), qr * qc);
        for i in 0..qr * qc {
            let (a, b) = (i / qc, i % qc);
            let mut sum = Complex64::default();
            let mut amp = 0.0;
            for y in a0..a1 {
                for x in b0..b1 {
                    sum += at(a, b, y, x);
                    amp += at(a, b, y, x).norm();
                }
            }
            assert!(close(amp_img[i], amp / m, amp / m), "amp Q image at {i}");
            assert!(close(re_img[i], sum.re / m, sum.norm() / m), "real Q image at {i}");
        }
    }
    assert!(cache.detector_image((qr, 0), 0, Part::Amp).is_err());
    assert!(cache.q_image((0, kc), 0, Part::Amp).is_err());
}

#[test]
fn cancel_midway_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "c", 10, 7);
    let emd = dir.path().join("c.emd");
    let params = FftParams { axes: FftAxes::Scan, crop: Some(((127.5, 127.5), 10.0)), bin: 1 };
    let opts = RunOptions { cancel_after_groups: Some(3), ..small_opts() };
    let r = fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &opts);
    assert!(matches!(r, Err(emdtui::Error::Cancelled)), "{:?}", r.err());
    // the partial cache is never valid
    let e = FftCache::open(&emd).err().expect("partial cache opened as valid");
    assert!(e.to_string().contains("incomplete"), "{e}");
    assert!(matches!(FftCache::status(&emd, None), fft_cache::CacheStatus::Incomplete(6, _)));
    // resume: only the remaining blocks are computed
    let rep = fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts()).unwrap();
    assert_eq!(rep.blocks_resumed, 6);
    assert_eq!(rep.blocks_computed, rep.blocks_total - 6);
    assert_eq!(rep.pass1_positions_resumed, 70, "pass 1 should not be redone");
    let cache = FftCache::open_validated(&emd, &ds.fingerprint()).unwrap();
    let (want, _) = reference(&ds, cache.det_box, 1, FftAxes::Scan);
    let err = rel_l2(&read_all(&emd), &want);
    assert!(err < 1e-4, "error after resume {err}");
    let pm = cache.power_map().unwrap();
    let kp = cache.shape[2] * cache.shape[3];
    let w: f64 = want[..kp].iter().map(|v| v.norm_sqr()).sum();
    assert!(((pm[0] as f64) - w).abs() <= 1e-4 * w, "power after resume");
}

#[test]
fn four_d_cancel_midway_then_resume() {
    // the 4-D transform stores half the spectrum: a unit completes a tile and its mirror tile
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "c4", 6, 5);
    let emd = dir.path().join("c4.emd");
    let params = FftParams { axes: FftAxes::All, crop: Some(((127.5, 127.5), 10.0)), bin: 1 };
    let opts = RunOptions { cancel_after_groups: Some(3), ..small_opts() };
    let r = fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &opts);
    assert!(matches!(r, Err(emdtui::Error::Cancelled)), "{:?}", r.err());
    let rep = fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts()).unwrap();
    // three groups of at most two units, each unit two tiles
    assert_eq!(rep.blocks_resumed, 12, "{rep:?}");
    assert_eq!(rep.blocks_computed, rep.blocks_total - 12);
    assert_eq!(rep.pass1_positions_resumed, 30, "pass 1 should not be redone");
    // the scratch held less than the whole 22 x 22 detector spectrum (4 x 5 tiles do not
    // line up with their mirrors; the unit tests check the usual sizes store about half)
    let full = (30 * 22 * 22 * 8) as u64;
    assert!(rep.scratch_bytes < full * 85 / 100, "scratch {} of {full}", rep.scratch_bytes);
    let cache = FftCache::open_validated(&emd, &ds.fingerprint()).unwrap();
    let (want, _) = reference(&ds, cache.det_box, 1, FftAxes::All);
    let err = rel_l2(&read_all(&emd), &want);
    assert!(err < 1e-4, "error after resume {err}");
    let pm = cache.power_map().unwrap();
    let kp = cache.shape[2] * cache.shape[3];
    for q in [0, 7, 29] {
        let w: f64 = want[q * kp..(q + 1) * kp].iter().map(|v| v.norm_sqr()).sum();
        assert!(((pm[q] as f64) - w).abs() <= 1e-4 * w, "power at {q} after resume: {} vs {w}", pm[q]);
    }
}

#[test]
fn stale_and_changed_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "s", 6, 6);
    let emd = dir.path().join("s.emd");
    assert!(FftCache::open(&emd).is_err());
    let p1 = FftParams { axes: FftAxes::Scan, crop: Some(((127.5, 127.5), 6.0)), bin: 1 };
    fft::compute(&ds, &emd, &p1, 64 << 20, &Progress::new("t", 0)).unwrap();
    FftCache::open_validated(&emd, &ds.fingerprint()).unwrap();
    let e = FftCache::open_validated(&emd, "some other data").err().unwrap();
    assert!(e.to_string().contains("stale"), "{e}");
    // other parameters replace the cache
    let p2 = FftParams { axes: FftAxes::All, crop: Some(((127.5, 127.5), 6.0)), bin: 2 };
    let rep = fft::compute(&ds, &emd, &p2, 64 << 20, &Progress::new("t", 0)).unwrap();
    assert!(!rep.already_complete && rep.blocks_resumed == 0);
    let c = FftCache::open(&emd).unwrap();
    assert_eq!(c.params, p2);
    // nothing outside /emdtui was created
    let f = emdtui::format::h5::open_ro(&emd).unwrap();
    assert_eq!(f.member_names().unwrap(), vec!["emdtui".to_string()]);
}

#[test]
fn sigkill_midway_then_resume_via_cli() {
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "k", 12, 10);
    let mib = dir.path().join("k.mib");
    let emd = dir.path().join("k.emd");
    let (_, state) = fft::scratch_paths(&emd);
    let mut child = command()
        .args(["fft", mib.to_str().unwrap(), "--crop", "full", "--bin", "4", "--memory", "4M", "--scan", "12x10"])
        .env("EMDTUI_FFT_GROUP_DELAY_MS", "150")
        .env("EMDTUI_FFT_SCRATCH_ON_DISK", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until pass 2 has completed some blocks, then SIGKILL
    let t0 = std::time::Instant::now();
    loop {
        let tiles = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["tiles_done"].as_u64())
            .unwrap_or(0);
        if tiles >= 2 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "child finished before it could be killed");
        assert!(t0.elapsed().as_secs() < 120, "child made no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid; no memory is involved
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let e = FftCache::open(&emd).err().expect("killed run left a valid-looking cache");
    assert!(e.to_string().contains("incomplete"), "{e}");
    let done_before = match FftCache::status(&emd, None) {
        fft_cache::CacheStatus::Incomplete(d, t) => {
            assert!(d >= 2 && d < t, "{d}/{t}");
            d
        }
        s => panic!("{s:?}"),
    };
    let out = command()
        .args(["fft", mib.to_str().unwrap(), "--crop", "full", "--bin", "4", "--memory", "4M", "--scan", "12x10"])
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(so.contains(&format!("{done_before} resumed")), "{so}");
    // the resumed run wrote its chunks with O_DIRECT next to the killed run's
    assert!(so.contains("output writes: direct"), "{so}");
    // `emdtui fft X.mib` converts first: the cache belongs to the EMD's datacube
    assert!(so.contains("resumed") && so.contains("blocks"), "{so}");
    let emd_fp = emdtui::dataset::open(&emd, &Default::default()).unwrap().fingerprint();
    let cache = FftCache::open_validated(&emd, &emd_fp).unwrap();
    assert!(FftCache::open_validated(&emd, &ds.fingerprint()).is_err(), "the .mib is not the cache's source");
    let (want, _) = reference(&ds, cache.det_box, 4, FftAxes::Scan);
    let err = rel_l2(&read_all(&emd), &want);
    assert!(err < 1e-4, "error after kill + resume {err}");
    // export a slice through the CLI
    let npy = dir.path().join("q.npy");
    let st = command()
        .args(["export", emd.to_str().unwrap(), "--fft-q", "-1,2", "--part", "phase", "-o", npy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let arr: ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
    let (oy, ox) = cache.q_origin();
    assert_eq!(arr.as_slice().unwrap(), cache.detector_image((oy - 1, ox + 2), 0, Part::Phase).unwrap().as_slice());
    let tif = dir.path().join("k.tiff");
    let st = command()
        .args(["export", emd.to_str().unwrap(), "--fft-k", "3,4", "--part", "real", "-o", tif.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success() && tif.exists());
    let png = dir.path().join("k.png");
    let st = command()
        .args(["export", emd.to_str().unwrap(), "--fft-q", "0,0", "--part", "phase", "-o", png.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success() && png.exists());
    // clear errors, no output
    for (args, msg) in [
        (vec!["--fft-q", "100,0"], "outside the Q range"),
        (vec!["--fft-k", "64,0"], "outside the stored"),
        (vec!["--fft-q", "0,0", "--part", "bogus"], "--part"),
    ] {
        let bad = dir.path().join("bad.npy");
        let out = command()
            .args(["export", emd.to_str().unwrap()])
            .args(&args)
            .args(["-o", bad.to_str().unwrap()])
            .output()
            .unwrap();
        let se = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && se.contains(msg), "{args:?}: {se}");
        assert!(!bad.exists());
    }
}

#[test]
fn real_files_match_reference() {
    let root = common::testdata_dir().join("rosettasciio");
    if !root.exists() {
        eprintln!("skipped: real test files not found at {} (set EMDTUI_TESTDATA)", root.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bin, axes) in [
        ("Quad_9_Frame_CounterDepth_12_Rows_256.mib", 2, FftAxes::Scan), // u16, quad 512x512
        ("Single_9_Frame_CounterDepth_24_Rows_256.mib", 1, FftAxes::Scan), // u32 -> f32 scratch
        ("001_4x2_6bit.mib", 4, FftAxes::All),                           // 4x2 scan from the .hdr
    ] {
        let ds = MibDataset::open(&root.join(name), &OpenOptions::default()).unwrap();
        let emd = dir.path().join(format!("{name}.emd"));
        let params = FftParams { axes, crop: None, bin };
        fft::compute_with(&ds, &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts()).unwrap();
        let cache = FftCache::open_validated(&emd, &ds.fingerprint()).unwrap();
        let (want, shape) = reference(&ds, cache.det_box, bin, axes);
        assert_eq!(cache.shape, shape, "{name}");
        let err = rel_l2(&read_all(&emd), &want);
        assert!(err < 1e-4, "{name}: relative L2 error {err}");
    }
}

#[test]
fn scratch_in_memory_when_it_fits_gives_the_same_cache() {
    let dir = tempfile::tempdir().unwrap();
    let ds = make(dir.path(), "m", 9, 8);
    let params = FftParams { axes: FftAxes::All, crop: Some(((127.5, 127.5), 12.0)), bin: 1 };
    let disk = dir.path().join("disk.emd");
    let opts = RunOptions { scratch_on_disk: true, ..Default::default() };
    let rd = fft::compute_with(&ds, &disk, &params, 64 << 20, &Progress::new("t", 0), &opts).unwrap();
    assert!(!rd.scratch_in_memory && rd.scratch_bytes_written > 0);
    let mem = dir.path().join("mem.emd");
    let (scratch, state) = fft::scratch_paths(&mem);
    let rm = fft::compute_with(&ds, &mem, &params, 64 << 20, &Progress::new("t", 0), &RunOptions::default()).unwrap();
    assert!(rm.scratch_in_memory, "a small scratch stays in memory");
    assert_eq!((rm.scratch_bytes_written, rm.scratch_bytes_read), (0, 0), "no scratch IO");
    assert!(!scratch.exists() && !state.exists());
    assert_eq!(read_all(&mem), read_all(&disk), "same transform either way");
    // more than half the budget: a scratch file again
    let big = dir.path().join("big.emd");
    let budget = rm.scratch_bytes * 9 / 8;
    let r = fft::compute_with(&ds, &big, &params, budget, &Progress::new("t", 0), &RunOptions::default()).unwrap();
    assert!(!r.scratch_in_memory, "scratch {} with a budget of {budget}", r.scratch_bytes);
    assert!(r.scratch_bytes_written > 0);
    // the smaller budget may choose smaller K tiles, so other tiles come from the symmetry:
    // equal to rounding, not bit for bit
    let (b, d) = (read_all(&big), read_all(&disk));
    let err: f64 = b.iter().zip(&d).map(|(x, y)| ((x - y).norm_sqr()) as f64).sum::<f64>().sqrt()
        / d.iter().map(|y| y.norm_sqr() as f64).sum::<f64>().sqrt();
    assert!(b.len() == d.len() && err < 1e-6, "relative L2 difference {err}");
}

#[test]
fn pixels_read_from_the_mib_an_emd_was_converted_from() {
    use emdtui::compute::convert::ConvertOptions;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let src: Arc<dyn Dataset> = Arc::new(make(dir.path(), "p", 9, 8));
    let emd = dir.path().join("p.emd");
    emdtui::ops::convert::convert(src.as_ref(), &emd, &ConvertOptions::default(), &Progress::new("t", 0)).unwrap();
    let copy = dir.path().join("copy.emd");
    std::fs::copy(&emd, &copy).unwrap();
    let emd_ds = emdtui::dataset::open(&emd, &Default::default()).unwrap();
    let pixels = emdtui::ops::fft::pixel_source(&src, &emd, emd_ds.as_ref());
    assert!(pixels.is_some(), "a plain conversion holds the .mib's pixels");
    let params = FftParams { axes: FftAxes::All, crop: Some(((127.5, 127.5), 12.0)), bin: 1 };
    let run = |ds: &dyn Dataset, out: &Path, pixels| {
        let opts = RunOptions { pixels, ..small_opts() };
        fft::compute_with(ds, out, &params, SMALL_BUDGET, &Progress::new("t", 0), &opts).unwrap()
    };
    let r = run(emd_ds.as_ref(), &emd, pixels);
    assert_eq!(r.pixels_from.as_deref(), Some(src.info().path.as_path()));
    assert_eq!(r.input_bytes_read, (9 * 8 * 256 * 256 * 2) as u64);
    drop(emd_ds);
    let copy_ds = emdtui::dataset::open(&copy, &Default::default()).unwrap();
    let rc = run(copy_ds.as_ref(), &copy, None);
    assert_eq!(rc.pixels_from.as_deref(), Some(copy.as_path()));
    assert_eq!(read_all(&emd), read_all(&copy), "the same transform from either file");
    // the cache belongs to the EMD's datacube whichever file was read
    let fp = emdtui::dataset::open(&emd, &Default::default()).unwrap().fingerprint();
    FftCache::open_validated(&emd, &fp).unwrap();

    // a pixel source of another shape is not used
    let other: Arc<dyn Dataset> = Arc::new(make(dir.path(), "o", 8, 9));
    let e2 = dir.path().join("e2.emd");
    std::fs::copy(&copy, &e2).unwrap();
    let e2_ds = emdtui::dataset::open(&e2, &Default::default()).unwrap();
    let params2 = FftParams { axes: FftAxes::Scan, ..params.clone() };
    let opts = RunOptions { pixels: Some(fft::PixelSource(other.clone())), ..small_opts() };
    let r2 = fft::compute_with(e2_ds.as_ref(), &e2, &params2, SMALL_BUDGET, &Progress::new("t", 0), &opts).unwrap();
    assert_eq!(r2.pixels_from.as_deref(), Some(e2.as_path()));
    assert!(emdtui::ops::fft::pixel_source(&other, &e2, e2_ds.as_ref()).is_none(), "not its conversion");

    // a binned conversion does not hold the .mib's pixels
    let binned = dir.path().join("b.emd");
    let copts = ConvertOptions { bin_detector: 2, ..Default::default() };
    emdtui::ops::convert::convert(src.as_ref(), &binned, &copts, &Progress::new("t", 0)).unwrap();
    let b_ds = emdtui::dataset::open(&binned, &Default::default()).unwrap();
    assert!(emdtui::ops::fft::pixel_source(&src, &binned, b_ds.as_ref()).is_none());
}

#[test]
fn pass1_alongside_the_conversion_is_taken_over() {
    use emdtui::compute::convert::ConvertOptions;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let src: Arc<dyn Dataset> = Arc::new(make(dir.path(), "a", 9, 8));
    let params = FftParams { axes: FftAxes::All, crop: Some(((127.5, 127.5), 12.0)), bin: 1 };
    let opts = small_opts();
    let emd = dir.path().join("a.emd");
    let (p, p1) = (Progress::new("c", 0), Progress::new("p1", 0));
    let pass1 = emdtui::ops::fft::Pass1Alongside { params: &params, budget: SMALL_BUDGET, progress: &p1, run: &opts };
    let (ds, _, key) =
        emdtui::ops::fft::ensure_emd_with_pass1(src.clone(), &emd, &ConvertOptions::default(), &p, &pass1).unwrap();
    let key = key.expect("pass 1 ran alongside the conversion");
    let (scratch, state) = fft::scratch_paths(&emd);
    assert!(scratch.exists() && state.exists());
    // the same call again (as after a kill) resumes the complete scratch instead of redoing it
    let mtime = || std::fs::metadata(&scratch).unwrap().modified().unwrap();
    let before = mtime();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = fft::pass1_ahead(src.as_ref(), &emd, &params, SMALL_BUDGET - SMALL_BUDGET / 4, &p1, &opts);
    assert_eq!(again.unwrap().as_deref(), Some(key.as_str()));
    assert_eq!(mtime(), before, "nothing rewritten");
    // a different FFT does not take it over
    let other = FftParams { axes: FftAxes::Scan, ..params.clone() };
    let copy = dir.path().join("copy.emd");
    std::fs::copy(&emd, &copy).unwrap();
    let copy_ds = emdtui::dataset::open(&copy, &Default::default()).unwrap();
    let r_other = fft::compute_with(
        copy_ds.as_ref(),
        &copy,
        &other,
        SMALL_BUDGET,
        &Progress::new("t", 0),
        &RunOptions { adopt_scratch: Some(key.clone()), ..small_opts() },
    )
    .unwrap();
    assert!(!r_other.pass1_alongside && r_other.input_bytes_read > 0);
    // the FFT it was made for skips pass 1 and gives the transform of a normal run
    let adopt = RunOptions { adopt_scratch: Some(key), ..small_opts() };
    let r = fft::compute_with(ds.as_ref(), &emd, &params, SMALL_BUDGET, &Progress::new("t", 0), &adopt).unwrap();
    assert!(r.pass1_alongside, "scratch taken over");
    assert_eq!((r.input_bytes_read, r.pass1_positions_resumed), (0, 9 * 8));
    assert!(!scratch.exists() && !state.exists(), "scratch removed when the cache is complete");
    let plain = dir.path().join("plain.emd");
    std::fs::copy(&copy, &plain).unwrap();
    let plain_ds = emdtui::dataset::open(&plain, &Default::default()).unwrap();
    let rp = fft::compute_with(plain_ds.as_ref(), &plain, &params, SMALL_BUDGET, &Progress::new("t", 0), &small_opts())
        .unwrap();
    assert!(!rp.pass1_alongside);
    assert_eq!(read_all(&emd), read_all(&plain), "the same transform");
    let (want, _) = reference(src.as_ref(), r.det_box, 1, FftAxes::All);
    assert!(rel_l2(&read_all(&emd), &want) < 1e-4);

    // a failed conversion (the output exists and is not to be overwritten) removes the scratch
    let bad = dir.path().join("b.emd");
    std::fs::write(&bad, b"not an EMD").unwrap();
    let p1 = Progress::new("p1", 0);
    let pass1 = emdtui::ops::fft::Pass1Alongside { params: &params, budget: SMALL_BUDGET, progress: &p1, run: &opts };
    let e = emdtui::ops::fft::ensure_emd_with_pass1(
        src.clone(),
        &bad,
        &ConvertOptions::default(),
        &Progress::new("c", 0),
        &pass1,
    );
    assert!(e.err().expect("refused").to_string().contains("already exists"));
    let (bs, bst) = fft::scratch_paths(&bad);
    assert!(!bs.exists() && !bst.exists());
}
