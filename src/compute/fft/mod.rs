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

mod estimate;
mod kernels;
pub mod mem;
mod pass1;
mod pass2;
mod plan;
mod run;
mod types;

use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
pub use estimate::{FftNeeds, SampleTiming, needs, sample_timing};
pub use mem::MemFft;
pub use run::{compute_with, pass1_ahead};
use std::path::{Path, PathBuf};
pub(crate) use types::Layout;

/// Version of the on-disk cache layout; a cache with another version is stale.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// HDF5 group of the cache.
pub const GROUP: &str = "/emdtui/cache/fft_complex";
pub const POWER_GROUP: &str = "/emdtui/cache/fft_power";
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
    /// Pass 1's output stayed in memory (it fit half the budget): no scratch file.
    pub scratch_in_memory: bool,
    /// The file pass 1 read the pixels from (the transformed dataset's, or that of
    /// [`RunOptions::pixels`] when it was used); None when pass 1 did not run.
    pub pixels_from: Option<std::path::PathBuf>,
    /// Pass 1 ran alongside the conversion ([`pass1_ahead`]) and its scratch was taken over.
    pub pass1_alongside: bool,
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
    /// Print phase timings on stderr.
    pub timing: bool,
    /// Keep pass 1's output in a scratch file even when it would fit in memory (tests of the
    /// resumable path).
    pub scratch_on_disk: bool,
    /// Read the pixels from this dataset instead: the same data as the EMD's datacube (the
    /// `.mib` it was converted from, see [`crate::ops::fft::pixel_source`]), read without HDF5
    /// and often still in the page cache. Ignored unless its shape and pixel type match.
    pub pixels: Option<PixelSource>,
    /// The key [`pass1_ahead`] returned: its scratch is taken over (pass 1 skipped) when it was
    /// made for this run's parameters and layout. The caller vouches that its pixels were this
    /// dataset's (see [`crate::ops::fft::ensure_emd_with_pass1`]).
    pub adopt_scratch: Option<String>,
}

/// A dataset holding the same pixels as the one transformed ([`RunOptions::pixels`]).
#[derive(Clone)]
pub struct PixelSource(pub std::sync::Arc<dyn crate::dataset::Dataset>);

impl std::fmt::Debug for PixelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PixelSource({})", self.0.info().path.display())
    }
}

impl PixelSource {
    /// Whether `a` can stand for `b` as a pixel source: same scan and detector shape, same pixel
    /// type (the positions' values are the caller's to vouch for).
    pub fn same_shape(a: &dyn crate::dataset::Dataset, b: &dyn crate::dataset::Dataset) -> bool {
        (a.scan().rows, a.scan().cols) == (b.scan().rows, b.scan().cols)
            && a.det() == b.det()
            && a.info().pixel_type == b.info().pixel_type
    }
    /// The dataset to read `ds`'s pixels from: this one when it has `ds`'s shape and pixel type
    /// and all its positions, else `ds`.
    pub(crate) fn or<'a>(
        p: Option<&'a PixelSource>,
        ds: &'a dyn crate::dataset::Dataset,
    ) -> &'a dyn crate::dataset::Dataset {
        match p {
            Some(PixelSource(s))
                if Self::same_shape(s.as_ref(), ds) && s.positions_present() >= ds.scan().positions() =>
            {
                s.as_ref()
            }
            _ => ds,
        }
    }
}

/// The identity of a cache: a rerun with the same key resumes it.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Clone)]
pub(crate) struct Key {
    pub(crate) format: u32,
    pub(crate) fingerprint: String,
    pub(crate) params: FftParams,
    pub(crate) layout: Layout,
}

pub(crate) fn params_json(p: &FftParams, l: &Layout) -> String {
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

pub(crate) fn freq_axis(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - (n / 2) as f32) / n as f32).collect()
}

pub fn scratch_paths(emd: &Path) -> (PathBuf, PathBuf) {
    let name = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    (emd.with_file_name(format!(".{name}.fft-scratch")), emd.with_file_name(format!(".{name}.fft-scratch.json")))
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
    let l = plan::make_layout(ds, params, memory_budget, &RunOptions::default())?;
    Ok((l.output_bytes(), l.scratch_bytes(), [l.scan.0, l.scan.1, l.k.0, l.k.1]))
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

/// Default FFT parameters for `ds`: scan axes, the bright-field disk plus margin, no binning.
pub fn default_params(ds: &dyn Dataset) -> Result<FftParams> {
    Ok(FftParams { axes: FftAxes::Scan, crop: Some(auto_crop(ds)?), bin: 1 })
}

/// What the FFT explorer reads. Q = spatial frequency over the scan (Q = 0 at the centre),
/// K = detector pixel. The EMD cache (`store::fft::FftCache`) and the in-memory transform
/// ([`MemFft`], for the demo and tests) both provide it.
pub trait FftSource: Send + Sync {
    /// (Q rows, Q cols, K rows, K cols).
    fn shape(&self) -> [usize; 4];
    /// Where the transform comes from (shown in the title).
    fn label(&self) -> String;
    /// sum_K |G(Q, K)|^2 over Q.
    fn power_map(&self) -> Result<Vec<f32>>;
    /// K rows x K cols at Q, averaged over a (2*half+1)^2 Q region.
    fn detector_image(&self, q: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>>;
    /// Q rows x Q cols at K, averaged over a (2*half+1)^2 K region.
    fn q_image(&self, k: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>>;
    /// Where the K grid lies on the detector: the detector pixel (row, col) of K (0, 0)'s
    /// corner, and the detector pixels per K pixel along each axis.
    fn k_origin_bin(&self) -> ((usize, usize), usize);
}

/// Average `m` images of `len` values. `inner`: the m values of one output are adjacent
/// (layout [len][m]); otherwise layout is [m][len]. Amp is the mean of |G|; Phase, Real and Imag
/// are taken of the mean complex value (a coherent average).
pub fn reduce(v: &[num_complex::Complex32], m: usize, len: usize, part: Part, inner: bool) -> Vec<f32> {
    let mut sum = vec![num_complex::Complex32::default(); len];
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

#[cfg(test)]
mod tests {
    use super::types::{Elem, mirror};
    use super::*;

    fn layout(k: (usize, usize), tile: (usize, usize), half: bool) -> Layout {
        Layout {
            scan: (8, 8),
            det: k,
            det_box: [0, 0, k.0, k.1],
            bin: 1,
            k,
            chunk: [8, 8, tile.0, tile.1],
            elem: Elem::C32,
            half,
        }
    }

    #[test]
    fn mirror_is_the_negative_frequency() {
        for n in [1usize, 2, 5, 6, 256] {
            for s in 0..n {
                let f = s as i64 - (n / 2) as i64;
                let m = mirror(s, n) as i64 - (n / 2) as i64;
                assert_eq!((f + m).rem_euclid(n as i64), 0, "n {n} s {s}");
                assert_eq!(mirror(mirror(s, n), n), s);
            }
        }
    }

    #[test]
    fn units_cover_every_tile_once_and_store_about_half() {
        for (k, tile, max_frac) in [
            ((256, 256), (16, 16), 0.58),
            ((512, 512), (8, 8), 0.65),
            ((255, 255), (15, 17), 0.56),
            ((22, 22), (4, 5), 1.0),
            ((7, 9), (7, 9), 64.0 / 63.0),
            ((1, 1), (1, 1), 8.0), // one pixel in an 8-slot stride
        ] {
            let l = layout(k, tile, true);
            let units = l.units();
            let mut seen = vec![0; l.n_tiles()];
            for u in &units {
                for t in u.tiles() {
                    seen[t] += 1;
                }
                // every pixel a tile needs is stored (index_of panics otherwise)
                assert_eq!(u.index_of(&l, u.direct, false).len(), {
                    let (_, _, h, w) = l.tile_rect(u.direct);
                    h * w
                });
                if let Some(m) = u.mirrored {
                    u.index_of(&l, m, true);
                }
                assert!(u.stride >= u.pixels.len() && u.stride % 8 == 0);
            }
            assert!(seen.iter().all(|&s| s == 1), "{k:?} {tile:?}: {seen:?}");
            let slots: usize = units.iter().map(|u| u.stride).sum();
            let frac = slots as f64 / l.kpix() as f64;
            assert!(frac <= max_frac, "{k:?} {tile:?}: stores {frac:.3} of the spectrum");
            // without symmetry: one unit per tile, the tile itself
            let full = layout(k, tile, false).units();
            assert_eq!(full.len(), l.n_tiles());
            assert!(full.iter().all(|u| u.mirrored.is_none() && u.pixels.len() <= tile.0 * tile.1));
        }
    }
}
