//! Pass 1: the dataset in scan order -> K-tile-major scratch file, with the detector crop/bin
//! (and, for `All`, the detector-axes FFT) applied per frame.

use super::FftReport;
use super::kernels::{HalfPlans, crop_bin, encode_frame};
use super::types::{Elem, Layout, ScratchState, ScratchStore, Unit, write_state};
use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::Result;
use crate::jobs::Progress;
use crate::util::AlignedBuf;
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// The scratch store and, for a file, its state file.
pub(crate) struct ScratchIo<'a> {
    pub(crate) store: &'a ScratchStore,
    pub(crate) path: &'a Path,
    pub(crate) state_path: &'a Path,
    pub(crate) key_s: &'a str,
    /// Print phase timings on stderr.
    pub(crate) timing: bool,
}

/// Read positions `start..` of `ds`, crop/bin (and for `All` transform) each frame, and write
/// them K-tile-major into the scratch file (tile t holds [positions][tile pixels]); the state
/// file records how far it got, every 2 s and at the end.
pub(crate) fn pass1(
    ds: &dyn Dataset,
    l: &Layout,
    io: &ScratchIo<'_>,
    start: usize,
    budget: u64,
    progress: &Progress,
    rep: &mut FftReport,
) -> Result<()> {
    let n = l.n();
    let kpix = l.kpix();
    let es = l.elem.size();
    let src_px = ds.frame_pixels() * ds.info().pixel_type.bytes();
    let frame_bytes = kpix * es;
    let units = l.units();
    let offs = Layout::unit_offsets(&units);
    let slots = offs[units.len()];
    let (b, sub) = block_len(l, src_px, slots, budget);
    // the stored pixels of each unit as runs (first frame pixel, length, first slot)
    let runs: Vec<Vec<(usize, usize, usize)>> = units.iter().map(|u| pixel_runs(&u.pixels)).collect();
    let plans = half_plans(l, &units);
    let states = thread_states(ds, kpix);
    let mut frames = AlignedBuf::new(b * frame_bytes);
    // Two unit-major buffers: the writer thread writes one block to the scratch file while the
    // next block is read and decoded (zeroed once: padding slots are never written).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(AlignedBuf, usize, usize)>(0);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<AlignedBuf>();
    for _ in 0..if io.store.in_memory() { 0 } else { 2 } {
        back_tx.send(AlignedBuf::new(b * slots * es)).unwrap();
    }
    let (sf, scratch_path, state_path, key_s) = (io.store, io.path, io.state_path, io.key_s);
    let offs = &offs;
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(move || -> Result<u64> {
            let mut written = 0u64;
            let mut last_state = Instant::now();
            for (tiles, p, cnt) in rx {
                // one write per unit: unit u, positions p..p+cnt
                let mut pos = 0;
                for u in 0..offs.len() - 1 {
                    let np = offs[u + 1] - offs[u];
                    let len = np * cnt * es;
                    let off = ((offs[u] * n + p * np) * es) as u64;
                    sf.write_at(&tiles[pos..pos + len], off, scratch_path)?;
                    pos += len;
                }
                if !sf.in_memory() {
                    written += (cnt * slots * es) as u64;
                }
                if !sf.in_memory() && (last_state.elapsed().as_secs_f64() > 2.0 || p + cnt == n) {
                    write_state(
                        state_path,
                        &ScratchState { key: key_s.to_string(), positions_done: p + cnt, tiles_done: 0 },
                    )?;
                    last_state = Instant::now();
                }
                let _ = back_tx.send(tiles);
            }
            Ok(written)
        });
        let r = (|| -> Result<()> {
            let mut p = start;
            let (mut t_decode, mut t_scatter) = (0f64, 0f64);
            while p < n {
                progress.check()?;
                let cnt = (n - p).min(b);
                let fr = &mut frames[..cnt * frame_bytes];
                let t0 = Instant::now();
                decode_block(ds, l, plans.as_ref(), &states, p, sub, fr)?;
                rep.input_bytes_read += (cnt * src_px) as u64;
                t_decode += t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                let fr = &frames[..cnt * frame_bytes];
                if let ScratchStore::Mem(m) = sf {
                    // in memory: scatter straight into the store, no writer
                    let mut v = m.lock().expect("scratch lock");
                    let jobs = unit_regions(&mut v, offs, &runs, cnt * es, |u, np| (offs[u] * n + p * np) * es);
                    scatter(jobs, fr, cnt, frame_bytes, es);
                } else {
                    let Ok(mut tiles) = back_rx.recv() else { break };
                    let jobs = unit_regions(&mut tiles, offs, &runs, cnt * es, |u, _| offs[u] * cnt * es);
                    scatter(jobs, fr, cnt, frame_bytes, es);
                    if tx.send((tiles, p, cnt)).is_err() {
                        break; // writer failed; its error is reported below
                    }
                }
                p += cnt;
                t_scatter += t0.elapsed().as_secs_f64();
                progress.add(cnt as u64, (cnt * src_px) as u64);
            }
            print_timing(io.timing, t_decode, t_scatter);
            Ok(())
        })();
        drop(tx);
        rep.scratch_bytes_written += writer.join().expect("FFT scratch writer panicked")?;
        r
    })
}

/// With `timing`, pass 1's phase times on stderr.
fn print_timing(timing: bool, t_decode: f64, t_scatter: f64) {
    if timing {
        eprintln!(
            "timing: pass 1 read + crop + transform {t_decode:.2} s, scatter (+ wait for the writer) {t_scatter:.2} s"
        );
    }
}

/// Bytes of pass 1's buffers at `budget`: the frame block, two unit-major copies and the
/// per-thread decode state (what [`pass1`] allocates; the scratch itself not included).
pub(crate) fn buffer_bytes(l: &Layout, src_px: usize, budget: u64) -> u64 {
    let units = l.units();
    let slots = Layout::unit_offsets(&units)[units.len()];
    let (b, sub) = block_len(l, src_px, slots, budget);
    let es = l.elem.size();
    let per_thread = sub * (src_px + l.kpix() * 20);
    (b * (l.kpix() * es + 2 * slots * es) + (rayon::current_num_threads() + 1) * per_thread) as u64
}

/// Seconds pass 1's read and decode of positions `start..start + count` take (the real
/// [`decode_block`], on the worker threads); for [`super::sample_timing`].
pub(crate) fn time_decode(ds: &dyn Dataset, l: &Layout, start: usize, count: usize) -> Result<f64> {
    let units = l.units();
    let plans = half_plans(l, &units);
    let states = thread_states(ds, l.kpix());
    let mut fr = vec![0u8; count * l.kpix() * l.elem.size()];
    let t = Instant::now();
    decode_block(ds, l, plans.as_ref(), &states, start, 16, &mut fr)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Positions per block of pass 1 and per decode task, for `src_px` source bytes per frame and
/// `slots` scratch slots per position within `budget`.
fn block_len(l: &Layout, src_px: usize, slots: usize, budget: u64) -> (usize, usize) {
    let (n, kpix, es) = (l.n(), l.kpix(), l.elem.size());
    let sub = 16usize; // positions per decode task
    // per position: the frame-major encoded frame and two unit-major copies
    let per_pos = (kpix * es + 2 * slots * es) as u64;
    let fixed = (rayon::current_num_threads() * sub * (src_px + kpix * 20)) as u64 + (8 << 20);
    // 3/4 of the budget: headroom for HDF5, the allocator and the rest of the process
    let b = ((budget.saturating_sub(fixed) / 4 * 3 / per_pos.max(1)) as usize).clamp(1, 1 << 16).min(n);
    // and at most 1/32 of the scan (but 64 positions): reading the first block and writing the
    // last are not overlapped, and fresh pages of huge buffers cost page faults
    let b = b.min(n.div_ceil(32).max(64));
    // whole 64-position blocks: with 8-slot unit strides each write is 4 KiB aligned (O_DIRECT)
    let b = if b >= 64 {
        b / 64 * 64
    } else if b >= sub {
        b / sub * sub
    } else {
        b
    };
    (b, sub.min(b))
}

/// A 4-D transform: the plans of the detector transform of each real frame, on the rows the
/// units keep (None for a scan-axes transform).
fn half_plans(l: &Layout, units: &[Unit]) -> Option<HalfPlans> {
    (l.elem == Elem::C32).then(|| {
        let mut rows: Vec<usize> = units.iter().flat_map(|u| u.pixels.iter().map(|&px| px as usize / l.k.1)).collect();
        rows.sort_unstable();
        rows.dedup();
        HalfPlans::new(l.k.0, l.k.1, rows)
    })
}

/// Per-thread decode state, kept from block to block (read buffers reused, not reallocated).
fn thread_states(ds: &dyn Dataset, kpix: usize) -> Vec<std::sync::Mutex<State>> {
    (0..=rayon::current_num_threads())
        .map(|_| {
            let st = (
                ReadScratch::default(),
                FrameBuf::new(ds.info().pixel_type),
                vec![0f32; kpix],
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            std::sync::Mutex::new(st)
        })
        .collect()
}

/// Per-thread decode state: read scratch, frames, cropped values, transform buffers.
type State = (ReadScratch, FrameBuf, Vec<f32>, Vec<Complex32>, Vec<Complex32>, Vec<Complex32>);

/// Read positions `p..` into `fr` (frame-major, scratch-encoded: cropped/binned, and for a 4-D
/// transform the detector transform on the kept rows), `sub` positions per rayon task, each
/// thread with its own state of `states` (the last one for a caller outside the pool).
fn decode_block(
    ds: &dyn Dataset,
    l: &Layout,
    plans: Option<&HalfPlans>,
    states: &[std::sync::Mutex<State>],
    p: usize,
    sub: usize,
    fr: &mut [u8],
) -> Result<()> {
    let frame_bytes = l.kpix() * l.elem.size();
    let nt = states.len() - 1;
    fr.par_chunks_mut(sub * frame_bytes).enumerate().try_for_each(|(i, out)| -> Result<()> {
        let mut g = states[rayon::current_thread_index().map_or(nt, |x| x.min(nt))].lock().expect("state lock");
        let (rs, fb, vals, cv, tmp, scr) = &mut *g;
        let m = out.len() / frame_bytes;
        ds.read_positions(p + i * sub, m, fb, rs)?;
        let dp = ds.frame_pixels();
        for j in 0..m {
            crate::with_frames!(&*fb, v => crop_bin(&v[j * dp..(j + 1) * dp], l, vals));
            let o = &mut out[j * frame_bytes..(j + 1) * frame_bytes];
            match plans {
                Some(pl) => pl.transform(vals, bytemuck::cast_slice_mut(o), cv, tmp, scr),
                None => encode_frame(vals, l.elem, o),
            }
        }
        Ok(())
    })
}

/// Unit u's region of `buf`: `stride * per_slot` bytes from `start(u, stride)`, with the unit's
/// stride and pixel runs (regions in ascending order, not overlapping).
type UnitJob<'a> = (usize, &'a [(usize, usize, usize)], &'a mut [u8]);
fn unit_regions<'a>(
    buf: &'a mut [u8],
    offs: &[usize],
    runs: &'a [Vec<(usize, usize, usize)>],
    per_slot: usize,
    start: impl Fn(usize, usize) -> usize,
) -> Vec<UnitJob<'a>> {
    let mut rest: &mut [u8] = buf;
    let mut at = 0;
    let mut jobs = Vec::with_capacity(runs.len());
    for (u, r) in runs.iter().enumerate() {
        let np = offs[u + 1] - offs[u];
        let s = start(u, np);
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(s - at);
        let (a, tail) = tail.split_at_mut(np * per_slot);
        (rest, at) = (tail, s + np * per_slot);
        jobs.push((np, r.as_slice(), a));
    }
    jobs
}

/// Copy the stored pixels of `cnt` encoded frames (`fr`, frame-major) into each unit's
/// [cnt][stride] slots (`jobs`: stride, pixel runs, destination), on rayon.
fn scatter(jobs: Vec<UnitJob<'_>>, fr: &[u8], cnt: usize, frame_bytes: usize, es: usize) {
    jobs.into_par_iter().for_each(|(np, r, dst)| {
        for j in 0..cnt {
            let f = &fr[j * frame_bytes..(j + 1) * frame_bytes];
            let d = &mut dst[j * np * es..(j + 1) * np * es];
            for &(src, len, slot) in r {
                d[slot * es..(slot + len) * es].copy_from_slice(&f[src * es..(src + len) * es]);
            }
        }
    });
}

/// Maximal runs of consecutive pixel indices in the ascending `pixels`: (first pixel, length,
/// index of the first in `pixels`).
pub(crate) fn pixel_runs(pixels: &[u32]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &p) in pixels.iter().enumerate() {
        match runs.last_mut() {
            Some((s, len, _)) if *s + *len == p as usize => *len += 1,
            _ => runs.push((p as usize, 1, i)),
        }
    }
    runs
}
