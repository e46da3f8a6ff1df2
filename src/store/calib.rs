//! Calibration remembered for a `.mib` in the cache directory once given, keyed by the dataset
//! fingerprint: `calibration/<hash>.json` holding the [`Calibration`], the source path and the
//! fingerprint. A changed file has another fingerprint, so its old calibration is not applied.

use crate::compute::calib::Calibration;
use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

fn entry(dir: &Path, ds: &dyn Dataset) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(ds.fingerprint().as_bytes());
    dir.join("calibration").join(format!("{h:016x}.json"))
}

/// The remembered calibration of a `.mib` (None for other sources or when none was given).
pub fn load(dir: &Path, ds: &dyn Dataset) -> Option<Calibration> {
    if ds.info().kind != Kind::Mib {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry(dir, ds)).ok()?).ok()?;
    if v.get("fingerprint")?.as_str()? != ds.fingerprint() {
        return None;
    }
    serde_json::from_value(v.get("calibration")?.clone()).ok()
}

/// Remember `cal` for a `.mib` (written atomically). Returns the entry path.
pub fn save(dir: &Path, ds: &dyn Dataset, cal: &Calibration) -> Result<PathBuf> {
    if ds.info().kind != Kind::Mib {
        return Err(Error::Invalid("only .mib calibrations are remembered in the cache directory".into()));
    }
    let p = entry(dir, ds);
    let sub = p.parent().expect("entry has a directory");
    std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    let v = serde_json::json!({
        "tool": "emdtui",
        "tool_version": crate::VERSION,
        "source": ds.info().path,
        "fingerprint": ds.fingerprint(),
        "calibration": cal,
    });
    let tmp = p.with_extension(format!("json.part{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap_or_default()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}
