//! The cache-directory entries of one source (the inspector's list): every emdtui entry whose
//! provenance (the JSON sidecar written by `store::write_entry`, or the calibration entry) names
//! this source, valid when its key was made from the source's current fingerprint.

use crate::dataset::Dataset;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Subdirectories of the cache directory that hold entries with provenance.
const KINDS: [&str; 5] = ["overviews", "dpc", "spectra", "calibration", "custom"];

/// One cache-directory entry of a source.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DirEntry {
    /// What it holds: the subdirectory (`overviews`, `dpc`, `spectra`, `calibration`, ...).
    pub kind: String,
    pub path: PathBuf,
    /// Bytes of the entry (data and sidecar).
    pub bytes: u64,
    /// Seconds since 1970 when it was written (0 when unknown).
    pub created_unix_s: u64,
    /// emdtui version that wrote it.
    pub tool_version: String,
    /// Made from the source as it is now (its fingerprint unchanged).
    pub valid: bool,
}

fn entry_of(kind: &str, sidecar: &Path, source: &Path, fingerprint: &str) -> Option<DirEntry> {
    let text = std::fs::read(sidecar).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    if v.get("tool")?.as_str()? != "emdtui" || Path::new(v.get("source")?.as_str()?) != source {
        return None;
    }
    let key = v.get("key").and_then(|k| k.as_str()).unwrap_or("");
    let fp = v.get("fingerprint").and_then(|k| k.as_str()).unwrap_or("");
    let data = sidecar.with_extension("bin");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Some(DirEntry {
        kind: kind.to_string(),
        path: if data.exists() { data.clone() } else { sidecar.to_path_buf() },
        bytes: size(sidecar) + if data.exists() { size(&data) } else { 0 },
        created_unix_s: v.get("created_unix_s").and_then(|c| c.as_u64()).unwrap_or(0),
        tool_version: v.get("tool_version").and_then(|c| c.as_str()).unwrap_or("").to_string(),
        valid: key.split('|').next() == Some(fingerprint) || fp == fingerprint,
    })
}

/// The entries of `ds` in the cache directory `dir`, by kind and path.
pub fn entries_for(dir: &Path, ds: &dyn Dataset) -> Vec<DirEntry> {
    let source = ds.info().path.clone();
    let fp = ds.fingerprint();
    let mut out = Vec::new();
    for kind in KINDS {
        let Ok(rd) = std::fs::read_dir(dir.join(kind)) else { continue };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            out.extend(entry_of(kind, p, &source, &fp));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_of_this_source_only_with_validity() {
        let d = tempfile::tempdir().unwrap();
        let ov = d.path().join("overviews");
        std::fs::create_dir_all(&ov).unwrap();
        let side = |name: &str, source: &str, key: &str| {
            let v = serde_json::json!({"tool": "emdtui", "tool_version": "9.9", "source": source, "key": key,
                "created_unix_s": 5});
            std::fs::write(ov.join(format!("{name}.json")), v.to_string()).unwrap();
            std::fs::write(ov.join(format!("{name}.bin")), [0u8; 10]).unwrap();
        };
        side("a", "/x/s.mib", "FP1|scan=2x2");
        side("b", "/x/s.mib", "OLD|scan=2x2");
        side("c", "/x/other.mib", "FP1|scan=2x2");
        let a = entry_of("overviews", &ov.join("a.json"), Path::new("/x/s.mib"), "FP1").unwrap();
        assert!(a.valid && a.bytes > 10 && a.created_unix_s == 5 && a.path.ends_with("a.bin"), "{a:?}");
        let b = entry_of("overviews", &ov.join("b.json"), Path::new("/x/s.mib"), "FP1").unwrap();
        assert!(!b.valid);
        assert!(entry_of("overviews", &ov.join("c.json"), Path::new("/x/s.mib"), "FP1").is_none());
    }
}
