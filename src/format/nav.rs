//! Navigation images recorded beside a 4D-STEM or EELS scan: Nion Swift `.ndata` (a zip holding
//! `data.npy` and `metadata.json`), Nion Swift `.h5` (a `data` dataset with a JSON `properties`
//! attribute), `.npy` and `.tif`.
//!
//! The files are untrusted input: every size is checked against [`MAX_ELEMENTS`] before anything
//! is allocated, a zip member is read only as far as its `.npy` header promises (a zip bomb
//! inflates no further than that), and every failure is one error naming the file.

use crate::error::{Error, Result};
use crate::format::npy;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest navigation image accepted (64 Mi pixels: a 8192 x 8192 scan).
pub const MAX_ELEMENTS: usize = 1 << 26;
/// Largest `metadata.json` / `properties` read.
const MAX_METADATA: u64 = 16 << 20;

/// Calibration of one axis as Nion Swift stores it: value = offset + scale * index, in `units`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AxisCalibration {
    pub offset: f64,
    pub scale: f64,
    pub units: String,
}

/// Which kind of file the image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NavKind {
    Ndata,
    NionH5,
    Npy,
    Tiff,
}

/// A 2-D navigation image, values as `f32` in row-major order.
#[derive(Debug, Clone, Serialize)]
pub struct NavImage {
    pub path: PathBuf,
    pub kind: NavKind,
    pub rows: usize,
    pub cols: usize,
    /// The stored element type (`float32`, `uint16`, ...).
    pub dtype: String,
    pub title: Option<String>,
    /// Per axis (rows, cols) when the file has one.
    pub calibration: Option<[AxisCalibration; 2]>,
    /// The file's own metadata (Nion `metadata.json` / `properties`), `null` when none.
    pub metadata: serde_json::Value,
    #[serde(skip)]
    pub data: Vec<f32>,
}

impl NavImage {
    /// Minimum and maximum of the finite values (`None` when there is none).
    pub fn range(&self) -> Option<(f32, f32)> {
        self.data.iter().filter(|v| v.is_finite()).fold(None, |acc, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    }

    /// `Err` with a message like mib-viewer's when the image does not have the scan's shape.
    pub fn check_scan(&self, scan_rows: usize, scan_cols: usize) -> std::result::Result<(), String> {
        if (self.rows, self.cols) == (scan_rows, scan_cols) {
            return Ok(());
        }
        let hint = if (self.rows, self.cols) == (scan_cols, scan_rows) { " (transposed?)" } else { "" };
        Err(format!(
            "{}: navigation image is {}x{} but the scan is {}x{}{hint}",
            self.path.display(),
            self.rows,
            self.cols,
            scan_rows,
            scan_cols
        ))
    }
}

/// Read a navigation image, choosing the reader by extension.
pub fn read(path: &Path) -> Result<NavImage> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "ndata" => read_ndata(path),
        "h5" | "hdf5" => read_nion_h5(path),
        "npy" => read_npy(path),
        "tif" | "tiff" => read_tiff(path),
        _ => Err(Error::unsupported(path, "navigation image must be .ndata, .h5 (Nion Swift), .npy or .tif")),
    }
}

/// Squeeze leading axes of length 1; anything but 2-D left is refused.
fn image_shape(path: &Path, shape: &[usize]) -> Result<(usize, usize)> {
    let mut s: &[usize] = shape;
    while s.len() > 2 && s[0] == 1 {
        s = &s[1..];
    }
    match s {
        [r, c] if *r > 0 && *c > 0 => Ok((*r, *c)),
        _ => Err(Error::format(path, format!("navigation image must be 2-D, found shape {shape:?}"))),
    }
}

/// Nion's `dimensional_calibrations` (last two axes) and `title` from a metadata object.
fn nion_fields(meta: &serde_json::Value) -> (Option<String>, Option<[AxisCalibration; 2]>) {
    let title = meta.get("title").and_then(|t| t.as_str()).map(str::to_string);
    let axis = |v: &serde_json::Value| AxisCalibration {
        offset: v.get("offset").and_then(|x| x.as_f64()).unwrap_or(0.0),
        scale: v.get("scale").and_then(|x| x.as_f64()).unwrap_or(1.0),
        units: v.get("units").and_then(|x| x.as_str()).unwrap_or("").to_string(),
    };
    let cal = meta.get("dimensional_calibrations").and_then(|c| c.as_array()).and_then(|c| match c.as_slice() {
        [.., a, b] => Some([axis(a), axis(b)]),
        _ => None,
    });
    (title, cal)
}

fn parse_metadata(path: &Path, text: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(text).map_err(|e| Error::format(path, format!("metadata is not valid JSON: {e}")))
}

fn from_npy(path: &Path, kind: NavKind, a: npy::NpyArray, meta: serde_json::Value) -> Result<NavImage> {
    let (rows, cols) = image_shape(path, &a.header.shape)?;
    let (title, calibration) = nion_fields(&meta);
    Ok(NavImage {
        path: path.to_path_buf(),
        kind,
        rows,
        cols,
        dtype: a.header.dtype.name().to_string(),
        title,
        calibration,
        metadata: meta,
        data: a.data,
    })
}

fn read_npy(path: &Path) -> Result<NavImage> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let a = npy::read(&mut BufReader::new(f), path, MAX_ELEMENTS)?;
    from_npy(path, NavKind::Npy, a, serde_json::Value::Null)
}

fn read_ndata(path: &Path) -> Result<NavImage> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let zerr = |e: zip::result::ZipError| Error::format(path, format!(".ndata is not a readable zip: {e}"));
    let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(zerr)?;
    let meta = match z.by_name("metadata.json") {
        Ok(m) => {
            let mut text = Vec::new();
            m.take(MAX_METADATA + 1)
                .read_to_end(&mut text)
                .map_err(|e| Error::format(path, format!("metadata.json: {e}")))?;
            if text.len() as u64 > MAX_METADATA {
                return Err(Error::format(path, "metadata.json is larger than 16 MiB"));
            }
            parse_metadata(path, &text)?
        }
        Err(zip::result::ZipError::FileNotFound) => serde_json::Value::Null,
        Err(e) => return Err(zerr(e)),
    };
    let member = z.by_name("data.npy").map_err(|e| match e {
        zip::result::ZipError::FileNotFound => Error::format(path, ".ndata has no data.npy"),
        e => zerr(e),
    })?;
    // read as far as the .npy header promises (bounded), whatever the zip entry claims
    let a = npy::read(&mut BufReader::new(member), path, MAX_ELEMENTS)
        .map_err(|e| Error::format(path, format!("data.npy: {}", strip_path(&e, path))))?;
    from_npy(path, NavKind::Ndata, a, meta)
}

/// The message of an error without the leading "PATH: " (it is re-wrapped with the same path).
fn strip_path(e: &Error, path: &Path) -> String {
    let s = e.to_string();
    s.strip_prefix(&format!("{}: ", path.display())).map(str::to_string).unwrap_or(s)
}

/// The element type of a numeric HDF5 dataset, as the `.npy` type it reads into.
fn h5_type(path: &Path, d: &hdf5::Dataset) -> Result<npy::NpyType> {
    use hdf5::types::{FloatSize, IntSize, TypeDescriptor as T};
    let t = d.dtype().and_then(|t| t.to_descriptor()).map_err(crate::format::h5::err(path))?;
    Ok(match t {
        T::Boolean => npy::NpyType::Bool,
        T::Integer(IntSize::U1) => npy::NpyType::I8,
        T::Integer(IntSize::U2) => npy::NpyType::I16,
        T::Integer(IntSize::U4) => npy::NpyType::I32,
        T::Integer(IntSize::U8) => npy::NpyType::I64,
        T::Unsigned(IntSize::U1) => npy::NpyType::U8,
        T::Unsigned(IntSize::U2) => npy::NpyType::U16,
        T::Unsigned(IntSize::U4) => npy::NpyType::U32,
        T::Unsigned(IntSize::U8) => npy::NpyType::U64,
        T::Float(FloatSize::U4) => npy::NpyType::F32,
        T::Float(FloatSize::U8) => npy::NpyType::F64,
        t => return Err(Error::format(path, format!("Nion .h5: dataset 'data' of type {t:?} is not an image"))),
    })
}

fn read_nion_h5(path: &Path) -> Result<NavImage> {
    let f = crate::format::h5::open_ro(path)?;
    let d = f.dataset("data").map_err(|_| Error::format(path, "not a Nion Swift .h5 item (no dataset 'data')"))?;
    let shape = d.shape();
    if shape.iter().try_fold(1usize, |n, &s| n.checked_mul(s)).is_none_or(|n| n > MAX_ELEMENTS) {
        return Err(Error::format(path, format!("Nion .h5: shape {shape:?} is larger than {MAX_ELEMENTS} elements")));
    }
    let dtype = h5_type(path, &d)?;
    image_shape(path, &shape)?;
    let props = crate::format::h5::str_attr(&d, "properties").or_else(|| crate::format::h5::str_attr(&f, "properties"));
    if props.as_ref().is_some_and(|p| p.len() as u64 > MAX_METADATA) {
        return Err(Error::format(path, "properties attribute is larger than 16 MiB"));
    }
    let meta = match props {
        Some(p) => parse_metadata(path, p.as_bytes())?,
        None => serde_json::Value::Null,
    };
    let data: Vec<f32> = d.read_raw::<f32>().map_err(crate::format::h5::err(path))?;
    let a = npy::NpyArray { header: npy::NpyHeader { dtype, big_endian: false, fortran_order: false, shape }, data };
    from_npy(path, NavKind::NionH5, a, meta)
}

fn read_tiff(path: &Path) -> Result<NavImage> {
    use tiff::decoder::{Decoder, DecodingResult};
    let terr = |e: tiff::TiffError| Error::format(path, format!("TIFF: {e}"));
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut d = Decoder::new(BufReader::new(f)).map_err(terr)?;
    let (w, h) = d.dimensions().map_err(terr)?;
    let (rows, cols) = (h as usize, w as usize);
    if rows.checked_mul(cols).is_none_or(|n| n > MAX_ELEMENTS) {
        return Err(Error::format(path, format!("TIFF of {cols}x{rows} is larger than {MAX_ELEMENTS} pixels")));
    }
    match d.colortype().map_err(terr)? {
        tiff::ColorType::Gray(_) => {}
        c => return Err(Error::format(path, format!("TIFF must be one grey channel, found {c:?}"))),
    }
    let (dtype, data): (&str, Vec<f32>) = match d.read_image().map_err(terr)? {
        DecodingResult::U8(v) => ("uint8", v.into_iter().map(f32::from).collect()),
        DecodingResult::U16(v) => ("uint16", v.into_iter().map(f32::from).collect()),
        DecodingResult::U32(v) => ("uint32", v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::U64(v) => ("uint64", v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I8(v) => ("int8", v.into_iter().map(f32::from).collect()),
        DecodingResult::I16(v) => ("int16", v.into_iter().map(f32::from).collect()),
        DecodingResult::I32(v) => ("int32", v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I64(v) => ("int64", v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::F32(v) => ("float32", v),
        DecodingResult::F64(v) => ("float64", v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::F16(v) => ("float16", v.into_iter().map(f32::from).collect()),
    };
    if data.len() != rows * cols {
        return Err(Error::format(path, format!("TIFF holds {} values for {cols}x{rows}", data.len())));
    }
    let meta = serde_json::Value::Null;
    Ok(NavImage {
        path: path.into(),
        kind: NavKind::Tiff,
        rows,
        cols,
        dtype: dtype.into(),
        title: None,
        calibration: None,
        metadata: meta,
        data,
    })
}
