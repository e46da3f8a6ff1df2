//! `emdtui info FILE.emd --tree` (the HDF5 tree with emdtui's caches and their validity) and
//! `emdtui info --nav PATH [FILE]` (a navigation image's metadata, checked against a scan).

use crate::dataset::{self, OpenOptions};
use crate::format::{h5tree, nav};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::Path;

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|_| o.flush());
}

/// The caches emdtui knows in an EMD, with validity; `None` when it is not an emdtui-readable EMD.
fn caches(file: &Path) -> Option<Vec<crate::store::emd::CacheEntry>> {
    crate::store::emd::EmdFile::open(file).ok()?.list_caches().ok()
}

/// Print the tree of any HDF5 file, then emdtui's caches in it with their validity.
pub fn run_tree(file: &Path, json_out: bool) -> Result<()> {
    let tree = h5tree::read(file)?;
    let caches = caches(file);
    if json_out {
        let v = json!({"path": file, "tree": tree.nodes, "truncated": tree.truncated, "caches": caches});
        out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        return Ok(());
    }
    let mut text = format!("{}\n", file.display());
    text.push_str(&h5tree::render_text(&tree, true));
    if let Some(c) = caches {
        text.push_str(&format!("emdtui caches: {}\n", if c.is_empty() { "none" } else { "" }));
        for c in &c {
            let status = if c.valid { "valid".to_string() } else { format!("STALE: {}", c.reason) };
            text.push_str(&format!("  {}  {}  {status}  params {}\n", c.path, c.created, c.params));
        }
    }
    out(&text);
    Ok(())
}

fn calib_text(c: &Option<[nav::AxisCalibration; 2]>) -> String {
    match c {
        Some([r, c]) => {
            format!("rows {} + {} {}/px; cols {} + {} {}/px", r.offset, r.scale, r.units, c.offset, c.scale, c.units)
        }
        None => "none".into(),
    }
}

/// The scan shape of FILE (for the navigation image's check).
fn scan_of(file: &Path, open: &OpenOptions) -> Result<(usize, usize)> {
    let ds = dataset::open(file, open).with_context(|| format!("opening {}", file.display()))?;
    let s = &ds.info().scan;
    Ok((s.rows, s.cols))
}

/// `emdtui info --nav PATH [FILE]`.
pub fn run_nav(navp: &Path, file: Option<&Path>, json_out: bool, open: &OpenOptions) -> Result<()> {
    let img = nav::read(navp)?;
    let check = match file {
        Some(f) => {
            let (r, c) = scan_of(f, open)?;
            Some(img.check_scan(r, c))
        }
        None => None,
    };
    let range = img.range();
    if json_out {
        let mut v = serde_json::to_value(&img)?;
        v["range"] = json!(range);
        if let Some(c) = &check {
            v["matches_scan"] = json!(c.is_ok());
        }
        out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    } else {
        let mut t = String::new();
        t.push_str(&format!("{:>12}  {}\n", "navigation", navp.display()));
        t.push_str(&format!("{:>12}  {:?}\n", "kind", img.kind));
        t.push_str(&format!("{:>12}  {}\n", "title", img.title.as_deref().unwrap_or("-")));
        t.push_str(&format!("{:>12}  {} x {} {}\n", "shape", img.rows, img.cols, img.dtype));
        if let Some((lo, hi)) = range {
            t.push_str(&format!("{:>12}  {lo} .. {hi}\n", "range"));
        }
        t.push_str(&format!("{:>12}  {}\n", "calibration", calib_text(&img.calibration)));
        if let Some(Ok(())) = &check {
            t.push_str(&format!("{:>12}  matches the scan\n", "scan"));
        }
        out(&t);
    }
    match check {
        Some(Err(m)) => anyhow::bail!(m),
        _ => Ok(()),
    }
}
