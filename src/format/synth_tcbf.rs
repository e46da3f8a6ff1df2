//! A synthetic defocused-probe scan for tcBF: an object known on a grid `FINE` times finer than
//! the scan (random Gaussian blobs, some narrower than a scan step), seen by every bright-field
//! detector pixel K shifted by a known linear parallax s_K = scale R(theta) (K - centre), i.e.
//! I_K(r) = dose (1 + contrast o(r - s_K)), with Poisson counts; a faint flat background outside
//! the disk. Written as a processed 12-bit `.mib` through [`super::synth::write_with`].

use super::synth::{SynthSpec, write_with};
use crate::error::Result;
use std::path::Path;

/// The fine grid factor of [`ParallaxSpec::object_fine`].
pub const FINE: usize = 4;
/// Table oversampling of the object (2 x FINE, so the fine grid's points are table points).
const TAB: usize = 2 * FINE;
/// Margin around the scan covered by the object table (scan pixels), more than any shift.
const PAD: usize = 16;

#[derive(Debug, Clone)]
pub struct ParallaxSpec {
    pub rows: usize,
    pub cols: usize,
    /// Square detector side.
    pub det: usize,
    /// Disk centre (row, col) and radius, detector pixels.
    pub centre: (f64, f64),
    pub radius: f64,
    /// Parallax: scan pixels per detector pixel, and rotation (degrees; see
    /// `compute::tcbf::fit::LinearFit::rotation_deg`).
    pub scale: f64,
    pub rotation_deg: f64,
    /// Mean counts per BF pixel per position.
    pub dose: f64,
    pub contrast: f64,
    pub seed: u64,
}

impl Default for ParallaxSpec {
    fn default() -> Self {
        ParallaxSpec {
            rows: 48,
            cols: 48,
            det: 64,
            centre: (31.3, 32.6),
            radius: 12.0,
            scale: 0.25,
            rotation_deg: 25.0,
            dose: 40.0,
            contrast: 0.6,
            seed: 7,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn uniform(seed: u64, a: u64, b: u64) -> f64 {
    ((mix(seed ^ mix(a ^ mix(b))) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A Poisson count of mean `lam` from a uniform `u` source (Knuth below 30, normal above).
pub(crate) fn poisson(lam: f64, mut u: impl FnMut(u64) -> f64) -> u32 {
    if lam <= 0.0 {
        return 0;
    }
    if lam < 30.0 {
        let l = (-lam).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= u(k as u64);
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    let z = (-2.0 * u(0).ln()).sqrt() * (std::f64::consts::TAU * u(1)).cos();
    (lam + lam.sqrt() * z).round().max(0.0) as u32
}

/// The object o (about -1..1) tabulated on a grid TAB times finer than the scan, with PAD
/// scan pixels of margin.
pub struct Object {
    w: usize,
    h: usize,
    tab: Vec<f32>,
}

impl Object {
    pub fn new(spec: &ParallaxSpec) -> Object {
        let (h, w) = ((spec.rows + 2 * PAD) * TAB, (spec.cols + 2 * PAD) * TAB);
        let mut tab = vec![0f32; h * w];
        let n_blobs = (spec.rows + 2 * PAD) * (spec.cols + 2 * PAD) / 3;
        for b in 0..n_blobs as u64 {
            let u = |i: u64| uniform(spec.seed, b, i);
            let (by, bx) = (u(0) * (h / TAB) as f64, u(1) * (w / TAB) as f64);
            let sigma = 0.35 + 0.6 * u(2);
            let amp = if u(3) < 0.5 { -1.0 } else { 1.0 } * (0.4 + 0.6 * u(4));
            let reach = (4.0 * sigma * TAB as f64).ceil() as isize;
            let (cy, cx) = ((by * TAB as f64) as isize, (bx * TAB as f64) as isize);
            for ty in (cy - reach).max(0)..(cy + reach).min(h as isize) {
                for tx in (cx - reach).max(0)..(cx + reach).min(w as isize) {
                    let (y, x) = (ty as f64 / TAB as f64, tx as f64 / TAB as f64);
                    let d2 = (y - by).powi(2) + (x - bx).powi(2);
                    tab[ty as usize * w + tx as usize] += (amp * (-d2 / (2.0 * sigma * sigma)).exp()) as f32;
                }
            }
        }
        for v in tab.iter_mut() {
            *v = v.tanh();
        }
        Object { w, h, tab }
    }
    /// o at scan coordinate (y, x) (bilinear in the table).
    pub fn at(&self, y: f64, x: f64) -> f64 {
        let (ty, tx) = ((y + PAD as f64) * TAB as f64, (x + PAD as f64) * TAB as f64);
        let (y0, x0) = (ty.floor().clamp(0.0, (self.h - 2) as f64), tx.floor().clamp(0.0, (self.w - 2) as f64));
        let (fy, fx) = ((ty - y0).clamp(0.0, 1.0), (tx - x0).clamp(0.0, 1.0));
        let i = y0 as usize * self.w + x0 as usize;
        let t = &self.tab;
        let top = t[i] as f64 * (1.0 - fx) + t[i + 1] as f64 * fx;
        let bot = t[i + self.w] as f64 * (1.0 - fx) + t[i + self.w + 1] as f64 * fx;
        top * (1.0 - fy) + bot * fy
    }
}

impl ParallaxSpec {
    /// The true shift (dy, dx) of detector pixel (row, col), scan pixels.
    pub fn shift(&self, k: (f64, f64)) -> (f64, f64) {
        let (dy, dx) = (k.0 - self.centre.0, k.1 - self.centre.1);
        let (s, c) = self.rotation_deg.to_radians().sin_cos();
        (self.scale * (c * dy + s * dx), self.scale * (-s * dy + c * dx))
    }
    pub fn in_disk(&self, k: (f64, f64)) -> bool {
        (k.0 - self.centre.0).hypot(k.1 - self.centre.1) <= self.radius
    }
    /// The object's intensity factor 1 + contrast o on the fine grid (rows*FINE x cols*FINE; fine
    /// cell f at scan coordinate (f + 0.5) / FINE - 0.5).
    pub fn object_fine(&self, obj: &Object) -> Vec<f32> {
        let (fr, fc) = (self.rows * FINE, self.cols * FINE);
        let mut v = Vec::with_capacity(fr * fc);
        for fy in 0..fr {
            for fx in 0..fc {
                let (y, x) = ((fy as f64 + 0.5) / FINE as f64 - 0.5, (fx as f64 + 0.5) / FINE as f64 - 0.5);
                v.push((1.0 + self.contrast * obj.at(y, x)) as f32);
            }
        }
        v
    }
    /// Write the scan as a 12-bit `.mib` (with `.hdr`).
    pub fn write(&self, out: &Path) -> Result<()> {
        let obj = Object::new(self);
        let synth = SynthSpec {
            rows: self.rows,
            cols: self.cols,
            det: self.det,
            depth: 12,
            hdr: true,
            seed: self.seed,
            ..Default::default()
        };
        let d = self.det;
        let pixels: Vec<(usize, (f64, f64))> = (0..d * d)
            .filter(|&i| self.in_disk(((i / d) as f64, (i % d) as f64)))
            .map(|i| (i, self.shift(((i / d) as f64, (i % d) as f64))))
            .collect();
        write_with(out, &synth, &|p, frame: &mut [u32]| {
            let (ry, rx) = ((p / self.cols) as f64, (p % self.cols) as f64);
            for (i, v) in frame.iter_mut().enumerate() {
                *v = poisson(0.05, |j| uniform(self.seed ^ 0xBAC, (p * d * d + i) as u64, j));
            }
            for &(i, (sy, sx)) in &pixels {
                let lam = self.dose * (1.0 + self.contrast * obj.at(ry - sy, rx - sx));
                frame[i] = poisson(lam, |j| uniform(self.seed, (p * d * d + i) as u64, j + 7));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_mean_and_variance() {
        for lam in [0.05f64, 3.0, 40.0, 90.0] {
            let n = 20000;
            let v: Vec<f64> = (0..n).map(|i| poisson(lam, |j| uniform(3, i, j)) as f64).collect();
            let m = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            assert!((m - lam).abs() < 0.05 * lam + 0.01, "lam {lam}: mean {m}");
            assert!((var - lam).abs() < 0.1 * lam + 0.02, "lam {lam}: var {var}");
        }
    }

    #[test]
    fn object_table_matches_fine_grid_points() {
        let spec = ParallaxSpec { rows: 8, cols: 8, ..Default::default() };
        let o = Object::new(&spec);
        let f = spec.object_fine(&o);
        // fine cell (5, 9) is scan coordinate (5.5/4 - 0.5, 9.5/4 - 0.5)
        let want = 1.0 + spec.contrast * o.at(5.5 / 4.0 - 0.5, 9.5 / 4.0 - 0.5);
        assert!((f[5 * 32 + 9] as f64 - want).abs() < 1e-6);
        assert!(f.iter().any(|&v| v > 1.2) && f.iter().any(|&v| v < 0.8), "the object has contrast");
    }
}
