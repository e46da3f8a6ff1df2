//! Helpers shared by the integration tests (`mod common;` in each test file): the binary, the
//! synthetic `.mib` writers, the real test-data directory and the Python peer readers.
//!
//! Not every test binary uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod nion;
pub mod simdata;
pub mod tmux;

use emdtui::dataset::{MibDataset, OpenOptions};
use emdtui::format::synth::{self, SynthSpec};
use std::path::{Path, PathBuf};

/// The repository root (the crate directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---- the binary ----

/// Path of the `emdtui` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emdtui"))
}

/// The overview cache directory the binary gets in these tests: one per test process, under the
/// system temp directory (never the user's cache).
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("emdtui-test-cache-{}", std::process::id()))
}

/// `emdtui` as an `assert_cmd` command, with `EMDTUI_CACHE_DIR` set to [`cache_dir`].
pub fn emdtui() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(bin());
    c.env("EMDTUI_CACHE_DIR", cache_dir());
    c
}

/// `emdtui` as a `std::process::Command` (for spawning and killing), with `EMDTUI_CACHE_DIR` set
/// to [`cache_dir`].
pub fn command() -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.env("EMDTUI_CACHE_DIR", cache_dir());
    c
}

// ---- synthetic files ----

/// Write a synthetic `.mib` (plus whatever `spec` asks for: `.hdr`, more files) as `dir/name`;
/// returns its path.
pub fn synth(dir: &Path, name: &str, spec: &SynthSpec) -> PathBuf {
    let p = dir.join(name);
    synth::write(&p, spec, &|_, _| {}).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    p
}

/// [`synth`], then open it with default options.
pub fn synth_file(dir: &Path, name: &str, spec: &SynthSpec) -> MibDataset {
    let p = synth(dir, name, spec);
    MibDataset::open(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("opening {}: {e}", p.display()))
}

// ---- real test data ----

/// The real Merlin files: `$EMDTUI_TESTDATA`, else `../shared/testdata/mib` next to the repository.
pub fn testdata_dir() -> PathBuf {
    std::env::var_os("EMDTUI_TESTDATA").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/testdata/mib"))
}

/// [`testdata_dir`], which must hold `ground_truth.json` (the test fails otherwise).
pub fn testdata() -> PathBuf {
    let p = testdata_dir();
    assert!(p.join("ground_truth.json").is_file(), "test data not found at {} (set EMDTUI_TESTDATA)", p.display());
    p
}

/// [`testdata_dir`] if it exists; None (after printing why) for tests that skip without it.
pub fn testdata_or_skip() -> Option<PathBuf> {
    let p = testdata_dir();
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: real test files not found at {} (set EMDTUI_TESTDATA)", p.display());
        None
    }
}

// ---- Python peer readers (py4DSTEM, HyperSpy/rosettasciio, h5py) ----

/// The Python interpreter with the peer readers and the `emd_check.py` checker, or why they
/// cannot be found. Interpreter: `$EMDTUI_PYTHON`, else `.venv/bin/python` at the repository root.
/// Checker: `$EMD_CHECK`, else `../shared/tools/emd_check.py`. The first candidate that is a file
/// wins. `.ci/run` installs both and sets the variables.
pub fn find_peer_python() -> Result<(PathBuf, PathBuf), String> {
    fn pick(var: &str, default: PathBuf) -> Result<PathBuf, String> {
        let mut tried = Vec::new();
        for p in std::env::var_os(var).map(PathBuf::from).into_iter().chain([default]) {
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
        Err(format!("not found at {} (set {var})", tried.join(" or ")))
    }
    let python = pick("EMDTUI_PYTHON", repo_root().join(".venv/bin/python"))
        .map_err(|e| format!("python with py4DSTEM/hyperspy/h5py {e}; bash .ci/run installs it"))?;
    let check =
        pick("EMD_CHECK", repo_root().join("../shared/tools/emd_check.py")).map_err(|e| format!("emd_check.py {e}"))?;
    Ok((python, check))
}

/// `(python, emd_check.py)` when both are found, else None (the reason is printed: the caller
/// skips its peer-reader checks).
pub fn peer_python() -> Option<(PathBuf, PathBuf)> {
    match find_peer_python() {
        Ok(p) => Some(p),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// A float32 EMD saved by py4DSTEM (`py4DSTEM.save` of a `DataCube`) in `dir`: 6x5 positions of
/// 32x32 fractional values (a disk plus noise), and the values it holds, in (r, c, y, x) order.
/// None (with the reason printed: the caller skips) when the peer Python is not there.
pub fn py4dstem_float_emd(dir: &Path) -> Option<(PathBuf, Vec<f32>)> {
    let (python, _) = peer_python()?;
    let (emd, npy) = (dir.join("py4dstem_float.emd"), dir.join("py4dstem_float.npy"));
    let script = "import sys, numpy as np, py4DSTEM\n\
        rng = np.random.default_rng(1)\n\
        a = np.zeros((6, 5, 32, 32), np.float32)\n\
        yy, xx = np.mgrid[:32, :32]\n\
        disk = ((yy - 16) ** 2 + (xx - 15) ** 2 < 36).astype(np.float32)\n\
        for r in range(6):\n    for c in range(5):\n        a[r, c] = disk * (10 + r + c) * 0.37 + rng.random((32, 32)) * 0.5\n\
        py4DSTEM.save(sys.argv[1], py4DSTEM.DataCube(data=a), mode='o')\n\
        np.save(sys.argv[2], a)\n";
    let out = std::process::Command::new(&python).arg("-c").arg(script).arg(&emd).arg(&npy).output().unwrap();
    assert!(out.status.success(), "py4DSTEM save failed: {}", String::from_utf8_lossy(&out.stderr));
    let a: ndarray::Array4<f32> = ndarray_npy::read_npy(&npy).unwrap();
    Some((emd, a.iter().copied().collect()))
}
