//! Chunked out-of-core 4D FFT, cached in the EMD file under `/emdtui/cache/`.
//!
//! PINNED API (used by the CLI and the TUI's FFT explorer): keep these names and signatures.
//!
//! What is computed: G(Q, K) = sum_R I(R, K) exp(-2 pi i Q.R) for every (cropped, binned)
//! detector pixel K — the unnormalised forward 2-D FFT over the two scan axes (numpy
//! `fft.fft2(a, axes=(0, 1))`), fftshifted over Q so Q = 0 sits at index (Qr/2, Qc/2),
//! complex64, logical axis order (Q row, Q col, K row, K col). With [`FftAxes::All`] the
//! transform also runs over the two detector axes of the cropped/binned region (numpy
//! `fft.fftn` over all four axes) and those axes are fftshifted too.
//!
//! How (two passes, IO independent of the memory budget):
//! * pass 1 reads the dataset once in scan order (parallel decode), crops/bins each frame (and
//!   for `All` transforms it over the detector axes: the 4-D transform is separable), and
//!   writes it K-tile-major into a scratch file next to the EMD (`.NAME.fft-scratch`);
//! * pass 2 loads groups of K tiles that fit the budget (one sequential read each), transposes
//!   them pixel-major, 2-D FFTs every pixel's scan image on rayon with shared plans and
//!   per-thread scratch, fftshifts, and writes whole HDF5 chunks with `H5Dwrite_chunk`.
//!
//! The output dataset is created with all chunks allocated up front (and no fill), so pass 2
//! only overwrites raw data in place: a job killed at any moment leaves the file's metadata
//! consistent. Completed K tiles are recorded in `blocks_done` (flushed after each group) and the
//! `complete` attribute is set last; a rerun with the same parameters and source resumes.

use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use hdf5::types::VarLenUnicode;
use num_complex::Complex32;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Version of the on-disk cache layout; a cache with another version is stale.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// HDF5 group of the cache.
pub const GROUP: &str = "/emdtui/cache/fft_complex";
pub const POWER_GROUP: &str = "/emdtui/cache/fft_power";
/// Target chunk size in complex64 elements (128 KiB).
const CHUNK_ELEMS: f64 = 16384.0;
/// Pass-2 memory per element besides the scratch element: the pixel-major complex buffer, the
/// assembled chunks, the previous group's chunks in flight to the writer, and a Q-major tile copy.
const PASS2_BYTES_PER_ELEM: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FftAxes {
    /// 2-D FFT over the scan axes for every detector pixel.
    Scan,
    /// Over all four axes.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Amp,
    Phase,
    Real,
    Imag,
}

impl Part {
    pub fn parse(s: &str) -> Option<Part> {
        match s {
            "amp" | "abs" | "amplitude" => Some(Part::Amp),
            "phase" | "arg" => Some(Part::Phase),
            "real" | "re" => Some(Part::Real),
            "imag" | "im" => Some(Part::Imag),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FftParams {
    pub axes: FftAxes,
    /// None = full detector; Some((centre, radius)) = BF disk crop (radius includes the margin).
    pub crop: Option<((f32, f32), f32)>,
    pub bin: usize,
}

impl Default for FftParams {
    fn default() -> Self {
        FftParams { axes: FftAxes::Scan, crop: None, bin: 1 }
    }
}

/// Per-run numbers, printed by the CLI.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FftReport {
    /// (Q rows, Q cols, K rows, K cols).
    pub shape: [usize; 4],
    pub chunk: [usize; 4],
    /// Detector region used: (row0, col0, rows, cols) in unbinned detector pixels.
    pub det_box: [usize; 4],
    pub output_bytes: u64,
    pub scratch_bytes: u64,
    /// Bytes decoded from the source (frames read, incl. the BF-disk sample if any).
    pub input_bytes_read: u64,
    pub scratch_bytes_written: u64,
    pub scratch_bytes_read: u64,
    pub output_bytes_written: u64,
    pub blocks_total: usize,
    /// K tiles computed in this run.
    pub blocks_computed: usize,
    /// K tiles found complete from an interrupted earlier run.
    pub blocks_resumed: usize,
    /// Pass 1 positions skipped because an interrupted run had written them.
    pub pass1_positions_resumed: usize,
    pub pass2_groups: usize,
    pub seconds_pass1: f64,
    pub seconds_pass2: f64,
    pub already_complete: bool,
    /// How pass 2 wrote the output: "direct" (O_DIRECT at the chunk addresses) or why it
    /// went through HDF5's buffered `H5Dwrite_chunk` instead.
    pub output_io: String,
}

impl FftReport {
    pub fn bytes_read(&self) -> u64 {
        self.input_bytes_read + self.scratch_bytes_read
    }
    pub fn bytes_written(&self) -> u64 {
        self.scratch_bytes_written + self.output_bytes_written
    }
}

/// Extra knobs for [`compute_with`] (tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Cancel (as if the user did) after this many pass-2 groups were completed in this run.
    pub cancel_after_groups: Option<usize>,
    /// Upper bound on K tiles per pass-2 group (forces many blocks in tests).
    pub max_tiles_per_group: Option<usize>,
    /// Chunk shape override [Q rows, Q cols, K rows, K cols] (clamped to the data).
    pub chunk: Option<[usize; 4]>,
    /// Sleep this long after each pass-2 group (to test kills; env `EMDTUI_FFT_GROUP_DELAY_MS` in the CLI).
    pub group_delay: Option<std::time::Duration>,
    /// Say on stderr (not only in the log) when another process holds the EMD writer lock.
    pub announce_wait: bool,
    /// Write the output through HDF5's buffered `H5Dwrite_chunk` even where direct writes
    /// would work (tests compare both; env `EMDTUI_FFT_BUFFERED` in the CLI).
    pub buffered_output: bool,
}

/// Scratch element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Elem {
    U16,
    F32,
    C32,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::U16 => 2,
            Elem::F32 => 4,
            Elem::C32 => 8,
        }
    }
}

/// Everything derived from the source and parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
struct Layout {
    scan: (usize, usize),
    det: (usize, usize),
    /// (row0, col0, rows, cols), unbinned, rows/cols multiples of bin.
    det_box: [usize; 4],
    bin: usize,
    k: (usize, usize),
    chunk: [usize; 4],
    elem: Elem,
}

impl Layout {
    fn n(&self) -> usize {
        self.scan.0 * self.scan.1
    }
    fn kpix(&self) -> usize {
        self.k.0 * self.k.1
    }
    fn tiles(&self) -> (usize, usize) {
        (self.k.0.div_ceil(self.chunk[2]), self.k.1.div_ceil(self.chunk[3]))
    }
    fn n_tiles(&self) -> usize {
        let t = self.tiles();
        t.0 * t.1
    }
    /// (row0, col0, rows, cols) of K tile t in binned K coordinates.
    fn tile_rect(&self, t: usize) -> (usize, usize, usize, usize) {
        let (_, tc) = self.tiles();
        let (ti, tj) = (t / tc, t % tc);
        let r0 = ti * self.chunk[2];
        let c0 = tj * self.chunk[3];
        (r0, c0, (self.k.0 - r0).min(self.chunk[2]), (self.k.1 - c0).min(self.chunk[3]))
    }
    /// Pixel offsets of each tile in the K-tile-major order (len n_tiles + 1).
    fn tile_offsets(&self) -> Vec<usize> {
        let mut v = vec![0usize];
        for t in 0..self.n_tiles() {
            let (_, _, h, w) = self.tile_rect(t);
            v.push(v[t] + h * w);
        }
        v
    }
    fn output_bytes(&self) -> u64 {
        // whole chunks are allocated, including the padding of edge chunks
        let c = &self.chunk;
        let nch = self.scan.0.div_ceil(c[0]) * self.scan.1.div_ceil(c[1]) * self.n_tiles();
        (nch * c[0] * c[1] * c[2] * c[3] * 8) as u64
    }
    fn scratch_bytes(&self) -> u64 {
        (self.n() * self.kpix() * self.elem.size()) as u64
    }
}

/// The detector box (unbinned) for the parameters.
fn det_box(det: (usize, usize), p: &FftParams) -> Result<[usize; 4]> {
    let b = p.bin.max(1);
    let (mut y0, mut x0, mut y1, mut x1) = (0usize, 0usize, det.0, det.1);
    if let Some(((cy, cx), r)) = p.crop {
        if !(r > 0.0) || !cy.is_finite() || !cx.is_finite() {
            return Err(Error::Invalid(format!("FFT crop: invalid centre ({cy}, {cx}) or radius {r}")));
        }
        y0 = (cy - r).floor().max(0.0) as usize;
        x0 = (cx - r).floor().max(0.0) as usize;
        y1 = ((cy + r).ceil() as isize + 1).clamp(0, det.0 as isize) as usize;
        x1 = ((cx + r).ceil() as isize + 1).clamp(0, det.1 as isize) as usize;
        if y0 >= y1 || x0 >= x1 {
            return Err(Error::Invalid(format!(
                "FFT crop: disk at ({cy}, {cx}) radius {r} lies outside the {}x{} detector",
                det.0, det.1
            )));
        }
    }
    let (h, w) = ((y1 - y0) / b * b, (x1 - x0) / b * b);
    if h == 0 || w == 0 {
        return Err(Error::Invalid(format!(
            "FFT: detector region {}x{} is smaller than the binning {b}",
            y1 - y0,
            x1 - x0
        )));
    }
    Ok([y0, x0, h, w])
}

fn make_layout(ds: &dyn Dataset, p: &FftParams, budget: u64, opts: &RunOptions) -> Result<Layout> {
    let scan = (ds.scan().rows, ds.scan().cols);
    let det = ds.det();
    if scan.0 == 0 || scan.1 == 0 {
        return Err(Error::Invalid(format!("{}: empty scan", ds.info().path.display())));
    }
    if p.bin == 0 {
        return Err(Error::Invalid("FFT: --bin must be at least 1".into()));
    }
    let bx = det_box(det, p)?;
    let k = (bx[2] / p.bin, bx[3] / p.bin);
    let elem = match p.axes {
        FftAxes::All => Elem::C32,
        FftAxes::Scan => {
            if p.bin == 1 && ds.info().pixel_type != crate::format::mib::PixelType::U32 {
                Elem::U16
            } else {
                Elem::F32
            }
        }
    };
    let n = scan.0 * scan.1;
    let kpix = k.0 * k.1;
    let chunk = if let Some(c) = opts.chunk {
        [c[0].clamp(1, scan.0), c[1].clamp(1, scan.1), c[2].clamp(1, k.0), c[3].clamp(1, k.1)]
    } else {
        // Reading a detector image at fixed Q touches qb^2 * K elements, a Q image at fixed K
        // touches kb^2 * Q elements; with qb^2 kb^2 = C, equal costs give qb^4 = C Q / K.
        let qb = (CHUNK_ELEMS * n as f64 / kpix as f64).powf(0.25).round().max(1.0) as usize;
        let kb = (CHUNK_ELEMS.sqrt() / qb as f64).round().max(1.0) as usize;
        // same number of chunks along each axis, with the least padding
        let even = |c: usize, n: usize| n.div_ceil(n.div_ceil(c.clamp(1, n)));
        [even(qb, scan.0), even(qb, scan.1), even(kb, k.0), even(kb, k.1)]
    };
    let mut l = Layout { scan, det, det_box: bx, bin: p.bin, k, chunk, elem };
    // one K tile (all Q) must fit the pass-2 budget: shrink the K chunk if not
    let per_pix = (n * (elem.size() + PASS2_BYTES_PER_ELEM)) as u64;
    let avail = pass2_budget(budget, n);
    while (l.chunk[2] * l.chunk[3]) as u64 * per_pix > avail && l.chunk[2] * l.chunk[3] > 1 {
        if l.chunk[2] >= l.chunk[3] { l.chunk[2] -= 1 } else { l.chunk[3] -= 1 }
    }
    if opts.chunk.is_none() {
        l.chunk = direct_friendly(l.chunk, [scan.0, scan.1, k.0, k.1], l.chunk[2] * l.chunk[3]);
    }
    if per_pix > avail {
        return Err(Error::Invalid(format!(
            "FFT: memory budget {} too small: one detector pixel over the {}x{} scan needs {} (use --memory)",
            hs(budget),
            scan.0,
            scan.1,
            hs(per_pix + (budget - avail))
        )));
    }
    Ok(l)
}

/// The chunk shape near `c` (each side within 1/2 to 3/2 of it) whose byte size is a multiple
/// of 4 KiB, so that pass 2 can write it with O_DIRECT, with the least padded output and then
/// the size closest to `c`'s; `c` itself when no such shape exists. A K tile (the last two
/// sides) stays at most `max_k_tile` pixels, the most the pass-2 budget holds.
fn direct_friendly(c: [usize; 4], dims: [usize; 4], max_k_tile: usize) -> [usize; 4] {
    let elems = |c: &[usize; 4]| c.iter().product::<usize>();
    if elems(&c) * 8 % 4096 == 0 {
        return c;
    }
    let range = |i: usize| (c[i] / 2).max(1)..=(c[i] * 3 / 2 + 1).min(dims[i]);
    let padded = |c: &[usize; 4]| (0..4).map(|i| dims[i].div_ceil(c[i]) * c[i]).product::<usize>();
    let target = elems(&c) as f64;
    let mut best: Option<([usize; 4], usize, f64)> = None;
    for a in range(0) {
        for b in range(1) {
            for y in range(2) {
                for x in range(3) {
                    let cand = [a, b, y, x];
                    let e = elems(&cand);
                    if e * 8 % 4096 != 0 || y * x > max_k_tile {
                        continue;
                    }
                    let (pad, dist) = (padded(&cand), (e as f64 / target).ln().abs());
                    if best.is_none_or(|(_, bp, bd)| pad < bp || (pad == bp && dist < bd)) {
                        best = Some((cand, pad, dist));
                    }
                }
            }
        }
    }
    best.map(|b| b.0).unwrap_or(c)
}

/// Budget left for pass-2 group buffers after per-thread scratch.
fn pass2_budget(budget: u64, n: usize) -> u64 {
    let threads = rayon::current_num_threads() as u64;
    budget.saturating_sub(threads * n as u64 * 8 * 3) / 4 * 3
}

fn hs(b: u64) -> String {
    humansize::format_size(b, humansize::BINARY)
}

/// Free bytes for unprivileged users on the filesystem holding `path` (or its directory).
pub fn free_disk_space(path: &Path) -> Option<u64> {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
    crate::compute::convert::free_space(dir)
}

fn check_space(emd: &Path, need: u64, l: &Layout) -> Result<()> {
    if let Some(free) = free_disk_space(emd) {
        if need > free {
            return Err(Error::Invalid(format!(
                "{}: not enough free disk space for the FFT: needs {} (output {} + scratch {}), {} free",
                emd.display(),
                hs(need),
                hs(l.output_bytes()),
                hs(l.scratch_bytes()),
                hs(free)
            )));
        }
    }
    Ok(())
}

/// Mean pattern of up to `max_frames` frames spread over the scan.
pub fn sample_mean_pattern(ds: &dyn Dataset, max_frames: usize) -> Result<Vec<f32>> {
    let n = ds.positions_present().min(ds.scan().positions());
    let (r, c) = ds.det();
    let mut acc = vec![0f64; r * c];
    if n == 0 {
        return Ok(vec![0.0; r * c]);
    }
    let m = max_frames.clamp(1, n);
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    let mut rs = ReadScratch::default();
    for i in 0..m {
        let p = i * n / m;
        ds.read_positions(p, 1, &mut buf, &mut rs)?;
        crate::with_frames!(&buf, v => for (a, &x) in acc.iter_mut().zip(v.iter()) { *a += x as f64 });
    }
    Ok(acc.iter().map(|&a| (a / m as f64) as f32).collect())
}

/// Automatic BF crop: the disk found in the mean of a sample of frames, radius plus a margin
/// (20 % + 4 px, room for descan and the disk's own shifts).
pub fn auto_crop(ds: &dyn Dataset) -> Result<((f32, f32), f32)> {
    let (r, c) = ds.det();
    let mean = sample_mean_pattern(ds, 256)?;
    let (centre, rad) = crate::compute::overview::find_bf_disk(&mean, r, c).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no bright-field disk found in the mean pattern; give --center and --radius, or use --crop full",
            ds.info().path.display()
        ))
    })?;
    Ok((centre, rad * 1.2 + 4.0))
}

/// Margin applied by [`auto_crop`] to a disk radius.
pub fn crop_radius_with_margin(r: f32) -> f32 {
    r * 1.2 + 4.0
}

// ---------------------------------------------------------------- FFT helpers

struct Plans2 {
    rows: usize,
    cols: usize,
    row: Arc<dyn Fft<f32>>,
    col: Arc<dyn Fft<f32>>,
    scratch_len: usize,
}

impl Plans2 {
    fn new(rows: usize, cols: usize) -> Plans2 {
        let mut pl = FftPlanner::<f32>::new();
        let row = pl.plan_fft_forward(cols);
        let col = pl.plan_fft_forward(rows);
        let scratch_len = row.get_inplace_scratch_len().max(col.get_inplace_scratch_len());
        Plans2 { rows, cols, row, col, scratch_len }
    }
    /// In-place 2-D FFT of a rows x cols image, then fftshift of both axes.
    fn fft2_shift(&self, buf: &mut [Complex32], tmp: &mut Vec<Complex32>, scratch: &mut Vec<Complex32>) {
        let (r, c) = (self.rows, self.cols);
        tmp.resize(r * c, Complex32::default());
        scratch.resize(self.scratch_len, Complex32::default());
        if c > 1 {
            self.row.process_with_scratch(buf, scratch);
        }
        if r > 1 {
            transpose::transpose(buf, tmp, c, r);
            self.col.process_with_scratch(tmp, scratch);
            transpose::transpose(tmp, buf, r, c);
        }
        fftshift2(buf, r, c, tmp);
    }
}

/// numpy.fft.fftshift over both axes: out[(i + r/2) % r][(j + c/2) % c] = in[i][j].
fn fftshift2(buf: &mut [Complex32], r: usize, c: usize, tmp: &mut Vec<Complex32>) {
    let (hr, hc) = (r / 2, c / 2);
    if hr == 0 && hc == 0 {
        return;
    }
    tmp.resize(r * c, Complex32::default());
    tmp.copy_from_slice(buf);
    for i in 0..r {
        let oi = (i + hr) % r;
        let src = &tmp[i * c..(i + 1) * c];
        let dst = &mut buf[oi * c..(oi + 1) * c];
        // dst[(j + hc) % c] = src[j]
        dst[hc..].copy_from_slice(&src[..c - hc]);
        dst[..hc].copy_from_slice(&src[c - hc..]);
    }
}

trait Px: Copy {
    fn f(self) -> f32;
}
impl Px for u8 {
    fn f(self) -> f32 {
        self as f32
    }
}
impl Px for u16 {
    fn f(self) -> f32 {
        self as f32
    }
}
impl Px for u32 {
    fn f(self) -> f32 {
        self as f32
    }
}

/// Crop + bin (sum) one frame into `out` (k rows x k cols).
fn crop_bin<T: Px>(frame: &[T], l: &Layout, out: &mut [f32]) {
    let [y0, x0, _, _] = l.det_box;
    let b = l.bin;
    let dc = l.det.1;
    let (kr, kc) = l.k;
    if b == 1 {
        for r in 0..kr {
            let src = &frame[(y0 + r) * dc + x0..(y0 + r) * dc + x0 + kc];
            for (o, &v) in out[r * kc..(r + 1) * kc].iter_mut().zip(src) {
                *o = v.f();
            }
        }
        return;
    }
    out.fill(0.0);
    for r in 0..kr * b {
        let orow = &mut out[(r / b) * kc..(r / b + 1) * kc];
        let src = &frame[(y0 + r) * dc + x0..(y0 + r) * dc + x0 + kc * b];
        for (j, &v) in src.iter().enumerate() {
            orow[j / b] += v.f();
        }
    }
}

// ---------------------------------------------------------------- HDF5 helpers

fn h5e(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
    move |e| Error::hdf5(path, e)
}

fn set_str_attr(loc: &hdf5::Location, name: &str, v: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = v.parse().map_err(|e| hdf5::Error::from(format!("{e:?}")))?;
    if loc.attr_names()?.iter().any(|n| n == name) {
        loc.attr(name)?.write_scalar(&v)
    } else {
        loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&v)
    }
}

fn get_str_attr(loc: &hdf5::Location, name: &str) -> hdf5::Result<String> {
    Ok(loc.attr(name)?.read_scalar::<VarLenUnicode>()?.as_str().to_string())
}

fn ensure_group(f: &hdf5::File, path: &str) -> hdf5::Result<hdf5::Group> {
    let mut cur = f.group("/")?;
    for part in path.split('/').filter(|s| !s.is_empty()) {
        cur = if cur.link_exists(part) { cur.group(part)? } else { cur.create_group(part)? };
    }
    Ok(cur)
}

/// The identity of a cache: a rerun with the same key resumes it.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Clone)]
struct Key {
    format: u32,
    fingerprint: String,
    params: FftParams,
    layout: Layout,
}

fn params_json(p: &FftParams, l: &Layout) -> String {
    serde_json::json!({
        "axes": match p.axes { FftAxes::Scan => "scan", FftAxes::All => "all" },
        "crop": match p.crop {
            None => serde_json::json!("full"),
            Some(((cy, cx), r)) => serde_json::json!({"center": [cy, cx], "radius": r}),
        },
        "det_box": {"row0": l.det_box[0], "col0": l.det_box[1], "rows": l.det_box[2], "cols": l.det_box[3]},
        "bin": l.bin,
        "bin_mode": "sum",
        "scan_shape": [l.scan.0, l.scan.1],
        "shape": [l.scan.0, l.scan.1, l.k.0, l.k.1],
        "chunks": l.chunk,
        "sign": "exp(-2 pi i Q.R), unnormalised (numpy.fft.fft2/fftn)",
        "shift": if p.axes == FftAxes::All {
            "numpy.fft.fftshift on all four axes: zero frequency at index n//2"
        } else {
            "numpy.fft.fftshift on the Q axes: Q = 0 at index n//2"
        },
    })
    .to_string()
}

fn now_iso() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // civil date from unix days (Howard Hinnant's algorithm)
    let days = (t / 86400) as i64;
    let s = t % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, (s / 60) % 60, s % 60)
}

fn write_dim(g: &hdf5::Group, i: usize, vals: &[f32], name: &str, units: &str) -> hdf5::Result<()> {
    let nm = format!("dim{i}");
    if g.link_exists(&nm) {
        g.unlink(&nm)?;
    }
    let d = g.new_dataset_builder().with_data(&ndarray::Array1::from(vals.to_vec())).create(nm.as_str())?;
    set_str_attr(&d, "name", name)?;
    set_str_attr(&d, "units", units)
}

fn freq_axis(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - (n / 2) as f32) / n as f32).collect()
}

/// State file of pass 1 (next to the scratch file).
#[derive(serde::Serialize, serde::Deserialize)]
struct ScratchState {
    key: String,
    positions_done: usize,
    /// Pass-2 K tiles done (informational; the HDF5 `blocks_done` is authoritative).
    #[serde(default)]
    tiles_done: usize,
}

pub fn scratch_paths(emd: &Path) -> (PathBuf, PathBuf) {
    let name = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    (emd.with_file_name(format!(".{name}.fft-scratch")), emd.with_file_name(format!(".{name}.fft-scratch.json")))
}

fn write_state(path: &Path, st: &ScratchState) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(st).unwrap()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

// ---------------------------------------------------------------- compute

/// Compute the FFT of `ds` into the EMD (HDF5) file `emd` (created if missing), resuming from
/// completed blocks of an interrupted run with the same parameters and source.
pub fn compute(
    ds: &dyn Dataset,
    emd: &Path,
    params: &FftParams,
    memory_budget: u64,
    progress: &Progress,
) -> Result<FftReport> {
    compute_with(ds, emd, params, memory_budget, progress, &RunOptions::default())
}

/// Output and scratch sizes the run would need (bytes): (output, scratch).
pub fn planned_sizes(ds: &dyn Dataset, params: &FftParams, memory_budget: u64) -> Result<(u64, u64, [usize; 4])> {
    let l = make_layout(ds, params, memory_budget, &RunOptions::default())?;
    Ok((l.output_bytes(), l.scratch_bytes(), [l.scan.0, l.scan.1, l.k.0, l.k.1]))
}

pub fn compute_with(
    ds: &dyn Dataset,
    emd: &Path,
    params: &FftParams,
    memory_budget: u64,
    progress: &Progress,
    opts: &RunOptions,
) -> Result<FftReport> {
    let mut l = make_layout(ds, params, memory_budget, opts)?;
    let fingerprint = ds.fingerprint();
    let n = l.n();
    let mut rep = FftReport { det_box: l.det_box, ..Default::default() };

    // ---- a new file: refuse before creating anything when the disk is too small
    if !emd.exists() {
        check_space(emd, l.output_bytes() + l.scratch_bytes(), &l)?;
    }
    // ---- open/create the file; inspect an existing cache
    // One writer at a time (the EMD writer lock); this process's reader handles are closed and
    // reopen read-only on top of our read-write open (HDF5 shares the file within a process).
    let announce = opts.announce_wait;
    let _lock = crate::format::emd::lock_exclusive(emd, crate::format::emd::WRITE_WAIT, &move |m| {
        log::warn!("{m}");
        if announce {
            eprintln!("waiting: {m}");
        }
    })?;
    drop(crate::format::emd::close_readers(emd));
    // large allocations (the output chunks) start on 4 KiB boundaries, so that they can be
    // written with O_DIRECT (see DirectWriter); objects created now use the HDF5 1.10 format,
    // whose fixed-array chunk index is one block, so early-allocated chunks follow each other
    // in chunk order (the 1.8 B-tree index interleaves its nodes with them)
    let fapl = |p: &mut hdf5::plist::FileAccessBuilder| {
        p.file_locking(false)
            .alignment(64 << 10, 4096)
            .libver_bounds(hdf5::file::LibraryVersion::V110, hdf5::file::LibraryVersion::latest());
    };
    let file = if emd.exists() {
        hdf5::File::with_options()
            .with_fapl(|p| {
                fapl(p);
                p
            })
            .open_rw(emd)
            .map_err(h5e(emd))?
    } else {
        hdf5::File::with_options()
            .with_fapl(|p| {
                fapl(p);
                p
            })
            .create_excl(emd)
            .map_err(h5e(emd))?
    };
    let mut key = Key {
        format: CACHE_FORMAT_VERSION,
        fingerprint: fingerprint.clone(),
        params: params.clone(),
        layout: l.clone(),
    };
    let mut reuse = false;
    if file.link_exists(GROUP) {
        let g = file.group(GROUP).map_err(h5e(emd))?;
        let old: Option<Key> = get_str_attr(&g, "emdtui_key").ok().and_then(|s| serde_json::from_str(&s).ok());
        if let Some(old) = old {
            let same_source =
                old.format == key.format && old.fingerprint == key.fingerprint && old.params == key.params;
            let chunk_ok = opts.chunk.is_none_or(|c| c == old.layout.chunk);
            let mut cand = l.clone();
            cand.chunk = old.layout.chunk;
            if same_source && chunk_ok && cand == old.layout {
                let per_tile = (cand.chunk[2] * cand.chunk[3] * n * (cand.elem.size() + PASS2_BYTES_PER_ELEM)) as u64;
                if per_tile <= pass2_budget(memory_budget, n) {
                    l = cand;
                    key.layout = l.clone();
                    reuse = true;
                }
            }
        }
        if reuse && g.attr("complete").and_then(|a| a.read_scalar::<u8>()).unwrap_or(0) == 1 {
            rep.already_complete = true;
            rep.shape = [l.scan.0, l.scan.1, l.k.0, l.k.1];
            rep.chunk = l.chunk;
            rep.output_bytes = l.output_bytes();
            rep.blocks_total = l.n_tiles();
            rep.blocks_resumed = l.n_tiles();
            return Ok(rep);
        }
    }
    rep.shape = [l.scan.0, l.scan.1, l.k.0, l.k.1];
    rep.chunk = l.chunk;
    rep.output_bytes = l.output_bytes();
    rep.scratch_bytes = l.scratch_bytes();
    let key_s = serde_json::to_string(&key).unwrap();
    let (scratch_path, state_path) = scratch_paths(emd);
    let state: Option<ScratchState> = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|s: &ScratchState| s.key == key_s);
    let scratch_ok =
        state.is_some() && std::fs::metadata(&scratch_path).map(|m| m.len() == l.scratch_bytes()).unwrap_or(false);
    let pass1_done_positions = if scratch_ok { state.as_ref().unwrap().positions_done.min(n) } else { 0 };

    // ---- disk space check
    let need = if reuse { 0 } else { l.output_bytes() } + if scratch_ok { 0 } else { l.scratch_bytes() };
    check_space(emd, need, &l)?;

    // ---- create the cache datasets (all storage allocated now: pass 2 never changes metadata)
    let n_tiles = l.n_tiles();
    if !reuse {
        for gp in [GROUP, POWER_GROUP] {
            if file.link_exists(gp) {
                let (parent, name) = gp.rsplit_once('/').unwrap();
                file.group(parent).and_then(|p| p.unlink(name)).map_err(h5e(emd))?;
            }
        }
        let g = ensure_group(&file, GROUP).map_err(h5e(emd))?;
        let make = || -> hdf5::Result<()> {
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
            set_str_attr(&g, "emdtui_key", &key_s)?;
            set_str_attr(&g, "params", &params_json(params, &l))?;
            set_str_attr(&g, "source_fingerprint", &fingerprint)?;
            set_str_attr(&g, "tool_version", crate::VERSION)?;
            g.new_attr::<u32>().shape(()).create("cache_format_version")?.write_scalar(&CACHE_FORMAT_VERSION)?;
            set_str_attr(&g, "created", &now_iso())?;
            set_str_attr(
                &g,
                "layout",
                "(Q row, Q col, K row, K col); K tiles completed in blocks_done; valid only when complete == 1",
            )?;
            let pg = ensure_group(&file, POWER_GROUP)?;
            pg.new_dataset::<f32>()
                .shape([l.scan.0, l.scan.1])
                .alloc_time(Some(hdf5::dataset::AllocTime::Early))
                .create("data")?
                .write_raw(&vec![0f32; n])?;
            set_str_attr(&pg, "description", "sum over K of |G(Q, K)|^2; valid only when fft_complex@complete == 1")?;
            // provenance in the form every emdtui cache carries (listed by `emdtui info`)
            let pj: serde_json::Value = serde_json::from_str(&params_json(params, &l)).unwrap_or_default();
            for grp in [&g, &pg] {
                crate::format::emd::stamp_cache(grp, &pj, &fingerprint)?;
                crate::format::emd::set_int_attr(grp, "emdtui_complete", 0)?;
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
            write_dim(&g, 0, &freq_axis(l.scan.0), "Qy", "1/scan step")?;
            write_dim(&g, 1, &freq_axis(l.scan.1), "Qx", "1/scan step")?;
            write_dim(&g, 2, &kaxis(0), "Ky", kunits)?;
            write_dim(&g, 3, &kaxis(1), "Kx", kunits)?;
            write_dim(&pg, 0, &freq_axis(l.scan.0), "Qy", "1/scan step")?;
            write_dim(&pg, 1, &freq_axis(l.scan.1), "Qx", "1/scan step")?;
            Ok(())
        };
        let tm = Instant::now();
        make().map_err(h5e(emd))?;
        file.flush().map_err(h5e(emd))?;
        if std::env::var_os("EMDTUI_TIMING").is_some() {
            eprintln!("timing: cache datasets created {:.3} s", tm.elapsed().as_secs_f64());
        }
    }
    let g = file.group(GROUP).map_err(h5e(emd))?;
    let data = g.dataset("data").map_err(h5e(emd))?;
    let blocks_ds = g.dataset("blocks_done").map_err(h5e(emd))?;
    let power_ds = file.group(POWER_GROUP).and_then(|p| p.dataset("data")).map_err(h5e(emd))?;
    let mut done: Vec<u8> = blocks_ds.read_raw::<u8>().map_err(h5e(emd))?;
    if done.len() != n_tiles {
        return Err(Error::format(emd, "FFT cache: blocks_done has the wrong length"));
    }
    let mut power: Vec<f64> = if done.iter().any(|&d| d != 0) {
        power_ds.read_raw::<f32>().map_err(h5e(emd))?.into_iter().map(|v| v as f64).collect()
    } else {
        vec![0.0; n]
    };
    let todo: Vec<usize> = (0..n_tiles).filter(|&t| done[t] == 0).collect();
    rep.blocks_total = n_tiles;
    rep.blocks_resumed = n_tiles - todo.len();

    progress.set_total((n + n_tiles) as u64);
    progress.set_done(0);
    let offs = l.tile_offsets();

    // ---- pass 1: source -> K-tile-major scratch (skipped if every remaining tile is there)
    let t1 = Instant::now();
    if !todo.is_empty() {
        let sf = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&scratch_path)
            .map_err(|e| Error::io(&scratch_path, e))?;
        if !scratch_ok {
            sf.set_len(0).and_then(|_| sf.set_len(l.scratch_bytes())).map_err(|e| Error::io(&scratch_path, e))?;
            write_state(&state_path, &ScratchState { key: key_s.clone(), positions_done: 0, tiles_done: 0 })?;
        }
        rep.pass1_positions_resumed = pass1_done_positions;
        progress.add(pass1_done_positions as u64, 0);
        if pass1_done_positions < n {
            progress.set_message("FFT pass 1/2: reading the dataset");
            pass1(
                ds,
                &l,
                &offs,
                &sf,
                &scratch_path,
                &state_path,
                &key_s,
                pass1_done_positions,
                memory_budget,
                progress,
                &mut rep,
            )?;
        }
    } else {
        progress.add(n as u64, 0);
    }
    rep.seconds_pass1 = t1.elapsed().as_secs_f64();

    // ---- pass 2: per group of K tiles: load, transform, write chunks
    let t2 = Instant::now();
    progress.add(rep.blocks_resumed as u64, 0);
    if !todo.is_empty() {
        progress.set_message("FFT pass 2/2: transforming");
        let sf = std::fs::File::open(&scratch_path).map_err(|e| Error::io(&scratch_path, e))?;
        let avail = pass2_budget(memory_budget, n);
        let per_pix = (n * (l.elem.size() + PASS2_BYTES_PER_ELEM)) as u64;
        // at least ~4 groups, so that computing one group overlaps writing the previous one
        let todo_pix: usize = todo.iter().map(|&t| offs[t + 1] - offs[t]).sum();
        let max_pix = ((avail / per_pix).max(1) as usize).min(todo_pix.div_ceil(4));
        // groups of consecutive not-done tiles within the budget
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let mut cur_pix = 0;
        for &t in &todo {
            let p = offs[t + 1] - offs[t];
            let contiguous = cur.last().is_none_or(|&last| last + 1 == t);
            let fits = cur_pix + p <= max_pix && opts.max_tiles_per_group.is_none_or(|m| cur.len() < m);
            if !cur.is_empty() && !(contiguous && fits) {
                groups.push(std::mem::take(&mut cur));
                cur_pix = 0;
            }
            cur.push(t);
            cur_pix += p;
        }
        if !cur.is_empty() {
            groups.push(cur);
        }
        let plans = Plans2::new(l.scan.0, l.scan.1);
        let es = l.elem.size();
        // The writer thread owns all HDF5 writes of pass 2, so transforming group g+1 overlaps
        // writing group g (a bounded channel keeps at most one finished group in flight).
        let (tx, rx) = std::sync::mpsc::sync_channel::<GroupOut>(0);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Chunks>();
        let max_group_pix = groups.iter().map(|g| offs[g[g.len() - 1] + 1] - offs[g[0]]).max().unwrap_or(0);
        let mut raw_buf = vec![0u8; max_group_pix * n * es];
        let mut cplx_buf = vec![Complex32::default(); max_group_pix * n];
        let mut tile_tmp: Vec<Complex32> = Vec::new();
        let writer_result = std::thread::scope(|s| -> Result<()> {
            let writer = s.spawn(|| -> Result<(u64, usize, usize, String)> {
                let (mut bytes, mut groups, mut tiles) = (0u64, 0usize, 0usize);
                let tn = Instant::now();
                let mut direct = if opts.buffered_output {
                    Err("asked for (buffered_output)".to_string())
                } else {
                    DirectWriter::new(emd, &data, &l)
                };
                if std::env::var_os("EMDTUI_TIMING").is_some() {
                    eprintln!("timing: chunk address lookup {:.3} s", tn.elapsed().as_secs_f64());
                }
                let io = match &direct {
                    Ok(_) => "direct".to_string(),
                    Err(why) => {
                        log::info!("FFT output through HDF5 (buffered): {why}");
                        format!("buffered: {why}")
                    }
                };
                for m in rx {
                    match &mut direct {
                        Ok(d) => bytes += d.write(&m.chunks)?,
                        Err(_) => {
                            for (offset, buf) in m.chunks.offsets.iter().zip(m.chunks.data.chunks(m.chunks.elems)) {
                                write_chunk(&data, offset, buf, emd)?;
                                bytes += (buf.len() * 8) as u64;
                            }
                        }
                    }
                    let _ = back_tx.send(m.chunks);
                    power_ds.write_raw(&m.power).map_err(h5e(emd))?;
                    for &t in &m.tiles {
                        done[t] = 1;
                    }
                    blocks_ds.write_raw(&done).map_err(h5e(emd))?;
                    file.flush().map_err(h5e(emd))?;
                    groups += 1;
                    tiles += m.tiles.len();
                    progress.add(m.tiles.len() as u64, m.bytes);
                    let nd = done.iter().filter(|&&d| d != 0).count();
                    write_state(&state_path, &ScratchState { key: key_s.clone(), positions_done: n, tiles_done: nd })?;
                    if let Some(d) = opts.group_delay {
                        std::thread::sleep(d);
                    }
                }
                Ok((bytes, groups, tiles, io))
            });
            let r = {
                let mut produce = || -> Result<()> {
                    for (gi, grp) in groups.iter().enumerate() {
                        if opts.cancel_after_groups.is_some_and(|c| gi >= c) {
                            progress.cancel();
                        }
                        progress.check()?;
                        let (p0, p1) = (offs[grp[0]], offs[grp[grp.len() - 1] + 1]);
                        let raw = &mut raw_buf[..(p1 - p0) * n * es];
                        sf.read_exact_at(raw, (p0 * n * es) as u64).map_err(|e| Error::io(&scratch_path, e))?;
                        rep.scratch_bytes_read += raw.len() as u64;
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
                        cplx.par_chunks_mut(n).for_each_init(
                            || (Vec::new(), Vec::new()),
                            |(tmp, scr), img| plans.fft2_shift(img, tmp, scr),
                        );
                        // power map
                        let npix = p1 - p0;
                        let cp = &cplx;
                        power.par_chunks_mut(4096).enumerate().for_each(|(ci, pw)| {
                            let q0 = ci * 4096;
                            for p in 0..npix {
                                let row = &cp[p * n + q0..p * n + q0 + pw.len()];
                                for (a, v) in pw.iter_mut().zip(row) {
                                    *a += v.norm_sqr() as f64;
                                }
                            }
                        });
                        let mut chunks = back_rx.try_recv().unwrap_or_default();
                        assemble_chunks(&l, &offs, grp, p0, cplx, &mut chunks, &mut tile_tmp);
                        let msg = GroupOut {
                            chunks,
                            tiles: grp.clone(),
                            power: power.iter().map(|&v| v as f32).collect(),
                            bytes: ((p1 - p0) * n * 8) as u64,
                        };
                        if tx.send(msg).is_err() {
                            break; // the writer failed; its error is reported below
                        }
                    }
                    Ok(())
                };
                produce()
            };
            drop(tx);
            let (bytes, groups_done, tiles_done, io) = writer.join().expect("FFT writer thread panicked")?;
            rep.output_io = io;
            rep.output_bytes_written += bytes;
            rep.pass2_groups += groups_done;
            rep.blocks_computed += tiles_done;
            r
        });
        writer_result?;
    }
    // make the data durable before declaring it complete
    drop((data, blocks_ds, power_ds));
    file.flush().map_err(h5e(emd))?;
    std::fs::File::open(emd).and_then(|f| f.sync_all()).map_err(|e| Error::io(emd, e))?;
    g.attr("complete").and_then(|a| a.write_scalar(&1u8)).map_err(h5e(emd))?;
    set_str_attr(&g, "completed", &now_iso()).map_err(h5e(emd))?;
    for name in [GROUP, POWER_GROUP] {
        if let Ok(grp) = file.group(name) {
            crate::format::emd::set_int_attr(&grp, "emdtui_complete", 1).map_err(h5e(emd))?;
        }
    }
    crate::format::emd::append_log(
        &file,
        emd,
        &format!("4D FFT {:?} computed ({} blocks now, {} resumed)", params, rep.blocks_computed, rep.blocks_resumed),
    )?;
    drop(g);
    file.flush().map_err(h5e(emd))?;
    drop(file);
    std::fs::File::open(emd).and_then(|f| f.sync_all()).map_err(|e| Error::io(emd, e))?;
    let _ = std::fs::remove_file(&scratch_path);
    let _ = std::fs::remove_file(&state_path);
    rep.seconds_pass2 = t2.elapsed().as_secs_f64();
    Ok(rep)
}

/// Encode one cropped/binned frame (f32, or complex for All) into scratch elements.
fn encode_frame(vals: &[f32], cvals: &[Complex32], e: Elem, out: &mut [u8]) {
    match e {
        Elem::U16 => {
            for (o, &v) in out.chunks_exact_mut(2).zip(vals) {
                o.copy_from_slice(&(v as u16).to_le_bytes());
            }
        }
        Elem::F32 => {
            for (o, &v) in out.chunks_exact_mut(4).zip(vals) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        Elem::C32 => {
            for (o, v) in out.chunks_exact_mut(8).zip(cvals) {
                o[..4].copy_from_slice(&v.re.to_le_bytes());
                o[4..].copy_from_slice(&v.im.to_le_bytes());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pass1(
    ds: &dyn Dataset,
    l: &Layout,
    offs: &[usize],
    sf: &std::fs::File,
    scratch_path: &Path,
    state_path: &Path,
    key_s: &str,
    start: usize,
    budget: u64,
    progress: &Progress,
    rep: &mut FftReport,
) -> Result<()> {
    let n = l.n();
    let kpix = l.kpix();
    let es = l.elem.size();
    let src_px = ds.frame_pixels()
        * match ds.info().pixel_type {
            crate::format::mib::PixelType::U8 => 1,
            crate::format::mib::PixelType::U16 => 2,
            crate::format::mib::PixelType::U32 => 4,
        };
    let frame_bytes = kpix * es;
    let sub = 16usize; // positions per decode task
    // per position: three scratch-encoded copies (frame-major + two tile-major)
    let per_pos = (3 * frame_bytes) as u64;
    let fixed = (rayon::current_num_threads() * sub * (src_px + kpix * 20)) as u64 + (8 << 20);
    // 3/4 of the budget: headroom for HDF5, the allocator and the rest of the process
    let b = ((budget.saturating_sub(fixed) / 4 * 3 / per_pos.max(1)) as usize).clamp(1, 1 << 16).min(n);
    let b = if b >= sub { b / sub * sub } else { b };
    let sub = sub.min(b);
    let n_tiles = l.n_tiles();
    let plans = if l.elem == Elem::C32 { Some(Plans2::new(l.k.0, l.k.1)) } else { None };
    let mut frames = vec![0u8; b * frame_bytes];
    // Two tile-major buffers: the writer thread writes one block to the scratch file while the
    // next block is read and decoded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize, usize)>(0);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        back_tx.send(vec![0u8; b * frame_bytes]).unwrap();
    }
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(move || -> Result<u64> {
            let mut written = 0u64;
            let mut last_state = Instant::now();
            for (tiles, p, cnt) in rx {
                // one write per tile: tile t, positions p..p+cnt
                let mut pos = 0;
                for t in 0..n_tiles {
                    let np = offs[t + 1] - offs[t];
                    let len = np * cnt * es;
                    let off = ((offs[t] * n + p * np) * es) as u64;
                    sf.write_all_at(&tiles[pos..pos + len], off).map_err(|e| Error::io(scratch_path, e))?;
                    pos += len;
                }
                written += (cnt * frame_bytes) as u64;
                if last_state.elapsed().as_secs_f64() > 2.0 || p + cnt == n {
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
            while p < n {
                progress.check()?;
                let cnt = (n - p).min(b);
                let fr = &mut frames[..cnt * frame_bytes];
                fr.par_chunks_mut(sub * frame_bytes).enumerate().try_for_each_init(
                    || {
                        (
                            ReadScratch::default(),
                            FrameBuf::new(ds.info().pixel_type),
                            vec![0f32; kpix],
                            Vec::new(),
                            Vec::new(),
                            Vec::new(),
                        )
                    },
                    |(rs, fb, vals, cv, tmp, scr), (i, out)| -> Result<()> {
                        let q0 = p + i * sub;
                        let m = out.len() / frame_bytes;
                        ds.read_positions(q0, m, fb, rs)?;
                        let dp = ds.frame_pixels();
                        for j in 0..m {
                            crate::with_frames!(&*fb, v => crop_bin(&v[j * dp..(j + 1) * dp], l, vals));
                            if let Some(pl) = &plans {
                                cv.clear();
                                cv.extend(vals.iter().map(|&x| Complex32::new(x, 0.0)));
                                pl.fft2_shift(cv, tmp, scr);
                            }
                            encode_frame(vals, cv, l.elem, &mut out[j * frame_bytes..(j + 1) * frame_bytes]);
                        }
                        Ok(())
                    },
                )?;
                rep.input_bytes_read += (cnt * src_px) as u64;
                let Ok(mut tiles) = back_rx.recv() else { break };
                // scatter to tile-major: tile t holds [cnt][tile pixels]
                {
                    let fr = &frames[..cnt * frame_bytes];
                    let mut rest: &mut [u8] = &mut tiles[..cnt * frame_bytes];
                    let mut jobs = Vec::with_capacity(n_tiles);
                    for t in 0..n_tiles {
                        let np = offs[t + 1] - offs[t];
                        let (a, r) = rest.split_at_mut(np * cnt * es);
                        rest = r;
                        jobs.push((t, a));
                    }
                    jobs.into_par_iter().for_each(|(t, dst)| {
                        let (r0, c0, h, w) = l.tile_rect(t);
                        let row = w * es;
                        for j in 0..cnt {
                            let f = &fr[j * frame_bytes..(j + 1) * frame_bytes];
                            for r in 0..h {
                                let s = ((r0 + r) * l.k.1 + c0) * es;
                                let d = (j * h + r) * row;
                                dst[d..d + row].copy_from_slice(&f[s..s + row]);
                            }
                        }
                    });
                }
                if tx.send((tiles, p, cnt)).is_err() {
                    break; // writer failed; its error is reported below
                }
                p += cnt;
                progress.add(cnt as u64, (cnt * src_px) as u64);
            }
            Ok(())
        })();
        drop(tx);
        rep.scratch_bytes_written += writer.join().expect("FFT scratch writer panicked")?;
        r
    })
}

/// The whole chunks of one group, contiguous (reused between groups).
#[derive(Default)]
struct Chunks {
    offsets: Vec<[u64; 4]>,
    data: Vec<Complex32>,
    elems: usize,
}

struct GroupOut {
    chunks: Chunks,
    tiles: Vec<usize>,
    power: Vec<f32>,
    bytes: u64,
}

/// Gather the pixel-major transformed images of a group into whole HDF5 chunks
/// (Q row, Q col, K row, K col), zero-padded at the edges.
fn assemble_chunks(
    l: &Layout,
    offs: &[usize],
    grp: &[usize],
    p0: usize,
    g: &[Complex32],
    out: &mut Chunks,
    tmp: &mut Vec<Complex32>,
) {
    let n = l.n();
    let [c0, c1, c2, c3] = l.chunk;
    let (qr, qc) = l.scan;
    let (ncr, ncc) = (qr.div_ceil(c0), qc.div_ceil(c1));
    let chunk_elems = c0 * c1 * c2 * c3;
    out.offsets.clear();
    for &t in grp {
        let (kr0, kc0, _, _) = l.tile_rect(t);
        for a in 0..ncr {
            for b in 0..ncc {
                out.offsets.push([(a * c0) as u64, (b * c1) as u64, kr0 as u64, kc0 as u64]);
            }
        }
    }
    out.elems = chunk_elems;
    // padding must be zero: only grow with zeros, and clear edge chunks below
    out.data.resize(out.offsets.len() * chunk_elems, Complex32::default());
    let per_tile = ncr * ncc;
    for (ti, &t) in grp.iter().enumerate() {
        let (_, _, h, w) = l.tile_rect(t);
        let np = h * w;
        let base = (offs[t] - p0) * n; // pixel-major images of this tile: [np][n]
        // Q-major copy of the tile, [n][np]: each (q, K row) is then a contiguous run
        tmp.resize(np * n, Complex32::default());
        transpose::transpose(&g[base..base + np * n], &mut tmp[..np * n], n, np);
        let qm = &tmp[..np * n];
        out.data[ti * per_tile * chunk_elems..(ti + 1) * per_tile * chunk_elems]
            .par_chunks_mut(chunk_elems)
            .enumerate()
            .for_each(|(ci, buf)| {
                let (a, bq) = (ci / ncc, ci % ncc);
                if h < c2 || w < c3 || (a + 1) * c0 > qr || (bq + 1) * c1 > qc {
                    buf.fill(Complex32::default());
                }
                for i in 0..c0.min(qr - a * c0) {
                    let qy = a * c0 + i;
                    for j in 0..c1.min(qc - bq * c1) {
                        let q = qy * qc + bq * c1 + j;
                        let src = &qm[q * np..(q + 1) * np];
                        let dst = &mut buf[(i * c1 + j) * c2 * c3..(i * c1 + j + 1) * c2 * c3];
                        for kr in 0..h {
                            dst[kr * c3..kr * c3 + w].copy_from_slice(&src[kr * w..(kr + 1) * w]);
                        }
                    }
                }
            });
    }
}

/// Scratch tile [n][np] of elements -> pixel-major complex [np][n].
fn decode_transpose(src: &[u8], e: Elem, np: usize, n: usize, dst: &mut [Complex32]) {
    let es = e.size();
    const B: usize = 64;
    let mut i0 = 0;
    while i0 < n {
        let i1 = (i0 + B).min(n);
        for p in 0..np {
            let d = &mut dst[p * n + i0..p * n + i1];
            for (k, dv) in d.iter_mut().enumerate() {
                let o = ((i0 + k) * np + p) * es;
                let s = &src[o..o + es];
                *dv = match e {
                    Elem::U16 => Complex32::new(u16::from_le_bytes([s[0], s[1]]) as f32, 0.0),
                    Elem::F32 => Complex32::new(f32::from_le_bytes([s[0], s[1], s[2], s[3]]), 0.0),
                    Elem::C32 => Complex32::new(
                        f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                        f32::from_le_bytes([s[4], s[5], s[6], s[7]]),
                    ),
                };
            }
        }
        i0 = i1;
    }
}

/// One page of an O_DIRECT staging buffer.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Writes whole output chunks with O_DIRECT at the file addresses HDF5 allocated for them
/// (early allocation, no filters, 4 KiB aligned), coalescing chunks adjacent in the file into
/// one write. Buffered writes copy every byte into the page cache, which on the 2-core test
/// machines cost 2 to 4 s of kernel CPU per GiB (measured with `dd` and in the FFT profile,
/// where it was 60 % of all samples); direct writes cost about 0.25 s per GiB and reach the
/// disk's speed. HDF5 never touches these bytes (it holds no raw-data cache for chunks it
/// does not read), and the final fsync makes them durable before `complete` is set.
struct DirectWriter {
    path: PathBuf,
    file: std::fs::File,
    /// File address of chunk 0; chunk i (row-major over the chunk grid) is at
    /// `base + i * chunk_bytes`.
    base: u64,
    grid: [usize; 4],
    chunk: [usize; 4],
    chunk_bytes: usize,
    stage: Vec<Page>,
}

impl DirectWriter {
    /// Ready to write, or why not (then chunks go through `H5Dwrite_chunk`).
    fn new(emd: &Path, data: &hdf5::Dataset, l: &Layout) -> std::result::Result<DirectWriter, String> {
        let chunk = l.chunk;
        let chunk_bytes = chunk.iter().product::<usize>() * std::mem::size_of::<Complex32>();
        if !chunk_bytes.is_multiple_of(4096) {
            return Err(format!("chunk of {chunk_bytes} bytes is not a multiple of 4096"));
        }
        let dims = [l.scan.0, l.scan.1, l.k.0, l.k.1];
        let grid: [usize; 4] = std::array::from_fn(|i| dims[i].div_ceil(chunk[i]));
        let total: usize = grid.iter().product();
        // Early allocation gives every chunk its place in chunk order, one after the other.
        // Looking up all of them costs about 1 ms each at 65536 chunks (HDF5 1.10), so check
        // the first, the last and 62 more spread over the grid against that layout; chunks
        // placed anywhere else (e.g. into space freed by a replaced cache) fail the check, and
        // the writes then go through HDF5.
        let lookup = |i: usize| -> std::result::Result<u64, String> {
            let (mut r, mut c) = (i, [0u64; 4]);
            for d in (0..4).rev() {
                c[d] = ((r % grid[d]) * chunk[d]) as u64;
                r /= grid[d];
            }
            let (mut mask, mut a, mut size) = (0u32, 0u64, 0u64);
            // SAFETY: valid dataset id and pointers to locals
            let rc = hdf5::sync::sync(|| unsafe {
                hdf5_sys::h5d::H5Dget_chunk_info_by_coord(data.id(), c.as_ptr(), &mut mask, &mut a, &mut size)
            });
            if rc < 0 || a == hdf5_sys::h5::HADDR_UNDEF || size != chunk_bytes as u64 || a % 4096 != 0 {
                return Err(format!("chunk {c:?} at address {a} with {size} bytes is not an aligned raw chunk"));
            }
            Ok(a)
        };
        let base = lookup(0)?;
        let mut samples: Vec<usize> = (0..64).map(|j| j * (total - 1) / 63).collect();
        samples.push(total / 2 + 1);
        for i in samples.into_iter().filter(|&i| i < total) {
            let a = lookup(i)?;
            if a != base + (i * chunk_bytes) as u64 {
                return Err(format!("chunk {i} is at {a}, not in chunk order after chunk 0 at {base}"));
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(emd)
            .map_err(|e| format!("O_DIRECT open: {e}"))?;
        let stage = vec![Page([0; 4096]); (8usize << 20).max(chunk_bytes) / 4096];
        Ok(DirectWriter { path: emd.to_path_buf(), file, base, grid, chunk, chunk_bytes, stage })
    }

    /// Write every chunk of `c`; returns the bytes written.
    fn write(&mut self, c: &Chunks) -> Result<u64> {
        let mut order: Vec<(u64, usize)> = c
            .offsets
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let lin = (0..4).fold(0usize, |acc, d| acc * self.grid[d] + o[d] as usize / self.chunk[d]);
                (self.base + (lin * self.chunk_bytes) as u64, i)
            })
            .collect();
        order.sort_unstable();
        let cap = self.stage.len() * 4096;
        let cb = self.chunk_bytes;
        let (mut start, mut len) = (0u64, 0usize);
        let mut written = 0u64;
        for (a, i) in order {
            if len > 0 && (a != start + len as u64 || len + cb > cap) {
                self.flush(start, len)?;
                written += len as u64;
                len = 0;
            }
            if len == 0 {
                start = a;
            }
            let src = &c.data[i * c.elems..(i + 1) * c.elems];
            // SAFETY: Complex32 is two f32 without padding
            let bytes = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), cb) };
            // SAFETY: the stage is `cap` initialised bytes
            let stage = unsafe { std::slice::from_raw_parts_mut(self.stage.as_mut_ptr().cast::<u8>(), cap) };
            stage[len..len + cb].copy_from_slice(bytes);
            len += cb;
        }
        if len > 0 {
            self.flush(start, len)?;
            written += len as u64;
        }
        Ok(written)
    }

    fn flush(&self, at: u64, len: usize) -> Result<()> {
        // SAFETY: as in `write`
        let buf = unsafe { std::slice::from_raw_parts(self.stage.as_ptr().cast::<u8>(), len) };
        self.file.write_all_at(buf, at).map_err(|e| Error::io(&self.path, e))
    }
}

fn write_chunk(data: &hdf5::Dataset, offset: &[u64; 4], buf: &[Complex32], emd: &Path) -> Result<()> {
    let nbytes = std::mem::size_of_val(buf);
    let off: [hdf5_sys::h5::hsize_t; 4] = *offset;
    let r = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dwrite_chunk(
            data.id(),
            hdf5_sys::h5p::H5P_DEFAULT,
            0,
            off.as_ptr(),
            nbytes,
            buf.as_ptr().cast(),
        )
    });
    if r < 0 {
        return Err(Error::hdf5(emd, format!("H5Dwrite_chunk failed at {offset:?}")));
    }
    Ok(())
}

// ---------------------------------------------------------------- reading

/// Read access to a complete, valid FFT cache.
pub struct FftCache {
    /// (Q rows, Q cols, K rows, K cols) of the stored transform.
    pub shape: [usize; 4],
    pub params: FftParams,
    /// Detector region (row0, col0, rows, cols) in unbinned pixels.
    pub det_box: [usize; 4],
    pub chunk: [usize; 4],
    pub source_fingerprint: String,
    pub tool_version: String,
    pub created: String,
    path: PathBuf,
    _file: hdf5::File,
    data: hdf5::Dataset,
    power: hdf5::Dataset,
}

/// State of the FFT cache in a file, for `info` and the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    Absent,
    /// Interrupted: (blocks done, blocks total).
    Incomplete(usize, usize),
    Stale(String),
    Complete,
}

impl FftCache {
    /// Open the cache in `emd`; Err if absent, incomplete or stale (format version).
    pub fn open(emd: &Path) -> Result<FftCache> {
        Self::open_inner(emd, None)
    }
    /// As [`FftCache::open`], and Err unless the cache was computed from the source with this
    /// fingerprint.
    pub fn open_validated(emd: &Path, fingerprint: &str) -> Result<FftCache> {
        Self::open_inner(emd, Some(fingerprint))
    }
    /// What is in the file, without opening it for reading.
    pub fn status(emd: &Path, fingerprint: Option<&str>) -> CacheStatus {
        if !emd.exists() {
            return CacheStatus::Absent;
        }
        match Self::open_inner(emd, fingerprint) {
            Ok(_) => CacheStatus::Complete,
            Err(e) => {
                let s = e.to_string();
                if s.contains("no FFT cache") {
                    CacheStatus::Absent
                } else if s.contains("incomplete") {
                    let f = crate::format::emd::open_ro(emd).ok();
                    let d = f
                        .and_then(|f| f.group(GROUP).ok())
                        .and_then(|g| g.dataset("blocks_done").ok())
                        .and_then(|d| d.read_raw::<u8>().ok())
                        .unwrap_or_default();
                    CacheStatus::Incomplete(d.iter().filter(|&&x| x != 0).count(), d.len())
                } else {
                    CacheStatus::Stale(s)
                }
            }
        }
    }
    fn open_inner(emd: &Path, fingerprint: Option<&str>) -> Result<FftCache> {
        // this process's reader handles would share their (possibly older) view of the file
        drop(crate::format::emd::close_readers(emd));
        let file = crate::format::emd::open_ro(emd)?;
        if !file.link_exists(GROUP) {
            return Err(Error::format(emd, "no FFT cache (run `emdtui fft`)"));
        }
        let g = file.group(GROUP).map_err(h5e(emd))?;
        let complete = g.attr("complete").and_then(|a| a.read_scalar::<u8>()).unwrap_or(0);
        if complete != 1 {
            return Err(Error::format(emd, "FFT cache is incomplete (interrupted run; rerun `emdtui fft` to resume)"));
        }
        let fv = g.attr("cache_format_version").and_then(|a| a.read_scalar::<u32>()).unwrap_or(0);
        if fv != CACHE_FORMAT_VERSION {
            return Err(Error::format(
                emd,
                format!(
                    "FFT cache is stale: format version {fv}, this emdtui writes {CACHE_FORMAT_VERSION}; recompute with `emdtui fft`"
                ),
            ));
        }
        let key: Key = get_str_attr(&g, "emdtui_key")
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| Error::format(emd, "FFT cache: unreadable parameters"))?;
        let src_fp = get_str_attr(&g, "source_fingerprint").unwrap_or_default();
        if let Some(fp) = fingerprint {
            if fp != src_fp {
                return Err(Error::format(
                    emd,
                    "FFT cache is stale: computed from different data; recompute with `emdtui fft`",
                ));
            }
        }
        let data = g.dataset("data").map_err(h5e(emd))?;
        let l = &key.layout;
        let shape = [l.scan.0, l.scan.1, l.k.0, l.k.1];
        if data.shape() != shape {
            return Err(Error::format(emd, format!("FFT cache: data shape {:?} != recorded {shape:?}", data.shape())));
        }
        let power = file.group(POWER_GROUP).and_then(|p| p.dataset("data")).map_err(h5e(emd))?;
        Ok(FftCache {
            shape,
            params: key.params.clone(),
            det_box: l.det_box,
            chunk: l.chunk,
            source_fingerprint: src_fp,
            tool_version: get_str_attr(&g, "tool_version").unwrap_or_default(),
            created: get_str_attr(&g, "created").unwrap_or_default(),
            path: emd.to_path_buf(),
            _file: file,
            data,
            power,
        })
    }
    /// Index of Q = 0 (row, col).
    pub fn q_origin(&self) -> (usize, usize) {
        (self.shape[0] / 2, self.shape[1] / 2)
    }
    /// sum_K |G(Q, K)|^2, Q rows x Q cols (Q = 0 at the centre).
    pub fn power_map(&self) -> Result<Vec<f32>> {
        self.power.read_raw::<f32>().map_err(h5e(&self.path))
    }
    fn range(c: usize, half: usize, n: usize) -> Result<(usize, usize)> {
        if c >= n {
            return Err(Error::Invalid(format!("FFT index {c} outside 0..{n}")));
        }
        Ok((c.saturating_sub(half), (c + half + 1).min(n)))
    }
    /// Detector-plane image (K rows x K cols) at Q index (row, col), averaged over a
    /// (2*half+1)^2 Q region. Averaging: Amp is the mean of |G|; Phase, Real and Imag are taken
    /// of the mean complex value (a coherent average).
    pub fn detector_image(&self, q: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let (a0, a1) = Self::range(q.0, half, self.shape[0])?;
        let (b0, b1) = Self::range(q.1, half, self.shape[1])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![a0..a1, b0..b1, .., ..]).map_err(h5e(&self.path))?;
        let kp = self.shape[2] * self.shape[3];
        let flat = arr.as_standard_layout();
        Ok(reduce(flat.as_slice().unwrap(), (a1 - a0) * (b1 - b0), kp, part, false))
    }
    /// Q-plane image (Q rows x Q cols) at detector pixel K (row, col), averaged over a K region.
    pub fn q_image(&self, k: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let (a0, a1) = Self::range(k.0, half, self.shape[2])?;
        let (b0, b1) = Self::range(k.1, half, self.shape[3])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![.., .., a0..a1, b0..b1]).map_err(h5e(&self.path))?;
        let nq = self.shape[0] * self.shape[1];
        let flat = arr.as_standard_layout();
        Ok(reduce(flat.as_slice().unwrap(), (a1 - a0) * (b1 - b0), nq, part, true))
    }
    /// The complex values at one Q (K rows x K cols), exactly as stored.
    pub fn detector_complex(&self, q: (usize, usize)) -> Result<Vec<Complex32>> {
        let (a0, a1) = Self::range(q.0, 0, self.shape[0])?;
        let (b0, b1) = Self::range(q.1, 0, self.shape[1])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![a0..a1, b0..b1, .., ..]).map_err(h5e(&self.path))?;
        Ok(arr.iter().copied().collect())
    }
}

/// Average `m` images of `len` values. `inner`: the m values of one output are adjacent
/// (layout [len][m]); otherwise layout is [m][len].
fn reduce(v: &[Complex32], m: usize, len: usize, part: Part, inner: bool) -> Vec<f32> {
    let mut sum = vec![Complex32::default(); len];
    let mut amp = vec![0f32; len];
    for j in 0..m {
        for i in 0..len {
            let x = if inner { v[i * m + j] } else { v[j * len + i] };
            sum[i] += x;
            amp[i] += x.norm();
        }
    }
    let s = 1.0 / m as f32;
    match part {
        Part::Amp => amp.iter().map(|a| a * s).collect(),
        Part::Phase => sum.iter().map(|c| c.im.atan2(c.re)).collect(),
        Part::Real => sum.iter().map(|c| c.re * s).collect(),
        Part::Imag => sum.iter().map(|c| c.im * s).collect(),
    }
}

/// Parameters of an interrupted (incomplete) FFT in `emd`, so that it can be resumed as it was
/// started. None when there is no incomplete FFT.
pub fn interrupted_params(emd: &Path) -> Option<(FftParams, usize, usize)> {
    match FftCache::status(emd, None) {
        CacheStatus::Incomplete(done, total) => {
            let f = crate::format::emd::open_ro(emd).ok()?;
            let g = f.group(GROUP).ok()?;
            let key: Key = serde_json::from_str(&get_str_attr(&g, "emdtui_key").ok()?).ok()?;
            Some((key.params, done, total))
        }
        _ => None,
    }
}

/// Default FFT parameters for `ds`: scan axes, the bright-field disk plus margin, no binning.
pub fn default_params(ds: &dyn Dataset) -> Result<FftParams> {
    Ok(FftParams { axes: FftAxes::Scan, crop: Some(auto_crop(ds)?), bin: 1 })
}
