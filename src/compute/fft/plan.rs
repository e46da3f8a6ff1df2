//! The layout of a run: detector box, K tiles, chunk shape, element type, budgets, disk space.

use super::types::{Elem, Layout};
use super::{FftAxes, FftParams, PASS2_BYTES_PER_ELEM, RunOptions};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::util::hs;
use std::path::Path;

/// Target chunk size in complex64 elements (128 KiB).
const CHUNK_ELEMS: f64 = 16384.0;

/// The detector box (unbinned) for the parameters.
fn det_box(det: (usize, usize), p: &FftParams) -> Result<[usize; 4]> {
    let b = p.bin.max(1);
    let (mut y0, mut x0, mut y1, mut x1) = (0usize, 0usize, det.0, det.1);
    if let Some(((cy, cx), r)) = p.crop {
        if !(r > 0.0) || !cy.is_finite() || !cx.is_finite() {
            return Err(Error::Invalid(format!("FFT crop: invalid centre ({cy}, {cx}) or radius {r}")));
        }
        y0 = (cy - r).floor().max(0.0) as usize;
        x0 = (cx - r).floor().max(0.0) as usize;
        y1 = ((cy + r).ceil() as isize + 1).clamp(0, det.0 as isize) as usize;
        x1 = ((cx + r).ceil() as isize + 1).clamp(0, det.1 as isize) as usize;
        if y0 >= y1 || x0 >= x1 {
            return Err(Error::Invalid(format!(
                "FFT crop: disk at ({cy}, {cx}) radius {r} lies outside the {}x{} detector",
                det.0, det.1
            )));
        }
    }
    let (h, w) = ((y1 - y0) / b * b, (x1 - x0) / b * b);
    if h == 0 || w == 0 {
        return Err(Error::Invalid(format!(
            "FFT: detector region {}x{} is smaller than the binning {b}",
            y1 - y0,
            x1 - x0
        )));
    }
    Ok([y0, x0, h, w])
}

pub(crate) fn make_layout(ds: &dyn Dataset, p: &FftParams, budget: u64, opts: &RunOptions) -> Result<Layout> {
    let scan = (ds.scan().rows, ds.scan().cols);
    let det = ds.det();
    if scan.0 == 0 || scan.1 == 0 {
        return Err(Error::Invalid(format!("{}: empty scan", ds.info().path.display())));
    }
    if p.bin == 0 {
        return Err(Error::Invalid("FFT: --bin must be at least 1".into()));
    }
    let bx = det_box(det, p)?;
    let k = (bx[2] / p.bin, bx[3] / p.bin);
    let elem = match p.axes {
        FftAxes::All => Elem::C32,
        FftAxes::Scan => {
            if p.bin == 1 && ds.info().pixel_type != crate::format::mib::PixelType::U32 {
                Elem::U16
            } else {
                Elem::F32
            }
        }
    };
    let n = scan.0 * scan.1;
    let kpix = k.0 * k.1;
    let chunk = if let Some(c) = opts.chunk {
        [c[0].clamp(1, scan.0), c[1].clamp(1, scan.1), c[2].clamp(1, k.0), c[3].clamp(1, k.1)]
    } else {
        // Reading a detector image at fixed Q touches qb^2 * K elements, a Q image at fixed K
        // touches kb^2 * Q elements; with qb^2 kb^2 = C, equal costs give qb^4 = C Q / K.
        let qb = (CHUNK_ELEMS * n as f64 / kpix as f64).powf(0.25).round().max(1.0) as usize;
        let kb = (CHUNK_ELEMS.sqrt() / qb as f64).round().max(1.0) as usize;
        // same number of chunks along each axis, with the least padding
        let even = |c: usize, n: usize| n.div_ceil(n.div_ceil(c.clamp(1, n)));
        [even(qb, scan.0), even(qb, scan.1), even(kb, k.0), even(kb, k.1)]
    };
    // a 4-D transform of real counts: store only what G(-Q, -K) = conj G(Q, K) needs
    let half = elem == Elem::C32;
    let mut l = Layout { scan, det, det_box: bx, bin: p.bin, k, chunk, elem, half };
    // one unit of K tiles (all Q) must fit the pass-2 budget: shrink the K chunk if not (a
    // unit of a symmetric run is two output tiles made from a little more than one stored one)
    let per_pix = (n * (elem.size() + PASS2_BYTES_PER_ELEM) * if half { 2 } else { 1 }) as u64;
    let avail = pass2_budget(budget, n);
    while (l.chunk[2] * l.chunk[3]) as u64 * per_pix > avail && l.chunk[2] * l.chunk[3] > 1 {
        if l.chunk[2] >= l.chunk[3] { l.chunk[2] -= 1 } else { l.chunk[3] -= 1 }
    }
    if opts.chunk.is_none() {
        l.chunk = direct_friendly(l.chunk, [scan.0, scan.1, k.0, k.1], l.chunk[2] * l.chunk[3]);
    }
    if per_pix > avail {
        return Err(Error::Invalid(format!(
            "FFT: memory budget {} too small: one detector pixel over the {}x{} scan needs {} (use --memory)",
            hs(budget),
            scan.0,
            scan.1,
            hs(per_pix + (budget - avail))
        )));
    }
    Ok(l)
}

/// The chunk shape near `c` (each side within 1/2 to 3/2 of it) whose byte size is a multiple
/// of 4 KiB, so that pass 2 can write it with O_DIRECT, with the least padded output and then
/// the size closest to `c`'s; `c` itself when no such shape exists. A K tile (the last two
/// sides) stays at most `max_k_tile` pixels, the most the pass-2 budget holds.
fn direct_friendly(c: [usize; 4], dims: [usize; 4], max_k_tile: usize) -> [usize; 4] {
    let elems = |c: &[usize; 4]| c.iter().product::<usize>();
    if elems(&c) * 8 % 4096 == 0 {
        return c;
    }
    let range = |i: usize| (c[i] / 2).max(1)..=(c[i] * 3 / 2 + 1).min(dims[i]);
    let padded = |c: &[usize; 4]| (0..4).map(|i| dims[i].div_ceil(c[i]) * c[i]).product::<usize>();
    let target = elems(&c) as f64;
    let mut best: Option<([usize; 4], usize, f64)> = None;
    for a in range(0) {
        for b in range(1) {
            for y in range(2) {
                for x in range(3) {
                    let cand = [a, b, y, x];
                    let e = elems(&cand);
                    if e * 8 % 4096 != 0 || y * x > max_k_tile {
                        continue;
                    }
                    let (pad, dist) = (padded(&cand), (e as f64 / target).ln().abs());
                    if best.is_none_or(|(_, bp, bd)| pad < bp || (pad == bp && dist < bd)) {
                        best = Some((cand, pad, dist));
                    }
                }
            }
        }
    }
    best.map(|b| b.0).unwrap_or(c)
}

/// Budget left for pass-2 group buffers after per-thread scratch.
pub(crate) fn pass2_budget(budget: u64, n: usize) -> u64 {
    let threads = rayon::current_num_threads() as u64;
    budget.saturating_sub(threads * n as u64 * 8 * 3) / 4 * 3
}

pub(crate) fn check_space(emd: &Path, need: u64, l: &Layout) -> Result<()> {
    if let Some(free) = crate::util::free_space_for(emd)
        && need > free
    {
        return Err(Error::Invalid(format!(
            "{}: not enough free disk space for the FFT: needs {} (output {} + scratch {}), {} free",
            emd.display(),
            hs(need),
            hs(l.output_bytes()),
            hs(l.scratch_bytes()),
            hs(free)
        )));
    }
    Ok(())
}
