//! Spectrum-image conversion (`convert --sum-short-axis`, automatic in EELS mode): each frame of
//! a spectrometer detector summed over its short axis into one spectrum per scan position,
//! written as a 3-D EMD.

use crate::compute::convert::acquisition_md;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::format::emd::{self};
use crate::jobs::Progress;
use std::path::Path;

/// Options of a spectrum-image conversion (`convert --sum-short-axis`, automatic in EELS mode).
#[derive(Debug, Clone)]
pub struct SpectraOptions {
    /// Detector binning factor (1..=16, dividing both detector axes): channels are binned by it.
    pub bin: usize,
    /// Mean instead of sum over each `bin` x `bin` detector block (then summed over the short
    /// axis, as mib-viewer's "bin then Sum-Y").
    pub mean: bool,
    /// Reverse the channel order.
    pub reverse: bool,
    /// Energy calibration (eV per channel, offset eV) of the unbinned channels.
    pub energy: Option<(f64, f64)>,
    /// gzip level (with shuffle); None: uncompressed.
    pub deflate_level: Option<u32>,
    pub memory_budget: u64,
    pub force: bool,
    pub no_space_check: bool,
}

/// The output of a spectrum-image conversion.
#[derive(Debug, Clone, Copy)]
pub struct SpectraPlan {
    pub layout: crate::compute::eels::SpectrumLayout,
    pub rows: usize,
    pub cols: usize,
    /// Channels after binning.
    pub channels: usize,
    pub bin: usize,
    /// Factor applied to each bin's sum (1, or 1/bin^2 for the mean).
    pub scale: f32,
}

impl SpectraPlan {
    /// Bytes of the (uncompressed) spectrum image.
    pub fn out_bytes(&self) -> u64 {
        (self.rows * self.cols * self.channels * 4) as u64
    }
    /// Bytes of frames read.
    pub fn in_bytes(&self, ds: &dyn Dataset) -> u64 {
        (ds.positions_present() * ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64
    }
}

/// Check the options against the dataset and derive the spectrum image's shape.
pub fn spectra_plan(ds: &dyn Dataset, o: &SpectraOptions) -> Result<SpectraPlan> {
    let layout = crate::compute::eels::SpectrumLayout::of(ds);
    let (dr, dc) = ds.det();
    let path = ds.info().path.display().to_string();
    if !(1..=16).contains(&o.bin) || dr % o.bin != 0 || dc % o.bin != 0 {
        return Err(Error::Invalid(format!(
            "{path}: --bin-detector {} must be 1..16 and divide the {dr}x{dc} detector",
            o.bin
        )));
    }
    let s = ds.scan();
    let scale = if o.mean { 1.0 / (o.bin * o.bin) as f32 } else { 1.0 };
    Ok(SpectraPlan { layout, rows: s.rows, cols: s.cols, channels: layout.channels / o.bin, bin: o.bin, scale })
}

/// Lay out the spectrum-image EMD `part` and fill it band of scan rows by band of scan rows
/// (each band's spectra computed in parallel, at most a quarter of the budget per band).
/// Returns the file (open, not marked complete), bytes read and bytes of data written.
pub fn write_spectra(
    ds: &dyn Dataset,
    part: &Path,
    plan: &SpectraPlan,
    o: &SpectraOptions,
    progress: &Progress,
) -> Result<(hdf5::File, u64, u64)> {
    let (off, step, units) = match o.energy {
        Some((d, off)) => (off + d * (plan.bin as f64 - 1.0) / 2.0, d * plan.bin as f64, "eV"),
        None => ((plan.bin as f64 - 1.0) / 2.0, plan.bin as f64, "channels"),
    };
    let params = serde_json::json!({
        "summed_axis": if plan.layout.along_cols { "detector rows" } else { "detector columns" },
        "reversed": o.reverse, "bin_detector": plan.bin, "bin_mode": if o.mean { "mean" } else { "sum" },
        "stored_channels": plan.layout.channels,
    });
    let spec = emd::SpectrumSpec {
        shape: [plan.rows, plan.cols, plan.channels],
        deflate_level: o.deflate_level,
        energy_offset: off,
        energy_step: step,
        energy_units: units.into(),
        value_units: if o.mean { "mean counts".into() } else { "counts".into() },
        acquisition: acquisition_md(ds),
        source_fingerprint: ds.fingerprint(),
        source_path: ds.info().path.display().to_string(),
        params: params.to_string(),
    };
    let (file, data) = emd::create_spectrum_skeleton(part, &spec)?;
    let ch_in = plan.layout.channels;
    let row_bytes = (plan.cols * ch_in * 4) as u64;
    let band = ((o.memory_budget / 4) / row_bytes.max(1)).clamp(1, plan.rows as u64) as usize;
    progress.set_total((plan.rows * plan.cols) as u64);
    let (mut si, mut out) = (Vec::new(), Vec::new());
    for r0 in (0..plan.rows).step_by(band) {
        let r1 = (r0 + band).min(plan.rows);
        let n = (r1 - r0) * plan.cols;
        si.clear();
        si.resize(n * ch_in, 0f32);
        crate::compute::eels::spectra(
            ds,
            r0 * plan.cols..r1 * plan.cols,
            &plan.layout,
            o.memory_budget,
            progress,
            &mut si,
        )?;
        if o.reverse {
            crate::compute::eels::reverse_channels(&mut si, ch_in);
        }
        out.clear();
        for s in si.chunks_exact(ch_in) {
            out.extend(crate::compute::eels::bin_channels(s, plan.bin, plan.scale).into_iter().take(plan.channels));
        }
        let v = ndarray::ArrayView3::from_shape((r1 - r0, plan.cols, plan.channels), &out)
            .map_err(|e| Error::Invalid(format!("spectrum band: {e}")))?;
        data.write_slice(&v, ndarray::s![r0..r1, .., ..]).map_err(|e| Error::hdf5(part, e))?;
    }
    Ok((file, plan.in_bytes(ds), plan.out_bytes()))
}
