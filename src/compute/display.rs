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
    to_levels_in(v, p, scaled_range(v, p))
}

/// The clip percentiles of the scaled finite values of `v`.
pub fn scaled_range(v: &[f32], p: &DisplayParams) -> Option<(f32, f32)> {
    let scaled: Vec<f32> = v.iter().filter(|x| x.is_finite()).map(|&x| apply_scale(p.scale, x)).collect();
    percentiles(&scaled, p.clip.0, p.clip.1)
}

/// [`to_levels`] with a given range of scaled values (e.g. taken from the whole image while
/// only a sample of it is shown); None maps as (0, 1).
pub fn to_levels_in(v: &[f32], p: &DisplayParams, range: Option<(f32, f32)>) -> Vec<Option<u8>> {
    let (lo, hi) = range.unwrap_or((0.0, 1.0));
    let span = if hi > lo { hi - lo } else { 1.0 };
    v.iter()
        .map(|&x| {
            x.is_finite().then(|| (((apply_scale(p.scale, x) - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8)
        })
        .collect()
}

/// Render values to RGB8 (missing values dark grey).
pub fn to_rgb(v: &[f32], p: &DisplayParams) -> Vec<u8> {
    to_rgb_in(v, p, scaled_range(v, p))
}

/// [`to_rgb`] with a given range of scaled values (see [`to_levels_in`]).
pub fn to_rgb_in(v: &[f32], p: &DisplayParams, range: Option<(f32, f32)>) -> Vec<u8> {
    let lut = p.colormap.lut();
    let mut out = Vec::with_capacity(v.len() * 3);
    for l in to_levels_in(v, p, range) {
        out.extend_from_slice(&l.map(|l| lut[l as usize]).unwrap_or([40, 40, 40]));
    }
    out
}

/// The display range of `v` under `p` in data units: the clip percentiles of the scaled values,
/// scaled back (the limits of the colour bar).
pub fn display_range(v: &[f32], p: &DisplayParams) -> Option<(f32, f32)> {
    scaled_range(v, p).map(|r| unscaled(p, r))
}

/// A range of scaled values in data units.
pub fn unscaled(p: &DisplayParams, (lo, hi): (f32, f32)) -> (f32, f32) {
    (unscale(p.scale, lo), unscale(p.scale, hi))
}

fn unscale(s: Scale, y: f32) -> f32 {
    match s {
        Scale::Linear => y,
        Scale::Log => y.exp_m1(),
        Scale::Sqrt => y * y,
    }
}

/// The percentile clipping choices, as cycled in the viewer (low, high percentile).
pub const CLIPS: [(f32, f32); 4] = [(0.5, 99.5), (0.1, 99.9), (1.0, 99.0), (0.0, 100.0)];

/// The clipping after `clip` in [`CLIPS`] (the first one for a clipping not in the list).
pub fn next_clip(clip: (f32, f32)) -> (f32, f32) {
    CLIPS.iter().position(|c| *c == clip).map(|i| CLIPS[(i + 1) % CLIPS.len()]).unwrap_or(CLIPS[0])
}

/// How a clipping is shown: "0.5-99.5 %", "min-max".
pub fn clip_name(clip: (f32, f32)) -> String {
    if clip == (0.0, 100.0) { "min-max".into() } else { format!("{}-{} %", clip.0, clip.1) }
}

/// Statistics of the finite values of an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f32,
    pub max: f32,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// How many values are finite.
    pub n: usize,
}

/// Min, max, mean and standard deviation of the finite values (None when there are none).
pub fn stats(v: &[f32]) -> Option<Stats> {
    let (mut min, mut max, mut n) = (f32::INFINITY, f32::NEG_INFINITY, 0usize);
    let mut sum = 0f64;
    for &x in v.iter().filter(|x| x.is_finite()) {
        min = min.min(x);
        max = max.max(x);
        sum += x as f64;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let var = v.iter().filter(|x| x.is_finite()).map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    Some(Stats { min, max, mean, std: var.sqrt(), n })
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
    fn stats_range_and_clips() {
        let st = stats(&[1.0, 2.0, 3.0, 4.0, f32::NAN]).unwrap();
        assert_eq!((st.min, st.max, st.n), (1.0, 4.0, 4));
        assert!((st.mean - 2.5).abs() < 1e-12 && (st.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert!(stats(&[f32::NAN]).is_none());
        let v: Vec<f32> = (0..1001).map(|i| i as f32).collect();
        let p = DisplayParams { scale: Scale::Linear, colormap: Colormap::Gray, clip: (0.1, 99.9) };
        assert_eq!(display_range(&v, &p), Some((1.0, 999.0)));
        // log and sqrt ranges come back in data units
        for scale in [Scale::Log, Scale::Sqrt] {
            let (lo, hi) = display_range(&v, &DisplayParams { scale, clip: (0.0, 100.0), ..p }).unwrap();
            assert!(lo.abs() < 1e-3 && (hi - 1000.0).abs() < 0.1, "{scale:?}: {lo} {hi}");
        }
        assert_eq!(next_clip(CLIPS[3]), CLIPS[0]);
        assert_eq!(next_clip((0.5, 99.5)), (0.1, 99.9));
        assert_eq!(clip_name((0.0, 100.0)), "min-max");
        assert_eq!(clip_name((1.0, 99.0)), "1-99 %");
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
