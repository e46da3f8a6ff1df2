//! Custom virtual detectors: a point (one detector pixel or a disk of radius <= 1), a rectangle,
//! the BF disk or ADF annulus, or a weight mask (a mask file, or a mask thresholded from a
//! pattern), each with a "sum" (weighted sum over the region) or "maximum" (largest pixel value
//! in the region) response.
//!
//! Computed as an extra pass ([`custom_image`]) beside the one overview pass: the fused overview
//! kernel stays as it is (a mask there disables the raw 16-bit kernel), and a custom detector
//! reads only its region's pixels. Memory bounded by the budget (blocks from
//! [`overview::block_len`]), parallel on the rayon pool, with progress and cancellation.

use super::overview::{self, Geometry};
use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use rayon::prelude::*;

/// How the pixels of the region make one value per scan position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// Sum of the pixel values times their weights.
    #[default]
    Sum,
    /// The largest pixel value among the pixels of non-zero weight.
    Max,
}

impl Response {
    pub fn name(self) -> &'static str {
        match self {
            Response::Sum => "sum",
            Response::Max => "max",
        }
    }
}

/// The detector pixels a custom detector uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Region {
    /// Pixels within `radius` (0..=1; 0 = the one pixel) of (row, col), rounded to the nearest pixel.
    Point { row: usize, col: usize, radius: f32 },
    /// Half-open detector rows `r0..r1` and columns `c0..c1`.
    Rect { r0: usize, r1: usize, c0: usize, c1: usize },
    /// The BF disk of a geometry (`r <= bf_radius`, as the overview's BF).
    Disk(Geometry),
    /// The ADF annulus of a geometry (`adf_inner <= r <= adf_outer`, as the overview's ADF).
    Annulus(Geometry),
    /// Per-pixel weights (det_rows * det_cols), e.g. a mask file or [`mask_from_pattern`].
    Weights(Vec<f32>),
}

/// A custom detector: a region and a response.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CustomDetector {
    pub region: Region,
    pub response: Response,
}

impl CustomDetector {
    /// A short description for titles and messages, e.g. `point 12,40 max`, `rect 0:8,0:8 sum`.
    pub fn label(&self) -> String {
        let r = match &self.region {
            Region::Point { row, col, radius } if *radius > 0.0 => format!("point {row},{col} r{radius}"),
            Region::Point { row, col, .. } => format!("point {row},{col}"),
            Region::Rect { r0, r1, c0, c1 } => format!("rect {r0}:{r1},{c0}:{c1}"),
            Region::Disk(g) => format!("BF r{:.0}", g.bf_radius),
            Region::Annulus(g) => format!("ADF {:.0}-{:.0}", g.adf_inner, g.adf_outer),
            Region::Weights(w) => format!("mask {} px", w.iter().filter(|v| **v != 0.0).count()),
        };
        format!("{r} {}", self.response.name())
    }

    /// The cache key of the definition (weights by their hash, so the key stays short).
    pub fn key(&self) -> String {
        let region = match &self.region {
            Region::Weights(w) => {
                let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                format!("weights:{:016x}:{}", xxhash_rust::xxh3::xxh3_64(&bytes), w.len())
            }
            r => serde_json::to_string(r).unwrap_or_default(),
        };
        format!("{region}|{}", self.response.name())
    }

    /// The (pixel index, weight) pairs of the region on a `rows` x `cols` detector: ascending
    /// indices, non-zero weights. Err when the region is empty or outside the detector.
    pub fn pixels(&self, rows: usize, cols: usize) -> Result<Vec<(u32, f32)>> {
        let inside = |f: &dyn Fn(usize, usize) -> bool| -> Vec<(u32, f32)> {
            (0..rows * cols).filter(|&i| f(i / cols, i % cols)).map(|i| (i as u32, 1.0)).collect()
        };
        let px = match &self.region {
            Region::Point { row, col, radius } => {
                if *row >= rows || *col >= cols {
                    return Err(Error::Invalid(format!(
                        "point detector {row},{col} is outside the {rows}x{cols} detector"
                    )));
                }
                if !(0.0..=1.0).contains(radius) {
                    return Err(Error::Invalid(format!("point detector radius {radius} must be 0 to 1 px")));
                }
                let (r2, (y0, x0)) = (radius * radius, (*row as f32, *col as f32));
                inside(&|y, x| (y as f32 - y0).powi(2) + (x as f32 - x0).powi(2) <= r2 + 1e-6)
            }
            Region::Rect { r0, r1, c0, c1 } => {
                if r0 >= r1 || c0 >= c1 || *r1 > rows || *c1 > cols {
                    return Err(Error::Invalid(format!(
                        "rectangle detector rows {r0}:{r1}, cols {c0}:{c1} is empty or outside the {rows}x{cols} detector"
                    )));
                }
                inside(&|y, x| (*r0..*r1).contains(&y) && (*c0..*c1).contains(&x))
            }
            Region::Disk(g) => inside(&|y, x| overview::in_bf(g, y, x)),
            Region::Annulus(g) => inside(&|y, x| overview::in_adf(g, y, x)),
            Region::Weights(w) => {
                if w.len() != rows * cols {
                    return Err(Error::Invalid(format!(
                        "mask has {} values, the detector has {rows}x{cols} = {} pixels",
                        w.len(),
                        rows * cols
                    )));
                }
                w.iter().enumerate().filter(|(_, v)| **v != 0.0 && v.is_finite()).map(|(i, v)| (i as u32, *v)).collect()
            }
        };
        if px.is_empty() {
            return Err(Error::Invalid(format!("the detector {} covers no pixel", self.label())));
        }
        Ok(px)
    }
}

/// A 0/1 mask of the pixels of `pattern` at or above `fraction` of its maximum (a mask drawn from
/// the pattern under the cursor: the Bragg spots, the BF disk). Err for a fraction outside
/// (0, 1] or a pattern without a positive maximum.
pub fn mask_from_pattern(pattern: &[f32], fraction: f32) -> Result<Vec<f32>> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::Invalid(format!("mask threshold {fraction} must be in (0, 1] of the pattern maximum")));
    }
    let max = pattern.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    if !(max > 0.0) {
        return Err(Error::Invalid("the pattern has no positive pixel to threshold".into()));
    }
    let t = max * fraction;
    Ok(pattern.iter().map(|&v| if v >= t { 1.0 } else { 0.0 }).collect())
}

/// The response of one frame `f` (det pixels) over `px`.
#[inline]
fn respond<T: Copy + Into<u32>>(f: &[T], px: &[(u32, f32)], response: Response) -> f32 {
    match response {
        Response::Sum => {
            let mut s = 0f64;
            for &(i, w) in px {
                let v: u32 = f[i as usize].into();
                s += v as f64 * w as f64;
            }
            s as f32
        }
        Response::Max => {
            let mut m = 0u32;
            for &(i, _) in px {
                m = m.max(f[i as usize].into());
            }
            m as f32
        }
    }
}

/// A bad pixel inside a detector's region: its weight and its good 3x3 neighbours, whose
/// median replaces its value.
#[derive(Debug, Clone)]
struct BadPx {
    w: f32,
    nb: Vec<u32>,
}

/// Split the region `px` into its good pixels and its bad ones (`bad`: flat indices).
fn split_bad(px: Vec<(u32, f32)>, bad: &[usize], rows: usize, cols: usize) -> (Vec<(u32, f32)>, Vec<BadPx>) {
    if bad.is_empty() {
        return (px, Vec::new());
    }
    let mut flags = vec![false; rows * cols];
    for &i in bad.iter().filter(|&&i| i < rows * cols) {
        flags[i] = true;
    }
    let (good, badpx): (Vec<_>, Vec<_>) = px.into_iter().partition(|&(i, _)| !flags[i as usize]);
    let fixes = badpx
        .into_iter()
        .map(|(i, w)| {
            let (y, x) = (i as usize / cols, i as usize % cols);
            let mut nb = Vec::with_capacity(8);
            for yy in y.saturating_sub(1)..(y + 2).min(rows) {
                for xx in x.saturating_sub(1)..(x + 2).min(cols) {
                    if !flags[yy * cols + xx] {
                        nb.push((yy * cols + xx) as u32);
                    }
                }
            }
            BadPx { w, nb }
        })
        .filter(|b| !b.nb.is_empty())
        .collect();
    (good, fixes)
}

/// The response of frame `f` over the good pixels `px` and the repaired bad ones `fixes`.
#[inline]
fn respond_fixed<T: Copy + Into<u32>>(f: &[T], px: &[(u32, f32)], fixes: &[BadPx], response: Response) -> f32 {
    let base = respond(f, px, response);
    if fixes.is_empty() {
        return base;
    }
    let mut nb = [0f64; 8];
    let mut v = base as f64;
    for b in fixes {
        for (k, &j) in b.nb.iter().enumerate() {
            let p: u32 = f[j as usize].into();
            nb[k] = p as f64;
        }
        let s = &mut nb[..b.nb.len()];
        s.sort_unstable_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let m = if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) };
        match response {
            Response::Sum => v += m * b.w as f64,
            Response::Max => v = v.max(m),
        }
    }
    v as f32
}

/// One value per scan position for `det` (NaN where the position has no data yet), computed
/// over the positions present, in parallel within `budget` bytes of frames in flight.
/// `progress` counts frames and carries cancellation.
pub fn custom_image(ds: &dyn Dataset, det: &CustomDetector, budget: u64, progress: &Progress) -> Result<Vec<f32>> {
    custom_image_masked(ds, det, &[], budget, progress)
}

/// [`custom_image`] with the detector pixels `bad` (flat indices) replaced by the median of
/// their good 3x3 neighbours, as the overviews mask them (only the bad pixels inside the region
/// cost anything).
pub fn custom_image_masked(
    ds: &dyn Dataset,
    det: &CustomDetector,
    bad: &[usize],
    budget: u64,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let (dr, dc) = ds.det();
    let (px, fixes) = split_bad(det.pixels(dr, dc)?, bad, dr, dc);
    let npx = dr * dc;
    let total = ds.scan().positions();
    let present = ds.positions_present().min(total);
    let block = overview::block_len(ds, budget, rayon::current_num_threads()).max(1);
    let raw_bytes = (npx * ds.info().pixel_type.bytes()) as u64;
    progress.set_total(present as u64);
    let mut out = vec![f32::NAN; total];
    let pt = ds.info().pixel_type;
    out[..present].par_chunks_mut(block).enumerate().try_for_each_init(
        || (FrameBuf::new(pt), ReadScratch::default()),
        |(buf, scratch), (b, chunk)| -> Result<()> {
            progress.check()?;
            let start = b * block;
            ds.read_positions(start, chunk.len(), buf, scratch)?;
            crate::with_frames!(&*buf, f => {
                for (k, v) in chunk.iter_mut().enumerate() {
                    *v = respond_fixed(&f[k * npx..(k + 1) * npx], &px, &fixes, det.response);
                }
            });
            progress.add(chunk.len() as u64, chunk.len() as u64 * raw_bytes);
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(region: Region, response: Response) -> CustomDetector {
        CustomDetector { region, response }
    }

    #[test]
    fn regions_select_the_expected_pixels() {
        let p = |r: Region| det(r, Response::Sum).pixels(8, 10).unwrap();
        assert_eq!(p(Region::Point { row: 2, col: 3, radius: 0.0 }), vec![(23, 1.0)]);
        let plus: Vec<u32> = p(Region::Point { row: 2, col: 3, radius: 1.0 }).iter().map(|x| x.0).collect();
        assert_eq!(plus, vec![13, 22, 23, 24, 33], "radius 1 = the pixel and its 4 neighbours");
        let rect: Vec<u32> = p(Region::Rect { r0: 1, r1: 3, c0: 8, c1: 10 }).iter().map(|x| x.0).collect();
        assert_eq!(rect, vec![18, 19, 28, 29]);
        let mut w = vec![0f32; 80];
        w[5] = 0.5;
        w[70] = 2.0;
        assert_eq!(p(Region::Weights(w)), vec![(5, 0.5), (70, 2.0)]);
    }

    #[test]
    fn bad_regions_are_errors() {
        let e = |r: Region| det(r, Response::Max).pixels(8, 10).unwrap_err().to_string();
        assert!(e(Region::Point { row: 8, col: 0, radius: 0.0 }).contains("outside the 8x10"));
        assert!(e(Region::Point { row: 1, col: 1, radius: 1.5 }).contains("0 to 1"));
        assert!(e(Region::Rect { r0: 2, r1: 2, c0: 0, c1: 3 }).contains("empty or outside"));
        assert!(e(Region::Rect { r0: 0, r1: 3, c0: 0, c1: 11 }).contains("empty or outside"));
        assert!(e(Region::Weights(vec![0.0; 80])).contains("covers no pixel"));
        assert!(e(Region::Weights(vec![1.0; 79])).contains("79 values"));
    }

    #[test]
    fn responses_and_pattern_masks() {
        let f: Vec<u16> = vec![1, 9, 3, 7];
        let px = vec![(0, 1.0), (2, 2.0), (3, 0.5)];
        assert_eq!(respond(&f, &px, Response::Sum), 1.0 + 6.0 + 3.5);
        assert_eq!(respond(&f, &px, Response::Max), 7.0);
        let m = mask_from_pattern(&[0.0, 10.0, 4.9, 5.0, f32::NAN], 0.5).unwrap();
        assert_eq!(m, vec![0.0, 1.0, 0.0, 1.0, 0.0]);
        assert!(mask_from_pattern(&[0.0; 4], 0.5).is_err());
        assert!(mask_from_pattern(&[1.0; 4], 0.0).is_err());
        assert!(mask_from_pattern(&[1.0; 4], 1.5).is_err());
    }

    #[test]
    fn bad_pixels_in_the_region_are_replaced_by_their_neighbours_median() {
        // 3x4 detector, hot pixel at 1,1 (index 5) inside a rect 0:2,0:3; neighbour 0 is bad too
        let f: Vec<u16> = vec![9, 2, 3, 4, 5, 900, 7, 8, 1, 2, 3, 4];
        let d = det(Region::Rect { r0: 0, r1: 2, c0: 0, c1: 3 }, Response::Sum);
        let (px, fixes) = split_bad(d.pixels(3, 4).unwrap(), &[5, 0], 3, 4);
        assert_eq!(px.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 4, 6]);
        assert_eq!(fixes.len(), 2);
        // pixel 0: good neighbours 1, 4 = 2, 5 -> 3.5; pixel 5: good neighbours 1, 2, 4, 6, 8, 9, 10
        // = 2, 3, 5, 7, 1, 2, 3 -> 3; the good pixels 1, 2, 4, 6 = 2, 3, 5, 7
        assert_eq!(respond_fixed(&f, &px, &fixes, Response::Sum), 2.0 + 3.0 + 5.0 + 7.0 + 3.5 + 3.0);
        assert_eq!(respond_fixed(&f, &px, &fixes, Response::Max), 7.0);
        let (px0, none) = split_bad(d.pixels(3, 4).unwrap(), &[], 3, 4);
        assert_eq!(respond_fixed(&f, &px0, &none, Response::Max), 900.0);
    }

    #[test]
    fn keys_differ_by_definition() {
        let a = det(Region::Point { row: 1, col: 2, radius: 0.0 }, Response::Sum);
        let b = det(Region::Point { row: 1, col: 2, radius: 0.0 }, Response::Max);
        let c = det(Region::Weights(vec![1.0, 0.0]), Response::Sum);
        let d = det(Region::Weights(vec![0.0, 1.0]), Response::Sum);
        assert_ne!(a.key(), b.key());
        assert_ne!(c.key(), d.key());
        assert!(c.key().len() < 60);
    }
}
