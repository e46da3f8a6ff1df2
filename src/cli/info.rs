//! `emdtui info`, `emdtui export --frame`, `emdtui synth`.

use crate::cli::common::{calib_text, write_f32};
use crate::cli::{ExportArgs, OpenArgs, SynthArgs};
use crate::compute::display::{Colormap, Scale};
use crate::dataset::{self, Dataset, FrameBuf, MibDataset, ReadScratch};
use crate::format::export::{self, ImageData, ImageFormat};
use crate::format::synth::{self, SynthSpec};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::Path;

fn is_emd(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("emd" | "h5" | "hdf5" | "py4dstem")
    )
}

/// JSON summary of a `.mib` acquisition (keys documented in the README).
pub fn mib_json(ds: &MibDataset) -> serde_json::Value {
    let i = ds.info();
    let h = &ds.set.header;
    json!({
        "path": i.path,
        "kind": "mib",
        "files": ds.set.parts.iter().map(|p| p.path.display().to_string()).collect::<Vec<_>>(),
        "size_bytes": i.bytes_on_disk,
        "detector": {"rows": i.det_rows, "cols": i.det_cols, "chips": h.num_chips, "layout": h.layout},
        "counter_depth": h.counter_depth(),
        "stored_depth": h.pixel_depth,
        "raw": h.is_raw(),
        "dtype": i.pixel_type.name(),
        "frames": ds.set.n_frames(),
        "frame_bytes": h.stride(),
        "scan": {"rows": i.scan.rows, "cols": i.scan.cols, "reason": i.scan.reason,
                 "skip_frames": i.scan.skip, "flyback": i.scan.flyback,
                 "positions_present": ds.positions_present()},
        "exposure_s": h.shutter_s,
        "acquired": h.timestamp,
        "thresholds_kev": h.thresholds_kev,
        "header": h,
        "hdr": ds.set.acq.as_ref().map(|a| a.fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()),
        "mode": i.mode,
        "warnings": i.warnings,
    })
}

/// What `emdtui info --json FILE` prints: a `.mib` (with its bad pixels and remembered
/// calibration), an EMD datacube or a spectrum-image EMD.
pub fn info_json(file: &Path, open: &OpenArgs, cache_dir: Option<&Path>) -> Result<serde_json::Value> {
    let opts = open.options()?;
    if is_emd(file) {
        if let Some(si) = crate::format::emd::read_spectrum_image(file)? {
            return Ok(spectrum_json(file, &si));
        }
        return crate::cli::emd_info::json_of(file, &opts);
    }
    let ds = MibDataset::open(file, &opts)?;
    let (bad, cal) = mib_extras(&ds, cache_dir)?;
    let mut j = mib_json(&ds);
    j["calibration"] = json!(cal);
    j["bad_pixels"] = match &bad {
        Some(b) => json!({
            "frames_sampled": b.frames,
            "hot": b.coords(&b.hot),
            "dead": b.coords(&b.dead),
            "too_few_frames": b.too_few_frames,
            "note": b.too_few_frames.then_some(crate::compute::badpix::TOO_FEW_FRAMES),
        }),
        None => serde_json::Value::Null,
    };
    Ok(j)
}

/// The hot and dead pixels found in a sample of frames (none without frames) and the
/// remembered calibration of a `.mib`.
fn mib_extras(
    ds: &MibDataset,
    cache_dir: Option<&Path>,
) -> Result<(Option<crate::compute::badpix::BadPixels>, crate::compute::calib::Calibration)> {
    let bad = if ds.positions_present() > 0 { Some(crate::ops::dpc::bad_pixels(ds, &[])?.1) } else { None };
    Ok((bad, crate::ops::calib::stored(ds, cache_dir)))
}

/// `emdtui info FILE`: a `.mib` (with its bad pixels and remembered calibration) or an EMD.
pub fn run_info(file: &Path, json_out: bool, open: &OpenArgs, cache_dir: Option<&Path>) -> Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(&info_json(file, open, cache_dir)?)?);
        return Ok(());
    }
    let opts = open.options()?;
    if is_emd(file) {
        if let Some(si) = crate::format::emd::read_spectrum_image(file)? {
            return spectrum_emd_info(file, &si);
        }
        return crate::cli::emd_info::run(file, json_out, &opts);
    }
    let ds = MibDataset::open(file, &opts)?;
    let (bad, cal) = mib_extras(&ds, cache_dir)?;
    let i = ds.info();
    for (k, v) in &i.metadata {
        println!("{k:>12}  {v}");
    }
    let mode = match i.mode.mode {
        dataset::Mode::Eels => "EELS spectra",
        dataset::Mode::Diffraction => "diffraction",
    };
    println!("{:>12}  {mode} ({})", "mode", i.mode.reason);
    let h = &ds.set.header;
    println!("{:>12}  {} bytes header + {} bytes pixels per frame", "frame", h.header_bytes, h.payload_bytes);
    println!("{:>12}  {}", "dtype", i.pixel_type.name());
    println!("{:>12}  {}", "calibration", calib_text(&cal));
    if let Some(b) = bad.as_ref().filter(|b| b.too_few_frames) {
        println!("{:>12}  {} ({} sampled)", "bad pixels", crate::compute::badpix::TOO_FEW_FRAMES, b.frames);
    } else if let Some(b) = &bad {
        let hot = b.coords(&b.hot);
        let shown: Vec<String> = hot.iter().take(20).map(|(r, c)| format!("({r},{c})")).collect();
        println!(
            "{:>12}  {} hot (row,col) {}{}; {} dead",
            "bad pixels",
            hot.len(),
            shown.join(" "),
            if hot.len() > 20 { " ..." } else { "" },
            b.dead.len()
        );
    }
    for w in &i.warnings {
        println!("{:>12}  {w}", "warning");
    }
    Ok(())
}

/// `info --json` of a 3-D spectrum-image EMD (emdtui's or mib-viewer's layout).
fn spectrum_json(file: &Path, si: &crate::format::emd::SpectrumImageData) -> serde_json::Value {
    let [r, c, e] = si.shape;
    json!({
        "path": file,
        "kind": "emd",
        "layout": si.layout,
        "spectrum_image": format!("/{}/data", si.group),
        "shape": si.shape,
        "dtype": si.dtype,
        "size_bytes": std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        "scan": {"rows": r, "cols": c},
        "energy": {"channels": e, "offset": si.energy_offset, "step": si.energy_step, "units": si.energy_units},
        "mode": {"mode": "eels", "reason": format!("3-D spectrum-image EMD ({:?} layout)", si.layout)},
    })
}

/// `emdtui info` of a 3-D spectrum-image EMD (emdtui's or mib-viewer's layout).
fn spectrum_emd_info(file: &Path, si: &crate::format::emd::SpectrumImageData) -> Result<()> {
    let [r, c, e] = si.shape;
    let reason = format!("3-D spectrum-image EMD ({:?} layout)", si.layout);
    println!("{:>12}  {}", "file", file.display());
    println!("{:>12}  /{}/data ({:?} layout)", "spectra", si.group, si.layout);
    println!("{:>12}  {r} x {c} scan, {e} channels ({})", "shape", si.dtype);
    println!("{:>12}  {} + {} per channel, {}", "energy", si.energy_offset, si.energy_step, si.energy_units);
    println!("{:>12}  EELS spectra ({reason})", "mode");
    Ok(())
}

/// `synth`; `scan` is the global `--scan` (the scan written, default 32x32).
pub fn run_synth(a: &SynthArgs, scan: Option<&str>) -> Result<()> {
    let scan = scan.unwrap_or("32x32");
    let (rows, cols) =
        dataset::scan::parse_rxc(scan).with_context(|| format!("--scan {scan:?}: expected ROWSxCOLS"))?;
    if a.defocus {
        // a defocused-probe scan for tcBF (64x64 detector, 12-bit, with .hdr)
        let spec = crate::format::synth_tcbf::ParallaxSpec { rows, cols, seed: a.seed, ..Default::default() };
        spec.write(&a.output)?;
        eprintln!(
            "wrote {} (defocused probe: parallax {} scan px per detector px, rotation {} deg)",
            a.output.display(),
            spec.scale,
            spec.rotation_deg
        );
        return Ok(());
    }
    let spec = SynthSpec {
        rows,
        cols,
        det: if a.quad { 512 } else { a.detector },
        depth: a.depth,
        raw: a.raw,
        hdr: a.hdr,
        frames: a.frames,
        images_per_file: a.images_per_file,
        seed: a.seed,
        nx1: a.nx1,
        ..Default::default()
    };
    let total = spec.frames.unwrap_or(rows * cols) as u64;
    let pb = crate::cli::progress::frames_bar(total, "synth");
    let paths = synth::write(&a.output, &spec, &|d, _| pb.set_position(d))?;
    pb.finish_and_clear();
    for p in paths {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

pub fn run_export(a: &ExportArgs, open: &OpenArgs) -> Result<()> {
    if a.fft_q.is_some() || a.fft_k.is_some() {
        return crate::cli::fft::run_export(a, open);
    }
    let fmt = export::format_of(&a.output)?;
    export::check_output_dir(&a.output)?;
    let disp = a.style.display(Colormap::Gray, Scale::Linear)?;
    let ds = dataset::open(&a.file, &open.options()?)?;
    let s = ds.scan().clone();
    let pos = match (&a.at, a.frame) {
        (Some(at), _) => {
            let (r, c): (usize, usize) = crate::cli::parse_pair(at, "--at")?;
            if r >= s.rows || c >= s.cols {
                bail!("--at {r},{c} is outside the {}x{} scan", s.rows, s.cols);
            }
            r * s.cols + c
        }
        (None, Some(f)) => f,
        (None, None) => bail!("say which frame: --frame N or --at ROW,COL"),
    };
    if pos >= s.positions() {
        bail!("{}: frame {pos} is outside the scan ({} positions)", a.file.display(), s.positions());
    }
    let (rows, cols) = ds.det();
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    ds.read_positions(pos, 1, &mut buf, &mut ReadScratch::default())?;
    match fmt {
        ImageFormat::Npy | ImageFormat::Tiff => {
            let d = match &buf {
                FrameBuf::U8(v) => ImageData::U8(v),
                FrameBuf::U16(v) => ImageData::U16(v),
                FrameBuf::U32(v) => ImageData::U32(v),
            };
            if fmt == ImageFormat::Npy {
                export::write_npy(&a.output, rows, cols, d)?
            } else {
                export::write_tiff(&a.output, rows, cols, d)?
            }
        }
        ImageFormat::Png => {
            let v: Vec<f32> = buf.to_u32().iter().map(|&x| x as f32).collect();
            write_f32(&a.output, rows, cols, &v, &disp)?;
        }
    }
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
