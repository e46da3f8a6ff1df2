//! Every raw HDF5 call of emdtui: attribute helpers, file opens with emdtui's access options,
//! the advisory writer/reader locks and the in-process reader registry, the shuffle+deflate chunk
//! codec, and direct chunk IO (`H5Dread_chunk`, `H5Dwrite_chunk`, and O_DIRECT writes at the
//! addresses HDF5 allocated). The layers above use these instead of calling `hdf5_sys`.
//!
//! Concurrency: HDF5's own file locking is disabled for every file emdtui opens (so a browsing
//! process does not stop a writer); instead every modification holds an exclusive advisory lock
//! on the sidecar `FILE.emd.lock` (pid written inside) and cache listings take a shared lock.
//! Inside one process, open readers of a file are closed (and reopen lazily) while a writer has it
//! open, because HDF5 refuses a read-write open of a file that the same process holds read-only.

use crate::error::{Error, Result};
use hdf5::types::VarLenUnicode;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// How long a cache reader waits for a writer to finish.
pub const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a writer waits for another writer.
pub const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Maps an HDF5 error to [`Error::Hdf5`] naming the file.
pub fn err(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
    move |e| Error::hdf5(path, e)
}

// ---------------------------------------------------------------------------------------------
// attribute / metadata helpers

pub fn vstr(s: &str) -> VarLenUnicode {
    let clean: String = s.chars().filter(|&c| c != '\0').collect();
    clean.parse().unwrap_or_default()
}

/// Write (or replace) a variable-length UTF-8 string attribute.
pub fn set_str_attr(loc: &hdf5::Location, k: &str, v: &str) -> hdf5::Result<()> {
    if loc.attr(k).is_ok() {
        loc.delete_attr(k)?;
    }
    loc.new_attr::<VarLenUnicode>().shape(()).create(k)?.write_scalar(&vstr(v))
}

/// Write (or replace) an int64 attribute.
pub fn set_int_attr(loc: &hdf5::Location, k: &str, v: i64) -> hdf5::Result<()> {
    if loc.attr(k).is_ok() {
        loc.delete_attr(k)?;
    }
    loc.new_attr::<i64>().shape(()).create(k)?.write_scalar(&v)
}

/// A string attribute (variable or fixed length) or None.
pub fn str_attr(loc: &hdf5::Location, k: &str) -> Option<String> {
    let a = loc.attr(k).ok()?;
    if let Ok(v) = a.read_scalar::<VarLenUnicode>() {
        return Some(v.as_str().to_string());
    }
    if let Ok(v) = a.read_scalar::<hdf5::types::VarLenAscii>() {
        return Some(v.as_str().to_string());
    }
    if let Ok(v) = a.read_scalar::<hdf5::types::FixedAscii<256>>() {
        return Some(v.as_str().to_string());
    }
    None
}

pub fn int_attr(loc: &hdf5::Location, k: &str) -> Option<i64> {
    let a = loc.attr(k).ok()?;
    if let Ok(v) = a.read_scalar::<i64>() {
        return Some(v);
    }
    str_attr(loc, k).and_then(|s| s.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// filters emdtui provides to the HDF5 library

/// Register emdtui's filters with the HDF5 library, once per process: bitshuffle + LZ4 (HDF5
/// filter 32008, [`super::bitshuffle`]), so that HDF5 itself reads and writes datasets that use
/// it. Called by every open and create below.
pub fn register_filters() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        static NAME: &[u8] = b"bitshuffle + LZ4 (emdtui)\0";
        let cls = hdf5_sys::h5z::H5Z_class2_t {
            version: hdf5_sys::h5z::H5Z_CLASS_T_VERS as std::ffi::c_int,
            id: super::bitshuffle::FILTER_ID as hdf5_sys::h5z::H5Z_filter_t,
            encoder_present: 1,
            decoder_present: 1,
            name: NAME.as_ptr().cast(),
            can_apply: None,
            set_local: None,
            filter: Some(bitshuffle_filter),
        };
        // SAFETY: H5Zregister copies the class; the name is a static NUL-terminated string and the
        // filter function lives for the whole process
        let rc = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5z::H5Zregister((&cls as *const hdf5_sys::h5z::H5Z_class2_t).cast())
        });
        if rc < 0 {
            log::warn!("could not register the bitshuffle filter with HDF5");
        }
    });
}

/// The HDF5 filter callback of bitshuffle + LZ4: replaces the buffer HDF5 owns with the
/// (de)compressed bytes; returns their length, 0 on failure (HDF5 then reports an error).
///
/// # Safety
/// Called by HDF5 only: `cd_values` holds `cd_nelmts` values, `*buf` holds `nbytes` valid bytes
/// allocated by HDF5 (freed here and replaced by memory from `H5allocate_memory`).
unsafe extern "C" fn bitshuffle_filter(
    flags: std::ffi::c_uint,
    cd_nelmts: libc::size_t,
    cd_values: *const std::ffi::c_uint,
    nbytes: libc::size_t,
    buf_size: *mut libc::size_t,
    buf: *mut *mut std::ffi::c_void,
) -> libc::size_t {
    let cd: &[std::ffi::c_uint] = if cd_values.is_null() {
        &[]
    } else {
        // SAFETY: HDF5 passes cd_nelmts values at cd_values
        unsafe { std::slice::from_raw_parts(cd_values, cd_nelmts) }
    };
    let elem = cd.get(2).copied().unwrap_or(1).max(1) as usize;
    // SAFETY: *buf holds nbytes bytes that HDF5 owns until we replace it
    let input: &[u8] = unsafe { std::slice::from_raw_parts((*buf).cast::<u8>(), nbytes) };
    let reverse = flags & hdf5_sys::h5z::H5Z_FLAG_REVERSE != 0;
    // no panic may cross into C
    let out = std::panic::catch_unwind(|| -> Option<Vec<u8>> {
        if reverse {
            let total = u64::from_be_bytes(input.get(..8)?.try_into().ok()?) as usize;
            let mut o = vec![0u8; total];
            super::bitshuffle::decompress(Path::new("HDF5 filter 32008"), input, &mut o, elem).ok()?;
            Some(o)
        } else {
            Some(super::bitshuffle::compress(input, elem))
        }
    });
    let Ok(Some(out)) = out else { return 0 };
    // SAFETY: memory for HDF5 to own and free; allocation checked below
    let p = unsafe { hdf5_sys::h5::H5allocate_memory(out.len().max(1), 0) };
    if p.is_null() {
        return 0;
    }
    // SAFETY: p has room for out.len() bytes; the old buffer is HDF5's and is not used after this;
    // buf and buf_size are HDF5's out-parameters
    unsafe {
        std::ptr::copy_nonoverlapping(out.as_ptr(), p.cast::<u8>(), out.len());
        hdf5_sys::h5::H5free_memory(*buf);
        *buf = p;
        *buf_size = out.len();
    }
    out.len()
}

/// Open options shared by every emdtui HDF5 open: no HDF5 file locking (see the module docs).
pub fn open_rw(path: &Path) -> Result<hdf5::File> {
    register_filters();
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).open_rw(path).map_err(err(path))
}

pub fn open_ro(path: &Path) -> Result<hdf5::File> {
    register_filters();
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).open(path).map_err(|e| {
        let mut head = [0u8; 8];
        let is_h5 = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .map(|_| head == *b"\x89HDF\r\n\x1a\n")
            .unwrap_or(false);
        if is_h5 { Error::hdf5(path, e) } else { Error::format(path, "not an HDF5/EMD file (no HDF5 signature)") }
    })
}

/// Create (truncating) with emdtui's open options.
pub fn create_trunc(path: &Path) -> Result<hdf5::File> {
    register_filters();
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).create(path).map_err(err(path))
}

// ---------------------------------------------------------------------------------------------
// locking

/// An advisory lock on `FILE.lock` (exclusive for writers, shared for cache readers).
pub struct EmdLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

pub fn lock_path(emd: &Path) -> PathBuf {
    let mut s = emd.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Take the exclusive writer lock on `emd`, waiting up to `wait` (calling `on_wait` once with the
/// message when it has to wait). Err names the holder's pid when it cannot get it.
pub fn lock_exclusive(emd: &Path, wait: std::time::Duration, on_wait: &dyn Fn(&str)) -> Result<EmdLock> {
    let lp = lock_path(emd);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lp)
        .map_err(|e| Error::io(&lp, e))?;
    let t0 = std::time::Instant::now();
    let mut told = false;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lp).unwrap_or_default().trim().to_string();
                let pid = if pid.is_empty() { "?".to_string() } else { pid };
                let msg = format!(
                    "{} is being written by another emdtui process (pid {pid}); {}",
                    emd.display(),
                    if wait.is_zero() { "try again later" } else { "waiting" }
                );
                if t0.elapsed() >= wait {
                    return Err(Error::Invalid(msg.replace("; waiting", "; gave up waiting, try again later")));
                }
                if !told {
                    on_wait(&msg);
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lp, e)),
        }
    }
    use std::io::{Seek, Write};
    let mut fw = &f;
    let _ = fw.set_len(0);
    let _ = fw.seek(std::io::SeekFrom::Start(0));
    let _ = write!(fw, "{}", std::process::id());
    let _ = fw.flush();
    Ok(EmdLock { _file: f, path: lp })
}

/// Shared lock for reading caches (waits while a writer holds the file, up to `wait`). None when
/// the lock file cannot be created (read-only directory): reading then goes ahead unlocked.
pub fn lock_shared(emd: &Path, wait: std::time::Duration) -> Option<EmdLock> {
    let lp = lock_path(emd);
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lp).ok()?;
    let t0 = std::time::Instant::now();
    loop {
        match f.try_lock_shared() {
            Ok(()) => return Some(EmdLock { _file: f, path: lp }),
            Err(std::fs::TryLockError::WouldBlock) if t0.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(_) => return None,
        }
    }
}

pub type Slot = Mutex<Option<(hdf5::File, hdf5::Dataset)>>;

/// Open reader handles in this process, so a writer can close them (HDF5 refuses a read-write open
/// of a file the same process holds read-only).
static READERS: Mutex<Vec<(PathBuf, Weak<Slot>)>> = Mutex::new(Vec::new());

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Register an open reader handle of `path`, so that writers in this process can close it.
pub fn register_reader(path: &Path, slot: &Arc<Slot>) {
    READERS.lock().expect("reader registry").push((canon(path), Arc::downgrade(slot)));
}

/// Close this process's reader handles of `path` (they reopen lazily on their next read).
pub fn close_readers(path: &Path) -> Vec<Arc<Slot>> {
    let c = canon(path);
    let mut v = READERS.lock().unwrap();
    v.retain(|(_, w)| w.strong_count() > 0);
    let slots: Vec<Arc<Slot>> = v.iter().filter(|(p, _)| *p == c).filter_map(|(_, w)| w.upgrade()).collect();
    for s in &slots {
        *s.lock().unwrap() = None;
    }
    slots
}

/// Run `f` with `path` open read-write under the exclusive lock; flushes before returning.
/// In-process readers of the file are closed meanwhile and reopen on their next read.
pub fn with_write<R>(path: &Path, wait: std::time::Duration, f: impl FnOnce(&hdf5::File) -> Result<R>) -> Result<R> {
    let _lock = lock_exclusive(path, wait, &|m| log::warn!("{m}"))?;
    let slots = close_readers(path);
    // keep the slots locked so no reader reopens while we write
    let _guards: Vec<_> = slots.iter().map(|s| s.lock().unwrap()).collect();
    let file = open_rw(path)?;
    let r = f(&file)?;
    file.flush().map_err(err(path))?;
    drop(file);
    Ok(r)
}

/// Run `f` on a fresh read-only open of `path` under the shared lock. In-process readers are closed
/// meanwhile: HDF5 shares one metadata cache between opens of a file in a process, so a handle kept
/// open would hide caches another process added since.
pub fn with_read<R>(path: &Path, f: impl FnOnce(&hdf5::File) -> Result<R>) -> Result<R> {
    let _l = lock_shared(path, READ_WAIT);
    let slots = close_readers(path);
    let _guards: Vec<_> = slots.iter().map(|s| s.lock().unwrap()).collect();
    let file = open_ro(path)?;
    f(&file)
}

/// Create (or open) the groups along `path` (`/a/b/c`).
pub fn ensure_group(f: &hdf5::File, path: &str) -> hdf5::Result<hdf5::Group> {
    let mut cur = f.group("/")?;
    for part in path.split('/').filter(|s| !s.is_empty()) {
        cur = if cur.link_exists(part) { cur.group(part)? } else { cur.create_group(part)? };
    }
    Ok(cur)
}

/// Create (truncating) a file for early-allocated, directly written chunks. It is created with
/// the default format bounds (its superblock then has no "open for write" flag, which a killed
/// writer would leave set, making the file unreadable) and reopened with the access options of
/// [`open_rw_aligned`], so that the objects created next use the 1.10 chunk index.
pub fn create_trunc_aligned(path: &Path) -> Result<hdf5::File> {
    drop(create_trunc(path)?);
    open_rw_aligned(path)
}

/// Open read-write, or create (failing if it exists), with the access options of files that hold
/// early-allocated chunks written directly: large allocations start on 4 KiB boundaries (so they
/// can be written with O_DIRECT) and new objects use the HDF5 1.10 format, whose fixed-array
/// chunk index is one block, so early-allocated chunks follow each other in chunk order (the 1.8
/// B-tree index interleaves its nodes with them).
pub fn open_rw_aligned(path: &Path) -> Result<hdf5::File> {
    register_filters();
    let mut b = hdf5::File::with_options();
    let b = b.with_fapl(|p| {
        p.file_locking(false)
            .alignment(64 << 10, 4096)
            .libver_bounds(hdf5::file::LibraryVersion::V110, hdf5::file::LibraryVersion::latest())
    });
    if path.exists() { b.open_rw(path) } else { b.create_excl(path) }.map_err(err(path))
}

/// Whether the dataset's element type is stored little-endian.
pub fn is_little_endian(d: &hdf5::Dataset) -> bool {
    d.dtype().is_ok_and(|t| {
        let id = t.id();
        // SAFETY: `id` is a valid datatype id owned by `t`, alive for this call
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tget_order(id) }) == hdf5_sys::h5t::H5T_order_t::H5T_ORDER_LE
    })
}

// ---------------------------------------------------------------------------------------------
// chunk codec: HDF5's shuffle filter followed by deflate (zlib)

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

/// Inverse of [`shuffle`] into `out` (same length as `src`).
pub fn unshuffle(src: &[u8], elem: usize, out: &mut [u8]) {
    if elem <= 1 {
        out.copy_from_slice(src);
        return;
    }
    let n = out.len() / elem;
    for b in 0..elem {
        let plane = &src[b * n..(b + 1) * n];
        for (i, &x) in plane.iter().enumerate() {
            out[i * elem + b] = x;
        }
    }
    out[n * elem..].copy_from_slice(&src[n * elem..]);
}

/// Shuffle + zlib at `level`: the bytes HDF5 stores for a chunk with `.shuffle().deflate(level)`.
pub fn compress_chunk(raw: &[u8], elem: usize, level: u32) -> Vec<u8> {
    use std::io::Write;
    let sh = shuffle(raw, elem);
    let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(raw.len() / 4), flate2::Compression::new(level));
    z.write_all(&sh).expect("in-memory zlib");
    z.finish().expect("in-memory zlib")
}

/// Decode a stored chunk (`deflate` and/or `shuffle` as declared) into `chunk` (its exact size).
/// Errors name `path` and say what is wrong with the bytes.
pub fn decode_chunk(
    path: &Path,
    raw: &[u8],
    chunk: &mut [u8],
    elem: usize,
    shuffled: bool,
    deflated: bool,
) -> Result<()> {
    let bad = |m: String| Error::format(path, m);
    let tmp;
    let data: &[u8] = if deflated {
        let mut t = vec![0u8; chunk.len()];
        let mut z = flate2::Decompress::new(true);
        let st = z
            .decompress(raw, &mut t, flate2::FlushDecompress::Finish)
            .map_err(|e| bad(format!("corrupt compressed chunk: {e}")))?;
        if z.total_out() as usize != chunk.len() || st != flate2::Status::StreamEnd {
            return Err(bad(format!("compressed chunk decodes to {} bytes, expected {}", z.total_out(), chunk.len())));
        }
        tmp = t;
        &tmp
    } else {
        raw
    };
    if data.len() != chunk.len() {
        return Err(bad(format!("chunk has {} bytes, expected {}", data.len(), chunk.len())));
    }
    if shuffled {
        unshuffle(data, elem, chunk);
    } else {
        chunk.copy_from_slice(data);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// direct chunk IO

/// File address and stored size of the chunk at `offset` (None when it was never written).
pub fn chunk_info(d: &hdf5::Dataset, offset: &[u64]) -> Option<(u64, u64)> {
    let (mut mask, mut addr, mut size) = (0u32, 0u64, 0u64);
    let id = d.id();
    // SAFETY: `id` is a valid dataset id owned by `d`; `offset` has one entry per dimension
    // (checked by the callers' shapes) and the out-pointers are locals
    let rc = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dget_chunk_info_by_coord(id, offset.as_ptr(), &mut mask, &mut addr, &mut size)
    });
    (rc >= 0 && size != 0 && addr != hdf5_sys::h5::HADDR_UNDEF).then_some((addr, size))
}

/// The stored (filtered) bytes of the chunk at `offset` into `raw`; `Ok(false)` when the chunk was
/// never written (it reads as the fill value).
pub fn read_chunk_raw(path: &Path, d: &hdf5::Dataset, offset: &[u64; 4], raw: &mut Vec<u8>) -> Result<bool> {
    let Some((_, size)) = chunk_info(d, offset) else { return Ok(false) };
    raw.resize(size as usize, 0);
    let id = d.id();
    let mut filter_mask: u32 = 0;
    #[cfg(hdf5_2)]
    let mut buf_size: usize = raw.len();
    // SAFETY: `id` is a valid dataset id; `raw` holds exactly the chunk's stored size, which is
    // what H5Dread_chunk writes (HDF5 2.x is also told that size); `offset` has the dataset's 4
    // dimensions
    let rc = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread_chunk(
            id,
            hdf5_sys::h5p::H5P_DEFAULT,
            offset.as_ptr(),
            &mut filter_mask,
            raw.as_mut_ptr().cast(),
            #[cfg(hdf5_2)]
            &mut buf_size,
        )
    });
    if rc < 0 {
        return Err(Error::hdf5(path, format!("reading the chunk at {offset:?}")));
    }
    if filter_mask != 0 {
        return Err(Error::format(path, format!("chunk at {offset:?} skipped a filter (mask {filter_mask:#x})")));
    }
    Ok(true)
}

/// Write one chunk's stored bytes (already filtered as the dataset declares) at `offset`.
pub fn write_chunk_raw(path: &Path, d: &hdf5::Dataset, offset: &[u64; 4], bytes: &[u8]) -> Result<()> {
    let id = d.id();
    // SAFETY: `id` is a valid dataset id; `bytes` is a live slice of `bytes.len()` bytes and
    // `offset` has the dataset's 4 dimensions
    let rc = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dwrite_chunk(
            id,
            hdf5_sys::h5p::H5P_DEFAULT,
            0,
            offset.as_ptr(),
            bytes.len(),
            bytes.as_ptr().cast(),
        )
    });
    if rc < 0 {
        return Err(Error::hdf5(path, format!("writing the chunk at {offset:?} failed")));
    }
    Ok(())
}

use crate::util::Page;

/// Writes whole chunks of an unfiltered, early-allocated 4-D dataset with O_DIRECT at the file
/// addresses HDF5 allocated for them (4 KiB aligned, see [`open_rw_aligned`]), coalescing chunks
/// adjacent in the file into one write. Buffered writes copy every byte into the page cache,
/// which on the 2-core test machines cost 2 to 4 s of kernel CPU per GiB; direct writes cost
/// about 0.25 s per GiB and reach the disk's speed. HDF5 never touches these bytes (it holds no
/// raw-data cache for chunks it does not read); the caller fsyncs before declaring data complete.
pub struct DirectChunkWriter {
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

impl DirectChunkWriter {
    /// Ready to write, or why not (then chunks go through [`write_chunk_raw`]).
    pub fn new(
        path: &Path,
        data: &hdf5::Dataset,
        dims: [usize; 4],
        chunk: [usize; 4],
        elem_bytes: usize,
    ) -> std::result::Result<DirectChunkWriter, String> {
        let chunk_bytes = chunk.iter().product::<usize>() * elem_bytes;
        if !chunk_bytes.is_multiple_of(4096) {
            return Err(format!("chunk of {chunk_bytes} bytes is not a multiple of 4096"));
        }
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
            match chunk_info(data, &c) {
                Some((a, size)) if size == chunk_bytes as u64 && a % 4096 == 0 => Ok(a),
                other => Err(format!("chunk {c:?} ({other:?}) is not an aligned raw chunk")),
            }
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
            .open(path)
            .map_err(|e| format!("O_DIRECT open: {e}"))?;
        let stage = vec![Page([0; 4096]); (8usize << 20).max(chunk_bytes) / 4096];
        Ok(DirectChunkWriter { path: path.to_path_buf(), file, base, grid, chunk, chunk_bytes, stage })
    }

    /// Bytes of one chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// Write chunk `i` of `offsets` from `data[i * chunk_bytes..]` for every i; returns the bytes
    /// written. Chunks that follow each other both in `data` and in the file go out in one write
    /// straight from `data` when it is 4 KiB aligned, several writes at once (the disk sees more
    /// than one request in flight); put the chunks in file order to get long runs.
    pub fn write(&mut self, offsets: &[[u64; 4]], data: &[u8]) -> Result<u64> {
        let cb = self.chunk_bytes;
        let chunks: Vec<(&[u64; 4], &[u8])> = offsets.iter().zip(data.chunks(cb)).collect();
        self.write_impl(&chunks, Some(data))
    }

    /// Write each (chunk offset, chunk bytes) pair (every slice exactly one chunk long); chunks
    /// that lie next to each other in the file go out in one write, copied through the stage
    /// buffer. Returns the bytes written.
    pub fn write_chunks(&mut self, chunks: &[(&[u64; 4], &[u8])]) -> Result<u64> {
        self.write_impl(chunks, None)
    }

    fn write_impl(&mut self, chunks: &[(&[u64; 4], &[u8])], whole: Option<&[u8]>) -> Result<u64> {
        let mut order: Vec<(u64, usize)> = chunks
            .iter()
            .enumerate()
            .map(|(i, (o, _))| {
                let lin = (0..4).fold(0usize, |acc, d| acc * self.grid[d] + o[d] as usize / self.chunk[d]);
                (self.base + (lin * self.chunk_bytes) as u64, i)
            })
            .collect();
        order.sort_unstable();
        let cb = self.chunk_bytes;
        // runs of chunks adjacent in the file and, when `whole` is given, in memory:
        // (file address, first and last position in `order`)
        let aligned = whole.is_some_and(|w| (w.as_ptr() as usize).is_multiple_of(4096) && cb.is_multiple_of(4096));
        let mut direct: Vec<(u64, usize, usize)> = Vec::new();
        let mut staged: Vec<(u64, usize, usize)> = Vec::new();
        for (k, &(a, i)) in order.iter().enumerate() {
            let list = if aligned { &mut direct } else { &mut staged };
            match list.last_mut() {
                Some((s, f, e)) if a == *s + ((*e - *f + 1) * cb) as u64 && (!aligned || order[*e].1 + 1 == i) => {
                    *e = k
                }
                _ => list.push((a, k, k)),
            }
        }
        let mut written = 0u64;
        if let (Some(w), false) = (whole, direct.is_empty()) {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let threads = direct.len().min(4);
            let (direct, order, file, path) = (&direct, &order, &self.file, &self.path);
            let res: Vec<Result<u64>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| -> Result<u64> {
                            let mut n = 0u64;
                            loop {
                                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some(&(a, f, e)) = direct.get(k) else { return Ok(n) };
                                let i0 = order[f].1;
                                let buf = &w[i0 * cb..(i0 + e - f + 1) * cb];
                                file.write_all_at(buf, a).map_err(|x| Error::io(path, x))?;
                                n += buf.len() as u64;
                            }
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("chunk writer thread panicked")).collect()
            });
            for r in res {
                written += r?;
            }
        }
        let cap = self.stage.len() * 4096;
        for (_, f, e) in staged {
            let (mut start, mut len) = (0u64, 0usize);
            for &(a, i) in &order[f..=e] {
                if len > 0 && len + cb > cap {
                    self.flush(start, len)?;
                    written += len as u64;
                    len = 0;
                }
                if len == 0 {
                    start = a;
                }
                let stage: &mut [u8] = bytemuck::cast_slice_mut(&mut self.stage);
                stage[len..len + cb].copy_from_slice(chunks[i].1);
                len += cb;
            }
            if len > 0 {
                self.flush(start, len)?;
                written += len as u64;
            }
        }
        Ok(written)
    }

    fn flush(&self, at: u64, len: usize) -> Result<()> {
        let buf: &[u8] = bytemuck::cast_slice(&self.stage);
        self.file.write_all_at(&buf[..len], at).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_makes_byte_planes_and_unshuffle_inverts_it() {
        let v: Vec<u16> = vec![0x0102, 0x0304, 0x0506];
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let s = shuffle(&b, 2);
        assert_eq!(s, vec![0x02, 0x04, 0x06, 0x01, 0x03, 0x05]);
        assert_eq!(shuffle(&b, 1), b);
        let mut back = vec![0u8; b.len()];
        unshuffle(&s, 2, &mut back);
        assert_eq!(back, b);
    }

    #[test]
    fn compressed_chunks_decode_to_their_bytes() {
        let raw: Vec<u8> = (0..4096u32).flat_map(|i| ((i % 300) as u16).to_le_bytes()).collect();
        let z = compress_chunk(&raw, 2, 1);
        assert!(z.len() < raw.len());
        let mut out = vec![0u8; raw.len()];
        decode_chunk(Path::new("x.emd"), &z, &mut out, 2, true, true).unwrap();
        assert_eq!(out, raw);
        let e = decode_chunk(Path::new("x.emd"), &z[..10], &mut out, 2, true, true).unwrap_err();
        assert!(e.to_string().starts_with("x.emd: "), "{e}");
    }

    #[test]
    fn lock_path_is_a_sidecar() {
        assert_eq!(lock_path(Path::new("/x/a.emd")), PathBuf::from("/x/a.emd.lock"));
    }
}
