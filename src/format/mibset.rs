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
    /// Memory map of the whole frames (only with `MibSet::open_mmap`, for finished files).
    map: Option<memmap2::Mmap>,
}

impl MibPart {
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }
}

/// Reusable buffers for decoding (one per worker thread).
#[derive(Default)]
pub struct Scratch {
    pub bytes: Vec<u8>,
    pub raw: Vec<u32>,
}

#[derive(Debug)]
pub struct MibSet {
    pub parts: Vec<MibPart>,
    /// Header of the first frame; all frames are assumed to share its geometry.
    pub header: FrameHeader,
    pub acq: Option<AcqHeader>,
    pub warnings: Vec<String>,
}

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
    /// Open for memory-mapped reads: for finished files only (a file truncated while mapped
    /// raises SIGBUS). Reads decode straight from the map, one copy fewer than `pread`.
    pub fn open_mmap(path: &Path) -> Result<MibSet> {
        let mut set = Self::open(path)?;
        let stride = set.header.stride();
        for p in &mut set.parts {
            let len = p.frames() * stride;
            // SAFETY: the map is read-only; the caller promises the file is not truncated meanwhile.
            let m = unsafe { memmap2::MmapOptions::new().len(len).map(&p.file) }.map_err(|e| Error::io(&p.path, e))?;
            let _ = m.advise(memmap2::Advice::Sequential);
            p.map = Some(m);
        }
        Ok(set)
    }

    pub fn is_mmap(&self) -> bool {
        self.parts.iter().all(|p| p.map.is_some())
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
        let set = MibSet { parts, header, acq, warnings };
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
            map: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.parts[0].path
    }

    pub fn n_frames(&self) -> usize {
        self.parts.iter().map(|p| p.frames()).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        (self.n_frames() * self.header.stride()) as u64
    }

    /// Re-read file sizes (a running acquisition appends frames; a truncated file loses them).
    /// Returns the new frame count.
    pub fn refresh(&self) -> usize {
        let stride = self.header.stride();
        for p in &self.parts {
            if p.map.is_some() {
                continue; // a mapped (finished) file does not grow
            }
            if let Ok(md) = p.file.metadata() {
                p.frames.store(md.len() as usize / stride, Ordering::Relaxed);
            }
        }
        self.n_frames()
    }

    /// (part index, frame within part) of a global frame index.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        for (k, p) in self.parts.iter().enumerate() {
            let n = p.frames();
            if i < n {
                return Some((k, i));
            }
            i -= n;
        }
        None
    }

    /// Raw bytes (headers + payloads) of `count` consecutive frames from `start`, into `buf`.
    pub fn read_raw(&self, start: usize, count: usize, buf: &mut Vec<u8>) -> Result<()> {
        let stride = self.header.stride();
        buf.resize(count * stride, 0);
        let mut done = 0;
        while done < count {
            let (k, local) = self.locate(start + done).ok_or_else(|| {
                Error::format(self.path(), format!("frame {} is beyond the end of the data", start + done))
            })?;
            let part = &self.parts[k];
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
        let stride = h.stride();
        if let Some((k, local)) = self.locate(start)
            && let Some(m) = &self.parts[k].map
            && local + count <= self.parts[k].frames()
        {
            let bytes = &m[local * stride..(local + count) * stride];
            return self.decode_block(start, count, bytes, out, scratch);
        }
        let mut bytes = std::mem::take(&mut scratch.bytes);
        let r =
            self.read_raw(start, count, &mut bytes).and_then(|_| self.decode_block(start, count, &bytes, out, scratch));
        scratch.bytes = bytes;
        r
    }

    fn decode_block<T: Pixel>(
        &self,
        start: usize,
        count: usize,
        bytes: &[u8],
        out: &mut [T],
        scratch: &mut Scratch,
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
            mib::decode_into(h, &fb[h.header_bytes..], &mut out[f * npx..(f + 1) * npx], &mut scratch.raw)
                .map_err(|e| Error::format(self.path(), format!("frame {}: {e}", start + f)))?;
        }
        Ok(())
    }

    /// Decode `count` frames from `start` into a [`FrameBuf`](crate::dataset::FrameBuf) (resized).
    pub fn decode_frames_buf(
        &self,
        start: usize,
        count: usize,
        out: &mut crate::dataset::FrameBuf,
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
        let p = &self.parts[k];
        let mut b = vec![0u8; self.header.header_bytes];
        p.file.read_exact_at(&mut b, (local * self.header.stride()) as u64).map_err(|e| Error::io(&p.path, e))?;
        mib::parse_header(&p.path, &b)
    }

    /// MQ1A timestamps (ns) of the first `max` frames; None if any is missing.
    pub fn timestamps(&self, max: usize) -> Option<Vec<i128>> {
        let n = self.n_frames().min(max);
        let mut out = Vec::with_capacity(n);
        // scattered small reads: no readahead of the pixel data in between
        for p in &self.parts {
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&p.file), 0, 0, libc::POSIX_FADV_RANDOM) };
        }
        let out_ref = &mut out;
        let r = self.timestamps_into(n, out_ref);
        for p in &self.parts {
            unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&p.file), 0, 0, libc::POSIX_FADV_NORMAL) };
        }
        r.map(|_| out)
    }

    fn timestamps_into(&self, n: usize, out: &mut Vec<i128>) -> Option<()> {
        let mut b = vec![0u8; self.header.header_bytes];
        let stride = self.header.stride();
        for i in 0..n {
            let (k, local) = self.locate(i)?;
            self.parts[k].file.read_exact_at(&mut b, (local * stride) as u64).ok()?;
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
        for p in &self.parts {
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
        let mut buf = Vec::new();
        for i in [0, n / 2, n.saturating_sub(1)] {
            if self.read_raw(i, 1, &mut buf).is_ok() {
                h.update(&buf);
            }
        }
        format!("mib:{n}:{:016x}", h.digest())
    }
}

/// Other `.mib` files that may belong to the same multi-file acquisition: same directory, same
/// stem with only the trailing digits different. None when the stem does not end in digits.
pub fn multi_file_siblings(path: &Path) -> Option<Vec<PathBuf>> {
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
    (out.len() > 1).then_some(out)
}
