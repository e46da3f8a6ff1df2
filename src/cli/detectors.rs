//! `emdtui overview --detector point:R,C[,RAD] | rect:R0:R1,C0:C1 | pattern:R,C[,FRAC]` and
//! `--response max` (with those, bf, adf or mask:PATH): custom detectors, computed by
//! `ops::detectors` as an extra pass beside the one overview pass and cached in the same cache.

use crate::compute::detectors::{CustomDetector, Region, Response};
use crate::compute::overview::Geometry;
use crate::dataset::Dataset;
use anyhow::{Result, bail};

/// A custom detector as written on the command line (the pattern mask needs the data).
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Point {
        row: usize,
        col: usize,
        radius: f32,
    },
    Rect {
        r0: usize,
        r1: usize,
        c0: usize,
        c1: usize,
    },
    /// Threshold the frame at scan position (row, col) at `fraction` of its maximum.
    Pattern {
        row: usize,
        col: usize,
        fraction: f32,
    },
    /// The BF disk of the geometry (with `--response max`).
    Bf,
    /// The ADF annulus of the geometry (with `--response max`).
    Adf,
    /// Weights from a mask file (with `--response max`).
    Mask(Vec<f32>),
}

fn num<T: std::str::FromStr>(t: &str, s: &str, form: &str) -> Result<T> {
    t.trim().parse().map_err(|_| anyhow::anyhow!("--detector {s:?}: {t:?} is not a number (expected {form})"))
}

/// `Some(spec)` for the custom detector forms (`point:`, `rect:`, `pattern:`), None otherwise.
pub fn parse(s: &str) -> Result<Option<Spec>> {
    if let Some(p) = s.strip_prefix("point:") {
        let form = "point:ROW,COL or point:ROW,COL,RADIUS (detector pixels, radius 0 to 1)";
        let v: Vec<&str> = p.split(',').collect();
        if !(2..=3).contains(&v.len()) {
            bail!("--detector {s:?}: expected {form}");
        }
        let radius: f32 = if v.len() == 3 { num(v[2], s, form)? } else { 0.0 };
        if !(0.0..=1.0).contains(&radius) {
            bail!("--detector {s:?}: the point radius {radius} must be 0 to 1 px (use bf or a mask for larger disks)");
        }
        return Ok(Some(Spec::Point { row: num(v[0], s, form)?, col: num(v[1], s, form)?, radius }));
    }
    if let Some(p) = s.strip_prefix("rect:") {
        let form = "rect:R0:R1,C0:C1 (half-open detector rows and columns)";
        let (a, b) = p.split_once(',').ok_or_else(|| anyhow::anyhow!("--detector {s:?}: expected {form}"))?;
        let rng = |t: &str| -> Result<(usize, usize)> {
            let (x, y) = t.split_once(':').ok_or_else(|| anyhow::anyhow!("--detector {s:?}: expected {form}"))?;
            Ok((num(x, s, form)?, num(y, s, form)?))
        };
        let ((r0, r1), (c0, c1)) = (rng(a)?, rng(b)?);
        if r0 >= r1 || c0 >= c1 {
            bail!("--detector {s:?}: the rectangle is empty (R0 < R1 and C0 < C1 are needed)");
        }
        return Ok(Some(Spec::Rect { r0, r1, c0, c1 }));
    }
    if let Some(p) = s.strip_prefix("pattern:") {
        let form = "pattern:ROW,COL or pattern:ROW,COL,FRACTION (scan position; pixels >= FRACTION of its maximum, default 0.5)";
        let v: Vec<&str> = p.split(',').collect();
        if !(2..=3).contains(&v.len()) {
            bail!("--detector {s:?}: expected {form}");
        }
        let fraction: f32 = if v.len() == 3 { num(v[2], s, form)? } else { 0.5 };
        if !(fraction > 0.0 && fraction <= 1.0) {
            bail!("--detector {s:?}: the fraction {fraction} must be in (0, 1]");
        }
        return Ok(Some(Spec::Pattern { row: num(v[0], s, form)?, col: num(v[1], s, form)?, fraction }));
    }
    Ok(None)
}

/// `--response`: sum or max.
pub fn parse_response(s: &str) -> Result<Response> {
    match s {
        "sum" => Ok(Response::Sum),
        "max" | "maximum" => Ok(Response::Max),
        _ => bail!("--response {s:?}: use sum or max"),
    }
}

/// The detector of `spec` on `ds` (the pattern mask reads its frame), checked against the detector
/// and the scan.
pub fn build(spec: &Spec, response: Response, geometry: &Geometry, ds: &dyn Dataset) -> Result<CustomDetector> {
    let region = match spec {
        Spec::Point { row, col, radius } => Region::Point { row: *row, col: *col, radius: *radius },
        Spec::Rect { r0, r1, c0, c1 } => Region::Rect { r0: *r0, r1: *r1, c0: *c0, c1: *c1 },
        Spec::Bf => Region::Disk(geometry.clone()),
        Spec::Adf => Region::Annulus(geometry.clone()),
        Spec::Mask(w) => Region::Weights(w.clone()),
        Spec::Pattern { row, col, fraction } => {
            let s = ds.scan();
            if *row >= s.rows || *col >= s.cols {
                bail!("--detector pattern:{row},{col}: scan position outside the {}x{} scan", s.rows, s.cols);
            }
            return Ok(crate::ops::detectors::from_pattern(ds, row * s.cols + col, *fraction, response)?);
        }
    };
    let det = CustomDetector { region, response };
    let (dr, dc) = ds.det();
    det.pixels(dr, dc)?;
    Ok(det)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_and_bad_ones_say_why() {
        assert_eq!(parse("point:3,4").unwrap(), Some(Spec::Point { row: 3, col: 4, radius: 0.0 }));
        assert_eq!(parse("point:3,4,1").unwrap(), Some(Spec::Point { row: 3, col: 4, radius: 1.0 }));
        assert_eq!(parse("rect:1:5,2:9").unwrap(), Some(Spec::Rect { r0: 1, r1: 5, c0: 2, c1: 9 }));
        assert_eq!(parse("pattern:0,7").unwrap(), Some(Spec::Pattern { row: 0, col: 7, fraction: 0.5 }));
        assert_eq!(parse("bf").unwrap(), None);
        assert!(parse("point:3").unwrap_err().to_string().contains("point:ROW,COL"));
        assert!(parse("point:3,4,2").unwrap_err().to_string().contains("0 to 1"));
        assert!(parse("point:a,4").unwrap_err().to_string().contains("\"a\" is not a number"));
        assert!(parse("rect:5:1,2:9").unwrap_err().to_string().contains("empty"));
        assert!(parse("rect:1:5").unwrap_err().to_string().contains("R0:R1,C0:C1"));
        assert!(parse("pattern:1,2,0").unwrap_err().to_string().contains("(0, 1]"));
        assert_eq!(parse_response("max").unwrap(), Response::Max);
        assert!(parse_response("mean").is_err());
    }
}
