//! Pass 2: groups of K tiles that fit the budget are loaded from the scratch file (one sequential
//! read each), transposed pixel-major, 2-D FFT'd per pixel over the scan axes (shared plans,
//! per-thread scratch) and fftshifted, then assembled into whole HDF5 chunks. A writer thread owns
//! every HDF5 write, so transforming group g+1 overlaps writing group g; chunks go out with
//! O_DIRECT at their allocated addresses ([`h5::DirectChunkWriter`]) or, when that is not
//! possible, through `H5Dwrite_chunk`. Completed tiles are recorded after each group.

use super::kernels::{
    Plans2, UnitImages, assemble_chunks, decode_transpose, mirrored_indices, shifted_sources, transpose_par,
};
use super::types::{CacheDatasets, Chunks, Elem, Layout, ScratchState, ScratchStore, Unit, write_state};
use super::{FftReport, RunOptions};
use crate::error::Result;
use crate::format::h5;
use crate::jobs::Progress;
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

/// A transformed group on its way to the writer.
struct GroupOut {
    chunks: Chunks,
    tiles: Vec<usize>,
    power: Vec<f32>,
    bytes: u64,
}

impl GroupOut {
    /// The assembled `chunks` of group `grp`, with the tiles it completes and the power so far.
    fn new(l: &Layout, units: &[Unit], grp: &[usize], chunks: Chunks, power: &[f64]) -> GroupOut {
        let tiles: Vec<usize> = grp.iter().flat_map(|&u| units[u].tiles()).collect();
        let out_px: usize = grp.iter().map(|&u| units[u].out_pixels(l)).sum();
        GroupOut { chunks, tiles, power: power.iter().map(|&v| v as f32).collect(), bytes: (out_px * l.n() * 8) as u64 }
    }
}

/// What pass 2 works on.
pub(crate) struct Pass2<'a> {
    pub(crate) emd: &'a Path,
    pub(crate) l: &'a Layout,
    pub(crate) file: &'a hdf5::File,
    pub(crate) scratch_path: &'a Path,
    pub(crate) store: &'a ScratchStore,
    pub(crate) state_path: &'a Path,
    pub(crate) key_s: &'a str,
    pub(crate) budget: u64,
    pub(crate) progress: &'a Progress,
    pub(crate) opts: &'a RunOptions,
}

/// Pass-2 memory of one unit: its scratch slots twice (read ahead), the pixel-major and Q-major complex images,
/// and its output chunks twice (assembled, and the previous group's on their way to the writer).
pub(crate) fn unit_bytes(l: &Layout, u: &Unit) -> u64 {
    let n = l.n() as u64;
    let [c0, c1, _, _] = l.chunk;
    let nq_padded = (l.scan.0.div_ceil(c0) * c0 * l.scan.1.div_ceil(c1) * c1) as u64;
    n * (2 * u.stride * l.elem.size() + u.stride * 16) as u64 + nq_padded * u.out_pixels(l) as u64 * 16
}

/// Groups of consecutive units to do within the budget, at least ~32 of them (unless they are
/// smaller than 16 MiB) so that computing one group overlaps writing the previous one (the first
/// group's computing and the last one's writing are not overlapped), and so that pass 2 touches
/// little fresh memory (first-touched pages are slow: the build VM faulted them in at 0.35-1.7
/// GB/s, slower than its disk). On the 2 GiB benchmark scan 16 groups need 2.2 GiB, 32 groups
/// 1.2 GiB and 64 groups 0.7 GiB, but 64 groups write the output in 256 KiB runs (a group's K
/// tiles are adjacent in the file only per Q block), which this disk takes slower: pass 2 took
/// 8.6-9.4 s with 32 groups, 9.2-9.4 s with 16, 11-12.2 s with 64.
fn plan_groups(c: &Pass2, units: &[Unit], todo: &[usize]) -> Vec<Vec<usize>> {
    let avail = super::plan::pass2_budget(c.budget, c.l.n());
    let todo_bytes: u64 = todo.iter().map(|&u| unit_bytes(c.l, &units[u])).sum();
    let max_bytes = avail.min(todo_bytes.div_ceil(32).max(16 << 20));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_bytes = 0;
    for &u in todo {
        let ub = unit_bytes(c.l, &units[u]);
        let contiguous = cur.last().is_none_or(|&last| last + 1 == u);
        let fits = cur_bytes + ub <= max_bytes && c.opts.max_tiles_per_group.is_none_or(|m| cur.len() < m);
        if !cur.is_empty() && (!contiguous || !fits) {
            groups.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur.push(u);
        cur_bytes += ub;
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// Run pass 2 over the units in `todo` (indices into `Layout::units`).
pub(crate) fn run(c: &Pass2, todo: &[usize], cache: &mut CacheDatasets, rep: &mut FftReport) -> Result<()> {
    let units = c.l.units();
    let groups = plan_groups(c, &units, todo);
    let (tx, rx) = std::sync::mpsc::sync_channel::<GroupOut>(0);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Chunks>();
    let CacheDatasets { data, blocks, power_ds, done, power } = cache;
    let outputs = Outputs { data, blocks, power_ds, done };
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(|| writer_loop(c, outputs, rx, back_tx));
        let r = transform_groups(c, &units, &groups, power, tx, back_rx, rep);
        let w = writer.join().expect("FFT writer thread panicked")?;
        rep.output_io = w.io;
        rep.output_bytes_written += w.bytes;
        rep.pass2_groups += w.groups;
        rep.blocks_computed += w.tiles;
        r
    })
}

/// Read, transform and assemble each group; send it to the writer.
fn transform_groups(
    c: &Pass2,
    units: &[Unit],
    groups: &[Vec<usize>],
    power: &mut [f64],
    tx: std::sync::mpsc::SyncSender<GroupOut>,
    back_rx: Receiver<Chunks>,
    rep: &mut FftReport,
) -> Result<()> {
    let (l, n) = (c.l, c.l.n());
    let es = l.elem.size();
    let offs = Layout::unit_offsets(units);
    let plans = Plans2::new(l.scan.0, l.scan.1);
    let qsrc = shifted_sources(l.scan.0, l.scan.1);
    let mq = mirrored_indices(l.scan.0, l.scan.1);
    let slots = |g: &[usize]| offs[g[g.len() - 1] + 1] - offs[g[0]];
    let max_slots = groups.iter().map(|g| slots(g)).max().unwrap_or(0);
    // from a file: two read buffers, group g+1 is read on its own thread while g is transformed
    let file_bytes = if c.store.in_memory() { 0 } else { max_slots * n * es };
    let mut spare = Some(crate::util::AlignedBuf::new(file_bytes));
    let mut next = Some(crate::util::AlignedBuf::new(file_bytes));
    let mut cplx_buf: Vec<Complex32> = crate::util::huge_zeroed_vec(max_slots * n);
    let mut qm_buf: Vec<Complex32> = crate::util::huge_zeroed_vec(max_slots * n);
    let mut chunk_sets = 0;
    let mut st = StageTimes::default();
    let read_group = |g: &[usize], mut buf: crate::util::AlignedBuf| {
        let s0 = offs[g[0]];
        let len = slots(g) * n * es;
        let r = c.store.read_at(&mut buf[..len], (s0 * n * es) as u64, c.scratch_path);
        (buf, r)
    };
    let mut current: Option<crate::util::AlignedBuf> = None;
    std::thread::scope(|s| -> Result<()> {
        let mut reading: Option<std::thread::ScopedJoinHandle<'_, (crate::util::AlignedBuf, Result<()>)>> = None;
        for (gi, grp) in groups.iter().enumerate() {
            // the buffer of the group before is free again
            if let Some(b) = current.take() {
                if next.is_none() { next = Some(b) } else { spare = Some(b) }
            }
            if c.opts.cancel_after_groups.is_some_and(|k| gi >= k) {
                c.progress.cancel();
            }
            c.progress.check()?;
            let s0 = offs[grp[0]];
            let len = slots(grp) * n * es;
            let t = Instant::now();
            let guard;
            let raw: &[u8] = if let ScratchStore::Mem(m) = c.store {
                guard = m.lock().expect("scratch lock");
                &guard[s0 * n * es..s0 * n * es + len]
            } else {
                let (buf, r) = match reading.take() {
                    Some(h) => h.join().expect("FFT scratch reader panicked"),
                    None => read_group(grp, spare.take().expect("a free read buffer")),
                };
                r?;
                rep.scratch_bytes_read += len as u64;
                // start reading the next group into the other buffer
                if let (Some(g2), Some(b2)) = (groups.get(gi + 1), next.take()) {
                    reading = Some(s.spawn(move || read_group(g2, b2)));
                }
                current = Some(buf);
                &current.as_ref().expect("just read")[..len]
            };
            st.read += t.elapsed().as_secs_f64();
            let nslots = slots(grp);
            let cplx = &mut cplx_buf[..nslots * n];
            let qm = &mut qm_buf[..nslots * n];
            // decode + transpose each unit to pixel-major ([stride][n], the padding slots too):
            // a complex scratch is a plain transpose, one unit per thread
            let t = Instant::now();
            let regions = decode_units(l, units, grp, &offs, s0, raw, cplx);
            st.decode += t.elapsed().as_secs_f64();
            // per unit: 2-D FFT over the scan axes per pixel (left transposed and unshifted),
            // then Q-major
            let views = transform_units(l, units, grp, regions, qm, &plans, &mut st);
            let t = Instant::now();
            let Some(mut chunks) = next_chunks(&back_rx, &mut chunk_sets) else {
                break; // the writer failed; its error is reported by `run`
            };
            st.wait += t.elapsed().as_secs_f64();
            let t = Instant::now();
            assemble_chunks(l, &views, &qsrc, &mq, &mut chunks, power);
            st.assemble += t.elapsed().as_secs_f64();
            let msg = GroupOut::new(l, units, grp, chunks, power);
            let t = Instant::now();
            if tx.send(msg).is_err() {
                break; // the writer failed; its error is reported by `run`
            }
            st.wait += t.elapsed().as_secs_f64();
        }
        Ok(())
    })?;
    if c.opts.timing {
        st.print();
    }
    Ok(())
}

/// Per unit of `grp` (decoded pixel-major into `regions`): the 2-D FFT over the scan axes of each
/// pixel (left transposed and unshifted), then Q-major into `qm`.
fn transform_units<'a>(
    l: &Layout,
    units: &'a [Unit],
    grp: &[usize],
    regions: Vec<&mut [Complex32]>,
    qm: &'a mut [Complex32],
    plans: &Plans2,
    st: &mut StageTimes,
) -> Vec<UnitImages<'a>> {
    let n = l.n();
    let mut views = Vec::with_capacity(grp.len());
    let mut qrest: &mut [Complex32] = qm;
    for (cu, &ui) in regions.into_iter().zip(grp) {
        let u = &units[ui];
        let np = u.pixels.len();
        let (qu, qt) = std::mem::take(&mut qrest).split_at_mut(np * n);
        qrest = qt;
        let cu = &mut cu[..np * n];
        let t = Instant::now();
        cu.par_chunks_mut(n).for_each_init(|| (Vec::new(), Vec::new()), |(tmp, scr), img| plans.fft2_t(img, tmp, scr));
        st.fft += t.elapsed().as_secs_f64();
        let t = Instant::now();
        transpose_par(cu, np, n, qu);
        st.transpose += t.elapsed().as_secs_f64();
        views.push(UnitImages {
            qm: &*qu,
            np,
            unit: u,
            idx_direct: u.index_of(l, u.direct, false),
            idx_mirrored: u.mirrored.map(|t| u.index_of(l, t, true)).unwrap_or_default(),
        });
    }
    views
}

/// The chunk buffers for the next group: two sets in turn (assembled here, written by the
/// writer; fresh buffers would cost page faults and zeroing for every group). None when the
/// writer failed.
fn next_chunks(back_rx: &Receiver<Chunks>, chunk_sets: &mut usize) -> Option<Chunks> {
    match back_rx.try_recv() {
        Ok(ch) => Some(ch),
        Err(_) if *chunk_sets < 2 => {
            *chunk_sets += 1;
            Some(Chunks::default())
        }
        Err(_) => back_rx.recv().ok(),
    }
}

/// Decode + transpose each unit of `grp` from `raw` (scratch slots from slot `s0`) to
/// pixel-major complex images in `cplx` ([stride][n] per unit, the padding slots too); a
/// complex scratch is a plain transpose, one unit per thread. Returns each unit's region.
fn decode_units<'a>(
    l: &Layout,
    units: &[Unit],
    grp: &[usize],
    offs: &[usize],
    s0: usize,
    raw: &[u8],
    cplx: &'a mut [Complex32],
) -> Vec<&'a mut [Complex32]> {
    let (n, es) = (l.n(), l.elem.size());
    let mut regions: Vec<&mut [Complex32]> = Vec::with_capacity(grp.len());
    let mut rest: &mut [Complex32] = cplx;
    for &ui in grp {
        let (a, b) = std::mem::take(&mut rest).split_at_mut(units[ui].stride * n);
        regions.push(a);
        rest = b;
    }
    if l.elem == Elem::C32 {
        regions.par_iter_mut().zip(grp.par_iter()).for_each(|(cu, &ui)| {
            let r0 = (offs[ui] - s0) * n * es;
            let stride = units[ui].stride;
            let src: &[Complex32] = bytemuck::cast_slice(&raw[r0..r0 + stride * n * es]);
            transpose::transpose(src, cu, stride, n);
        });
    } else {
        for (cu, &ui) in regions.iter_mut().zip(grp) {
            let r0 = (offs[ui] - s0) * n * es;
            let u = &units[ui];
            decode_transpose(&raw[r0..r0 + u.stride * n * es], l.elem, u.pixels.len(), u.stride, n, cu);
        }
    }
    regions
}

/// Where pass 2's compute thread spent its time (printed with `--timing`).
#[derive(Default)]
struct StageTimes {
    read: f64,
    decode: f64,
    fft: f64,
    transpose: f64,
    assemble: f64,
    wait: f64,
}

impl StageTimes {
    fn print(&self) {
        eprintln!(
            "timing: pass 2 read {:.2} s, decode {:.2} s, fft {:.2} s, transpose {:.2} s, assemble + power {:.2} s, waiting for the writer {:.2} s",
            self.read, self.decode, self.fft, self.transpose, self.assemble, self.wait
        );
    }
}

/// The datasets the writer thread owns.
struct Outputs<'a> {
    data: &'a hdf5::Dataset,
    blocks: &'a hdf5::Dataset,
    power_ds: &'a hdf5::Dataset,
    done: &'a mut Vec<u8>,
}

struct Written {
    bytes: u64,
    groups: usize,
    tiles: usize,
    io: String,
}

/// Write every group that arrives: chunks, power map, completed tiles (flushed), state file.
fn writer_loop(c: &Pass2, o: Outputs, rx: Receiver<GroupOut>, back_tx: Sender<Chunks>) -> Result<Written> {
    let (l, emd) = (c.l, c.emd);
    let e = h5::err(emd);
    let mut w = Written { bytes: 0, groups: 0, tiles: 0, io: String::new() };
    let tn = Instant::now();
    let dims = [l.scan.0, l.scan.1, l.k.0, l.k.1];
    let mut direct = if c.opts.buffered_output {
        Err("asked for (buffered_output)".to_string())
    } else {
        h5::DirectChunkWriter::new(emd, o.data, dims, l.chunk, std::mem::size_of::<Complex32>())
    };
    if c.opts.timing {
        eprintln!("timing: chunk address lookup {:.3} s", tn.elapsed().as_secs_f64());
    }
    w.io = match &direct {
        Ok(_) => "direct".to_string(),
        Err(why) => {
            log::info!("FFT output through HDF5 (buffered): {why}");
            format!("buffered: {why}")
        }
    };
    for m in rx {
        let bytes: &[u8] = m.chunks.bytes();
        match &mut direct {
            Ok(d) => w.bytes += d.write(&m.chunks.offsets, bytes)?,
            Err(_) => {
                let cb = m.chunks.elems * std::mem::size_of::<Complex32>();
                for (offset, buf) in m.chunks.offsets.iter().zip(bytes.chunks(cb)) {
                    h5::write_chunk_raw(emd, o.data, offset, buf)?;
                    w.bytes += buf.len() as u64;
                }
            }
        }
        let _ = back_tx.send(m.chunks);
        o.power_ds.write_raw(&m.power).map_err(&e)?;
        for &t in &m.tiles {
            o.done[t] = 1;
        }
        o.blocks.write_raw(o.done.as_slice()).map_err(&e)?;
        c.file.flush().map_err(&e)?;
        w.groups += 1;
        w.tiles += m.tiles.len();
        c.progress.add(m.tiles.len() as u64, m.bytes);
        let nd = o.done.iter().filter(|&&d| d != 0).count();
        if !c.store.in_memory() {
            let st = ScratchState { key: c.key_s.to_string(), positions_done: l.n(), tiles_done: nd };
            write_state(c.state_path, &st)?;
        }
        if let Some(d) = c.opts.group_delay {
            std::thread::sleep(d);
        }
    }
    Ok(w)
}
