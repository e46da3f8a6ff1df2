//! What several subcommands share: the image-output arguments and writers, the display
//! parameters, masks and bad pixels from files, and the option structs filled from the tuning.

use crate::Tuning;
use crate::cli::{Cli, EnergyArgs};
use crate::compute::convert::ConvertOptions;
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::fft;
use crate::format::export::{self, ImageData, ImageFormat};
use crate::ops::eels::EnergyOptions;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::Path;

/// How a PNG output looks (flattened into every subcommand that writes an image).
#[derive(Args, Debug, Clone, Default)]
pub struct ImageStyle {
    /// PNG colour map: gray, viridis, inferno, magma or cyclic (default: the subcommand's own).
    #[arg(long)]
    pub cmap: Option<String>,
    /// PNG scaling: linear, log, sqrt (default: log for ewpc, linear otherwise).
    #[arg(long)]
    pub scale: Option<String>,
}

impl ImageStyle {
    /// The display parameters, with the subcommand's defaults where the user gave none.
    pub fn display(&self, cmap: Colormap, scale: Scale) -> Result<DisplayParams> {
        let colormap = match &self.cmap {
            Some(c) => Colormap::parse(c)
                .with_context(|| format!("--cmap {c:?}: use gray, viridis, inferno, magma or cyclic"))?,
            None => cmap,
        };
        let scale = match self.scale.as_deref() {
            None => scale,
            Some("linear") => Scale::Linear,
            Some("log") => Scale::Log,
            Some("sqrt") => Scale::Sqrt,
            Some(s) => bail!("--scale {s:?}: use linear, log or sqrt"),
        };
        Ok(DisplayParams { scale, colormap, ..Default::default() })
    }
}

/// The calibration as one line: scan step and detector step (or "uncalibrated").
pub fn calib_text(c: &crate::compute::calib::Calibration) -> String {
    let r =
        c.r.as_ref().map(|(s, u)| format!("scan step {s} {u}/px")).unwrap_or_else(|| "scan step uncalibrated".into());
    let q = c.q.as_ref().map(|(s, u)| format!("detector {s} {u}/px")).unwrap_or_else(|| "detector uncalibrated".into());
    let a = c.alpha_mrad.map(|a| format!(" (alpha {a} mrad)")).unwrap_or_default();
    format!("{r}; {q}{a}")
}

/// Write a scan image like [`write_f32`]; a PNG gets a scale bar when `scan_step` (size, units)
/// is known.
pub fn write_scan_image(
    out: &Path,
    rows: usize,
    cols: usize,
    v: &[f32],
    disp: &DisplayParams,
    scan_step: Option<&(f64, String)>,
) -> Result<()> {
    match (export::format_of(out)?, scan_step) {
        (ImageFormat::Png, Some((step, units))) => {
            let mut rgb = crate::compute::display::to_rgb(v, disp);
            crate::compute::calib::draw_scale_bar(&mut rgb, rows, cols, *step, units);
            export::write_png_rgb(out, rows, cols, &rgb)?;
            Ok(())
        }
        _ => write_f32(out, rows, cols, v, disp),
    }
}

/// Write a float image in the format of `out` (PNG: scaled and colour-mapped).
pub fn write_f32(out: &Path, rows: usize, cols: usize, v: &[f32], disp: &DisplayParams) -> Result<()> {
    match export::format_of(out)? {
        ImageFormat::Npy => export::write_npy(out, rows, cols, ImageData::F32(v))?,
        ImageFormat::Tiff => export::write_tiff(out, rows, cols, ImageData::F32(v))?,
        ImageFormat::Png => export::write_png_rgb(out, rows, cols, &crate::compute::display::to_rgb(v, disp))?,
    }
    Ok(())
}

/// Load a mask: PNG (grey level / max, so a 0/255 mask gives 0/1) or `.npy` (float, int or bool)
/// of exactly the detector shape.
/// The detector pixels of the global `--bad-pixels PATH` mask (flat indices; none without it).
pub fn user_bad_pixels(cli: &Cli, rows: usize, cols: usize) -> Result<Vec<usize>> {
    Ok(match &cli.bad_pixels {
        Some(p) => crate::compute::badpix::from_mask(&load_mask(p, rows, cols)?, rows, cols),
        None => Vec::new(),
    })
}

pub fn load_mask(path: &Path, rows: usize, cols: usize) -> Result<Vec<f32>> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    let (shape, v): ((usize, usize), Vec<f32>) = match ext.as_str() {
        "png" => {
            let img = image::open(path).with_context(|| format!("mask {}: cannot read PNG", path.display()))?;
            let g = img.to_luma16();
            let (w, h) = g.dimensions();
            ((h as usize, w as usize), g.as_raw().iter().map(|&v| v as f32 / 65535.0).collect())
        }
        "npy" => read_npy_f32(path)?,
        _ => bail!("mask {}: use a .png or .npy file", path.display()),
    };
    if shape != (rows, cols) {
        bail!("mask {}: shape {}x{} does not match the {rows}x{cols} detector", path.display(), shape.0, shape.1);
    }
    if v.iter().any(|x| !x.is_finite()) {
        bail!("mask {}: contains NaN or infinite values", path.display());
    }
    Ok(v)
}

fn read_npy_f32(path: &Path) -> Result<((usize, usize), Vec<f32>)> {
    use ndarray::Array2;
    use ndarray_npy::read_npy;
    fn conv<T: Copy>(a: Array2<T>, f: impl Fn(T) -> f32) -> ((usize, usize), Vec<f32>) {
        let d = a.dim();
        (d, a.iter().map(|&x| f(x)).collect())
    }
    if let Ok(a) = read_npy::<_, Array2<f32>>(path) {
        return Ok(conv(a, |x| x));
    }
    if let Ok(a) = read_npy::<_, Array2<f64>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<bool>>(path) {
        return Ok(conv(a, |x| x as u8 as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u8>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i64>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i32>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u16>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<i8>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    if let Ok(a) = read_npy::<_, Array2<u32>>(path) {
        return Ok(conv(a, |x| x as f32));
    }
    match read_npy::<_, Array2<f32>>(path) {
        Err(e) => bail!("mask {}: not a 2-D float/int/bool .npy array: {e}", path.display()),
        Ok(_) => unreachable!(),
    }
}

/// Parse `R0:R1,C0:C1`.
pub fn parse_roi(s: &str) -> Result<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let err = || anyhow::anyhow!("--roi {s:?}: expected R0:R1,C0:C1 (half-open scan rows and columns)");
    let (a, b) = s.split_once(',').ok_or_else(err)?;
    let rng = |t: &str| -> Result<std::ops::Range<usize>> {
        let (x, y) = t.split_once(':').ok_or_else(err)?;
        Ok(x.trim().parse().map_err(|_| err())?..y.trim().parse().map_err(|_| err())?)
    };
    Ok((rng(a)?, rng(b)?))
}

/// The energy options of the command line, checked.
pub fn energy_options(e: &EnergyArgs) -> Result<EnergyOptions> {
    if let Some(d) = e.dispersion
        && !(d.is_finite() && d != 0.0)
    {
        bail!("--dispersion {d}: must be a non-zero number of eV per channel");
    }
    if e.offset.is_some() && e.dispersion.is_none() {
        bail!("--offset needs --dispersion (eV per channel)");
    }
    Ok(EnergyOptions { reverse: e.reverse_energy, dispersion: e.dispersion, offset: e.offset })
}

/// Conversion options with the tuning knobs filled in.
pub fn convert_options(budget: u64, t: &Tuning) -> ConvertOptions {
    ConvertOptions {
        memory_budget: budget,
        deflate_level: t.deflate_level(),
        no_space_check: t.no_space_check,
        fail_write_after: t.fail_write_after,
        timing: t.timing,
        ..Default::default()
    }
}

/// What the conversion masks in the overviews it stores: None with `--keep-bad-pixels`, else
/// the pixels of `--bad-pixels PATH` (the hot and dead ones are found during the conversion).
pub fn bad_pixels_option(cli: &Cli, ds: &dyn crate::dataset::Dataset) -> Result<Option<Vec<usize>>> {
    let (dr, dc) = ds.det();
    Ok(if cli.keep_bad_pixels { None } else { Some(crate::cli::common::user_bad_pixels(cli, dr, dc)?) })
}

/// The FFT options of a run with the tuning knobs filled in.
pub fn run_options(t: &Tuning) -> fft::RunOptions {
    fft::RunOptions {
        group_delay: t.fft_group_delay,
        announce_wait: true,
        buffered_output: t.fft_buffered,
        scratch_on_disk: t.fft_scratch_on_disk,
        timing: t.timing,
        ..Default::default()
    }
}
