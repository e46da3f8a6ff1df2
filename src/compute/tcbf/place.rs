//! Sample placement on a grid `up` times finer than the scan: the sample of scan position r seen
//! by a pixel with shift s is the reference at r - s, so it is shared bilinearly between the four
//! fine cells around r - s (fine cell f covers scan coordinate (f + 0.5) / up - 0.5); each cell is the
//! kernel-weighted mean of the samples around it (a Gaussian kernel density estimate: sums and
//! hit counts both blurred by a Gaussian of `sigma` fine cells, then divided; `sigma` 0 is the
//! plain mean of the cell's own samples); cells with no weight take the mean of their filled
//! neighbours.

use rayon::prelude::*;

/// Per image: for each scan row the first fine row and the weight of the next one (bilinear),
/// and the same for the columns.
type RowColMap = (Vec<(isize, f32)>, Vec<(isize, f32)>);

/// Fine-grid accumulator: sums and hit counts (8 bytes per fine cell).
pub(crate) struct Fine {
    pub(crate) up: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    sum: Vec<f32>,
    hits: Vec<f32>,
}

/// Fine coordinate of scan coordinate p split into the cell below and the weight of the next.
fn fine_split(p: f64, up: usize) -> (isize, f32) {
    let f = (p + 0.5) * up as f64 - 0.5;
    let f0 = f.floor();
    (f0 as isize, (f - f0) as f32)
}

impl Fine {
    pub(crate) fn new(rows: usize, cols: usize, up: usize) -> Fine {
        let n = rows * up * cols * up;
        Fine { up, rows, cols, sum: vec![0.0; n], hits: vec![0.0; n] }
    }
    /// Bytes held per fine cell.
    pub(crate) const BYTES_PER_CELL: u64 = 8;

    /// Place the images (rows x cols each) with their shifts (dy, dx): each sample is shared
    /// bilinearly between the four fine cells around r - s.
    pub(crate) fn place(&mut self, imgs: &[&[f32]], shifts: &[(f64, f64)]) {
        let (up, rows, cols) = (self.up, self.rows, self.cols);
        let fc = cols * up;
        let maps: Vec<RowColMap> = shifts
            .iter()
            .map(|&(sy, sx)| {
                (
                    (0..rows).map(|r| fine_split(r as f64 - sy, up)).collect(),
                    (0..cols).map(|c| fine_split(c as f64 - sx, up)).collect(),
                )
            })
            .collect();
        let band = up.max(1) * 4;
        self.sum.par_chunks_mut(band * fc).zip(self.hits.par_chunks_mut(band * fc)).enumerate().for_each(
            |(b, (sum, hits))| {
                let f0 = (b * band) as isize;
                let f1 = f0 + (sum.len() / fc) as isize;
                for (img, (rmap, cmap)) in imgs.iter().zip(&maps) {
                    for (r, &(y0, ty)) in rmap.iter().enumerate() {
                        let srow = &img[r * cols..(r + 1) * cols];
                        for (fy, wy) in [(y0, 1.0 - ty), (y0 + 1, ty)] {
                            if fy < f0 || fy >= f1 || wy <= 0.0 {
                                continue;
                            }
                            let off = (fy - f0) as usize * fc;
                            add_row(&mut sum[off..off + fc], &mut hits[off..off + fc], srow, cmap, wy);
                        }
                    }
                }
            },
        );
    }

    /// The (kernel-weighted) mean per cell, holes filled from their neighbours (NaN only when
    /// nothing was placed).
    pub(crate) fn finish(self, sigma: f64) -> Vec<f32> {
        let (fr, fc) = (self.rows * self.up, self.cols * self.up);
        let Fine { mut sum, mut hits, .. } = self;
        if sigma > 0.0 {
            sum = blur(&sum, fr, fc, sigma);
            hits = blur(&hits, fr, fc, sigma);
        }
        // weights below this are empty cells (a kernel tail, not a sample)
        let floor = if sigma > 0.0 { 1e-3 * hits.iter().fold(0f32, |a, &b| a.max(b)) } else { 0.0 };
        for (s, h) in sum.iter_mut().zip(hits.iter_mut()) {
            if *h > floor {
                *s /= *h;
                *h = 1.0;
            } else {
                *h = 0.0;
            }
        }
        // fill empty cells (hits 0) from known neighbours, ring by ring
        for _ in 0..(fr.max(fc)) {
            let empty: Vec<usize> = (0..fr * fc).filter(|&i| hits[i] == 0.0).collect();
            if empty.is_empty() {
                break;
            }
            let fills: Vec<(usize, f32)> = empty
                .par_iter()
                .filter_map(|&i| {
                    let (y, x) = (i / fc, i % fc);
                    let (mut s, mut n) = (0f32, 0f32);
                    for yy in y.saturating_sub(1)..(y + 2).min(fr) {
                        for xx in x.saturating_sub(1)..(x + 2).min(fc) {
                            if hits[yy * fc + xx] > 0.0 {
                                s += sum[yy * fc + xx];
                                n += 1.0;
                            }
                        }
                    }
                    (n > 0.0).then(|| (i, s / n))
                })
                .collect();
            if fills.is_empty() {
                break;
            }
            for (i, v) in fills {
                sum[i] = v;
                hits[i] = 1.0;
            }
        }
        for (s, h) in sum.iter_mut().zip(&hits) {
            if *h == 0.0 {
                *s = f32::NAN;
            }
        }
        sum
    }
}

/// Add one scan row's samples (weight `wy`) into a fine row, each split between two columns.
fn add_row(sum: &mut [f32], hits: &mut [f32], srow: &[f32], cmap: &[(isize, f32)], wy: f32) {
    let fc = sum.len() as isize;
    for (&v, &(x0, tx)) in srow.iter().zip(cmap) {
        for (fx, wx) in [(x0, 1.0 - tx), (x0 + 1, tx)] {
            if fx >= 0 && fx < fc && wx > 0.0 {
                let w = wy * wx;
                sum[fx as usize] += w * v;
                hits[fx as usize] += w;
            }
        }
    }
}

/// Separable Gaussian blur (zero outside), kernel truncated at 3 sigma.
fn blur(v: &[f32], rows: usize, cols: usize, sigma: f64) -> Vec<f32> {
    let h = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-h..=h).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    // blur every line of `len` values
    let lines = |src: &[f32], len: usize| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(len).zip(src.par_chunks(len)).for_each(|(o, line)| {
            for (pos, ov) in o.iter_mut().enumerate() {
                let mut acc = 0f32;
                for (j, &w) in k.iter().enumerate() {
                    let p = pos as isize + j as isize - h;
                    if p >= 0 && (p as usize) < len {
                        acc += w * line[p as usize];
                    }
                }
                *ov = acc;
            }
        });
        out
    };
    let a = lines(v, cols);
    let mut t = vec![0f32; a.len()];
    transpose::transpose(&a, &mut t, cols, rows);
    let b = lines(&t, rows);
    let mut out = vec![0f32; b.len()];
    transpose::transpose(&b, &mut out, rows, cols);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_at_r_minus_s() {
        let (rows, cols, up) = (4, 4, 2);
        let mut f = Fine::new(rows, cols, up);
        let img: Vec<f32> = (0..16).map(|i| i as f32).collect();
        // shift (0.5, 0): scan (r, c) -> coordinate (r - 0.5, c) -> fine row 2r - 1, col 2c + 0.5 -> round
        f.place(&[&img], &[(0.5, 0.0)]);
        let out = f.finish(0.0);
        let fc = cols * up;
        // scan (1, 1) = 5 lands at fine ((1 - 0.5 + 0.5) * 2 - 0.5, (1 + 0.5) * 2 - 0.5) = (1.5, 2.5),
        // shared between rows 1, 2 and columns 2, 3; cell (2, 3) gets nothing else
        assert_eq!(out[2 * fc + 3], 5.0);
        // fine rows 1, 2 hold only scan row 1 (at 1.5), columns 0, 1 only scan column 0 (at 0.5)
        assert_eq!(out[fc + 2], 5.0);
        assert_eq!(out[2 * fc], 4.0);
        assert_eq!(out[0], 0.0);
        // every cell is filled
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn hits_average_and_nothing_placed_is_nan() {
        let mut f = Fine::new(2, 2, 1);
        f.place(&[&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]], &[(0.0, 0.0), (0.0, 0.0)]);
        assert_eq!(f.finish(0.0), vec![2.0, 3.0, 4.0, 5.0]);
        let f = Fine::new(2, 2, 1);
        assert!(f.finish(0.0).iter().all(|v| v.is_nan()));
        // the kernel estimate keeps a constant constant and fills the cells between samples
        let mut f = Fine::new(4, 4, 4);
        let img = [3.0f32; 16];
        f.place(&[&img], &[(0.0, 0.0)]);
        let out = f.finish(1.0);
        assert!(out.iter().all(|v| (v - 3.0).abs() < 1e-5), "{out:?}");
    }
}
