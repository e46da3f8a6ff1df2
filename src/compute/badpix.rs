//! Bad detector pixels: hot pixels found in the mean pattern and dead pixels that stay at zero,
//! and their repair (the median of the good 3x3 neighbours).
//!
//! A pixel is flagged only on evidence: under a Poisson model of its 3x3 neighbourhood summed
//! over the `n` frames sampled, the chance of flagging a good pixel anywhere on the detector is
//! at most [`EXPECTED_FALSE_FLAGS`] (a per-pixel level of that divided by the number of pixels).
//!
//! * Hot: the pixel's summed counts `c` are improbable for a pixel as bright as its brightest
//!   neighbour (`lambda = n max(top, 1 / n)`: the Chernoff bound `exp(-lambda h(c / lambda))`,
//!   `h(u) = u ln u - u + 1`, of the Poisson upper tail is below the level), and it is an isolated
//!   spike: above the median `m` of its neighbours by more than twice the brightest neighbour's
//!   excess (not the edge of the bright-field disk) and by more than `k` robust sigmas of the
//!   neighbours' texture (`1.4826 MAD`).
//! * Dead: zero in all `n` frames where even its dimmest neighbour predicts so many counts
//!   (`lambda = n min`) that zero has a chance `exp(-lambda)` below the level.
//! * Fewer than [`MIN_FRAMES`] frames: nothing is flagged and the result says so
//!   ([`BadPixels::too_few_frames`]): a defect is a property of the detector that persists in
//!   every frame, and one or two frames cannot tell it from the specimen's signal.

/// Expected number of good pixels flagged per data set (all pixels together).
pub const EXPECTED_FALSE_FLAGS: f64 = 1e-3;
/// Fewest frames the search decides on; below it nothing is flagged.
pub const MIN_FRAMES: usize = 4;
/// What `info` and the viewer say when there are too few frames.
pub const TOO_FEW_FRAMES: &str = "too few frames to find bad pixels";
/// Default threshold in robust sigmas of the neighbours' texture.
pub const DEFAULT_K: f64 = 5.0;
/// Frames sampled (evenly over the positions present) for the mean pattern the bad pixels are
/// found in: by `info`, the overviews, DPC and the conversion alike.
pub const SAMPLES: usize = 64;

/// Bad pixels of a detector, as sorted flat indices (row * cols + col).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BadPixels {
    pub rows: usize,
    pub cols: usize,
    pub hot: Vec<usize>,
    pub dead: Vec<usize>,
    /// Pixels given by the user (a mask file).
    pub user: Vec<usize>,
    /// Frames the search was made on.
    #[serde(default)]
    pub frames: usize,
    /// Fewer than [`MIN_FRAMES`] frames: nothing was looked for.
    #[serde(default)]
    pub too_few_frames: bool,
}

impl BadPixels {
    /// Every bad pixel, sorted, without duplicates.
    pub fn all(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.hot.iter().chain(&self.dead).chain(&self.user).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    /// (row, col) of flat indices.
    pub fn coords(&self, idx: &[usize]) -> Vec<(usize, usize)> {
        idx.iter().map(|&i| (i / self.cols.max(1), i % self.cols.max(1))).collect()
    }
    /// A per-pixel flag image (true = bad).
    pub fn flags(&self) -> Vec<bool> {
        let mut f = vec![false; self.rows * self.cols];
        for i in self.all() {
            if i < f.len() {
                f[i] = true;
            }
        }
        f
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// The values of the (up to 8) 3x3 neighbours of (y, x).
fn neighbours(img: &[f32], rows: usize, cols: usize, y: usize, x: usize, out: &mut Vec<f64>) {
    out.clear();
    for dy in -1i64..=1 {
        for dx in -1i64..=1 {
            let (yy, xx) = (y as i64 + dy, x as i64 + dx);
            if (dy, dx) == (0, 0) || yy < 0 || xx < 0 || yy >= rows as i64 || xx >= cols as i64 {
                continue;
            }
            out.push(img[yy as usize * cols + xx as usize] as f64);
        }
    }
}

/// ln P(X >= c) for X ~ Poisson(lambda), bounded from above (Chernoff): `-lambda h(c / lambda)`
/// for `c > lambda`, 0 otherwise.
fn ln_upper_tail(c: f64, lambda: f64) -> f64 {
    if c <= lambda {
        return 0.0;
    }
    let u = c / lambda;
    -lambda * (u * u.ln() - u + 1.0)
}

/// Hot and dead pixels of a mean pattern `mean` (rows x cols) averaged over `frames` frames.
pub fn detect(mean: &[f32], rows: usize, cols: usize, frames: usize, k: f64) -> BadPixels {
    let mut bad = BadPixels { rows, cols, frames, ..Default::default() };
    if frames < MIN_FRAMES {
        bad.too_few_frames = true;
        return bad;
    }
    if mean.len() != rows * cols {
        return bad;
    }
    let n = frames as f64;
    // the per-pixel level: EXPECTED_FALSE_FLAGS over the whole detector
    let ln_level = (EXPECTED_FALSE_FLAGS / (rows * cols) as f64).ln();
    let mut nb = Vec::with_capacity(8);
    let mut dev = Vec::with_capacity(8);
    for y in 0..rows {
        for x in 0..cols {
            let v = mean[y * cols + x] as f64;
            neighbours(mean, rows, cols, y, x, &mut nb);
            if nb.is_empty() {
                continue;
            }
            let top = nb.iter().copied().fold(f64::MIN, f64::max);
            let low = nb.iter().copied().fold(f64::MAX, f64::min);
            let m = median(&mut nb);
            dev.clear();
            dev.extend(nb.iter().map(|a| (a - m).abs()));
            let mad = median(&mut dev);
            let improbable = ln_upper_tail(v * n, (top * n).max(1.0)) < ln_level;
            if improbable && v - m > 2.0 * (top - m) && v > m + k * 1.4826 * mad {
                bad.hot.push(y * cols + x);
            } else if v == 0.0 && -(low * n) < ln_level {
                bad.dead.push(y * cols + x);
            }
        }
    }
    bad
}

/// Bad pixels from a user mask (same shape as the detector; non-zero = bad).
pub fn from_mask(mask: &[f32], rows: usize, cols: usize) -> Vec<usize> {
    debug_assert_eq!(mask.len(), rows * cols);
    mask.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect()
}

/// Replace each bad pixel of `frame` by the median of its good 3x3 neighbours (left as is when
/// it has none). `flags` marks the bad pixels (rows x cols).
pub fn repair(frame: &mut [f32], rows: usize, cols: usize, bad: &[usize], flags: &[bool]) {
    let mut nb = Vec::with_capacity(8);
    for &i in bad {
        let (y, x) = (i / cols, i % cols);
        nb.clear();
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                if yy < 0 || xx < 0 || yy >= rows as i64 || xx >= cols as i64 {
                    continue;
                }
                let j = yy as usize * cols + xx as usize;
                if !flags[j] {
                    nb.push(frame[j] as f64);
                }
            }
        }
        if !nb.is_empty() {
            frame[i] = median(&mut nb) as f32;
        }
    }
}

/// One bad pixel as the overview kernel corrects it.
#[derive(Debug, Clone)]
struct FixPx {
    i: usize,
    y: f64,
    x: f64,
    /// Inside the BF disk / the ADF annulus of the geometry.
    bf: bool,
    adf: bool,
    /// Its good 3x3 neighbours (flat indices).
    nb: Vec<usize>,
}

/// Bad pixels prepared for the overview kernel: instead of copying and repairing every frame,
/// the per-frame sums (total, row and column moments, BF, ADF) are corrected by
/// `median(good neighbours) - value` of each bad pixel (the list is short).
#[derive(Debug, Clone)]
pub struct BadFix {
    px: Vec<FixPx>,
    rows: usize,
    cols: usize,
}

impl BadFix {
    /// `bad`: flat indices; `in_bf`, `in_adf`: the detectors' membership of a pixel (y, x).
    pub fn new(
        bad: &[usize],
        rows: usize,
        cols: usize,
        in_bf: impl Fn(usize, usize) -> bool,
        in_adf: impl Fn(usize, usize) -> bool,
    ) -> BadFix {
        let mut flags = vec![false; rows * cols];
        for &i in bad.iter().filter(|&&i| i < rows * cols) {
            flags[i] = true;
        }
        let px = bad
            .iter()
            .filter(|&&i| i < rows * cols)
            .map(|&i| {
                let (y, x) = (i / cols, i % cols);
                let mut nb = Vec::with_capacity(8);
                for yy in y.saturating_sub(1)..(y + 2).min(rows) {
                    for xx in x.saturating_sub(1)..(x + 2).min(cols) {
                        let j = yy * cols + xx;
                        if !flags[j] {
                            nb.push(j);
                        }
                    }
                }
                FixPx { i, y: y as f64, x: x as f64, bf: in_bf(y, x), adf: in_adf(y, x), nb }
            })
            .collect();
        BadFix { px, rows, cols }
    }

    pub fn is_empty(&self) -> bool {
        self.px.is_empty()
    }

    /// Corrections of one frame's (sum, row moment, column moment, BF, ADF), `px(i)` giving the
    /// frame's value at flat index `i`.
    #[inline]
    pub fn delta(&self, px: impl Fn(usize) -> f64) -> [f64; 5] {
        let mut d = [0f64; 5];
        let mut nb = [0f64; 8];
        for p in &self.px {
            if p.nb.is_empty() {
                continue;
            }
            for (k, &j) in p.nb.iter().enumerate() {
                nb[k] = px(j);
            }
            let e = median(&mut nb[..p.nb.len()]) - px(p.i);
            d[0] += e;
            d[1] += e * p.y;
            d[2] += e * p.x;
            if p.bf {
                d[3] += e;
            }
            if p.adf {
                d[4] += e;
            }
        }
        d
    }

    /// Correction of one frame's weighted sum with the detector weights `w` (a custom mask).
    pub fn delta_weighted(&self, px: impl Fn(usize) -> f64, w: &[f32]) -> f64 {
        let mut d = 0f64;
        let mut nb = [0f64; 8];
        for p in &self.px {
            let wi = w.get(p.i).copied().unwrap_or(0.0) as f64;
            if p.nb.is_empty() || wi == 0.0 {
                continue;
            }
            for (k, &j) in p.nb.iter().enumerate() {
                nb[k] = px(j);
            }
            d += (median(&mut nb[..p.nb.len()]) - px(p.i)) * wi;
        }
        d
    }

    /// Repair a pattern (mean or maximum) in place.
    pub fn repair(&self, pattern: &mut [f32]) {
        if pattern.len() != self.rows * self.cols {
            return;
        }
        let idx: Vec<usize> = self.px.iter().map(|p| p.i).collect();
        let mut flags = vec![false; pattern.len()];
        for &i in &idx {
            flags[i] = true;
        }
        repair(pattern, self.rows, self.cols, &idx, &flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_pattern_with_mad_zero_flags_only_the_spike() {
        // mostly zero, a few pixels with a count or two (MAD of every neighbourhood is 0)
        let (r, c, n) = (32, 40, 8);
        let mut m = vec![0f32; r * c];
        m[3 * c + 4] = 0.125;
        m[10 * c + 20] = 0.25;
        m[20 * c + 7] = 1.0;
        m[17 * c + 33] = 7.75; // the hot pixel
        let b = detect(&m, r, c, n, DEFAULT_K);
        assert_eq!(b.hot, vec![17 * c + 33]);
        assert!(b.dead.is_empty(), "zeros of a sparse pattern are not dead: {:?}", b.dead);
    }

    #[test]
    fn flat_background_finds_hot_and_dead_but_not_the_disk_edge() {
        let (r, c, n) = (48, 48, 64);
        let mut m = vec![50f32; r * c];
        for y in 0..r {
            for x in 0..c {
                let d = ((y as f32 - 24.0).powi(2) + (x as f32 - 24.0).powi(2)).sqrt();
                if d < 10.0 {
                    m[y * c + x] = 400.0;
                }
                // mild texture
                m[y * c + x] += ((y * 7 + x * 3) % 5) as f32;
            }
        }
        m[5 * c + 5] = 900.0;
        m[24 * c + 24] = 2000.0; // hot inside the disk
        m[40 * c + 10] = 0.0; // dead
        let b = detect(&m, r, c, n, DEFAULT_K);
        assert_eq!(b.hot, vec![5 * c + 5, 24 * c + 24]);
        assert_eq!(b.dead, vec![40 * c + 10]);
    }

    /// A mean pattern of `n` Poisson frames of `rate(y, x)` counts per frame (xorshift + Knuth).
    fn poisson_mean(r: usize, c: usize, n: usize, seed: u64, rate: impl Fn(usize, usize) -> f64) -> Vec<f32> {
        let mut s = seed.max(1);
        let mut uniform = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut m = vec![0f32; r * c];
        for y in 0..r {
            for x in 0..c {
                let l = (-rate(y, x)).exp();
                let mut sum = 0u64;
                for _ in 0..n {
                    let mut p = uniform();
                    while p > l {
                        sum += 1;
                        p *= uniform();
                    }
                }
                m[y * c + x] = (sum as f64 / n as f64) as f32;
            }
        }
        m
    }

    #[test]
    fn clean_poisson_patterns_flag_nothing_at_any_dose() {
        // a bright disk on a faint background, from very sparse to bright, few to many frames:
        // the old rules flagged good pixels here (a 10-count dead threshold expects e^-10 per pixel)
        let (r, c) = (96, 96);
        for (i, &(dose, n)) in [(0.02, 64), (0.2, 8), (0.16, 64), (2.0, 4), (30.0, 64)].iter().enumerate() {
            let rate = |y: usize, x: usize| {
                let d = ((y as f64 - 47.3).powi(2) + (x as f64 - 48.6).powi(2)).sqrt();
                dose * if d < 20.0 { 1.0 } else { 0.01 + 0.2 * (-(d - 20.0) / 6.0).exp() }
            };
            let m = poisson_mean(r, c, n, 0x9E37 + i as u64, rate);
            let b = detect(&m, r, c, n, DEFAULT_K);
            assert!(b.all().is_empty() && !b.too_few_frames, "dose {dose}, {n} frames: {b:?}");
        }
    }

    #[test]
    fn too_few_frames_flag_nothing_and_say_so() {
        let (r, c) = (16, 16);
        let mut m = vec![50f32; r * c];
        m[5 * c + 5] = 4000.0;
        m[9 * c + 9] = 0.0;
        let b = detect(&m, r, c, MIN_FRAMES - 1, DEFAULT_K);
        assert!(b.all().is_empty() && b.too_few_frames, "{b:?}");
        let b = detect(&m, r, c, MIN_FRAMES, DEFAULT_K);
        assert_eq!((b.hot.clone(), b.dead.clone(), b.too_few_frames), (vec![5 * c + 5], vec![9 * c + 9], false));
    }

    #[test]
    fn a_zero_is_dead_only_when_its_dimmest_neighbour_makes_zero_improbable() {
        // ln(1e-3 / 256) = -12.45: 13 expected counts make a zero evidence, 12 do not
        let (r, c, n) = (16, 16, 8);
        for (per_frame, dead) in [(13.0 / 8.0, true), (12.0 / 8.0, false)] {
            let mut m = vec![per_frame as f32; r * c];
            m[7 * c + 7] = 0.0;
            let b = detect(&m, r, c, n, DEFAULT_K);
            assert_eq!(b.dead == vec![7 * c + 7], dead, "{per_frame}: {b:?}");
        }
    }

    #[test]
    fn repair_uses_the_median_of_good_neighbours() {
        let (r, c) = (3, 3);
        let mut f = vec![1.0, 2.0, 3.0, 4.0, 1000.0, 6.0, 7.0, 8.0, 0.0];
        let bad = vec![4, 8];
        let mut flags = vec![false; 9];
        flags[4] = true;
        flags[8] = true;
        repair(&mut f, r, c, &bad, &flags);
        assert_eq!(f[4], 4.0); // median of 1, 2, 3, 4, 6, 7, 8
        assert_eq!(f[8], 7.0); // median of 6, 8 (the centre is bad)
    }

    #[test]
    fn sum_corrections_equal_those_of_a_repaired_frame() {
        let (r, c) = (6, 7);
        let f: Vec<f32> = (0..r * c).map(|i| ((i * 37) % 11) as f32).collect();
        let mut g = f.clone();
        g[2 * c + 3] = 5000.0; // hot
        g[5 * c + 6] = 777.0; // hot in the corner
        let bad = vec![2 * c + 3, 5 * c + 6];
        let in_bf = |y: usize, x: usize| y < 3 && x < 4;
        let fix = BadFix::new(&bad, r, c, in_bf, |_, _| true);
        let d = fix.delta(|i| g[i] as f64);
        let mut rep = g.clone();
        fix.repair(&mut rep);
        let sums = |v: &[f32]| {
            let mut s = [0f64; 5];
            for (i, &p) in v.iter().enumerate() {
                let (y, x) = (i / c, i % c);
                s[0] += p as f64;
                s[1] += p as f64 * y as f64;
                s[2] += p as f64 * x as f64;
                if in_bf(y, x) {
                    s[3] += p as f64;
                }
                s[4] += p as f64;
            }
            s
        };
        let w: Vec<f32> = (0..r * c).map(|i| (i % 3) as f32 * 0.5).collect();
        let dot = |v: &[f32]| v.iter().zip(&w).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let dw = fix.delta_weighted(|i| g[i] as f64, &w);
        assert!((dot(&g) + dw - dot(&rep)).abs() < 1e-6, "weighted: {} + {dw} != {}", dot(&g), dot(&rep));
        let (a, b) = (sums(&g), sums(&rep));
        for k in 0..5 {
            assert!((a[k] + d[k] - b[k]).abs() < 1e-6, "sum {k}: {} + {} != {}", a[k], d[k], b[k]);
        }
        assert!(d[0] < -5000.0, "the hot pixels are taken out: {}", d[0]);
    }
}
