//! Direct ptychography by single side band (SSB) from the scan-axes FFT G(Q, K) (Q fftshifted).
//!
//! Physics (weak phase object O = 1 + i phi, thin specimen, probe A(K) exp(-i chi(K))): for Q != 0,
//! G(Q, K) = i O~(Q) [A(K) A(K - Q) e^{i(chi(K) - chi(K - Q))} - A(K) A(K + Q) e^{-i(chi(K) - chi(K + Q))}],
//! so in the double-overlap regions ("trotters") T+ = {|K| < a, |K - Q| < a, |K + Q| >= a} and T-
//! (its mirror) G carries the object spectrum times a known phase. a = alpha / lambda.
//!
//! Steps:
//! * the bright-field disk: found in G(Q = 0, K) (the disk total), or given;
//! * pass 1 over the cache (Q-row bands, each read once, whole storage chunks): the masked sums
//!   sum_K G, sum_K (K - c) G over the disk plus a margin (the same region as `dpc`'s default
//!   mask), i.e. the spectra of the BF and centre-of-mass images. Their inverse transforms are the
//!   exact BF and CoM images, from which `compute::dpc` finds the scan rotation and flip (minimum
//!   curl, positive-skew iCoM) and the iCoM; the band values of the mask pixels are kept when they
//!   fit half the budget, so pass 2 need not read the cache again;
//! * with a defocus, a found rotation is refined by the coherent power of the trotter spectrum
//!   ([`rotation`]); a found rotation's 180 degree twin is settled by the phase's skew (atoms
//!   positive);
//! * pass 2: per Q (rayon), the sums over T+ minus T- with chi removed, divided by the number of
//!   trotter pixels and by the mean disk intensity (every Q that has a trotter keeps its weight);
//!   Q = 0 takes the disk total; Q without a trotter (|Q| >= 2a) are zero;
//! * the object wave is the inverse transform: phase = arg, amplitude = |.|, about 1 + i phi.
//!
//! Units: K from the detector calibration (alpha over the disk radius in pixels), mapped to the
//! scan frame with the DPC rotation/flip (v = R(theta) F d, x = column, y = row); Q = index / (N step).

pub mod overlay;
pub mod rotation;
pub(crate) mod trotter;

use crate::compute::dpc::{self, DpcOptions};
use crate::compute::tcbf::KGeometry;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::util::hs;
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use std::ops::Range;
use trotter::{Chi, Pixel};

/// Bumped when what is computed changes (cached results become stale).
pub const ALGORITHM_VERSION: u32 = 2;
/// The CoM mask for the virtual images: the disk radius times this plus [`MASK_PAD`] K pixels
/// (`dpc`'s default `bf` mask).
pub const MASK_SCALE: f64 = 1.2;
pub const MASK_PAD: f64 = 2.0;
/// Smallest scan side.
pub const MIN_SCAN: usize = 4;

/// Read access to the scan-axes FFT by bands of Q rows.
pub trait QSource: Sync {
    /// (Q rows, Q cols, K rows, K cols).
    fn shape(&self) -> [usize; 4];
    /// Q rows per storage chunk (a band of this many rows reads whole chunks).
    fn q_chunk(&self) -> usize;
    /// G for Q rows `rows`, all Q columns and K: layout [Q row][Q col][K row][K col].
    fn read_q_rows(&self, rows: Range<usize>) -> Result<Vec<Complex32>>;
}

/// The detector's angular scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Angular {
    /// Convergence semi-angle (mrad): the disk radius in pixels is this angle.
    AlphaMrad(f64),
    /// mrad per (unbinned) detector pixel.
    MradPerPixel(f64),
}

/// Everything that determines an SSB result besides the FFT it reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SsbParams {
    /// Accelerating voltage (V).
    pub energy_v: f64,
    pub angular: Angular,
    /// Scan step (Å per scan pixel).
    pub scan_step_a: f64,
    /// Defocus corrected in the trotters (Å, positive = underfocus).
    pub defocus_a: f64,
    /// Bright-field disk (centre (row, col), radius) in detector pixels; None: found in the data.
    pub disk: Option<((f64, f64), f64)>,
    /// Scan rotation (degrees) as `dpc` defines it; None: found as `dpc` finds it.
    pub rotation_deg: Option<f64>,
    /// Detector x mirrored; None: found.
    pub flip: Option<bool>,
}

impl SsbParams {
    pub fn wavelength_a(&self) -> f64 {
        crate::compute::calib::electron_wavelength_a(self.energy_v)
    }
    /// Everything that determines the result, for provenance.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "algorithm_version": ALGORITHM_VERSION,
            "energy_v": self.energy_v,
            "wavelength_a": self.wavelength_a(),
            "angular": self.angular,
            "scan_step_a": self.scan_step_a,
            "defocus_a": self.defocus_a,
            "defocus_convention": "positive = underfocus; chi(k) = -pi lambda defocus |k|^2, probe A exp(-i chi)",
            "disk": self.disk,
            "rotation_deg": self.rotation_deg,
            "flip": self.flip,
            "trotters": "T+ minus T-, aberration removed, divided by trotter pixels and mean disk intensity",
            "com_mask": format!("disk radius x {MASK_SCALE} + {MASK_PAD} px"),
            "rotation_refinement": format!(
                "with a defocus: max coherent trotter power within +-{} deg of dpc's, Q stride {}",
                rotation::SPAN_DEG,
                rotation::Q_STRIDE
            ),
        })
    }
}

/// The bright-field disk used (detector coordinates).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SsbDisk {
    pub centre: [f64; 2],
    pub radius: f64,
    /// K pixels inside it.
    pub pixels: usize,
    /// Whether it was found in the data (false: given).
    pub found: bool,
}

/// What SSB produces, every image scan rows x cols.
#[derive(Debug, Clone)]
pub struct SsbResult {
    pub params: SsbParams,
    pub scan: (usize, usize),
    /// arg of the object wave (rad).
    pub phase: Vec<f32>,
    /// |object wave| (about 1).
    pub amplitude: Vec<f32>,
    /// Virtual bright field over the CoM mask (counts per position).
    pub bf: Vec<f32>,
    /// iCoM of the same FFT (`dpc`'s units: detector px x scan px).
    pub icom: Vec<f32>,
    pub summary: SsbSummary,
}

/// The numbers of a run (stored with the result).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SsbSummary {
    pub disk: SsbDisk,
    pub rotation_deg: f64,
    /// `dpc`'s rotation from the centre of mass of the same FFT (before the refinement).
    pub rotation_dpc_deg: f64,
    pub flip: bool,
    /// Whether rotation or flip was found (false: both given). A found rotation is `dpc`'s or
    /// `dpc`'s + 180 degrees, whichever gives the SSB phase of larger skew (atoms positive: with
    /// a defocus the wrong one doubles the aberration instead of removing it).
    pub orientation_found: bool,
    /// `dpc`'s curl ratio at the orientation found (0 = curl-free).
    pub curl_ratio: f64,
    pub wavelength_a: f64,
    /// Disk radius a = alpha / lambda (1/Å) and the convergence semi-angle used (mrad).
    pub disk_radius_inv_a: f64,
    pub alpha_mrad: f64,
    /// Scan Nyquist 1 / (2 step) (1/Å).
    pub q_nyquist_inv_a: f64,
    /// Fraction of the Q grid with a trotter.
    pub q_with_trotter: f64,
    /// Mean disk intensity per K pixel and position (counts).
    pub mean_intensity: f64,
    /// Passes over the FFT cache (1 when the mask pixels fit in memory, else one more per
    /// orientation tried).
    pub cache_passes: usize,
    pub seconds: f64,
}

/// Check the parameters against a scan (before any work).
pub fn check_params(p: &SsbParams, scan: (usize, usize)) -> Result<()> {
    let finite_pos = |v: f64| v.is_finite() && v > 0.0;
    if scan.0 < MIN_SCAN || scan.1 < MIN_SCAN {
        return Err(Error::Invalid(format!(
            "ptycho needs a 2-D scan of at least {MIN_SCAN}x{MIN_SCAN} positions; this scan is {}x{}",
            scan.0, scan.1
        )));
    }
    if !finite_pos(p.energy_v) {
        return Err(Error::Invalid("ptycho: the accelerating voltage must be positive (--energy)".into()));
    }
    let ang = match p.angular {
        Angular::AlphaMrad(v) | Angular::MradPerPixel(v) => v,
    };
    if !finite_pos(ang) || !finite_pos(p.scan_step_a) || !p.defocus_a.is_finite() {
        return Err(Error::Invalid("ptycho: alpha, detector step and scan step must be positive numbers".into()));
    }
    if let Angular::AlphaMrad(alpha) = p.angular {
        check_step(p.scan_step_a, alpha, p.wavelength_a())?;
    }
    if let Some(((y, x), r)) = p.disk
        && !(y.is_finite() && x.is_finite() && finite_pos(r))
    {
        return Err(Error::Invalid("ptycho: --center and --radius must be finite, the radius positive".into()));
    }
    Ok(())
}

/// The scan's highest frequency 1/(2 step) must reach the disk radius alpha / lambda.
fn check_step(step_a: f64, alpha_mrad: f64, lambda: f64) -> Result<()> {
    let (nyq, a) = (0.5 / step_a, alpha_mrad * 1e-3 / lambda);
    if nyq < a {
        return Err(Error::Invalid(format!(
            "ptycho: the scan step {step_a} Å is too coarse for trotters: the scan's highest frequency 1/(2 step) = \
             {nyq:.3} 1/Å is below the bright-field disk radius alpha/lambda = {a:.3} 1/Å (alpha {alpha_mrad:.2} mrad, \
             lambda {lambda:.5} Å); SSB needs a step below {:.3} Å",
            0.5 / a
        )));
    }
    Ok(())
}

/// Compute SSB from `src` whose K grid sits on the detector as `geom` (see the module doc).
pub fn run(src: &dyn QSource, geom: KGeometry, p: &SsbParams, budget: u64, progress: &Progress) -> Result<SsbResult> {
    let t0 = std::time::Instant::now();
    let [qr, qc, kr, kc] = src.shape();
    check_params(p, (qr, qc))?;
    let dc = dc_plane(src)?;
    let disk = disk_in_k(&dc, kr, kc, geom, p.disk)?;
    let lambda = p.wavelength_a();
    let alpha_mrad = match p.angular {
        Angular::AlphaMrad(a) => a,
        Angular::MradPerPixel(m) => m * disk.radius * geom.bin as f64,
    };
    let a = alpha_mrad * 1e-3 / lambda;
    let nyq = 0.5 / p.scan_step_a;
    check_step(p.scan_step_a, alpha_mrad, lambda)?;
    let (idx, mut pixels): (Vec<usize>, Vec<Pixel>) = mask_pixels(&disk, kr, kc)?.into_iter().unzip();
    let in_disk = || idx.iter().zip(&pixels).filter(|(_, p)| p.in_disk);
    let disk_total: f64 = in_disk().map(|(i, _)| dc[*i] as f64).sum();
    let n_disk = in_disk().count();
    let nr = (qr * qc) as f64;
    let mean_intensity = disk_total / (n_disk as f64 * nr);
    if !(mean_intensity > 0.0) {
        return Err(Error::Invalid("ptycho: the bright-field disk holds no counts".into()));
    }
    let bands = Bands::plan(src, idx.len(), budget)?;
    // the 180 degree turn `dpc` settles by the iCoM's skew is tried in the trotters too
    let turns: &[f64] = if p.rotation_deg.is_none() { &[0.0, 180.0] } else { &[0.0] };
    let reads = if bands.keep { 1 } else { 1 + turns.len() };
    progress.set_total((bands.len() * reads + (bands.keep as usize) * bands.len() * turns.len()) as u64);
    progress.set_message("ptycho: BF and centre of mass");
    let (moments, kept) = bands.moments(src, &idx, &pixels, progress)?;
    let vimg =
        virtual_images(&moments, (qr, qc), DpcOptions { rotation_deg: p.rotation_deg, flip: p.flip, descan: true })?;
    let chi = Chi { wavelength_a: lambda, defocus_a: p.defocus_a };
    let tr = TrotterJob { shape: (qr, qc), stride: 1, step: p.scan_step_a, a2: a * a, chi, norm: mean_intensity };
    let dc_term = disk_total / (n_disk as f64 * mean_intensity);
    let mut start = vimg.rotation_deg;
    if p.rotation_deg.is_none()
        && p.defocus_a != 0.0
        && let Some(k) = kept.as_ref()
    {
        progress.set_message("ptycho: refining the rotation");
        let probe = rotation::Probe {
            bands: &bands,
            src,
            idx: &idx,
            job: &tr,
            kept: k,
            flip: vimg.flip,
            scale: a / disk.radius,
            chi,
        };
        start = probe.refine(&mut pixels, start, progress)?;
    }
    let mut best: Option<(f64, Vec<Complex64>, usize, f64)> = None;
    for turn in turns {
        progress.set_message("ptycho: trotters");
        let rot = start + turn;
        orient(&mut pixels, rot, vimg.flip, a / disk.radius, &chi);
        let (mut spec, with) = bands.trotters(src, &idx, &pixels, &tr, kept.as_ref(), progress)?;
        spec[(qr / 2) * qc + qc / 2] = Complex64::new(dc_term, 0.0);
        let wave = inverse_shifted(&spec, qr, qc);
        let ph: Vec<f32> = wave.iter().map(|w| w.arg() as f32).collect();
        let skew = dpc::skewness(&ph);
        if best.as_ref().is_none_or(|b| skew > b.3) {
            best = Some((rot.rem_euclid(360.0), wave, with, skew));
        }
    }
    let (rotation_deg, wave, with, _) = best.expect("at least one orientation");
    let phase = wave.iter().map(|w| w.arg() as f32).collect();
    let amplitude = wave.iter().map(|w| w.norm() as f32).collect();
    let summary = SsbSummary {
        disk: SsbDisk {
            centre: disk.centre_det,
            radius: disk.radius * geom.bin as f64,
            pixels: n_disk,
            found: p.disk.is_none(),
        },
        rotation_deg,
        rotation_dpc_deg: vimg.rotation_deg,
        flip: vimg.flip,
        orientation_found: p.rotation_deg.is_none() || p.flip.is_none(),
        curl_ratio: vimg.curl_ratio,
        wavelength_a: lambda,
        disk_radius_inv_a: a,
        alpha_mrad,
        q_nyquist_inv_a: nyq,
        q_with_trotter: with as f64 / nr,
        mean_intensity,
        cache_passes: reads,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(SsbResult { params: p.clone(), scan: (qr, qc), phase, amplitude, bf: vimg.bf, icom: vimg.icom, summary })
}

/// Map the pixels' detector offsets to scan-frame frequencies (1/Å, `scale` per K pixel) with
/// `dpc`'s rotation and flip, and set their aberration phase.
fn orient(px: &mut [Pixel], rotation_deg: f64, flip: bool, scale: f64, chi: &Chi) {
    let (s, c) = rotation_deg.to_radians().sin_cos();
    let f = if flip { -1.0 } else { 1.0 };
    for q in px.iter_mut() {
        let (ux, uy) = (f * q.det.0 * scale, q.det.1 * scale);
        q.k = (c * ux - s * uy, s * ux + c * uy);
        q.chi = chi.at(q.k);
    }
}

/// Re G(Q = 0, K): each pixel summed over the scan.
fn dc_plane(src: &dyn QSource) -> Result<Vec<f32>> {
    let [qr, qc, kr, kc] = src.shape();
    let row = src.read_q_rows(qr / 2..qr / 2 + 1)?;
    let kp = kr * kc;
    Ok(row[(qc / 2) * kp..(qc / 2 + 1) * kp].iter().map(|v| v.re).collect())
}

/// The disk in K-grid coordinates.
struct KDisk {
    /// (row, col) in K pixels.
    centre: (f64, f64),
    /// K pixels.
    radius: f64,
    /// Detector coordinates of the centre.
    centre_det: [f64; 2],
}

fn disk_in_k(dc: &[f32], kr: usize, kc: usize, g: KGeometry, given: Option<((f64, f64), f64)>) -> Result<KDisk> {
    let b = g.bin as f64;
    let (centre, radius) = match given {
        Some(((y, x), r)) => {
            (((y - g.origin.0 as f64 + 0.5) / b - 0.5, (x - g.origin.1 as f64 + 0.5) / b - 0.5), r / b)
        }
        None => {
            let ((cy, cx), r) = crate::compute::overview::find_bf_disk(dc, kr, kc).ok_or_else(|| {
                Error::Invalid(
                    "ptycho: no bright-field disk in the FFT's detector region; give --center and --radius".into(),
                )
            })?;
            ((cy as f64, cx as f64), r as f64)
        }
    };
    let (y, x) = g.det_coord((0, 0));
    let det = [y + centre.0 * b, x + centre.1 * b];
    let (lo, hi) = (|v: f64| v - radius < -0.5, |v: f64, n: usize| v + radius > n as f64 - 0.5);
    if lo(centre.0) || lo(centre.1) || hi(centre.0, kr) || hi(centre.1, kc) {
        return Err(Error::Invalid(format!(
            "ptycho: the FFT cache does not cover the bright-field disk (centre ({:.1}, {:.1}), radius {:.1} detector px): it holds \
             detector rows {}..{} and columns {}..{}; recompute it with a larger crop (emdtui fft --crop bf or full)",
            det[0],
            det[1],
            radius * b,
            g.origin.0,
            g.origin.0 + kr * g.bin,
            g.origin.1,
            g.origin.1 + kc * g.bin
        )));
    }
    Ok(KDisk { centre, radius, centre_det: det })
}

/// The K pixels of the CoM mask: (flat index, pixel).
fn mask_pixels(d: &KDisk, kr: usize, kc: usize) -> Result<Vec<(usize, Pixel)>> {
    let outer = d.radius * MASK_SCALE + MASK_PAD;
    let mut v = Vec::new();
    for y in 0..kr {
        for x in 0..kc {
            let (dy, dx) = (y as f64 - d.centre.0, x as f64 - d.centre.1);
            let r = dy.hypot(dx);
            if r <= outer {
                v.push((y * kc + x, Pixel { det: (dx, dy), k: (0.0, 0.0), in_disk: r < d.radius, chi: 0.0 }));
            }
        }
    }
    if v.iter().filter(|(_, p)| p.in_disk).count() < 4 {
        return Err(Error::Invalid(format!(
            "ptycho: the bright-field disk covers fewer than 4 K pixels (radius {:.2})",
            d.radius
        )));
    }
    Ok(v)
}

/// The BF, CoM orientation and iCoM from the masked sums.
struct Virtual {
    bf: Vec<f32>,
    icom: Vec<f32>,
    rotation_deg: f64,
    flip: bool,
    curl_ratio: f64,
}

fn virtual_images(m: &[[Complex64; 3]], (qr, qc): (usize, usize), opts: DpcOptions) -> Result<Virtual> {
    let img = |k: usize| -> Vec<f64> {
        let s: Vec<Complex64> = m.iter().map(|v| v[k]).collect();
        inverse_shifted(&s, qr, qc).iter().map(|c| c.re).collect()
    };
    let (bf, sx, sy) = (img(0), img(1), img(2));
    let com = |s: &[f64]| -> Vec<f32> {
        s.iter().zip(&bf).map(|(&v, &b)| if b > 0.0 { (v / b) as f32 } else { f32::NAN }).collect()
    };
    let r = dpc::dpc(&com(&sx), &com(&sy), qr, qc, &opts)?;
    Ok(Virtual {
        bf: bf.iter().map(|&v| v as f32).collect(),
        icom: r.phase,
        rotation_deg: r.rotation_deg,
        flip: r.flip,
        curl_ratio: r.curl_ratio,
    })
}

/// Inverse 2-D transform (divided by the size) of an fftshifted spectrum (rows x cols).
pub(crate) fn inverse_shifted(spec: &[Complex64], rows: usize, cols: usize) -> Vec<Complex64> {
    let mut buf = vec![Complex64::default(); rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            // shifted index i holds frequency i - rows/2, stored at (i - rows/2) mod rows
            buf[((i + rows - rows / 2) % rows) * cols + (j + cols - cols / 2) % cols] = spec[i * cols + j];
        }
    }
    let mut planner = rustfft::FftPlanner::<f64>::new();
    let (fr, fc) = (planner.plan_fft_inverse(cols), planner.plan_fft_inverse(rows));
    buf.par_chunks_mut(cols).for_each(|r| fr.process(r));
    let mut t = vec![Complex64::default(); rows * cols];
    transpose::transpose(&buf, &mut t, cols, rows);
    t.par_chunks_mut(rows).for_each(|c| fc.process(c));
    transpose::transpose(&t, &mut buf, rows, cols);
    let n = (rows * cols) as f64;
    buf.iter_mut().for_each(|v| *v /= n);
    buf
}

/// What pass 2 needs besides the data.
#[derive(Clone, Copy)]
struct TrotterJob {
    shape: (usize, usize),
    /// Only every `stride`-th Q row and column (the others zero): a quicker estimate.
    stride: usize,
    step: f64,
    a2: f64,
    chi: Chi,
    norm: f64,
}

impl TrotterJob {
    /// Scan-frame Q (1/Å) of shifted index (i, j): x along columns, y along rows.
    fn q(&self, i: usize, j: usize) -> (f64, f64) {
        let (qr, qc) = self.shape;
        ((j as f64 - (qc / 2) as f64) / (qc as f64 * self.step), (i as f64 - (qr / 2) as f64) / (qr as f64 * self.step))
    }
}

/// The Q-row bands of the passes and whether the mask pixels of all of them stay in memory.
struct Bands {
    rows: Vec<Range<usize>>,
    keep: bool,
}

impl Bands {
    fn plan(src: &dyn QSource, mask_px: usize, budget: u64) -> Result<Bands> {
        let [qr, qc, kr, kc] = src.shape();
        // a band is read (8 B per element, and HDF5 may hold a copy) and its mask pixels gathered
        let row_b = (qc * kr * kc * 16 + qc * mask_px * 8) as u64;
        let cap = (budget / 2 / row_b.max(1)) as usize;
        if cap == 0 {
            return Err(Error::Invalid(format!(
                "ptycho: memory budget {} too small: one Q row of the FFT cache needs {} (use --memory)",
                hs(budget),
                hs(2 * row_b)
            )));
        }
        let ch = src.q_chunk().clamp(1, qr);
        let h = if cap >= ch { cap / ch * ch } else { cap }.min(qr);
        let rows = (0..qr).step_by(h).map(|r| r..(r + h).min(qr)).collect();
        let keep = (qr * qc * mask_px * 8) as u64 <= budget / 2;
        Ok(Bands { rows, keep })
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    /// The mask pixels of the band (layout [Q in band][mask pixel]).
    fn gather(src: &dyn QSource, r: &Range<usize>, idx: &[usize]) -> Result<Vec<Complex32>> {
        let [_, qc, kr, kc] = src.shape();
        let raw = src.read_q_rows(r.clone())?;
        let kp = kr * kc;
        let mut out = Vec::with_capacity(r.len() * qc * idx.len());
        for q in 0..r.len() * qc {
            let plane = &raw[q * kp..(q + 1) * kp];
            out.extend(idx.iter().map(|&i| plane[i]));
        }
        Ok(out)
    }
    /// Pass 1: the masked moment sums per Q (shifted order); the gathered bands when they are kept.
    #[allow(clippy::type_complexity)]
    fn moments(
        &self,
        src: &dyn QSource,
        idx: &[usize],
        px: &[Pixel],
        progress: &Progress,
    ) -> Result<(Vec<[Complex64; 3]>, Option<Vec<Vec<Complex32>>>)> {
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for r in &self.rows {
            progress.check()?;
            let band = Self::gather(src, r, idx)?;
            out.extend(band.par_chunks(idx.len()).map(|g| trotter::moment_sums(g, px)).collect::<Vec<_>>());
            if self.keep {
                kept.push(band);
            }
            progress.add(1, 0);
        }
        Ok((out, self.keep.then_some(kept)))
    }
    /// Pass 2: the normalised trotter spectrum (shifted order) and the number of Q with a trotter.
    fn trotters(
        &self,
        src: &dyn QSource,
        idx: &[usize],
        px: &[Pixel],
        job: &TrotterJob,
        kept: Option<&Vec<Vec<Complex32>>>,
        progress: &Progress,
    ) -> Result<(Vec<Complex64>, usize)> {
        let qc = job.shape.1;
        let mut spec = Vec::with_capacity(job.shape.0 * qc);
        let mut with = 0usize;
        for (b, r) in self.rows.iter().enumerate() {
            progress.check()?;
            let read;
            let band = match kept {
                Some(k) => &k[b],
                None => {
                    read = Self::gather(src, r, idx)?;
                    &read
                }
            };
            let vals: Vec<(Complex64, usize)> = band
                .par_chunks(idx.len())
                .enumerate()
                .map(|(n, g)| {
                    let (i, j) = (r.start + n / qc, n % qc);
                    if i % job.stride != 0 || j % job.stride != 0 {
                        return (Complex64::default(), 0);
                    }
                    trotter::trotter_sum(g, px, job.q(i, j), job.a2, &job.chi)
                })
                .collect();
            for (s, n) in vals {
                spec.push(if n > 0 { s / (n as f64 * job.norm) } else { Complex64::default() });
                with += (n > 0) as usize;
            }
            progress.add(1, 0);
        }
        Ok((spec, with))
    }
}

#[cfg(test)]
mod tests;
