//! Fused overview kernel for 16-bit frames read straight from a `.mib` (big-endian bytes, as
//! written for 12-bit counters): no decode copy, one pass per group of up to four frames.
//!
//! Per 16 pixels and frame: one load and byte swap in registers, two `madd` (row sum with ones,
//! x moment with the column ramp); per 16 pixels and group: one update of the pattern sum and
//! of the pattern maximum. Bright and dark field are sums over the precomputed column runs of
//! each row, while the row is in L1. `madd` works on signed 16-bit lanes, so the row sums and
//! moments hold only for values below 32768 (12-bit counters reach 4095); the kernel reports
//! when a value at or above it occurs, and the caller then recomputes those frames' sums and
//! moments with plain integer code. Pattern sums, maxima, BF and ADF never depend on it.

/// Per-frame results of the kernel (exact integers).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct FrameSums {
    pub sum: u64,
    /// Sum over rows of y * row sum.
    pub my: u64,
    /// Sum over pixels of x * value.
    pub mx: u64,
    pub bf: u64,
    pub adf: u64,
}

/// Whether [`group`] can run here for frames `cols` wide (AVX2; columns a multiple of 16 and at
/// most 512: a 32-bit lane of the x moment then sums at most 32767 * 512^2 / 16 < 2^31).
pub fn available(cols: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cols > 0 && cols.is_multiple_of(16) && cols <= 512 && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cols;
        false
    }
}

/// Sum of big-endian u16 values.
#[inline(always)]
fn sum_be(b: &[u8]) -> u64 {
    let mut s = 0u32;
    for c in b.chunks_exact(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    s as u64
}

/// Plain-integer sums and moments of one big-endian frame (the reference, and the fallback
/// for values of 32768 and above).
pub fn frame_sums_scalar(
    f: &[u8],
    rows: usize,
    cols: usize,
    bf_runs: &[(u32, u32, u32)],
    adf_runs: &[(u32, u32, u32)],
) -> FrameSums {
    let mut o = FrameSums::default();
    for y in 0..rows {
        let row = &f[y * cols * 2..(y + 1) * cols * 2];
        let mut rs = 0u64;
        for (x, c) in row.chunks_exact(2).enumerate() {
            let v = u16::from_be_bytes([c[0], c[1]]) as u64;
            rs += v;
            o.mx += x as u64 * v;
        }
        o.sum += rs;
        o.my += y as u64 * rs;
    }
    for &(y, x0, x1) in bf_runs {
        o.bf += sum_be(&f[(y as usize * cols + x0 as usize) * 2..(y as usize * cols + x1 as usize) * 2]);
    }
    for &(y, x0, x1) in adf_runs {
        o.adf += sum_be(&f[(y as usize * cols + x0 as usize) * 2..(y as usize * cols + x1 as usize) * 2]);
    }
    o
}

/// What a group of frames is added into: the pattern sums and maxima, and the detector runs
/// (row, first column, end column) of the bright field and the annulus.
pub struct Target<'a> {
    pub acc: &'a mut [u32],
    pub max: &'a mut [u16],
    pub bf_runs: &'a [(u32, u32, u32)],
    pub adf_runs: &'a [(u32, u32, u32)],
}

/// One pass over a group of `frames.len()` (1 to 4) frames of `rows` x `cols` big-endian u16
/// pixels: adds every frame into the pattern sums `acc` and maxima `max` (both `rows * cols`),
/// and writes each frame's sums to `out`. Returns false when some pixel is 32768 or more: then
/// `acc`, `max`, `bf` and `adf` are still right, `sum`, `my` and `mx` are not.
///
/// Panics unless [`available`]`(cols)` and the slices have the sizes above.
pub fn group(frames: &[&[u8]], (rows, cols): (usize, usize), t: &mut Target, out: &mut [FrameSums]) -> bool {
    assert!(available(cols), "kernel16 needs AVX2 and a width that is a multiple of 16");
    let npx = rows * cols;
    assert!(t.acc.len() >= npx && t.max.len() >= npx && out.len() >= frames.len());
    assert!(frames.iter().all(|f| f.len() >= npx * 2));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is present (checked by `available`) and every access stays inside the slices
    // (sizes asserted above; columns are a multiple of 16, so no 16-pixel load crosses a row end).
    unsafe {
        match frames.len() {
            1 => x86::group::<1>(frames, (rows, cols), t, out),
            2 => x86::group::<2>(frames, (rows, cols), t, out),
            3 => x86::group::<3>(frames, (rows, cols), t, out),
            4 => x86::group::<4>(frames, (rows, cols), t, out),
            n => panic!("kernel16 takes 1 to 4 frames, got {n}"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{FrameSums, Target, sum_be};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum_epi32(v: __m256i) -> u32 {
        // SAFETY: register-only AVX2/SSE intrinsics; callers run only where AVX2 was detected
        unsafe {
            let t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b01_00_11_10>(t));
            let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b10_11_00_01>(t));
            _mm_cvtsi128_si32(t) as u32
        }
    }

    #[inline(always)]
    unsafe fn hsum_epi64(v: __m256i) -> u64 {
        // SAFETY: register-only AVX2/SSE4.1 intrinsics; callers run only where AVX2 was detected
        unsafe {
            let t = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            (_mm_cvtsi128_si64(t) + _mm_extract_epi64::<1>(t)) as u64
        }
    }

    /// A run of detector pixels (row, first column, end column).
    type Run = (u32, u32, u32);

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn group<const G: usize>(
        frames: &[&[u8]],
        (rows, cols): (usize, usize),
        t: &mut Target,
        out: &mut [FrameSums],
    ) -> bool {
        let Target { acc, max, bf_runs, adf_runs } = t;
        let (acc, max): (&mut [u32], &mut [u16]) = (acc, max);
        let (bf_runs, adf_runs): (&[Run], &[Run]) = (bf_runs, adf_runs);
        let fp: [*const u8; G] = std::array::from_fn(|k| frames[k].as_ptr());
        let swap = _mm256_setr_epi8(
            1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14,
        );
        let ones = _mm256_set1_epi16(1);
        let lane = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut orv = _mm256_setzero_si256();
        let mut xm = [_mm256_setzero_si256(); G];
        let mut sums = [FrameSums::default(); G];
        let (mut ib, mut ia) = (0usize, 0usize);
        for y in 0..rows {
            let base = y * cols;
            let mut rs = [_mm256_setzero_si256(); G];
            let mut xs = [_mm256_setzero_si256(); G];
            let mut xb = 0;
            while xb < cols {
                // column index of each lane
                let ramp = _mm256_add_epi16(lane, _mm256_set1_epi16(xb as i16));
                let mut vmax = _mm256_setzero_si256();
                let mut lo = _mm256_setzero_si256();
                let mut hi = _mm256_setzero_si256();
                for k in 0..G {
                    // SAFETY: the caller guarantees cols is a multiple of 16 and each frame holds
                    // rows * cols big-endian u16, so (base + xb + 16) * 2 <= frame length
                    let v = unsafe { _mm256_loadu_si256(fp[k].add((base + xb) * 2) as *const __m256i) };
                    let v = _mm256_shuffle_epi8(v, swap);
                    orv = _mm256_or_si256(orv, v);
                    vmax = _mm256_max_epu16(vmax, v);
                    lo = _mm256_add_epi32(lo, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)));
                    hi = _mm256_add_epi32(hi, _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(v)));
                    rs[k] = _mm256_add_epi32(rs[k], _mm256_madd_epi16(v, ones));
                    xs[k] = _mm256_add_epi32(xs[k], _mm256_madd_epi16(v, ramp));
                }
                // SAFETY: acc and max hold rows * cols elements (checked by the caller), and
                // base + xb + 16 <= rows * cols; unaligned loads/stores of 32 bytes
                unsafe {
                    let ap = acc.as_mut_ptr().add(base + xb) as *mut __m256i;
                    _mm256_storeu_si256(ap, _mm256_add_epi32(_mm256_loadu_si256(ap), lo));
                    _mm256_storeu_si256(ap.add(1), _mm256_add_epi32(_mm256_loadu_si256(ap.add(1)), hi));
                    let mp = max.as_mut_ptr().add(base + xb) as *mut __m256i;
                    _mm256_storeu_si256(mp, _mm256_max_epu16(_mm256_loadu_si256(mp), vmax));
                }
                xb += 16;
            }
            for k in 0..G {
                // SAFETY: register-only; this function runs only where AVX2 was detected
                let r = unsafe { hsum_epi32(rs[k]) } as u64;
                sums[k].sum += r;
                sums[k].my += y as u64 * r;
                let x = xs[k];
                let w = _mm256_add_epi64(
                    _mm256_cvtepi32_epi64(_mm256_castsi256_si128(x)),
                    _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(x)),
                );
                xm[k] = _mm256_add_epi64(xm[k], w);
            }
            // detector runs of this row, while it is in L1
            while let Some(&(ry, x0, x1)) = bf_runs.get(ib) {
                if ry as usize != y {
                    break;
                }
                for k in 0..G {
                    sums[k].bf += sum_be(&frames[k][(base + x0 as usize) * 2..(base + x1 as usize) * 2]);
                }
                ib += 1;
            }
            while let Some(&(ry, x0, x1)) = adf_runs.get(ia) {
                if ry as usize != y {
                    break;
                }
                for k in 0..G {
                    sums[k].adf += sum_be(&frames[k][(base + x0 as usize) * 2..(base + x1 as usize) * 2]);
                }
                ia += 1;
            }
        }
        for k in 0..G {
            // SAFETY: register-only; this function runs only where AVX2 was detected
            sums[k].mx = unsafe { hsum_epi64(xm[k]) };
            out[k] = sums[k];
        }
        _mm256_movemask_epi8(_mm256_srai_epi16::<15>(orv)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_be(n: usize, rows: usize, cols: usize, seed: u64, maxv: u32) -> Vec<Vec<u8>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..rows * cols)
                    .flat_map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (((s >> 33) as u32 % (maxv + 1)) as u16).to_be_bytes()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn group_equals_the_scalar_reference() {
        if !available(16) {
            eprintln!("no AVX2: kernel16 not testable here");
            return;
        }
        for (rows, cols, maxv) in
            [(4usize, 16usize, 4095u32), (7, 48, 4095), (32, 32, 32767), (5, 64, 65535), (3, 512, 32767)]
        {
            let keep = |v: Vec<(u32, u32, u32)>| -> Vec<(u32, u32, u32)> {
                v.into_iter().filter(|r| (r.0 as usize) < rows).collect()
            };
            let bf = keep(vec![(1u32, 3u32, 9u32), (2, 0, 16), (3, 15, 16)]);
            let adf = keep(vec![(0u32, 0u32, 5u32), (0, 10, 16), (4, 1, 2)]);
            for g in 1..=4 {
                let fr = frames_be(g, rows, cols, (rows * 31 + g) as u64, maxv);
                let refs: Vec<&[u8]> = fr.iter().map(|f| f.as_slice()).collect();
                let mut acc = vec![7u32; rows * cols];
                let mut mx = vec![3u16; rows * cols];
                let mut out = vec![FrameSums::default(); g];
                let t = &mut Target { acc: &mut acc, max: &mut mx, bf_runs: &bf, adf_runs: &adf };
                let ok = group(&refs, (rows, cols), t, &mut out);
                let big = fr.iter().any(|f| f.chunks(2).any(|c| u16::from_be_bytes([c[0], c[1]]) >= 32768));
                assert_eq!(ok, !big, "{rows}x{cols} max {maxv}: reports values of 32768 and above");
                for (k, f) in fr.iter().enumerate() {
                    let r = frame_sums_scalar(f, rows, cols, &bf, &adf);
                    assert_eq!((out[k].bf, out[k].adf), (r.bf, r.adf), "bf/adf {rows}x{cols} g={g} k={k}");
                    if ok {
                        assert_eq!(out[k], r, "{rows}x{cols} g={g} frame {k}");
                    }
                }
                for i in 0..rows * cols {
                    let vals: Vec<u32> =
                        fr.iter().map(|f| u16::from_be_bytes([f[2 * i], f[2 * i + 1]]) as u32).collect();
                    assert_eq!(acc[i], 7 + vals.iter().sum::<u32>(), "pattern sum at {i}");
                    assert_eq!(mx[i] as u32, (*vals.iter().max().unwrap()).max(3), "pattern max at {i}");
                }
            }
        }
    }
}
