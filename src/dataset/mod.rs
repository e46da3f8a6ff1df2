//! One interface for any 4D source (a `.mib` acquisition or an EMD datacube): scan shape,
//! detector shape, pixel type, decoded frames by scan position and in ranges.

pub mod emd;
pub mod float;
pub mod mib;
pub mod scan;
pub mod siemd;

use crate::error::Result;
pub use crate::format::frames::FrameBuf;
use crate::format::mib::{Pixel, PixelType};
use crate::format::mibset::Scratch;
pub use emd::EmdDataset;
pub use mib::MibDataset;
pub use scan::{ScanHints, ScanShape};
pub use siemd::SpectrumEmdDataset;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What kind of source a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Merlin `.mib` acquisition (read-only: results go to the cache directory).
    Mib,
    /// A 4-D datacube in an EMD (HDF5) file (results are cached inside it).
    Emd,
}

/// How a dataset's frames are read: diffraction patterns (4D-STEM) or spectra (EELS: a
/// spectrometer's Merlin Nx1 detector records one spectrum per scan position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Diffraction,
    Eels,
}

/// The mode asked for on the command line (`--mode`); `Auto` detects it from the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    #[default]
    Auto,
    Diffraction,
    Eels,
}

/// The mode of a dataset and why.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ModeInfo {
    pub mode: Mode,
    pub reason: String,
}

impl ModeInfo {
    /// Channels of a spectrum and whether they run along the frame's columns (the long axis;
    /// columns when the frame is square). The other axis is summed.
    pub fn spectrum_axis(det_rows: usize, det_cols: usize) -> (usize, bool) {
        if det_rows > det_cols { (det_rows, false) } else { (det_cols, true) }
    }
}

/// The mode of a `layout` detector with `rows` x `cols` frames: an Nx1 detector (the
/// spectrometer layout) holds spectra; any other detector (square, or a row-ROI read of a
/// diffraction detector) holds diffraction patterns unless `choice` says otherwise.
pub fn detect_mode(layout: &str, rows: usize, cols: usize, choice: ModeChoice) -> ModeInfo {
    let (ch, along_cols) = ModeInfo::spectrum_axis(rows, cols);
    let axis =
        if along_cols { "rows summed, channels along the columns" } else { "columns summed, channels along the rows" };
    let eels = |why: String| ModeInfo { mode: Mode::Eels, reason: format!("{why}: {ch}-channel spectra ({axis})") };
    let diff = |why: String| ModeInfo { mode: Mode::Diffraction, reason: why };
    let nx1 = layout.trim().to_ascii_lowercase().starts_with("nx1");
    match choice {
        ModeChoice::Eels => eels("--mode eels".into()),
        ModeChoice::Diffraction => diff(format!("--mode diffraction ({rows}x{cols} frames)")),
        ModeChoice::Auto if nx1 => {
            eels(format!("Merlin {} detector (spectrometer layout), {rows}x{cols} frames", layout.trim()))
        }
        ModeChoice::Auto if rows != cols => diff(format!(
            "{rows}x{cols} frames of a {} detector (a row-ROI read of a diffraction detector); --mode eels reads them as spectra",
            layout.trim()
        )),
        ModeChoice::Auto => diff(format!("{rows}x{cols} detector")),
    }
}

/// Per-worker reusable state for reads.
#[derive(Default)]
pub struct ReadScratch {
    pub mib: Scratch,
    /// An EMD chunk as stored, and decoded (reused between reads: fresh multi-MiB buffers cost
    /// page faults and zeroing on every call).
    pub emd_raw: Vec<u8>,
    pub emd_chunk: Vec<u8>,
    /// The values of a float EMD datacube before they become counts.
    pub emd_float: Vec<f32>,
}

/// Frames as stored on disk, borrowed without decoding: frame `k` has its pixels at
/// `bytes[k * stride + offset..][..pixels * pixel_type.bytes()]`, big-endian.
pub struct RawFrames<'a> {
    pub bytes: &'a [u8],
    pub stride: usize,
    pub offset: usize,
    pub count: usize,
    pub pixel_type: PixelType,
}

impl<'a> RawFrames<'a> {
    /// The stored pixel bytes of frame `k`.
    pub fn frame(&self, k: usize, pixels: usize) -> &'a [u8] {
        let o = k * self.stride + self.offset;
        &self.bytes[o..o + pixels * self.pixel_type.bytes()]
    }
}

/// Summary of a dataset for display and scripts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetInfo {
    pub path: PathBuf,
    pub kind: Kind,
    pub scan: ScanShape,
    pub det_rows: usize,
    pub det_cols: usize,
    pub pixel_type: PixelType,
    pub bytes_on_disk: u64,
    /// Diffraction patterns or spectra, and why.
    pub mode: ModeInfo,
    /// Ordered key/value metadata for display.
    pub metadata: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Any 4D source. Positions are row-major scan positions `0..scan.positions()`.
pub trait Dataset: Send + Sync {
    fn info(&self) -> &DatasetInfo;
    /// Positions that currently have data (may grow for a running acquisition).
    fn positions_present(&self) -> usize;
    /// The metadata lines as they are now: those of a growing acquisition (frames, size, how many
    /// positions have frames) change after [`Dataset::refresh`]; the others are fixed at open.
    fn metadata_now(&self) -> Vec<(String, String)> {
        self.info().metadata.clone()
    }
    /// Decode positions `start..start+count` into `out` (resized to count*det pixels).
    /// Positions without data are zero.
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, scratch: &mut ReadScratch) -> Result<()>;
    /// The stored bytes of positions `start..start+count` when the source keeps them as plain
    /// big-endian pixels of consecutive frames (a processed `.mib`): kernels that can read them
    /// directly skip the decode copy. `None` when the source needs decoding (raw R64, quad
    /// reassembly, flyback gaps, missing frames, EMD); use [`read_positions`](Dataset::read_positions).
    fn read_raw_positions<'a>(
        &'a self,
        _start: usize,
        _count: usize,
        _scratch: &'a mut ReadScratch,
    ) -> Result<Option<RawFrames<'a>>> {
        Ok(None)
    }
    /// Hint that position `pos` will be read soon (starts the disk read without waiting).
    fn prefetch(&self, _pos: usize) {}
    /// Identity of the data for cache validation.
    fn fingerprint(&self) -> String;
    /// Re-check the source for new frames; returns positions present.
    fn refresh(&self) -> usize {
        self.positions_present()
    }
    /// Whether the file on disk is no longer the one open (replaced or deleted).
    fn replaced(&self) -> bool {
        false
    }
    fn scan(&self) -> &ScanShape {
        &self.info().scan
    }
    fn det(&self) -> (usize, usize) {
        (self.info().det_rows, self.info().det_cols)
    }
    fn frame_pixels(&self) -> usize {
        self.info().det_rows * self.info().det_cols
    }
    /// One decoded frame as u32.
    fn frame_u32(&self, pos: usize) -> Result<Vec<u32>> {
        let mut b = FrameBuf::new(self.info().pixel_type);
        self.read_positions(pos, 1, &mut b, &mut ReadScratch::default())?;
        Ok(b.to_u32())
    }
}

/// Options for opening a source.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub scan: Option<(usize, usize)>,
    pub skip_frames: usize,
    pub flyback: usize,
    /// Read `.mib` files through memory-map windows (default: positional reads).
    pub mmap: bool,
    /// Bytes per map window (per reading thread); 0 = [`crate::format::mibset::MAP_WINDOW`].
    pub map_window: usize,
    /// Diffraction or EELS (`--mode`; detected when `Auto`).
    pub mode: ModeChoice,
}

/// Helper so generic code can name the pixel type of a typed slice.
pub fn pixel_type_of<T: Pixel>(_: &[T]) -> PixelType {
    T::TYPE
}

/// Open any supported source by extension (`.mib`, `.emd`/`.h5`/`.hdf5`): an HDF5 file holding
/// a 3-D spectrum image opens as [`SpectrumEmdDataset`] (EELS mode), else as a 4-D datacube.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Arc<dyn Dataset>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "emd" | "h5" | "hdf5" | "py4dstem" if siemd::is_spectrum_emd(path) => {
            Ok(Arc::new(SpectrumEmdDataset::open(path, opts)?))
        }
        "emd" | "h5" | "hdf5" | "py4dstem" => Ok(Arc::new(EmdDataset::open(path, opts)?)),
        _ => Ok(Arc::new(MibDataset::open(path, opts)?)),
    }
}
