//! One interface for any 4D source (a `.mib` acquisition or an EMD datacube): scan shape,
//! detector shape, pixel type, decoded frames by scan position and in ranges.

pub mod scan;

use crate::error::{Error, Result};
use crate::format::mib::{Pixel, PixelType};
use crate::format::mibset::{MibSet, Scratch};
pub use scan::{ScanHints, ScanShape};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A block of decoded frames in the dataset's native pixel type.
#[derive(Debug, Clone)]
pub enum FrameBuf {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl FrameBuf {
    pub fn new(t: PixelType) -> Self {
        match t {
            PixelType::U8 => FrameBuf::U8(Vec::new()),
            PixelType::U16 => FrameBuf::U16(Vec::new()),
            PixelType::U32 => FrameBuf::U32(Vec::new()),
        }
    }
    pub fn pixel_type(&self) -> PixelType {
        match self {
            FrameBuf::U8(_) => PixelType::U8,
            FrameBuf::U16(_) => PixelType::U16,
            FrameBuf::U32(_) => PixelType::U32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            FrameBuf::U8(v) => v.len(),
            FrameBuf::U16(v) => v.len(),
            FrameBuf::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Resize to `n` pixels, zero-filled where grown (no allocation when capacity suffices).
    pub fn resize(&mut self, n: usize) {
        match self {
            FrameBuf::U8(v) => v.resize(n, 0),
            FrameBuf::U16(v) => v.resize(n, 0),
            FrameBuf::U32(v) => v.resize(n, 0),
        }
    }
    pub fn get_u32(&self, i: usize) -> u32 {
        match self {
            FrameBuf::U8(v) => v[i] as u32,
            FrameBuf::U16(v) => v[i] as u32,
            FrameBuf::U32(v) => v[i],
        }
    }
    pub fn to_u32(&self) -> Vec<u32> {
        match self {
            FrameBuf::U8(v) => v.iter().map(|&x| x as u32).collect(),
            FrameBuf::U16(v) => v.iter().map(|&x| x as u32).collect(),
            FrameBuf::U32(v) => v.clone(),
        }
    }
    /// Little-endian bytes of the pixels (what an EMD file stores).
    pub fn as_le_bytes(&self) -> &[u8] {
        // all supported targets are little-endian; checked at compile time below
        const _: () = assert!(cfg!(target_endian = "little"));
        match self {
            FrameBuf::U8(v) => v,
            FrameBuf::U16(v) => unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 2) },
            FrameBuf::U32(v) => unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4) },
        }
    }
}

/// Applies a generic closure to the typed slice inside a [`FrameBuf`].
#[macro_export]
macro_rules! with_frames {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::dataset::FrameBuf::U8($v) => $body,
            $crate::dataset::FrameBuf::U16($v) => $body,
            $crate::dataset::FrameBuf::U32($v) => $body,
        }
    };
}

/// Per-worker reusable state for reads.
#[derive(Default)]
pub struct ReadScratch {
    pub mib: Scratch,
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
    pub kind: &'static str,
    pub scan: ScanShape,
    pub det_rows: usize,
    pub det_cols: usize,
    pub pixel_type: PixelType,
    pub bytes_on_disk: u64,
    /// Ordered key/value metadata for display.
    pub metadata: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Any 4D source. Positions are row-major scan positions `0..scan.positions()`.
pub trait Dataset: Send + Sync {
    fn info(&self) -> &DatasetInfo;
    /// Positions that currently have data (may grow for a running acquisition).
    fn positions_present(&self) -> usize;
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
}

/// A `.mib` acquisition as a dataset.
pub struct MibDataset {
    pub set: MibSet,
    info: DatasetInfo,
}

impl MibDataset {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let set = if opts.mmap {
            let w = if opts.map_window == 0 { crate::format::mibset::MAP_WINDOW } else { opts.map_window };
            MibSet::open_mmap(path, w)?
        } else {
            MibSet::open(path)?
        };
        let n = set.n_frames();
        let need_ts = opts.scan.is_none()
            && !set.acq.as_ref().is_some_and(|a| {
                (a.scan_x.is_some() && a.scan_y.is_some())
                    || a.frames_per_trigger
                        .is_some_and(|f| f > 1 && n.saturating_sub(opts.skip_frames) % f as usize == 0)
            });
        // progressively longer samples: most scans show two line starts in the first 1024 frames
        let ts = if need_ts {
            let mut found = None;
            for m in [1024usize, 4096, 16384] {
                let t = set.timestamps(m);
                let enough = t.as_ref().is_none_or(|t| {
                    t.len() < m || scan::line_length_from_timestamps(&t[opts.skip_frames.min(t.len())..]).is_some()
                });
                found = t;
                if enough {
                    break;
                }
            }
            found
        } else {
            None
        };
        let scan = scan::detect(
            n,
            &ScanHints {
                explicit: opts.scan,
                acq: set.acq.as_ref(),
                timestamps: ts.as_deref().map(|t| &t[opts.skip_frames.min(t.len())..]),
                skip: opts.skip_frames,
                flyback: opts.flyback,
            },
        );
        let h = &set.header;
        let mut md: Vec<(String, String)> = Vec::new();
        let files = set.parts.len();
        md.push(("file".into(), path.display().to_string()));
        if files > 1 {
            md.push(("files".into(), format!("{files} (multi-file acquisition)")));
        }
        md.push(("size".into(), humansize::format_size(set.total_bytes(), humansize::BINARY)));
        md.push((
            "detector".into(),
            format!(
                "Merlin {} chip{}, layout {}, {}x{}",
                h.num_chips,
                if h.num_chips > 1 { "s" } else { "" },
                h.layout,
                h.rows,
                h.cols
            ),
        ));
        md.push((
            "depth".into(),
            format!(
                "{} bit counter, stored {}{}",
                h.counter_depth().map(|d| d.to_string()).unwrap_or("?".into()),
                h.pixel_depth,
                if h.is_raw() { " (raw)" } else { "" }
            ),
        ));
        md.push(("frames".into(), n.to_string()));
        md.push(("scan".into(), format!("{} x {} ({})", scan.rows, scan.cols, scan.reason)));
        md.push(("exposure".into(), format!("{} ms", h.shutter_s * 1e3)));
        md.push(("acquired".into(), h.timestamp.clone()));
        if !h.thresholds_kev.is_empty() {
            let th: Vec<String> = h.thresholds_kev.iter().take(2).map(|t| format!("{t}")).collect();
            md.push(("thresholds".into(), format!("{} keV", th.join(", "))));
        }
        if let Some(a) = &set.acq {
            if let Some(v) = &a.software_version {
                md.push(("software".into(), v.clone()));
            }
            if let Some(v) = &a.trigger_start {
                md.push(("trigger".into(), v.clone()));
            }
        }
        let info = DatasetInfo {
            path: path.to_path_buf(),
            kind: "mib",
            det_rows: h.rows,
            det_cols: h.cols,
            pixel_type: h.pixel_type,
            bytes_on_disk: set.total_bytes(),
            metadata: md,
            warnings: set.warnings.clone(),
            scan,
        };
        Ok(MibDataset { set, info })
    }
}

impl Dataset for MibDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        self.info.scan.positions_present(self.set.n_frames())
    }
    fn refresh(&self) -> usize {
        self.set.refresh();
        self.positions_present()
    }
    fn fingerprint(&self) -> String {
        self.set.fingerprint()
    }
    fn prefetch(&self, pos: usize) {
        if pos < self.info.scan.positions() {
            self.set.prefetch(self.info.scan.frame_of(pos));
        }
    }
    fn read_raw_positions<'a>(
        &'a self,
        start: usize,
        count: usize,
        scratch: &'a mut ReadScratch,
    ) -> Result<Option<RawFrames<'a>>> {
        let s = &self.info.scan;
        let h = &self.set.header;
        if count == 0 || start + count > s.positions() || !matches!(h.storage, crate::format::mib::Storage::U16) {
            return Ok(None);
        }
        let f0 = s.frame_of(start);
        // consecutive frames only (no flyback frames inside), all present
        if s.frame_of(start + count - 1) != f0 + count - 1 || f0 + count > self.set.n_frames() {
            return Ok(None);
        }
        let bytes = self.set.raw_frames(f0, count, &mut scratch.mib)?;
        Ok(Some(RawFrames { bytes, stride: h.stride(), offset: h.header_bytes, count, pixel_type: h.pixel_type }))
    }
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, scratch: &mut ReadScratch) -> Result<()> {
        let s = &self.info.scan;
        if start + count > s.positions() {
            return Err(Error::Invalid(format!(
                "positions {start}..{} outside the scan of {}",
                start + count,
                s.positions()
            )));
        }
        let npx = self.frame_pixels();
        out.resize(count * npx);
        let nf = self.set.n_frames();
        // split into runs of consecutive frames (one scan line at most)
        let mut p = start;
        while p < start + count {
            let c = p % s.cols;
            let run = (s.cols - c).min(start + count - p);
            let f0 = s.frame_of(p);
            let avail = nf.saturating_sub(f0).min(run);
            let off = (p - start) * npx;
            if avail > 0 {
                with_frames!(out, v => self.set.decode_frames(f0, avail, &mut v[off..off + avail * npx], &mut scratch.mib)?);
            }
            if avail < run {
                with_frames!(out, v => v[off + avail * npx..off + run * npx].fill(Default::default()));
            }
            p += run;
        }
        Ok(())
    }
}

/// Helper so generic code can name the pixel type of a typed slice.
pub fn pixel_type_of<T: Pixel>(_: &[T]) -> PixelType {
    T::TYPE
}

/// Open any supported source by extension (`.mib`, `.emd`/`.h5`/`.hdf5`).
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Arc<dyn Dataset>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "emd" | "h5" | "hdf5" | "py4dstem" => Ok(Arc::new(crate::format::emd::EmdDataset::open(path, opts)?)),
        _ => Ok(Arc::new(MibDataset::open(path, opts)?)),
    }
}
