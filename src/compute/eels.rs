//! EELS kernels: frames of a spectrometer detector summed over their short axis into spectra
//! (one per scan position, channels along the long axis in stored order), energy-window maps,
//! mean spectra, channel binning and a line plot. Reads go block by block through
//! [`Dataset::read_positions`] (stored big-endian 16-bit frames through
//! [`Dataset::read_raw_positions`] without a decode copy) on the rayon pool, with at most half
//! the memory budget of frames in flight, like `compute::overview`.

use crate::compute::overview;
use crate::dataset::{Dataset, FrameBuf, ModeInfo, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use rayon::prelude::*;
use std::ops::Range;

/// How a frame becomes a spectrum: `channels` along the long axis (the columns when
/// `along_cols`), the other axis summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpectrumLayout {
    pub channels: usize,
    pub along_cols: bool,
    pub det_rows: usize,
    pub det_cols: usize,
}

impl SpectrumLayout {
    pub fn of(ds: &dyn Dataset) -> Self {
        let (det_rows, det_cols) = ds.det();
        let (channels, along_cols) = ModeInfo::spectrum_axis(det_rows, det_cols);
        SpectrumLayout { channels, along_cols, det_rows, det_cols }
    }
    /// Length of the summed (short) axis.
    pub fn short(&self) -> usize {
        if self.along_cols { self.det_rows } else { self.det_cols }
    }
}

/// Sum one decoded frame over its short axis into `acc` (`channels` values, added to).
fn sum_frame<T: Copy + Into<u64>>(f: &[T], l: &SpectrumLayout, acc: &mut [u64]) {
    let (r, c) = (l.det_rows, l.det_cols);
    if l.along_cols {
        for row in f.chunks_exact(c).take(r) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v.into();
            }
        }
    } else {
        for (a, row) in acc.iter_mut().zip(f.chunks_exact(c).take(r)) {
            *a += row.iter().map(|&v| v.into()).sum::<u64>();
        }
    }
}

/// Sum one stored big-endian 16-bit frame (channels along the columns) into `acc` (u32: exact
/// for up to 65537 rows).
fn sum_frame_be16(bytes: &[u8], cols: usize, acc: &mut [u32]) {
    // frames of a processed file start at even offsets: read them as u16 and swap in registers
    if let Ok(px) = bytemuck::try_cast_slice::<u8, u16>(bytes) {
        for row in px.chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += u16::from_be(v) as u32;
            }
        }
        return;
    }
    for row in bytes.chunks_exact(2 * cols) {
        for (a, px) in acc.iter_mut().zip(row.chunks_exact(2)) {
            *a += u16::from_be_bytes([px[0], px[1]]) as u32;
        }
    }
}

/// Per-worker buffers.
#[derive(Default)]
struct Work {
    buf: Option<FrameBuf>,
    scratch: ReadScratch,
    acc: Vec<u64>,
    acc32: Vec<u32>,
}

/// Spectra of `n` positions from `start` into `out` (`n * channels`); returns true when done
/// from the stored bytes.
fn block_raw(
    ds: &dyn Dataset,
    start: usize,
    n: usize,
    l: &SpectrumLayout,
    w: &mut Work,
    out: &mut [f32],
) -> Result<bool> {
    if !l.along_cols || l.det_rows > 65537 {
        return Ok(false);
    }
    let Work { scratch, acc32, .. } = w;
    let Some(raw) = ds.read_raw_positions(start, n, scratch)? else { return Ok(false) };
    if raw.pixel_type != crate::format::mib::PixelType::U16 {
        return Ok(false);
    }
    let npx = l.det_rows * l.det_cols;
    for (k, o) in out.chunks_exact_mut(l.channels).enumerate().take(n) {
        acc32.clear();
        acc32.resize(l.channels, 0);
        sum_frame_be16(raw.frame(k, npx), l.det_cols, acc32);
        for (o, &a) in o.iter_mut().zip(acc32.iter()) {
            *o = a as f32;
        }
    }
    Ok(true)
}

fn block_decoded(
    ds: &dyn Dataset,
    start: usize,
    n: usize,
    l: &SpectrumLayout,
    w: &mut Work,
    out: &mut [f32],
) -> Result<()> {
    let buf = w.buf.get_or_insert_with(|| FrameBuf::new(ds.info().pixel_type));
    ds.read_positions(start, n, buf, &mut w.scratch)?;
    let npx = l.det_rows * l.det_cols;
    for (k, o) in out.chunks_exact_mut(l.channels).enumerate().take(n) {
        w.acc.clear();
        w.acc.resize(l.channels, 0);
        crate::with_frames!(&*buf, v => sum_frame(&v[k * npx..(k + 1) * npx], l, &mut w.acc));
        for (o, &a) in o.iter_mut().zip(w.acc.iter()) {
            *o = a as f32;
        }
    }
    Ok(())
}

/// Spectra of positions `positions` into `out` (`positions.len() * channels` values, stored
/// channel order): each frame summed over its short axis. Positions without data are NaN.
/// Parallel on the rayon pool, at most half of `budget` of frames in flight; `progress` counts
/// positions and bytes and carries cancellation.
pub fn spectra(
    ds: &dyn Dataset,
    positions: Range<usize>,
    l: &SpectrumLayout,
    budget: u64,
    progress: &Progress,
    out: &mut [f32],
) -> Result<()> {
    let ch = l.channels;
    if out.len() != positions.len() * ch {
        return Err(Error::Invalid(format!("spectra: {} values for {} positions", out.len(), positions.len())));
    }
    let present = ds.positions_present();
    let block = overview::block_len(ds, budget, rayon::current_num_threads()).max(1);
    let frame_bytes = (ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64;
    out.par_chunks_mut(block * ch).enumerate().try_for_each_init(Work::default, |w, (i, o)| -> Result<()> {
        progress.check()?;
        let start = positions.start + i * block;
        let n = o.len() / ch;
        let have = present.saturating_sub(start).min(n);
        if have > 0 && !block_raw(ds, start, have, l, w, o)? {
            block_decoded(ds, start, have, l, w, o)?;
        }
        o[have * ch..].fill(f32::NAN);
        progress.add(n as u64, have as u64 * frame_bytes);
        Ok(())
    })
}

/// Per position: the sum over channels `window` (NaN where the position has no data).
pub fn window_map(si: &[f32], channels: usize, window: Range<usize>) -> Vec<f32> {
    si.par_chunks_exact(channels).map(|s| s[window.clone()].iter().map(|&v| v as f64).sum::<f64>() as f32).collect()
}

/// Mean spectrum over the scan rectangle `rows` x `cols` of a spectrum image with `scan_cols`
/// columns; positions without data (NaN) are left out. None when no position has data.
pub fn mean_spectrum(
    si: &[f32],
    scan_cols: usize,
    channels: usize,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Option<Vec<f32>> {
    let mut acc = vec![0f64; channels];
    let mut n = 0usize;
    for r in rows {
        for c in cols.clone() {
            let p = r * scan_cols + c;
            let Some(s) = si.get(p * channels..(p + 1) * channels) else { continue };
            if s.first().is_none_or(|v| v.is_nan()) {
                continue;
            }
            n += 1;
            for (a, &v) in acc.iter_mut().zip(s) {
                *a += v as f64;
            }
        }
    }
    (n > 0).then(|| acc.iter().map(|&a| (a / n as f64) as f32).collect())
}

/// Reverse the channel order of every spectrum in place.
pub fn reverse_channels(si: &mut [f32], channels: usize) {
    si.par_chunks_exact_mut(channels).for_each(|s| s.reverse());
}

/// Bin channels by `b` (the last partial bin dropped), each bin's sum multiplied by `scale`.
pub fn bin_channels(spectrum: &[f32], b: usize, scale: f32) -> Vec<f32> {
    spectrum.chunks_exact(b.max(1)).map(|c| (c.iter().map(|&v| v as f64).sum::<f64>() as f32) * scale).collect()
}

/// A line plot of `values` as `w` x `h` RGB pixels (white background, dark line, `log` scale
/// optional): the PNG of `emdtui eels --spectrum`.
pub fn plot_rgb(values: &[f32], w: usize, h: usize, log: bool) -> Vec<u8> {
    let mut rgb = vec![255u8; w * h * 3];
    let t = |v: f32| if log { (v.max(0.0) as f64 + 1.0).ln() } else { v as f64 };
    let finite: Vec<f64> = values.iter().filter(|v| v.is_finite()).map(|&v| t(v)).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if values.is_empty() || !lo.is_finite() || w < 2 || h < 2 {
        return rgb;
    }
    let span = (hi - lo).max(1e-12);
    let y_of = |v: f32| ((1.0 - (t(v) - lo) / span) * (h - 1) as f64).round().clamp(0.0, (h - 1) as f64) as usize;
    let mut prev: Option<usize> = None;
    for x in 0..w {
        let i = (x * values.len() / w).min(values.len() - 1);
        if !values[i].is_finite() {
            prev = None;
            continue;
        }
        let y = y_of(values[i]);
        let (a, b) = match prev {
            Some(p) => (p.min(y), p.max(y)),
            None => (y, y),
        };
        for yy in a..=b {
            let o = (yy * w + x) * 3;
            rgb[o..o + 3].copy_from_slice(&[20, 60, 160]);
        }
        prev = Some(y);
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_axis_sums_match_a_plain_loop() {
        // 3 x 5 frame: long axis = columns
        let f: Vec<u16> = (0..15).collect();
        let l = SpectrumLayout { channels: 5, along_cols: true, det_rows: 3, det_cols: 5 };
        let mut acc = vec![0u64; 5];
        sum_frame(&f, &l, &mut acc);
        assert_eq!(acc, vec![15, 18, 21, 24, 27]);
        let be: Vec<u8> = f.iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut a32 = vec![0u32; 5];
        sum_frame_be16(&be, 5, &mut a32);
        assert_eq!(a32, vec![15, 18, 21, 24, 27]);
        // 5 x 3 frame: long axis = rows
        let l = SpectrumLayout { channels: 5, along_cols: false, det_rows: 5, det_cols: 3 };
        let mut acc = vec![0u64; 5];
        sum_frame(&f, &l, &mut acc);
        assert_eq!(acc, vec![3, 12, 21, 30, 39]);
    }

    #[test]
    fn maps_means_and_bins() {
        let si = vec![1.0, 2.0, 3.0, f32::NAN, f32::NAN, f32::NAN, 5.0, 6.0, 7.0];
        let m = window_map(&si, 3, 1..3);
        assert_eq!((m[0], m[2]), (5.0, 13.0));
        assert!(m[1].is_nan());
        assert_eq!(mean_spectrum(&si, 3, 3, 0..1, 0..3), Some(vec![3.0, 4.0, 5.0]));
        assert_eq!(mean_spectrum(&si, 3, 3, 0..1, 1..2), None);
        assert_eq!(bin_channels(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, 0.5), vec![1.5, 3.5]);
        let mut s = vec![1.0, 2.0, 3.0, 4.0];
        reverse_channels(&mut s, 2);
        assert_eq!(s, vec![2.0, 1.0, 4.0, 3.0]);
    }
}
