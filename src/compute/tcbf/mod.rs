//! Tilt-corrected bright field (tcBF) and super-resolution BF from the scan-axes FFT G(Q, K).
//!
//! With a defocused probe every bright-field detector pixel K sees the specimen shifted by a
//! parallax s_K, linear in K. Convention: I_K(r) = I_ref(r - s_K), (dy, dx) in scan pixels, the
//! reference being the image seen from the disk centre (s = 0 there).
//!
//! * Model (automatic mode): the parallax is the gradient of the aberration function, so it is
//!   linear in K: s_K = A (K - c) with A = U P (scan-detector rotation U, possibly after a
//!   transpose; P = defocus + two-fold astigmatism, [`aberr`]). A is measured from pairs of
//!   pixels ([`pairs`]): the images of K and K + D differ by A D for every K, so the cross-spectra
//!   of all pairs D apart add up coherently; short D first, searched near zero (a lattice period
//!   cannot alias it), then longer D searched near the prediction, least squares with outlier
//!   rejection. No correlation, or a parallax below [`NO_SHIFT_PX`] across the disk, is
//!   [`Error::NoParallax`]: no noise image is returned.
//! * Per-pixel check ([`auto`]): every pixel is re-aligned against the sum aligned with the
//!   model (searched within a few scan pixels of the model's shift); its measured shift and
//!   quality are reported and pixels that disagree (quality below [`QUALITY_REL`] x the median,
//!   or off the model by more than [`OUTLIER_K`] robust sd and [`OUTLIER_FLOOR`] px: hot or dead
//!   pixels) are left out. The image uses the model's shifts (no per-pixel noise).
//! * Aberrations: A read as rotation, transpose, defocus and astigmatism (in Å with a
//!   calibration); the defocus sign (underfocus vs overfocus with the scan turned by 180 deg) from
//!   the contrast of the phase-flipped image when the energy is known; `ctf_correct` returns the
//!   phase-flipped image.
//! * Manual mode (py4D-browser's): s_K = -(K - K_com) / max|K - K_com| * max_shift, rotated by
//!   theta (optionally transposed), so the same parameters align as py4D-browser does.
//! * Image: with `upsample` 1, Fourier shift-and-add (exact sub-pixel shifts); with `upsample` > 1,
//!   sample placement on the fine grid ([`place`]): each sample of each pixel lands at r - s_K
//!   (shared bilinearly between the fine cells around it; a Gaussian kernel density estimate of
//!   [`KDE_SIGMA`] scan px makes the image), so the pixels' different sub-pixel parallaxes fill
//!   the fine grid with real samples (Fourier
//!   shift-and-add of zero-padded images cannot: each image is band-limited to the scan Nyquist
//!   and the sum stays so). Each pixel's image is divided by its mean before it is added (no
//!   pattern from the disk's intensity profile) and the result is scaled to counts summed over
//!   the pixels used, like a virtual BF detector.
//! * Memory: the pixels' spectra are read in K blocks sized to the budget (kept in memory when all
//!   of them fit); the fine grid costs 8 bytes per fine cell and is refused when over budget.

pub mod aberr;
mod align;
mod auto;
pub mod fit;
pub mod pairs;
mod place;

use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::util::hs;
use aberr::{Aberrations, Optics};
use align::{Fft2, Work};
pub use auto::{NO_SHIFT_PX, OUTLIER_FLOOR, OUTLIER_K, QUALITY_REL};
use fit::LinearFit;
use num_complex::Complex32;
use pairs::{LowSpectra, PairShift};
use rayon::prelude::*;
use std::ops::Range;

pub const MAX_UPSAMPLE: usize = 8;
/// Bumped when the algorithm changes what it computes (cached results become stale).
pub const ALGORITHM_VERSION: u32 = 3;
/// Upsampled image: Gaussian kernel of this many scan pixels (sigma) for the kernel density
/// estimate on the fine grid.
pub const KDE_SIGMA: f64 = 0.1875;
/// Tukey window: cosine edges over this fraction of each side.
const WINDOW_FRAC: f64 = 0.15;
/// Part of the budget left to the process itself (binary, libraries, HDF5: about 15-20 MiB
/// measured; at most half the budget).
const PROCESS_RESERVE: u64 = 20 << 20;
/// Smallest scan side.
pub const MIN_SCAN: usize = 8;

/// Read access to the scan-axes FFT G(Q, K) (Q fftshifted), by blocks of detector pixels.
pub trait GSource: Sync {
    /// (Q rows, Q cols, K rows, K cols).
    fn shape(&self) -> [usize; 4];
    /// Preferred K block (rows, cols), e.g. the storage chunk.
    fn k_chunk(&self) -> (usize, usize);
    /// G for K rows `rows`, cols `cols`: layout [Q row][Q col][k row][k col].
    fn read_block(&self, rows: Range<usize>, cols: Range<usize>) -> Result<Vec<Complex32>>;
    /// Re G(Q = 0, K) (K rows x K cols): each pixel's image summed over the scan.
    fn dc_plane(&self) -> Result<Vec<f32>>;
}

/// Where the K grid sits on the detector: K (i, j) covers detector rows
/// origin.0 + i*bin .. +bin and columns origin.1 + j*bin .. +bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KGeometry {
    pub det: (usize, usize),
    pub origin: (usize, usize),
    pub bin: usize,
}

impl KGeometry {
    /// Detector coordinate (row, col) of the centre of K (i, j).
    pub fn det_coord(&self, k: (usize, usize)) -> (f64, f64) {
        let b = self.bin as f64;
        (self.origin.0 as f64 + (k.0 as f64 + 0.5) * b - 0.5, self.origin.1 as f64 + (k.1 as f64 + 0.5) * b - 0.5)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ShiftMode {
    /// Measured by cross-correlation, fitted.
    Auto,
    /// py4D-browser's manual model.
    Manual { max_shift: f64, theta_deg: f64, transpose: bool },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TcbfParams {
    /// Fine grid factor 1..=8.
    pub upsample: usize,
    pub mode: ShiftMode,
    /// Phase-flip the image by the fitted CTF (needs `optics` with the energy).
    #[serde(default)]
    pub ctf_correct: bool,
    /// Calibration: the aberrations in Å, the defocus sign and the CTF.
    #[serde(default)]
    pub optics: Option<Optics>,
}

impl Default for TcbfParams {
    fn default() -> Self {
        TcbfParams { upsample: 1, mode: ShiftMode::Auto, ctf_correct: false, optics: None }
    }
}

impl TcbfParams {
    /// Everything that determines the result, for provenance.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "algorithm_version": ALGORITHM_VERSION,
            "upsample": self.upsample,
            "mode": match &self.mode {
                ShiftMode::Auto => serde_json::json!({"auto": {
                    "model": "linear parallax from pixel pairs (defocus, astigmatism, rotation, transpose)",
                    "pairs_z_min": pairs::Z_MIN, "pairs_first_window_px": pairs::FIRST_WINDOW,
                    "pairs_window_px": pairs::WINDOW, "realign_window_px": auto::REALIGN_WINDOW,
                    "quality_rel": QUALITY_REL, "outlier_k": OUTLIER_K,
                    "outlier_floor_px": OUTLIER_FLOOR, "window": format!("tukey {WINDOW_FRAC}"),
                    "image_shifts": "model"}}),
                ShiftMode::Manual { max_shift, theta_deg, transpose } => serde_json::json!({"manual": {
                    "max_shift": max_shift, "theta_deg": theta_deg, "transpose": transpose}}),
            },
            "image": if self.upsample == 1 { "fourier shift-and-add".to_string() } else { format!("sample placement, bilinear, Gaussian kernel density estimate sigma {KDE_SIGMA} scan px") },
            "ctf_correct": self.ctf_correct,
            "optics": self.optics,
            "defocus_sign": aberr::DEFOCUS_SIGN,
            "shift_convention": "I_K(r) = I_ref(r - s_K), (dy, dx) scan pixels, s = 0 at the disk centre",
        })
    }
}

/// The bright-field disk in detector coordinates.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Disk {
    pub centre: [f64; 2],
    pub radius: f64,
    /// Detector pixels (binned K pixels) inside it.
    pub pixels: usize,
}

/// Everything tcBF produces.
#[derive(Debug, Clone)]
pub struct TcbfResult {
    pub params: TcbfParams,
    /// (rows, cols) of the scan.
    pub scan: (usize, usize),
    /// The aligned sum, (scan rows * upsample) x (scan cols * upsample).
    pub image: Vec<f32>,
    /// The plain BF sum over the disk pixels (scan rows x cols).
    pub plain: Vec<f32>,
    /// (detector rows, detector cols).
    pub det: (usize, usize),
    /// det rows x det cols x 2 (dy, dx), NaN where a pixel was not used.
    pub shifts: Vec<f32>,
    /// det rows x det cols: correlation quality (NaN outside the disk, and in manual mode).
    pub quality: Vec<f32>,
    pub fit: Option<LinearFit>,
    /// The fit read as aberrations (automatic mode).
    pub aberrations: Option<Aberrations>,
    /// The pair measurements the model was fitted to (automatic mode).
    pub pairs: Vec<PairShift>,
    pub disk: Disk,
    /// Pixels that made the image.
    pub pixels_used: usize,
    /// Disk pixels left out for low correlation quality.
    pub pixels_low_quality: usize,
    pub seconds: f64,
}

impl TcbfResult {
    pub fn image_shape(&self) -> (usize, usize) {
        (self.scan.0 * self.params.upsample, self.scan.1 * self.params.upsample)
    }
}

/// Check the parameters against a scan (before any work).
pub fn check_params(p: &TcbfParams, scan: (usize, usize)) -> Result<()> {
    if !(1..=MAX_UPSAMPLE).contains(&p.upsample) {
        return Err(Error::Invalid(format!("tcBF: upsample {} is outside 1..={MAX_UPSAMPLE}", p.upsample)));
    }
    if scan.0 < MIN_SCAN || scan.1 < MIN_SCAN {
        return Err(Error::Invalid(format!(
            "tcBF needs a 2-D scan of at least {MIN_SCAN}x{MIN_SCAN} positions; this scan is {}x{}",
            scan.0, scan.1
        )));
    }
    if p.ctf_correct && p.optics.as_ref().is_none_or(|o| o.energy_v.is_none()) {
        return Err(Error::Invalid(
            "tcBF: --ctf-correct needs the wavelength and the calibration: --energy, --scan-step and --alpha or --q-pixel"
                .into(),
        ));
    }
    if p.ctf_correct && !matches!(p.mode, ShiftMode::Auto) {
        return Err(Error::Invalid("tcBF: --ctf-correct needs the fitted model (not --manual)".into()));
    }
    if let ShiftMode::Manual { max_shift, theta_deg, .. } = p.mode
        && !(max_shift.is_finite() && theta_deg.is_finite())
    {
        return Err(Error::Invalid("tcBF: --max-shift and --theta must be finite numbers".into()));
    }
    Ok(())
}

/// Bytes the run needs besides the pixel blocks: fine grid, per-thread work, references.
pub fn fixed_bytes(scan: (usize, usize), upsample: usize) -> (u64, u64) {
    let n = (scan.0 * scan.1) as u64;
    let fine = if upsample > 1 { n * (upsample * upsample) as u64 * place::Fine::BYTES_PER_CELL } else { 0 };
    let threads = rayon::current_num_threads() as u64;
    (fine, (threads * 6 + 6) * n * 8)
}

/// Compute tcBF from `src` (see the module doc). Progress counts pixel visits over all passes.
pub fn run(src: &dyn GSource, geom: KGeometry, p: &TcbfParams, budget: u64, progress: &Progress) -> Result<TcbfResult> {
    let t0 = std::time::Instant::now();
    let [qr, qc, kr, kc] = src.shape();
    check_params(p, (qr, qc))?;
    let (fine_b, work_b) = fixed_bytes((qr, qc), p.upsample);
    if fine_b + work_b > budget {
        return Err(Error::Invalid(format!(
            "tcBF: memory budget {} too small for the {qr}x{qc} scan at upsample {}: the {}x{} fine grid needs {} and the \
             per-thread buffers {} (use --memory or a smaller --upsample)",
            hs(budget),
            p.upsample,
            qr * p.upsample,
            qc * p.upsample,
            hs(fine_b),
            hs(work_b)
        )));
    }
    let dc = src.dc_plane()?;
    let (disk, members) = find_disk(&dc, kr, kc, geom)?;
    let fft = Fft2::new(qr, qc);
    // the process itself (binary, HDF5 and its chunk cache, allocator slack) takes part of the budget
    let reserve = (budget / 2).min(PROCESS_RESERVE);
    let avail = budget.saturating_sub(fine_b + work_b + reserve);
    let auto = matches!(p.mode, ShiftMode::Auto);
    // the pairs' low-passed spectra take a third of what is left in automatic mode
    let low_b = if auto { avail / 3 } else { 0 };
    let mut px = Pixels::new(src, members, avail - low_b)?;
    let passes = if auto { 4 } else { 2 };
    progress.set_total(passes * px.members.len() as u64);
    let means: Vec<f64> = px.members.iter().map(|&(y, x)| dc[y * kc + x] as f64 / fft.n() as f64).collect();
    let kdet: Vec<(f64, f64)> = px.members.iter().map(|&k| geom.det_coord(k)).collect();
    let max_q = (low_b / (8 * px.members.len() as u64).max(1)) as usize;
    let mut low = auto.then(|| LowSpectra::new(qr, qc, max_q.max(64), px.members.len()));
    let plain_spec = first_pass(&mut px, &fft, &means, low.as_mut(), progress)?;
    let Fitted { reported: shifts, image: image_shifts, quality, fit, used: use_, pairs } = match &p.mode {
        ShiftMode::Auto => {
            let low = low.take().unwrap_or_else(|| LowSpectra::new(qr, qc, 64, 0));
            let inp = auto::AutoInput { low, means: &means, kdet: &kdet, disk: &disk, geom, kgrid: (kr, kc) };
            auto::fit(&mut px, &fft, inp, progress)?
        }
        ShiftMode::Manual { max_shift, theta_deg, transpose } => {
            let s = manual_shifts(&kdet, *max_shift, *theta_deg, *transpose);
            let n = s.len();
            Fitted {
                reported: s.clone(),
                image: s,
                quality: vec![f64::NAN; n],
                fit: None,
                used: vec![true; n],
                pairs: vec![],
            }
        }
    };
    progress.set_message("tcBF: aligned sum");
    let use_: Vec<bool> = use_.iter().zip(&means).map(|(&u, &m)| u && m > 0.0).collect();
    let image = aligned_image(&mut px, &fft, p.upsample, &image_shifts, &use_, &means, progress)?;
    let (image, aberrations) = model_and_ctf(p, fit.as_ref(), image, (qr, qc))?;
    let mut plain = plain_spec;
    let mut w = Work::default();
    fft.run_w(&mut plain, true, &mut w);
    let plain: Vec<f32> = plain.iter().map(|c| c.re / fft.n() as f32).collect();
    let (smap, qmap) = detector_maps(geom, &px.members, &shifts, &quality, &use_);
    let thr = QUALITY_REL * median(quality.iter().copied().filter(|q| q.is_finite()).collect());
    Ok(TcbfResult {
        params: p.clone(),
        scan: (qr, qc),
        image,
        plain,
        det: geom.det,
        shifts: smap,
        quality: qmap,
        fit,
        aberrations,
        pairs,
        disk,
        pixels_used: use_.iter().filter(|&&u| u).count(),
        pixels_low_quality: quality.iter().filter(|&&q| q < thr).count(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The plain BF spectrum (sum of the pixels' spectra); in automatic mode also the pairs'
/// low-passed spectra.
fn first_pass(
    px: &mut Pixels,
    fft: &Fft2,
    means: &[f64],
    mut low: Option<&mut LowSpectra>,
    progress: &Progress,
) -> Result<Vec<Complex32>> {
    progress.set_message("tcBF: plain BF sum");
    let win = align::tukey(fft.rows, fft.cols, WINDOW_FRAC);
    let mut plain_spec = vec![Complex32::default(); fft.n()];
    px.for_each_batch(progress, &mut |idx, gs| {
        for g in gs {
            plain_spec.iter_mut().zip(g.iter()).for_each(|(a, b)| *a += b);
        }
        if let Some(l) = low.as_deref_mut() {
            auto::keep_low(l, idx, gs, means, fft, &win);
        }
        Ok(())
    })?;
    Ok(plain_spec)
}

/// The aberrations of the fitted model and the image to return: phase-flipped when asked
/// (`ctf_correct`). The defocus sign comes from the contrast when the wavelength is known (see
/// [`aberr`]).
fn model_and_ctf(
    p: &TcbfParams,
    fit: Option<&LinearFit>,
    image: Vec<f32>,
    scan: (usize, usize),
) -> Result<(Vec<f32>, Option<Aberrations>)> {
    let Some(f) = fit else { return Ok((image, None)) };
    let (rows, cols) = (scan.0 * p.upsample, scan.1 * p.upsample);
    let optics = p.optics.as_ref();
    let step = optics.map(|o| o.scan_step_a / p.upsample as f64);
    let flipped = optics.zip(step).and_then(|(o, st)| aberr::phase_flip(&image, rows, cols, st, f.matrix, 1.0, o));
    let Some(flipped) = flipped else {
        if p.ctf_correct {
            return Err(Error::Invalid(
                "tcBF: --ctf-correct needs the wavelength and the calibration: --energy, --scan-step and --alpha or \
                 --q-pixel"
                    .into(),
            ));
        }
        let (deg, _, _) = aberr::polar(f.matrix);
        let sign = if deg.abs() <= 90.0 { 1.0 } else { -1.0 };
        return Ok((image, Some(aberr::aberrations(f.matrix, sign, optics, aberr::SignFrom::Assumed))));
    };
    let m = 2 * p.upsample;
    let sign = if aberr::skewness(&flipped, rows, cols, m) >= 0.0 { 1.0 } else { -1.0 };
    let ab = aberr::aberrations(f.matrix, sign, optics, aberr::SignFrom::Contrast);
    if !p.ctf_correct {
        return Ok((image, Some(ab)));
    }
    let mean = flipped.iter().map(|&v| v as f64).sum::<f64>() / flipped.len().max(1) as f64;
    let out = flipped.iter().map(|&v| if sign > 0.0 { v } else { (2.0 * mean - v as f64) as f32 }).collect();
    Ok((out, Some(ab)))
}

/// Per detector pixel maps: shifts (dy, dx; NaN where unused) and quality (NaN outside the disk).
fn detector_maps(
    geom: KGeometry,
    members: &[(usize, usize)],
    shifts: &[(f64, f64)],
    quality: &[f64],
    use_: &[bool],
) -> (Vec<f32>, Vec<f32>) {
    let (dr, dcols) = geom.det;
    let mut smap = vec![f32::NAN; dr * dcols * 2];
    let mut qmap = vec![f32::NAN; dr * dcols];
    for (i, &(ky, kx)) in members.iter().enumerate() {
        for y in geom.origin.0 + ky * geom.bin..(geom.origin.0 + (ky + 1) * geom.bin).min(dr) {
            for x in geom.origin.1 + kx * geom.bin..(geom.origin.1 + (kx + 1) * geom.bin).min(dcols) {
                qmap[y * dcols + x] = quality[i] as f32;
                if use_[i] {
                    smap[(y * dcols + x) * 2] = shifts[i].0 as f32;
                    smap[(y * dcols + x) * 2 + 1] = shifts[i].1 as f32;
                }
            }
        }
    }
    (smap, qmap)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// 3x3 median of a rows x cols image (edges: the neighbours that exist).
fn median3x3(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    let mut nb = Vec::with_capacity(9);
    for y in 0..rows {
        for x in 0..cols {
            nb.clear();
            for yy in y.saturating_sub(1)..(y + 2).min(rows) {
                for xx in x.saturating_sub(1)..(x + 2).min(cols) {
                    nb.push(v[yy * cols + xx]);
                }
            }
            nb.sort_by(|a, b| a.total_cmp(b));
            out[y * cols + x] = nb[nb.len() / 2];
        }
    }
    out
}

/// The BF disk in the DC plane: its description (detector coordinates) and its K pixels.
fn find_disk(dc: &[f32], kr: usize, kc: usize, geom: KGeometry) -> Result<(Disk, Vec<(usize, usize)>)> {
    // a 3x3 median first: a hot pixel is not the disk's brightness
    let med = median3x3(dc, kr, kc);
    let ((cy, cx), r) = crate::compute::overview::find_bf_disk(&med, kr, kc)
        .ok_or_else(|| Error::Invalid("tcBF: no bright-field disk in the FFT's detector region".into()))?;
    let mut members = Vec::new();
    for y in 0..kr {
        for x in 0..kc {
            let (dy, dx) = (y as f32 - cy, x as f32 - cx);
            if (dy * dy + dx * dx).sqrt() <= r && dc[y * kc + x] > 0.0 && med[y * kc + x] > 0.0 {
                members.push((y, x));
            }
        }
    }
    if members.len() < 4 {
        return Err(Error::Invalid(format!(
            "tcBF: the bright-field disk covers only {} detector pixels; at least 4 are needed",
            members.len()
        )));
    }
    let b = geom.bin as f64;
    let centre =
        [geom.origin.0 as f64 + (cy as f64 + 0.5) * b - 0.5, geom.origin.1 as f64 + (cx as f64 + 0.5) * b - 0.5];
    Ok((Disk { centre, radius: r as f64 * b, pixels: members.len() }, members))
}

/// py4D-browser's manual shifts, in this module's sign convention.
fn manual_shifts(kdet: &[(f64, f64)], max_shift: f64, theta_deg: f64, transpose: bool) -> Vec<(f64, f64)> {
    let n = kdet.len() as f64;
    let com = (kdet.iter().map(|k| k.0).sum::<f64>() / n, kdet.iter().map(|k| k.1).sum::<f64>() / n);
    let maxr = kdet.iter().map(|k| (k.0 - com.0).hypot(k.1 - com.1)).fold(0.0, f64::max).max(1e-12);
    let (s, c) = theta_deg.to_radians().sin_cos();
    // py4D-browser: shifts = v @ R with R = [[c, -s], [s, c]] (T @ R when transposed), and
    // each image is moved by +shift; here the image is moved by -s_K, so s_K = -(v @ R).
    let r = if transpose { [[s, c], [c, -s]] } else { [[c, -s], [s, c]] };
    kdet.iter()
        .map(|k| {
            let v = ((k.0 - com.0) / maxr * max_shift, (k.1 - com.1) / maxr * max_shift);
            (-(v.0 * r[0][0] + v.1 * r[1][0]), -(v.0 * r[0][1] + v.1 * r[1][1]))
        })
        .collect()
}

/// Shifts per disk pixel: those reported (SHIFTS) and those the image is made with.
struct Fitted {
    reported: Vec<(f64, f64)>,
    image: Vec<(f64, f64)>,
    quality: Vec<f64>,
    fit: Option<LinearFit>,
    used: Vec<bool>,
    pairs: Vec<PairShift>,
}

/// The aligned sum with the shifts of the used pixels.
fn aligned_image(
    px: &mut Pixels,
    fft: &Fft2,
    up: usize,
    shifts: &[(f64, f64)],
    use_: &[bool],
    means: &[f64],
    progress: &Progress,
) -> Result<Vec<f32>> {
    let n_used = use_.iter().filter(|&&u| u).count();
    let total_mean: f64 = (0..means.len()).filter(|&i| use_[i]).map(|i| means[i]).sum();
    if n_used == 0 {
        return Err(Error::Invalid("tcBF: no bright-field pixel left to align".into()));
    }
    let n = fft.n();
    if up == 1 {
        let mut acc = vec![Complex32::default(); n];
        px.for_each_batch(progress, &mut |idx, gs| {
            for (&i, g) in idx.iter().zip(gs) {
                if use_[i] {
                    align::add_shifted(&mut acc, g, shifts[i], 1.0 / means[i], fft);
                }
            }
            Ok(())
        })?;
        let mut w = Work::default();
        fft.run_w(&mut acc, true, &mut w);
        let s = total_mean / (n as f64 * n_used as f64);
        return Ok(acc.iter().map(|c| (c.re as f64 * s) as f32).collect());
    }
    let mut fine = place::Fine::new(fft.rows, fft.cols, up);
    px.for_each_batch(progress, &mut |idx, gs| {
        let sel: Vec<(usize, &Vec<Complex32>)> = idx.iter().copied().zip(gs).filter(|(i, _)| use_[*i]).collect();
        let imgs: Vec<Vec<f32>> = sel
            .par_iter()
            .map_init(Work::default, |w, (i, g)| {
                let mut a = g.to_vec();
                fft.run_w(&mut a, true, w);
                let s = 1.0 / (n as f64 * means[*i]);
                a.iter().map(|c| (c.re as f64 * s) as f32).collect()
            })
            .collect();
        let refs: Vec<&[f32]> = imgs.iter().map(|v| v.as_slice()).collect();
        let sh: Vec<(f64, f64)> = sel.iter().map(|(i, _)| shifts[*i]).collect();
        fine.place(&refs, &sh);
        Ok(())
    })?;
    Ok(fine.finish(KDE_SIGMA * up as f64).into_iter().map(|v| (v as f64 * total_mean) as f32).collect())
}

/// The disk pixels' spectra (unshifted Q order), read in blocks that fit the budget, or all kept
/// in memory when they fit.
struct Pixels<'a> {
    src: &'a dyn GSource,
    members: Vec<(usize, usize)>,
    /// K row range, K col range, member indices.
    batches: Vec<(Range<usize>, Range<usize>, Vec<usize>)>,
    resident: Option<Vec<Vec<Complex32>>>,
    keep: bool,
}

type BatchFn<'f> = dyn FnMut(&[usize], &[Vec<Complex32>]) -> Result<()> + 'f;

impl<'a> Pixels<'a> {
    fn new(src: &'a dyn GSource, members: Vec<(usize, usize)>, budget: u64) -> Result<Pixels<'a>> {
        let [qr, qc, kr, kc] = src.shape();
        let pix_b = (qr * qc * 8) as u64;
        // a block pixel is read (8 B per Q; HDF5 may hold a conversion copy meanwhile),
        // transposed (8 B) and gathered (8 B)
        let cap = (budget / (4 * pix_b)) as usize;
        if cap == 0 {
            return Err(Error::Invalid(format!(
                "tcBF: memory budget too small: one detector pixel over the {qr}x{qc} scan needs {} (use --memory)",
                hs(4 * pix_b)
            )));
        }
        let keep = (members.len() as u64 + 3 * members.len().min(cap) as u64) * pix_b <= budget;
        let (chr, chc) = src.k_chunk();
        let th = chr.clamp(1, kr).min((cap / chc.clamp(1, kc)).max(1));
        let tw = if th * chc <= cap { ((cap / th) / chc * chc).max(chc) } else { (cap / th).max(1) }.min(kc);
        let mut batches = Vec::new();
        for r0 in (0..kr).step_by(th) {
            for c0 in (0..kc).step_by(tw) {
                let idx: Vec<usize> = (0..members.len())
                    .filter(|&i| {
                        let (y, x) = members[i];
                        y >= r0 && y < r0 + th && x >= c0 && x < c0 + tw
                    })
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                let ys = idx.iter().map(|&i| members[i].0);
                let xs = idx.iter().map(|&i| members[i].1);
                let (y0, y1) = (ys.clone().min().unwrap(), ys.max().unwrap() + 1);
                let (x0, x1) = (xs.clone().min().unwrap(), xs.max().unwrap() + 1);
                batches.push((y0..y1, x0..x1, idx));
            }
        }
        Ok(Pixels { src, members, batches, resident: None, keep })
    }

    fn read(&self, b: &(Range<usize>, Range<usize>, Vec<usize>)) -> Result<Vec<Vec<Complex32>>> {
        let [qr, qc, _, _] = self.src.shape();
        let (h, w) = (b.0.len(), b.1.len());
        let block = self.src.read_block(b.0.clone(), b.1.clone())?;
        // block[q * h * w + k]: each member's spectrum is gathered from its column k, ifftshifted
        // on the way, 16 members per task so that one row of the block serves 16 columns
        let ks: Vec<usize> =
            b.2.iter()
                .map(|&i| {
                    let (y, x) = self.members[i];
                    (y - b.0.start) * w + (x - b.1.start)
                })
                .collect();
        let groups: Vec<Vec<Vec<Complex32>>> =
            ks.par_chunks(16).map(|ks| gather_shifted(&block, h * w, (qr, qc), ks)).collect();
        Ok(groups.into_iter().flatten().collect())
    }

    /// Call `f` with (member indices, their spectra) batch by batch.
    fn for_each_batch(&mut self, progress: &Progress, f: &mut BatchFn) -> Result<()> {
        let n_bytes = (self.src.shape()[0] * self.src.shape()[1] * 8) as u64;
        if let Some(all) = &self.resident {
            let idx: Vec<usize> = (0..all.len()).collect();
            for (ci, cg) in idx.chunks(256).zip(all.chunks(256)) {
                progress.check()?;
                f(ci, cg)?;
                progress.add(ci.len() as u64, 0);
            }
            return Ok(());
        }
        let mut keep: Vec<Option<Vec<Complex32>>> = if self.keep { vec![None; self.members.len()] } else { Vec::new() };
        for b in &self.batches {
            progress.check()?;
            let gs = self.read(b)?;
            f(&b.2, &gs)?;
            progress.add(b.2.len() as u64, b.2.len() as u64 * n_bytes);
            if self.keep {
                for (&i, g) in b.2.iter().zip(gs) {
                    keep[i] = Some(g);
                }
            }
        }
        if self.keep {
            self.resident = Some(keep.into_iter().map(|g| g.unwrap_or_default()).collect());
        }
        Ok(())
    }
}

/// The spectra of the block's columns `ks` (`block[q * hw + k]`, Q of shape `q`), each
/// ifftshifted: out[(i, j)] = column[((i + r/2) % r, (j + c/2) % c)], as `align::ifftshift2`.
fn gather_shifted(block: &[Complex32], hw: usize, (r, c): (usize, usize), ks: &[usize]) -> Vec<Vec<Complex32>> {
    let mut out = vec![vec![Complex32::default(); r * c]; ks.len()];
    for si in 0..r {
        let di = (si + r - r / 2) % r;
        for sj in 0..c {
            let d = di * c + (sj + c - c / 2) % c;
            let row = &block[(si * c + sj) * hw..][..hw];
            for (o, &k) in out.iter_mut().zip(ks) {
                o[d] = row[k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
