//! The workflows of the Python package: each takes the CLI's parsed arguments, runs the same
//! `ops` entry point as the CLI subcommand (through the CLI's own request builders where it has
//! them) and returns arrays and a JSON report instead of writing files.

use crate::cli_main::tuning_from_env;
use crate::job;
use emdtui::Tuning;
use emdtui::cli::overview::Want;
use emdtui::cli::{Cli, Command};
use emdtui::dataset::Dataset;
use emdtui::jobs::{JobKind, Progress};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Value, json};

/// Named float32 images with their shapes, and the run's report.
pub struct Out {
    images: Vec<(&'static str, Vec<f32>, Vec<usize>)>,
    report: Value,
}

/// The `-o` the CLI's checks need (a `.npy` in the temporary directory; never written).
pub fn placeholder_output() -> String {
    std::env::temp_dir().join("emdtui-python-result.npy").to_string_lossy().into_owned()
}

/// {"images": {name: numpy float32 array}, "report": JSON string}.
fn to_py(py: Python<'_>, out: Out) -> PyResult<Bound<'_, PyAny>> {
    let images = PyDict::new(py);
    for (name, v, shape) in out.images {
        let a = PyArray1::from_vec(py, v);
        images.set_item(name, a.call_method1("reshape", (shape,))?)?;
    }
    let d = PyDict::new(py);
    d.set_item("images", images)?;
    d.set_item("report", out.report.to_string())?;
    Ok(d.into_any())
}

/// Geometry of a virtual detector as the report shows it.
fn geometry_json(g: &emdtui::compute::overview::Geometry) -> Value {
    json!({"center": [g.center.0, g.center.1], "bf_radius": g.bf_radius, "adf_inner": g.adf_inner,
           "adf_outer": g.adf_outer})
}

pub fn overview<'py>(py: Python<'py>, cli: &Cli, cb: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let Some(Command::Overview(a)) = &cli.command else { unreachable!("parsed as overview") };
    let t = tuning_from_env();
    let progress = Progress::job(JobKind::Overview, 0);
    let out = job::run(py, &progress, cb, || overview_images(a, cli, &t, &progress))?;
    to_py(py, out)
}

/// `emdtui overview`'s checks, geometry and computation (`cli::overview`), the image(s) kept.
fn overview_images(a: &emdtui::cli::OverviewArgs, cli: &Cli, t: &Tuning, progress: &Progress) -> anyhow::Result<Out> {
    use emdtui::cli::overview as ov;
    let (rq, ds) = ov::validate(a, cli)?;
    let geom = ov::pick_geometry(a, &rq, ds.as_ref())?;
    let (scan, det) = (vec![ds.scan().rows, ds.scan().cols], vec![ds.det().0, ds.det().1]);
    if let Want::Custom(spec) = &rq.want {
        let d = emdtui::cli::detectors::build(spec, rq.response, &geom, ds.as_ref())?;
        let cache = if a.no_cache { None } else { t.cache_dir.as_deref() };
        let bad = (!rq.keep_bad).then_some(rq.user_bad.as_slice());
        let (img, origin) =
            emdtui::ops::detectors::custom_image_masked(ds.as_ref(), &d, bad, rq.budget, cache, progress)?;
        let report = json!({"geometry": geometry_json(&geom), "detector": d.label(), "origin": origin.describe()});
        return Ok(Out { images: vec![("image", img, scan)], report });
    }
    let (o, roi_dp) = ov::compute(a, &rq, &geom, ds.as_ref(), progress, t, std::time::Instant::now())?;
    let images = match (&rq.want, o, roi_dp) {
        (Want::MeanDp, _, Some(dp)) => vec![("image", dp, det)],
        (Want::MeanDp, Some(o), None) => vec![("image", o.mean_dp, det)],
        (Want::MaxDp, Some(o), _) => vec![("image", o.max_dp, det)],
        (Want::Com, Some(o), _) => vec![("comx", o.com_x, scan.clone()), ("comy", o.com_y, scan)],
        (Want::Image(k), Some(o), _) => vec![("image", o.image(*k), scan)],
        _ => anyhow::bail!("internal: nothing computed"),
    };
    Ok(Out { images, report: json!({"geometry": geometry_json(&geom), "detector": a.det.detector}) })
}

pub fn convert(py: Python<'_>, cli: &Cli, cb: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let Some(Command::Convert(a)) = &cli.command else { unreachable!("parsed as convert") };
    let t = tuning_from_env();
    let rq = py.detach(|| emdtui::cli::convert::request(a, cli, &t)).map_err(job::to_py)?;
    let progress = Progress::job(JobKind::Convert, rq.ds.scan().positions() as u64);
    let r = job::run(py, &progress, cb, || {
        use anyhow::Context;
        emdtui::cli::convert::execute(&rq, &progress).with_context(|| format!("converting {}", a.input.display()))
    })?;
    Ok(json!({"output": r.output, "bytes_read": r.bytes_read, "bytes_written": r.bytes_written,
              "seconds": r.seconds, "positions": progress.done()})
    .to_string())
}

pub fn fft(py: Python<'_>, cli: &Cli, cb: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let Some(Command::Fft(a)) = &cli.command else { unreachable!("parsed as fft") };
    let t = tuning_from_env();
    let progress = Progress::job(JobKind::Fft, 0);
    let rep = job::run(py, &progress, cb, || fft_run(a, cli, &t, &progress))?;
    Ok(rep.to_string())
}

/// `emdtui fft`'s workflow (`ops::fft::run`: the EMD converted when missing, pass 1 alongside the
/// conversion when the parameters do not depend on the data, the cached FFT or a new one).
fn fft_run(a: &emdtui::cli::FftArgs, cli: &Cli, t: &Tuning, progress: &Progress) -> anyhow::Result<Value> {
    use anyhow::Context;
    let mut job = emdtui::cli::fft::job(a, cli, t)?;
    job.run.announce_wait = false;
    let emd = job.emd.clone();
    let out = emdtui::ops::fft::run(job, &emdtui::ops::fft::OneProgress(progress))
        .with_context(|| format!("FFT of {}", a.file.display()))?;
    let rep = match out.fft {
        emdtui::ops::fft::FftOutcome::Computed(_, rep) => serde_json::to_value(*rep)?,
        emdtui::ops::fft::FftOutcome::Loaded(_) => Value::Null,
    };
    Ok(json!({"emd": emd, "report": rep}))
}

pub fn dpc<'py>(py: Python<'py>, cli: &Cli, cb: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let Some(Command::Dpc(a)) = &cli.command else { unreachable!("parsed as dpc") };
    let t = tuning_from_env();
    let (ds, dj, cal) = py.detach(|| emdtui::cli::dpc::request(a, cli, &t)).map_err(job::to_py)?;
    let progress = Progress::job(JobKind::Overview, 0);
    let out = job::run(py, &progress, cb, || Ok(emdtui::ops::dpc::run(ds.as_ref(), &dj, &progress)?))?;
    let report = emdtui::cli::dpc::report_json(&out, &cal, cli.keep_bad_pixels, &[]);
    let scan = vec![out.result.rows, out.result.cols];
    let r = out.result;
    let images = vec![("phase", r.phase, scan.clone()), ("comx", r.com_x, scan.clone()), ("comy", r.com_y, scan)];
    to_py(py, Out { images, report })
}

pub fn tcbf<'py>(py: Python<'py>, cli: &Cli, cb: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let Some(Command::Tcbf(a)) = &cli.command else { unreachable!("parsed as tcbf") };
    let t = tuning_from_env();
    let mut job = py.detach(|| emdtui::cli::tcbf::request(a, cli, &t)).map_err(job::to_py)?;
    job.fft.run.announce_wait = false;
    let progress = Progress::job(JobKind::Other, 0);
    let out = job::run(py, &progress, cb, || tcbf_run(a, job, &progress))?;
    to_py(py, out)
}

/// `emdtui tcbf`'s workflow (`ops::tcbf::run`: the EMD and its scan-axes FFT made when missing,
/// the cached result or tcBF computed), the images kept.
fn tcbf_run(a: &emdtui::cli::TcbfArgs, job: emdtui::ops::tcbf::TcbfJob, progress: &Progress) -> anyhow::Result<Out> {
    use anyhow::Context;
    let emd = job.fft.emd.clone();
    let out = emdtui::ops::tcbf::run(job, &emdtui::ops::fft::OneProgress(progress))
        .with_context(|| format!("tcBF of {}", a.file.display()))?;
    let r = out.result;
    let (ir, ic) = r.image_shape();
    let origin = match &out.origin {
        emdtui::ops::tcbf::Origin::Cache => "cache",
        emdtui::ops::tcbf::Origin::Computed { .. } => "computed",
    };
    let report = json!({"emd": emd, "origin": origin, "params": r.params.to_json(), "image_shape": [ir, ic],
        "scan_shape": [r.scan.0, r.scan.1], "detector_shape": [r.det.0, r.det.1], "disk": r.disk, "fit": r.fit,
        "pixels_used": r.pixels_used, "pixels_low_quality": r.pixels_low_quality, "seconds_tcbf": r.seconds});
    let det = vec![r.det.0, r.det.1];
    let images = vec![
        ("image", r.image, vec![ir, ic]),
        ("shifts", r.shifts, vec![r.det.0, r.det.1, 2]),
        ("quality", r.quality, det),
    ];
    Ok(Out { images, report })
}

pub fn ptycho<'py>(py: Python<'py>, cli: &Cli, cb: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let Some(Command::Ptycho(a)) = &cli.command else { unreachable!("parsed as ptycho") };
    let t = tuning_from_env();
    let mut job = py.detach(|| emdtui::cli::ptycho::request(a, cli, &t)).map_err(job::to_py)?;
    job.fft.run.announce_wait = false;
    let progress = Progress::job(JobKind::Other, 0);
    let out = job::run(py, &progress, cb, || ptycho_run(a, job, &progress))?;
    to_py(py, out)
}

/// `emdtui ptycho`'s workflow (`ops::ptycho::run`: the EMD and its scan-axes FFT made when
/// missing, the cached result or SSB computed), the images kept.
fn ptycho_run(
    a: &emdtui::cli::PtychoArgs,
    job: emdtui::ops::ptycho::PtychoJob,
    progress: &Progress,
) -> anyhow::Result<Out> {
    use anyhow::Context;
    let emd = job.fft.emd.clone();
    let out = emdtui::ops::ptycho::run(job, &emdtui::ops::fft::OneProgress(progress))
        .with_context(|| format!("ptycho of {}", a.file.display()))?;
    let r = out.result;
    let report = json!({"emd": emd, "origin": out.origin.short().0, "params": r.params.to_json(),
        "scan_shape": [r.scan.0, r.scan.1], "summary": r.summary});
    let scan = vec![r.scan.0, r.scan.1];
    let images = vec![
        ("phase", r.phase, scan.clone()),
        ("amplitude", r.amplitude, scan.clone()),
        ("icom", r.icom, scan.clone()),
        ("bf", r.bf, scan),
    ];
    Ok(Out { images, report })
}

pub fn eels<'py>(py: Python<'py>, cli: &Cli, cb: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let Some(Command::Eels(a)) = &cli.command else { unreachable!("parsed as eels") };
    let t = tuning_from_env();
    let progress = Progress::job(JobKind::Other, 0);
    let out = job::run(py, &progress, cb, || eels_run(a, cli, &t, &progress))?;
    to_py(py, out)
}

/// `emdtui eels`: the spectrum image (cached or computed), then the window map or the spectrum.
fn eels_run(a: &emdtui::cli::EelsArgs, cli: &Cli, t: &Tuning, progress: &Progress) -> anyhow::Result<Out> {
    use anyhow::Context;
    use emdtui::ops::eels;
    let energy = emdtui::cli::common::energy_options(&a.energy)?;
    let (window, region) = emdtui::cli::eels::selection(a)?;
    let budget = cli.memory_budget()?;
    let opts = cli.open.batch_options(budget)?;
    let cache_dir = if a.no_cache { None } else { t.cache_dir.clone() };
    let job = eels::EelsJob { energy, memory_budget: budget, cache_dir };
    let si = eels::spectrum_image(&a.file, &opts, &job, progress).with_context(|| format!("{}", a.file.display()))?;
    let ctx = || format!("{}", a.file.display());
    let report = json!({"rows": si.rows, "cols": si.cols, "channels": si.channels, "energy_offset": si.energy_offset,
        "energy_step": si.energy_step, "energy_units": si.energy_units, "calibrated": si.calibrated(),
        "describe": si.describe, "origin": si.origin.describe()});
    if let Some(w) = window {
        let map = eels::window_map(&si, w).with_context(ctx)?;
        return Ok(Out { images: vec![("map", map, vec![si.rows, si.cols])], report });
    }
    let (rows, cols) = region.unwrap_or((0..si.rows, 0..si.cols));
    let spec = eels::mean_spectrum(&si, rows, cols).with_context(ctx)?;
    let axis: Vec<f32> = si.axis().iter().map(|&e| e as f32).collect();
    let n = spec.len();
    Ok(Out { images: vec![("spectrum", spec, vec![n]), ("energy", axis, vec![n])], report })
}
