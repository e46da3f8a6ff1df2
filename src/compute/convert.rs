//! The conversion kernels: any dataset -> the datacube of a new EMD file, with the overviews
//! computed in the same pass. The workflow around it (locks, space, the `.part` file, caching the
//! overviews, completion, rename) is `ops::convert`.
//!
//! Pipeline: `rayon::current_num_threads()` decode threads take output chunks (one scan row segment
//! of `k` frames, `k` from [`emd::chunk_k`]) from a shared counter, read + bin + crop them, feed
//! their own overview [`Accumulator`], and (with `compress`) shuffle + zlib them; finished chunks go
//! through a bounded channel (capacity from the memory budget) to the calling thread, the only one
//! that calls HDF5 (`H5Dwrite_chunk`, direct chunk writes).

use crate::compute::badpix::{self, BadFix};
use crate::compute::overview::{self, Accumulator, Geometry, Overviews};
use crate::dataset::{Dataset, FrameBuf, Kind, ReadScratch};
use crate::error::{Error, Result};
use crate::format::emd::{self, DatacubeSpec, MdValue};
use crate::format::h5;
use crate::format::mib::PixelType;
use crate::jobs::Progress;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Shuffle + gzip level 1.
    pub compress: bool,
    /// Detector binning factor (1, 2, 4, 8).
    pub bin_detector: usize,
    /// Scan binning factor.
    pub bin_scan: usize,
    /// `--bin-mode mean`: each output pixel is the mean of the pixels binned into it (float32
    /// datacube) instead of their sum.
    pub bin_mean: bool,
    /// Scan crop: (row range, col range), half-open.
    pub crop: Option<((usize, usize), (usize, usize))>,
    pub memory_budget: u64,
    /// Overwrite an existing complete output.
    pub force: bool,
    /// Deflate level of compressed datacubes.
    pub deflate_level: u32,
    /// With `compress`: bitshuffle + LZ4 (HDF5 filter 32008; readers need hdf5plugin) instead of
    /// shuffle + gzip.
    pub bitshuffle: bool,
    /// Skip the up-front free-space check (tests that fill a small filesystem).
    pub no_space_check: bool,
    /// Fail the writes after this many bytes (fault tests).
    pub fail_write_after: Option<u64>,
    /// Print phase timings on stderr.
    pub timing: bool,
    /// Calibration of the source (flags or remembered for a `.mib`); its known parts replace the
    /// EMD source's. Written into the output scaled by the binning.
    pub calibration: Option<crate::compute::calib::Calibration>,
    /// Bad pixels in the overviews stored with the datacube (the datacube itself is written
    /// bit-exact either way). None: kept. `Some(user)`: the hot and dead pixels found in
    /// [`badpix::SAMPLES`] output frames (as `emdtui overview` finds them) plus `user` (flat
    /// source-detector indices, mapped through the detector binning) are masked.
    pub bad_pixels: Option<Vec<usize>>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            compress: false,
            bin_detector: 1,
            bin_scan: 1,
            bin_mean: false,
            crop: None,
            memory_budget: crate::compute::budget::default_budget(),
            force: false,
            deflate_level: 1,
            bitshuffle: false,
            no_space_check: false,
            fail_write_after: None,
            timing: false,
            calibration: None,
            bad_pixels: None,
        }
    }
}

/// Geometry of the output (after crop and binning).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    in_cols: usize,
    r0: usize,
    c0: usize,
    bs: usize,
    bd: usize,
    /// Output shape (scan rows, scan cols, det rows, det cols).
    pub out: [usize; 4],
    in_det: (usize, usize),
    in_type: PixelType,
    /// Output pixel type (`U32` holding float32 bits when `mean`).
    pub out_type: PixelType,
    /// Mean binning: float32 output, each value the sum divided by the pixels binned into it.
    pub mean: bool,
    /// Frames per chunk.
    pub k: usize,
}

impl Plan {
    pub fn identity(&self) -> bool {
        !self.mean && self.bs == 1 && self.bd == 1 && self.r0 == 0 && self.c0 == 0 && self.out[1] == self.in_cols
    }
    pub fn chunks_per_row(&self) -> usize {
        self.out[1].div_ceil(self.k)
    }
    pub fn n_chunks(&self) -> usize {
        self.out[0] * self.chunks_per_row()
    }
    pub fn out_npx(&self) -> usize {
        self.out[2] * self.out[3]
    }
    pub fn chunk_bytes(&self) -> usize {
        self.k * self.out_npx() * self.out_type.bytes()
    }
}

/// Check the options against the dataset and derive the output layout.
pub fn make_plan(ds: &dyn Dataset, out: &Path, o: &ConvertOptions) -> Result<Plan> {
    let s = ds.scan();
    let (dr, dc) = ds.det();
    if !(1..=16).contains(&o.bin_detector) {
        return Err(Error::Invalid(format!("--bin-detector {}: must be 1..16", o.bin_detector)));
    }
    if dr % o.bin_detector != 0 || dc % o.bin_detector != 0 {
        return Err(Error::Invalid(format!(
            "--bin-detector {} does not divide the {dr}x{dc} detector",
            o.bin_detector
        )));
    }
    if o.bin_scan == 0 {
        return Err(Error::Invalid("--bin-scan must be at least 1".into()));
    }
    let ((r0, r1), (c0, c1)) = o.crop.unwrap_or(((0, s.rows), (0, s.cols)));
    if r0 >= r1 || c0 >= c1 || r1 > s.rows || c1 > s.cols {
        return Err(Error::Invalid(format!(
            "--crop {r0}:{r1},{c0}:{c1} is not inside the {}x{} scan (half-open ranges, start < end)",
            s.rows, s.cols
        )));
    }
    let (rows, cols) = ((r1 - r0) / o.bin_scan, (c1 - c0) / o.bin_scan);
    if rows == 0 || cols == 0 {
        return Err(Error::Invalid(format!("--bin-scan {} leaves an empty scan", o.bin_scan)));
    }
    let in_type = ds.info().pixel_type;
    let factor = (o.bin_scan * o.bin_scan * o.bin_detector * o.bin_detector) as u64;
    let need = in_type.max_value() as u64 * factor;
    let out_type = if o.bin_mean {
        PixelType::U32 // float32 bits, same size
    } else if factor == 1 {
        in_type
    } else if need <= u8::MAX as u64 {
        PixelType::U8
    } else if need <= u16::MAX as u64 {
        PixelType::U16
    } else if need <= u32::MAX as u64 {
        PixelType::U32
    } else {
        return Err(Error::Invalid(format!(
            "{}: binning by {factor} pixels could overflow 32-bit counts; bin less",
            out.display()
        )));
    };
    let shape = [rows, cols, dr / o.bin_detector, dc / o.bin_detector];
    Ok(Plan {
        in_cols: s.cols,
        r0,
        c0,
        bs: o.bin_scan,
        bd: o.bin_detector,
        out: shape,
        in_det: (dr, dc),
        in_type,
        out_type,
        mean: o.bin_mean,
        k: emd::chunk_k(shape, out_type),
    })
}

/// The buffers [`read_out_frames`] reuses: the output frames, the input frames of a binned or
/// cropped read, the per-pixel sums of a binned read and the read scratch.
struct ReadBufs {
    out: FrameBuf,
    tmp: FrameBuf,
    sums: Vec<u32>,
    scratch: ReadScratch,
}

impl ReadBufs {
    fn new(p: &Plan) -> ReadBufs {
        ReadBufs {
            out: FrameBuf::new(p.out_type),
            tmp: FrameBuf::new(p.in_type),
            sums: Vec::new(),
            scratch: ReadScratch::default(),
        }
    }
}

/// Reads output positions [first, first+n) of output row `r` (first is the column) into `buf`
/// (output type, n frames).
// `as u32` is needed for the u8 and u16 instantiations of `with_frames!`
#[allow(clippy::unnecessary_cast)]
fn read_out_frames(ds: &dyn Dataset, p: &Plan, (r, c0): (usize, usize), n: usize, b: &mut ReadBufs) -> Result<u64> {
    let ReadBufs { out: buf, tmp, sums, scratch } = b;
    if p.identity() {
        ds.read_positions(r * p.in_cols + c0, n, buf, scratch)?;
        return Ok((n * p.out_npx() * p.in_type.bytes()) as u64);
    }
    let onpx = p.out_npx();
    let (idr, idc) = p.in_det;
    let inpx = idr * idc;
    sums.clear();
    sums.resize(n * onpx, 0);
    let mut read = 0u64;
    let (ocols, bd) = (p.out[3], p.bd);
    for sr in 0..p.bs {
        let row = p.r0 + r * p.bs + sr;
        let col = p.c0 + c0 * p.bs;
        let cnt = n * p.bs;
        ds.read_positions(row * p.in_cols + col, cnt, tmp, scratch)?;
        read += (cnt * inpx * p.in_type.bytes()) as u64;
        crate::with_frames!(&*tmp, v => {
            for i in 0..cnt {
                let f = &v[i * inpx..(i + 1) * inpx];
                let o = &mut sums[(i / p.bs) * onpx..(i / p.bs + 1) * onpx];
                if bd == 1 {
                    for (a, &b) in o.iter_mut().zip(f) {
                        *a += b as u32;
                    }
                } else {
                    for y in 0..idr {
                        let orow = &mut o[(y / bd) * ocols..(y / bd + 1) * ocols];
                        let irow = &f[y * idc..(y + 1) * idc];
                        for (x, &b) in irow.iter().enumerate() {
                            orow[x / bd] += b as u32;
                        }
                    }
                }
            }
        });
    }
    if buf.pixel_type() != p.out_type {
        *buf = FrameBuf::new(p.out_type);
    }
    buf.resize(n * onpx);
    match buf {
        FrameBuf::U8(v) => v.iter_mut().zip(sums.iter()).for_each(|(a, &b)| *a = b as u8),
        FrameBuf::U16(v) => v.iter_mut().zip(sums.iter()).for_each(|(a, &b)| *a = b as u16),
        FrameBuf::U32(v) if p.mean => {
            let f = (p.bs * p.bs * p.bd * p.bd) as f32;
            v.iter_mut().zip(sums.iter()).for_each(|(a, &b)| *a = (b as f32 / f).to_bits());
        }
        FrameBuf::U32(v) => v.copy_from_slice(sums),
    }
    Ok(read)
}

struct Chunk {
    row: usize,
    col: usize,
    bytes: Vec<u8>,
}

/// Acquisition metadata for the EMD from a `.mib` dataset (or generic info).
pub(crate) fn acquisition_md(ds: &dyn Dataset) -> Vec<(String, MdValue)> {
    let mut v: Vec<(String, MdValue)> = vec![
        ("detector".into(), MdValue::Str("Merlin".into())),
        ("software".into(), MdValue::Str(format!("emdtui {}", crate::VERSION))),
        ("source_file".into(), MdValue::Str(ds.info().path.display().to_string())),
        ("source_fingerprint".into(), MdValue::Str(ds.fingerprint())),
    ];
    let mib =
        if ds.info().kind == Kind::Mib { crate::format::mibset::MibSet::open(&ds.info().path).ok() } else { None };
    if let Some(m) = &mib {
        let h = &m.header;
        if let Some(d) = h.counter_depth() {
            v.push(("counter_depth".into(), MdValue::Num(d as f64)));
        }
        v.push(("exposure_s".into(), MdValue::Num(h.shutter_s)));
        v.push(("acquired".into(), MdValue::Str(h.timestamp.clone())));
        v.push(("num_chips".into(), MdValue::Num(h.num_chips as f64)));
        v.push(("chip_layout".into(), MdValue::Str(h.layout.clone())));
        v.push(("stored_depth".into(), MdValue::Str(h.pixel_depth.clone())));
        v.push(("raw_format".into(), MdValue::Str(h.is_raw().to_string())));
        for (i, t) in h.thresholds_kev.iter().enumerate() {
            v.push((format!("threshold_{i}_kev"), MdValue::Num(*t)));
        }
        v.push(("mib_header".into(), MdValue::Str(serde_json::to_string(h).unwrap_or_default())));
        if let Some(a) = &m.acq {
            for (k, val) in &a.fields {
                v.push((format!("hdr_{k}"), MdValue::Str(val.clone())));
            }
        }
    } else {
        for (k, val) in &ds.info().metadata {
            v.push((format!("source_{k}"), MdValue::Str(val.clone())));
        }
    }
    v
}

/// Geometry for the overviews: default geometry refined by the BF disk in the mean of a few frames.
fn pick_geometry(ds: &dyn Dataset, p: &Plan) -> Result<Geometry> {
    let (qr, qc) = (p.out[2], p.out[3]);
    let mut g = overview::default_geometry(qr, qc);
    let npx = qr * qc;
    let mut mean = vec![0f32; npx];
    let mut rb = ReadBufs::new(p);
    let n = p.out[0] * p.out[1];
    let samples: Vec<usize> = (0..16).map(|i| i * n.saturating_sub(1) / 15).collect();
    for s in &samples {
        read_out_frames(ds, p, (s / p.out[1], s % p.out[1]), 1, &mut rb)?;
        for (i, m) in mean.iter_mut().enumerate() {
            *m += rb.out.get_u32(i) as f32;
        }
    }
    if let Some((c, r)) = overview::find_bf_disk(&mean, qr, qc) {
        let r = r.max(1.0);
        g.center = c;
        g.com_origin = c;
        g.bf_radius = r;
        g.adf_inner = (r * 1.5).max(g.adf_inner.min(r + 2.0));
        g.adf_outer = g.adf_outer.max(g.adf_inner + 1.0);
    }
    Ok(g)
}

fn empty_overviews(p: &Plan, g: &Geometry) -> Overviews {
    let n = p.out[0] * p.out[1];
    let npx = p.out_npx();
    Overviews {
        scan_rows: p.out[0],
        scan_cols: p.out[1],
        det_rows: p.out[2],
        det_cols: p.out[3],
        geometry: g.clone(),
        sum: vec![f32::NAN; n],
        bf: vec![f32::NAN; n],
        adf: vec![f32::NAN; n],
        com_x: vec![f32::NAN; n],
        com_y: vec![f32::NAN; n],
        mask: None,
        mean_dp: vec![0.0; npx],
        max_dp: vec![0.0; npx],
        positions_done: 0,
        complete: false,
    }
}

/// A datacube written into a new EMD file (not yet marked complete).
pub struct Written {
    pub file: hdf5::File,
    /// Overviews of the output, computed in the same pass.
    pub overviews: Overviews,
    /// Fingerprint of the written datacube.
    pub fingerprint: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// The output-detector pixels masked in the overviews (flat indices, sorted).
    pub bad_pixels: Vec<usize>,
}

/// Lay out the EMD file `part` and write every datacube chunk of `ds` into it (bit-exact),
/// computing the overviews of the output on the way. The file is left open and not marked
/// complete: the caller stores the overviews and completes it.
pub fn write_datacube(
    ds: &dyn Dataset,
    part: &Path,
    plan: &Plan,
    opts: &ConvertOptions,
    progress: &Progress,
) -> Result<Written> {
    let tt = std::time::Instant::now();
    let lap = |what: &str| {
        if opts.timing {
            eprintln!("[timing] {what}: {:.3} s", tt.elapsed().as_secs_f64());
        }
    };
    let geometry = pick_geometry(ds, plan)?;
    let bad = find_bad(ds, plan, opts)?;
    let fix = overview::bad_fix_for(&bad, &geometry, plan.out[2], plan.out[3]);
    lap("geometry");
    let (file, data) = emd::create_skeleton(part, &datacube_spec(ds, plan, opts))?;
    progress.set_total((plan.out[0] * plan.out[1]) as u64);
    let (results, bytes_written) = run_pipeline(ds, part, plan, opts, progress, (&geometry, fix.as_ref()), &data)?;
    lap("chunks written");
    let (mut overviews, bytes_read) = merge_workers(results, plan, ds.positions_present());
    if let Some(f) = &fix {
        f.repair(&mut overviews.mean_dp);
        f.repair(&mut overviews.max_dp);
    }
    let e = |x: hdf5::Error| Error::hdf5(part, x);
    let fingerprint = emd::datacube_fingerprint(&data, part)?;
    let dc = file.group(emd::DATACUBE).map_err(e)?;
    h5::set_str_attr(&dc, "emdtui_fingerprint", &fingerprint).map_err(e)?;
    Ok(Written { file, overviews, fingerprint, bytes_read, bytes_written, bad_pixels: bad })
}

/// The bad pixels of the output detector to mask in the overviews (sorted; none when
/// `opts.bad_pixels` is None): found in the mean of [`badpix::SAMPLES`] output frames sampled
/// as [`overview::estimate_geometry`] samples a dataset, so an unbinned conversion finds exactly
/// the pixels `emdtui overview` finds in the source (and later in the EMD).
fn find_bad(ds: &dyn Dataset, p: &Plan, opts: &ConvertOptions) -> Result<Vec<usize>> {
    let Some(user) = &opts.bad_pixels else { return Ok(Vec::new()) };
    let (qr, qc) = (p.out[2], p.out[3]);
    let present = if p.identity() { ds.positions_present().min(p.out[0] * p.out[1]) } else { p.out[0] * p.out[1] };
    let mut v = Vec::new();
    if present > 0 {
        let n = badpix::SAMPLES.clamp(1, present);
        let mut sum = vec![0f64; qr * qc];
        let scale = 1.0 / (p.bs * p.bs * p.bd * p.bd) as f64;
        let mut rb = ReadBufs::new(p);
        for i in 0..n {
            let s = i * present / n;
            read_out_frames(ds, p, (s / p.out[1], s % p.out[1]), 1, &mut rb)?;
            for (j, m) in sum.iter_mut().enumerate() {
                // the values the EMD will hold (a mean-binned datacube stores sums / block size)
                *m += if p.mean { rb.sums[j] as f64 * scale } else { rb.out.get_u32(j) as f64 };
            }
        }
        let mean: Vec<f32> = sum.iter().map(|&x| (x / n as f64) as f32).collect();
        v = badpix::detect(&mean, qr, qc, n, badpix::DEFAULT_K).all();
    }
    let (sr, sc) = ds.det();
    v.extend(user.iter().filter(|&&i| i < sr * sc).map(|&i| (i / sc / p.bd) * qc + (i % sc) / p.bd));
    v.retain(|&i| i < qr * qc);
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// The layout of the new file: shape, type, compression, calibration (carried over from an EMD
/// source, pixels for a `.mib`; scaled by the binning) and the acquisition metadata.
fn datacube_spec(ds: &dyn Dataset, plan: &Plan, opts: &ConvertOptions) -> DatacubeSpec {
    let (mut r_size, mut r_units, mut q_size, mut q_units) = if ds.info().kind == Kind::Emd {
        emd::calibration(&ds.info().path).unwrap_or((1.0, "pixels".into(), 1.0, "pixels".into()))
    } else {
        (1.0, "pixels".into(), 1.0, "pixels".into())
    };
    if let Some(c) = &opts.calibration {
        if let Some((s, u)) = &c.r {
            (r_size, r_units) = (*s, u.clone());
        }
        if let Some((s, u)) = &c.q {
            (q_size, q_units) = (*s, u.clone());
        }
    }
    DatacubeSpec {
        shape: plan.out,
        pixel_type: plan.out_type,
        float32: plan.mean,
        compress: opts.compress,
        deflate_level: opts.deflate_level,
        bitshuffle: opts.bitshuffle,
        r_pixel_size: r_size * plan.bs as f64,
        r_pixel_units: r_units,
        q_pixel_size: q_size * plan.bd as f64,
        q_pixel_units: q_units,
        acquisition: acquisition_md(ds),
        source_fingerprint: ds.fingerprint(),
        source_path: ds.info().path.display().to_string(),
    }
}

/// What each worker hands back: its overview accumulator, its overview values, bytes read.
type WorkerOut = (Accumulator, Overviews, u64);

/// Decode workers feed the chunk writer (this thread) through a bounded channel; the workers'
/// overviews use `geometry` and correct the bad pixels of `fix`.
fn run_pipeline(
    ds: &dyn Dataset,
    part: &Path,
    plan: &Plan,
    opts: &ConvertOptions,
    progress: &Progress,
    (geometry, fix): (&Geometry, Option<&Arc<BadFix>>),
    data: &hdf5::Dataset,
) -> Result<(Vec<WorkerOut>, u64)> {
    let cb = plan.chunk_bytes() as u64;
    let threads = rayon::current_num_threads().max(1);
    // in flight: channel + one chunk per worker (+ its read buffers); keep within a quarter of the budget
    let cap = ((opts.memory_budget / 4) / (cb * 3).max(1)).saturating_sub(threads as u64).clamp(2, 64) as usize;
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk>>(cap);
    let w = Workers { ds, plan, opts, progress, geometry, fix, next: &next, abort: &abort };
    let (results, written) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                s.spawn(move || worker(&w, tx))
            })
            .collect();
        drop(tx);
        let written = write_chunks(part, plan, opts, progress, data, rx);
        if written.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        let results: Vec<WorkerOut> =
            handles.into_iter().map(|h| h.join().expect("conversion worker panicked")).collect();
        (results, written)
    });
    let written = written?;
    progress.check()?;
    if next.load(Ordering::Relaxed) < plan.n_chunks() {
        return Err(Error::Invalid(format!("{}: conversion stopped before all chunks were written", part.display())));
    }
    Ok((results, written))
}

/// What the decode workers share: the source and plan, the options, the progress, the overview
/// geometry and bad-pixel fix, the next chunk index to take and the abort flag.
#[derive(Clone, Copy)]
struct Workers<'a> {
    ds: &'a dyn Dataset,
    plan: &'a Plan,
    opts: &'a ConvertOptions,
    progress: &'a Progress,
    geometry: &'a Geometry,
    fix: Option<&'a Arc<BadFix>>,
    next: &'a AtomicUsize,
    abort: &'a AtomicBool,
}

/// One decode worker: take chunk indices from `next` until done, cancelled or aborted.
fn worker(w: &Workers, tx: std::sync::mpsc::SyncSender<Result<Chunk>>) -> WorkerOut {
    let Workers { ds, plan, opts, progress, geometry, fix, next, abort } = *w;
    let mut acc = Accumulator::new(geometry, plan.out[2], plan.out[3], None).with_bad(fix.cloned());
    let mut ov = empty_overviews(plan, geometry);
    let mut rb = ReadBufs::new(plan);
    let mut read = 0u64;
    let cpr = plan.chunks_per_row();
    let elem = plan.out_type.bytes();
    loop {
        if abort.load(Ordering::Relaxed) || progress.is_cancelled() {
            break;
        }
        let j = next.fetch_add(1, Ordering::Relaxed);
        if j >= plan.n_chunks() {
            break;
        }
        let (r, c0) = (j / cpr, (j % cpr) * plan.k);
        let n = plan.k.min(plan.out[1] - c0);
        let res = read_out_frames(ds, plan, (r, c0), n, &mut rb).map(|b| {
            read += b;
            if plan.mean {
                // the overviews of the sums, scaled to the mean when merged
                acc.add(r * plan.out[1] + c0, &FrameBuf::U32(rb.sums.clone()), &mut ov);
            } else {
                acc.add(r * plan.out[1] + c0, &rb.out, &mut ov);
            }
            rb.out.resize(plan.k * plan.out_npx()); // pad the last chunk of a row with zeros
            let raw = rb.out.as_le_bytes();
            let bytes = match (opts.compress, opts.bitshuffle) {
                (false, _) => raw.to_vec(),
                (true, false) => h5::compress_chunk(raw, elem, opts.deflate_level),
                (true, true) => crate::format::bitshuffle::compress(raw, elem),
            };
            Chunk { row: r, col: c0, bytes }
        });
        let failed = res.is_err();
        if tx.send(res).is_err() || failed {
            break;
        }
    }
    (acc, ov, read)
}

/// Bytes of consecutive chunks gathered before one direct write.
const DIRECT_BATCH: usize = 8 << 20;

/// The writer: this thread does every HDF5 call. Uncompressed chunks go out with O_DIRECT at the
/// addresses HDF5 allocated for them (batched, so neighbours become one write), compressed ones
/// (and any layout where that is not possible) through `H5Dwrite_chunk`. Returns the bytes written.
fn write_chunks(
    part: &Path,
    plan: &Plan,
    opts: &ConvertOptions,
    progress: &Progress,
    data: &hdf5::Dataset,
    rx: std::sync::mpsc::Receiver<Result<Chunk>>,
) -> Result<u64> {
    let (mut t_write, mut t_wait) = (0f64, 0f64);
    let mut tw = std::time::Instant::now();
    let mut written = 0u64;
    let chunk = [1, plan.k, plan.out[2], plan.out[3]];
    let mut direct = if opts.compress {
        Err("compressed chunks".to_string())
    } else {
        h5::DirectChunkWriter::new(part, data, plan.out, chunk, plan.out_type.bytes())
    };
    match &direct {
        Ok(_) => log::info!("{}: datacube chunks written with O_DIRECT", part.display()),
        Err(why) => log::info!("{}: datacube chunks through H5Dwrite_chunk ({why})", part.display()),
    }
    let mut batch: Vec<Chunk> = Vec::new();
    let flush = |batch: &mut Vec<Chunk>, d: &mut h5::DirectChunkWriter| -> Result<()> {
        let offs: Vec<[u64; 4]> = batch.iter().map(|c| [c.row as u64, c.col as u64, 0, 0]).collect();
        let items: Vec<(&[u64; 4], &[u8])> = offs.iter().zip(batch.iter().map(|c| c.bytes.as_slice())).collect();
        d.write_chunks(&items)?;
        batch.clear();
        Ok(())
    };
    for msg in rx.iter() {
        t_wait += tw.elapsed().as_secs_f64();
        let ch = msg?;
        if let Some(lim) = opts.fail_write_after
            && written + ch.bytes.len() as u64 > lim
        {
            let e = std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected write failure (EMDTUI_FAIL_WRITE_AFTER)",
            );
            return Err(Error::io(part, e));
        }
        let t1 = std::time::Instant::now();
        let (len, col) = (ch.bytes.len(), ch.col);
        match &mut direct {
            Ok(d) => {
                batch.push(ch);
                if batch.len() * d.chunk_bytes() >= DIRECT_BATCH {
                    flush(&mut batch, d)?;
                }
            }
            Err(_) => {
                h5::write_chunk_raw(part, data, &[ch.row as u64, ch.col as u64, 0, 0], &ch.bytes).map_err(|_| {
                    Error::hdf5(part, format!("writing chunk at scan row {} col {} failed", ch.row, ch.col))
                })?
            }
        }
        t_write += t1.elapsed().as_secs_f64();
        tw = std::time::Instant::now();
        written += len as u64;
        let nfr = plan.k.min(plan.out[1] - col) as u64;
        progress.add(nfr, nfr * (plan.out_npx() * plan.out_type.bytes()) as u64);
    }
    if let Ok(d) = &mut direct
        && !batch.is_empty()
    {
        flush(&mut batch, d)?;
    }
    if opts.timing {
        let how = if direct.is_ok() { "O_DIRECT writes" } else { "H5Dwrite_chunk" };
        eprintln!("[timing] writer: {t_write:.3} s in {how}, {t_wait:.3} s waiting for chunks");
    }
    Ok(written)
}

/// Merge the workers' overviews; positions without frames (a truncated acquisition) are NaN (no
/// data) in the overviews, exact for unbinned, uncropped conversions.
fn merge_workers(results: Vec<WorkerOut>, plan: &Plan, present: usize) -> (Overviews, u64) {
    let mut it = results.into_iter();
    let (mut acc, mut ov, mut read_total) = it.next().expect("at least one worker");
    for (a, o, r) in it {
        acc.merge_patterns(&a);
        read_total += r;
        for (dst, src) in [
            (&mut ov.sum, &o.sum),
            (&mut ov.bf, &o.bf),
            (&mut ov.adf, &o.adf),
            (&mut ov.com_x, &o.com_x),
            (&mut ov.com_y, &o.com_y),
        ] {
            for (d, s) in dst.iter_mut().zip(src) {
                if !s.is_nan() {
                    *d = *s;
                }
            }
        }
    }
    let nf = acc.frames.max(1) as f64;
    ov.mean_dp = acc.dp_sum.iter().map(|&v| (v / nf) as f32).collect();
    ov.max_dp = acc.dp_max.iter().map(|&v| v as f32).collect();
    if plan.mean {
        let f = 1.0 / (plan.bs * plan.bs * plan.bd * plan.bd) as f32;
        for v in [&mut ov.sum, &mut ov.bf, &mut ov.adf, &mut ov.mean_dp, &mut ov.max_dp] {
            v.iter_mut().for_each(|x| *x *= f);
        }
    }
    ov.positions_done = plan.out[0] * plan.out[1];
    ov.complete = true;
    if plan.identity() && present < ov.positions_done {
        for v in [&mut ov.sum, &mut ov.bf, &mut ov.adf, &mut ov.com_x, &mut ov.com_y] {
            v[present..].fill(f32::NAN);
        }
        ov.positions_done = present;
        ov.complete = false; // same convention as overview::compute
    }
    (ov, read_total)
}
