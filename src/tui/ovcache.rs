//! A small on-disk cache of complete overviews in the cache directory, so reopening a file shows
//! its overview at once. Keyed by the dataset fingerprint (paths, sizes, mtimes, sampled frames)
//! and the detector geometry, so a changed file or geometry never loads a stale image.
//! Format: one JSON header line, then the f32 arrays little-endian.

use crate::compute::overview::{Geometry, Overviews};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    version: String,
    fingerprint: String,
    geometry: Geometry,
    scan_rows: usize,
    scan_cols: usize,
    det_rows: usize,
    det_cols: usize,
}

pub fn path_for(dir: &Path, fingerprint: &str, g: &Geometry) -> PathBuf {
    let key = format!("{fingerprint}|{}", serde_json::to_string(g).unwrap_or_default());
    dir.join("overviews").join(format!("{:016x}.ovc", xxhash_rust::xxh3::xxh3_64(key.as_bytes())))
}

fn arrays(o: &Overviews) -> [&Vec<f32>; 7] {
    [&o.sum, &o.bf, &o.adf, &o.com_x, &o.com_y, &o.mean_dp, &o.max_dp]
}

/// Store a complete overview (atomically: temp file + rename).
pub fn save(dir: &Path, fingerprint: &str, o: &Overviews) -> std::io::Result<PathBuf> {
    let p = path_for(dir, fingerprint, &o.geometry);
    std::fs::create_dir_all(p.parent().unwrap())?;
    let h = Header {
        version: crate::VERSION.into(),
        fingerprint: fingerprint.into(),
        geometry: o.geometry.clone(),
        scan_rows: o.scan_rows,
        scan_cols: o.scan_cols,
        det_rows: o.det_rows,
        det_cols: o.det_cols,
    };
    let tmp = p.with_extension(format!("part{}", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(serde_json::to_string(&h)?.as_bytes())?;
        f.write_all(b"\n")?;
        for a in arrays(o) {
            for v in a {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        f.flush()?;
    }
    std::fs::rename(&tmp, &p)?;
    Ok(p)
}

/// Load the overview for this dataset and geometry, if cached and intact.
pub fn load(dir: &Path, fingerprint: &str, g: &Geometry) -> Option<Overviews> {
    let p = path_for(dir, fingerprint, g);
    let mut bytes = Vec::new();
    std::fs::File::open(&p).ok()?.read_to_end(&mut bytes).ok()?;
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let h: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
    if h.fingerprint != fingerprint || &h.geometry != g {
        return None;
    }
    let n = h.scan_rows * h.scan_cols;
    let m = h.det_rows * h.det_cols;
    let body = &bytes[nl + 1..];
    if body.len() != (5 * n + 2 * m) * 4 {
        log::warn!("{}: truncated overview cache ignored", p.display());
        return None;
    }
    let mut vals = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let mut take = |k: usize| -> Vec<f32> { vals.by_ref().take(k).collect() };
    Some(Overviews {
        scan_rows: h.scan_rows,
        scan_cols: h.scan_cols,
        det_rows: h.det_rows,
        det_cols: h.det_cols,
        geometry: h.geometry,
        sum: take(n),
        bf: take(n),
        adf: take(n),
        com_x: take(n),
        com_y: take(n),
        mask: None,
        mean_dp: take(m),
        max_dp: take(m),
        positions_done: n,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::compute::overview::default_geometry(4, 4);
        let o = Overviews {
            scan_rows: 2,
            scan_cols: 3,
            det_rows: 4,
            det_cols: 4,
            geometry: g.clone(),
            sum: (0..6).map(|i| i as f32).collect(),
            bf: vec![1.0; 6],
            adf: vec![2.0; 6],
            com_x: vec![-0.5; 6],
            com_y: vec![0.25; 6],
            mask: None,
            mean_dp: vec![3.0; 16],
            max_dp: vec![4.0; 16],
            positions_done: 6,
            complete: true,
        };
        save(dir.path(), "fp1", &o).unwrap();
        let l = load(dir.path(), "fp1", &g).unwrap();
        assert_eq!(l.sum, o.sum);
        assert_eq!(l.com_x, o.com_x);
        assert_eq!(l.max_dp, o.max_dp);
        assert!(load(dir.path(), "fp2", &g).is_none(), "other data");
        let mut g2 = g.clone();
        g2.bf_radius += 1.0;
        assert!(load(dir.path(), "fp1", &g2).is_none(), "other geometry");
    }
}
