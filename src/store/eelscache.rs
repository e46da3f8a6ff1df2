//! The spectrum image of a read-only `.mib` in EELS mode, cached in the cache directory next to
//! the overviews (`spectra/<key hash>.bin` + `.json` sidecar), keyed like `store::ovcache`: the
//! dataset fingerprint (paths, sizes, mtimes, hash of a few frames), the scan interpretation and
//! the spectrum layout (channels, summed axis). What is cached is the raw short-axis sums in
//! stored channel order; reversal, binning and calibration are applied when it is used, so one
//! entry serves every view. A changed file changes the fingerprint: stale entries never match.
//!
//! The sidecar also remembers the energy calibration (dispersion, offset) last given for the
//! file, so later runs use it without repeating the options.
//!
//! `.bin` layout: `b"EMDTUISI"`, u32 format version, u32 key length, key bytes, 4 x u64
//! (scan_rows, scan_cols, channels, positions_done), then the f32 spectra (position-major).

use crate::compute::eels::SpectrumLayout;
use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"EMDTUISI";

/// A cached spectrum image: position-major spectra in stored channel order.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedSpectra {
    pub rows: usize,
    pub cols: usize,
    pub channels: usize,
    pub positions_done: usize,
    pub data: Vec<f32>,
}

/// Whether spectra of this dataset are cached here (`.mib` sources).
pub fn applies(ds: &dyn Dataset) -> bool {
    ds.info().kind == Kind::Mib
}

/// Cache key of a dataset + spectrum layout.
pub fn key(ds: &dyn Dataset, l: &SpectrumLayout) -> String {
    let s = ds.scan();
    format!(
        "{}|scan={}x{}+{}+{}|spectra={}ch,{}|v{FORMAT_VERSION}",
        ds.fingerprint(),
        s.rows,
        s.cols,
        s.skip,
        s.flyback,
        l.channels,
        if l.along_cols { "rows-summed" } else { "cols-summed" }
    )
}

fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join("spectra").join(format!("{:016x}.bin", xxhash_rust::xxh3::xxh3_64(key.as_bytes())))
}

/// The calibration sidecar of a `.mib` (any layout): `calibration/<hash of the fingerprint>.json`.
fn calibration_path(dir: &Path, ds: &dyn Dataset) -> PathBuf {
    dir.join("calibration").join(format!("{:016x}.json", xxhash_rust::xxh3::xxh3_64(ds.fingerprint().as_bytes())))
}

/// The remembered energy calibration (eV per channel, offset eV) of a `.mib`, if any.
pub fn load_calibration(dir: &Path, ds: &dyn Dataset) -> Option<(f64, f64)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(calibration_path(dir, ds)).ok()?).ok()?;
    let d = v.get("dispersion_ev_per_channel")?.as_f64()?;
    let o = v.get("offset_ev")?.as_f64()?;
    (d.is_finite() && d != 0.0 && o.is_finite()).then_some((d, o))
}

/// Remember the energy calibration of a `.mib`.
pub fn store_calibration(dir: &Path, ds: &dyn Dataset, dispersion: f64, offset: f64) -> Result<()> {
    let p = calibration_path(dir, ds);
    let sub = p.parent().expect("calibration paths have a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let v = serde_json::json!({
        "source": ds.info().path,
        "fingerprint": ds.fingerprint(),
        "dispersion_ev_per_channel": dispersion,
        "offset_ev": offset,
    });
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap_or_default()).map_err(|e| Error::io(&p, e))
}

/// Cached spectra of `ds` with this layout, if present and valid.
pub fn load(dir: &Path, ds: &dyn Dataset, l: &SpectrumLayout) -> Option<CachedSpectra> {
    if !applies(ds) {
        return None;
    }
    let k = key(ds, l);
    let b = std::fs::read(entry_path(dir, &k)).ok()?;
    let c = decode(&b, &k)?;
    let s = ds.scan();
    (c.rows == s.rows && c.cols == s.cols && c.channels == l.channels).then_some(c)
}

/// Store a complete spectrum image. Returns the path.
pub fn store(dir: &Path, ds: &dyn Dataset, l: &SpectrumLayout, c: &CachedSpectra) -> Result<PathBuf> {
    if !applies(ds) {
        return Err(Error::Invalid("only .mib results are cached outside the file".into()));
    }
    let k = key(ds, l);
    let path = entry_path(dir, &k);
    let sub = path.parent().expect("entry paths have a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let b = super::codec::Writer::new(MAGIC, Some(FORMAT_VERSION), &k, 32 + c.data.len() * 4)
        .u64s(&[c.rows, c.cols, c.channels, c.positions_done])
        .f32s(&c.data)
        .finish();
    let side = serde_json::json!({
        "scan": [c.rows, c.cols],
        "channels": c.channels,
        "positions_done": c.positions_done,
    });
    super::write_entry(&path, &b, FORMAT_VERSION, &ds.info().path, &k, side)?;
    Ok(path)
}

fn decode(b: &[u8], key: &str) -> Option<CachedSpectra> {
    let mut r = super::codec::Reader::open(b, MAGIC, Some(FORMAT_VERSION), key)?;
    let [rows, cols, channels, positions_done] = r.u64s()?;
    let data = r.f32s(rows.checked_mul(cols)?.checked_mul(channels)?)?;
    Some(CachedSpectra { rows, cols, channels, positions_done, data })
}
