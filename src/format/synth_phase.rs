//! A synthetic 4D-STEM scan of a weak phase object by a defocused probe, in wave optics: the
//! built-in demo. The object is a MoS2-like honeycomb lattice (a strong and a weak site, a few
//! vacancies on both) with a few heavy adatoms on an amorphous film (the random blobs of [`super::synth_tcbf::Object`]),
//! a transmission function t = exp(i phase); the probe is A(k) exp(-i chi(k)) with chi(k) =
//! -pi lambda df |k|^2 (positive `defocus_a` = underfocus, abTEM's convention, the one of
//! `compute::ssb` and `compute::tcbf`); each frame is |FFT(probe(r - R) t(r))|^2 on an
//! fftshifted detector, scaled to `dose` electrons and drawn with Poisson counts (the sampler of
//! `synth_tcbf`). DPC/iCoM, tcBF (parallax), SSB ptychography and EWPC all have something to
//! show on it. Written as a processed 12-bit `.mib` (with `.hdr`) through [`super::synth::write_with`].

use super::synth::{SynthSpec, write_with};
use super::synth_tcbf::{Object, ParallaxSpec, poisson, uniform};
use crate::error::Result;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex64;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    pub rows: usize,
    pub cols: usize,
    /// Square detector side (also the side of the simulation window).
    pub det: usize,
    /// Accelerating voltage (V).
    pub energy_v: f64,
    /// Convergence semi-angle (mrad).
    pub alpha_mrad: f64,
    /// Scan step (Å).
    pub scan_step_a: f64,
    /// Object pixels per scan step.
    pub oversample: usize,
    /// Defocus (Å, positive = underfocus).
    pub defocus_a: f64,
    /// Lattice constant (Å) and in-plane rotation (degrees) of the honeycomb.
    pub lattice_a: f64,
    pub lattice_deg: f64,
    /// Heavy adatoms (phase 0.8 rad each) at random places.
    pub adatoms: usize,
    /// Electrons per frame.
    pub dose: f64,
    pub seed: u64,
}

impl Default for PhaseSpec {
    fn default() -> Self {
        PhaseSpec {
            rows: 64,
            cols: 64,
            det: 64,
            energy_v: 200e3,
            alpha_mrad: 20.0,
            scan_step_a: 0.4,
            oversample: 2,
            defocus_a: 120.0,
            lattice_a: 3.16,
            lattice_deg: 12.0,
            adatoms: 12,
            dose: 50000.0,
            seed: 7,
        }
    }
}

/// Relativistic electron wavelength (Å) at `volts`.
fn wavelength_a(volts: f64) -> f64 {
    // h / sqrt(2 m e V (1 + e V / (2 m c^2)))
    let (h, m, e, c) = (6.626_070_15e-34, 9.109_383_7e-31, 1.602_176_634e-19, 299_792_458.0);
    h / (2.0 * m * e * volts * (1.0 + e * volts / (2.0 * m * c * c))).sqrt() * 1e10
}

impl PhaseSpec {
    /// Object pixel size (Å).
    pub fn pixel_a(&self) -> f64 {
        self.scan_step_a / self.oversample as f64
    }
    /// Detector pixel (mrad).
    pub fn q_pixel_mrad(&self) -> f64 {
        wavelength_a(self.energy_v) / (self.det as f64 * self.pixel_a()) * 1e3
    }

    /// The projected phase (rad) on the object grid ((rows * oversample + det) squared at
    /// [`Self::pixel_a`]; the probe of scan position (r, c) is centred on object pixel
    /// (r * oversample + det / 2, c * oversample + det / 2)).
    pub fn phase(&self) -> (usize, usize, Vec<f64>) {
        let os = self.oversample;
        let (h, w) = (self.rows * os + self.det, self.cols * os + self.det);
        let px = self.pixel_a();
        let amorphous =
            Object::new(&ParallaxSpec { rows: self.rows, cols: self.cols, seed: self.seed, ..Default::default() });
        let mut v = vec![0f64; h * w];
        for (i, o) in v.iter_mut().enumerate() {
            // scan-pixel coordinates of object pixel i
            let y = (i / w) as f64 / os as f64 - (self.det / 2) as f64 / os as f64;
            let x = (i % w) as f64 / os as f64 - (self.det / 2) as f64 / os as f64;
            *o = 0.04 * amorphous.at(y, x);
        }
        // honeycomb: a1 = a (1, 0), a2 = a (1/2, sqrt3/2); strong site at 0, weak at (a1 + a2) / 3
        let (s, c) = self.lattice_deg.to_radians().sin_cos();
        let a = self.lattice_a;
        let a1 = (a * c, a * s);
        let a2 = (a * (0.5 * c - 0.75f64.sqrt() * s), a * (0.5 * s + 0.75f64.sqrt() * c));
        let (hy, wx) = (h as f64 * px, w as f64 * px);
        let n = ((hy.max(wx) / a) * 2.0) as i64 + 2;
        let sigma = 0.45 / px;
        for i in -n..=n {
            for j in -n..=n {
                for (site, amp) in [(0u64, 0.30), (1u64, 0.22)] {
                    let f = if site == 0 { 0.0 } else { 1.0 / 3.0 };
                    let (u, t) = (i as f64 + f, j as f64 + f);
                    let (xa, ya) = (u * a1.0 + t * a2.0, u * a1.1 + t * a2.1);
                    if !(0.0..wx).contains(&xa) || !(0.0..hy).contains(&ya) {
                        continue;
                    }
                    // vacancies: 6 % of the weak site, 2 % of the strong one
                    let p = if site == 0 { 0.02 } else { 0.06 };
                    if uniform(self.seed ^ 0xFACE, ((i + 1000) * 4096 + j + 1000) as u64, site) < p {
                        continue;
                    }
                    add_gaussian(&mut v, (h, w), (ya / px, xa / px), sigma, amp);
                }
            }
        }
        // heavy adatoms (sparse strong peaks, as gold atoms on a support)
        let adatom_sigma = 0.5 / px;
        for k in 0..self.adatoms as u64 {
            let u = |j: u64| uniform(self.seed ^ 0xAD, k, j);
            let (cy, cx) = ((0.1 + 0.8 * u(0)) * h as f64, (0.1 + 0.8 * u(1)) * w as f64);
            add_gaussian(&mut v, (h, w), (cy, cx), adatom_sigma, 0.8);
        }
        (h, w, v)
    }

    /// The probe in real space (det x det, centred on pixel (det/2, det/2), unit total intensity).
    fn probe(&self, planner: &mut FftPlanner<f64>) -> Vec<Complex64> {
        let m = self.det;
        let lambda = wavelength_a(self.energy_v);
        let dk = 1.0 / (m as f64 * self.pixel_a());
        let k_max = self.alpha_mrad * 1e-3 / lambda;
        let f = |i: usize| if i < m.div_ceil(2) { i as f64 } else { i as f64 - m as f64 };
        let mut p = vec![Complex64::default(); m * m];
        for y in 0..m {
            for x in 0..m {
                let (ky, kx) = (f(y) * dk, f(x) * dk);
                let k2 = ky * ky + kx * kx;
                if k2.sqrt() < k_max {
                    let chi = -std::f64::consts::PI * lambda * self.defocus_a * k2;
                    // centred on (m/2, m/2): a phase ramp
                    let ramp = std::f64::consts::PI * (f(y) + f(x));
                    p[y * m + x] = Complex64::from_polar(1.0, -chi + ramp);
                }
            }
        }
        fft2(&mut p, m, planner, true);
        let norm = p.iter().map(|c| c.norm_sqr()).sum::<f64>().sqrt();
        p.iter_mut().for_each(|c| *c /= norm);
        p
    }

    /// Write the scan as a 12-bit `.mib` (with `.hdr`).
    pub fn write(&self, out: &Path) -> Result<()> {
        let synth = SynthSpec {
            rows: self.rows,
            cols: self.cols,
            det: self.det,
            depth: 12,
            hdr: true,
            seed: self.seed,
            ..Default::default()
        };
        let mut planner = FftPlanner::new();
        let probe = self.probe(&mut planner);
        let (_, w, phase) = self.phase();
        let t: Vec<Complex64> = phase.iter().map(|&p| Complex64::from_polar(1.0, p)).collect();
        let m = self.det;
        let fwd = planner.plan_fft_forward(m);
        write_with(out, &synth, &|p, frame: &mut [u32]| {
            let (oy, ox) = ((p / self.cols) * self.oversample, (p % self.cols) * self.oversample);
            let mut wave: Vec<Complex64> = (0..m * m).map(|i| probe[i] * t[(oy + i / m) * w + ox + i % m]).collect();
            fft2_with(&mut wave, m, fwd.as_ref());
            // |psi(k)|^2 sums to m^2 (Parseval): scale to `dose` electrons, detector fftshifted
            let scale = self.dose / (m * m) as f64;
            for ky in 0..m {
                for kx in 0..m {
                    let (sy, sx) = ((ky + m / 2) % m, (kx + m / 2) % m);
                    let i = sy * m + sx;
                    let lam = scale * wave[ky * m + kx].norm_sqr();
                    frame[i] = poisson(lam, |j| uniform(self.seed ^ 0xD0, (p * m * m + i) as u64, j));
                }
            }
        })
    }
}

/// Add amp exp(-d^2 / 2 sigma^2) around (cy, cx) (pixels) to the h x w image `v`.
fn add_gaussian(v: &mut [f64], (h, w): (usize, usize), (cy, cx): (f64, f64), sigma: f64, amp: f64) {
    let reach = (4.0 * sigma).ceil() as i64;
    let (iy, ix) = (cy.round() as i64, cx.round() as i64);
    for yy in (iy - reach).max(0)..(iy + reach + 1).min(h as i64) {
        for xx in (ix - reach).max(0)..(ix + reach + 1).min(w as i64) {
            let d2 = (yy as f64 - cy).powi(2) + (xx as f64 - cx).powi(2);
            v[yy as usize * w + xx as usize] += amp * (-d2 / (2.0 * sigma * sigma)).exp();
        }
    }
}

/// In-place 2D FFT of an m x m array (inverse when `inverse`, unnormalised).
fn fft2(a: &mut [Complex64], m: usize, planner: &mut FftPlanner<f64>, inverse: bool) {
    let f = if inverse { planner.plan_fft_inverse(m) } else { planner.plan_fft_forward(m) };
    fft2_with(a, m, f.as_ref());
}

fn fft2_with(a: &mut [Complex64], m: usize, f: &dyn rustfft::Fft<f64>) {
    f.process(a);
    let mut col = vec![Complex64::default(); m];
    for x in 0..m {
        for y in 0..m {
            col[y] = a[y * m + x];
        }
        f.process(&mut col);
        for y in 0..m {
            a[y * m + x] = col[y];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wavelength_at_200kv() {
        assert!((wavelength_a(200e3) - 0.025079).abs() < 1e-5);
    }

    #[test]
    fn probe_is_centred_and_spread_by_defocus() {
        let mut planner = FftPlanner::new();
        // the fraction of the intensity within 4 px (0.8 Å) of the centre
        let mut core = |df: f64| {
            let s = PhaseSpec { defocus_a: df, ..Default::default() };
            let p = s.probe(&mut planner);
            let m = s.det;
            let (mut cy, mut cx, mut near) = (0.0, 0.0, 0.0);
            for (i, c) in p.iter().enumerate() {
                let (y, x) = ((i / m) as f64, (i % m) as f64);
                cy += c.norm_sqr() * y;
                cx += c.norm_sqr() * x;
                if (y - 32.0).hypot(x - 32.0) <= 4.0 {
                    near += c.norm_sqr();
                }
            }
            assert!((cy - 32.0).abs() < 0.5 && (cx - 32.0).abs() < 0.5, "centre ({cy}, {cx})");
            near
        };
        let (f0, f1) = (core(0.0), core(120.0));
        assert!(f0 > 0.6 && f1 < 0.25, "within 4 px: focused {f0}, 120 Å underfocus {f1}");
    }

    #[test]
    fn phase_is_weak_and_has_a_lattice_with_vacancies() {
        let s = PhaseSpec { rows: 16, cols: 16, adatoms: 0, ..Default::default() };
        let (h, w, v) = s.phase();
        assert_eq!((h, w), (16 * 2 + 64, 16 * 2 + 64));
        let max = v.iter().cloned().fold(f64::MIN, f64::max);
        assert!(max > 0.2 && max < 0.7, "peak phase {max} rad: a weak phase object");
    }
}
