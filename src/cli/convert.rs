//! `emdtui convert`.

use crate::Tuning;
use crate::cli::common::{bad_pixels_option, convert_options};
use crate::cli::{Cli, ConvertArgs};
use crate::compute::convert::ConvertOptions;
use crate::dataset::Dataset;
use crate::jobs::Progress;
use crate::ops::convert::{self, ConvertReport};
use crate::util::hs;
use anyhow::{Context, Result, anyhow};
use std::path::PathBuf;
use std::sync::Arc;

/// Parse `R0:R1,C0:C1`.
pub fn parse_crop(s: &str) -> Result<((usize, usize), (usize, usize))> {
    let bad = || anyhow!("--crop {s:?}: expected R0:R1,C0:C1 (half-open scan ranges), e.g. 0:64,16:80");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let range = |t: &str| -> Result<(usize, usize)> {
        let (x, y) = t.split_once(':').ok_or_else(bad)?;
        Ok((x.trim().parse().map_err(|_| bad())?, y.trim().parse().map_err(|_| bad())?))
    };
    Ok((range(a)?, range(b)?))
}

/// `--compress lz4` (also `bslz4`, `bitshuffle`): bitshuffle + LZ4, HDF5 filter 32008.
fn wants_bitshuffle(s: Option<&str>) -> bool {
    s.is_some_and(|x| matches!(x.trim().to_ascii_lowercase().as_str(), "lz4" | "bslz4" | "bitshuffle"))
}

/// `--compress`: None = uncompressed, Some(level) = shuffle + gzip at that level (`gzip` alone:
/// the tuned level, 1 by default). `lz4` is handled by the 4-D conversion (see
/// [`wants_bitshuffle`]) and refused here.
pub fn parse_compress(s: Option<&str>, t: &Tuning) -> Result<Option<u32>> {
    match s.map(|x| x.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(x) if x == "none" => Ok(None),
        Some(x) if x == "gzip" => Ok(Some(t.deflate_level())),
        Some(x) => {
            let l = x.strip_prefix("gzip:").and_then(|l| l.parse::<u32>().ok()).filter(|l| (1..=9).contains(l));
            l.map(Some).ok_or_else(|| anyhow!("--compress {x:?}: use gzip:1 .. gzip:9, lz4 (4-D datacubes) or none"))
        }
    }
}

/// What a conversion writes: a 4-D datacube, or a 3-D spectrum image (with its plan).
pub enum ConvertPlan {
    Datacube(ConvertOptions),
    Spectra(crate::compute::spectra::SpectraOptions, crate::compute::spectra::SpectraPlan),
}

/// A checked `emdtui convert` request (the Python package runs the same ones).
pub struct ConvertRequest {
    pub ds: Arc<dyn Dataset>,
    pub out: PathBuf,
    pub plan: ConvertPlan,
    /// Gzip or LZ4 compression of the output.
    pub compressed: bool,
}

/// Check the arguments and open the input: everything decided before converting.
pub fn request(a: &ConvertArgs, cli: &Cli, t: &Tuning) -> Result<ConvertRequest> {
    let given = cli.calib.given()?;
    let opts = cli.open.batch_options(cli.memory_budget()?)?;
    let ds = crate::dataset::open(&a.input, &opts)?;
    let out = a.output.clone().unwrap_or_else(|| convert::default_output(&a.input));
    if out == a.input {
        anyhow::bail!("{}: the output would overwrite the input; choose another -o", out.display());
    }
    let bitshuffle = wants_bitshuffle(a.compress.as_deref());
    let level = if bitshuffle { Some(1) } else { parse_compress(a.compress.as_deref(), t)? };
    let mean = match a.bin_mode.as_str() {
        "sum" => false,
        "mean" => true,
        m => anyhow::bail!("--bin-mode {m:?}: use sum or mean"),
    };
    if a.sum_short_axis || ds.info().mode.mode == crate::dataset::Mode::Eels {
        if bitshuffle {
            anyhow::bail!(
                "{}: --compress lz4 applies to 4-D datacubes; use gzip:N for spectrum images",
                a.input.display()
            );
        }
        let (sopts, plan) = spectra_request(a, ds.as_ref(), level, mean, cli, t)?;
        return Ok(ConvertRequest { ds, out, plan: ConvertPlan::Spectra(sopts, plan), compressed: level.is_some() });
    }
    let (energy_given, e) = (a.energy.dispersion.is_some() || a.energy.reverse_energy, &a.energy);
    if energy_given {
        anyhow::bail!(
            "{}: --reverse-energy/--dispersion{} apply to spectra; this is diffraction data ({})",
            a.input.display(),
            if e.offset.is_some() { "/--offset" } else { "" },
            ds.info().mode.reason
        );
    }
    let calibration = crate::ops::calib::resolve(ds.as_ref(), &given, t.cache_dir.as_deref())?;
    let copts = ConvertOptions {
        calibration: Some(calibration),
        compress: level.is_some(),
        deflate_level: level.unwrap_or(1),
        bin_detector: a.bin_detector,
        bin_scan: a.bin_scan,
        bin_mean: mean,
        crop: a.crop.as_deref().map(parse_crop).transpose()?,
        force: a.force,
        bad_pixels: bad_pixels_option(cli, ds.as_ref())?,
        ..convert_options(cli.memory_budget()?, t)
    };
    let copts = ConvertOptions { deflate_level: level.unwrap_or(copts.deflate_level), bitshuffle, ..copts };
    Ok(ConvertRequest { ds, out, plan: ConvertPlan::Datacube(copts), compressed: level.is_some() })
}

/// Run a checked conversion, following `progress`.
pub fn execute(rq: &ConvertRequest, progress: &Progress) -> crate::Result<ConvertReport> {
    match &rq.plan {
        ConvertPlan::Datacube(copts) => convert::convert(rq.ds.as_ref(), &rq.out, copts, progress),
        ConvertPlan::Spectra(sopts, _) => convert::convert_spectra(rq.ds.as_ref(), &rq.out, sopts, progress),
    }
}

pub fn run(a: &ConvertArgs, cli: &Cli, t: &Tuning) -> Result<()> {
    let rq = request(a, cli, t)?;
    let ds = rq.ds.as_ref();
    for w in &ds.info().warnings {
        eprintln!("warning: {w}");
    }
    let plan = match &rq.plan {
        ConvertPlan::Spectra(_, plan) => {
            let reason = &ds.info().mode.reason;
            println!("spectrum image: {} x {} x {} channels (float32), {reason}", plan.rows, plan.cols, plan.channels);
            estimate(plan.in_bytes(ds), Some(plan.out_bytes()), rq.compressed);
            Some(plan)
        }
        ConvertPlan::Datacube(_) => {
            let bytes = ds.positions_present() * ds.frame_pixels() * ds.info().pixel_type.bytes();
            estimate(bytes as u64, None, rq.compressed);
            None
        }
    };
    let progress = Progress::job(crate::jobs::JobKind::Convert, ds.scan().positions() as u64);
    progress.set_state(crate::jobs::JobState::Running);
    let r = crate::cli::progress::with_frames_bar(&progress, "convert", || execute(&rq, &progress))
        .with_context(|| format!("converting {}", a.input.display()))?;
    let mb = |b: u64, s: f64| b as f64 / s.max(1e-9) / (1024.0 * 1024.0);
    match plan {
        Some(plan) => println!(
            "wrote {}: spectrum image {} x {} x {}, {} read, {} written in {:.2} s ({:.0} MiB/s read)",
            r.output.display(),
            plan.rows,
            plan.cols,
            plan.channels,
            hs(r.bytes_read),
            hs(r.bytes_written),
            r.seconds,
            mb(r.bytes_read, r.seconds)
        ),
        None => println!(
            "wrote {}: {} positions, {} read, {} written in {:.2} s ({:.0} MiB/s read, {:.0} MiB/s written)",
            r.output.display(),
            progress.done(),
            hs(r.bytes_read),
            hs(r.bytes_written),
            r.seconds,
            mb(r.bytes_read, r.seconds),
            mb(r.bytes_written, r.seconds)
        ),
    }
    Ok(())
}

/// Run a conversion with a progress bar on stderr; returns the report and the positions written.
pub fn convert_with_bar(
    ds: &dyn crate::dataset::Dataset,
    out: &std::path::Path,
    copts: &ConvertOptions,
) -> crate::Result<(ConvertReport, u64)> {
    let progress = Progress::job(crate::jobs::JobKind::Convert, ds.scan().positions() as u64);
    progress.set_state(crate::jobs::JobState::Running);
    let r = crate::cli::progress::with_frames_bar(&progress, "convert", || convert::convert(ds, out, copts, &progress));
    r.map(|r| (r, progress.done()))
}

/// Print the size and time estimate before a conversion starts: bytes read, bytes written
/// (when known) and the time at 1 GB/s of reads (a warm page cache reads faster, a cold disk
/// slower; gzip costs more).
fn estimate(read: u64, written: Option<u64>, compressed: bool) {
    let secs = read as f64 / 1e9 * if compressed { 2.0 } else { 1.0 };
    // on stdout: stderr carries the progress bar and, on failure, the one error line
    println!(
        "estimate: reads {}, writes {}{}; about {:.0} s at 1 GB/s",
        hs(read),
        written.map(hs).unwrap_or_else(|| "about as much".into()),
        if compressed { " before compression" } else { "" },
        secs.max(1.0)
    );
}

/// `convert --sum-short-axis` (automatic in EELS mode): the options and plan of the 3-D
/// spectrum image.
fn spectra_request(
    a: &ConvertArgs,
    ds: &dyn crate::dataset::Dataset,
    level: Option<u32>,
    mean: bool,
    cli: &Cli,
    t: &Tuning,
) -> Result<(crate::compute::spectra::SpectraOptions, crate::compute::spectra::SpectraPlan)> {
    let i = ds.info();
    let (dr, dc) = ds.det();
    if i.mode.mode != crate::dataset::Mode::Eels && dr == dc {
        anyhow::bail!(
            "{}: --sum-short-axis needs spectra: the {dr}x{dc} detector is square ({}); add --mode eels to sum its rows anyway",
            i.path.display(),
            i.mode.reason
        );
    }
    if a.bin_scan != 1 || a.crop.is_some() {
        anyhow::bail!("{}: --bin-scan and --crop are not supported for spectrum images yet", i.path.display());
    }
    let energy = crate::cli::common::energy_options(&a.energy)?;
    let job = crate::ops::eels::EelsJob {
        energy: energy.clone(),
        memory_budget: cli.memory_budget()?,
        cache_dir: t.cache_dir.clone(),
    };
    let sopts = crate::compute::spectra::SpectraOptions {
        bin: a.bin_detector,
        mean,
        reverse: energy.reverse,
        energy: crate::ops::eels::calibration(ds, &job),
        deflate_level: level,
        memory_budget: cli.memory_budget()?,
        force: a.force,
        no_space_check: t.no_space_check,
    };
    let plan = crate::compute::spectra::spectra_plan(ds, &sopts)
        .with_context(|| format!("converting {}", a.input.display()))?;
    Ok((sopts, plan))
}
