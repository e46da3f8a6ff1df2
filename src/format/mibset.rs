//! A Merlin acquisition on disk: one `.mib` file or a multi-file set (`name1.mib`, `name2.mib`,
//! ...), with its `.hdr`. Opening is O(1) in the file size: the first header is parsed, the frame
//! count comes from the file size and the stride, and the magic is checked at a few frames.
//! Reads are positional (`pread`), so a file that grows (acquisition running) or shrinks under
//! us gives an error or fewer frames, never a SIGBUS.

use super::hdr::{self, AcqHeader};
use super::mib::{self, FrameHeader, Pixel};
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct MibPart {
    pub path: PathBuf,
    file: File,
    pub first_sequence: u64,
    frames: AtomicUsize,
    /// Read through memory-mapped windows (`MibSet::open_mmap`) instead of `pread`.
    mapped: bool,
}

impl MibPart {
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }
}

/// Reusable buffers for decoding (one per worker thread).
#[derive(Default)]
pub struct Scratch {
    pub bytes: AlignedBytes,
    pub raw: Vec<u32>,
    /// The current map window of a memory-mapped set.
    window: Option<MapWindow>,
    /// Scattered single-frame reads (samples, coarse previews): positional reads even on a
    /// mapped set, since a map window would read ahead far more than the frame when cold.
    pub scattered: bool,
}

/// A read-only map of `len` bytes of part `part` from byte `off` (page aligned).
struct MapWindow {
    part: usize,
    off: usize,
    map: memmap2::Mmap,
}

/// Default size of a map window: each worker maps this much of the file at a time and unmaps
/// it when it moves on, so mapped pages (which count as resident) stay bounded whatever the
/// file size.
pub const MAP_WINDOW: usize = 32 << 20;

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A reusable byte buffer that starts on a cache line, so that frame data at 32-byte aligned
/// offsets in it (the usual MIB header lengths, 384 and 768 bytes, are multiples of 32) is read by vector loads that
/// never straddle two lines. A heap `Vec<u8>` of this size often starts 16 bytes into a page,
/// which made the overview pass about 20 % slower.
#[derive(Default)]
pub struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    /// Set the length to `n` bytes (contents unspecified; no allocation when capacity suffices).
    pub fn resize(&mut self, n: usize) -> &mut [u8] {
        let lines = n.div_ceil(64);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; 64]));
        }
        self.len = n;
        // SAFETY: `lines` holds at least n initialised bytes
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), n) }
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

#[derive(Debug)]
pub struct MibSet {
    pub parts: Vec<MibPart>,
    /// Header of the first frame; all frames are assumed to share its geometry.
    pub header: FrameHeader,
    pub acq: Option<AcqHeader>,
    pub warnings: Vec<String>,
    /// Bytes per map window of a memory-mapped set.
    window: usize,
    /// Mapping failed once (e.g. a filesystem without mmap): read with `pread` instead.
    map_failed: std::sync::atomic::AtomicBool,
    /// Parts that appeared after opening (a multi-file acquisition still running), appended by
    /// [`refresh`](MibSet::refresh): slots filled once, never moved, so readers need no lock.
    more: std::sync::OnceLock<Box<[std::sync::OnceLock<MibPart>]>>,
    /// Filled slots of `more`.
    n_more: AtomicUsize,
    /// One refresh at a time appends parts.
    grow: std::sync::Mutex<()>,
}

/// Parts a running multi-file acquisition may add after opening (slots allocated on the first).
const MORE_PARTS: usize = 1 << 16;

fn read_head(path: &Path, file: &File, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn open_file(path: &Path) -> Result<File> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if md.is_dir() {
        return Err(Error::format(path, "is a directory, not a .mib file"));
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

/// Parse the first frame header of a file.
pub fn first_header(path: &Path, file: &File) -> Result<FrameHeader> {
    let head = read_head(path, file, 1024)?;
    let hl = mib::header_length(path, &head)?;
    let head = if hl > head.len() { read_head(path, file, hl)? } else { head };
    mib::parse_header(path, &head)
}

impl MibSet {
    /// Open `path` (and its multi-file siblings, when their sequence numbers chain).
    /// Open for memory-mapped reads: reads borrow from windows of [`MAP_WINDOW`] bytes mapped
    /// per worker (one copy fewer than `pread`; resident memory stays bounded). A file
    /// truncated while mapped raises SIGBUS: see [`crate::sigbus`].
    pub fn open_mmap(path: &Path, window: usize) -> Result<MibSet> {
        let mut set = Self::open(path)?;
        for p in &mut set.parts {
            p.mapped = true;
        }
        set.window = window.max(1 << 20);
        crate::sigbus::install(path);
        Ok(set)
    }

    pub fn is_mmap(&self) -> bool {
        self.parts.iter().all(|p| p.mapped)
    }

    /// The stored bytes of frames `start..start+count` borrowed from the worker's map window
    /// (remapped when they lie outside it). None when the set is not mapped or the frames span
    /// two files.
    fn mapped_bytes<'a>(
        &self,
        start: usize,
        count: usize,
        window: &'a mut Option<MapWindow>,
    ) -> Result<Option<&'a [u8]>> {
        let stride = self.header.stride();
        let Some((k, local)) = self.locate(start) else { return Ok(None) };
        let part = self.part_ref(k);
        if !part.mapped || local + count > part.frames() || self.map_failed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (a, b) = (local * stride, (local + count) * stride);
        let fits = |w: &MapWindow| w.part == k && w.off <= a && b <= w.off + w.map.len();
        if !window.as_ref().is_some_and(fits) {
            *window = None; // unmap first: at most one window per worker
            let off = a & !(page_size() - 1);
            let len = (b - off).max(self.window).min(part.frames() * stride - off);
            // SAFETY: a read-only map of bytes the file had when counted; a later truncation
            // raises SIGBUS, which `crate::sigbus` turns into a clear error exit.
            // (MAP_POPULATE was measured: it halves throughput, the faults are cheaper)
            let map = match unsafe { memmap2::MmapOptions::new().offset(off as u64).len(len).map(&part.file) } {
                Ok(m) => m,
                Err(e) => {
                    // a filesystem that cannot map: positional reads from now on
                    if !self.map_failed.swap(true, Ordering::Relaxed) {
                        log::warn!("{}: cannot memory-map ({e}); using positional reads", part.path.display());
                    }
                    return Ok(None);
                }
            };
            let _ = map.advise(memmap2::Advice::Sequential);
            *window = Some(MapWindow { part: k, off, map });
        }
        let w = window.as_ref().unwrap();
        Ok(Some(&w.map[a - w.off..b - w.off]))
    }

    pub fn open(path: &Path) -> Result<MibSet> {
        let file = open_file(path)?;
        let header = first_header(path, &file)?;
        let mut warnings = Vec::new();
        let mut parts = vec![Self::part(path, file, &header, &mut warnings)?];
        if let Some(sibs) = multi_file_siblings(path) {
            let mut cand = Vec::new();
            for p in sibs {
                if p == path {
                    continue;
                }
                let Ok(f) = File::open(&p) else { continue };
                let Ok(h) = first_header(&p, &f) else {
                    continue;
                };
                if !h.same_geometry(&header) {
                    continue;
                }
                let mut w = Vec::new();
                if let Ok(part) = Self::part(&p, f, &h, &mut w) {
                    cand.push((part, w));
                }
            }
            if !cand.is_empty() {
                // Chain from this file backwards and forwards: a file continues the acquisition when
                // its first sequence number follows the previous file's last one.
                let mine = parts.pop().unwrap();
                let mut chain: std::collections::VecDeque<MibPart> = std::collections::VecDeque::from([mine]);
                loop {
                    let last = chain.back().unwrap();
                    let next = last.first_sequence + last.frames() as u64;
                    match cand.iter().position(|(p, _)| p.first_sequence == next) {
                        Some(i) => {
                            let (p, w) = cand.swap_remove(i);
                            warnings.extend(w);
                            chain.push_back(p);
                        }
                        None => break,
                    }
                }
                loop {
                    let first = chain.front().unwrap().first_sequence;
                    match cand.iter().position(|(p, _)| p.first_sequence + p.frames() as u64 == first) {
                        Some(i) => {
                            let (p, w) = cand.swap_remove(i);
                            warnings.extend(w);
                            chain.push_front(p);
                        }
                        None => break,
                    }
                }
                if chain.len() == 1 {
                    warnings.push(format!(
                        "{}: other files with the same name pattern do not continue this acquisition; opened this file alone",
                        path.display()
                    ));
                }
                parts.extend(chain);
            }
        }
        let hdr_path = hdr::sibling(&parts[0].path).or_else(|| {
            // multi-file sets: `name.hdr` for `name1.mib`, `name2.mib`, ...
            let stem = parts[0].path.file_stem()?.to_str()?.trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
            let p = parts[0].path.with_file_name(format!("{stem}.hdr"));
            (parts.len() > 1 && p.is_file()).then_some(p)
        });
        let acq = match hdr_path {
            Some(hp) => match std::fs::read(&hp).map_err(|e| Error::io(&hp, e)).and_then(|b| hdr::parse(&hp, &b)) {
                Ok(h) => {
                    warnings.extend(h.warnings.iter().cloned());
                    Some(h)
                }
                Err(e) => {
                    warnings.push(format!("{e}; acquisition header ignored"));
                    None
                }
            },
            None => {
                warnings.push(format!(
                    "{}: no .hdr acquisition header next to it; scan shape from frame headers only",
                    parts[0].path.display()
                ));
                None
            }
        };
        let set = MibSet {
            parts,
            header,
            acq,
            warnings,
            window: MAP_WINDOW,
            map_failed: Default::default(),
            more: Default::default(),
            n_more: AtomicUsize::new(0),
            grow: Default::default(),
        };
        Ok(set)
    }

    fn part(path: &Path, file: File, header: &FrameHeader, warnings: &mut Vec<String>) -> Result<MibPart> {
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
        let stride = header.stride();
        let n = size / stride;
        let rem = size % stride;
        if n == 0 {
            return Err(Error::format(
                path,
                format!("file holds {size} bytes, less than one whole frame ({stride} bytes): truncated"),
            ));
        }
        if rem != 0 {
            warnings.push(format!(
                "{}: last frame truncated ({rem} of {stride} bytes, interrupted acquisition?); {n} whole frames used",
                path.display()
            ));
        }
        // magic and geometry at a few frames
        let mut probe: Vec<usize> = vec![1, n / 4, n / 2, 3 * n / 4, n - 1];
        probe.retain(|&i| i > 0 && i < n);
        probe.dedup();
        for i in probe {
            let mut b = vec![0u8; header.header_bytes];
            file.read_exact_at(&mut b, (i * stride) as u64).map_err(|e| Error::io(path, e))?;
            if !b.starts_with(b"MQ1,") {
                return Err(Error::format(
                    path,
                    format!("frame {i} does not start with 'MQ1,' at byte {}: frames differ in size", i * stride),
                ));
            }
            match mib::parse_header(path, &b) {
                Ok(h) if i == 1 && h.counter != header.counter => warnings.push(format!(
                    "{}: frames 0 and 1 come from counters {} and {} (alternating counters, continuous read/write); each frame is taken as one scan position",
                    path.display(),
                    header.counter,
                    h.counter
                )),
                Ok(h) if h.same_geometry(header) => {}
                Ok(h) => warnings.push(format!(
                    "{}: frame {i} header differs from frame 0 ({}x{} {} vs {}x{} {})",
                    path.display(),
                    h.width,
                    h.height,
                    h.pixel_depth,
                    header.width,
                    header.height,
                    header.pixel_depth
                )),
                Err(e) => warnings.push(format!("frame {i}: {e}")),
            }
        }
        Ok(MibPart {
            path: path.to_path_buf(),
            file,
            first_sequence: header.sequence,
            frames: AtomicUsize::new(n),
            mapped: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.parts[0].path
    }

    pub fn n_frames(&self) -> usize {
        self.all_parts().map(|p| p.frames()).sum()
    }

    /// Every part: those found at open, then those picked up since by [`refresh`](Self::refresh).
    pub fn all_parts(&self) -> impl Iterator<Item = &MibPart> {
        let n = self.n_more.load(Ordering::Acquire);
        let more = self.more.get().map(|m| &m[..n]).unwrap_or(&[]);
        self.parts.iter().chain(more.iter().filter_map(|s| s.get()))
    }

    /// Part `k` of [`all_parts`](Self::all_parts).
    fn part_ref(&self, k: usize) -> &MibPart {
        match self.parts.get(k) {
            Some(p) => p,
            None => {
                self.more.get().and_then(|m| m.get(k - self.parts.len())).and_then(|s| s.get()).expect("a located part")
            }
        }
    }

    pub fn total_bytes(&self) -> u64 {
        (self.n_frames() * self.header.stride()) as u64
    }

    /// Re-read file sizes (a running acquisition appends frames; a truncated file loses them)
    /// and pick up new files of a multi-file set (same name pattern) that continue the
    /// acquisition. Returns the new frame count.
    pub fn refresh(&self) -> usize {
        let stride = self.header.stride();
        for p in self.all_parts() {
            if let Ok(md) = p.file.metadata() {
                p.frames.store(md.len() as usize / stride, Ordering::Relaxed);
            }
        }
        self.pick_up_new_parts();
        self.n_frames()
    }

    /// Append the files of the name pattern whose first sequence number follows the last part's
    /// last frame (as [`open`](Self::open) chains them); a file without one whole frame yet, or
    /// of another geometry, is left for a later refresh.
    fn pick_up_new_parts(&self) {
        let Ok(_one) = self.grow.try_lock() else { return };
        let Some(sibs) = sibling_files(&self.parts[0].path) else { return };
        let known: std::collections::HashSet<PathBuf> = self.all_parts().map(|p| p.path.clone()).collect();
        let mut cand: Vec<MibPart> = sibs
            .into_iter()
            .filter(|p| !known.contains(p))
            .filter_map(|p| {
                let f = File::open(&p).ok()?;
                let h = first_header(&p, &f).ok()?;
                h.same_geometry(&self.header).then_some(())?;
                Self::part(&p, f, &h, &mut Vec::new()).ok()
            })
            .collect();
        while !cand.is_empty() {
            let last = self.all_parts().last().expect("a set has a part");
            let next = last.first_sequence + last.frames() as u64;
            let Some(i) = cand.iter().position(|p| p.first_sequence == next) else { break };
            // positional reads for late parts (SIGBUS protection is set up per mapped open)
            let p = cand.swap_remove(i);
            let slots = self.more.get_or_init(|| (0..MORE_PARTS).map(|_| std::sync::OnceLock::new()).collect());
            let n = self.n_more.load(Ordering::Acquire);
            let Some(slot) = slots.get(n) else { break };
            log::info!("{}: new part of the acquisition", p.path.display());
            let _ = slot.set(p);
            self.n_more.store(n + 1, Ordering::Release);
        }
    }

    /// Whether a part's path now names another file than the one open (the acquisition was
    /// restarted into the same name, or the file was deleted).
    pub fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.all_parts().any(|p| match (std::fs::metadata(&p.path), p.file.metadata()) {
            (Ok(now), Ok(open)) => (now.dev(), now.ino()) != (open.dev(), open.ino()),
            _ => true,
        })
    }

    /// (part index, frame within part) of a global frame index.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        for (k, p) in self.all_parts().enumerate() {
            let n = p.frames();
            if i < n {
                return Some((k, i));
            }
            i -= n;
        }
        None
    }

    /// Ask the kernel to start reading frame `i` into the page cache (asynchronous; a no-op for
    /// cached data). Scattered samples announced this way are fetched in parallel by the disk.
    pub fn prefetch(&self, i: usize) {
        if let Some((k, local)) = self.locate(i) {
            let stride = self.header.stride();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.part_ref(k).file);
            // SAFETY: plain advice on an open descriptor
            unsafe { libc::posix_fadvise(fd, (local * stride) as i64, stride as i64, libc::POSIX_FADV_WILLNEED) };
        }
    }

    /// Raw bytes (headers + payloads) of `count` consecutive frames from `start`, into `buf`.
    pub fn read_raw(&self, start: usize, count: usize, buf: &mut AlignedBytes) -> Result<()> {
        let stride = self.header.stride();
        let buf = buf.resize(count * stride);
        let mut done = 0;
        while done < count {
            let (k, local) = self.locate(start + done).ok_or_else(|| {
                Error::format(self.path(), format!("frame {} is beyond the end of the data", start + done))
            })?;
            let part = self.part_ref(k);
            let n = (part.frames() - local).min(count - done);
            let dst = &mut buf[done * stride..(done + n) * stride];
            part.file.read_exact_at(dst, (local * stride) as u64).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::format(
                        &part.path,
                        format!("frame {} is beyond the end of the file (file truncated?)", local + n),
                    )
                } else {
                    Error::io(&part.path, e)
                }
            })?;
            done += n;
        }
        Ok(())
    }

    /// Decode `count` frames from `start` into `out` (count * rows * cols pixels).
    pub fn decode_frames<T: Pixel>(
        &self,
        start: usize,
        count: usize,
        out: &mut [T],
        scratch: &mut Scratch,
    ) -> Result<()> {
        let h = &self.header;
        if T::TYPE != h.pixel_type {
            return Err(Error::Invalid(format!("decode as {:?}, data is {:?}", T::TYPE, h.pixel_type)));
        }
        if !scratch.scattered
            && let Some(bytes) = self.mapped_bytes(start, count, &mut scratch.window)?
        {
            return self.decode_block(start, count, bytes, out, &mut scratch.raw);
        }
        let mut bytes = std::mem::take(&mut scratch.bytes);
        let r = self
            .read_raw(start, count, &mut bytes)
            .and_then(|_| self.decode_block(start, count, bytes.as_slice(), out, &mut scratch.raw));
        scratch.bytes = bytes;
        r
    }

    /// The stored bytes (headers included) of frames `start..start+count`: borrowed from the map
    /// of a memory-mapped file, else read into `scratch`. Every frame's magic is checked.
    pub fn raw_frames<'a>(&'a self, start: usize, count: usize, scratch: &'a mut Scratch) -> Result<&'a [u8]> {
        let stride = self.header.stride();
        let mapped = if scratch.scattered { None } else { self.mapped_bytes(start, count, &mut scratch.window)? };
        let bytes: &[u8] = match mapped {
            Some(b) => b,
            None => {
                self.read_raw(start, count, &mut scratch.bytes)?;
                &scratch.bytes.as_slice()[..count * stride]
            }
        };
        for f in 0..count {
            if !bytes[f * stride..].starts_with(b"MQ1,") {
                return Err(Error::format(
                    self.path(),
                    format!("frame {} has no 'MQ1,' magic: frames differ in size or the file is corrupt", start + f),
                ));
            }
        }
        Ok(bytes)
    }

    fn decode_block<T: Pixel>(
        &self,
        start: usize,
        count: usize,
        bytes: &[u8],
        out: &mut [T],
        raw: &mut Vec<u32>,
    ) -> Result<()> {
        let h = &self.header;
        let npx = h.rows * h.cols;
        let stride = h.stride();
        for f in 0..count {
            let fb = &bytes[f * stride..(f + 1) * stride];
            if !fb.starts_with(b"MQ1,") {
                return Err(Error::format(
                    self.path(),
                    format!("frame {} has no 'MQ1,' magic: frames differ in size or the file is corrupt", start + f),
                ));
            }
            mib::decode_into(h, &fb[h.header_bytes..], &mut out[f * npx..(f + 1) * npx], raw)
                .map_err(|e| Error::format(self.path(), format!("frame {}: {e}", start + f)))?;
        }
        Ok(())
    }

    /// Decode `count` frames from `start` into a [`FrameBuf`](crate::format::frames::FrameBuf) (resized).
    pub fn decode_frames_buf(
        &self,
        start: usize,
        count: usize,
        out: &mut crate::format::frames::FrameBuf,
        scratch: &mut Scratch,
    ) -> Result<()> {
        out.resize(count * self.header.rows * self.header.cols);
        crate::with_frames!(out, v => self.decode_frames(start, count, v, scratch))
    }

    /// Parse the header of frame `i`.
    pub fn frame_header(&self, i: usize) -> Result<FrameHeader> {
        let (k, local) = self
            .locate(i)
            .ok_or_else(|| Error::format(self.path(), format!("frame {i} is beyond the end of the data")))?;
        let p = self.part_ref(k);
        let mut b = vec![0u8; self.header.header_bytes];
        p.file.read_exact_at(&mut b, (local * self.header.stride()) as u64).map_err(|e| Error::io(&p.path, e))?;
        mib::parse_header(&p.path, &b)
    }

    /// MQ1A timestamps (ns) of the first `max` frames; None if any is missing.
    pub fn timestamps(&self, max: usize) -> Option<Vec<i128>> {
        let n = self.n_frames().min(max);
        let mut out = Vec::with_capacity(n);
        // scattered small reads: no readahead of the pixel data in between
        for p in self.all_parts() {
            // SAFETY: a valid open fd; fadvise is only a hint and touches no memory of ours
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&p.file), 0, 0, libc::POSIX_FADV_RANDOM) };
        }
        let out_ref = &mut out;
        let r = self.timestamps_into(n, out_ref);
        for p in self.all_parts() {
            // SAFETY: as above
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&p.file), 0, 0, libc::POSIX_FADV_NORMAL) };
        }
        r.map(|_| out)
    }

    fn timestamps_into(&self, n: usize, out: &mut Vec<i128>) -> Option<()> {
        let mut b = vec![0u8; self.header.header_bytes];
        let stride = self.header.stride();
        for i in 0..n {
            let (k, local) = self.locate(i)?;
            self.part_ref(k).file.read_exact_at(&mut b, (local * stride) as u64).ok()?;
            let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
            let t = std::str::from_utf8(&b[..end]).ok()?;
            let f: Vec<&str> = t.split(',').collect();
            let j = f.iter().position(|s| *s == "MQ1A")?;
            out.push(mib::parse_iso_ns(f.get(j + 1)?)?);
        }
        Some(())
    }

    /// Identity of the source for cache keys: paths, sizes, mtimes and a hash of a few frames.
    pub fn fingerprint(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for p in self.all_parts() {
            h.update(p.path.to_string_lossy().as_bytes());
            if let Ok(md) = p.file.metadata() {
                h.update(&md.len().to_le_bytes());
                if let Ok(m) = md.modified()
                    && let Ok(d) = m.duration_since(std::time::UNIX_EPOCH)
                {
                    h.update(&d.as_nanos().to_le_bytes());
                }
            }
        }
        let n = self.n_frames();
        let mut buf = AlignedBytes::default();
        for i in [0, n / 2, n.saturating_sub(1)] {
            if self.read_raw(i, 1, &mut buf).is_ok() {
                h.update(buf.as_slice());
            }
        }
        format!("mib:{n}:{:016x}", h.digest())
    }
}

/// Other `.mib` files that may belong to the same multi-file acquisition: same directory, same
/// stem with only the trailing digits different. None when the stem does not end in digits.
pub fn multi_file_siblings(path: &Path) -> Option<Vec<PathBuf>> {
    sibling_files(path).filter(|v| v.len() > 1)
}

/// Every `.mib` of the name pattern of `path` (itself included); None when the stem does not end
/// in digits.
fn sibling_files(path: &Path) -> Option<Vec<PathBuf>> {
    let stem = path.file_stem()?.to_str()?;
    let prefix = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    if prefix.len() == stem.len() {
        return None;
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("mib") {
            continue;
        }
        let Some(s) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if let Some(rest) = s.strip_prefix(prefix)
            && !rest.is_empty()
            && rest.chars().all(|c| c.is_ascii_digit())
        {
            out.push(if path.parent().is_some_and(|d| d.as_os_str().is_empty()) {
                PathBuf::from(p.file_name().unwrap())
            } else {
                p
            });
        }
    }
    Some(out)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::synth::{self, SynthSpec};

    #[test]
    fn refresh_picks_up_new_files_of_a_multi_file_set() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec { rows: 4, cols: 6, images_per_file: Some(8), ..Default::default() };
        let paths = synth::write(&dir.path().join("acq.mib"), &spec, &|_, _| {}).unwrap();
        assert_eq!(paths.len(), 3);
        // the acquisition so far: the first file only; the others arrive later
        let later = dir.path().join("later");
        std::fs::create_dir(&later).unwrap();
        for p in &paths[1..] {
            std::fs::rename(p, later.join(p.file_name().unwrap())).unwrap();
        }
        let set = MibSet::open(&paths[0]).unwrap();
        assert_eq!((set.n_frames(), set.refresh()), (8, 8));
        // the second file appears, first less than one frame, then whole
        let two = std::fs::read(later.join("acq2.mib")).unwrap();
        std::fs::write(&paths[1], &two[..100]).unwrap();
        assert_eq!(set.refresh(), 8, "a part without one whole frame waits");
        std::fs::write(&paths[1], &two[..two.len() / 2]).unwrap();
        assert_eq!(set.refresh(), 12, "half of the second file");
        std::fs::write(&paths[1], &two).unwrap();
        // a file of the pattern that does not continue the acquisition is ignored
        std::fs::copy(&paths[0], dir.path().join("acq7.mib")).unwrap();
        assert_eq!(set.refresh(), 16);
        std::fs::rename(later.join("acq3.mib"), &paths[2]).unwrap();
        assert_eq!(set.refresh(), 24);
        assert_eq!(set.all_parts().count(), 3);
        // frames read across the parts are the written ones
        for i in [7usize, 8, 15, 16, 23] {
            let mut buf = AlignedBytes::default();
            set.read_raw(i, 1, &mut buf).unwrap();
            let h = mib::parse_header(&paths[0], buf.as_slice()).unwrap();
            assert_eq!(h.sequence as usize, i + 1, "frame {i}");
        }
        // a part that is replaced is reported
        assert!(!set.replaced());
        std::fs::remove_file(&paths[2]).unwrap();
        std::fs::write(&paths[2], &two).unwrap();
        assert!(set.replaced());
    }
}
