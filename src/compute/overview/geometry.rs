//! The detector geometry (bright-field disk, ADF annulus) and finding the disk in a mean pattern.

/// Detector geometry in detector pixels (row, col).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    pub center: (f32, f32),
    /// Bright-field disk radius.
    pub bf_radius: f32,
    pub adf_inner: f32,
    pub adf_outer: f32,
    /// Origin for the centre of mass (default: `center`).
    pub com_origin: (f32, f32),
}

/// Default geometry for a detector: centre of the frame, radii from its size.
pub fn default_geometry(det_rows: usize, det_cols: usize) -> Geometry {
    let c = ((det_rows as f32 - 1.0) / 2.0, (det_cols as f32 - 1.0) / 2.0);
    let r = det_rows.min(det_cols) as f32;
    Geometry { center: c, bf_radius: r * 0.08, adf_inner: r * 0.12, adf_outer: r * 0.45, com_origin: c }
}

/// Geometry from a found bright-field disk: BF radius = disk radius, ADF from 1.3x the disk
/// radius to 95 % of the distance from the centre to the nearest detector edge, CoM origin = centre.
pub fn geometry_from_disk(center: (f32, f32), radius: f32, det_rows: usize, det_cols: usize) -> Geometry {
    let (cy, cx) = center;
    let edge = cy.min(cx).min(det_rows as f32 - 1.0 - cy).min(det_cols as f32 - 1.0 - cx).max(1.0);
    let inner = radius * 1.3;
    let outer = (edge * 0.95).max(inner + 1.0);
    Geometry { center, bf_radius: radius, adf_inner: inner, adf_outer: outer, com_origin: center }
}

/// Geometry from a mean pattern: the found disk, or [`default_geometry`] when none is found.
///
/// A found disk is used only when plausible: radius >= 2 px and the disk at least 1.5 radii away
/// from every detector edge (a tiny bright spot or a blob at the edge is not a BF disk).
pub fn auto_geometry(mean_dp: &[f32], det_rows: usize, det_cols: usize) -> Geometry {
    match find_bf_disk(mean_dp, det_rows, det_cols) {
        Some(((cy, cx), r))
            if r >= 2.0 && cy.min(cx).min(det_rows as f32 - 1.0 - cy).min(det_cols as f32 - 1.0 - cx) >= 1.5 * r =>
        {
            geometry_from_disk((cy, cx), r, det_rows, det_cols)
        }
        _ => default_geometry(det_rows, det_cols),
    }
}

/// Find the bright-field disk (centre, radius) in a mean pattern: threshold at half of the
/// robust maximum (99.95th percentile, so a few hot pixels do not count), keep the connected
/// region (4-neighbour) with the largest area, and take its intensity-weighted
/// centroid and the radius of a disk of the same area.
pub fn find_bf_disk(mean_dp: &[f32], rows: usize, cols: usize) -> Option<((f32, f32), f32)> {
    if mean_dp.len() != rows * cols || mean_dp.is_empty() {
        return None;
    }
    let (_, hi) = crate::compute::display::percentiles(mean_dp, 0.0, 99.95)?;
    if !(hi > 0.0) {
        return None;
    }
    let thr = hi * 0.5;
    let mut label = vec![0u32; rows * cols];
    let mut best: Option<(f64, u32)> = None;
    let mut next = 0u32;
    let mut stack = Vec::new();
    let mut stats: Vec<(f64, f64, f64, f64)> = Vec::new(); // (area, weight, wy, wx)
    for start in 0..rows * cols {
        if label[start] != 0 || !(mean_dp[start] >= thr) {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let (mut n, mut w, mut wy, mut wx) = (0f64, 0f64, 0f64, 0f64);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / cols, i % cols);
            let v = mean_dp[i] as f64;
            n += 1.0;
            w += v;
            wy += v * y as f64;
            wx += v * x as f64;
            let mut visit = |j: usize| {
                if label[j] == 0 && mean_dp[j] >= thr {
                    label[j] = next;
                    stack.push(j);
                }
            };
            if y > 0 {
                visit(i - cols);
            }
            if y + 1 < rows {
                visit(i + cols);
            }
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < cols {
                visit(i + 1);
            }
        }
        stats.push((n, w, wy, wx));
        // the largest region wins (hot pixels are bright but tiny)
        if best.is_none_or(|(bn, _)| n > bn) {
            best = Some((n, next));
        }
    }
    let (_, l) = best?;
    let (n, w, wy, wx) = stats[l as usize - 1];
    if n < 3.0 || !(w > 0.0) {
        return None;
    }
    let r = (n / std::f64::consts::PI).sqrt() as f32;
    Some((((wy / w) as f32, (wx / w) as f32), r))
}

/// Distance of detector pixel (y, x) from the centre, exactly as every detector uses it.
#[inline]
pub fn pixel_radius(geometry: &Geometry, y: usize, x: usize) -> f32 {
    let (cy, cx) = geometry.center;
    ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt()
}

/// Whether a pixel belongs to the BF disk (`r <= bf_radius`).
pub fn in_bf(g: &Geometry, y: usize, x: usize) -> bool {
    pixel_radius(g, y, x) <= g.bf_radius
}

/// Whether a pixel belongs to the ADF annulus (`adf_inner <= r <= adf_outer`).
pub fn in_adf(g: &Geometry, y: usize, x: usize) -> bool {
    let r = pixel_radius(g, y, x);
    r >= g.adf_inner && r <= g.adf_outer
}

#[cfg(test)]
mod geometry_tests {
    use super::*;

    #[test]
    fn implausible_disks_fall_back_to_the_default() {
        let (rows, cols) = (64usize, 64usize);
        // a bright disk of radius 8 at the centre
        let disk: Vec<f32> = (0..rows * cols)
            .map(|i| if pixel_radius(&default_geometry(rows, cols), i / cols, i % cols) <= 8.0 { 100.0 } else { 1.0 })
            .collect();
        let g = auto_geometry(&disk, rows, cols);
        assert!((g.bf_radius - 8.0).abs() < 0.6 && (g.center.0 - 31.5).abs() < 0.1, "{g:?}");
        assert!(g.adf_inner > g.bf_radius && g.adf_outer > g.adf_inner && g.adf_outer < 32.0);
        // a blob at the edge is not a BF disk
        let edge: Vec<f32> =
            (0..rows * cols).map(|i| if i / cols < 3 && i % cols < 10 { 100.0 } else { 1.0 }).collect();
        assert_eq!(auto_geometry(&edge, rows, cols), default_geometry(rows, cols));
        // nothing bright at all
        assert_eq!(auto_geometry(&vec![0.0; rows * cols], rows, cols), default_geometry(rows, cols));
    }
}
