//! What an FFT run will need, without running it: the sizes of its datasets and scratch from the
//! layout the run would use, the memory of its large buffers at the budget, and the timing of a
//! short sample through the real pass-1 decode and pass-2 transform kernels.

use super::FftParams;
use super::kernels::Plans2;
use super::plan::{make_layout, pass2_budget};
use crate::dataset::Dataset;
use crate::error::Result;
use num_complex::Complex32;
use rayon::prelude::*;
use std::time::Instant;

/// The datasets, scratch and memory of an FFT run (bytes).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FftNeeds {
    /// (Q rows, Q cols, K rows, K cols) of `fft_complex/data`.
    pub shape: [usize; 4],
    pub chunk: [usize; 4],
    /// `fft_complex/data`: every chunk is allocated, the padding of edge chunks included.
    pub complex_bytes: u64,
    /// `fft_power/data` (float32, Q rows x Q cols).
    pub power_bytes: u64,
    /// Pass 1's scratch (a file next to the EMD unless it stays in memory).
    pub scratch_bytes: u64,
    /// The scratch fits half the budget (with room for pass 2): no scratch file.
    pub scratch_in_memory: bool,
    /// The run's large buffers at their largest: pass 1's read blocks or pass 2's groups, the
    /// per-thread transform scratch, and the scratch when it stays in memory.
    pub memory_bytes: u64,
    /// Scan positions (frames pass 1 reads).
    pub positions: usize,
    /// 2-D scan transforms pass 2 runs (stored K pixels).
    pub transforms: usize,
}

/// The needs of the FFT of `ds` with `params` at the memory budget `budget`.
pub fn needs(ds: &dyn Dataset, params: &FftParams, budget: u64) -> Result<FftNeeds> {
    let l = make_layout(ds, params, budget, &Default::default())?;
    let in_memory = super::run::scratch_in_memory(&l, budget, &Default::default());
    let units = l.units();
    let n = l.n();
    let budget_left = if in_memory { budget.saturating_sub(l.scratch_bytes()) } else { budget };
    let src_px = ds.frame_pixels() * ds.info().pixel_type.bytes();
    let pass1 = super::pass1::buffer_bytes(&l, src_px, budget_left);
    let todo: u64 = units.iter().map(|u| super::pass2::unit_bytes(&l, u)).sum();
    let group = pass2_budget(budget_left, n).min(todo.div_ceil(32).max(16 << 20)).min(todo);
    let per_thread = rayon::current_num_threads() as u64 * n as u64 * 8 * 3;
    let scratch_mem = if in_memory { l.scratch_bytes() } else { 0 };
    Ok(FftNeeds {
        shape: [l.scan.0, l.scan.1, l.k.0, l.k.1],
        chunk: l.chunk,
        complex_bytes: l.output_bytes(),
        power_bytes: (n * 4) as u64,
        scratch_bytes: l.scratch_bytes(),
        scratch_in_memory: in_memory,
        memory_bytes: scratch_mem + pass1.max(group + per_thread),
        positions: n,
        transforms: units.iter().map(|u| u.pixels.len()).sum(),
    })
}

/// A short measured sample of an FFT run's compute.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleTiming {
    /// Frames read, cropped/binned (and for a 4-D transform transformed) through pass 1's decode.
    pub frames: usize,
    pub decode_seconds: f64,
    /// Bytes of the source those frames hold.
    pub bytes_read: u64,
    /// 2-D scan transforms (of the run's scan size) timed on the worker threads.
    pub transforms: usize,
    pub transform_seconds: f64,
}

/// Time `frames` positions (from the middle of the scan) through pass 1's read and decode, and
/// as many 2-D scan transforms as take about the same work through pass 2's kernel.
pub fn sample_timing(ds: &dyn Dataset, params: &FftParams, budget: u64, frames: usize) -> Result<SampleTiming> {
    let l = make_layout(ds, params, budget, &Default::default())?;
    let present = ds.positions_present().min(l.n());
    let count = frames.clamp(1, present.max(1)).min(present);
    let start = (present - count) / 2;
    let decode_seconds = if count == 0 { 0.0 } else { super::pass1::time_decode(ds, &l, start, count)? };
    let bytes_read = (count * ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64;
    // enough transforms for a measurable time (at least the threads, about 2^22 elements)
    let n = l.n();
    let planes = ((1usize << 22) / n.max(1)).clamp(rayon::current_num_threads().max(1), 4096);
    let plans = Plans2::new(l.scan.0, l.scan.1);
    let mut buf = vec![Complex32::new(1.0, 0.5); planes * n];
    let t = Instant::now();
    buf.par_chunks_mut(n).for_each_init(|| (Vec::new(), Vec::new()), |(tmp, scr), p| plans.fft2_shift(p, tmp, scr));
    let transform_seconds = t.elapsed().as_secs_f64();
    Ok(SampleTiming { frames: count, decode_seconds, bytes_read, transforms: planes, transform_seconds })
}
