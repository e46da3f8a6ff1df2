//! The mask-restricted centre of mass behind a DPC result, cached in the cache directory for a
//! `.mib` (the expensive pass over the data; the DPC step on it takes milliseconds).
//!
//! Key: dataset fingerprint, scan interpretation, hash of the detector weights, the CoM origin and
//! the bad pixels replaced. Entry `dpc/<hash>.bin`: `b"EMDTUIDP"`, u32 version, u32 key length,
//! key, u64 positions, then f32 com_x and com_y; a `.json` sidecar holds the provenance.
//!
//! For an EMD the same result lives inside the file, in `/emdtui/cache/dpc_com` (`data`: float32
//! 2 x rows x cols, com_x then com_y; `emdtui_key` the key above; the provenance attributes of
//! every emdtui cache: version, creation time, source fingerprint), valid while the datacube
//! fingerprint and the key match.

use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use crate::format::emd::{APP_CACHE, append_log, cache_validity, stamp_cache};
use crate::format::h5::{self, WRITE_WAIT, set_str_attr, str_attr};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"EMDTUIDP";
const VERSION: u32 = 1;

/// Cache key of a masked CoM.
pub fn key(ds: &dyn Dataset, weights: &[f32], origin: (f32, f32), bad: &[usize]) -> String {
    let wb: Vec<u8> = weights.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bb: Vec<u8> = bad.iter().flat_map(|v| (*v as u64).to_le_bytes()).collect();
    let s = ds.scan();
    format!(
        "{}|scan={}x{}+{}+{}|w={:016x}|o={},{}|bad={:016x}|v{VERSION}",
        ds.fingerprint(),
        s.rows,
        s.cols,
        s.skip,
        s.flyback,
        xxhash_rust::xxh3::xxh3_64(&wb),
        origin.0,
        origin.1,
        xxhash_rust::xxh3::xxh3_64(&bb)
    )
}

fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join("dpc").join(format!("{:016x}.bin", xxhash_rust::xxh3::xxh3_64(key.as_bytes())))
}

/// Cached (com_x, com_y) for this key, if present and intact.
pub fn load(dir: &Path, ds: &dyn Dataset, key: &str) -> Option<(Vec<f32>, Vec<f32>)> {
    if ds.info().kind != Kind::Mib {
        return None;
    }
    let b = std::fs::read(path(dir, key)).ok()?;
    let mut r = super::codec::Reader::open(&b, MAGIC, Some(VERSION), key)?;
    let [n] = r.u64s()?;
    if n != ds.scan().positions() {
        return None;
    }
    Some((r.f32s(n)?, r.f32s(n)?))
}

/// Store a complete masked CoM of a `.mib`.
pub fn store(dir: &Path, ds: &dyn Dataset, key: &str, cx: &[f32], cy: &[f32]) -> Result<PathBuf> {
    let p = path(dir, key);
    let sub = p.parent().expect("entry has a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let b = super::codec::Writer::new(MAGIC, Some(VERSION), key, 8 + 8 * cx.len())
        .u64s(&[cx.len()])
        .f32s(cx)
        .f32s(cy)
        .finish();
    let side = serde_json::json!({ "what": "mask-restricted centre of mass (com_x, com_y)" });
    super::write_entry(&p, &b, VERSION, &ds.info().path, key, side)?;
    Ok(p)
}

/// Name of the masked-CoM cache group under `/emdtui/cache` of an EMD.
pub const EMD_ENTRY: &str = "dpc_com";

/// The masked CoM cached inside an EMD source for this key, if present and valid.
pub fn load_emd(ds: &dyn Dataset, key: &str) -> Option<(Vec<f32>, Vec<f32>)> {
    if ds.info().kind != Kind::Emd {
        return None;
    }
    let (path, fp, n) = (ds.info().path.clone(), ds.fingerprint(), ds.scan().positions());
    let read = |f: &hdf5::File| -> Option<(Vec<f32>, Vec<f32>)> {
        let g = f.group(&format!("{APP_CACHE}/{EMD_ENTRY}")).ok()?;
        cache_validity(&g, &fp).ok()?;
        if str_attr(&g, "emdtui_key")? != key {
            return None;
        }
        let mut v = g.dataset("data").ok()?.read_raw::<f32>().ok()?;
        if v.len() != 2 * n {
            return None;
        }
        let y = v.split_off(n);
        Some((v, y))
    };
    h5::with_read(&path, |f| Ok(read(f))).ok().flatten()
}

/// Store a complete masked CoM inside its EMD source (replacing an older one), with provenance.
pub fn store_emd(ds: &dyn Dataset, key: &str, cx: &[f32], cy: &[f32]) -> Result<()> {
    let (path, fp) = (ds.info().path.clone(), ds.fingerprint());
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    let data: Vec<f32> = cx.iter().chain(cy).copied().collect();
    let arr = ndarray::Array3::from_shape_vec((2, rows, cols), data).map_err(|e| Error::Invalid(e.to_string()))?;
    h5::with_write(&path, WRITE_WAIT, |f| {
        let e = h5::err(&path);
        let parent = h5::ensure_group(f, APP_CACHE).map_err(&e)?;
        if parent.link_exists(EMD_ENTRY) {
            parent.unlink(EMD_ENTRY).map_err(&e)?;
        }
        let g = parent.create_group(EMD_ENTRY).map_err(&e)?;
        g.new_dataset_builder().with_data(&arr).create("data").map_err(&e)?;
        set_str_attr(&g, "emdtui_key", key).map_err(&e)?;
        set_str_attr(&g, "what", "mask-restricted centre of mass (com_x, com_y), detector px").map_err(&e)?;
        let params = serde_json::json!({"kind": "dpc_com", "key": key, "scan": [rows, cols]});
        stamp_cache(&g, &params, &fp).map_err(&e)?;
        append_log(f, &path, "DPC centre of mass cached (/emdtui/cache/dpc_com)")
    })
}
