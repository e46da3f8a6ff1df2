//! A 3-D spectrum-image EMD (emdtui's `convert --sum-short-axis` output, or mib-viewer's "Save
//! EELS as EMD" layout) as a [`Dataset`] in EELS mode: one "frame" of 1 x channels per scan
//! position, so the TUI and `info` open it like any other source. The spectra are float32 on
//! disk; [`Dataset::read_positions`] hands them out rounded to unsigned integers (the frame
//! buffers hold counts), while the EELS workflow (`ops::eels`) reads the stored floats exactly.

use super::{Dataset, DatasetInfo, FrameBuf, Kind, Mode, ModeChoice, ModeInfo, OpenOptions, ReadScratch, ScanShape};
use crate::error::{Error, Result};
use crate::format::emd::{SpectrumLayoutKind, find_spectrum_image};
use crate::format::h5::{self, open_ro};
use crate::format::mib::PixelType;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A spectrum-image EMD as a dataset (positions x channels).
pub struct SpectrumEmdDataset {
    info: DatasetInfo,
    pub path: PathBuf,
    /// HDF5 path of the spectrum-image group.
    pub group: String,
    pub layout: SpectrumLayoutKind,
    /// (scan rows, scan cols, channels).
    pub shape: [usize; 3],
    fingerprint: String,
    handle: Mutex<Option<(hdf5::File, hdf5::Dataset)>>,
}

/// Whether `path` is an HDF5 file holding a spectrum image (either layout).
pub fn is_spectrum_emd(path: &Path) -> bool {
    open_ro(path).ok().is_some_and(|f| find_spectrum_image(&f).is_some())
}

impl SpectrumEmdDataset {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let f = open_ro(path)?;
        let Some((group, layout)) = find_spectrum_image(&f) else {
            return Err(Error::format(path, "no 3-D spectrum image found"));
        };
        if let Ok(app) = f.group(crate::format::emd::APP)
            && h5::int_attr(&app, "complete") == Some(0)
        {
            return Err(Error::format(
                path,
                "incomplete EMD file: its conversion was interrupted; run `emdtui convert` again",
            ));
        }
        let dpath = format!("{group}/data");
        let d = f.dataset(&dpath).map_err(|e| Error::format(path, format!("{dpath}: {e}")))?;
        let sh = d.shape();
        let shape = [sh[0], sh[1], *sh.last().unwrap_or(&0)];
        if shape.contains(&0) {
            return Err(Error::format(path, format!("{dpath} has shape {sh:?}: empty axis")));
        }
        let lname = match layout {
            SpectrumLayoutKind::Emdtui => "emdtui spectrum image",
            SpectrumLayoutKind::MibViewer => "mib-viewer \"Save EELS as EMD\"",
        };
        let mut warnings = Vec::new();
        if opts.mode == ModeChoice::Diffraction {
            warnings.push("--mode diffraction is ignored: a 3-D spectrum image holds spectra".into());
        }
        if opts.scan.is_some_and(|(r, c)| (r, c) != (shape[0], shape[1])) {
            warnings.push(format!(
                "--scan is ignored for EMD files: the scan shape is {}x{} from the spectrum image",
                shape[0], shape[1]
            ));
        }
        let reason = format!("3-D spectrum-image EMD ({lname}): {}-channel spectra, one per scan position", shape[2]);
        let metadata = vec![
            ("file".into(), path.display().to_string()),
            ("format".into(), format!("EMD spectrum image ({lname})")),
            ("spectrum image".into(), format!("/{dpath}")),
            ("shape".into(), format!("{} x {} scan, {} channels", shape[0], shape[1], shape[2])),
            ("stored shape".into(), format!("{sh:?}")),
        ];
        let fingerprint = fingerprint(&d, path, shape)?;
        let info = DatasetInfo {
            path: path.to_path_buf(),
            kind: Kind::Emd,
            scan: ScanShape::new(shape[0], shape[1], "from the spectrum-image shape"),
            det_rows: 1,
            det_cols: shape[2],
            pixel_type: PixelType::U32,
            bytes_on_disk: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            mode: ModeInfo { mode: Mode::Eels, reason },
            metadata,
            warnings,
        };
        Ok(SpectrumEmdDataset {
            info,
            path: path.to_path_buf(),
            group,
            layout,
            shape,
            fingerprint,
            handle: Mutex::new(Some((f, d))),
        })
    }

    /// Spectra of scan row `r`, columns `c0..c1`, as stored floats (`(c1 - c0) * channels`).
    fn read_row(&self, d: &hdf5::Dataset, r: usize, c0: usize, c1: usize) -> Result<Vec<f32>> {
        let e = h5::err(&self.path);
        let v = if d.ndim() == 4 {
            let a: ndarray::Array2<f32> = d.read_slice(ndarray::s![r, c0..c1, 0, ..]).map_err(e)?;
            a.as_standard_layout().iter().copied().collect()
        } else {
            let a: ndarray::Array2<f32> = d.read_slice(ndarray::s![r, c0..c1, ..]).map_err(e)?;
            a.as_standard_layout().iter().copied().collect()
        };
        Ok(v)
    }
}

/// Identity of a spectrum image: shape and a hash of a few sampled spectra.
fn fingerprint(d: &hdf5::Dataset, path: &Path, shape: [usize; 3]) -> Result<String> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for s in d.shape() {
        h.update(&(s as u64).to_le_bytes());
    }
    let n = shape[0] * shape[1];
    let mut samples: Vec<usize> = (0..8).map(|i| i * n.saturating_sub(1) / 7).collect();
    samples.dedup();
    for p in samples {
        let (r, c) = (p / shape[1], p % shape[1]);
        let v: Vec<f32> = if d.ndim() == 4 {
            d.read_slice_1d(ndarray::s![r, c, 0, ..]).map_err(h5::err(path))?.to_vec()
        } else {
            d.read_slice_1d(ndarray::s![r, c, ..]).map_err(h5::err(path))?.to_vec()
        };
        h.update(bytemuck::cast_slice(&v));
    }
    Ok(format!("si-emd:{}x{}x{}:{:016x}", shape[0], shape[1], shape[2], h.digest()))
}

impl Dataset for SpectrumEmdDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        self.shape[0] * self.shape[1]
    }
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, _s: &mut ReadScratch) -> Result<()> {
        let [rows, cols, ch] = self.shape;
        if start + count > rows * cols {
            return Err(Error::Invalid(format!(
                "positions {start}..{} outside the scan of {}",
                start + count,
                rows * cols
            )));
        }
        let mut g = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            let f = open_ro(&self.path)?;
            let d = f.dataset(&format!("{}/data", self.group)).map_err(h5::err(&self.path))?;
            *g = Some((f, d));
        }
        let (_, d) = g.as_ref().expect("opened above");
        let mut vals = Vec::with_capacity(count * ch);
        let mut p = start;
        while p < start + count {
            let (r, c) = (p / cols, p % cols);
            let n = (cols - c).min(start + count - p);
            vals.extend(self.read_row(d, r, c, c + n)?);
            p += n;
        }
        *out = FrameBuf::U32(vals.iter().map(|&v| if v.is_finite() { v.max(0.0).round() as u32 } else { 0 }).collect());
        Ok(())
    }
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_spectrum_image_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.emd");
        hdf5::File::create(&p).unwrap().create_group("nothing").unwrap();
        let e = SpectrumEmdDataset::open(&p, &OpenOptions::default()).err().expect("no spectrum image").to_string();
        assert!(e.contains("x.emd") && e.contains("no 3-D spectrum image"), "{e}");
        assert!(!is_spectrum_emd(&p));
    }
}
