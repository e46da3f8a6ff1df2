//! The colour wheel of a vector field (hue = direction, brightness = magnitude) and its legend.

use crate::tui::images::Raster;

/// RGB of a direction (radians) at brightness `v` (0..1), full saturation.
pub fn wheel_colour(angle: f64, v: f64) -> [u8; 3] {
    let h = (angle / std::f64::consts::TAU).rem_euclid(1.0) * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let v = v.clamp(0.0, 1.0) * 255.0;
    [(r * v).round() as u8, (g * v).round() as u8, (b * v).round() as u8]
}

/// The field (vx, vy) (rows x cols) as a colour wheel raster of `w`x`h` display pixels: hue =
/// direction (x right, y down, as displayed), brightness = magnitude / its 99th percentile.
pub fn wheel_raster(vx: &[f32], vy: &[f32], cols: usize, rows: usize, w: usize, h: usize) -> Raster {
    let mut mags: Vec<f32> = vx.iter().zip(vy).map(|(a, b)| a.hypot(*b)).filter(|m| m.is_finite()).collect();
    mags.sort_unstable_by(f32::total_cmp);
    let top = mags.get((mags.len() as f64 * 0.99) as usize).or(mags.last()).copied().unwrap_or(0.0).max(1e-12) as f64;
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let i = (y * rows / h.max(1)).min(rows - 1) * cols + (x * cols / w.max(1)).min(cols - 1);
            let (a, b) = (vx[i] as f64, vy[i] as f64);
            px.push(if a.is_finite() && b.is_finite() { wheel_colour(b.atan2(a), a.hypot(b) / top) } else { [0; 3] });
        }
    }
    let mut r = Raster { w, h, px };
    draw_legend(&mut r);
    r
}

/// The wheel legend in the bottom-right corner: a disc whose colour at each point is that of a
/// field pointing from its centre to the point, as strong as the distance.
pub fn draw_legend(r: &mut Raster) {
    let rad = (r.w.min(r.h) / 6).clamp(3, 24) as i64;
    if r.w < 4 * rad as usize || r.h < 2 * rad as usize + 2 {
        return;
    }
    let (cx, cy) = (r.w as i64 - rad - 2, r.h as i64 - rad - 2);
    for dy in -rad - 1..=rad + 1 {
        for dx in -rad - 1..=rad + 1 {
            let d = ((dx * dx + dy * dy) as f64).sqrt();
            if d <= rad as f64 {
                r.set(cx + dx, cy + dy, wheel_colour((dy as f64).atan2(dx as f64), d / rad as f64));
            } else if d <= rad as f64 + 1.0 {
                r.set(cx + dx, cy + dy, [128, 128, 128]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_colours_follow_the_direction_and_magnitude() {
        assert_eq!(wheel_colour(0.0, 1.0), [255, 0, 0]); // +x: red
        assert_eq!(wheel_colour(std::f64::consts::PI, 1.0), [0, 255, 255]); // -x: cyan
        assert_eq!(wheel_colour(0.0, 0.0), [0, 0, 0]);
        // a field pointing right on the left half, down on the right half, stronger on the right
        let (vx, vy) = (vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 2.0, 0.0, 2.0]);
        let r = wheel_raster(&vx, &vy, 2, 2, 2, 2);
        assert_eq!(r.get(0, 0)[0], 128, "half of the 99th-percentile magnitude: red at half value");
        let down = wheel_colour(std::f64::consts::FRAC_PI_2, 1.0);
        assert_eq!(r.get(1, 1), down);
        assert!(down[1] > 200 && down[0] > 100 && down[2] == 0, "down is yellow-green: {down:?}");
    }

    #[test]
    fn legend_is_drawn_in_the_corner() {
        let mut r = Raster { w: 60, h: 40, px: vec![[0; 3]; 2400] };
        draw_legend(&mut r);
        let rad = 6i64;
        let (cx, cy) = (60 - rad - 2, 40 - rad - 2);
        assert_eq!(r.get((cx + rad - 1) as usize, cy as usize), wheel_colour(0.0, (rad - 1) as f64 / rad as f64));
        assert_eq!(r.get(0, 0), [0; 3]);
    }
}
