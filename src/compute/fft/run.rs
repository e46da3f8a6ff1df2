//! One FFT run into an EMD file: lock, open, reuse or create the cache datasets, pass 1, pass 2,
//! finalise. Every step is its own function; [`compute_with`] only sequences them.

use super::pass1::ScratchIo;
use super::plan::{check_space, make_layout, pass2_budget};
use super::types::{CacheDatasets, Layout, ScratchState, ScratchStore, write_state};
use super::{
    CACHE_FORMAT_VERSION, FftAxes, FftParams, FftReport, GROUP, Key, POWER_GROUP, RunOptions, freq_axis, params_json,
    scratch_paths,
};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::format::h5::{self, set_int_attr, set_str_attr, str_attr};
use crate::jobs::Progress;
use num_complex::Complex32;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Compute the FFT of `ds` into the EMD (HDF5) file `emd` (created if missing), resuming from
/// completed blocks of an interrupted run with the same parameters and source.
pub fn compute_with(
    ds: &dyn Dataset,
    emd: &Path,
    params: &FftParams,
    memory_budget: u64,
    progress: &Progress,
    opts: &RunOptions,
) -> Result<FftReport> {
    let l = make_layout(ds, params, memory_budget, opts)?;
    let fingerprint = ds.fingerprint();
    let mut rep = FftReport { det_box: l.det_box, ..Default::default() };
    // a new file: refuse before creating anything when the disk is too small
    if !emd.exists() {
        check_space(emd, l.output_bytes() + l.scratch_bytes(), &l)?;
    }
    // One writer at a time (the EMD writer lock); this process's reader handles are closed and
    // reopen read-only on top of our read-write open (HDF5 shares the file within a process).
    let announce = opts.announce_wait;
    let _lock = h5::lock_exclusive(emd, h5::WRITE_WAIT, &move |m| {
        log::warn!("{m}");
        if announce {
            eprintln!("waiting: {m}");
        }
    })?;
    drop(h5::close_readers(emd));
    let file = h5::open_rw_aligned(emd)?;
    let key = Key { format: CACHE_FORMAT_VERSION, fingerprint: fingerprint.clone(), params: params.clone(), layout: l };
    let (key, existing) = reuse_existing(&file, emd, key, opts, memory_budget)?;
    let l = key.layout.clone();
    rep.shape = [l.scan.0, l.scan.1, l.k.0, l.k.1];
    rep.chunk = l.chunk;
    rep.output_bytes = l.output_bytes();
    if existing == Existing::Complete {
        return Ok(FftReport { already_complete: true, blocks_total: l.n_tiles(), blocks_resumed: l.n_tiles(), ..rep });
    }
    rep.scratch_bytes = l.scratch_bytes();
    let key_s = serde_json::to_string(&key).expect("the key serialises");
    if let Some(ahead) = &opts.adopt_scratch {
        rep.pass1_alongside = adopt_scratch(emd, ahead, &key, &key_s);
    }
    let scratch = Scratch::inspect(emd, &key_s, &l);
    let reuse = existing == Existing::Resumable;
    let need = if reuse { 0 } else { l.output_bytes() } + if scratch.ok { 0 } else { l.scratch_bytes() };
    check_space(emd, need, &l)?;
    if !reuse {
        create_cache(&file, emd, params, &l, &key_s, &fingerprint, opts.timing)?;
    }
    let mut cache = CacheDatasets::open(&file, emd, &l)?;
    let units = l.units();
    let todo: Vec<usize> = (0..units.len()).filter(|&u| units[u].tiles().any(|t| cache.done[t] == 0)).collect();
    let tiles_todo: usize = todo.iter().map(|&u| units[u].tiles().count()).sum();
    rep.blocks_total = l.n_tiles();
    rep.blocks_resumed = l.n_tiles() - tiles_todo;
    progress.set_total((l.n() + l.n_tiles()) as u64);
    progress.set_done(0);

    // The scratch stays in memory (no disk detour) when it fits half the budget and the rest
    // holds two pass-2 units; otherwise it is a file next to the EMD, which an interrupted run
    // resumes from. (Up to 7/8 of the budget was tried: a 4.5 GiB scratch in fresh memory took
    // 2-7 s of page faults on the build VM, more than its O_DIRECT round trip overlapped with
    // the transforms.)
    let mem_budget = memory_budget.saturating_sub(l.scratch_bytes());
    let in_memory = !scratch.ok && scratch_in_memory(&l, memory_budget, opts);
    let budget = if in_memory { mem_budget } else { memory_budget };
    rep.scratch_in_memory = in_memory;
    let t1 = Instant::now();
    let p1 =
        Pass1Job { l: &l, scratch: &scratch, key_s: &key_s, needed: !todo.is_empty(), in_memory, budget, progress };
    let store = run_pass1(super::PixelSource::or(opts.pixels.as_ref(), ds), &p1, &mut rep, opts.timing)?;
    rep.seconds_pass1 = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    progress.add(rep.blocks_resumed as u64, 0);
    if !todo.is_empty() {
        progress.set_message("FFT pass 2/2: transforming");
        let ctx = super::pass2::Pass2 {
            emd,
            l: &l,
            file: &file,
            scratch_path: &scratch.path,
            store: store.as_ref().expect("pass 1 ran: tiles remain"),
            state_path: &scratch.state_path,
            key_s: &key_s,
            budget,
            progress,
            opts,
        };
        super::pass2::run(&ctx, &todo, &mut cache, &mut rep)?;
    }
    finalize(file, cache, emd, params, &rep, &scratch)?;
    rep.seconds_pass2 = t2.elapsed().as_secs_f64();
    Ok(rep)
}

/// Whether a run keeps pass 1's output in memory: when it fits half the budget and the rest holds
/// two pass-2 units (see [`compute_with`]).
pub(crate) fn scratch_in_memory(l: &Layout, memory_budget: u64, opts: &RunOptions) -> bool {
    let max_unit = l.units().iter().map(|u| super::pass2::unit_bytes(l, u)).max().unwrap_or(0);
    let mem_budget = memory_budget.saturating_sub(l.scratch_bytes());
    !opts.scratch_on_disk && l.scratch_bytes() <= memory_budget / 2 && 2 * max_unit <= pass2_budget(mem_budget, l.n())
}

/// Pass 1 of the FFT that [`compute_with`] will compute into `emd`, run before that EMD exists
/// (while it is being converted) from `pixels`, the data it is being converted from. The scratch
/// file next to `emd` is written under a provisional key, returned; an interrupted run of the
/// same is resumed. The FFT takes the scratch over when given the key as
/// [`RunOptions::adopt_scratch`] and its layout and parameters are the same. None when the
/// scratch would stay in memory (nothing to hand over) or another process writes it. On an error
/// (a cancel included) the scratch is removed.
pub fn pass1_ahead(
    pixels: &dyn Dataset,
    emd: &Path,
    params: &FftParams,
    memory_budget: u64,
    progress: &Progress,
    opts: &RunOptions,
) -> Result<Option<String>> {
    let l = make_layout(pixels, params, memory_budget, opts)?;
    if scratch_in_memory(&l, memory_budget, opts) {
        return Ok(None);
    }
    let key = Key {
        format: CACHE_FORMAT_VERSION,
        fingerprint: format!("pixels:{}", pixels.fingerprint()),
        params: params.clone(),
        layout: l.clone(),
    };
    let key_s = serde_json::to_string(&key).expect("the key serialises");
    let scratch = Scratch::inspect(emd, &key_s, &l);
    // one writer of the scratch: a lock on its state file's directory entry
    let lock_path = scratch.state_path.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        return Ok(None);
    }
    let mut rep = FftReport::default();
    progress.set_total(l.n() as u64);
    let job = Pass1Job {
        l: &l,
        scratch: &scratch,
        key_s: &key_s,
        needed: true,
        in_memory: false,
        budget: memory_budget,
        progress,
    };
    let r = run_pass1(pixels, &job, &mut rep, opts.timing);
    if r.is_err() {
        // failed or cancelled (the conversion failed): no half-written scratch is left behind
        let _ = std::fs::remove_file(&scratch.path);
        let _ = std::fs::remove_file(&scratch.state_path);
    }
    drop(lock);
    let _ = std::fs::remove_file(&lock_path);
    r.map(|_| Some(key_s))
}

/// Take over the complete scratch [`pass1_ahead`] wrote under the key `ahead` when that key has
/// `key`'s format, parameters and layout: its state file is given `key_s`. Whether it did.
fn adopt_scratch(emd: &Path, ahead: &str, key: &Key, key_s: &str) -> bool {
    let Ok(k) = serde_json::from_str::<Key>(ahead) else { return false };
    if (k.format, &k.params, &k.layout) != (key.format, &key.params, &key.layout) {
        return false;
    }
    let (_, state_path) = scratch_paths(emd);
    let Some(st) = std::fs::read(&state_path).ok().and_then(|b| serde_json::from_slice::<ScratchState>(&b).ok()) else {
        return false;
    };
    if st.key != ahead || st.positions_done < key.layout.n() {
        return false;
    }
    write_state(&state_path, &ScratchState { key: key_s.to_string(), ..st }).is_ok()
}

/// What the file already holds for this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Nothing usable: (re)create the cache datasets.
    None,
    /// The same computation, interrupted: resume its blocks.
    Resumable,
    /// The same computation, complete.
    Complete,
}

/// Compare the cache in the file (if any) with `key`: the same source, parameters and layout
/// (the chunk shape of the existing cache is kept when the budget allows it) can be resumed.
fn reuse_existing(
    file: &hdf5::File,
    emd: &Path,
    mut key: Key,
    opts: &RunOptions,
    budget: u64,
) -> Result<(Key, Existing)> {
    if !file.link_exists(GROUP) {
        return Ok((key, Existing::None));
    }
    let g = file.group(GROUP).map_err(h5::err(emd))?;
    let Some(old) = str_attr(&g, "emdtui_key").and_then(|s| serde_json::from_str::<Key>(&s).ok()) else {
        return Ok((key, Existing::None));
    };
    let same_source = old.format == key.format && old.fingerprint == key.fingerprint && old.params == key.params;
    let chunk_ok = opts.chunk.is_none_or(|c| c == old.layout.chunk);
    let mut cand = key.layout.clone();
    cand.chunk = old.layout.chunk;
    if !(same_source && chunk_ok && cand == old.layout) {
        return Ok((key, Existing::None));
    }
    let max_unit = cand.units().iter().map(|u| super::pass2::unit_bytes(&cand, u)).max().unwrap_or(0);
    if max_unit > pass2_budget(budget, cand.n()) {
        return Ok((key, Existing::None));
    }
    key.layout = cand;
    let complete = g.attr("complete").and_then(|a| a.read_scalar::<u8>()).unwrap_or(0) == 1;
    Ok((key, if complete { Existing::Complete } else { Existing::Resumable }))
}

/// The pass-1 scratch file next to the EMD and what an interrupted run left in it.
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
    pub(crate) state_path: PathBuf,
    /// The scratch file belongs to this key and has the right size.
    pub(crate) ok: bool,
    /// Positions pass 1 had written (0 unless `ok`).
    pub(crate) positions_done: usize,
}

impl Scratch {
    fn inspect(emd: &Path, key_s: &str, l: &Layout) -> Scratch {
        let (path, state_path) = scratch_paths(emd);
        let state: Option<ScratchState> = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &ScratchState| s.key == key_s);
        let size_ok = std::fs::metadata(&path).is_ok_and(|m| m.len() == l.scratch_bytes());
        let ok = state.is_some() && size_ok;
        let positions_done = if ok { state.map(|s| s.positions_done.min(l.n())).unwrap_or(0) } else { 0 };
        Scratch { path, state_path, ok, positions_done }
    }
}

/// Create the cache datasets with every chunk allocated now (and no fill), so pass 2 only
/// overwrites raw data in place and never changes metadata.
fn create_cache(
    file: &hdf5::File,
    emd: &Path,
    params: &FftParams,
    l: &Layout,
    key_s: &str,
    fingerprint: &str,
    timing: bool,
) -> Result<()> {
    for gp in [GROUP, POWER_GROUP] {
        if file.link_exists(gp) {
            let (parent, name) = gp.rsplit_once('/').expect("cache groups have a parent");
            file.group(parent).and_then(|p| p.unlink(name)).map_err(h5::err(emd))?;
        }
    }
    let tm = Instant::now();
    create_datasets(file, params, l, key_s, fingerprint).map_err(h5::err(emd))?;
    file.flush().map_err(h5::err(emd))?;
    if timing {
        eprintln!("timing: cache datasets created {:.3} s", tm.elapsed().as_secs_f64());
    }
    Ok(())
}

fn create_datasets(file: &hdf5::File, params: &FftParams, l: &Layout, key_s: &str, fp: &str) -> hdf5::Result<()> {
    let n = l.n();
    let n_tiles = l.n_tiles();
    let g = h5::ensure_group(file, GROUP)?;
    g.new_dataset::<Complex32>()
        .shape([l.scan.0, l.scan.1, l.k.0, l.k.1])
        .chunk(l.chunk)
        .alloc_time(Some(hdf5::dataset::AllocTime::Early))
        .fill_time(hdf5::dataset::FillTime::Never)
        .create("data")?;
    g.new_dataset::<u8>()
        .shape([n_tiles])
        .alloc_time(Some(hdf5::dataset::AllocTime::Early))
        .create("blocks_done")?
        .write_raw(&vec![0u8; n_tiles])?;
    g.new_attr::<u8>().shape(()).create("complete")?.write_scalar(&0u8)?;
    set_str_attr(&g, "emdtui_key", key_s)?;
    set_str_attr(&g, "params", &params_json(params, l))?;
    set_str_attr(&g, "source_fingerprint", fp)?;
    set_str_attr(&g, "tool_version", crate::VERSION)?;
    g.new_attr::<u32>().shape(()).create("cache_format_version")?.write_scalar(&CACHE_FORMAT_VERSION)?;
    set_str_attr(&g, "created", &crate::util::now_iso())?;
    set_str_attr(
        &g,
        "layout",
        "(Q row, Q col, K row, K col); K tiles completed in blocks_done; valid only when complete == 1",
    )?;
    let pg = h5::ensure_group(file, POWER_GROUP)?;
    pg.new_dataset::<f32>()
        .shape([l.scan.0, l.scan.1])
        .alloc_time(Some(hdf5::dataset::AllocTime::Early))
        .create("data")?
        .write_raw(&vec![0f32; n])?;
    set_str_attr(&pg, "description", "sum over K of |G(Q, K)|^2; valid only when fft_complex@complete == 1")?;
    // provenance in the form every emdtui cache carries (listed by `emdtui info`)
    let pj: serde_json::Value = serde_json::from_str(&params_json(params, l)).unwrap_or_default();
    for grp in [&g, &pg] {
        crate::format::emd::stamp_cache(grp, &pj, fp)?;
        set_int_attr(grp, "emdtui_complete", 0)?;
    }
    // dims now, so nothing is created later
    let kunits = if params.axes == FftAxes::All { "1/detector pixel" } else { "detector pixel" };
    let kaxis = |i: usize| -> Vec<f32> {
        let nk = if i == 0 { l.k.0 } else { l.k.1 };
        if params.axes == FftAxes::All {
            freq_axis(nk)
        } else {
            let o = l.det_box[i] as f32;
            (0..nk).map(|j| o + (j * l.bin) as f32 + (l.bin as f32 - 1.0) / 2.0).collect()
        }
    };
    write_axis(&g, 0, &freq_axis(l.scan.0), "Qy", "1/scan step")?;
    write_axis(&g, 1, &freq_axis(l.scan.1), "Qx", "1/scan step")?;
    write_axis(&g, 2, &kaxis(0), "Ky", kunits)?;
    write_axis(&g, 3, &kaxis(1), "Kx", kunits)?;
    write_axis(&pg, 0, &freq_axis(l.scan.0), "Qy", "1/scan step")?;
    write_axis(&pg, 1, &freq_axis(l.scan.1), "Qx", "1/scan step")
}

/// A `dim{i}` dataset holding every axis value, with its name and units.
fn write_axis(g: &hdf5::Group, i: usize, vals: &[f32], name: &str, units: &str) -> hdf5::Result<()> {
    let nm = format!("dim{i}");
    if g.link_exists(&nm) {
        g.unlink(&nm)?;
    }
    let d = g.new_dataset_builder().with_data(&ndarray::Array1::from(vals.to_vec())).create(nm.as_str())?;
    set_str_attr(&d, "name", name)?;
    set_str_attr(&d, "units", units)
}

impl CacheDatasets {
    fn open(file: &hdf5::File, emd: &Path, l: &Layout) -> Result<CacheDatasets> {
        let e = h5::err(emd);
        let g = file.group(GROUP).map_err(&e)?;
        let data = g.dataset("data").map_err(&e)?;
        let blocks = g.dataset("blocks_done").map_err(&e)?;
        let power_ds = file.group(POWER_GROUP).and_then(|p| p.dataset("data")).map_err(&e)?;
        let done: Vec<u8> = blocks.read_raw::<u8>().map_err(&e)?;
        if done.len() != l.n_tiles() {
            return Err(Error::format(emd, "FFT cache: blocks_done has the wrong length"));
        }
        let power: Vec<f64> = if done.iter().any(|&d| d != 0) {
            power_ds.read_raw::<f32>().map_err(&e)?.into_iter().map(|v| v as f64).collect()
        } else {
            vec![0.0; l.n()]
        };
        Ok(CacheDatasets { data, blocks, power_ds, done, power })
    }
}

/// What pass 1 of a run works with: the layout, the scratch (and its key), whether any tile is
/// left to compute, whether the scratch stays in memory, the memory budget and the progress.
#[derive(Clone, Copy)]
struct Pass1Job<'a> {
    l: &'a Layout,
    scratch: &'a Scratch,
    key_s: &'a str,
    needed: bool,
    in_memory: bool,
    budget: u64,
    progress: &'a Progress,
}

/// Pass 1 (source -> K-tile-major scratch), skipped when no tile remains or the scratch of an
/// interrupted run already holds every position. Returns the scratch (None when not needed).
fn run_pass1(ds: &dyn Dataset, job: &Pass1Job, rep: &mut FftReport, timing: bool) -> Result<Option<ScratchStore>> {
    let Pass1Job { l, scratch, key_s, needed, in_memory, budget, progress } = *job;
    let n = l.n();
    if !needed {
        progress.add(n as u64, 0);
        return Ok(None);
    }
    if in_memory || scratch.positions_done < n {
        rep.pixels_from = Some(ds.info().path.clone());
    }
    if in_memory {
        let store = ScratchStore::Mem(std::sync::Mutex::new(bytemuck::zeroed_vec(l.scratch_bytes() as usize)));
        progress.set_message("FFT pass 1/2: reading the dataset");
        let io = ScratchIo { store: &store, path: &scratch.path, state_path: &scratch.state_path, key_s, timing };
        super::pass1::pass1(ds, l, &io, 0, budget, progress, rep)?;
        return Ok(Some(store));
    }
    let sf = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&scratch.path)
        .map_err(|e| Error::io(&scratch.path, e))?;
    if !scratch.ok {
        sf.set_len(0).and_then(|_| sf.set_len(l.scratch_bytes())).map_err(|e| Error::io(&scratch.path, e))?;
        write_state(&scratch.state_path, &ScratchState { key: key_s.to_string(), positions_done: 0, tiles_done: 0 })?;
    }
    rep.pass1_positions_resumed = scratch.positions_done;
    progress.add(scratch.positions_done as u64, 0);
    let store = ScratchStore::file(sf, &scratch.path);
    if scratch.positions_done < n {
        progress.set_message("FFT pass 1/2: reading the dataset");
        let io = ScratchIo { store: &store, path: &scratch.path, state_path: &scratch.state_path, key_s, timing };
        super::pass1::pass1(ds, l, &io, scratch.positions_done, budget, progress, rep)?;
    }
    Ok(Some(store))
}

/// Make the data durable, then mark the cache complete, log the run and remove the scratch.
fn finalize(
    file: hdf5::File,
    cache: CacheDatasets,
    emd: &Path,
    params: &FftParams,
    rep: &FftReport,
    scratch: &Scratch,
) -> Result<()> {
    let e = h5::err(emd);
    drop(cache);
    file.flush().map_err(&e)?;
    std::fs::File::open(emd).and_then(|f| f.sync_all()).map_err(|x| Error::io(emd, x))?;
    let g = file.group(GROUP).map_err(&e)?;
    g.attr("complete").and_then(|a| a.write_scalar(&1u8)).map_err(&e)?;
    set_str_attr(&g, "completed", &crate::util::now_iso()).map_err(&e)?;
    for name in [GROUP, POWER_GROUP] {
        if let Ok(grp) = file.group(name) {
            set_int_attr(&grp, "emdtui_complete", 1).map_err(&e)?;
        }
    }
    crate::format::emd::append_log(
        &file,
        emd,
        &format!("4D FFT {:?} computed ({} blocks now, {} resumed)", params, rep.blocks_computed, rep.blocks_resumed),
    )?;
    drop(g);
    file.flush().map_err(&e)?;
    drop(file);
    std::fs::File::open(emd).and_then(|f| f.sync_all()).map_err(|x| Error::io(emd, x))?;
    let _ = std::fs::remove_file(&scratch.path);
    let _ = std::fs::remove_file(&scratch.state_path);
    Ok(())
}
