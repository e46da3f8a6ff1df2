//! `emdtui info FILE.emd`: the datacube and every cached result with its validity.

use crate::dataset::EmdDataset;
use crate::dataset::{Dataset, OpenOptions};
use crate::store::emd::EmdFile;
use anyhow::Result;
use serde_json::json;
use std::path::Path;

/// `info --json` of an EMD datacube (keys documented in the README).
pub fn json_of(file: &Path, opts: &OpenOptions) -> Result<serde_json::Value> {
    let ds = EmdDataset::open(file, opts)?;
    let ef = EmdFile::open(file)?;
    let i = ds.info();
    let changed = ef.converted_fingerprint.as_ref().map(|c| *c != ef.fingerprint);
    Ok(json!({
        "path": i.path,
        "kind": "emd",
        "layout": ds.layout,
        "datacube": format!("/{}/data", ds.group),
        "shape": ds.shape,
        "dtype": i.pixel_type.name(),
        "chunks": ds.chunks,
        "compression": ds.compression,
        "size_bytes": i.bytes_on_disk,
        "scan": {"rows": i.scan.rows, "cols": i.scan.cols},
        "detector": {"rows": i.det_rows, "cols": i.det_cols},
        "fingerprint": ef.fingerprint,
        "complete": ef.complete,
        "datacube_changed_since_conversion": changed,
        "source": {"path": ef.source_path, "fingerprint": ef.source_fingerprint},
        "metadata": i.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "caches": ef.list_caches()?,
        "calibration": crate::ops::calib::stored(&ds, None),
        "log": ef.log()?,
        "warnings": i.warnings,
    }))
}

pub fn run(file: &Path, json_out: bool, opts: &OpenOptions) -> Result<()> {
    if json_out {
        out(&format!("{}\n", serde_json::to_string_pretty(&json_of(file, opts)?)?));
        return Ok(());
    }
    let ds = EmdDataset::open(file, opts)?;
    let ef = EmdFile::open(file)?;
    let caches = ef.list_caches()?;
    let log = ef.log()?;
    let i = ds.info();
    let changed = ef.converted_fingerprint.as_ref().map(|c| *c != ef.fingerprint);
    let cal = crate::ops::calib::stored(&ds, None);
    let mut text = String::new();
    macro_rules! o { ($($t:tt)*) => {{ text.push_str(&format!($($t)*)); text.push('\n'); }} }
    for (k, v) in &i.metadata {
        o!("{k:>12}  {v}");
    }
    o!("{:>12}  {}", "fingerprint", ef.fingerprint);
    o!("{:>12}  {}", "calibration", crate::cli::common::calib_text(&cal));
    if let Some(fp) = &ef.source_fingerprint {
        o!("{:>12}  {fp}", "source fp");
    }
    if changed == Some(true) {
        o!("{:>12}  the datacube changed since emdtui converted it", "WARNING");
    }
    if caches.is_empty() {
        o!("{:>12}  none", "caches");
    } else {
        o!("{:>12}", "caches");
        for c in &caches {
            let status = if c.valid { "VALID".to_string() } else { format!("STALE: {}", c.reason) };
            o!(
                "  {:<14} {:<17} {:<12} {}  {}  {}",
                c.name,
                c.kind,
                format!("{:?}", c.shape),
                status,
                c.created,
                if c.version.is_empty() { String::new() } else { format!("emdtui {}", c.version) }
            );
        }
    }
    if !log.is_empty() {
        o!("{:>12}", "log");
        for l in &log {
            o!("  {l}");
        }
    }
    for w in &i.warnings {
        o!("warning: {w}");
    }
    out(&text);
    Ok(())
}

/// Print without panicking when stdout is closed early (e.g. piped into `head`).
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|_| o.flush());
}
