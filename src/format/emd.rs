//! EMD 1.0 (HDF5) layout: see `../shared/docs/emd-layout.md`.
//!
//! * Writing: [`create_skeleton`] lays out the exact py4DSTEM-flavoured EMD 1.0 tree (root attrs,
//!   `datacube_root`, calibration, `datacube` with `data` + `dim0..dim3`, acquisition metadata) and the
//!   plain `/emdtui` group; the conversion fills the chunks.
//! * Caches: small results live under `datacube_root/datacube/cached/<name>` (RealSlice /
//!   DiffractionSlice), large app-private ones under `/emdtui/cache/<name>`. Every cache group carries
//!   the provenance attributes written by [`stamp_cache`] and checked by [`cache_validity`]:
//!   `emdtui_params` (JSON), `emdtui_version`, `emdtui_cache_format`, `emdtui_created`, `emdtui_source`
//!   (fingerprint of the datacube it was computed from). `store::emd` lists and reads them.
//! * Reading: [`find_datacube`] locates the datacube in files emdtui wrote, EMD 1.0 files saved by
//!   py4DSTEM, and the older `version_1/data/datacubes/datacube_000/data` (+ `dim1..dim4`) layout;
//!   `dataset::emd` reads frames from it.
//! * Raw HDF5 calls, locks and the chunk codec are in [`super::h5`].

use super::h5::{self, int_attr, set_int_attr, set_str_attr, str_attr, vstr};
use crate::error::{Error, Result};
use crate::format::mib::PixelType;
use hdf5::types::{IntSize, TypeDescriptor, VarLenUnicode};
use std::path::Path;

/// Version of the cache attribute scheme; bump to invalidate every cache written before.
pub const CACHE_FORMAT_VERSION: i64 = 1;
/// Version of the `/emdtui` group layout.
pub const EMDTUI_FORMAT_VERSION: &str = "1";
pub const ROOT: &str = "datacube_root";
pub const DATACUBE: &str = "datacube_root/datacube";
pub const CACHED: &str = "datacube_root/datacube/cached";
pub const APP: &str = "emdtui";
pub const APP_CACHE: &str = "emdtui/cache";

fn md_string(g: &hdf5::Group, name: &str, v: &str) -> hdf5::Result<()> {
    let d = g.new_dataset::<VarLenUnicode>().shape(()).create(name)?;
    d.write_scalar(&vstr(v))?;
    set_str_attr(&d, "type", "string")
}

fn md_number(g: &hdf5::Group, name: &str, v: f64) -> hdf5::Result<()> {
    let d = g.new_dataset::<f64>().shape(()).create(name)?;
    d.write_scalar(&v)?;
    set_str_attr(&d, "type", "number")
}

fn md_bool(g: &hdf5::Group, name: &str, v: bool) -> hdf5::Result<()> {
    let d = g.new_dataset::<bool>().shape(()).create(name)?;
    d.write_scalar(&v)?;
    set_str_attr(&d, "type", "bool")
}

/// Write a two-entry `dim{k}` dataset (offset, offset + step) with its name and units.
pub fn write_dim(g: &hdf5::Group, k: usize, name: &str, units: &str, offset: f64, step: f64) -> hdf5::Result<()> {
    let d = g
        .new_dataset_builder()
        .with_data(&ndarray::arr1(&[offset, offset + step]))
        .create(format!("dim{k}").as_str())?;
    set_str_attr(&d, "name", name)?;
    set_str_attr(&d, "units", units)
}

/// A metadata value for the acquisition group.
#[derive(Debug, Clone)]
pub enum MdValue {
    Str(String),
    Num(f64),
}

/// Metadata key safe for EMD readers: lower-case `[a-z0-9_]`, never starting with "data" (HyperSpy
/// would load it as a signal) nor with a digit.
pub fn safe_key(k: &str) -> String {
    let mut s: String =
        k.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    let s = if s.is_empty() { "key".to_string() } else { s };
    if s.starts_with("data") || s.starts_with(|c: char| c.is_ascii_digit()) { format!("mib_{s}") } else { s }
}

/// Everything needed to lay out a new EMD file.
#[derive(Debug, Clone)]
pub struct DatacubeSpec {
    /// (Rx, Ry, Qx, Qy) = (scan rows, scan cols, det rows, det cols).
    pub shape: [usize; 4],
    pub pixel_type: PixelType,
    /// A float32 datacube (`--bin-mode mean`); `pixel_type` is then `U32` (same size).
    pub float32: bool,
    pub compress: bool,
    /// Deflate level when `compress` (the declared filter level always matches the level used).
    pub deflate_level: u32,
    /// With `compress`: bitshuffle + LZ4 (filter 32008) instead of shuffle + deflate.
    pub bitshuffle: bool,
    pub r_pixel_size: f64,
    pub r_pixel_units: String,
    pub q_pixel_size: f64,
    pub q_pixel_units: String,
    /// Acquisition metadata (keys are made safe with [`safe_key`]).
    pub acquisition: Vec<(String, MdValue)>,
    /// Fingerprint of the source (`MibSet::fingerprint()`).
    pub source_fingerprint: String,
    pub source_path: String,
}

/// Frames per chunk along the scan columns: whole frames, about 1 MiB per chunk.
pub fn chunk_k(shape: [usize; 4], pixel_type: PixelType) -> usize {
    let fb = shape[2] * shape[3] * pixel_type.bytes();
    ((1usize << 20) / fb.max(1)).clamp(1, shape[1].max(1))
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h1 = xxhash_rust::xxh3::xxh3_64(&[t.to_le_bytes().as_slice(), &std::process::id().to_le_bytes()].concat());
    let h2 = xxhash_rust::xxh3::xxh3_64(&h1.to_le_bytes());
    b[..8].copy_from_slice(&h1.to_le_bytes());
    b[8..].copy_from_slice(&h2.to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The EMD 1.0 header of a new file: the file's attributes (group type, version, UUID, authoring
/// program) and its root group `root` (returned).
fn write_header(f: &hdf5::File, root: &str) -> hdf5::Result<hdf5::Group> {
    set_str_attr(f, "emd_group_type", "file")?;
    set_int_attr(f, "version_major", 1)?;
    set_int_attr(f, "version_minor", 0)?;
    set_str_attr(f, "UUID", &uuid4())?;
    set_str_attr(f, "authoring_program", &format!("emdtui {}", crate::VERSION))?;
    set_str_attr(f, "authoring_user", "")?;
    let g = f.create_group(root)?;
    set_str_attr(&g, "emd_group_type", "root")?;
    set_str_attr(&g, "python_class", "Root")?;
    Ok(g)
}

/// The `/emdtui` group of a new file: its format version, and `complete` = 0 until
/// [`mark_complete`].
fn write_app_group(f: &hdf5::File) -> hdf5::Result<hdf5::Group> {
    let app = f.create_group(APP)?;
    set_str_attr(&app, "format_version", EMDTUI_FORMAT_VERSION)?;
    set_int_attr(&app, "complete", 0)?;
    Ok(app)
}

/// Create a new EMD file at `path` (truncating) with the full layout and an empty `data` dataset;
/// `/emdtui@complete` is 0 until [`mark_complete`]. Returns the file and the data dataset.
pub fn create_skeleton(path: &Path, spec: &DatacubeSpec) -> Result<(hdf5::File, hdf5::Dataset)> {
    let e = h5::err(path);
    // uncompressed: every chunk allocated now, 4 KiB aligned and in chunk order (HDF5 1.10
    // fixed-array index), so the conversion can write them with O_DIRECT at their addresses
    let f = if spec.compress { h5::create_trunc(path)? } else { h5::create_trunc_aligned(path)? };
    let root = write_header(&f, ROOT).map_err(&e)?;
    let mb = root.create_group("metadatabundle").map_err(&e)?;
    set_str_attr(&mb, "emd_group_type", "metadatabundle").map_err(&e)?;
    let cal = mb.create_group("calibration").map_err(&e)?;
    set_str_attr(&cal, "emd_group_type", "metadata").map_err(&e)?;
    set_str_attr(&cal, "python_class", "Calibration").map_err(&e)?;
    md_number(&cal, "R_pixel_size", spec.r_pixel_size).map_err(&e)?;
    md_string(&cal, "R_pixel_units", &spec.r_pixel_units).map_err(&e)?;
    md_number(&cal, "Q_pixel_size", spec.q_pixel_size).map_err(&e)?;
    md_string(&cal, "Q_pixel_units", &spec.q_pixel_units).map_err(&e)?;
    md_bool(&cal, "QR_flip", false).map_err(&e)?;
    md_string(&cal, "_root_treepath", "").map_err(&e)?;
    let tp = cal.create_group("_target_paths").map_err(&e)?;
    set_str_attr(&tp, "type", "list_of_strings").map_err(&e)?;
    set_int_attr(&tp, "length", 1).map_err(&e)?;
    let t0 = tp.new_dataset::<VarLenUnicode>().shape(()).create("0").map_err(&e)?;
    t0.write_scalar(&vstr("/datacube")).map_err(&e)?;

    let dc = root.create_group("datacube").map_err(&e)?;
    set_str_attr(&dc, "emd_group_type", "array").map_err(&e)?;
    set_str_attr(&dc, "python_class", "DataCube").map_err(&e)?;
    set_str_attr(&dc, "emdtui_source_fingerprint", &spec.source_fingerprint).map_err(&e)?;
    set_str_attr(&dc, "emdtui_source_path", &spec.source_path).map_err(&e)?;
    let sh = spec.shape;
    let k = chunk_k(sh, spec.pixel_type);
    macro_rules! mk {
        ($t:ty) => {{
            let b = dc.new_dataset::<$t>().shape(sh).chunk([1, k, sh[2], sh[3]]);
            let b = if spec.compress && spec.bitshuffle {
                let elem = spec.pixel_type.bytes();
                b.add_filter(super::bitshuffle::FILTER_ID as _, &super::bitshuffle::cd_values(elem))
            } else if spec.compress {
                b.shuffle().deflate(spec.deflate_level as u8)
            } else {
                b.alloc_time(Some(hdf5::dataset::AllocTime::Early)).fill_time(hdf5::dataset::FillTime::Never)
            };
            b.create("data").map_err(&e)?
        }};
    }
    let data = match spec.pixel_type {
        PixelType::U32 if spec.float32 => mk!(f32),
        PixelType::U8 => mk!(u8),
        PixelType::U16 => mk!(u16),
        PixelType::U32 => mk!(u32),
    };
    set_str_attr(&data, "units", "pixel intensity").map_err(&e)?;
    write_dim(&dc, 0, "Rx", &spec.r_pixel_units, 0.0, spec.r_pixel_size).map_err(&e)?;
    write_dim(&dc, 1, "Ry", &spec.r_pixel_units, 0.0, spec.r_pixel_size).map_err(&e)?;
    write_dim(&dc, 2, "Qx", &spec.q_pixel_units, 0.0, spec.q_pixel_size).map_err(&e)?;
    write_dim(&dc, 3, "Qy", &spec.q_pixel_units, 0.0, spec.q_pixel_size).map_err(&e)?;

    write_acquisition(&dc, &spec.acquisition).map_err(&e)?;

    let cached = dc.create_group("cached").map_err(&e)?;
    set_str_attr(&cached, "emd_group_type", "node").map_err(&e)?;
    set_str_attr(&cached, "python_class", "Node").map_err(&e)?;

    let app = write_app_group(&f).map_err(&e)?;
    app.create_group("cache").map_err(&e)?;
    // the layout (with `complete` = 0) is on disk before any chunk: a killed conversion leaves a
    // file that says it is incomplete
    f.flush().map_err(&e)?;
    Ok((f, data))
}

/// The `metadatabundle/acquisition` group of an array (keys made safe with [`safe_key`], repeats
/// suffixed with `_`).
fn write_acquisition(array: &hdf5::Group, acquisition: &[(String, MdValue)]) -> hdf5::Result<()> {
    let mb = array.create_group("metadatabundle")?;
    set_str_attr(&mb, "emd_group_type", "metadatabundle")?;
    let acq = mb.create_group("acquisition")?;
    set_str_attr(&acq, "emd_group_type", "metadata")?;
    set_str_attr(&acq, "python_class", "Metadata")?;
    let mut seen = std::collections::HashSet::new();
    for (key, v) in acquisition {
        let mut k = safe_key(key);
        while !seen.insert(k.clone()) {
            k.push('_');
        }
        match v {
            MdValue::Str(s) => md_string(&acq, &k, s),
            MdValue::Num(x) => md_number(&acq, &k, *x),
        }?;
    }
    Ok(())
}

/// Mark the conversion complete (the last write before closing and renaming).
pub fn mark_complete(f: &hdf5::File, path: &Path) -> Result<()> {
    let app = f.group(APP).map_err(h5::err(path))?;
    set_int_attr(&app, "complete", 1).map_err(h5::err(path))?;
    f.flush().map_err(h5::err(path))
}

/// Append a line to the computation log `/emdtui/log` (created if missing).
pub fn append_log(f: &hdf5::File, path: &Path, line: &str) -> Result<()> {
    let e = h5::err(path);
    let app = match f.group(APP) {
        Ok(g) => g,
        Err(_) => {
            let g = f.create_group(APP).map_err(&e)?;
            set_str_attr(&g, "format_version", EMDTUI_FORMAT_VERSION).map_err(&e)?;
            g
        }
    };
    let ds = match app.dataset("log") {
        Ok(d) => d,
        Err(_) => app.new_dataset::<VarLenUnicode>().shape((0..,)).chunk(64).create("log").map_err(&e)?,
    };
    let n = ds.shape()[0];
    ds.resize(n + 1).map_err(&e)?;
    ds.write_slice(&[vstr(&format!("{} {}", crate::util::now_iso(), line))], n..n + 1).map_err(&e)?;
    Ok(())
}

/// The computation log lines.
pub fn read_log(f: &hdf5::File) -> Vec<String> {
    f.dataset("emdtui/log")
        .and_then(|d| d.read_raw::<VarLenUnicode>())
        .map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// Stamp a cache group with its provenance attributes.
pub fn stamp_cache(loc: &hdf5::Location, params: &serde_json::Value, source_fingerprint: &str) -> hdf5::Result<()> {
    set_str_attr(loc, "emdtui_params", &params.to_string())?;
    set_str_attr(loc, "emdtui_version", crate::VERSION)?;
    set_int_attr(loc, "emdtui_cache_format", CACHE_FORMAT_VERSION)?;
    set_str_attr(loc, "emdtui_created", &crate::util::now_iso())?;
    set_str_attr(loc, "emdtui_source", source_fingerprint)
}

/// Validity of a cache group against the current datacube fingerprint: Ok(()) or the reason it is stale.
pub fn cache_validity(loc: &hdf5::Location, current_fingerprint: &str) -> std::result::Result<(), String> {
    match int_attr(loc, "emdtui_cache_format") {
        None => return Err("no cache format version (not written by emdtui)".into()),
        Some(v) if v != CACHE_FORMAT_VERSION => {
            return Err(format!("cache format version {v}, this emdtui uses {CACHE_FORMAT_VERSION}"));
        }
        _ => {}
    }
    match str_attr(loc, "emdtui_source") {
        None => return Err("no source fingerprint".into()),
        Some(s) if s != current_fingerprint => return Err("computed from different data (datacube changed)".into()),
        _ => {}
    }
    if int_attr(loc, "emdtui_complete") == Some(0) {
        return Err("incomplete (interrupted computation)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// datacube location and fingerprint

/// Which layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// EMD 1.0 (emdtui or py4DSTEM): `dim0..dim3`.
    Emd1,
    /// Older Berkeley/py4DSTEM layout with `dim1..dim4`.
    Legacy,
}

/// Find the 4D datacube's group path in a file.
pub fn find_datacube(f: &hdf5::File, path: &Path) -> Result<(String, Layout)> {
    if f.link_exists(&format!("{DATACUBE}/data")) {
        return Ok((DATACUBE.to_string(), Layout::Emd1));
    }
    // any EMD root with a DataCube array child
    let mut found = Vec::new();
    for name in f.member_names().unwrap_or_default() {
        let Ok(g) = f.group(&name) else { continue };
        if str_attr(&g, "emd_group_type").as_deref() != Some("root") {
            continue;
        }
        for c in g.member_names().unwrap_or_default() {
            let Ok(cg) = g.group(&c) else { continue };
            if str_attr(&cg, "emd_group_type").as_deref() == Some("array")
                && str_attr(&cg, "python_class").as_deref() == Some("DataCube")
                && cg.link_exists("data")
            {
                found.push(format!("{name}/{c}"));
            }
        }
    }
    if let Some(p) = found.into_iter().next() {
        return Ok((p, Layout::Emd1));
    }
    for p in ["version_1/data/datacubes/datacube_000", "4DSTEM_experiment/data/datacubes/datacube_000"] {
        if f.link_exists(&format!("{p}/data")) {
            return Ok((p.to_string(), Layout::Legacy));
        }
    }
    for top in ["version_1", "4DSTEM_experiment", "4DSTEM_simulation"] {
        let gp = format!("{top}/data/datacubes");
        if let Ok(g) = f.group(&gp) {
            for c in g.member_names().unwrap_or_default() {
                if g.link_exists(&format!("{c}/data")) {
                    return Ok((format!("{gp}/{c}"), Layout::Legacy));
                }
            }
        }
    }
    Err(Error::format(
        path,
        "no 4D datacube found (looked for an EMD 1.0 root with a DataCube, and version_1/data/datacubes/datacube_000/data)",
    ))
}

/// The pixel type emdtui reads a datacube as (signed counts through HDF5 conversion).
pub fn pixel_type_of(d: &hdf5::Dataset, path: &Path, dpath: &str) -> Result<PixelType> {
    let td = d.dtype().and_then(|t| t.to_descriptor()).map_err(h5::err(path))?;
    match td {
        TypeDescriptor::Unsigned(IntSize::U1) => Ok(PixelType::U8),
        TypeDescriptor::Unsigned(IntSize::U2) => Ok(PixelType::U16),
        TypeDescriptor::Unsigned(IntSize::U4) => Ok(PixelType::U32),
        // signed counts are read through HDF5 conversion (negative values clip to 0)
        TypeDescriptor::Integer(IntSize::U1) | TypeDescriptor::Integer(IntSize::U2) => Ok(PixelType::U16),
        TypeDescriptor::Integer(IntSize::U4) => Ok(PixelType::U32),
        other => Err(Error::unsupported(
            path,
            format!("{dpath} has element type {other:?}; emdtui reads unsigned/signed integer datacubes up to 32 bit"),
        )),
    }
}

/// Fingerprint of a datacube: shape, dtype and a hash of a few sampled frames.
pub fn datacube_fingerprint(d: &hdf5::Dataset, path: &Path) -> Result<String> {
    let sh = d.shape();
    if sh.len() != 4 {
        return Err(Error::format(path, format!("datacube has {} dimensions, expected 4", sh.len())));
    }
    let n = sh[0] * sh[1];
    let td = d.dtype().and_then(|t| t.to_descriptor());
    let float = matches!(td, Ok(TypeDescriptor::Float(_)));
    let pt = if float { PixelType::U32 } else { pixel_type_of(d, path, "data")? };
    let name = match td {
        Ok(TypeDescriptor::Float(hdf5::types::FloatSize::U8)) => "float64",
        _ if float => "float32",
        _ => pt.name(),
    };
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for s in &sh {
        h.update(&(*s as u64).to_le_bytes());
    }
    h.update(name.as_bytes());
    let mut samples: Vec<usize> = (0..8).map(|i| i * n.saturating_sub(1) / 7).collect();
    samples.dedup();
    for p in samples {
        if n == 0 {
            break;
        }
        let (r, c) = (p / sh[1], p % sh[1]);
        if float {
            let fr: ndarray::Array2<f32> = d.read_slice(ndarray::s![r, c, .., ..]).map_err(h5::err(path))?;
            h.update(bytemuck::cast_slice(fr.as_standard_layout().as_slice().unwrap()));
            continue;
        }
        let fr: ndarray::Array2<u32> = d.read_slice(ndarray::s![r, c, .., ..]).map_err(h5::err(path))?;
        let v = fr.as_standard_layout();
        let s = v.as_slice().unwrap();
        h.update(bytemuck::cast_slice(s));
    }
    Ok(format!("emd:{}x{}x{}x{}:{}:{:016x}", sh[0], sh[1], sh[2], sh[3], name, h.digest()))
}

/// A dim dataset `dim{k}` of a datacube group: (first value, step, name, units); None when absent
/// or not numeric; Err when its length does not match the axis.
pub fn dim_info(
    g: &hdf5::Group,
    k: usize,
    len: usize,
    path: &Path,
    gpath: &str,
) -> Result<Option<(f64, f64, String, String)>> {
    let Ok(d) = g.dataset(&format!("dim{k}")) else { return Ok(None) };
    let v: Vec<f64> = match d.read_raw::<f64>() {
        Ok(v) => v,
        Err(_) => return Ok(None), // string dims (labels) etc.: ignore
    };
    if !(v.len() == 1 || v.len() == 2 || v.len() == len) {
        return Err(Error::format(
            path,
            format!(
                "{gpath}/dim{k} has {} entries but that axis has length {len} (dims do not match the data)",
                v.len()
            ),
        ));
    }
    let step = if v.len() >= 2 { v[1] - v[0] } else { 1.0 };
    Ok(Some((
        v.first().copied().unwrap_or(0.0),
        step,
        str_attr(&d, "name").unwrap_or_default(),
        str_attr(&d, "units").unwrap_or_default(),
    )))
}

/// Calibration of an EMD datacube from its dims: (R step, R units, Q step, Q units). Units py4DSTEM
/// would reject for Q (anything but pixels, A^-1, mrad) fall back to (1, "pixels").
pub fn calibration(path: &Path) -> Option<(f64, String, f64, String)> {
    let f = h5::open_ro(path).ok()?;
    let (group, layout) = find_datacube(&f, path).ok()?;
    let g = f.group(&group).ok()?;
    let d = g.dataset("data").ok()?;
    let sh = d.shape();
    let first = if layout == Layout::Emd1 { 0 } else { 1 };
    let r = dim_info(&g, first, *sh.first()?, path, &group).ok().flatten();
    let q = dim_info(&g, first + 2, *sh.get(2)?, path, &group).ok().flatten();
    let (rs, ru) = match r {
        Some((_, s, _, u)) if s.is_finite() && s > 0.0 && !u.is_empty() => (s, u),
        _ => (1.0, "pixels".to_string()),
    };
    let (qs, qu) = match q {
        Some((_, s, _, u)) if s.is_finite() && s > 0.0 && ["pixels", "A^-1", "mrad"].contains(&u.as_str()) => (s, u),
        _ => (1.0, "pixels".to_string()),
    };
    Some((rs, ru, qs, qu))
}

/// Group of the 3-D spectrum image emdtui writes (an EMD 1.0 `Array`: py4DSTEM reads it as an
/// `Array` with its dims, HyperSpy as a signal with the energy axis named).
pub const SI_ROOT: &str = "spectrum_root";
pub const SPECTRUM_IMAGE: &str = "spectrum_root/spectrum_image";

/// Everything needed to lay out a new spectrum-image EMD file.
#[derive(Debug, Clone)]
pub struct SpectrumSpec {
    /// (scan rows, scan cols, energy channels).
    pub shape: [usize; 3],
    /// gzip level 1..=9 (with shuffle), None: uncompressed.
    pub deflate_level: Option<u32>,
    /// Energy of channel 0 and per channel; units `eV` when calibrated, else `channels`.
    pub energy_offset: f64,
    pub energy_step: f64,
    pub energy_units: String,
    /// What the values are (e.g. `counts`, `mean counts per detector bin`).
    pub value_units: String,
    pub acquisition: Vec<(String, MdValue)>,
    pub source_fingerprint: String,
    pub source_path: String,
    /// How the spectra were made (JSON: summed axis, reversed, binning).
    pub params: String,
}

/// Scan columns per chunk of a spectrum image: whole spectra, about 1 MiB per chunk.
pub fn spectrum_chunk_cols(shape: [usize; 3]) -> usize {
    ((1usize << 20) / (shape[2] * 4).max(1)).clamp(1, shape[1].max(1))
}

/// Create a new spectrum-image EMD file at `path` (truncating) with an empty float32 `data` of
/// shape (scan rows, scan cols, energy); `/emdtui@complete` is 0 until [`mark_complete`].
pub fn create_spectrum_skeleton(path: &Path, spec: &SpectrumSpec) -> Result<(hdf5::File, hdf5::Dataset)> {
    let e = h5::err(path);
    let f = h5::create_trunc(path)?;
    let root = write_header(&f, SI_ROOT).map_err(&e)?;
    let si = root.create_group("spectrum_image").map_err(&e)?;
    set_str_attr(&si, "emd_group_type", "array").map_err(&e)?;
    set_str_attr(&si, "python_class", "Array").map_err(&e)?;
    set_str_attr(&si, "emdtui_kind", "spectrum_image").map_err(&e)?;
    set_str_attr(&si, "emdtui_source_fingerprint", &spec.source_fingerprint).map_err(&e)?;
    set_str_attr(&si, "emdtui_source_path", &spec.source_path).map_err(&e)?;
    set_str_attr(&si, "emdtui_params", &spec.params).map_err(&e)?;
    let sh = spec.shape;
    let b = si.new_dataset::<f32>().shape(sh).chunk([1, spectrum_chunk_cols(sh), sh[2]]);
    let b = match spec.deflate_level {
        Some(l) => b.shuffle().deflate(l.clamp(1, 9) as u8),
        None => b,
    };
    let data = b.create("data").map_err(&e)?;
    set_str_attr(&data, "units", &spec.value_units).map_err(&e)?;
    write_dim(&si, 0, "R_y", "pixels", 0.0, 1.0).map_err(&e)?;
    write_dim(&si, 1, "R_x", "pixels", 0.0, 1.0).map_err(&e)?;
    write_dim(&si, 2, "energy", &spec.energy_units, spec.energy_offset, spec.energy_step).map_err(&e)?;
    write_acquisition(&si, &spec.acquisition).map_err(&e)?;
    write_app_group(&f).map_err(&e)?;
    f.flush().map_err(&e)?;
    Ok((f, data))
}

/// Which spectrum-image layout a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SpectrumLayoutKind {
    /// emdtui's `spectrum_root/spectrum_image` (3-D `Array`, `dim0..dim2`).
    Emdtui,
    /// mib-viewer's "Save EELS as EMD": `version_1/data/datacubes/datacube_000` with
    /// `data_type='EELS'`, data (scan_y, scan_x, 1, energy), dim groups `dim1..dim4`.
    MibViewer,
}

/// A 3-D spectrum image read from an EMD file.
#[derive(Debug, Clone)]
pub struct SpectrumImageData {
    pub group: String,
    pub layout: SpectrumLayoutKind,
    /// (scan rows, scan cols, energy channels).
    pub shape: [usize; 3],
    /// Position-major spectra.
    pub data: Vec<f32>,
    pub energy_offset: f64,
    pub energy_step: f64,
    pub energy_units: String,
    pub dtype: String,
}

/// The spectrum-image group of `f`, if it holds one.
pub fn find_spectrum_image(f: &hdf5::File) -> Option<(String, SpectrumLayoutKind)> {
    if let Ok(d) = f.dataset(&format!("{SPECTRUM_IMAGE}/data"))
        && d.ndim() == 3
    {
        return Some((SPECTRUM_IMAGE.to_string(), SpectrumLayoutKind::Emdtui));
    }
    let mv = "version_1/data/datacubes/datacube_000";
    if let Ok(g) = f.group(mv)
        && str_attr(&g, "data_type").is_some_and(|t| t.eq_ignore_ascii_case("eels"))
        && let Ok(d) = g.dataset("data")
        && d.ndim() == 4
        && d.shape()[2] == 1
    {
        return Some((mv.to_string(), SpectrumLayoutKind::MibViewer));
    }
    None
}

/// The energy axis (first value, step, units) of a mib-viewer dim group (`dim4/dim4` values).
fn mib_viewer_axis(g: &hdf5::Group) -> Option<(f64, f64, String)> {
    let dg = g.group("dim4").ok()?;
    let units = str_attr(&dg, "units").unwrap_or_else(|| "channels".into());
    let v: Vec<f64> = dg.dataset("dim4").ok()?.read_raw::<f64>().ok()?;
    let step = if v.len() >= 2 { v[1] - v[0] } else { 1.0 };
    Some((v.first().copied().unwrap_or(0.0), step, units))
}

/// Read the spectrum image of an EMD file: Ok(None) when the file holds none (a 4-D datacube).
pub fn read_spectrum_image(path: &Path) -> Result<Option<SpectrumImageData>> {
    let f = h5::open_ro(path)?;
    let Some((group, layout)) = find_spectrum_image(&f) else { return Ok(None) };
    if let Ok(app) = f.group(APP)
        && int_attr(&app, "complete") == Some(0)
    {
        return Err(Error::format(path, "incomplete EMD file: its conversion was interrupted; convert again"));
    }
    let e = h5::err(path);
    let g = f.group(&group).map_err(&e)?;
    let d = g.dataset("data").map_err(&e)?;
    let sh = d.shape();
    let shape = [sh[0], sh[1], *sh.last().unwrap_or(&0)];
    if shape.contains(&0) {
        return Err(Error::format(path, format!("{group}/data has shape {sh:?}: empty axis")));
    }
    let dtype = match d.dtype().and_then(|t| t.to_descriptor()).map_err(&e)? {
        TypeDescriptor::Float(hdf5::types::FloatSize::U4) => "float32".to_string(),
        TypeDescriptor::Float(hdf5::types::FloatSize::U8) => "float64".to_string(),
        TypeDescriptor::Unsigned(s) => format!("uint{}", s as usize * 8),
        TypeDescriptor::Integer(s) => format!("int{}", s as usize * 8),
        other => format!("{other:?}"),
    };
    let data: Vec<f32> = d.read_raw::<f32>().map_err(|x| Error::format(path, format!("{group}/data: {x}")))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(Error::format(path, format!("{group}/data: {} values for shape {sh:?}", data.len())));
    }
    let (energy_offset, energy_step, energy_units) = match layout {
        SpectrumLayoutKind::Emdtui => match dim_info(&g, 2, shape[2], path, &group)? {
            Some((o, s, _, u)) => (o, s, u),
            None => (0.0, 1.0, "channels".into()),
        },
        SpectrumLayoutKind::MibViewer => mib_viewer_axis(&g).unwrap_or((0.0, 1.0, "channels".into())),
    };
    Ok(Some(SpectrumImageData { group, layout, shape, data, energy_offset, energy_step, energy_units, dtype }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_are_safe_for_hyperspy() {
        assert_eq!(safe_key("Data Offset"), "mib_data_offset");
        assert_eq!(safe_key("Counter Depth (number)"), "counter_depth_number");
        assert_eq!(safe_key("3 thresholds"), "mib_3_thresholds");
        assert_eq!(safe_key("datacube"), "mib_datacube");
        assert_eq!(safe_key("  "), "key");
    }

    #[test]
    fn chunk_k_is_about_one_mib_of_whole_frames() {
        assert_eq!(chunk_k([4, 100, 256, 256], PixelType::U16), 8);
        assert_eq!(chunk_k([4, 100, 512, 512], PixelType::U16), 2);
        assert_eq!(chunk_k([4, 100, 512, 512], PixelType::U32), 1);
        assert_eq!(chunk_k([4, 3, 64, 64], PixelType::U8), 3);
    }
}
