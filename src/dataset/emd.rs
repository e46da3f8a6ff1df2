//! An EMD datacube as a [`Dataset`]: files emdtui wrote, EMD 1.0 files saved by py4DSTEM, and the
//! older `version_1/.../datacube_000` layout (see [`crate::format::emd::find_datacube`]).

use super::{Dataset, DatasetInfo, FrameBuf, Kind, OpenOptions, ReadScratch, ScanShape};
use crate::error::{Error, Result};
use crate::format::emd::{APP, Layout, datacube_fingerprint, dim_info, find_datacube, pixel_type_of};
use crate::format::h5::{self, Slot, int_attr, open_ro, str_attr};
use hdf5::types::TypeDescriptor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An EMD datacube as a dataset.
pub struct EmdDataset {
    info: DatasetInfo,
    pub path: PathBuf,
    /// HDF5 path of the datacube group.
    pub group: String,
    pub layout: Layout,
    pub shape: [usize; 4],
    pub chunks: Option<Vec<usize>>,
    pub compression: String,
    fingerprint: String,
    slot: Arc<Slot>,
    /// Chunks of whole frames `(1, k, Qx, Qy)` with only shuffle/deflate: read raw chunks under the
    /// HDF5 lock and decompress outside it, so parallel readers decompress in parallel.
    direct: Option<Direct>,
    /// A float datacube: read as round(value * scale) uint32 counts (see [`super::float`]).
    float: Option<f32>,
}

#[derive(Debug, Clone, Copy)]
struct Direct {
    k: usize,
    shuffle: bool,
    deflate: bool,
    /// Bitshuffle + LZ4 (HDF5 filter 32008).
    bitshuffle: bool,
}

/// How compressed chunks of `d` (chunked one scan row segment of whole frames) are read
/// directly, bypassing HDF5's filter pipeline; None when HDF5 reads them as well or better.
fn direct_read(
    d: &hdf5::Dataset,
    chunks: Option<&[usize]>,
    filters: &[hdf5::filters::Filter],
    shape: [usize; 4],
) -> Option<Direct> {
    match (chunks, filters) {
        (Some(c), fl) if c.len() == 4 && c[0] == 1 && c[2] == shape[2] && c[3] == shape[3] && c[1] >= 1 => {
            let (shuffle, deflate) = match fl {
                [] => (false, false),
                [hdf5::filters::Filter::Deflate(_)] => (false, true),
                [hdf5::filters::Filter::Shuffle, hdf5::filters::Filter::Deflate(_)] => (true, true),
                _ => (false, false),
            };
            let bitshuffle = matches!(fl, [hdf5::filters::Filter::User(id, _)] if *id as u32 == crate::format::bitshuffle::FILTER_ID);
            // uncompressed chunks are read fine by HDF5 itself; only compressed ones benefit
            // (and the raw chunk bytes must be in the native type: unsigned only)
            let little = h5::is_little_endian(d);
            let native = little && matches!(d.dtype().and_then(|t| t.to_descriptor()), Ok(TypeDescriptor::Unsigned(_)));
            ((bitshuffle || (deflate && (fl.len() == 1 || shuffle))) && native).then_some(Direct {
                k: c[1],
                shuffle,
                deflate,
                bitshuffle,
            })
        }
        _ => None,
    }
}

/// The pixel type a datacube is read as, its float scale (None for integers) and what the
/// metadata says about its type.
fn read_type(
    d: &hdf5::Dataset,
    path: &Path,
    dpath: &str,
) -> Result<(crate::format::mib::PixelType, Option<f32>, String)> {
    Ok(match super::float::float_scale(d, path)? {
        Some(f) => (crate::format::mib::PixelType::U32, Some(f.scale), f.note()),
        None => {
            let pt = pixel_type_of(d, path, dpath)?;
            (pt, None, pt.name().into())
        }
    })
}

impl EmdDataset {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let f = open_ro(path)?;
        if let Ok(app) = f.group(APP)
            && int_attr(&app, "complete") == Some(0)
        {
            return Err(Error::format(
                path,
                "incomplete EMD file: its conversion was interrupted; run `emdtui convert` again",
            ));
        }
        let (group, layout) = find_datacube(&f, path)?;
        let dpath = format!("{group}/data");
        let d = f.dataset(&dpath).map_err(|e| Error::format(path, format!("{dpath}: {e}")))?;
        let sh = d.shape();
        if sh.len() != 4 {
            return Err(Error::format(
                path,
                format!("{dpath} has shape {sh:?}: expected 4 dimensions (Rx, Ry, Qx, Qy)"),
            ));
        }
        if sh.contains(&0) {
            return Err(Error::format(path, format!("{dpath} has shape {sh:?}: empty axis")));
        }
        let shape = [sh[0], sh[1], sh[2], sh[3]];
        let (pixel_type, float, dtype) = read_type(&d, path, &dpath)?;
        let g = f.group(&group).map_err(h5::err(path))?;
        let first = if layout == Layout::Emd1 { 0 } else { 1 };
        let mut dims = Vec::new();
        for (k, &len) in shape.iter().enumerate() {
            dims.push(dim_info(&g, k + first, len, path, &group)?);
        }
        let mut metadata: Vec<(String, String)> = vec![
            ("file".into(), path.display().to_string()),
            (
                "format".into(),
                match layout {
                    Layout::Emd1 => "EMD 1.0".into(),
                    Layout::Legacy => "EMD 0.x (legacy datacube layout)".into(),
                },
            ),
            ("datacube".into(), format!("/{dpath}")),
            ("shape".into(), format!("{} x {} scan, {} x {} detector", shape[0], shape[1], shape[2], shape[3])),
            ("dtype".into(), dtype),
        ];
        let chunks = d.chunk();
        let filters = d.filters();
        let direct = direct_read(&d, chunks.as_deref(), &filters, shape);
        let compression = if filters.is_empty() {
            "none".to_string()
        } else {
            filters.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join("+")
        };
        let storage = chunks.as_ref().map(|c| format!("chunks {c:?}")).unwrap_or_else(|| "contiguous".into());
        metadata.push(("storage".into(), format!("{storage}, compression {compression}")));
        for (k, d) in dims.iter().enumerate() {
            if let Some((_, step, name, units)) = d {
                metadata.push((format!("dim{}", k + first), format!("{name}: {step} {units}")));
            }
        }
        if let Some(s) = str_attr(&g, "emdtui_source_path") {
            metadata.push(("source".into(), s));
        }
        let mut warnings = Vec::new();
        if opts.scan.is_some_and(|(r, c)| (r, c) != (shape[0], shape[1])) {
            warnings.push(format!(
                "--scan is ignored for EMD files: the scan shape is {}x{} from the datacube",
                shape[0], shape[1]
            ));
        }
        let fingerprint = datacube_fingerprint(&d, path)?;
        let bytes_on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let info = DatasetInfo {
            path: path.to_path_buf(),
            kind: Kind::Emd,
            mode: super::detect_mode("EMD datacube", shape[2], shape[3], opts.mode),
            scan: ScanShape::new(shape[0], shape[1], "from the EMD datacube shape"),
            det_rows: shape[2],
            det_cols: shape[3],
            pixel_type,
            bytes_on_disk,
            metadata,
            warnings,
        };
        let slot = Arc::new(Mutex::new(Some((f, d))));
        h5::register_reader(path, &slot);
        Ok(EmdDataset {
            info,
            path: path.to_path_buf(),
            group,
            layout,
            shape,
            chunks,
            compression,
            fingerprint,
            slot,
            direct,
            float,
        })
    }

    fn read_block<T: hdf5::H5Type + Copy>(
        &self,
        d: &hdf5::Dataset,
        start: usize,
        count: usize,
        out: &mut [T],
    ) -> Result<()> {
        let [_, ry, qx, qy] = self.shape;
        let npx = qx * qy;
        let mut p = start;
        let end = start + count;
        let e = h5::err(&self.path);
        while p < end {
            let (r, c) = (p / ry, p % ry);
            let off = (p - start) * npx;
            if c == 0 && end - p >= ry {
                // whole rows at once
                let nr = (end - p) / ry;
                let a: ndarray::Array4<T> = d.read_slice(ndarray::s![r..r + nr, .., .., ..]).map_err(&e)?;
                out[off..off + nr * ry * npx].copy_from_slice(a.as_slice().unwrap());
                p += nr * ry;
            } else {
                let n = (ry - c).min(end - p);
                let a: ndarray::Array3<T> = d.read_slice(ndarray::s![r, c..c + n, .., ..]).map_err(&e)?;
                out[off..off + n * npx].copy_from_slice(a.as_slice().unwrap());
                p += n;
            }
        }
        Ok(())
    }
}

impl EmdDataset {
    fn handle(&self) -> Result<std::sync::MutexGuard<'_, Option<(hdf5::File, hdf5::Dataset)>>> {
        let mut g = self.slot.lock().unwrap();
        if g.is_none() {
            let f = open_ro(&self.path)?;
            let d = f.dataset(&format!("{}/data", self.group)).map_err(h5::err(&self.path))?;
            *g = Some((f, d));
        }
        Ok(g)
    }

    /// The stored (filtered) bytes of chunk (r, c0) into `raw`; false when the chunk was never written.
    fn read_raw_chunk(&self, r: usize, c0: usize, raw: &mut Vec<u8>) -> Result<bool> {
        let g = self.handle()?;
        let (_, d) = g.as_ref().expect("handle() opened the file");
        h5::read_chunk_raw(&self.path, d, &[r as u64, c0 as u64, 0, 0], raw)
    }
}

impl Dataset for EmdDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        self.shape[0] * self.shape[1]
    }
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, rs: &mut ReadScratch) -> Result<()> {
        let n = self.shape[0] * self.shape[1];
        if start + count > n {
            return Err(Error::Invalid(format!("positions {start}..{} outside the scan of {n}", start + count)));
        }
        let npx = self.shape[2] * self.shape[3];
        if out.pixel_type() != self.info.pixel_type {
            *out = FrameBuf::new(self.info.pixel_type);
        }
        out.resize(count * npx);
        if let Some(dr) = self.direct {
            let elem = self.info.pixel_type.bytes();
            let cbytes = dr.k * npx * elem;
            let (raw, chunk) = (&mut rs.emd_raw, &mut rs.emd_chunk);
            chunk.resize(cbytes, 0);
            let plain = !(dr.bitshuffle || dr.deflate || (dr.shuffle && elem > 1));
            let ry = self.shape[1];
            let mut p = start;
            while p < start + count {
                let (r, c) = (p / ry, p % ry);
                let c0 = c - c % dr.k;
                let n = (c0 + dr.k).min(ry).min(c + (start + count - p)) - c;
                let stored = self.read_raw_chunk(r, c0, raw)?;
                let data: &[u8] = if stored && plain && raw.len() == cbytes {
                    raw // stored as is: no decode copy
                } else if stored {
                    if dr.bitshuffle {
                        crate::format::bitshuffle::decompress(&self.path, raw, chunk, elem)?;
                    } else {
                        h5::decode_chunk(&self.path, raw, chunk, elem, dr.shuffle && elem > 1, dr.deflate)?;
                    }
                    chunk
                } else {
                    chunk.fill(0); // never written: fill value
                    chunk
                };
                let src = &data[(c - c0) * npx * elem..(c - c0 + n) * npx * elem];
                let off = (p - start) * npx;
                // little-endian bytes into the typed buffer
                crate::with_frames!(out, v => bytemuck::cast_slice_mut(&mut v[off..off + n * npx]).copy_from_slice(src));
                p += n;
            }
            return Ok(());
        }
        let g = self.handle()?;
        let (_, d) = g.as_ref().unwrap();
        if let (Some(scale), crate::format::frames::FrameBuf::U32(v)) = (self.float, &mut *out) {
            let vals = &mut rs.emd_float;
            vals.resize(v.len(), 0.0);
            self.read_block::<f32>(d, start, count, vals)?;
            super::float::to_counts(vals, scale, v);
            return Ok(());
        }
        crate::with_frames!(out, v => self.read_block(d, start, count, v))
    }
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}
