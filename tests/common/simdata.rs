//! The simulated 4D-STEM cases (abTEM multislice, written by `scripts/simulate.py`): located
//! through the environment variable `EMDTUI_SIMDATA` (`.ci/run` generates them and sets it).
//! A test that needs them fails with a message that says how to make them.

use std::path::{Path, PathBuf};

/// The environment variable naming the directory of the simulated cases.
pub const ENV: &str = "EMDTUI_SIMDATA";

/// Every case `scripts/simulate.py` writes.
pub const CASES: [&str; 4] = ["mos2_focus", "mos2_df", "carbon_au_df", "vacuum_df"];

fn how_to() -> String {
    format!(
        "generate them with `python3 -m venv .venv-sim && .venv-sim/bin/pip install -r scripts/requirements-sim.txt \
         && .venv-sim/bin/python scripts/simulate.py --out DIR` and set {ENV}=DIR (.ci/run does both)"
    )
}

/// The directory of the simulated cases; panics with the way to make them when unset or absent.
pub fn dir() -> PathBuf {
    let d = std::env::var_os(ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{ENV} is not set: these tests need the simulated cases; {}", how_to()));
    assert!(d.is_dir(), "{ENV}={} is not a directory; {}", d.display(), how_to());
    d
}

/// One simulated case: its directory, `.mib` and parsed `truth.json`.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub mib: PathBuf,
    pub truth: serde_json::Value,
}

impl Case {
    /// A `.npy` float32 image of the case (e.g. `potential_1x.npy`), as (rows, cols, values).
    pub fn npy(&self, file: &str) -> (usize, usize, Vec<f32>) {
        read_npy_2d(&self.dir.join(file))
    }

    /// A number of the truth file (panics naming the key when absent).
    pub fn num(&self, key: &str) -> f64 {
        self.truth[key].as_f64().unwrap_or_else(|| panic!("{}: truth.json has no number {key}", self.name))
    }

    /// The scan shape (rows, cols).
    pub fn scan_shape(&self) -> (usize, usize) {
        let s = &self.truth["scan_shape"];
        (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize)
    }
}

/// The case `name` (one of [`CASES`]); panics with the way to make it when it is missing.
pub fn case(name: &str) -> Case {
    let d = dir().join(name);
    let truth_path = d.join("truth.json");
    let text = std::fs::read_to_string(&truth_path)
        .unwrap_or_else(|e| panic!("{}: {e}: simulated case {name} missing; {}", truth_path.display(), how_to()));
    let truth: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", truth_path.display()));
    let mib = d.join(format!("{name}.mib"));
    assert!(mib.is_file(), "{} missing; {}", mib.display(), how_to());
    Case { name: name.to_string(), dir: d, mib, truth }
}

/// A 2-D float32 `.npy` as (rows, cols, values in C order).
pub fn read_npy_2d(p: &Path) -> (usize, usize, Vec<f32>) {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (r, c) = a.dim();
    (r, c, a.iter().copied().collect())
}

/// Pearson correlation of two images of the same size.
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "images of different sizes");
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}
