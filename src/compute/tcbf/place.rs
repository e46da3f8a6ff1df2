//! Sample placement on a grid `up` times finer than the scan: the sample of scan position r seen
//! by a pixel with shift s is the reference at r - s, so it lands in the fine cell nearest to
//! r - s (fine cell f covers scan coordinate (f + 0.5) / up - 0.5); each cell is the mean of its
//! samples; cells no sample reached take the mean of their filled neighbours.

use rayon::prelude::*;

/// Per image: the fine row of each scan row and the fine column of each scan column.
type RowColMap = (Vec<Option<usize>>, Vec<Option<usize>>);

/// Fine-grid accumulator: sums and hit counts (8 bytes per fine cell).
pub(crate) struct Fine {
    pub(crate) up: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    sum: Vec<f32>,
    hits: Vec<f32>,
}

/// Fine index of scan coordinate p (None outside the grid of n fine cells).
fn fine_index(p: f64, up: usize, n: usize) -> Option<usize> {
    let f = ((p + 0.5) * up as f64 - 0.5).round();
    (f >= 0.0 && f < n as f64).then_some(f as usize)
}

impl Fine {
    pub(crate) fn new(rows: usize, cols: usize, up: usize) -> Fine {
        let n = rows * up * cols * up;
        Fine { up, rows, cols, sum: vec![0.0; n], hits: vec![0.0; n] }
    }
    /// Bytes held per fine cell.
    pub(crate) const BYTES_PER_CELL: u64 = 8;

    /// Place the images (rows x cols each) with their shifts (dy, dx).
    pub(crate) fn place(&mut self, imgs: &[&[f32]], shifts: &[(f64, f64)]) {
        let (up, rows, cols) = (self.up, self.rows, self.cols);
        let fc = cols * up;
        let fr = rows * up;
        // per image: the fine row of each scan row and the fine column of each scan column
        let maps: Vec<RowColMap> = shifts
            .iter()
            .map(|&(sy, sx)| {
                (
                    (0..rows).map(|r| fine_index(r as f64 - sy, up, fr)).collect(),
                    (0..cols).map(|c| fine_index(c as f64 - sx, up, fc)).collect(),
                )
            })
            .collect();
        let band = up.max(1) * 4;
        self.sum.par_chunks_mut(band * fc).zip(self.hits.par_chunks_mut(band * fc)).enumerate().for_each(
            |(b, (sum, hits))| {
                let f0 = b * band;
                let f1 = f0 + sum.len() / fc;
                for (img, (rmap, cmap)) in imgs.iter().zip(&maps) {
                    for (r, fy) in rmap.iter().enumerate() {
                        let Some(fy) = *fy else { continue };
                        if fy < f0 || fy >= f1 {
                            continue;
                        }
                        let srow = &img[r * cols..(r + 1) * cols];
                        let off = (fy - f0) * fc;
                        for (&v, fx) in srow.iter().zip(cmap) {
                            if let Some(fx) = *fx {
                                sum[off + fx] += v;
                                hits[off + fx] += 1.0;
                            }
                        }
                    }
                }
            },
        );
    }

    /// The mean per cell, holes filled from their neighbours (NaN only when nothing was placed).
    pub(crate) fn finish(self) -> Vec<f32> {
        let (fr, fc) = (self.rows * self.up, self.cols * self.up);
        let Fine { mut sum, mut hits, .. } = self;
        for (s, h) in sum.iter_mut().zip(hits.iter_mut()) {
            if *h > 0.0 {
                *s /= *h;
                *h = 1.0;
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
        let out = f.finish();
        let fc = cols * up;
        // scan (1, 1) = 5 lands at fine ((1 - 0.5 + 0.5) * 2 - 0.5, (1 + 0.5) * 2 - 0.5) = (1.5, 2.5),
        // rounded half away from zero: (2, 3)
        assert_eq!(out[2 * fc + 3], 5.0);
        // every cell is filled
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn hits_average_and_nothing_placed_is_nan() {
        let mut f = Fine::new(2, 2, 1);
        f.place(&[&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]], &[(0.0, 0.0), (0.0, 0.0)]);
        assert_eq!(f.finish(), vec![2.0, 3.0, 4.0, 5.0]);
        let f = Fine::new(2, 2, 1);
        assert!(f.finish().iter().all(|v| v.is_nan()));
    }
}
