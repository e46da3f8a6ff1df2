//! Faults: SIGKILL at several points of convert and FFT jobs, a full disk during the FFT, a
//! read-only source, three processes on one EMD. Every test checks that the `.mib` it touched
//! kept its bytes and mtime.

mod common;

use common::command;
use emdtui::compute::fft;
use emdtui::dataset;
use emdtui::format::synth::{self, SynthSpec};
use emdtui::store::fft::FftCache;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bytes (hash) and mtime of a file, checked again on drop.
struct Untouched {
    path: PathBuf,
    hash: u64,
    mtime: std::time::SystemTime,
}

impl Untouched {
    fn new(path: &Path) -> Self {
        let b = std::fs::read(path).unwrap();
        Untouched {
            path: path.to_path_buf(),
            hash: xxhash_rust::xxh3::xxh3_64(&b),
            mtime: std::fs::metadata(path).unwrap().modified().unwrap(),
        }
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let b = std::fs::read(&self.path).unwrap();
        assert_eq!(xxhash_rust::xxh3::xxh3_64(&b), self.hash, "{} was modified", self.path.display());
        assert_eq!(
            std::fs::metadata(&self.path).unwrap().modified().unwrap(),
            self.mtime,
            "{} mtime changed",
            self.path.display()
        );
    }
}

fn synth(dir: &Path, name: &str, rows: usize, cols: usize) -> (PathBuf, SynthSpec) {
    let spec = SynthSpec { rows, cols, depth: 12, hdr: true, ..Default::default() };
    (common::synth(dir, name, &spec), spec)
}

fn run(args: &[&str]) -> std::process::Output {
    command().args(args).output().unwrap()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn sigkill_convert_at_several_points_then_restart() {
    let d = tempfile::tempdir().unwrap();
    let (mib, spec) = synth(d.path(), "k.mib", 48, 64); // 403 MB
    let _guard = Untouched::new(&mib);
    let out = d.path().join("k.emd");
    let part = emdtui::ops::convert::part_path(&out);
    let expected = (48 * 64 * 256 * 256 * 2) as u64;
    // kill when the partial output reaches these fractions of the datacube
    for frac in [0.0, 0.3, 0.8] {
        let mut child = command()
            .args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap(), "--compress"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let mut killed = false;
        while t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // compressed output is ~5x smaller than the datacube
            if part.exists() && (frac == 0.0 || file_len(&part) as f64 >= frac * expected as f64 / 8.0) {
                // SAFETY: kill(2) on our own child's pid; no memory is involved
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
        assert!(killed, "conversion finished before the kill at {frac}");
        assert!(!out.exists(), "a killed conversion left {} looking complete", out.display());
        // the leftover is refused even under the final name
        if part.exists() {
            let renamed = d.path().join("renamed.emd");
            std::fs::copy(&part, &renamed).unwrap();
            let o = run(&["info", renamed.to_str().unwrap()]);
            assert!(
                !o.status.success(),
                "an interrupted conversion was accepted: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            std::fs::remove_file(&renamed).unwrap();
        }
    }
    // a rerun restarts cleanly and is right
    let o = run(&["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!part.exists());
    let ds = dataset::open(&out, &Default::default()).unwrap();
    for pos in [0, 1000, 48 * 64 - 1] {
        assert_eq!(ds.frame_u32(pos).unwrap(), synth::expected_frame(&spec, pos), "position {pos}");
    }
}

/// Read the FFT cache datasets as raw bytes (for exact comparisons).
fn fft_bytes(emd: &Path) -> Vec<u8> {
    let f = emdtui::format::h5::open_ro(emd).unwrap();
    let d = f.dataset("emdtui/cache/fft_complex/data").unwrap();
    let v = d.read_raw::<num_complex::Complex32>().unwrap();
    v.iter().flat_map(|c| [c.re.to_le_bytes(), c.im.to_le_bytes()].concat()).collect()
}

#[test]
fn sigkill_fft_at_several_points_then_resume_to_the_same_result() {
    let d = tempfile::tempdir().unwrap();
    let (mib, spec) = synth(d.path(), "f.mib", 16, 20);
    let _guard = Untouched::new(&mib);
    let emd = d.path().join("f.emd");
    assert!(run(&["convert", mib.to_str().unwrap(), "-o", emd.to_str().unwrap()]).status.success());
    // the reference: the same FFT, uninterrupted, on a copy
    let refc = d.path().join("ref.emd");
    std::fs::copy(&emd, &refc).unwrap();
    let args = ["--crop", "full", "--bin", "4", "--memory", "4M"];
    let o = run(&[&["fft", refc.to_str().unwrap()][..], &args[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = fft_bytes(&refc);
    let (_, state) = fft::scratch_paths(&emd);
    let tiles = || -> u64 {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["tiles_done"].as_u64())
            .unwrap_or(0)
    };
    // kill: at once (pass 1), after 1 tile, after 5 tiles
    for at in [0u64, 1, 5] {
        let mut child = command()
            .args([&["fft", emd.to_str().unwrap()][..], &args[..]].concat())
            .env("EMDTUI_FFT_GROUP_DELAY_MS", "100")
            .env("EMDTUI_FFT_SCRATCH_ON_DISK", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            assert!(child.try_wait().unwrap().is_none(), "FFT finished before the kill at {at}");
            assert!(t0.elapsed() < Duration::from_secs(60));
            if (at == 0 && t0.elapsed() > Duration::from_millis(30)) || (at > 0 && tiles() >= at) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: kill(2) on our own child's pid; no memory is involved
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        // the EMD stays readable, its datacube intact, and the partial FFT is never valid
        let ds = dataset::open(&emd, &Default::default()).expect("EMD unreadable after a kill");
        assert_eq!(ds.frame_u32(17).unwrap(), synth::expected_frame(&spec, 17));
        assert!(FftCache::open(&emd).is_err(), "partial FFT taken as complete after a kill at {at}");
        let info = run(&["info", emd.to_str().unwrap()]);
        assert!(info.status.success());
        let text = String::from_utf8_lossy(&info.stdout);
        if let Some(l) = text.lines().find(|l| l.trim_start().starts_with("fft_complex")) {
            assert!(l.contains("STALE"), "{l}");
        }
    }
    let o = run(&[&["fft", emd.to_str().unwrap()][..], &args[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resumed"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(FftCache::open(&emd).is_ok());
    assert!(fft_bytes(&emd) == want, "resumed FFT differs from the uninterrupted one");
}

/// Mount a small tmpfs (root only); None when not permitted.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn new(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_for_the_fft_is_refused_clearly_and_the_emd_stays_valid() {
    let d = tempfile::tempdir().unwrap();
    let (mib, spec) = synth(d.path(), "s.mib", 8, 8); // 8.4 MB, one chunk per scan row
    let _guard = Untouched::new(&mib);
    let Some(fs) = Tmpfs::new(&d.path().join("small"), "20m") else {
        eprintln!("NOTE: cannot mount a tmpfs here (not root?); disk-full FFT test not run");
        return;
    };
    let emd = fs.0.join("s.emd");
    let o = run(&["convert", mib.to_str().unwrap(), "-o", emd.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // full detector: 64 positions x 256 x 256 x 8 bytes = 33.5 MB does not fit
    let o = run(&["fft", emd.to_str().unwrap(), "--crop", "full"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("s.emd") && err.contains("not enough free disk space"), "{err}");
    assert_eq!(err.trim().lines().filter(|l| l.contains("error")).count(), 1, "{err}");
    assert!(FftCache::open(&emd).is_err());
    let ds = dataset::open(&emd, &Default::default()).unwrap();
    assert_eq!(ds.frame_u32(63).unwrap(), synth::expected_frame(&spec, 63));
    let info = run(&["info", emd.to_str().unwrap()]);
    assert!(info.status.success());
    assert!(!String::from_utf8_lossy(&info.stdout).contains("STALE"), "{}", String::from_utf8_lossy(&info.stdout));
    // the bright-field crop fits: it works on the same small disk
    let o = run(&["fft", emd.to_str().unwrap(), "--crop", "bf"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // seen by this process although its reader handle predates the FFT
    if let Err(e) = FftCache::open(&emd) {
        panic!("{e}");
    }
    assert_eq!(ds.frame_u32(5).unwrap(), synth::expected_frame(&spec, 5));
}

#[test]
fn read_only_source_file_and_directory() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let (mib, spec) = synth(&src, "ro.mib", 6, 8);
    let _guard = Untouched::new(&mib);
    let ro = d.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = Command::new("mount").arg("--bind").arg(&src).arg(&ro).status().map(|s| s.success()).unwrap_or(false)
        && Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&ro)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = mounted.then(|| Unmount(ro.clone()));
    let dir = if mounted { ro.clone() } else { src.clone() };
    let m = dir.join("ro.mib");
    let mut perm = std::fs::metadata(&mib).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&mib, perm).unwrap();
    let cache = d.path().join("cache");
    let run_c = |args: &[&str]| command().args(args).env("EMDTUI_CACHE_DIR", &cache).output().unwrap();
    assert!(run_c(&["info", m.to_str().unwrap()]).status.success());
    let npy = d.path().join("sum.npy");
    let o = run_c(&["overview", m.to_str().unwrap(), "-o", npy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the overview cache went to the cache directory, nothing next to the .mib
    assert!(
        std::fs::read_dir(&cache).map(|r| r.count() > 0).unwrap_or(false),
        "no cache written to the cache directory"
    );
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    if mounted {
        // converting next to the source fails clearly on a read-only directory ...
        let o = run_c(&["convert", m.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("ro.emd") && err.to_lowercase().contains("read-only"), "{err}");
    }
    // ... and works with -o elsewhere
    let out = d.path().join("ro.emd");
    let o = run_c(&["convert", m.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        dataset::open(&out, &Default::default()).unwrap().frame_u32(47).unwrap(),
        synth::expected_frame(&spec, 47)
    );
}

#[test]
fn one_process_writes_the_fft_while_another_reads_and_a_third_waits() {
    let d = tempfile::tempdir().unwrap();
    let (mib, spec) = synth(d.path(), "c.mib", 12, 16);
    let _guard = Untouched::new(&mib);
    let emd = d.path().join("c.emd");
    assert!(run(&["convert", mib.to_str().unwrap(), "-o", emd.to_str().unwrap()]).status.success());
    let args = |e: &Path| -> Vec<String> {
        ["fft", e.to_str().unwrap(), "--crop", "full", "--bin", "4", "--memory", "4M"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // A: the writer (slowed down)
    let mut a = command()
        .args(args(&emd))
        .env("EMDTUI_FFT_GROUP_DELAY_MS", "150")
        .env("EMDTUI_FFT_SCRATCH_ON_DISK", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_, state) = fft::scratch_paths(&emd);
    let t0 = Instant::now();
    while !state.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    }
    // C: a second writer, started while A holds the lock
    let c = command().args(args(&emd)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // B (this process): reads frames while A writes (frame reads take no lock) and never sees a
    // partial FFT as valid
    let ds = dataset::open(&emd, &Default::default()).unwrap();
    let mut reads = 0;
    while a.try_wait().unwrap().is_none() {
        let p = reads % (12 * 16);
        assert_eq!(ds.frame_u32(p).unwrap(), synth::expected_frame(&spec, p), "read {reads}");
        if FftCache::open(&emd).is_ok() {
            // valid only once every block is written
            let f = emdtui::format::h5::open_ro(&emd).unwrap();
            let done = f.dataset("emdtui/cache/fft_complex/blocks_done").unwrap().read_raw::<u8>().unwrap();
            assert!(done.iter().all(|&b| b == 1), "partial FFT visible as valid");
        }
        reads += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(a.wait().unwrap().success());
    assert!(reads >= 2, "the reader did not get to read while the writer ran");
    // cache listings (shared lock) see the overviews valid
    let f = emdtui::store::emd::EmdFile::open(&emd).unwrap();
    assert!(f.list_caches().unwrap().iter().filter(|c| c.name.starts_with("virtual")).all(|c| c.valid));
    let co = c.wait_with_output().unwrap();
    let cerr = String::from_utf8_lossy(&co.stderr);
    assert!(co.status.success(), "{cerr}");
    assert!(cerr.contains("is being written by another emdtui process (pid"), "{cerr}");
    assert!(
        String::from_utf8_lossy(&co.stdout).contains("already complete"),
        "{}",
        String::from_utf8_lossy(&co.stdout)
    );
    // no corruption: the datacube, the overviews and the FFT are all valid
    let f = emdtui::store::emd::EmdFile::open(&emd).unwrap();
    assert!(f.list_caches().unwrap().iter().all(|c| c.valid), "{:?}", f.list_caches().unwrap());
    assert!(FftCache::open_validated(&emd, &ds.fingerprint()).is_ok());
}
