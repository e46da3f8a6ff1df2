//! Scheduling the overview pass: blocks of positions sized by the memory budget on the pool,
//! the coarse pass first, partial results, extending to new frames, ROI means and sampling for
//! the geometry.

use super::geometry::{Geometry, auto_geometry, default_geometry, in_adf, in_bf};
use super::kernels::{Accumulator, Vals};
use super::{ComputeOptions, KernelTuning, Overviews};
use crate::compute::badpix::BadFix;
use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

impl Overviews {
    /// Empty results (all NaN) for a dataset.
    pub fn empty(ds: &dyn Dataset, geometry: &Geometry, with_mask: bool) -> Self {
        let s = ds.scan();
        let (dr, dc) = ds.det();
        let n = s.positions();
        Overviews {
            scan_rows: s.rows,
            scan_cols: s.cols,
            det_rows: dr,
            det_cols: dc,
            geometry: geometry.clone(),
            sum: vec![f32::NAN; n],
            bf: vec![f32::NAN; n],
            adf: vec![f32::NAN; n],
            com_x: vec![f32::NAN; n],
            com_y: vec![f32::NAN; n],
            mask: with_mask.then(|| vec![f32::NAN; n]),
            mean_dp: vec![0.0; dr * dc],
            max_dp: vec![0.0; dr * dc],
            positions_done: 0,
            complete: false,
        }
    }

    fn copy_vals(&mut self, first: usize, v: &Vals, n: usize, with_mask: bool) {
        let end = (first + n).min(self.sum.len());
        let m = end.saturating_sub(first);
        self.sum[first..end].copy_from_slice(&v.sum[..m]);
        self.bf[first..end].copy_from_slice(&v.bf[..m]);
        self.adf[first..end].copy_from_slice(&v.adf[..m]);
        self.com_x[first..end].copy_from_slice(&v.com_x[..m]);
        self.com_y[first..end].copy_from_slice(&v.com_y[..m]);
        if with_mask && let Some(mk) = self.mask.as_mut() {
            mk[first..end].copy_from_slice(&v.mask[..m]);
        }
    }

    fn set_patterns(&mut self, acc: &Accumulator) {
        self.mean_dp = acc.mean_pattern();
        self.max_dp = acc.dp_max.iter().map(|&v| v as f32).collect();
        if let Some(b) = &acc.bad {
            b.repair(&mut self.mean_dp);
            b.repair(&mut self.max_dp);
        }
    }
}

/// Bytes one frame occupies in flight while it is read and decoded (raw bytes + decoded pixels).
fn frame_cost(ds: &dyn Dataset) -> u64 {
    let px = (ds.frame_pixels() * ds.info().pixel_type.bytes()) as u64;
    // raw file bytes (payload + header) are about the decoded size; count both plus a margin
    2 * px + 1024
}

/// Positions per read block for `threads` workers within `budget` (half of it for frames in
/// flight, the rest for results, patterns and slack); about 256 KiB of raw + decoded frames per block (cache-sized; one 256x256 u16 frame).
pub fn block_len(ds: &dyn Dataset, budget: u64, threads: usize) -> usize {
    block_len_with(ds, budget, threads, KernelTuning::default().block_bytes)
}

/// [`block_len`] with a target block size of `block_bytes` instead of the default.
pub fn block_len_with(ds: &dyn Dataset, budget: u64, threads: usize, block_bytes: u64) -> usize {
    let cost = frame_cost(ds).max(1);
    let by_budget = budget / 2 / (threads.max(1) as u64 * cost);
    // small blocks stay in the CPU caches between the read, the decode and the kernel
    let target = block_bytes.max(1);
    // at least 4 frames: the kernels update the pattern sums once per group of 4 frames
    let by_size = (target / cost).max(4);
    by_budget.min(by_size).clamp(1, 4096) as usize
}

/// Stride `k` of the coarse pass: every k-th row and column, so that it reads at most ~3 % of the
/// positions and at most ~32 MiB.
pub fn coarse_stride(ds: &dyn Dataset) -> usize {
    let n = ds.positions_present().max(1) as f64;
    let by_frac = n * 0.03;
    let by_bytes = (32u64 << 20) as f64 / frame_cost(ds) as f64 * 2.0;
    let target = by_frac.min(by_bytes).max(1.0);
    ((n / target).sqrt().ceil() as usize).max(2)
}

/// Threads for the scattered single-frame reads of the coarse pass and the geometry estimate.
const IO_THREADS: usize = 8;

/// Shared state of a pass.
struct Shared {
    out: Overviews,
    last_partial: Instant,
}

/// How [`run_tasks`] reads and accumulates.
struct Pass<'a> {
    geometry: &'a Geometry,
    mask: Option<Arc<Vec<f32>>>,
    bad: Option<&'a Arc<BadFix>>,
    /// Values are exact: written into `shared.out` and counted in `positions_done`.
    exact: bool,
    on_partial: Option<&'a (dyn Fn(&Overviews) + Sync)>,
    /// Plain threads for scattered small reads instead of the rayon pool.
    io_threads: Option<usize>,
    raw_kernel: bool,
}

impl<'a> Pass<'a> {
    /// Sampled frames for their patterns only (no values kept).
    fn sample(geometry: &'a Geometry) -> Pass<'a> {
        Pass { geometry, mask: None, bad: None, exact: false, on_partial: None, io_threads: None, raw_kernel: true }
    }
}

/// Run read+accumulate over `tasks` (position ranges) on the rayon pool (or on `io_threads`
/// plain threads for scattered small reads), one worker per thread,
/// each reusing its frame buffer, read scratch and accumulator. Values are written into
/// `shared.out` (when `write`), `positions_done` counted when `exact`, and `on_partial` called at
/// most every 100 ms when given. Returns the merged accumulator (patterns of the frames read).
fn run_tasks(
    ds: &dyn Dataset,
    pass: &Pass,
    tasks: Tasks,
    shared: &Mutex<Shared>,
    progress: &Progress,
) -> Result<Accumulator> {
    let Pass { geometry, exact, on_partial, io_threads, raw_kernel, bad, .. } = *pass;
    let mask = pass.mask.clone();
    let (dr, dc) = ds.det();
    let pt = ds.info().pixel_type;
    let raw_bytes = frame_cost(ds) / 2;
    let threads = io_threads.unwrap_or_else(rayon::current_num_threads).min(tasks.len()).max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let err: Mutex<Option<Error>> = Mutex::new(None);
    let accs: Mutex<Vec<Accumulator>> = Mutex::new(Vec::new());
    let with_mask = mask.is_some();
    let worker = || {
        let mut buf = FrameBuf::new(pt);
        let mut scratch = ReadScratch::default();
        scratch.mib.scattered = matches!(tasks, Tasks::List(_));
        let mut acc = Accumulator::new(geometry, dr, dc, mask.clone()).with_bad(bad.cloned());
        let raw_ok = acc.takes_raw(pt) && raw_kernel;
        let r = (|| -> Result<()> {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((start, n)) = tasks.get(i) else {
                    return Ok(());
                };
                progress.check()?;
                // stored 16-bit frames go to the fused kernel without a decode copy
                let done = raw_ok
                    && match ds.read_raw_positions(start, n, &mut scratch)? {
                        Some(raw) => acc.compute_block_raw(&raw),
                        None => false,
                    };
                if !done {
                    ds.read_positions(start, n, &mut buf, &mut scratch)?;
                    acc.compute_block(&buf);
                }
                let mut sh = shared.lock().unwrap();
                sh.out.copy_vals(start, &acc.vals, n, with_mask);
                if exact {
                    sh.out.positions_done += n;
                }
                progress.add(n as u64, n as u64 * raw_bytes);
                if let Some(cb) = on_partial
                    && sh.last_partial.elapsed().as_millis() >= 100
                {
                    sh.last_partial = Instant::now();
                    cb(&sh.out);
                }
            }
        })();
        if let Err(e) = r {
            stop.store(true, Ordering::Relaxed);
            err.lock().unwrap().get_or_insert(e);
        }
        acc.flush_pending();
        accs.lock().unwrap().push(acc);
    };
    match io_threads {
        // many small scattered reads (coarse pass): more threads than cores keep the disk busy
        Some(_) => std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(worker);
            }
        }),
        None => rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| worker());
            }
        }),
    }
    if let Some(e) = err.into_inner().unwrap() {
        return Err(e);
    }
    let mut accs = accs.into_inner().unwrap().into_iter();
    let mut total = accs.next().unwrap_or_else(|| Accumulator::new(geometry, dr, dc, None).with_bad(bad.cloned()));
    for a in accs {
        total.merge_patterns(&a);
    }
    Ok(total)
}

/// Work items of a pass: an explicit list of position ranges, or contiguous blocks covering
/// `0..present` (computed on the fly, so a huge scan needs no task list).
enum Tasks<'a> {
    List(&'a [(usize, usize)]),
    /// Blocks of `block` positions covering `start..present`.
    Blocks {
        start: usize,
        present: usize,
        block: usize,
    },
}

impl Tasks<'_> {
    fn len(&self) -> usize {
        match self {
            Tasks::List(l) => l.len(),
            Tasks::Blocks { start, present, block } => present.saturating_sub(*start).div_ceil(*block),
        }
    }
    fn get(&self, i: usize) -> Option<(usize, usize)> {
        match self {
            Tasks::List(l) => l.get(i).copied(),
            Tasks::Blocks { start, present, block } => {
                let s = start.checked_add(i.checked_mul(*block)?)?;
                (s < *present).then(|| (s, (*block).min(present - s)))
            }
        }
    }
}

/// Positions of the coarse pass for stride `k`: the centre of every k x k block of the scan
/// (clamped into the scan), only those with data.
pub fn coarse_positions(rows: usize, cols: usize, present: usize, k: usize) -> Vec<usize> {
    let mut v = Vec::new();
    for br in 0..rows.div_ceil(k) {
        let r = (br * k + k / 2).min(rows - 1);
        for bc in 0..cols.div_ceil(k) {
            let c = (bc * k + k / 2).min(cols - 1);
            let p = r * cols + c;
            if p < present {
                v.push(p);
            }
        }
    }
    v
}

/// Fill every position with data of each k x k block with the value of the block's sample
/// (nearest-neighbour display of the coarse pass).
fn fill_coarse(out: &mut Overviews, present: usize, k: usize) {
    let (rows, cols) = (out.scan_rows, out.scan_cols);
    let fill = |v: &mut Vec<f32>| {
        for p in 0..present {
            let (r, c) = (p / cols, p % cols);
            let sr = ((r / k) * k + k / 2).min(rows - 1);
            let sc = ((c / k) * k + k / 2).min(cols - 1);
            let sp = sr * cols + sc;
            if sp != p && sp < present {
                v[p] = v[sp];
            }
        }
    };
    fill(&mut out.sum);
    fill(&mut out.bf);
    fill(&mut out.adf);
    fill(&mut out.com_x);
    fill(&mut out.com_y);
    if let Some(m) = out.mask.as_mut() {
        fill(m);
    }
}

/// Compute every overview in one pass over `ds`, in parallel on the rayon pool, with at most
/// `opts.memory_budget` bytes of frames in flight.
///
/// With `opts.coarse_first`, a coarse pass first reads the centre position of every k x k block
/// (k from [`coarse_stride`]: at most ~3 % of the positions and ~64 MiB) and `on_partial` gets a
/// snapshot where each block shows its sample's value (nearest neighbour; `positions_done` = 0,
/// `complete` = false, `mean_dp` = mean of the sampled frames). The exact pass then overwrites
/// the values block by block, calling `on_partial` at most every 100 ms (`positions_done` counts
/// exact positions). `on_partial` is called once more with the final result. Positions without
/// data stay NaN. `progress` counts frames read (total = coarse + exact frames) and bytes, and
/// carries cancellation (`Err(Cancelled)`).
pub fn compute(
    ds: &dyn Dataset,
    geometry: &Geometry,
    opts: &ComputeOptions,
    progress: &Progress,
    on_partial: &(dyn Fn(&Overviews) + Sync),
) -> Result<Overviews> {
    let (dr, dc) = ds.det();
    let mask = match &opts.mask {
        Some(m) if m.len() != dr * dc => {
            return Err(Error::Invalid(format!(
                "mask has {} values, the detector has {dr}x{dc} = {} pixels",
                m.len(),
                dr * dc
            )));
        }
        m => m.clone(),
    };
    let present = ds.positions_present();
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    let threads = rayon::current_num_threads();
    let block = block_len_with(ds, opts.memory_budget, threads, opts.kernel.block_bytes);
    let exact_tasks = Tasks::Blocks { start: 0, present, block: block.max(1) };
    let k = coarse_stride(ds);
    let coarse: Vec<(usize, usize)> = if opts.coarse_first && present > 0 && rows > 1 && cols > 1 {
        coarse_positions(rows, cols, present, k).into_iter().map(|p| (p, 1)).collect()
    } else {
        Vec::new()
    };
    progress.set_total((present + coarse.len()) as u64);
    let fix = bad_fix(opts, geometry, dr, dc);
    let shared =
        Mutex::new(Shared { out: Overviews::empty(ds, geometry, mask.is_some()), last_partial: Instant::now() });
    if !coarse.is_empty() {
        let pass = Pass {
            geometry,
            mask: mask.clone(),
            bad: fix.as_ref(),
            exact: false,
            on_partial: None,
            io_threads: Some(IO_THREADS),
            raw_kernel: opts.kernel.raw_kernel,
        };
        let acc = run_tasks(ds, &pass, Tasks::List(&coarse), &shared, progress)?;
        let mut sh = shared.lock().unwrap();
        fill_coarse(&mut sh.out, present, k);
        sh.out.set_patterns(&acc);
        on_partial(&sh.out);
        sh.last_partial = Instant::now();
    }
    let pass = Pass {
        geometry,
        mask: mask.clone(),
        bad: fix.as_ref(),
        exact: true,
        on_partial: Some(on_partial),
        io_threads: None,
        raw_kernel: opts.kernel.raw_kernel,
    };
    let acc = run_tasks(ds, &pass, exact_tasks, &shared, progress)?;
    let mut out = shared.into_inner().unwrap().out;
    out.set_patterns(&acc);
    out.positions_done = present;
    out.complete = present == ds.scan().positions();
    on_partial(&out);
    Ok(out)
}

/// The bad-pixel correction of `opts` for this geometry (None when there are no bad pixels).
fn bad_fix(opts: &ComputeOptions, g: &Geometry, dr: usize, dc: usize) -> Option<Arc<BadFix>> {
    bad_fix_for(opts.bad_pixels.as_deref()?, g, dr, dc)
}

/// The bad-pixel correction of the pixels `bad` for this geometry (None when there are none).
pub fn bad_fix_for(bad: &[usize], g: &Geometry, dr: usize, dc: usize) -> Option<Arc<BadFix>> {
    if bad.is_empty() {
        return None;
    }
    Some(Arc::new(BadFix::new(bad, dr, dc, |y, x| in_bf(g, y, x), |y, x| in_adf(g, y, x))))
}

/// Extend complete-so-far results `prev` (exact for positions `0..prev.positions_done`, computed
/// with `prev.geometry` and no mask) to every position present now: only the new frames are
/// read (a running acquisition). Patterns are merged (the mean weighted by frame counts).
pub fn extend(ds: &dyn Dataset, prev: Overviews, opts: &ComputeOptions, progress: &Progress) -> Result<Overviews> {
    let start = prev.positions_done;
    let present = ds.positions_present().min(ds.scan().positions());
    let (dr, dc) = ds.det();
    if present <= start
        || prev.mask.is_some()
        || (prev.scan_rows, prev.scan_cols) != (ds.scan().rows, ds.scan().cols)
        || (prev.det_rows, prev.det_cols) != (dr, dc)
    {
        return Ok(prev);
    }
    let geometry = prev.geometry.clone();
    let block = block_len_with(ds, opts.memory_budget, rayon::current_num_threads(), opts.kernel.block_bytes);
    let tasks = Tasks::Blocks { start, present, block: block.max(1) };
    progress.set_total((present - start) as u64);
    let (old_mean, old_max) = (prev.mean_dp.clone(), prev.max_dp.clone());
    let shared = Mutex::new(Shared { out: prev, last_partial: Instant::now() });
    let fix = bad_fix(opts, &geometry, dr, dc);
    let pass = Pass {
        geometry: &geometry,
        mask: None,
        bad: fix.as_ref(),
        exact: true,
        on_partial: None,
        io_threads: None,
        raw_kernel: opts.kernel.raw_kernel,
    };
    let acc = run_tasks(ds, &pass, tasks, &shared, progress)?;
    let mut out = shared.into_inner().expect("no worker panicked").out;
    let (n_old, n_new) = (start as f64, acc.frames as f64);
    out.mean_dp = old_mean
        .iter()
        .zip(&acc.dp_sum)
        .map(|(&m, &s)| ((m as f64 * n_old + s) / (n_old + n_new).max(1.0)) as f32)
        .collect();
    out.max_dp = old_max.iter().zip(&acc.dp_max).map(|(&m, &x)| m.max(x as f32)).collect();
    if let Some(f) = &fix {
        f.repair(&mut out.mean_dp);
        f.repair(&mut out.max_dp);
    }
    out.positions_done = present;
    out.complete = present == ds.scan().positions();
    Ok(out)
}

/// Mean diffraction pattern over the scan rectangle `rows` x `cols` (half-open ranges of scan
/// rows and columns). Positions without data are left out; Err when the rectangle is empty,
/// outside the scan, or has no data.
pub fn roi_mean(
    ds: &dyn Dataset,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    budget: u64,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let s = ds.scan();
    if rows.is_empty() || cols.is_empty() || rows.end > s.rows || cols.end > s.cols {
        return Err(Error::Invalid(format!(
            "ROI rows {}..{}, cols {}..{} is empty or outside the {}x{} scan",
            rows.start, rows.end, cols.start, cols.end, s.rows, s.cols
        )));
    }
    let present = ds.positions_present();
    let block = block_len(ds, budget, rayon::current_num_threads());
    let mut tasks = Vec::new();
    for r in rows.clone() {
        let a = r * s.cols + cols.start;
        let b = (r * s.cols + cols.end).min(present);
        let mut p = a;
        while p < b {
            let n = block.min(b - p);
            tasks.push((p, n));
            p += n;
        }
    }
    if tasks.is_empty() {
        return Err(Error::Invalid("ROI has no frames yet".into()));
    }
    progress.set_total(tasks.iter().map(|t| t.1 as u64).sum());
    let g = default_geometry(ds.det().0, ds.det().1);
    let shared = Mutex::new(Shared { out: Overviews::empty(ds, &g, false), last_partial: Instant::now() });
    let acc = run_tasks(ds, &Pass::sample(&g), Tasks::List(&tasks), &shared, progress)?;
    Ok(acc.mean_pattern())
}

/// Geometry from the found BF disk in the mean of up to `samples` frames spread evenly over the
/// scan (a quick look, a few MB of reads); [`default_geometry`] when no disk is found.
/// Returns the geometry and the sampled mean pattern.
pub fn estimate_geometry(ds: &dyn Dataset, samples: usize, progress: &Progress) -> Result<(Geometry, Vec<f32>)> {
    let (dr, dc) = ds.det();
    let present = ds.positions_present();
    if present == 0 {
        return Ok((default_geometry(dr, dc), vec![0.0; dr * dc]));
    }
    let n = samples.clamp(1, present);
    let tasks: Vec<(usize, usize)> = (0..n).map(|i| (i * present / n, 1)).collect();
    let g = default_geometry(dr, dc);
    let shared = Mutex::new(Shared { out: Overviews::empty(ds, &g, false), last_partial: Instant::now() });
    // every sample's read is queued at once (the disk serves them in parallel when cold), then
    // the pool's threads read them: no extra threads, whose setup would cost more than the
    // reads when the file is in the page cache
    for &(p, _) in &tasks {
        ds.prefetch(p);
    }
    let acc = run_tasks(ds, &Pass::sample(&g), Tasks::List(&tasks), &shared, progress)?;
    let mean = acc.mean_pattern();
    Ok((auto_geometry(&mean, dr, dc), mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_positions_are_block_centres() {
        let v = coarse_positions(10, 12, 120, 4);
        // block rows 0..3 (centres 2, 6, 9 clamped), block cols 0..3 (centres 2, 6, 10)
        assert_eq!(v, vec![26, 30, 34, 74, 78, 82, 110, 114, 118]);
        let v = coarse_positions(10, 12, 80, 4);
        assert_eq!(v, vec![26, 30, 34, 74, 78]);
    }
}
