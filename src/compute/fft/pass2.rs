//! Pass 2: groups of K tiles that fit the budget are loaded from the scratch file (one sequential
//! read each), transposed pixel-major, 2-D FFT'd per pixel over the scan axes (shared plans,
//! per-thread scratch) and fftshifted, then assembled into whole HDF5 chunks. A writer thread owns
//! every HDF5 write, so transforming group g+1 overlaps writing group g; chunks go out with
//! O_DIRECT at their allocated addresses ([`h5::DirectChunkWriter`]) or, when that is not
//! possible, through `H5Dwrite_chunk`. Completed tiles are recorded after each group.

use super::kernels::{Plans2, assemble_chunks, decode_transpose};
use super::run::CacheDatasets;
use super::{FftReport, Layout, PASS2_BYTES_PER_ELEM, RunOptions, ScratchState, write_state};
use crate::error::Result;
use crate::format::h5;
use crate::jobs::Progress;
use num_complex::Complex32;
use rayon::prelude::*;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

/// The whole chunks of one group, contiguous (reused between groups).
#[derive(Default)]
pub(crate) struct Chunks {
    pub(crate) offsets: Vec<[u64; 4]>,
    pub(crate) data: Vec<Complex32>,
    pub(crate) elems: usize,
}

/// A transformed group on its way to the writer.
struct GroupOut {
    chunks: Chunks,
    tiles: Vec<usize>,
    power: Vec<f32>,
    bytes: u64,
}

/// What pass 2 works on.
pub(crate) struct Pass2<'a> {
    pub(crate) emd: &'a Path,
    pub(crate) l: &'a Layout,
    pub(crate) file: &'a hdf5::File,
    pub(crate) scratch_path: &'a Path,
    pub(crate) store: &'a super::pass1::ScratchStore,
    pub(crate) state_path: &'a Path,
    pub(crate) key_s: &'a str,
    pub(crate) budget: u64,
    pub(crate) progress: &'a Progress,
    pub(crate) opts: &'a RunOptions,
}

/// Groups of consecutive not-done tiles within the budget, at least ~4 of them so that
/// computing one group overlaps writing the previous one.
fn plan_groups(c: &Pass2, todo: &[usize], offs: &[usize]) -> Vec<Vec<usize>> {
    let n = c.l.n();
    let avail = super::plan::pass2_budget(c.budget, n);
    let per_pix = (n * (c.l.elem.size() + PASS2_BYTES_PER_ELEM)) as u64;
    let todo_pix: usize = todo.iter().map(|&t| offs[t + 1] - offs[t]).sum();
    let max_pix = ((avail / per_pix).max(1) as usize).min(todo_pix.div_ceil(4));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_pix = 0;
    for &t in todo {
        let p = offs[t + 1] - offs[t];
        let contiguous = cur.last().is_none_or(|&last| last + 1 == t);
        let fits = cur_pix + p <= max_pix && c.opts.max_tiles_per_group.is_none_or(|m| cur.len() < m);
        if !cur.is_empty() && (!contiguous || !fits) {
            groups.push(std::mem::take(&mut cur));
            cur_pix = 0;
        }
        cur.push(t);
        cur_pix += p;
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// Run pass 2 over the tiles in `todo`.
pub(crate) fn run(c: &Pass2, todo: &[usize], cache: &mut CacheDatasets, rep: &mut FftReport) -> Result<()> {
    let offs = c.l.tile_offsets();
    let groups = plan_groups(c, todo, &offs);
    let (tx, rx) = std::sync::mpsc::sync_channel::<GroupOut>(0);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Chunks>();
    let CacheDatasets { data, blocks, power_ds, done, power } = cache;
    let outputs = Outputs { data, blocks, power_ds, done };
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(|| writer_loop(c, outputs, rx, back_tx));
        let r = transform_groups(c, &groups, &offs, power, tx, back_rx, rep);
        let w = writer.join().expect("FFT writer thread panicked")?;
        rep.output_io = w.io;
        rep.output_bytes_written += w.bytes;
        rep.pass2_groups += w.groups;
        rep.blocks_computed += w.tiles;
        r
    })
}

/// Read, transform and assemble each group; send it to the writer.
#[allow(clippy::too_many_arguments)]
fn transform_groups(
    c: &Pass2,
    groups: &[Vec<usize>],
    offs: &[usize],
    power: &mut [f64],
    tx: std::sync::mpsc::SyncSender<GroupOut>,
    back_rx: Receiver<Chunks>,
    rep: &mut FftReport,
) -> Result<()> {
    let (l, n) = (c.l, c.l.n());
    let es = l.elem.size();
    let plans = Plans2::new(l.scan.0, l.scan.1);
    let max_group_pix = groups.iter().map(|g| offs[g[g.len() - 1] + 1] - offs[g[0]]).max().unwrap_or(0);
    let mut raw_buf = crate::util::AlignedBuf::new(max_group_pix * n * es);
    let mut cplx_buf = vec![Complex32::default(); max_group_pix * n];
    let mut tile_tmp: Vec<Complex32> = Vec::new();
    for (gi, grp) in groups.iter().enumerate() {
        if c.opts.cancel_after_groups.is_some_and(|k| gi >= k) {
            c.progress.cancel();
        }
        c.progress.check()?;
        let (p0, p1) = (offs[grp[0]], offs[grp[grp.len() - 1] + 1]);
        let raw = &mut raw_buf[..(p1 - p0) * n * es];
        c.store.read_at(raw, (p0 * n * es) as u64, c.scratch_path)?;
        if !c.store.in_memory() {
            rep.scratch_bytes_read += raw.len() as u64;
        }
        // decode + transpose each tile to pixel-major complex
        let cplx = &mut cplx_buf[..(p1 - p0) * n];
        {
            let mut rest: &mut [Complex32] = &mut *cplx;
            let mut jobs = Vec::new();
            for &t in grp {
                let np = offs[t + 1] - offs[t];
                let (a, b) = rest.split_at_mut(np * n);
                rest = b;
                let r0 = (offs[t] - p0) * n * es;
                jobs.push((a, &raw[r0..r0 + np * n * es], np));
            }
            jobs.into_par_iter().for_each(|(dst, src, np)| decode_transpose(src, l.elem, np, n, dst));
        }
        // 2-D FFT over scan axes + fftshift, per pixel
        cplx.par_chunks_mut(n)
            .for_each_init(|| (Vec::new(), Vec::new()), |(tmp, scr), img| plans.fft2_shift(img, tmp, scr));
        add_power(power, cplx, p1 - p0, n);
        let mut chunks = back_rx.try_recv().unwrap_or_default();
        assemble_chunks(l, offs, grp, p0, cplx, &mut chunks, &mut tile_tmp);
        let msg = GroupOut {
            chunks,
            tiles: grp.clone(),
            power: power.iter().map(|&v| v as f32).collect(),
            bytes: ((p1 - p0) * n * 8) as u64,
        };
        if tx.send(msg).is_err() {
            break; // the writer failed; its error is reported by `run`
        }
    }
    Ok(())
}

/// power[q] += sum over the group's pixels of |G(q, K)|^2.
fn add_power(power: &mut [f64], cplx: &[Complex32], npix: usize, n: usize) {
    power.par_chunks_mut(4096).enumerate().for_each(|(ci, pw)| {
        let q0 = ci * 4096;
        for p in 0..npix {
            let row = &cplx[p * n + q0..p * n + q0 + pw.len()];
            for (a, v) in pw.iter_mut().zip(row) {
                *a += v.norm_sqr() as f64;
            }
        }
    });
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
        let bytes: &[u8] = bytemuck::cast_slice(&m.chunks.data);
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
