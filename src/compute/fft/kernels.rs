//! Transform kernels shared by the out-of-core passes and the in-memory FFT: 2-D FFT plans with
//! fftshift, crop + bin of frames, scratch element encoding, chunk assembly.

use super::{Elem, Layout};
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

/// Encode one cropped/binned frame (f32, or complex for All) into scratch elements.
pub(crate) fn encode_frame(vals: &[f32], cvals: &[Complex32], e: Elem, out: &mut [u8]) {
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
        Elem::C32 => {
            for (o, v) in out.chunks_exact_mut(8).zip(cvals) {
                o[..4].copy_from_slice(&v.re.to_le_bytes());
                o[4..].copy_from_slice(&v.im.to_le_bytes());
            }
        }
    }
}

/// Gather the pixel-major transformed images of a group into whole HDF5 chunks
/// (Q row, Q col, K row, K col), zero-padded at the edges.
pub(crate) fn assemble_chunks(
    l: &Layout,
    offs: &[usize],
    grp: &[usize],
    p0: usize,
    g: &[Complex32],
    out: &mut super::pass2::Chunks,
    tmp: &mut Vec<Complex32>,
) {
    let n = l.n();
    let [c0, c1, c2, c3] = l.chunk;
    let (qr, qc) = l.scan;
    let (ncr, ncc) = (qr.div_ceil(c0), qc.div_ceil(c1));
    let chunk_elems = c0 * c1 * c2 * c3;
    out.offsets.clear();
    for &t in grp {
        let (kr0, kc0, _, _) = l.tile_rect(t);
        for a in 0..ncr {
            for b in 0..ncc {
                out.offsets.push([(a * c0) as u64, (b * c1) as u64, kr0 as u64, kc0 as u64]);
            }
        }
    }
    out.elems = chunk_elems;
    // padding must be zero: only grow with zeros, and clear edge chunks below
    out.data.resize(out.offsets.len() * chunk_elems, Complex32::default());
    let per_tile = ncr * ncc;
    for (ti, &t) in grp.iter().enumerate() {
        let (_, _, h, w) = l.tile_rect(t);
        let np = h * w;
        let base = (offs[t] - p0) * n; // pixel-major images of this tile: [np][n]
        // Q-major copy of the tile, [n][np]: each (q, K row) is then a contiguous run
        tmp.resize(np * n, Complex32::default());
        transpose::transpose(&g[base..base + np * n], &mut tmp[..np * n], n, np);
        let qm = &tmp[..np * n];
        out.data[ti * per_tile * chunk_elems..(ti + 1) * per_tile * chunk_elems]
            .par_chunks_mut(chunk_elems)
            .enumerate()
            .for_each(|(ci, buf)| {
                let (a, bq) = (ci / ncc, ci % ncc);
                if h < c2 || w < c3 || (a + 1) * c0 > qr || (bq + 1) * c1 > qc {
                    buf.fill(Complex32::default());
                }
                for i in 0..c0.min(qr - a * c0) {
                    let qy = a * c0 + i;
                    for j in 0..c1.min(qc - bq * c1) {
                        let q = qy * qc + bq * c1 + j;
                        let src = &qm[q * np..(q + 1) * np];
                        let dst = &mut buf[(i * c1 + j) * c2 * c3..(i * c1 + j + 1) * c2 * c3];
                        for kr in 0..h {
                            dst[kr * c3..kr * c3 + w].copy_from_slice(&src[kr * w..(kr + 1) * w]);
                        }
                    }
                }
            });
    }
}

/// Scratch tile [n][np] of elements -> pixel-major complex [np][n].
pub(crate) fn decode_transpose(src: &[u8], e: Elem, np: usize, n: usize, dst: &mut [Complex32]) {
    let es = e.size();
    const B: usize = 64;
    let mut i0 = 0;
    while i0 < n {
        let i1 = (i0 + B).min(n);
        for p in 0..np {
            let d = &mut dst[p * n + i0..p * n + i1];
            for (k, dv) in d.iter_mut().enumerate() {
                let o = ((i0 + k) * np + p) * es;
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
}
