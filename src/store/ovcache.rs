//! The one cache of overview results for read-only `.mib` files, in the cache directory
//! (`Tuning::cache_dir`: `$EMDTUI_CACHE_DIR` or the platform cache directory, e.g.
//! `~/.cache/emdtui`). The TUI and `emdtui overview` read and write the same entries.
//! Nothing is ever written next to or into the `.mib`.
//!
//! Key: the dataset fingerprint (paths, sizes, mtimes, hash of a few frames), the scan
//! interpretation (rows, cols, skip, flyback), the geometry, a hash of the custom mask and, when
//! bad pixels were masked, a hash of their list (`|bad=...`). Each
//! entry is `overviews/<key hash>.bin` (little-endian binary, below) plus a `.json` sidecar with
//! provenance (tool version, format version, key, geometry, time). A changed file changes the
//! fingerprint, so stale entries are never returned.
//!
//! `.bin` layout: `b"EMDTUIOV"`, u32 format version, u32 key length, key bytes, 8 x u64
//! (scan_rows, scan_cols, det_rows, det_cols, has_mask, positions_done, complete, reserved),
//! then f32 arrays: sum, bf, adf, com_x, com_y, [mask], mean_dp, max_dp.

use crate::compute::overview::{Geometry, Overviews};
use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"EMDTUIOV";

/// Whether results of this dataset are cached here (read-only `.mib` sources; EMD files keep
/// their overviews inside).
pub fn applies(ds: &dyn Dataset) -> bool {
    ds.info().kind == Kind::Mib
}

/// Cache key of a dataset + geometry + mask.
pub fn key(ds: &dyn Dataset, geometry: &Geometry, mask: Option<&[f32]>) -> String {
    key_with_bad(ds, geometry, mask, &[])
}

/// [`key`] of overviews computed with the bad pixels `bad` (flat indices) masked.
pub fn key_with_bad(ds: &dyn Dataset, geometry: &Geometry, mask: Option<&[f32]>, bad: &[usize]) -> String {
    let k = key_unmasked(ds, geometry, mask);
    if bad.is_empty() {
        return k;
    }
    let b: Vec<u8> = bad.iter().flat_map(|v| (*v as u64).to_le_bytes()).collect();
    format!("{k}|bad={:016x}", xxhash_rust::xxh3::xxh3_64(&b))
}

fn key_unmasked(ds: &dyn Dataset, geometry: &Geometry, mask: Option<&[f32]>) -> String {
    let s = ds.scan();
    let g = serde_json::to_string(geometry).unwrap_or_default();
    let mh = match mask {
        Some(m) => {
            let bytes: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
        }
        None => "none".into(),
    };
    format!(
        "{}|scan={}x{}+{}+{}|geom={g}|mask={mh}|v{FORMAT_VERSION}",
        ds.fingerprint(),
        s.rows,
        s.cols,
        s.skip,
        s.flyback
    )
}

fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join("overviews").join(format!("{:016x}.bin", xxhash_rust::xxh3::xxh3_64(key.as_bytes())))
}

/// Cached results for `ds` with exactly this geometry and mask, if present and valid.
pub fn load(dir: &Path, ds: &dyn Dataset, geometry: &Geometry, mask: Option<&[f32]>) -> Option<Overviews> {
    load_with_bad(dir, ds, geometry, mask, &[])
}

/// [`load`] of overviews computed with the bad pixels `bad` masked.
pub fn load_with_bad(
    dir: &Path,
    ds: &dyn Dataset,
    geometry: &Geometry,
    mask: Option<&[f32]>,
    bad: &[usize],
) -> Option<Overviews> {
    if !applies(ds) {
        return None;
    }
    let k = key_with_bad(ds, geometry, mask, bad);
    let b = std::fs::read(entry_path(dir, &k)).ok()?;
    let o = decode(&b, &k, geometry)?;
    let (dr, dc) = ds.det();
    let s = ds.scan();
    (o.scan_rows == s.rows
        && o.scan_cols == s.cols
        && o.det_rows == dr
        && o.det_cols == dc
        && o.mask.is_some() == mask.is_some())
    .then_some(o)
}

/// Store results (only complete passes should be stored; the caller decides). Returns the path.
pub fn store(dir: &Path, ds: &dyn Dataset, o: &Overviews, mask: Option<&[f32]>) -> Result<PathBuf> {
    store_with_bad(dir, ds, o, mask, &[])
}

/// [`store`] of overviews computed with the bad pixels `bad` masked.
pub fn store_with_bad(
    dir: &Path,
    ds: &dyn Dataset,
    o: &Overviews,
    mask: Option<&[f32]>,
    bad: &[usize],
) -> Result<PathBuf> {
    if !applies(ds) {
        return Err(Error::Invalid("only .mib results are cached outside the file".into()));
    }
    let k = key_with_bad(ds, &o.geometry, mask, bad);
    let path = entry_path(dir, &k);
    let sub = path.parent().expect("entry paths have a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let bytes = encode(o, &k);
    let side = serde_json::json!({
        "geometry": o.geometry,
        "scan": [o.scan_rows, o.scan_cols],
        "detector": [o.det_rows, o.det_cols],
        "positions_done": o.positions_done,
        "complete": o.complete,
        "has_mask": o.mask.is_some(),
        "bad_pixels_masked": bad,
    });
    super::write_entry(&path, &bytes, FORMAT_VERSION, &ds.info().path, &k, side)?;
    Ok(path)
}

fn encode(o: &Overviews, key: &str) -> Vec<u8> {
    let mut w =
        super::codec::Writer::new(MAGIC, Some(FORMAT_VERSION), key, 64 + 4 * (6 * o.sum.len() + 2 * o.mean_dp.len()))
            .u64s(&[
                o.scan_rows,
                o.scan_cols,
                o.det_rows,
                o.det_cols,
                o.mask.is_some() as usize,
                o.positions_done,
                o.complete as usize,
                0,
            ]);
    let mut arrays: Vec<&[f32]> = vec![&o.sum, &o.bf, &o.adf, &o.com_x, &o.com_y];
    if let Some(m) = &o.mask {
        arrays.push(m);
    }
    arrays.push(&o.mean_dp);
    arrays.push(&o.max_dp);
    for a in arrays {
        w = w.f32s(a);
    }
    w.finish()
}

fn decode(b: &[u8], key: &str, geometry: &Geometry) -> Option<Overviews> {
    let mut r = super::codec::Reader::open(b, MAGIC, Some(FORMAT_VERSION), key)?;
    let [sr, sc, dr, dc, has_mask, done, complete, _] = r.u64s()?;
    let n = sr.checked_mul(sc)?;
    let npx = dr.checked_mul(dc)?;
    let mut arr = |len: usize| r.f32s(len);
    let sum = arr(n)?;
    let bf = arr(n)?;
    let adf = arr(n)?;
    let com_x = arr(n)?;
    let com_y = arr(n)?;
    let mask = if has_mask != 0 { Some(arr(n)?) } else { None };
    let mean_dp = arr(npx)?;
    let max_dp = arr(npx)?;
    Some(Overviews {
        scan_rows: sr,
        scan_cols: sc,
        det_rows: dr,
        det_cols: dc,
        geometry: geometry.clone(),
        sum,
        bf,
        adf,
        com_x,
        com_y,
        mask,
        mean_dp,
        max_dp,
        positions_done: done,
        complete: complete != 0,
    })
}

/// Magic of a custom-detector image entry (`overviews/<key hash>.bin` as well, its own key).
const CUSTOM_MAGIC: &[u8; 8] = b"EMDTUICD";

/// Cache key of a custom-detector image: the dataset fingerprint, the scan interpretation and the
/// detector definition ([`CustomDetector::key`](crate::compute::detectors::CustomDetector::key)).
/// With bad pixels masked, their list (count and hash) is part of the key.
pub fn custom_key(ds: &dyn Dataset, det: &crate::compute::detectors::CustomDetector, bad: &[usize]) -> String {
    let s = ds.scan();
    let masked = if bad.is_empty() {
        String::new()
    } else {
        let bytes: Vec<u8> = bad.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
        format!("|bad={}:{:016x}", bad.len(), xxhash_rust::xxh3::xxh3_64(&bytes))
    };
    format!(
        "{}|scan={}x{}+{}+{}|custom={}{masked}|v{FORMAT_VERSION}",
        ds.fingerprint(),
        s.rows,
        s.cols,
        s.skip,
        s.flyback,
        det.key()
    )
}

/// A cached custom-detector image of `ds` (one value per scan position), if present and valid.
/// `bad`: the detector pixels masked in it (sorted flat indices).
pub fn load_custom(
    dir: &Path,
    ds: &dyn Dataset,
    det: &crate::compute::detectors::CustomDetector,
    bad: &[usize],
) -> Option<Vec<f32>> {
    if !applies(ds) {
        return None;
    }
    let k = custom_key(ds, det, bad);
    let b = std::fs::read(entry_path(dir, &k)).ok()?;
    let mut r = super::codec::Reader::open(&b, CUSTOM_MAGIC, None, &k)?;
    let n = ds.scan().positions();
    if r.remaining() != n.checked_mul(4)? {
        return None;
    }
    r.f32s(n)
}

/// Store a complete custom-detector image (written atomically, with a `.json` sidecar).
pub fn store_custom(
    dir: &Path,
    ds: &dyn Dataset,
    det: &crate::compute::detectors::CustomDetector,
    bad: &[usize],
    image: &[f32],
) -> Result<PathBuf> {
    if !applies(ds) {
        return Err(Error::Invalid("only .mib results are cached outside the file".into()));
    }
    let k = custom_key(ds, det, bad);
    let path = entry_path(dir, &k);
    let sub = path.parent().expect("entry paths have a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let b = super::codec::Writer::new(CUSTOM_MAGIC, None, &k, image.len() * 4).f32s(image).finish();
    let side = serde_json::json!({
        "custom_detector": det.label(),
        "bad_pixels_masked": bad,
        "scan": [ds.scan().rows, ds.scan().cols],
    });
    super::write_entry(&path, &b, FORMAT_VERSION, &ds.info().path, &k, side)?;
    Ok(path)
}
