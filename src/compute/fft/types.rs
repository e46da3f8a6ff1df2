//! The types the FFT passes share: the scratch layout ([`Layout`], [`Unit`], [`Elem`]), the
//! scratch store and its state file, the chunk buffer and the open cache datasets. The passes
//! import these from here instead of from each other.

use crate::error::{Error, Result};
use num_complex::Complex32;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Scratch element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Elem {
    U16,
    F32,
    C32,
}

impl Elem {
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::U16 => 2,
            Elem::F32 => 4,
            Elem::C32 => 8,
        }
    }
}

/// Everything derived from the source and parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Layout {
    pub(crate) scan: (usize, usize),
    pub(crate) det: (usize, usize),
    /// (row0, col0, rows, cols), unbinned, rows/cols multiples of bin.
    pub(crate) det_box: [usize; 4],
    pub(crate) bin: usize,
    pub(crate) k: (usize, usize),
    pub(crate) chunk: [usize; 4],
    pub(crate) elem: Elem,
    /// Pass 1 stores only the half of the detector spectrum that the real-input symmetry
    /// G(-Q, -K) = conj G(Q, K) needs (4-D transforms): see [`Layout::units`].
    #[serde(default)]
    pub(crate) half: bool,
}

/// Pass 1's unit of storage and pass 2's unit of work: the K pixels that one or two output K
/// tiles are made of. Without symmetry a unit is one tile. With it (`Layout::half`), a unit is a
/// tile (computed directly) and its mirror tile (the tile at the mirrored tile-grid position),
/// whose values are conj G(-Q, -K) of pixels the unit stores: the unit holds the union of the
/// first tile's pixels and the mirror images of the second's, which for the usual even sizes is
/// the first tile plus one row and one column (the fftshifted mirror is offset by one from the
/// tile grid). The scratch then holds a little over half of the spectrum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unit {
    pub(crate) direct: usize,
    pub(crate) mirrored: Option<usize>,
    /// The stored K pixels, row-major indices into the k.0 x k.1 detector, ascending.
    pub(crate) pixels: Vec<u32>,
    /// Scratch slots per position: the pixels rounded up to 8, so that a block of 64 positions
    /// is a whole number of 4 KiB pages for O_DIRECT.
    pub(crate) stride: usize,
}

impl Unit {
    fn new(direct: usize, mirrored: Option<usize>, mut pixels: Vec<u32>) -> Unit {
        pixels.sort_unstable();
        pixels.dedup();
        let stride = pixels.len().div_ceil(8) * 8;
        Unit { direct, mirrored, pixels, stride }
    }
    /// For each pixel of tile `t` of `l` (row-major in the tile), its index in `pixels`; for the
    /// mirrored tile, the index of the mirror pixel.
    pub(crate) fn index_of(&self, l: &Layout, t: usize, mirrored: bool) -> Vec<u32> {
        l.tile_pixels(t, mirrored)
            .iter()
            .map(|px| self.pixels.binary_search(px).expect("a unit stores every pixel its tiles need") as u32)
            .collect()
    }
    /// Output pixels (both tiles).
    pub(crate) fn out_pixels(&self, l: &Layout) -> usize {
        let px = |t: usize| {
            let (_, _, h, w) = l.tile_rect(t);
            h * w
        };
        px(self.direct) + self.mirrored.map_or(0, px)
    }
    /// The tiles this unit completes.
    pub(crate) fn tiles(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.direct).chain(self.mirrored)
    }
}

/// Index of -f on an fftshifted axis of length n (zero frequency at n/2): the mirror of s.
pub(crate) fn mirror(s: usize, n: usize) -> usize {
    (2 * (n / 2) + n - s) % n
}

impl Layout {
    pub(crate) fn n(&self) -> usize {
        self.scan.0 * self.scan.1
    }
    pub(crate) fn kpix(&self) -> usize {
        self.k.0 * self.k.1
    }
    pub(crate) fn tiles(&self) -> (usize, usize) {
        (self.k.0.div_ceil(self.chunk[2]), self.k.1.div_ceil(self.chunk[3]))
    }
    pub(crate) fn n_tiles(&self) -> usize {
        let t = self.tiles();
        t.0 * t.1
    }
    /// (row0, col0, rows, cols) of K tile t in binned K coordinates.
    pub(crate) fn tile_rect(&self, t: usize) -> (usize, usize, usize, usize) {
        let (_, tc) = self.tiles();
        let (ti, tj) = (t / tc, t % tc);
        let r0 = ti * self.chunk[2];
        let c0 = tj * self.chunk[3];
        (r0, c0, (self.k.0 - r0).min(self.chunk[2]), (self.k.1 - c0).min(self.chunk[3]))
    }
    /// The K pixels (row-major indices) of tile `t`, row by row; with `mirrored`, the mirror
    /// image of each (the pixel at -K).
    pub(crate) fn tile_pixels(&self, t: usize, mirrored: bool) -> Vec<u32> {
        let (r0, c0, h, w) = self.tile_rect(t);
        let mut v = Vec::with_capacity(h * w);
        for r in r0..r0 + h {
            for c in c0..c0 + w {
                let (rr, cc) = if mirrored { (mirror(r, self.k.0), mirror(c, self.k.1)) } else { (r, c) };
                v.push((rr * self.k.1 + cc) as u32);
            }
        }
        v
    }
    /// The units of pass 1's scratch and pass 2's work, in scratch order.
    pub(crate) fn units(&self) -> Vec<Unit> {
        let (tr, tc) = self.tiles();
        let mut units = Vec::new();
        for t in 0..self.n_tiles() {
            if !self.half {
                units.push(Unit::new(t, None, self.tile_pixels(t, false)));
                continue;
            }
            let partner = (tr - 1 - t / tc) * tc + (tc - 1 - t % tc);
            if partner == t {
                units.push(Unit::new(t, None, self.tile_pixels(t, false)));
            } else if partner < t {
                let mut px = self.tile_pixels(t, false);
                px.extend(self.tile_pixels(partner, true));
                units.push(Unit::new(t, Some(partner), px));
            }
        }
        units
    }
    /// Scratch slot offsets of the units (len units + 1): unit u holds positions x stride slots
    /// from slot offs[u] * n.
    pub(crate) fn unit_offsets(units: &[Unit]) -> Vec<usize> {
        let mut v = vec![0usize];
        for u in units {
            v.push(v[v.len() - 1] + u.stride);
        }
        v
    }
    pub(crate) fn output_bytes(&self) -> u64 {
        // whole chunks are allocated, including the padding of edge chunks
        let c = &self.chunk;
        let nch = self.scan.0.div_ceil(c[0]) * self.scan.1.div_ceil(c[1]) * self.n_tiles();
        (nch * c[0] * c[1] * c[2] * c[3] * 8) as u64
    }
    pub(crate) fn scratch_bytes(&self) -> u64 {
        let slots: usize = self.units().iter().map(|u| u.stride).sum();
        (self.n() * slots * self.elem.size()) as u64
    }
}

/// State file of pass 1 (next to the scratch file).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ScratchState {
    pub(crate) key: String,
    pub(crate) positions_done: usize,
    /// Pass-2 K tiles done (informational; the HDF5 `blocks_done` is authoritative).
    #[serde(default)]
    pub(crate) tiles_done: usize,
}

pub(crate) fn write_state(path: &Path, st: &ScratchState) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(st).unwrap()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Where pass 1 puts the K-tile-major data for pass 2: a scratch file next to the EMD (resumable:
/// a state file records how far pass 1 got), or memory when it fits the budget (no disk detour).
/// The file is written and read with O_DIRECT where the transfer is 4 KiB aligned (in the usual
/// layouts all of them are): through the page cache every byte cost a kernel copy, 39 % of all
/// cycles of a 4-D FFT (`perf`); the rest goes through `direct: None`'s buffered descriptor.
pub(crate) enum ScratchStore {
    File { file: std::fs::File, direct: Option<std::fs::File> },
    Mem(std::sync::Mutex<Vec<u8>>),
}

impl ScratchStore {
    /// The scratch file `file` at `path`, with a second, O_DIRECT descriptor when the file system
    /// allows one.
    pub(crate) fn file(file: std::fs::File, path: &Path) -> ScratchStore {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path);
        if let Err(e) = &direct {
            log::info!("{}: FFT scratch without O_DIRECT ({e})", path.display());
        }
        ScratchStore::File { file, direct: direct.ok() }
    }
    pub(crate) fn write_at(&self, buf: &[u8], off: u64, path: &Path) -> Result<()> {
        match self {
            ScratchStore::File { file, direct } => {
                if let Some(d) = direct.as_ref().filter(|_| crate::util::direct_aligned(buf, off))
                    && d.write_all_at(buf, off).is_ok()
                {
                    return Ok(());
                }
                file.write_all_at(buf, off).map_err(|e| Error::io(path, e))
            }
            ScratchStore::Mem(m) => {
                let mut v = m.lock().expect("scratch lock");
                v[off as usize..off as usize + buf.len()].copy_from_slice(buf);
                Ok(())
            }
        }
    }
    pub(crate) fn read_at(&self, buf: &mut [u8], off: u64, path: &Path) -> Result<()> {
        match self {
            ScratchStore::File { file, direct } => {
                if let Some(d) = direct.as_ref().filter(|_| crate::util::direct_aligned(buf, off))
                    && d.read_exact_at(buf, off).is_ok()
                {
                    return Ok(());
                }
                file.read_exact_at(buf, off).map_err(|e| Error::io(path, e))
            }
            ScratchStore::Mem(m) => {
                let v = m.lock().expect("scratch lock");
                buf.copy_from_slice(&v[off as usize..off as usize + buf.len()]);
                Ok(())
            }
        }
    }
    pub(crate) fn in_memory(&self) -> bool {
        matches!(self, ScratchStore::Mem(_))
    }
}

/// The whole chunks of one group, contiguous, in file order, in a 4 KiB-aligned buffer so that
/// the writer sends them to the disk without a copy (reused between groups).
pub(crate) struct Chunks {
    pub(crate) offsets: Vec<[u64; 4]>,
    pub(crate) buf: crate::util::AlignedBuf,
    pub(crate) elems: usize,
}

impl Default for Chunks {
    fn default() -> Chunks {
        Chunks { offsets: Vec::new(), buf: crate::util::AlignedBuf::new(0), elems: 0 }
    }
}

impl Chunks {
    /// The chunks' bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.offsets.len() * self.elems * std::mem::size_of::<Complex32>()]
    }
    /// Room for `n` complex values (zeroed when the buffer grows; old contents otherwise).
    pub(crate) fn data_mut(&mut self, n: usize) -> &mut [Complex32] {
        let bytes = n * std::mem::size_of::<Complex32>();
        if self.buf.len() < bytes {
            self.buf = crate::util::AlignedBuf::new(bytes);
        }
        bytemuck::cast_slice_mut(&mut self.buf[..bytes])
    }
}

/// The open cache datasets and their state.
pub(crate) struct CacheDatasets {
    pub(crate) data: hdf5::Dataset,
    pub(crate) blocks: hdf5::Dataset,
    pub(crate) power_ds: hdf5::Dataset,
    /// Per K tile: 1 when complete.
    pub(crate) done: Vec<u8>,
    /// Running sum over K of |G|^2 (resumed from the file when blocks are done).
    pub(crate) power: Vec<f64>,
}
