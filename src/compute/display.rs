//! Display helpers for every image the app shows: linear/log/sqrt scaling, percentile clipping,
//! colour maps (from `colorous`) and optional hot-pixel masking.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Scale {
    #[default]
    Linear,
    Log,
    Sqrt,
}

impl Scale {
    pub fn next(self) -> Self {
        match self {
            Scale::Linear => Scale::Log,
            Scale::Log => Scale::Sqrt,
            Scale::Sqrt => Scale::Linear,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Scale::Linear => "linear",
            Scale::Log => "log",
            Scale::Sqrt => "sqrt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Colormap {
    Gray,
    #[default]
    Viridis,
    Inferno,
    Magma,
    /// Cyclic, for angles and phases.
    Twilight,
}

impl Colormap {
    pub const ALL: [Colormap; 5] =
        [Colormap::Gray, Colormap::Viridis, Colormap::Inferno, Colormap::Magma, Colormap::Twilight];
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Gray => "gray",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
            Colormap::Magma => "magma",
            Colormap::Twilight => "cyclic",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == s || (s == "twilight" && *c == Colormap::Twilight))
    }
    fn gradient(self) -> colorous::Gradient {
        match self {
            Colormap::Gray => colorous::GREYS,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
            Colormap::Magma => colorous::MAGMA,
            Colormap::Twilight => colorous::SINEBOW,
        }
    }
    /// 256-entry RGB lookup table.
    pub fn lut(self) -> Vec<[u8; 3]> {
        let g = self.gradient();
        (0..256)
            .map(|i| {
                let t = i as f64 / 255.0;
                // colorous GREYS runs white->black; flip it so high values are bright
                let t = if self == Colormap::Gray { 1.0 - t } else { t };
                let c = g.eval_continuous(t);
                [c.r, c.g, c.b]
            })
            .collect()
    }
}

/// How to turn values into colours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DisplayParams {
    pub scale: Scale,
    pub colormap: Colormap,
    /// Percentiles for clipping, e.g. (0.1, 99.9).
    pub clip: (f32, f32),
}

impl Default for DisplayParams {
    fn default() -> Self {
        DisplayParams { scale: Scale::Linear, colormap: Colormap::Viridis, clip: (0.1, 99.9) }
    }
}

/// Values at percentiles `lo`, `hi` (0..100) of the finite values, by selection (O(n)).
pub fn percentiles(v: &[f32], lo: f32, hi: f32) -> Option<(f32, f32)> {
    let mut f: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return None;
    }
    let n = f.len();
    let idx = |p: f32| (((p / 100.0) * (n - 1) as f32).round() as usize).min(n - 1);
    let (il, ih) = (idx(lo), idx(hi));
    let a = *f.select_nth_unstable_by(il, |a, b| a.total_cmp(b)).1;
    let b = *f.select_nth_unstable_by(ih, |a, b| a.total_cmp(b)).1;
    Some((a, b))
}

fn apply_scale(s: Scale, x: f32) -> f32 {
    match s {
        Scale::Linear => x,
        Scale::Log => (x.max(0.0) + 1.0).ln(),
        Scale::Sqrt => x.max(0.0).sqrt(),
    }
}

/// Map values to 8-bit levels (0..=255) with scaling and percentile clipping. Non-finite values
/// (missing scan positions) map to None.
pub fn to_levels(v: &[f32], p: &DisplayParams) -> Vec<Option<u8>> {
    let scaled: Vec<f32> = v.iter().map(|&x| if x.is_finite() { apply_scale(p.scale, x) } else { f32::NAN }).collect();
    let (lo, hi) = percentiles(&scaled, p.clip.0, p.clip.1).unwrap_or((0.0, 1.0));
    let span = if hi > lo { hi - lo } else { 1.0 };
    scaled
        .iter()
        .map(|&x| if x.is_finite() { Some((((x - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8) } else { None })
        .collect()
}

/// Render values to RGB8 (missing values dark grey).
pub fn to_rgb(v: &[f32], p: &DisplayParams) -> Vec<u8> {
    let lut = p.colormap.lut();
    let mut out = Vec::with_capacity(v.len() * 3);
    for l in to_levels(v, p) {
        out.extend_from_slice(&l.map(|l| lut[l as usize]).unwrap_or([40, 40, 40]));
    }
    out
}

/// Replace hot pixels (more than `factor` times the median of their 3x3 neighbours and above
/// `min`) by that median. Returns how many were masked.
pub fn mask_hot_pixels(img: &mut [f32], rows: usize, cols: usize, factor: f32, min: f32) -> usize {
    let src = img.to_vec();
    let mut n = 0;
    let mut nb = Vec::with_capacity(8);
    for y in 0..rows {
        for x in 0..cols {
            nb.clear();
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    if dy == 0 && dx == 0 {
                        continue;
                    }
                    let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                    if yy >= 0 && xx >= 0 && (yy as usize) < rows && (xx as usize) < cols {
                        nb.push(src[yy as usize * cols + xx as usize]);
                    }
                }
            }
            nb.sort_by(|a, b| a.total_cmp(b));
            let med = nb[nb.len() / 2];
            let v = src[y * cols + x];
            if v > min && v > factor * med.max(1.0) {
                img[y * cols + x] = med;
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_clip() {
        let v: Vec<f32> = (0..1001).map(|i| i as f32).collect();
        let (lo, hi) = percentiles(&v, 0.1, 99.9).unwrap();
        assert_eq!((lo, hi), (1.0, 999.0));
        let l = to_levels(&[0.0, 500.0, 1000.0, f32::NAN], &DisplayParams { clip: (0.0, 100.0), ..Default::default() });
        assert_eq!(l, vec![Some(0), Some(128), Some(255), None]);
    }

    #[test]
    fn gray_is_dark_to_bright() {
        let lut = Colormap::Gray.lut();
        assert!(lut[0][0] < 20 && lut[255][0] > 235);
    }

    #[test]
    fn hot_pixel_removed() {
        let mut img = vec![1.0f32; 25];
        img[12] = 1000.0;
        assert_eq!(mask_hot_pixels(&mut img, 5, 5, 10.0, 5.0), 1);
        assert_eq!(img[12], 1.0);
    }
}
