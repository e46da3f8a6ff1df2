//! Transform kernels shared by the out-of-core passes and the in-memory FFT: 2-D FFT plans with
//! fftshift, crop + bin of frames, scratch element encoding, chunk assembly.

use super::types::{Chunks, Elem, Layout, Unit, mirror};
use num_complex::Complex32;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub(crate) struct Plans2 {
    rows: usize,
    cols: usize,
    row: Arc<dyn Fft<f32>>,
    col: Arc<dyn Fft<f32>>,
    scratch_len: usize,
}

impl Plans2 {
    pub(crate) fn new(rows: usize, cols: usize) -> Plans2 {
        let mut pl = FftPlanner::<f32>::new();
        let row = pl.plan_fft_forward(cols);
        let col = pl.plan_fft_forward(rows);
        let scratch_len = row.get_inplace_scratch_len().max(col.get_inplace_scratch_len());
        Plans2 { rows, cols, row, col, scratch_len }
    }
    /// In-place 2-D FFT of a rows x cols image, left transposed and unshifted: afterwards
    /// `buf[x * rows + y]` holds frequency (y, x) (see [`shifted_sources`]).
    pub(crate) fn fft2_t(&self, buf: &mut [Complex32], tmp: &mut Vec<Complex32>, scratch: &mut Vec<Complex32>) {
        let (r, c) = (self.rows, self.cols);
        scratch.resize(self.scratch_len, Complex32::default());
        if c > 1 {
            self.row.process_with_scratch(buf, scratch);
        }
        if r > 1 {
            tmp.resize(r * c, Complex32::default());
            transpose::transpose(buf, tmp, c, r);
            self.col.process_with_scratch(tmp, scratch);
            buf.copy_from_slice(tmp);
        }
    }
    /// In-place 2-D FFT of a rows x cols image, then fftshift of both axes.
    pub(crate) fn fft2_shift(&self, buf: &mut [Complex32], tmp: &mut Vec<Complex32>, scratch: &mut Vec<Complex32>) {
        let (r, c) = (self.rows, self.cols);
        tmp.resize(r * c, Complex32::default());
        scratch.resize(self.scratch_len, Complex32::default());
        if c > 1 {
            self.row.process_with_scratch(buf, scratch);
        }
        if r > 1 {
            transpose::transpose(buf, tmp, c, r);
            self.col.process_with_scratch(tmp, scratch);
            transpose::transpose(tmp, buf, r, c);
        }
        fftshift2(buf, r, c, tmp);
    }
}

/// The 2-D FFT of a real kr x kc frame (fftshifted on both axes) computed only on the rows a
/// half-spectrum scratch keeps, in about half the work of [`Plans2::fft2_shift`]: the column
/// transforms run two real columns per complex FFT (z = x + i y gives X = (Z(k) + conj Z(-k))/2
/// and Y = (Z(k) - conj Z(-k))/2i), then only the kept rows get their row transform.
pub(crate) struct HalfPlans {
    kr: usize,
    kc: usize,
    col: Arc<dyn Fft<f32>>,
    row: Arc<dyn Fft<f32>>,
    /// Shifted row indices to compute.
    rows: Vec<usize>,
    scratch_len: usize,
}

impl HalfPlans {
    pub(crate) fn new(kr: usize, kc: usize, rows: Vec<usize>) -> HalfPlans {
        let mut pl = FftPlanner::<f32>::new();
        let col = pl.plan_fft_forward(kr);
        let row = pl.plan_fft_forward(kc);
        let scratch_len = row.get_inplace_scratch_len().max(col.get_inplace_scratch_len());
        HalfPlans { kr, kc, col, row, rows, scratch_len }
    }
    /// Transform `vals` (kr x kc, row-major) into the kept rows of `out` (kr x kc, shifted on
    /// both axes; other rows are left as they are).
    pub(crate) fn transform(
        &self,
        vals: &[f32],
        out: &mut [Complex32],
        z: &mut Vec<Complex32>,
        line: &mut Vec<Complex32>,
        scratch: &mut Vec<Complex32>,
    ) {
        let (kr, kc) = (self.kr, self.kc);
        let pairs = kc.div_ceil(2);
        z.clear();
        z.resize(pairs * kr, Complex32::default());
        scratch.resize(self.scratch_len, Complex32::default());
        // columns 2j and 2j+1 as one complex column, column-major [pairs][kr]
        for r in 0..kr {
            let row = &vals[r * kc..(r + 1) * kc];
            for j in 0..pairs {
                let y = if 2 * j + 1 < kc { row[2 * j + 1] } else { 0.0 };
                z[j * kr + r] = Complex32::new(row[2 * j], y);
            }
        }
        if kr > 1 {
            self.col.process_with_scratch(z, scratch);
        }
        line.resize(kc, Complex32::default());
        let half = Complex32::new(0.5, 0.0);
        let minus_half_i = Complex32::new(0.0, -0.5);
        for &s in &self.rows {
            let u = (s + kr - kr / 2) % kr; // unshifted frequency index
            let un = (kr - u) % kr;
            for j in 0..pairs {
                let (a, b) = (z[j * kr + u], z[j * kr + un].conj());
                line[2 * j] = (a + b) * half;
                if 2 * j + 1 < kc {
                    line[2 * j + 1] = (a - b) * minus_half_i;
                }
            }
            if kc > 1 {
                self.row.process_with_scratch(line, scratch);
            }
            // fftshift of the columns: out[(c + kc/2) % kc] = line[c]
            let o = &mut out[s * kc..(s + 1) * kc];
            let hc = kc / 2;
            o[hc..].copy_from_slice(&line[..kc - hc]);
            o[..hc].copy_from_slice(&line[kc - hc..]);
        }
    }
}

/// numpy.fft.fftshift over both axes: out[(i + r/2) % r][(j + c/2) % c] = in[i][j].
pub(crate) fn fftshift2(buf: &mut [Complex32], r: usize, c: usize, tmp: &mut Vec<Complex32>) {
    let (hr, hc) = (r / 2, c / 2);
    if hr == 0 && hc == 0 {
        return;
    }
    tmp.resize(r * c, Complex32::default());
    tmp.copy_from_slice(buf);
    for i in 0..r {
        let oi = (i + hr) % r;
        let src = &tmp[i * c..(i + 1) * c];
        let dst = &mut buf[oi * c..(oi + 1) * c];
        // dst[(j + hc) % c] = src[j]
        dst[hc..].copy_from_slice(&src[..c - hc]);
        dst[..hc].copy_from_slice(&src[c - hc..]);
    }
}

pub(crate) trait Px: Copy {
    fn f(self) -> f32;
}
impl Px for u8 {
    fn f(self) -> f32 {
        self as f32
    }
}
impl Px for u16 {
    fn f(self) -> f32 {
        self as f32
    }
}
impl Px for u32 {
    fn f(self) -> f32 {
        self as f32
    }
}

/// Crop + bin (sum) one frame into `out` (k rows x k cols).
pub(crate) fn crop_bin<T: Px>(frame: &[T], l: &Layout, out: &mut [f32]) {
    let [y0, x0, _, _] = l.det_box;
    let b = l.bin;
    let dc = l.det.1;
    let (kr, kc) = l.k;
    if b == 1 {
        for r in 0..kr {
            let src = &frame[(y0 + r) * dc + x0..(y0 + r) * dc + x0 + kc];
            for (o, &v) in out[r * kc..(r + 1) * kc].iter_mut().zip(src) {
                *o = v.f();
            }
        }
        return;
    }
    out.fill(0.0);
    for r in 0..kr * b {
        let orow = &mut out[(r / b) * kc..(r / b + 1) * kc];
        let src = &frame[(y0 + r) * dc + x0..(y0 + r) * dc + x0 + kc * b];
        for (j, &v) in src.iter().enumerate() {
            orow[j / b] += v.f();
        }
    }
}

/// Encode one cropped/binned frame into real scratch elements (a complex scratch is written by
/// [`HalfPlans::transform`] directly).
pub(crate) fn encode_frame(vals: &[f32], e: Elem, out: &mut [u8]) {
    match e {
        Elem::U16 => {
            for (o, &v) in out.chunks_exact_mut(2).zip(vals) {
                o.copy_from_slice(&(v as u16).to_le_bytes());
            }
        }
        Elem::F32 => {
            for (o, &v) in out.chunks_exact_mut(4).zip(vals) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        Elem::C32 => unreachable!("complex scratch elements come from HalfPlans::transform"),
    }
}

/// For each fftshifted frequency index q = y * cols + x, where [`Plans2::fft2_t`] left it.
pub(crate) fn shifted_sources(rows: usize, cols: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(rows * cols);
    for y in 0..rows {
        let uy = (y + rows - rows / 2) % rows;
        for x in 0..cols {
            let ux = (x + cols - cols / 2) % cols;
            v.push((ux * rows + uy) as u32);
        }
    }
    v
}

/// For each fftshifted frequency index q = y * cols + x, the index of -q.
pub(crate) fn mirrored_indices(rows: usize, cols: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(rows * cols);
    for y in 0..rows {
        for x in 0..cols {
            v.push((mirror(y, rows) * cols + mirror(x, cols)) as u32);
        }
    }
    v
}

/// Transpose `src` ([rows][cols]) into `dst` ([cols][rows]) on rayon, in cache-sized blocks.
pub(crate) fn transpose_par(src: &[Complex32], rows: usize, cols: usize, dst: &mut [Complex32]) {
    const SB: usize = 64;
    const PB: usize = 8;
    dst[..rows * cols].par_chunks_mut(SB * rows).enumerate().for_each(|(ci, d)| {
        let s0 = ci * SB;
        let sb = d.len() / rows;
        let mut p0 = 0;
        while p0 < rows {
            let p1 = (p0 + PB).min(rows);
            for k in 0..sb {
                let o = &mut d[k * rows + p0..k * rows + p1];
                for (i, v) in o.iter_mut().enumerate() {
                    *v = src[(p0 + i) * cols + s0 + k];
                }
            }
            p0 = p1;
        }
    });
}

/// One unit of a pass-2 group after the scan transform: its images Q-major.
pub(crate) struct UnitImages<'a> {
    /// [n][np]: row s holds every stored pixel at the frequency that sits at s in
    /// [`Plans2::fft2_t`]'s output (map with [`shifted_sources`]).
    pub(crate) qm: &'a [Complex32],
    pub(crate) np: usize,
    pub(crate) unit: &'a Unit,
    /// For each pixel of the direct tile, its index in the unit.
    pub(crate) idx_direct: Vec<u32>,
    /// For each pixel of the mirrored tile, the index of its mirror pixel.
    pub(crate) idx_mirrored: Vec<u32>,
}

/// Gather a group's transformed units into whole HDF5 chunks (Q row, Q col, K row, K col),
/// zero-padded at the edges: for each unit the chunks of its direct tile, then those of its
/// mirrored tile (conj G(-Q, -K)); and power[q] += sum over those K of |G(q, K)|^2.
pub(crate) fn assemble_chunks(
    l: &Layout,
    units: &[UnitImages],
    qsrc: &[u32],
    mq: &[u32],
    out: &mut Chunks,
    power: &mut [f64],
) {
    let [c0, c1, c2, c3] = l.chunk;
    let (qr, qc) = l.scan;
    let (ncr, ncc) = (qr.div_ceil(c0), qc.div_ceil(c1));
    let chunk_elems = c0 * c1 * c2 * c3;
    out.offsets.clear();
    let (tr, tc) = l.tiles();
    // (file order, unit, mirrored, Q block row, Q block col)
    let mut jobs: Vec<(usize, usize, bool, usize, usize)> = Vec::new();
    for (ui, u) in units.iter().enumerate() {
        for (t, m) in u.unit.tiles().zip([false, true]) {
            for a in 0..ncr {
                for b in 0..ncc {
                    jobs.push((((a * ncc + b) * tr * tc) + t, ui, m, a, b));
                }
            }
        }
    }
    // in file order: the writer then sends runs of neighbouring chunks in single writes
    jobs.sort_unstable_by_key(|j| j.0);
    for &(_, ui, m, a, b) in &jobs {
        let t = if m { units[ui].unit.mirrored.expect("a mirrored tile") } else { units[ui].unit.direct };
        let (kr0, kc0, _, _) = l.tile_rect(t);
        out.offsets.push([(a * c0) as u64, (b * c1) as u64, kr0 as u64, kc0 as u64]);
    }
    out.elems = chunk_elems;
    let data = out.data_mut(out.offsets.len() * chunk_elems);
    let partial: Vec<Vec<f32>> = data
        .par_chunks_mut(chunk_elems)
        .zip(jobs.par_iter())
        .map(|(buf, &(_, ui, m, a, bq))| {
            let mut pw = vec![0f32; c0 * c1];
            let u = &units[ui];
            let t = if m { u.unit.mirrored.expect("a mirrored job has a mirrored tile") } else { u.unit.direct };
            let idx = if m { &u.idx_mirrored } else { &u.idx_direct };
            let (_, _, h, w) = l.tile_rect(t);
            if h < c2 || w < c3 || (a + 1) * c0 > qr || (bq + 1) * c1 > qc {
                buf.fill(Complex32::default());
            }
            for i in 0..c0.min(qr - a * c0) {
                let qy = a * c0 + i;
                for j in 0..c1.min(qc - bq * c1) {
                    let q = qy * qc + bq * c1 + j;
                    let s = if m { qsrc[mq[q] as usize] } else { qsrc[q] } as usize;
                    let row = &u.qm[s * u.np..(s + 1) * u.np];
                    let dst = &mut buf[(i * c1 + j) * c2 * c3..(i * c1 + j + 1) * c2 * c3];
                    let mut acc = 0f32;
                    for kr in 0..h {
                        let d = &mut dst[kr * c3..kr * c3 + w];
                        let ix = &idx[kr * w..(kr + 1) * w];
                        if m {
                            for (o, &k) in d.iter_mut().zip(ix) {
                                *o = row[k as usize].conj();
                                acc += o.norm_sqr();
                            }
                        } else {
                            for (o, &k) in d.iter_mut().zip(ix) {
                                *o = row[k as usize];
                                acc += o.norm_sqr();
                            }
                        }
                    }
                    pw[i * c1 + j] = acc;
                }
            }
            pw
        })
        .collect();
    for (&(_, _, _, a, bq), pw) in jobs.iter().zip(&partial) {
        for i in 0..c0.min(qr - a * c0) {
            for j in 0..c1.min(qc - bq * c1) {
                power[(a * c0 + i) * qc + bq * c1 + j] += pw[i * c1 + j] as f64;
            }
        }
    }
}

/// Scratch unit [n][stride] of elements -> pixel-major complex [np][n], on rayon.
pub(crate) fn decode_transpose(src: &[u8], e: Elem, np: usize, stride: usize, n: usize, dst: &mut [Complex32]) {
    const PB: usize = 8;
    let es = e.size();
    dst[..np * n].par_chunks_mut(PB * n).enumerate().for_each(|(ci, d)| {
        const B: usize = 64;
        let pix0 = ci * PB;
        let npb = d.len() / n;
        let mut i0 = 0;
        while i0 < n {
            let i1 = (i0 + B).min(n);
            for p in 0..npb {
                let dd = &mut d[p * n + i0..p * n + i1];
                for (k, dv) in dd.iter_mut().enumerate() {
                    let o = ((i0 + k) * stride + pix0 + p) * es;
                    let s = &src[o..o + es];
                    *dv = match e {
                        Elem::U16 => Complex32::new(u16::from_le_bytes([s[0], s[1]]) as f32, 0.0),
                        Elem::F32 => Complex32::new(f32::from_le_bytes([s[0], s[1], s[2], s[3]]), 0.0),
                        Elem::C32 => Complex32::new(
                            f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                            f32::from_le_bytes([s[4], s[5], s[6], s[7]]),
                        ),
                    };
                }
            }
            i0 = i1;
        }
    });
}
