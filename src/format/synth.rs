//! Synthetic, physically plausible 4D-STEM `.mib` files with headers in the real Merlin layouts:
//! a bright-field disk that shifts with scan position, six Bragg disks whose intensities vary
//! across the scan (two "grains"), a diffuse background that follows a lattice of atom columns,
//! and Poisson counts clipped to the counter depth. Frames are generated in parallel and written
//! sequentially in large blocks, so multi-GB files are written at disk speed.

use super::mib;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub rows: usize,
    pub cols: usize,
    /// 256 (single chip) or 512 (quad 2x2).
    pub det: usize,
    /// Counter depth: 1, 6, 12 or 24.
    pub depth: u8,
    pub raw: bool,
    pub hdr: bool,
    /// Write only this many frames (an interrupted acquisition).
    pub frames: Option<usize>,
    /// Split over several files of this many frames (`name1.mib`, `name2.mib`, ...).
    pub images_per_file: Option<usize>,
    pub exposure_s: f64,
    pub seed: u64,
    /// A Merlin Nx1 spectrometer detector (256 x 1024 frames, layout `Nx1`, processed only):
    /// each frame is an EELS spectrum along the columns spread over the rows (a zero-loss peak,
    /// a plasmon, a power-law background and a core-loss edge whose strength varies over the
    /// scan), with counting noise. `det` is ignored.
    pub nx1: bool,
}

/// Frame shape (rows, cols) of a synthetic spec.
pub fn det_shape(spec: &SynthSpec) -> (usize, usize) {
    if spec.nx1 { (NX1_ROWS, NX1_COLS) } else { (spec.det, spec.det) }
}

const NX1_ROWS: usize = 256;
const NX1_COLS: usize = 1024;
/// Edge strengths of the Nx1 model (quantised so per-pixel levels are precomputed).
const EDGE_STEPS: usize = 16;
/// Channel of the zero-loss peak and of the core-loss edge (stored order).
pub const NX1_ZLP: usize = 80;
pub const NX1_EDGE: usize = 620;

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            rows: 32,
            cols: 32,
            det: 256,
            depth: 12,
            raw: false,
            hdr: true,
            frames: None,
            images_per_file: None,
            exposure_s: 0.001,
            seed: 1,
            nx1: false,
        }
    }
}

/// Label image: region index per pixel of a padded detector, plus per-frame intensity model.
struct Model {
    det: usize,
    margin: usize,
    labels: Vec<u8>,
    /// Poisson inverse-CDF tables: LEVELS x 256 quantiles.
    tables: Vec<u32>,
    lambdas: Vec<f32>,
    max: u32,
    scale: f32,
    /// Nx1 model: level per pixel for each of `EDGE_STEPS` edge strengths (empty otherwise).
    nx1_levels: Vec<u8>,
}

const LEVELS: usize = 192;
const N_LABELS: usize = 1 + 8 + 1 + 6; // outside, 8 background rings, BF disk, 6 Bragg disks
const MARGIN: usize = 8;

impl Model {
    fn new(spec: &SynthSpec) -> Model {
        let det = spec.det;
        let w = det + 2 * MARGIN;
        let c = (w as f32 - 1.0) / 2.0;
        let bf_r = det as f32 * 0.06;
        let bragg_d = det as f32 * 0.22;
        let bragg_r = det as f32 * 0.035;
        let mut labels = vec![0u8; w * w];
        for y in 0..w {
            for x in 0..w {
                let (dy, dx) = (y as f32 - c, x as f32 - c);
                let r = (dy * dy + dx * dx).sqrt();
                let mut l = if r < det as f32 * 0.48 { 1 + ((r / (det as f32 * 0.06)) as usize).min(7) } else { 0 };
                if r < bf_r {
                    l = 9;
                }
                for k in 0..6 {
                    let a = std::f32::consts::PI / 3.0 * k as f32 + 0.2;
                    let (by, bx) = (c + bragg_d * a.sin(), c + bragg_d * a.cos());
                    if (y as f32 - by).powi(2) + (x as f32 - bx).powi(2) < bragg_r * bragg_r {
                        l = 10 + k;
                    }
                }
                labels[y * w + x] = l as u8;
            }
        }
        let max = match spec.depth {
            1 => 1,
            6 => 63,
            12 => 4095,
            _ => (1 << 24) - 1,
        };
        // BF intensity per pixel by depth
        let scale = match spec.depth {
            1 => 0.6,
            6 => 20.0,
            12 => 300.0,
            _ => 3000.0,
        };
        let lambdas: Vec<f32> =
            (0..LEVELS).map(|i| if i == 0 { 0.0 } else { 0.002 * (1.07f32).powi(i as i32) }).collect();
        let mut tables = vec![0u32; LEVELS * 256];
        for (li, &lam) in lambdas.iter().enumerate() {
            for q in 0..256 {
                let u = (q as f64 + 0.5) / 256.0;
                tables[li * 256 + q] = poisson_quantile(lam as f64, u).min(max as u64) as u32;
            }
        }
        let mut m = Model { det, margin: MARGIN, labels, tables, lambdas, max, scale, nx1_levels: Vec::new() };
        if spec.nx1 {
            m.nx1_levels = m.nx1_level_table();
        }
        m
    }

    /// Mean counts of Nx1 pixel (y, c) for edge strength `edge` in 0..=1.
    fn nx1_lambda(&self, y: usize, c: usize, edge: f32) -> f32 {
        let s = self.scale;
        let g = |x: f32, mu: f32, sig: f32| (-0.5 * ((x - mu) / sig).powi(2)).exp();
        let cf = c as f32;
        let zlp = s * g(cf, NX1_ZLP as f32, 3.0);
        let plasmon = 0.08 * s * g(cf, NX1_ZLP as f32 + 220.0, 30.0);
        let tail = if c > NX1_ZLP { 0.02 * s * (60.0 / (cf - NX1_ZLP as f32 + 60.0)).powi(2) } else { 0.0 };
        let e = if c >= NX1_EDGE { edge * 0.03 * s * (NX1_EDGE as f32 / cf).powi(3) } else { 0.0 };
        // the spectrometer focuses the spectrum onto a band of rows
        let w = 0.03 + g(y as f32, NX1_ROWS as f32 / 2.0, 40.0);
        w * (zlp + plasmon + tail + e)
    }

    fn nx1_level_table(&self) -> Vec<u8> {
        let npx = NX1_ROWS * NX1_COLS;
        let mut v = vec![0u8; EDGE_STEPS * npx];
        v.par_chunks_mut(npx).enumerate().for_each(|(k, t)| {
            let edge = k as f32 / (EDGE_STEPS - 1) as f32;
            for (i, o) in t.iter_mut().enumerate() {
                *o = self.level(self.nx1_lambda(i / NX1_COLS, i % NX1_COLS, edge));
            }
        });
        v
    }

    /// Generate the Nx1 spectrum frame of scan position `p`.
    fn frame_nx1(&self, spec: &SynthSpec, p: usize, out: &mut [u32]) {
        let npx = NX1_ROWS * NX1_COLS;
        let step = nx1_edge_step(spec, p);
        let lv = &self.nx1_levels[step * npx..(step + 1) * npx];
        let mut rng =
            spec.seed.wrapping_mul(0x9E3779B97F4A7C15) ^ (p as u64).wrapping_mul(0xD1B54A32D192ED03) ^ 0x5DEECE66D;
        for (o8, l8) in out[..npx].chunks_mut(8).zip(lv.chunks(8)) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut bits = rng;
            for (o, &l) in o8.iter_mut().zip(l8) {
                *o = self.tables[l as usize * 256 + (bits & 0xff) as usize];
                bits >>= 8;
            }
        }
    }

    /// Level index of a mean value.
    fn level(&self, lam: f32) -> u8 {
        if lam <= 0.001 {
            return 0;
        }
        let i = ((lam / 0.002).ln() / 1.07f32.ln()).round() as isize;
        i.clamp(1, LEVELS as isize - 1) as u8
    }

    /// Per-label levels and the integer disk shift for scan position (r, c).
    fn frame_params(&self, spec: &SynthSpec, r: usize, c: usize) -> ([u8; N_LABELS], isize, isize) {
        let tau = std::f32::consts::TAU;
        let (fr, fc) = (r as f32 / spec.rows.max(1) as f32, c as f32 / spec.cols.max(1) as f32);
        let dy = (3.0 * (tau * fc).sin()).round() as isize;
        let dx = (3.0 * (tau * fr).cos()).round() as isize;
        let atoms = 1.0 + 0.5 * (tau * r as f32 / 8.0).cos() * (tau * c as f32 / 8.0).cos();
        let grain = if (fr - 0.5).powi(2) + (fc - 0.4).powi(2) < 0.09 { 1.0 } else { 0.0 };
        let s = self.scale;
        let mut lam = [0f32; N_LABELS];
        for ring in 0..8 {
            lam[1 + ring] = s * 0.02 * atoms / (1.0 + ring as f32);
        }
        lam[9] = s * (1.0 - 0.2 * (atoms - 1.0));
        for k in 0..6 {
            let g = if k % 2 == 0 { grain } else { 1.0 - grain };
            lam[10 + k] = s * 0.1 * (0.2 + g);
        }
        let mut lv = [0u8; N_LABELS];
        for i in 0..N_LABELS {
            lv[i] = self.level(lam[i]);
        }
        (lv, dy, dx)
    }

    /// Generate the frame of scan position `p` (row-major) as u32 values.
    fn frame(&self, spec: &SynthSpec, p: usize, out: &mut [u32]) {
        if spec.nx1 {
            return self.frame_nx1(spec, p, out);
        }
        let (r, c) = (p / spec.cols, p % spec.cols);
        let (lv, dy, dx) = self.frame_params(spec, r, c);
        let w = self.det + 2 * self.margin;
        let mut rng =
            spec.seed.wrapping_mul(0x9E3779B97F4A7C15) ^ (p as u64).wrapping_mul(0xD1B54A32D192ED03) ^ 0x5DEECE66D;
        let mut bits = 0u64;
        let mut left = 0;
        let m = self.margin as isize;
        for y in 0..self.det {
            let ly = (y as isize + m - dy) as usize;
            let lrow = &self.labels[ly * w..(ly + 1) * w];
            let orow = &mut out[y * self.det..(y + 1) * self.det];
            let x0 = (m - dx) as usize;
            for (x, o) in orow.iter_mut().enumerate() {
                if left == 0 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    bits = rng;
                    left = 8;
                }
                let q = (bits & 0xff) as usize;
                bits >>= 8;
                left -= 1;
                let level = lv[lrow[x0 + x] as usize] as usize;
                *o = self.tables[level * 256 + q];
            }
        }
        let _ = (self.max, &self.lambdas);
    }
}

/// Edge strength step (0..EDGE_STEPS) of scan position `p` of an Nx1 spec: a smooth pattern
/// over the scan, from no edge to full strength.
pub fn nx1_edge_step(spec: &SynthSpec, p: usize) -> usize {
    let tau = std::f32::consts::TAU;
    let (r, c) = (p / spec.cols.max(1), p % spec.cols.max(1));
    let (fr, fc) = (r as f32 / spec.rows.max(1) as f32, c as f32 / spec.cols.max(1) as f32);
    let s = 0.5 + 0.5 * (tau * fr).sin() * (tau * fc).cos();
    ((s * (EDGE_STEPS - 1) as f32).round() as usize).min(EDGE_STEPS - 1)
}

fn poisson_quantile(lam: f64, u: f64) -> u64 {
    if lam <= 0.0 {
        return 0;
    }
    if lam > 500.0 {
        // normal approximation
        let z = inv_norm(u);
        return (lam + z * lam.sqrt()).round().max(0.0) as u64;
    }
    let mut k = 0u64;
    let mut p = (-lam).exp();
    let mut cdf = p;
    while cdf < u && k < 100_000 {
        k += 1;
        p *= lam / k as f64;
        cdf += p;
    }
    k
}

fn inv_norm(p: f64) -> f64 {
    // Acklam's rational approximation
    let a = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    let b =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    let c = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    let d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    } else {
        -inv_norm(1.0 - p)
    }
}

/// Format like Merlin: `4.000000E+1`.
fn sci(v: f64) -> String {
    if v == 0.0 {
        return "0.000000E+0".into();
    }
    let e = v.abs().log10().floor() as i32;
    let m = v / 10f64.powi(e);
    format!("{m:.6}E{}{}", if e < 0 { "-" } else { "+" }, e.abs())
}

const DACS: &str =
    "3RX,068,511,000,000,000,000,000,000,100,255,100,125,100,100,080,100,090,030,128,004,255,126,128,174,172,511,511";
const EPOCH_NS: i128 = 1_700_000_000_000_000_000;

fn iso(ns: i128) -> (String, String) {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000) as i64;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = crate::util::civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    (
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:09}Z"),
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{:06}", frac / 1000),
    )
}

/// The frame header for frame `i` (0-based) in the real Merlin layout.
pub fn header(spec: &SynthSpec, i: usize, t_ns: i128) -> Vec<u8> {
    let quad = spec.det == 512;
    let (hl, chips, sel, layout) = if spec.nx1 {
        (768, 4, "0F", "   Nx1")
    } else if quad {
        (768, 4, "0F", "   2x2")
    } else {
        (384, 1, "01", "   1x1")
    };
    let (w, h, pd) = if spec.raw {
        let rw = if quad { 1024 } else { 256 };
        let rh = 256;
        (if spec.depth == 24 { 2 * rw } else { rw }, rh, "R64")
    } else {
        let pd = match spec.depth {
            1 | 6 => "U08",
            12 => "U16",
            _ => "U32",
        };
        let (r, c) = det_shape(spec);
        (c, r, pd)
    };
    let th: Vec<String> = [20.0, 511.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0].iter().map(|&v| sci(v)).collect();
    let dacs = vec![DACS; chips].join(",");
    let (isots, ts) = iso(t_ns);
    let s = format!(
        "MQ1,{:06},{hl:05},{chips:02},{w:04},{h:04},{pd},{layout},{sel},{ts},{:.6},0,0,0,{},{dacs},MQ1A,{isots},{}ns,{},",
        i + 1,
        spec.exposure_s,
        th.join(","),
        (spec.exposure_s * 1e9).round() as u64,
        spec.depth
    );
    let mut b = s.into_bytes();
    assert!(b.len() <= hl, "synthetic header too long");
    b.resize(hl, 0);
    b
}

/// The `.hdr` acquisition header in the real layout (latin-1, CRLF, 2048 bytes).
pub fn hdr_text(spec: &SynthSpec, n_frames: usize) -> Vec<u8> {
    let quad = spec.det == 512;
    let lines = [
        "HDR,\t".to_string(),
        "Time and Date Stamp (day, mnth, yr, hr, min, s):\t14/11/2023 22:13:20".into(),
        format!("Chip ID:\tW559_G11{}", if quad { ",W559_H11,W559_I11,W559_J11" } else { ", - , - , - " }),
        "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX".into(),
        format!(
            "Assembly Size (NX1, 2X2):\t{}",
            if spec.nx1 {
                "   Nx1"
            } else if quad {
                "   2x2"
            } else {
                "   1x1"
            }
        ),
        "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM".into(),
        format!("Counter Depth (number):\t{}", spec.depth),
        "Gain:\tSLGM".into(),
        "Active Counters:\tCounter 0".into(),
        "Thresholds (keV):\t2.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0".into(),
        "Gap Fill Mode:\tNone".into(),
        "Acquisition Type (Normal, Th_scan, Config):\tNormal".into(),
        format!("Frames in Acquisition (Number):\t{n_frames}"),
        format!("Frames per Trigger (Number):\t{}", spec.cols),
        "Trigger Start (Positive, Negative, Internal):\tRising Edge".into(),
        "Trigger Stop (Positive, Negative, Internal):\tInternal".into(),
        "Sensor Bias (V):\t120 V".into(),
        "Sensor Polarity (Positive, Negative):\tPositive".into(),
        "Readout System:\tMerlin Quad".into(),
        "Software Version:\t1.6.1.217 (emdtui synth)".into(),
        format!("ScanX:\t{}", spec.cols),
        format!("ScanY:\t{}", spec.rows),
        "End\t".into(),
    ];
    let mut b: Vec<u8> = lines.join("\r\n").into_bytes();
    if b.len() < 2048 {
        b.resize(2048, b' ');
    }
    b
}

/// Frame time of frame `i`: exposure plus a longer gap at each line start (flyback).
fn frame_time(spec: &SynthSpec, i: usize) -> i128 {
    let dt = (spec.exposure_s * 1e9) as i128 + 1_000;
    let line = spec.cols.max(1);
    EPOCH_NS + i as i128 * dt + (i / line) as i128 * 50_000
}

/// Expected decoded frame at scan position `p` (for tests).
pub fn expected_frame(spec: &SynthSpec, p: usize) -> Vec<u32> {
    let m = Model::new(spec);
    let (r, c) = det_shape(spec);
    let mut out = vec![0u32; r * c];
    m.frame(spec, p, &mut out);
    out
}

/// Paths of the files `write` produces for `out`.
pub fn output_paths(out: &Path, spec: &SynthSpec, n: usize) -> Vec<PathBuf> {
    match spec.images_per_file {
        Some(k) if k > 0 && k < n => {
            let stem = out.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            (0..n.div_ceil(k)).map(|i| out.with_file_name(format!("{stem}{}.mib", i + 1))).collect()
        }
        _ => vec![out.to_path_buf()],
    }
}

/// Write the synthetic acquisition. `progress(done_frames, total)` is called per block.
pub fn write(out: &Path, spec: &SynthSpec, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Vec<PathBuf>> {
    if ![1, 6, 12, 24].contains(&spec.depth) {
        return Err(Error::Invalid(format!("--depth {} must be 1, 6, 12 or 24", spec.depth)));
    }
    if spec.nx1 && spec.raw {
        return Err(Error::Invalid("--nx1 writes processed frames only (no raw Nx1 decoder exists)".into()));
    }
    if !spec.nx1 && spec.det != 256 && spec.det != 512 {
        return Err(Error::Invalid(format!("--detector {} must be 256 or 512", spec.det)));
    }
    if spec.rows == 0 || spec.cols == 0 {
        return Err(Error::Invalid("scan shape must be at least 1x1".into()));
    }
    let model = Model::new(spec);
    let total = spec.frames.unwrap_or(spec.rows * spec.cols);
    let paths = output_paths(out, spec, total);
    let per_file = spec.images_per_file.filter(|&k| k > 0 && k < total).unwrap_or(total);
    let npx = det_shape(spec).0 * det_shape(spec).1;
    let frame_len = header(spec, 0, EPOCH_NS).len() + payload_len(spec);
    let block = (32 << 20) / frame_len.max(1);
    let block = block.clamp(1, 4096);
    // generation (rayon) and writing (one thread) overlap through a bounded channel
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Vec<u8>>)>(2);
    let paths2 = paths.clone();
    let writer = std::thread::spawn(move || -> Result<()> {
        let mut cur: Option<(usize, std::io::BufWriter<std::fs::File>)> = None;
        for (fi, bufs) in rx {
            if cur.as_ref().is_none_or(|(i, _)| *i != fi) {
                if let Some((i, mut w)) = cur.take() {
                    w.flush().map_err(|e| Error::io(&paths2[i], e))?;
                }
                let f = std::fs::File::create(&paths2[fi]).map_err(|e| Error::io(&paths2[fi], e))?;
                cur = Some((fi, std::io::BufWriter::with_capacity(8 << 20, f)));
            }
            let (i, w) = cur.as_mut().unwrap();
            for b in &bufs {
                w.write_all(b).map_err(|e| Error::io(&paths2[*i], e))?;
            }
        }
        if let Some((i, mut w)) = cur.take() {
            w.flush().map_err(|e| Error::io(&paths2[i], e))?;
        }
        Ok(())
    });
    let mut done = 0usize;
    'files: for fi in 0..paths.len() {
        let end = ((fi + 1) * per_file).min(total);
        while done < end {
            let n = block.min(end - done);
            let bufs: Vec<Vec<u8>> = (done..done + n)
                .into_par_iter()
                .map_init(
                    || vec![0u32; npx],
                    |frame, i| {
                        // frame i of the file = scan position i (no flyback in synthetic files)
                        model.frame(spec, i, frame);
                        let mut b = header(spec, i, frame_time(spec, i));
                        encode_payload(spec, frame, &mut b);
                        b
                    },
                )
                .collect();
            if tx.send((fi, bufs)).is_err() {
                break 'files; // the writer failed; its error is reported below
            }
            done += n;
            progress(done as u64, total as u64);
        }
    }
    drop(tx);
    writer.join().map_err(|_| Error::Invalid("synth writer thread panicked".into()))??;
    if spec.hdr {
        let hp = paths[0].with_extension("hdr");
        std::fs::write(&hp, hdr_text(spec, spec.rows * spec.cols)).map_err(|e| Error::io(&hp, e))?;
    }
    Ok(paths)
}

/// Write a processed (not raw) single-file `.mib` whose frame `i` (`spec.det` x `spec.det`
/// pixels, clipped to the counter depth) is given by `frame`, with the headers (and `.hdr`) of
/// `spec`: a way to feed any model through the real Merlin layout and read path (tests, e.g. a
/// phase object for DPC). `spec.det` may be any size here.
pub fn write_with(out: &Path, spec: &SynthSpec, frame: &(dyn Fn(usize, &mut [u32]) + Sync)) -> Result<()> {
    if spec.raw || ![1, 6, 12, 24].contains(&spec.depth) || spec.det == 0 {
        return Err(Error::Invalid("write_with: processed frames of depth 1, 6, 12 or 24 only".into()));
    }
    let n = spec.frames.unwrap_or(spec.rows * spec.cols);
    let max = match spec.depth {
        1 => 1,
        6 => 63,
        12 => 4095,
        _ => (1 << 24) - 1,
    };
    let bufs: Vec<Vec<u8>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut f = vec![0u32; spec.det * spec.det];
            frame(i, &mut f);
            for v in f.iter_mut() {
                *v = (*v).min(max);
            }
            let mut b = header(spec, i, frame_time(spec, i));
            encode_payload(spec, &f, &mut b);
            b
        })
        .collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| Error::io(out, e))?);
    for b in &bufs {
        w.write_all(b).map_err(|e| Error::io(out, e))?;
    }
    w.flush().map_err(|e| Error::io(out, e))?;
    if spec.hdr {
        let hp = out.with_extension("hdr");
        std::fs::write(&hp, hdr_text(spec, spec.rows * spec.cols)).map_err(|e| Error::io(&hp, e))?;
    }
    Ok(())
}

fn payload_len(spec: &SynthSpec) -> usize {
    let npx = det_shape(spec).0 * det_shape(spec).1;
    if spec.raw {
        match spec.depth {
            1 => npx / 8,
            6 => npx,
            12 => 2 * npx,
            _ => 4 * npx,
        }
    } else {
        npx * match spec.depth {
            1 | 6 => 1,
            12 => 2,
            _ => 4,
        }
    }
}

fn encode_payload(spec: &SynthSpec, frame: &[u32], b: &mut Vec<u8>) {
    if spec.raw {
        b.extend(mib::encode_raw(spec.depth, spec.det == 512, frame, spec.det, spec.det));
        return;
    }
    match spec.depth {
        1 | 6 => b.extend(frame.iter().map(|&v| v as u8)),
        12 => {
            b.reserve(frame.len() * 2);
            for &v in frame {
                b.extend_from_slice(&(v as u16).to_be_bytes());
            }
        }
        _ => {
            b.reserve(frame.len() * 4);
            for &v in frame {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sci_format() {
        assert_eq!(sci(40.0), "4.000000E+1");
        assert_eq!(sci(511.0), "5.110000E+2");
        assert_eq!(sci(0.0), "0.000000E+0");
    }

    #[test]
    fn iso_roundtrip() {
        let (s, _) = iso(EPOCH_NS + 123_456_789);
        assert_eq!(mib::parse_iso_ns(&s), Some(EPOCH_NS + 123_456_789));
    }

    #[test]
    fn poisson_mean_is_close() {
        for lam in [0.5f64, 5.0, 50.0, 1000.0] {
            let mean: f64 =
                (0..256).map(|q| poisson_quantile(lam, (q as f64 + 0.5) / 256.0) as f64).sum::<f64>() / 256.0;
            assert!((mean - lam).abs() < 0.05 * lam + 0.05, "lam {lam} mean {mean}");
        }
    }
}
