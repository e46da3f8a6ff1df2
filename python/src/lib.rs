//! `emdtui._emdtui`: the Python front end of the emdtui engine (a third one, beside the CLI and
//! the terminal UI). Arguments arrive as the CLI's flags and are parsed by the CLI's own clap
//! definitions, so parameters, defaults and error messages are the CLI's; each workflow then
//! runs the same `ops` entry point as `emdtui SUBCOMMAND`, returning arrays instead of files.
//! `python -m emdtui` runs the CLI itself in-process (`run_cli`).

mod job;
mod workflows;

// The binary's entry point (command line, `EMDTUI_*` tuning variables, worker pool): included so
// that `python -m emdtui` and the bindings read the environment exactly as the `emdtui` binary.
#[path = "../../src/main.rs"]
#[allow(dead_code)]
mod cli_main;

use emdtui::dataset::{self, FrameBuf, ReadScratch};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// A `.mib` acquisition or an EMD opened by the Rust reader. `globals`: the CLI's global flags
/// (`--scan`, `--skip-frames`, `--flyback`, `--mode`, calibration, memory, bad pixels).
#[pyclass(frozen, module = "emdtui._emdtui")]
struct Dataset {
    path: PathBuf,
    globals: Vec<String>,
    ds: Arc<dyn dataset::Dataset>,
}

impl Dataset {
    /// The CLI of `emdtui GLOBALS SUBCOMMAND PATH ARGS` (clap's checks and defaults).
    fn cli(&self, sub: &[&str], args: &[String]) -> PyResult<emdtui::cli::Cli> {
        let mut argv: Vec<String> = vec!["emdtui".into()];
        argv.extend(self.globals.iter().cloned());
        argv.push(sub[0].into());
        argv.push(self.path.to_string_lossy().into_owned());
        argv.extend(sub[1..].iter().map(|s| s.to_string()));
        argv.extend(args.iter().cloned());
        <emdtui::cli::Cli as clap::Parser>::try_parse_from(argv).map_err(job::clap_err)
    }
}

/// The pixels of a block of frames as a numpy array of shape `shape` (the native dtype, no copy).
fn frames_to_numpy<'py>(py: Python<'py>, buf: FrameBuf, shape: [usize; 3]) -> PyResult<Bound<'py, PyAny>> {
    Ok(match buf {
        FrameBuf::U8(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        FrameBuf::U16(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        FrameBuf::U32(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
    })
}

#[pymethods]
impl Dataset {
    #[new]
    fn new(py: Python<'_>, path: PathBuf, globals: Vec<String>) -> PyResult<Self> {
        let mut argv: Vec<String> = vec!["emdtui".into()];
        argv.extend(globals.iter().cloned());
        argv.extend(["info".into(), path.to_string_lossy().into_owned()]);
        let cli = <emdtui::cli::Cli as clap::Parser>::try_parse_from(argv).map_err(job::clap_err)?;
        let ds = py.detach(|| -> anyhow::Result<_> {
            cli.calib.given()?;
            let opts = cli.open.batch_options(cli.memory_budget()?)?;
            Ok(dataset::open(&path, &opts)?)
        });
        Ok(Dataset { path, globals, ds: ds.map_err(job::to_py)? })
    }

    /// (scan rows, scan cols, detector rows, detector cols).
    #[getter]
    fn shape(&self) -> (usize, usize, usize, usize) {
        let (dr, dc) = self.ds.det();
        (self.ds.scan().rows, self.ds.scan().cols, dr, dc)
    }

    /// numpy dtype name of the pixels: uint8, uint16 or uint32.
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.ds.info().pixel_type {
            emdtui::format::mib::PixelType::U8 => "uint8",
            emdtui::format::mib::PixelType::U16 => "uint16",
            emdtui::format::mib::PixelType::U32 => "uint32",
        }
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn globals(&self) -> Vec<String> {
        self.globals.clone()
    }

    /// Scan positions with data (a running acquisition grows).
    #[getter]
    fn positions_present(&self) -> usize {
        self.ds.positions_present()
    }

    /// Identity of the data (the caches' key).
    #[getter]
    fn fingerprint(&self) -> String {
        self.ds.fingerprint()
    }

    /// Frames of scan rows `r0..r1`, columns `c0..c1` (half-open): shape (r1-r0, c1-c0, det rows,
    /// det cols), read with the GIL released. Positions without data are zero.
    fn read_rect<'py>(
        &self,
        py: Python<'py>,
        r0: usize,
        r1: usize,
        c0: usize,
        c1: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (rows, cols) = (self.ds.scan().rows, self.ds.scan().cols);
        if r0 > r1 || c0 > c1 || r1 > rows || c1 > cols {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "scan rows {r0}..{r1}, cols {c0}..{c1} outside the {rows}x{cols} scan"
            )));
        }
        let (dr, dc) = self.ds.det();
        let frame = dr * dc;
        let (n_r, n_c) = (r1 - r0, c1 - c0);
        let buf = py.detach(|| read_rect(self.ds.as_ref(), (r0, r1), (c0, c1), frame)).map_err(job::engine_err)?;
        let a = frames_to_numpy(py, buf, [n_r * n_c, dr, dc])?;
        a.call_method1("reshape", ((n_r, n_c, dr, dc),))
    }

    /// What `emdtui info --json` prints, as a JSON string.
    fn info_json(&self, py: Python<'_>) -> PyResult<String> {
        let cli = self.cli(&["info"], &[])?;
        let t = cli_main::tuning_from_env();
        let v = py.detach(|| emdtui::cli::info::info_json(&self.path, &cli.open, t.cache_dir.as_deref()));
        Ok(v.map_err(job::to_py)?.to_string())
    }

    /// The calibration in effect (flags given at open, else stored in the EMD or remembered for
    /// the `.mib`), as a JSON string.
    fn calibration_json(&self, py: Python<'_>) -> PyResult<String> {
        let cli = self.cli(&["info"], &[])?;
        let t = cli_main::tuning_from_env();
        let c = py.detach(|| -> anyhow::Result<_> {
            Ok(emdtui::ops::calib::resolve(self.ds.as_ref(), &cli.calib.given()?, t.cache_dir.as_deref())?)
        });
        serde_json::to_string(&c.map_err(job::to_py)?).map_err(|e| job::to_py(e.into()))
    }

    /// `emdtui overview` with these flags: {"images": {name: array}, "report": json}.
    #[pyo3(signature = (args, callback=None))]
    fn overview<'py>(
        &self,
        py: Python<'py>,
        args: Vec<String>,
        callback: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cli = self.cli(&["overview", "-o", &workflows::placeholder_output()], &args)?;
        workflows::overview(py, &cli, callback.as_ref())
    }

    /// `emdtui convert` with these flags: the report as a JSON string.
    #[pyo3(signature = (args, callback=None))]
    fn convert(&self, py: Python<'_>, args: Vec<String>, callback: Option<Bound<'_, PyAny>>) -> PyResult<String> {
        let cli = self.cli(&["convert"], &args)?;
        workflows::convert(py, &cli, callback.as_ref())
    }

    /// `emdtui fft` with these flags: the report as a JSON string.
    #[pyo3(signature = (args, callback=None))]
    fn fft(&self, py: Python<'_>, args: Vec<String>, callback: Option<Bound<'_, PyAny>>) -> PyResult<String> {
        let cli = self.cli(&["fft"], &args)?;
        workflows::fft(py, &cli, callback.as_ref())
    }

    /// `emdtui dpc` with these flags: {"images": {...}, "report": json}.
    #[pyo3(signature = (args, callback=None))]
    fn dpc<'py>(
        &self,
        py: Python<'py>,
        args: Vec<String>,
        callback: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cli = self.cli(&["dpc", "-o", &workflows::placeholder_output()], &args)?;
        workflows::dpc(py, &cli, callback.as_ref())
    }

    /// `emdtui tcbf` with these flags: {"images": {...}, "report": json}.
    #[pyo3(signature = (args, callback=None))]
    fn tcbf<'py>(
        &self,
        py: Python<'py>,
        args: Vec<String>,
        callback: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cli = self.cli(&["tcbf", "-o", &workflows::placeholder_output()], &args)?;
        workflows::tcbf(py, &cli, callback.as_ref())
    }

    /// `emdtui ptycho` with these flags: {"images": {...}, "report": json}.
    #[pyo3(signature = (args, callback=None))]
    fn ptycho<'py>(
        &self,
        py: Python<'py>,
        args: Vec<String>,
        callback: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cli = self.cli(&["ptycho", "-o", &workflows::placeholder_output()], &args)?;
        workflows::ptycho(py, &cli, callback.as_ref())
    }

    /// `emdtui eels` with these flags: {"images": {...}, "report": json}.
    #[pyo3(signature = (args, callback=None))]
    fn eels<'py>(
        &self,
        py: Python<'py>,
        args: Vec<String>,
        callback: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cli = self.cli(&["eels", "-o", &workflows::placeholder_output()], &args)?;
        workflows::eels(py, &cli, callback.as_ref())
    }
}

/// Decode scan rows `r` x columns `c` (half-open) into one block: whole rows in one read, else
/// one read per row.
fn read_rect(
    ds: &dyn dataset::Dataset,
    r: (usize, usize),
    c: (usize, usize),
    frame: usize,
) -> emdtui::Result<FrameBuf> {
    let cols = ds.scan().cols;
    let n = (r.1 - r.0) * (c.1 - c.0);
    let mut scratch = ReadScratch::default();
    let mut out = FrameBuf::new(ds.info().pixel_type);
    if c == (0, cols) || r.1 - r.0 <= 1 {
        ds.read_positions(r.0 * cols + c.0, n, &mut out, &mut scratch)?;
        return Ok(out);
    }
    let mut row = FrameBuf::new(ds.info().pixel_type);
    let per_row = (c.1 - c.0) * frame;
    macro_rules! gather {
        ($v:ident, $t:ty) => {{
            let mut all: Vec<$t> = Vec::with_capacity(n * frame);
            for rr in r.0..r.1 {
                ds.read_positions(rr * cols + c.0, c.1 - c.0, &mut row, &mut scratch)?;
                let FrameBuf::$v(x) = &row else { unreachable!("one pixel type per dataset") };
                all.extend_from_slice(&x[..per_row]);
            }
            out = FrameBuf::$v(all);
        }};
    }
    match ds.info().pixel_type {
        emdtui::format::mib::PixelType::U8 => gather!(U8, u8),
        emdtui::format::mib::PixelType::U16 => gather!(U16, u16),
        emdtui::format::mib::PixelType::U32 => gather!(U32, u32),
    }
    Ok(out)
}

/// `emdtui ARGS...` in this process (`python -m emdtui`); the exit code.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> i32 {
    let mut argv: Vec<std::ffi::OsString> = vec!["emdtui".into()];
    argv.extend(args.into_iter().map(Into::into));
    py.detach(|| cli_main::run_args(argv))
}

/// The engine's version.
#[pyfunction]
fn version() -> &'static str {
    emdtui::VERSION
}

#[pymodule]
fn _emdtui(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Dataset>()?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add("EmdtuiError", m.py().get_type::<job::EmdtuiError>())?;
    Ok(())
}
