//! MIB (or any dataset) -> EMD conversion, with overviews computed in the same pass.
//!
//! PINNED API (used by the CLI, the TUI and the FFT): keep these names and signatures.
//!
//! Pipeline: `rayon::current_num_threads()` decode threads take output chunks (one scan row segment
//! of `k` frames, `k` from [`emd::chunk_k`]) from a shared counter, read + bin + crop them, feed
//! their own overview [`Accumulator`], and (with `compress`) shuffle + zlib them; finished chunks go
//! through a bounded channel (capacity from the memory budget) to the calling thread, the only one
//! that calls HDF5 (`H5Dwrite_chunk`, direct chunk writes). The file is written as `OUT.emd.part`,
//! marked complete and renamed to `OUT.emd` at the end; any failure removes the part file.

use crate::compute::overview::{self, Accumulator, Geometry, Overviews};
use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::format::emd::{self, DatacubeSpec, MdValue};
use crate::format::mib::PixelType;
use crate::jobs::Progress;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Shuffle + gzip level 1.
    pub compress: bool,
    /// Detector binning factor (1, 2, 4, 8).
    pub bin_detector: usize,
    /// Scan binning factor.
    pub bin_scan: usize,
    /// Scan crop: (row range, col range), half-open.
    pub crop: Option<((usize, usize), (usize, usize))>,
    pub memory_budget: u64,
    /// Overwrite an existing complete output.
    pub force: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            compress: false,
            bin_detector: 1,
            bin_scan: 1,
            crop: None,
            memory_budget: crate::compute::budget::default_budget(),
            force: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub output: PathBuf,
    /// Positions written (filled in by callers that track progress).
    pub positions: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
}

/// Default output path: the input with the `.emd` extension.
pub fn default_output(input: &Path) -> PathBuf {
    input.with_extension("emd")
}

/// The temporary name a conversion writes to.
pub fn part_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(".part");
    PathBuf::from(s)
}

/// Free bytes on the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn hs(b: u64) -> String {
    humansize::format_size(b, humansize::BINARY)
}

/// Geometry of the output (after crop and binning).
#[derive(Debug, Clone, Copy)]
struct Plan {
    in_cols: usize,
    r0: usize,
    c0: usize,
    bs: usize,
    bd: usize,
    out: [usize; 4],
    in_det: (usize, usize),
    in_type: PixelType,
    out_type: PixelType,
    k: usize,
}

impl Plan {
    fn identity(&self) -> bool {
        self.bs == 1 && self.bd == 1 && self.r0 == 0 && self.c0 == 0 && self.out[1] == self.in_cols
    }
    fn chunks_per_row(&self) -> usize {
        self.out[1].div_ceil(self.k)
    }
    fn n_chunks(&self) -> usize {
        self.out[0] * self.chunks_per_row()
    }
    fn out_npx(&self) -> usize {
        self.out[2] * self.out[3]
    }
    fn chunk_bytes(&self) -> usize {
        self.k * self.out_npx() * self.out_type.bytes()
    }
}

fn make_plan(ds: &dyn Dataset, out: &Path, o: &ConvertOptions) -> Result<Plan> {
    let s = ds.scan();
    let (dr, dc) = ds.det();
    if ![1, 2, 4, 8].contains(&o.bin_detector) {
        return Err(Error::Invalid(format!("--bin-detector {}: must be 1, 2, 4 or 8", o.bin_detector)));
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
    let out_type = if factor == 1 {
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
        k: emd::chunk_k(shape, out_type),
    })
}

/// Reads output positions [first, first+n) of output row `r` (first is the column) into `buf`
/// (output type, n frames).
fn read_out_frames(
    ds: &dyn Dataset,
    p: &Plan,
    r: usize,
    c0: usize,
    n: usize,
    buf: &mut FrameBuf,
    tmp: &mut FrameBuf,
    sums: &mut Vec<u32>,
    scratch: &mut ReadScratch,
) -> Result<u64> {
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
        FrameBuf::U32(v) => v.copy_from_slice(sums),
    }
    Ok(read)
}

/// HDF5 shuffle filter: byte planes of `elem`-byte elements.
pub fn shuffle(src: &[u8], elem: usize) -> Vec<u8> {
    if elem <= 1 {
        return src.to_vec();
    }
    let n = src.len() / elem;
    let mut out = vec![0u8; src.len()];
    for b in 0..elem {
        let plane = &mut out[b * n..(b + 1) * n];
        for (i, o) in plane.iter_mut().enumerate() {
            *o = src[i * elem + b];
        }
    }
    // a trailing partial element (never for whole-frame chunks) stays as is
    out[n * elem..].copy_from_slice(&src[n * elem..]);
    out
}

fn compress_chunk(raw: &[u8], elem: usize) -> Vec<u8> {
    use std::io::Write;
    let sh = shuffle(raw, elem);
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::new(emd::deflate_level()),
    );
    z.write_all(&sh).expect("in-memory zlib");
    z.finish().expect("in-memory zlib")
}

struct Chunk {
    row: usize,
    col: usize,
    bytes: Vec<u8>,
}

/// Acquisition metadata for the EMD from a `.mib` dataset (or generic info).
fn acquisition_md(ds: &dyn Dataset) -> Vec<(String, MdValue)> {
    let mut v: Vec<(String, MdValue)> = vec![
        ("detector".into(), MdValue::Str("Merlin".into())),
        ("software".into(), MdValue::Str(format!("emdtui {}", crate::VERSION))),
        ("source_file".into(), MdValue::Str(ds.info().path.display().to_string())),
        ("source_fingerprint".into(), MdValue::Str(ds.fingerprint())),
    ];
    let mib = if ds.info().kind == "mib" { crate::format::mibset::MibSet::open(&ds.info().path).ok() } else { None };
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
    let (mut buf, mut tmp, mut sums, mut sc) =
        (FrameBuf::new(p.out_type), FrameBuf::new(p.in_type), Vec::new(), ReadScratch::default());
    let n = p.out[0] * p.out[1];
    let samples: Vec<usize> = (0..16).map(|i| i * n.saturating_sub(1) / 15).collect();
    for s in &samples {
        read_out_frames(ds, p, s / p.out[1], s % p.out[1], 1, &mut buf, &mut tmp, &mut sums, &mut sc)?;
        for (i, m) in mean.iter_mut().enumerate() {
            *m += buf.get_u32(i) as f32;
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

/// Convert `ds` into the EMD file `out` (written under a temporary name, renamed when complete).
pub fn convert(ds: &dyn Dataset, out: &Path, opts: &ConvertOptions, progress: &Progress) -> Result<ConvertReport> {
    let t0 = std::time::Instant::now();
    let plan = make_plan(ds, out, opts)?;
    if out.exists() && !opts.force {
        return Err(Error::Invalid(format!("{} already exists (use --force to overwrite it)", out.display())));
    }
    let _lock = emd::lock_exclusive(out, std::time::Duration::ZERO, &|_| {})?;
    let part = part_path(out);
    if part.exists() {
        // left by an interrupted run (we hold the lock, so nobody is writing it)
        std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
    }
    // whole chunks are stored: the last chunk of a scan row is padded to k frames
    let raw_bytes = (plan.out[0] * plan.chunks_per_row() * plan.k * plan.out_npx() * plan.out_type.bytes()) as u64;
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let needed = if opts.compress { raw_bytes / 4 } else { raw_bytes } + (1 << 20);
    // EMDTUI_NO_SPACE_CHECK=1 skips the up-front check (tests use it to fill a small filesystem)
    if std::env::var_os("EMDTUI_NO_SPACE_CHECK").is_none()
        && let Some(free) = free_space(dir)
        && free < needed
    {
        return Err(Error::Invalid(format!(
            "{}: not enough free disk space: the output needs about {}{}, {} has {} free",
            out.display(),
            hs(needed),
            if opts.compress { " (compressed estimate)" } else { "" },
            dir.display(),
            hs(free)
        )));
    }
    let res = convert_inner(ds, out, &part, &plan, opts, progress, raw_bytes);
    match res {
        Ok((read, written)) => {
            std::fs::rename(&part, out).map_err(|e| Error::io(out, e))?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(ConvertReport {
                positions: 0,
                output: out.to_path_buf(),
                bytes_read: read,
                bytes_written: written,
                seconds: t0.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            // judge "disk full" before the partial file is removed and frees its space
            let free_now = free_space(dir);
            let full = free_now.is_some_and(|f| f < (16 << 20).max(3 * plan.chunk_bytes() as u64));
            let _ = std::fs::remove_file(&part);
            Err(match e {
                Error::Cancelled => Error::Cancelled,
                e if full => Error::Invalid(format!(
                    "{}: the disk is full ({} left on {}); the output needs about {}; partial output removed ({e})",
                    out.display(),
                    hs(free_now.unwrap_or(0)),
                    dir.display(),
                    hs(needed)
                )),
                e => e,
            })
        }
    }
}

fn convert_inner(
    ds: &dyn Dataset,
    out: &Path,
    part: &Path,
    plan: &Plan,
    opts: &ConvertOptions,
    progress: &Progress,
    raw_bytes: u64,
) -> Result<(u64, u64)> {
    let timing = std::env::var_os("EMDTUI_TIMING").is_some();
    let tt = std::time::Instant::now();
    let lap = |what: &str| {
        if timing {
            eprintln!("[timing] {what}: {:.3} s", tt.elapsed().as_secs_f64());
        }
    };
    let geometry = pick_geometry(ds, plan)?;
    lap("geometry");
    // calibration: carried over from an EMD source, pixels for a .mib; scaled by the binning
    let (r_size, r_units, q_size, q_units) = if ds.info().kind == "emd" {
        emd::calibration(&ds.info().path).unwrap_or((1.0, "pixels".into(), 1.0, "pixels".into()))
    } else {
        (1.0, "pixels".into(), 1.0, "pixels".into())
    };
    let spec = DatacubeSpec {
        shape: plan.out,
        pixel_type: plan.out_type,
        compress: opts.compress,
        r_pixel_size: r_size * plan.bs as f64,
        r_pixel_units: r_units,
        q_pixel_size: q_size * plan.bd as f64,
        q_pixel_units: q_units,
        acquisition: acquisition_md(ds),
        source_fingerprint: ds.fingerprint(),
        source_path: ds.info().path.display().to_string(),
    };
    let (file, data) = emd::create_skeleton(part, &spec)?;
    let n_chunks = plan.n_chunks();
    let cb = plan.chunk_bytes() as u64;
    let threads = rayon::current_num_threads().max(1);
    // in flight: channel + one chunk per worker (+ its read buffers); keep within a quarter of the budget
    let cap = ((opts.memory_budget / 4) / (cb * 3).max(1)).saturating_sub(threads as u64).clamp(2, 64) as usize;
    progress.set_total((plan.out[0] * plan.out[1]) as u64);
    let fail_after: Option<u64> = std::env::var("EMDTUI_FAIL_WRITE_AFTER").ok().and_then(|s| s.parse().ok());

    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk>>(cap);
    let elem = plan.out_type.bytes();
    let mut written = 0u64;
    let mut read_total = 0u64;
    let mut write_err: Option<Error> = None;
    let results: Vec<(Accumulator, Overviews, u64)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, abort, geometry) = (&next, &abort, &geometry);
            handles.push(s.spawn(move || {
                let mut acc = Accumulator::new(geometry, plan.out[2], plan.out[3], None);
                let mut ov = empty_overviews(plan, geometry);
                let (mut buf, mut tmp, mut sums, mut sc) =
                    (FrameBuf::new(plan.out_type), FrameBuf::new(plan.in_type), Vec::new(), ReadScratch::default());
                let mut read = 0u64;
                let cpr = plan.chunks_per_row();
                loop {
                    if abort.load(Ordering::Relaxed) || progress.is_cancelled() {
                        break;
                    }
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= n_chunks {
                        break;
                    }
                    let (r, c0) = (j / cpr, (j % cpr) * plan.k);
                    let n = plan.k.min(plan.out[1] - c0);
                    let res = read_out_frames(ds, plan, r, c0, n, &mut buf, &mut tmp, &mut sums, &mut sc).map(|b| {
                        read += b;
                        acc.add(r * plan.out[1] + c0, &buf, &mut ov);
                        buf.resize(plan.k * plan.out_npx()); // pad the last chunk of a row with zeros
                        let raw = buf.as_le_bytes();
                        let bytes = if opts.compress { compress_chunk(raw, elem) } else { raw.to_vec() };
                        Chunk { row: r, col: c0, bytes }
                    });
                    let failed = res.is_err();
                    if tx.send(res).is_err() || failed {
                        break;
                    }
                }
                (acc, ov, read)
            }));
        }
        drop(tx);
        // the writer: this thread does every HDF5 call
        let did = data.id();
        let (mut t_write, mut t_wait) = (0f64, 0f64);
        let mut tw = std::time::Instant::now();
        for msg in rx.iter() {
            t_wait += tw.elapsed().as_secs_f64();
            let ch = match msg {
                Ok(c) => c,
                Err(e) => {
                    write_err = Some(e);
                    break;
                }
            };
            if let Some(lim) = fail_after
                && written + ch.bytes.len() as u64 > lim
            {
                write_err = Some(Error::io(
                    part,
                    std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "injected write failure (EMDTUI_FAIL_WRITE_AFTER)",
                    ),
                ));
                break;
            }
            let offset: [u64; 4] = [ch.row as u64, ch.col as u64, 0, 0];
            let t1 = std::time::Instant::now();
            let rc = hdf5::sync::sync(|| unsafe {
                hdf5_sys::h5d::H5Dwrite_chunk(
                    did,
                    hdf5_sys::h5p::H5P_DEFAULT,
                    0,
                    offset.as_ptr(),
                    ch.bytes.len(),
                    ch.bytes.as_ptr().cast(),
                )
            });
            if rc < 0 {
                write_err =
                    Some(Error::hdf5(part, format!("writing chunk at scan row {} col {} failed", ch.row, ch.col)));
                break;
            }
            t_write += t1.elapsed().as_secs_f64();
            tw = std::time::Instant::now();
            written += ch.bytes.len() as u64;
            let nfr = plan.k.min(plan.out[1] - ch.col) as u64;
            progress.add(nfr, nfr * (plan.out_npx() * plan.out_type.bytes()) as u64);
        }
        if timing {
            eprintln!("[timing] writer: {t_write:.3} s in H5Dwrite_chunk, {t_wait:.3} s waiting for chunks");
        }
        if write_err.is_some() {
            abort.store(true, Ordering::Relaxed);
        }
        drop(rx);
        handles.into_iter().map(|h| h.join().expect("conversion worker panicked")).collect()
    });
    lap("chunks written");
    if let Some(e) = write_err {
        return Err(e);
    }
    progress.check()?;
    if next.load(Ordering::Relaxed) < n_chunks {
        return Err(Error::Invalid(format!("{}: conversion stopped before all chunks were written", out.display())));
    }
    // merge the workers' overviews
    let mut it = results.into_iter();
    let (mut acc, mut ov, r0) = it.next().expect("at least one worker");
    read_total += r0;
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
    ov.positions_done = plan.out[0] * plan.out[1];
    ov.complete = true;
    // a truncated acquisition: positions without frames are zero in the datacube, NaN (no data) in
    // the overviews (exact for unbinned, uncropped conversions)
    let present = ds.positions_present();
    if plan.identity() && present < ov.positions_done {
        for v in [&mut ov.sum, &mut ov.bf, &mut ov.adf, &mut ov.com_x, &mut ov.com_y] {
            v[present..].fill(f32::NAN);
        }
        ov.positions_done = present;
        ov.complete = false; // same convention as overview::compute
    }

    let e = |x: hdf5::Error| Error::hdf5(part, x);
    let fp = emd::datacube_fingerprint(&data, part)?;
    let dc = file.group(emd::DATACUBE).map_err(e)?;
    emd::set_str_attr(&dc, "emdtui_fingerprint", &fp).map_err(e)?;
    drop(dc);
    drop(data);
    emd::write_overviews_into(&file, part, emd::DATACUBE, &ov, &fp)?;
    emd::append_log(
        &file,
        part,
        &format!(
            "converted from {} (bin detector {}, bin scan {}, crop {:?}, compress {}), overviews cached",
            ds.info().path.display(),
            opts.bin_detector,
            opts.bin_scan,
            opts.crop,
            opts.compress
        ),
    )?;
    file.flush().map_err(e)?;
    lap("overviews + metadata");
    emd::mark_complete(&file, part)?;
    drop(file);
    let f = std::fs::File::open(part).map_err(|x| Error::io(part, x))?;
    f.sync_all().map_err(|x| Error::io(part, x))?;
    lap("fsync");
    let size = f.metadata().map(|m| m.len()).unwrap_or(written);
    let _ = raw_bytes;
    Ok((read_total, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_makes_byte_planes() {
        let v: Vec<u16> = vec![0x0102, 0x0304, 0x0506];
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(shuffle(&b, 2), vec![0x02, 0x04, 0x06, 0x01, 0x03, 0x05]);
        assert_eq!(shuffle(&b, 1), b);
    }

    #[test]
    fn part_path_appends_part() {
        assert_eq!(part_path(Path::new("/d/x.emd")), PathBuf::from("/d/x.emd.part"));
        assert!(free_space(Path::new("/")).is_some_and(|f| f > 0));
    }
}

/// True when `emd` is a complete emdtui conversion of `source` (same source fingerprint), so it
/// can be used instead of converting again.
pub fn is_converted_from(emd: &Path, source: &dyn Dataset) -> bool {
    if !emd.is_file() {
        return false;
    }
    match crate::format::emd::EmdFile::open(emd) {
        Ok(f) => f.complete == Some(true) && f.source_fingerprint.as_deref() == Some(source.fingerprint().as_str()),
        Err(_) => false,
    }
}
