//! EMD 1.0 (HDF5) files: see `../shared/docs/emd-layout.md`.
//!
//! * Writing: [`create_skeleton`] lays out the exact py4DSTEM-flavoured EMD 1.0 tree (root attrs,
//!   `datacube_root`, calibration, `datacube` with `data` + `dim0..dim3`, acquisition metadata) and the
//!   plain `/emdtui` group; the conversion (`compute::convert`) fills the chunks.
//! * Caches: small results live under `datacube_root/datacube/cached/<name>` (RealSlice /
//!   DiffractionSlice), large app-private ones under `/emdtui/cache/<name>`. Every cache group carries
//!   `emdtui_params` (JSON), `emdtui_version`, `emdtui_cache_format`, `emdtui_created`, `emdtui_source`
//!   (fingerprint of the datacube it was computed from). [`EmdFile`] lists them with validity, reads
//!   the valid overviews, writes new ones incrementally and removes only stale ones.
//! * Reading: [`EmdDataset`] opens files emdtui wrote, EMD 1.0 files saved by py4DSTEM, and the older
//!   `version_1/data/datacubes/datacube_000/data` (+ `dim1..dim4`) layout.
//! * Concurrency: HDF5's own file locking is disabled for every file emdtui opens (so a browsing
//!   process does not stop a writer); instead every modification holds an exclusive advisory lock
//!   on the sidecar `FILE.emd.lock` (pid written inside) and cache listings take a shared lock. The
//!   datacube is never modified after conversion, so frame reads through an open handle stay valid
//!   while another process appends caches. Inside one process, open readers of a file are closed
//!   (and reopen lazily) while a writer has it open, because HDF5 refuses a read-write open of a file
//!   that the same process holds read-only.

use crate::compute::overview::{Geometry, Overviews};
use crate::dataset::{Dataset, DatasetInfo, FrameBuf, OpenOptions, ReadScratch, ScanShape};
use crate::error::{Error, Result};
use crate::format::mib::PixelType;
use hdf5::types::{IntSize, TypeDescriptor, VarLenUnicode};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Version of the cache attribute scheme; bump to invalidate every cache written before.
pub const CACHE_FORMAT_VERSION: i64 = 1;
/// Version of the `/emdtui` group layout.
pub const EMDTUI_FORMAT_VERSION: &str = "1";
pub const ROOT: &str = "datacube_root";
pub const DATACUBE: &str = "datacube_root/datacube";
pub const CACHED: &str = "datacube_root/datacube/cached";
pub const APP: &str = "emdtui";
pub const APP_CACHE: &str = "emdtui/cache";

fn h5(path: &Path) -> impl Fn(hdf5::Error) -> Error + '_ {
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

fn md_string(g: &hdf5::Group, name: &str, v: &str) -> hdf5::Result<()> {
    let d = g.new_dataset::<VarLenUnicode>().shape(()).create(name)?;
    d.write_scalar(&vstr(v))?;
    set_str_attr(&d, "type", "string")
}

fn md_number(g: &hdf5::Group, name: &str, v: f64) -> hdf5::Result<()> {
    let d = g.new_dataset::<f64>().shape(()).create(name)?;
    d.write_scalar(&v)?;
    set_str_attr(&d, "type", "number")
}

fn md_bool(g: &hdf5::Group, name: &str, v: bool) -> hdf5::Result<()> {
    let d = g.new_dataset::<bool>().shape(()).create(name)?;
    d.write_scalar(&v)?;
    set_str_attr(&d, "type", "bool")
}

fn write_dim(g: &hdf5::Group, k: usize, name: &str, units: &str, offset: f64, step: f64) -> hdf5::Result<()> {
    let d = g
        .new_dataset_builder()
        .with_data(&ndarray::arr1(&[offset, offset + step]))
        .create(format!("dim{k}").as_str())?;
    set_str_attr(&d, "name", name)?;
    set_str_attr(&d, "units", units)
}

/// A metadata value for the acquisition group.
#[derive(Debug, Clone)]
pub enum MdValue {
    Str(String),
    Num(f64),
}

/// Metadata key safe for EMD readers: lower-case `[a-z0-9_]`, never starting with "data" (HyperSpy
/// would load it as a signal) nor with a digit.
pub fn safe_key(k: &str) -> String {
    let mut s: String =
        k.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    let s = if s.is_empty() { "key".to_string() } else { s };
    if s.starts_with("data") || s.starts_with(|c: char| c.is_ascii_digit()) { format!("mib_{s}") } else { s }
}

/// Everything needed to lay out a new EMD file.
#[derive(Debug, Clone)]
pub struct DatacubeSpec {
    /// (Rx, Ry, Qx, Qy) = (scan rows, scan cols, det rows, det cols).
    pub shape: [usize; 4],
    pub pixel_type: PixelType,
    pub compress: bool,
    pub r_pixel_size: f64,
    pub r_pixel_units: String,
    pub q_pixel_size: f64,
    pub q_pixel_units: String,
    /// Acquisition metadata (keys are made safe with [`safe_key`]).
    pub acquisition: Vec<(String, MdValue)>,
    /// Fingerprint of the source (`MibSet::fingerprint()`).
    pub source_fingerprint: String,
    pub source_path: String,
}

/// Deflate level for compressed datacubes: 1 (shuffle + gzip level 1); `EMDTUI_ZLIB_LEVEL` overrides
/// it for experiments. The declared HDF5 filter level always matches the level used.
pub fn deflate_level() -> u32 {
    std::env::var("EMDTUI_ZLIB_LEVEL").ok().and_then(|s| s.parse().ok()).filter(|l| (1..=9).contains(l)).unwrap_or(1)
}

/// Frames per chunk along the scan columns: whole frames, about 1 MiB per chunk.
pub fn chunk_k(shape: [usize; 4], pixel_type: PixelType) -> usize {
    let fb = shape[2] * shape[3] * pixel_type.bytes();
    ((1usize << 20) / fb.max(1)).clamp(1, shape[1].max(1))
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h1 = xxhash_rust::xxh3::xxh3_64(&[t.to_le_bytes().as_slice(), &std::process::id().to_le_bytes()].concat());
    let h2 = xxhash_rust::xxh3::xxh3_64(&h1.to_le_bytes());
    b[..8].copy_from_slice(&h1.to_le_bytes());
    b[8..].copy_from_slice(&h2.to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Current UTC time, ISO 8601.
pub fn now_iso() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (s.div_euclid(86400), s.rem_euclid(86400));
    let (y, m, d) = crate::format::mib::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Open options shared by every emdtui HDF5 open: no HDF5 file locking (see the module docs).
pub fn open_rw(path: &Path) -> Result<hdf5::File> {
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).open_rw(path).map_err(h5(path))
}

pub fn open_ro(path: &Path) -> Result<hdf5::File> {
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

fn create_trunc(path: &Path) -> Result<hdf5::File> {
    hdf5::File::with_options().with_fapl(|p| p.file_locking(false)).create(path).map_err(h5(path))
}

/// Create a new EMD file at `path` (truncating) with the full layout and an empty `data` dataset;
/// `/emdtui@complete` is 0 until [`mark_complete`]. Returns the file and the data dataset.
pub fn create_skeleton(path: &Path, spec: &DatacubeSpec) -> Result<(hdf5::File, hdf5::Dataset)> {
    let e = h5(path);
    let f = create_trunc(path)?;
    set_str_attr(&f, "emd_group_type", "file").map_err(&e)?;
    set_int_attr(&f, "version_major", 1).map_err(&e)?;
    set_int_attr(&f, "version_minor", 0).map_err(&e)?;
    set_str_attr(&f, "UUID", &uuid4()).map_err(&e)?;
    set_str_attr(&f, "authoring_program", &format!("emdtui {}", crate::VERSION)).map_err(&e)?;
    set_str_attr(&f, "authoring_user", "").map_err(&e)?;

    let root = f.create_group(ROOT).map_err(&e)?;
    set_str_attr(&root, "emd_group_type", "root").map_err(&e)?;
    set_str_attr(&root, "python_class", "Root").map_err(&e)?;
    let mb = root.create_group("metadatabundle").map_err(&e)?;
    set_str_attr(&mb, "emd_group_type", "metadatabundle").map_err(&e)?;
    let cal = mb.create_group("calibration").map_err(&e)?;
    set_str_attr(&cal, "emd_group_type", "metadata").map_err(&e)?;
    set_str_attr(&cal, "python_class", "Calibration").map_err(&e)?;
    md_number(&cal, "R_pixel_size", spec.r_pixel_size).map_err(&e)?;
    md_string(&cal, "R_pixel_units", &spec.r_pixel_units).map_err(&e)?;
    md_number(&cal, "Q_pixel_size", spec.q_pixel_size).map_err(&e)?;
    md_string(&cal, "Q_pixel_units", &spec.q_pixel_units).map_err(&e)?;
    md_bool(&cal, "QR_flip", false).map_err(&e)?;
    md_string(&cal, "_root_treepath", "").map_err(&e)?;
    let tp = cal.create_group("_target_paths").map_err(&e)?;
    set_str_attr(&tp, "type", "list_of_strings").map_err(&e)?;
    set_int_attr(&tp, "length", 1).map_err(&e)?;
    let t0 = tp.new_dataset::<VarLenUnicode>().shape(()).create("0").map_err(&e)?;
    t0.write_scalar(&vstr("/datacube")).map_err(&e)?;

    let dc = root.create_group("datacube").map_err(&e)?;
    set_str_attr(&dc, "emd_group_type", "array").map_err(&e)?;
    set_str_attr(&dc, "python_class", "DataCube").map_err(&e)?;
    set_str_attr(&dc, "emdtui_source_fingerprint", &spec.source_fingerprint).map_err(&e)?;
    set_str_attr(&dc, "emdtui_source_path", &spec.source_path).map_err(&e)?;
    let sh = spec.shape;
    let k = chunk_k(sh, spec.pixel_type);
    macro_rules! mk {
        ($t:ty) => {{
            let b = dc.new_dataset::<$t>().shape(sh).chunk([1, k, sh[2], sh[3]]);
            let b = if spec.compress { b.shuffle().deflate(deflate_level() as u8) } else { b };
            b.create("data").map_err(&e)?
        }};
    }
    let data = match spec.pixel_type {
        PixelType::U8 => mk!(u8),
        PixelType::U16 => mk!(u16),
        PixelType::U32 => mk!(u32),
    };
    set_str_attr(&data, "units", "pixel intensity").map_err(&e)?;
    write_dim(&dc, 0, "Rx", &spec.r_pixel_units, 0.0, spec.r_pixel_size).map_err(&e)?;
    write_dim(&dc, 1, "Ry", &spec.r_pixel_units, 0.0, spec.r_pixel_size).map_err(&e)?;
    write_dim(&dc, 2, "Qx", &spec.q_pixel_units, 0.0, spec.q_pixel_size).map_err(&e)?;
    write_dim(&dc, 3, "Qy", &spec.q_pixel_units, 0.0, spec.q_pixel_size).map_err(&e)?;

    let dmb = dc.create_group("metadatabundle").map_err(&e)?;
    set_str_attr(&dmb, "emd_group_type", "metadatabundle").map_err(&e)?;
    let acq = dmb.create_group("acquisition").map_err(&e)?;
    set_str_attr(&acq, "emd_group_type", "metadata").map_err(&e)?;
    set_str_attr(&acq, "python_class", "Metadata").map_err(&e)?;
    let mut seen = std::collections::HashSet::new();
    for (key, v) in &spec.acquisition {
        let mut k = safe_key(key);
        while !seen.insert(k.clone()) {
            k.push('_');
        }
        match v {
            MdValue::Str(s) => md_string(&acq, &k, s),
            MdValue::Num(x) => md_number(&acq, &k, *x),
        }
        .map_err(&e)?;
    }

    let cached = dc.create_group("cached").map_err(&e)?;
    set_str_attr(&cached, "emd_group_type", "node").map_err(&e)?;
    set_str_attr(&cached, "python_class", "Node").map_err(&e)?;

    let app = f.create_group(APP).map_err(&e)?;
    set_str_attr(&app, "format_version", EMDTUI_FORMAT_VERSION).map_err(&e)?;
    set_int_attr(&app, "complete", 0).map_err(&e)?;
    app.create_group("cache").map_err(&e)?;
    Ok((f, data))
}

/// Mark the conversion complete (the last write before closing and renaming).
pub fn mark_complete(f: &hdf5::File, path: &Path) -> Result<()> {
    let app = f.group(APP).map_err(h5(path))?;
    set_int_attr(&app, "complete", 1).map_err(h5(path))?;
    f.flush().map_err(h5(path))
}

/// Append a line to the computation log `/emdtui/log` (created if missing).
pub fn append_log(f: &hdf5::File, path: &Path, line: &str) -> Result<()> {
    let e = h5(path);
    let app = match f.group(APP) {
        Ok(g) => g,
        Err(_) => {
            let g = f.create_group(APP).map_err(&e)?;
            set_str_attr(&g, "format_version", EMDTUI_FORMAT_VERSION).map_err(&e)?;
            g
        }
    };
    let ds = match app.dataset("log") {
        Ok(d) => d,
        Err(_) => app.new_dataset::<VarLenUnicode>().shape((0..,)).chunk(64).create("log").map_err(&e)?,
    };
    let n = ds.shape()[0];
    ds.resize(n + 1).map_err(&e)?;
    ds.write_slice(&[vstr(&format!("{} {}", now_iso(), line))], n..n + 1).map_err(&e)?;
    Ok(())
}

/// The computation log lines.
pub fn read_log(f: &hdf5::File) -> Vec<String> {
    f.dataset("emdtui/log")
        .and_then(|d| d.read_raw::<VarLenUnicode>())
        .map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// Stamp a cache group with its provenance attributes.
pub fn stamp_cache(loc: &hdf5::Location, params: &serde_json::Value, source_fingerprint: &str) -> hdf5::Result<()> {
    set_str_attr(loc, "emdtui_params", &params.to_string())?;
    set_str_attr(loc, "emdtui_version", crate::VERSION)?;
    set_int_attr(loc, "emdtui_cache_format", CACHE_FORMAT_VERSION)?;
    set_str_attr(loc, "emdtui_created", &now_iso())?;
    set_str_attr(loc, "emdtui_source", source_fingerprint)
}

/// Validity of a cache group against the current datacube fingerprint: Ok(()) or the reason it is stale.
pub fn cache_validity(loc: &hdf5::Location, current_fingerprint: &str) -> std::result::Result<(), String> {
    match int_attr(loc, "emdtui_cache_format") {
        None => return Err("no cache format version (not written by emdtui)".into()),
        Some(v) if v != CACHE_FORMAT_VERSION => {
            return Err(format!("cache format version {v}, this emdtui uses {CACHE_FORMAT_VERSION}"));
        }
        _ => {}
    }
    match str_attr(loc, "emdtui_source") {
        None => return Err("no source fingerprint".into()),
        Some(s) if s != current_fingerprint => return Err("computed from different data (datacube changed)".into()),
        _ => {}
    }
    if int_attr(loc, "emdtui_complete") == Some(0) {
        return Err("incomplete (interrupted computation)".into());
    }
    Ok(())
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
    file.flush().map_err(h5(path))?;
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

// ---------------------------------------------------------------------------------------------
// datacube location and fingerprint

/// Which layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// EMD 1.0 (emdtui or py4DSTEM): `dim0..dim3`.
    Emd1,
    /// Older Berkeley/py4DSTEM layout with `dim1..dim4`.
    Legacy,
}

/// Find the 4D datacube's group path in a file.
pub fn find_datacube(f: &hdf5::File, path: &Path) -> Result<(String, Layout)> {
    if f.link_exists(&format!("{DATACUBE}/data")) {
        return Ok((DATACUBE.to_string(), Layout::Emd1));
    }
    // any EMD root with a DataCube array child
    let mut found = Vec::new();
    for name in f.member_names().unwrap_or_default() {
        let Ok(g) = f.group(&name) else { continue };
        if str_attr(&g, "emd_group_type").as_deref() != Some("root") {
            continue;
        }
        for c in g.member_names().unwrap_or_default() {
            let Ok(cg) = g.group(&c) else { continue };
            if str_attr(&cg, "emd_group_type").as_deref() == Some("array")
                && str_attr(&cg, "python_class").as_deref() == Some("DataCube")
                && cg.link_exists("data")
            {
                found.push(format!("{name}/{c}"));
            }
        }
    }
    if let Some(p) = found.into_iter().next() {
        return Ok((p, Layout::Emd1));
    }
    for p in ["version_1/data/datacubes/datacube_000", "4DSTEM_experiment/data/datacubes/datacube_000"] {
        if f.link_exists(&format!("{p}/data")) {
            return Ok((p.to_string(), Layout::Legacy));
        }
    }
    for top in ["version_1", "4DSTEM_experiment", "4DSTEM_simulation"] {
        let gp = format!("{top}/data/datacubes");
        if let Ok(g) = f.group(&gp) {
            for c in g.member_names().unwrap_or_default() {
                if g.link_exists(&format!("{c}/data")) {
                    return Ok((format!("{gp}/{c}"), Layout::Legacy));
                }
            }
        }
    }
    Err(Error::format(
        path,
        "no 4D datacube found (looked for an EMD 1.0 root with a DataCube, and version_1/data/datacubes/datacube_000/data)",
    ))
}

fn pixel_type_of(d: &hdf5::Dataset, path: &Path, dpath: &str) -> Result<PixelType> {
    let td = d.dtype().and_then(|t| t.to_descriptor()).map_err(h5(path))?;
    match td {
        TypeDescriptor::Unsigned(IntSize::U1) => Ok(PixelType::U8),
        TypeDescriptor::Unsigned(IntSize::U2) => Ok(PixelType::U16),
        TypeDescriptor::Unsigned(IntSize::U4) => Ok(PixelType::U32),
        // signed counts are read through HDF5 conversion (negative values clip to 0)
        TypeDescriptor::Integer(IntSize::U1) | TypeDescriptor::Integer(IntSize::U2) => Ok(PixelType::U16),
        TypeDescriptor::Integer(IntSize::U4) => Ok(PixelType::U32),
        other => Err(Error::unsupported(
            path,
            format!("{dpath} has element type {other:?}; emdtui reads unsigned/signed integer datacubes up to 32 bit"),
        )),
    }
}

/// Fingerprint of a datacube: shape, dtype and a hash of a few sampled frames.
pub fn datacube_fingerprint(d: &hdf5::Dataset, path: &Path) -> Result<String> {
    let sh = d.shape();
    if sh.len() != 4 {
        return Err(Error::format(path, format!("datacube has {} dimensions, expected 4", sh.len())));
    }
    let n = sh[0] * sh[1];
    let pt = pixel_type_of(d, path, "data")?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for s in &sh {
        h.update(&(*s as u64).to_le_bytes());
    }
    h.update(pt.name().as_bytes());
    let mut samples: Vec<usize> = (0..8).map(|i| i * n.saturating_sub(1) / 7).collect();
    samples.dedup();
    for p in samples {
        if n == 0 {
            break;
        }
        let (r, c) = (p / sh[1], p % sh[1]);
        let fr: ndarray::Array2<u32> = d.read_slice(ndarray::s![r, c, .., ..]).map_err(h5(path))?;
        let v = fr.as_standard_layout();
        let s = v.as_slice().unwrap();
        h.update(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), s.len() * 4) });
    }
    Ok(format!("emd:{}x{}x{}x{}:{}:{:016x}", sh[0], sh[1], sh[2], sh[3], pt.name(), h.digest()))
}

// ---------------------------------------------------------------------------------------------
// reader

/// An EMD datacube as a dataset.
pub struct EmdDataset {
    info: DatasetInfo,
    pub path: PathBuf,
    /// HDF5 path of the datacube group.
    pub group: String,
    pub layout: Layout,
    pub shape: [usize; 4],
    pub chunks: Option<Vec<usize>>,
    pub compression: String,
    fingerprint: String,
    slot: Arc<Slot>,
    /// Chunks of whole frames `(1, k, Qx, Qy)` with only shuffle/deflate: read raw chunks under the
    /// HDF5 lock and decompress outside it, so parallel readers decompress in parallel.
    direct: Option<Direct>,
}

#[derive(Debug, Clone, Copy)]
struct Direct {
    k: usize,
    shuffle: bool,
    deflate: bool,
}

fn dim_info(
    g: &hdf5::Group,
    k: usize,
    len: usize,
    path: &Path,
    gpath: &str,
) -> Result<Option<(f64, f64, String, String)>> {
    let Ok(d) = g.dataset(&format!("dim{k}")) else { return Ok(None) };
    let v: Vec<f64> = match d.read_raw::<f64>() {
        Ok(v) => v,
        Err(_) => return Ok(None), // string dims (labels) etc.: ignore
    };
    if !(v.len() == 1 || v.len() == 2 || v.len() == len) {
        return Err(Error::format(
            path,
            format!(
                "{gpath}/dim{k} has {} entries but that axis has length {len} (dims do not match the data)",
                v.len()
            ),
        ));
    }
    let step = if v.len() >= 2 { v[1] - v[0] } else { 1.0 };
    Ok(Some((
        v.first().copied().unwrap_or(0.0),
        step,
        str_attr(&d, "name").unwrap_or_default(),
        str_attr(&d, "units").unwrap_or_default(),
    )))
}

impl EmdDataset {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let f = open_ro(path)?;
        if let Ok(app) = f.group(APP)
            && int_attr(&app, "complete") == Some(0)
        {
            return Err(Error::format(
                path,
                "incomplete EMD file: its conversion was interrupted; run `emdtui convert` again",
            ));
        }
        let (group, layout) = find_datacube(&f, path)?;
        let dpath = format!("{group}/data");
        let d = f.dataset(&dpath).map_err(|e| Error::format(path, format!("{dpath}: {e}")))?;
        let sh = d.shape();
        if sh.len() != 4 {
            return Err(Error::format(
                path,
                format!("{dpath} has shape {sh:?}: expected 4 dimensions (Rx, Ry, Qx, Qy)"),
            ));
        }
        if sh.contains(&0) {
            return Err(Error::format(path, format!("{dpath} has shape {sh:?}: empty axis")));
        }
        let shape = [sh[0], sh[1], sh[2], sh[3]];
        let pixel_type = pixel_type_of(&d, path, &dpath)?;
        let g = f.group(&group).map_err(h5(path))?;
        let first = if layout == Layout::Emd1 { 0 } else { 1 };
        let mut dims = Vec::new();
        for k in 0..4 {
            dims.push(dim_info(&g, k + first, shape[k], path, &group)?);
        }
        let mut metadata: Vec<(String, String)> = vec![
            ("file".into(), path.display().to_string()),
            (
                "format".into(),
                match layout {
                    Layout::Emd1 => "EMD 1.0".into(),
                    Layout::Legacy => "EMD 0.x (legacy datacube layout)".into(),
                },
            ),
            ("datacube".into(), format!("/{dpath}")),
            ("shape".into(), format!("{} x {} scan, {} x {} detector", shape[0], shape[1], shape[2], shape[3])),
            ("dtype".into(), pixel_type.name().into()),
        ];
        let chunks = d.chunk();
        let filters = d.filters();
        let direct = match (&chunks, filters.as_slice()) {
            (Some(c), fl) if c.len() == 4 && c[0] == 1 && c[2] == shape[2] && c[3] == shape[3] && c[1] >= 1 => {
                let (shuffle, deflate) = match fl {
                    [] => (false, false),
                    [hdf5::filters::Filter::Deflate(_)] => (false, true),
                    [hdf5::filters::Filter::Shuffle, hdf5::filters::Filter::Deflate(_)] => (true, true),
                    _ => (false, false),
                };
                // uncompressed chunks are read fine by HDF5 itself; only compressed ones benefit
                // (and the raw chunk bytes must be in the native type: unsigned only)
                let little = d.dtype().is_ok_and(|t| {
                    let id = t.id();
                    hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tget_order(id) })
                        == hdf5_sys::h5t::H5T_order_t::H5T_ORDER_LE
                });
                let native =
                    little && matches!(d.dtype().and_then(|t| t.to_descriptor()), Ok(TypeDescriptor::Unsigned(_)));
                (deflate && native && (fl.len() == 1 || shuffle)).then_some(Direct { k: c[1], shuffle, deflate })
            }
            _ => None,
        };
        let compression = if filters.is_empty() {
            "none".to_string()
        } else {
            filters.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join("+")
        };
        metadata.push((
            "storage".into(),
            format!(
                "{}, compression {compression}",
                chunks.as_ref().map(|c| format!("chunks {c:?}")).unwrap_or_else(|| "contiguous".into())
            ),
        ));
        for (k, d) in dims.iter().enumerate() {
            if let Some((_, step, name, units)) = d {
                metadata.push((format!("dim{}", k + first), format!("{name}: {step} {units}")));
            }
        }
        if let Some(s) = str_attr(&g, "emdtui_source_path") {
            metadata.push(("source".into(), s));
        }
        let mut warnings = Vec::new();
        if opts.scan.is_some_and(|(r, c)| (r, c) != (shape[0], shape[1])) {
            warnings.push(format!(
                "--scan is ignored for EMD files: the scan shape is {}x{} from the datacube",
                shape[0], shape[1]
            ));
        }
        let fingerprint = datacube_fingerprint(&d, path)?;
        let bytes_on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let info = DatasetInfo {
            path: path.to_path_buf(),
            kind: "emd",
            scan: ScanShape::new(shape[0], shape[1], "from the EMD datacube shape"),
            det_rows: shape[2],
            det_cols: shape[3],
            pixel_type,
            bytes_on_disk,
            metadata,
            warnings,
        };
        let slot = Arc::new(Mutex::new(Some((f, d))));
        READERS.lock().unwrap().push((canon(path), Arc::downgrade(&slot)));
        Ok(EmdDataset {
            info,
            path: path.to_path_buf(),
            group,
            layout,
            shape,
            chunks,
            compression,
            fingerprint,
            slot,
            direct,
        })
    }

    fn read_block<T: hdf5::H5Type + Copy>(
        &self,
        d: &hdf5::Dataset,
        start: usize,
        count: usize,
        out: &mut [T],
    ) -> Result<()> {
        let [_, ry, qx, qy] = self.shape;
        let npx = qx * qy;
        let mut p = start;
        let end = start + count;
        let e = h5(&self.path);
        while p < end {
            let (r, c) = (p / ry, p % ry);
            let off = (p - start) * npx;
            if c == 0 && end - p >= ry {
                // whole rows at once
                let nr = (end - p) / ry;
                let a: ndarray::Array4<T> = d.read_slice(ndarray::s![r..r + nr, .., .., ..]).map_err(&e)?;
                out[off..off + nr * ry * npx].copy_from_slice(a.as_slice().unwrap());
                p += nr * ry;
            } else {
                let n = (ry - c).min(end - p);
                let a: ndarray::Array3<T> = d.read_slice(ndarray::s![r, c..c + n, .., ..]).map_err(&e)?;
                out[off..off + n * npx].copy_from_slice(a.as_slice().unwrap());
                p += n;
            }
        }
        Ok(())
    }
}

impl EmdDataset {
    fn handle(&self) -> Result<std::sync::MutexGuard<'_, Option<(hdf5::File, hdf5::Dataset)>>> {
        let mut g = self.slot.lock().unwrap();
        if g.is_none() {
            let f = open_ro(&self.path)?;
            let d = f.dataset(&format!("{}/data", self.group)).map_err(h5(&self.path))?;
            *g = Some((f, d));
        }
        Ok(g)
    }

    /// The stored (filtered) bytes of chunk (r, c0); None when the chunk was never written.
    fn read_raw_chunk(&self, r: usize, c0: usize, raw: &mut Vec<u8>) -> Result<Option<()>> {
        let g = self.handle()?;
        let (_, d) = g.as_ref().unwrap();
        let did = d.id();
        let offset: [u64; 4] = [r as u64, c0 as u64, 0, 0];
        let path = &self.path;
        hdf5::sync::sync(|| {
            let mut mask: u32 = 0;
            let mut addr: u64 = 0;
            let mut size: u64 = 0;
            let rc = unsafe {
                hdf5_sys::h5d::H5Dget_chunk_info_by_coord(did, offset.as_ptr(), &mut mask, &mut addr, &mut size)
            };
            if rc < 0 {
                return Err(Error::hdf5(path, format!("chunk info at scan row {r} col {c0}")));
            }
            if size == 0 || addr == u64::MAX {
                return Ok(None);
            }
            raw.resize(size as usize, 0);
            let mut fm: u32 = 0;
            let rc = unsafe {
                hdf5_sys::h5d::H5Dread_chunk(
                    did,
                    hdf5_sys::h5p::H5P_DEFAULT,
                    offset.as_ptr(),
                    &mut fm,
                    raw.as_mut_ptr().cast(),
                )
            };
            if rc < 0 {
                return Err(Error::hdf5(path, format!("reading the chunk at scan row {r} col {c0}")));
            }
            if fm != 0 {
                return Err(Error::format(
                    path,
                    format!("chunk at scan row {r} col {c0} skipped a filter (mask {fm:#x})"),
                ));
            }
            Ok(Some(()))
        })
    }

    fn decode_chunk(&self, raw: &[u8], chunk: &mut [u8], dr: Direct) -> Result<()> {
        let bad = |m: String| Error::format(&self.path, m);
        let mut tmp;
        let data: &[u8] = if dr.deflate {
            tmp = vec![0u8; chunk.len()];
            let mut z = flate2::Decompress::new(true);
            let st = z
                .decompress(raw, &mut tmp, flate2::FlushDecompress::Finish)
                .map_err(|e| bad(format!("corrupt compressed chunk: {e}")))?;
            if z.total_out() as usize != chunk.len() || st != flate2::Status::StreamEnd {
                return Err(bad(format!(
                    "compressed chunk decodes to {} bytes, expected {}",
                    z.total_out(),
                    chunk.len()
                )));
            }
            &tmp
        } else {
            raw
        };
        if data.len() != chunk.len() {
            return Err(bad(format!("chunk has {} bytes, expected {}", data.len(), chunk.len())));
        }
        let elem = self.info.pixel_type.bytes();
        if dr.shuffle && elem > 1 {
            let n = chunk.len() / elem;
            for b in 0..elem {
                let plane = &data[b * n..(b + 1) * n];
                for (i, &x) in plane.iter().enumerate() {
                    chunk[i * elem + b] = x;
                }
            }
        } else {
            chunk.copy_from_slice(data);
        }
        Ok(())
    }
}

impl Dataset for EmdDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        self.shape[0] * self.shape[1]
    }
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, _r: &mut ReadScratch) -> Result<()> {
        let n = self.shape[0] * self.shape[1];
        if start + count > n {
            return Err(Error::Invalid(format!("positions {start}..{} outside the scan of {n}", start + count)));
        }
        let npx = self.shape[2] * self.shape[3];
        if out.pixel_type() != self.info.pixel_type {
            *out = FrameBuf::new(self.info.pixel_type);
        }
        out.resize(count * npx);
        if let Some(dr) = self.direct {
            let elem = self.info.pixel_type.bytes();
            let cbytes = dr.k * npx * elem;
            let mut raw = Vec::new();
            let mut chunk = vec![0u8; cbytes];
            let ry = self.shape[1];
            let mut p = start;
            while p < start + count {
                let (r, c) = (p / ry, p % ry);
                let c0 = c - c % dr.k;
                let n = (c0 + dr.k).min(ry).min(c + (start + count - p)) - c;
                match self.read_raw_chunk(r, c0, &mut raw)? {
                    Some(()) => self.decode_chunk(&raw, &mut chunk, dr)?,
                    None => chunk.fill(0), // never written: fill value
                }
                let src = &chunk[(c - c0) * npx * elem..(c - c0 + n) * npx * elem];
                let off = (p - start) * npx;
                crate::with_frames!(out, v => {
                    let dst = &mut v[off..off + n * npx];
                    // little-endian bytes into the typed buffer
                    let db = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), src.len()) };
                    db.copy_from_slice(src);
                });
                p += n;
            }
            return Ok(());
        }
        let g = self.handle()?;
        let (_, d) = g.as_ref().unwrap();
        crate::with_frames!(out, v => self.read_block(d, start, count, v))
    }
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

/// Calibration of an EMD datacube from its dims: (R step, R units, Q step, Q units). Units py4DSTEM
/// would reject for Q (anything but pixels, A^-1, mrad) fall back to (1, "pixels").
pub fn calibration(path: &Path) -> Option<(f64, String, f64, String)> {
    let f = open_ro(path).ok()?;
    let (group, layout) = find_datacube(&f, path).ok()?;
    let g = f.group(&group).ok()?;
    let d = g.dataset("data").ok()?;
    let sh = d.shape();
    let first = if layout == Layout::Emd1 { 0 } else { 1 };
    let r = dim_info(&g, first, *sh.first()?, path, &group).ok().flatten();
    let q = dim_info(&g, first + 2, *sh.get(2)?, path, &group).ok().flatten();
    let (rs, ru) = match r {
        Some((_, s, _, u)) if s.is_finite() && s > 0.0 && !u.is_empty() => (s, u),
        _ => (1.0, "pixels".to_string()),
    };
    let (qs, qu) = match q {
        Some((_, s, _, u)) if s.is_finite() && s > 0.0 && ["pixels", "A^-1", "mrad"].contains(&u.as_str()) => (s, u),
        _ => (1.0, "pixels".to_string()),
    };
    Some((rs, ru, qs, qu))
}

// ---------------------------------------------------------------------------------------------
// caches

/// One cached result and its validity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheEntry {
    pub name: String,
    /// HDF5 path of the cache group.
    pub path: String,
    /// python_class (RealSlice, DiffractionSlice, Array) or "emdtui" for app-private caches.
    pub kind: String,
    pub valid: bool,
    /// Why it is stale (empty when valid).
    pub reason: String,
    pub params: serde_json::Value,
    pub created: String,
    pub version: String,
    pub shape: Vec<usize>,
}

/// The names under `cached/` that make up the overviews.
pub const OVERVIEW_ENTRIES: [&str; 7] =
    ["com_x", "com_y", "dp_max", "dp_mean", "virtual_adf", "virtual_bf", "virtual_sum"];
const MASK_ENTRY: &str = "virtual_mask";

/// An EMD file's caches (the datacube fingerprint is computed at open).
pub struct EmdFile {
    pub path: PathBuf,
    pub group: String,
    pub layout: Layout,
    pub shape: [usize; 4],
    pub fingerprint: String,
    /// `/emdtui@complete` (None when the file was not written by emdtui).
    pub complete: Option<bool>,
    /// Fingerprint recorded at conversion (None when not converted by emdtui).
    pub converted_fingerprint: Option<String>,
    pub source_fingerprint: Option<String>,
    pub source_path: Option<String>,
}

const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
pub const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl EmdFile {
    pub fn open(path: &Path) -> Result<EmdFile> {
        with_read(path, |f| Self::open_in(f, path))
    }

    fn open_in(f: &hdf5::File, path: &Path) -> Result<EmdFile> {
        let (group, layout) = find_datacube(f, path)?;
        let d = f.dataset(&format!("{group}/data")).map_err(h5(path))?;
        let sh = d.shape();
        if sh.len() != 4 {
            return Err(Error::format(path, format!("{group}/data has shape {sh:?}: expected 4 dimensions")));
        }
        let fingerprint = datacube_fingerprint(&d, path)?;
        let g = f.group(&group).map_err(h5(path))?;
        let complete = f.group(APP).ok().and_then(|a| int_attr(&a, "complete")).map(|v| v != 0);
        Ok(EmdFile {
            path: path.to_path_buf(),
            shape: [sh[0], sh[1], sh[2], sh[3]],
            layout,
            fingerprint,
            complete,
            converted_fingerprint: str_attr(&g, "emdtui_fingerprint"),
            source_fingerprint: str_attr(&g, "emdtui_source_fingerprint"),
            source_path: str_attr(&g, "emdtui_source_path"),
            group,
        })
    }

    fn cache_groups(&self, f: &hdf5::File) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (base, kind_default) in [(format!("{}/cached", self.group), ""), (APP_CACHE.to_string(), "emdtui")] {
            if let Ok(g) = f.group(&base) {
                for n in g.member_names().unwrap_or_default() {
                    if g.group(&n).is_ok() {
                        out.push((format!("{base}/{n}"), kind_default.to_string()));
                    }
                }
            }
        }
        out
    }

    /// Every cached result with its validity.
    pub fn list_caches(&self) -> Result<Vec<CacheEntry>> {
        with_read(&self.path, |f| self.list_in(f))
    }

    fn list_in(&self, f: &hdf5::File) -> Result<Vec<CacheEntry>> {
        let mut v = Vec::new();
        for (p, kind) in self.cache_groups(f) {
            let Ok(g) = f.group(&p) else { continue };
            let validity = cache_validity(&g, &self.fingerprint);
            let shape = g.dataset("data").map(|d| d.shape()).unwrap_or_default();
            v.push(CacheEntry {
                name: p.rsplit('/').next().unwrap_or("").to_string(),
                kind: if kind.is_empty() { str_attr(&g, "python_class").unwrap_or_default() } else { kind },
                valid: validity.is_ok(),
                reason: validity.err().unwrap_or_default(),
                params: str_attr(&g, "emdtui_params")
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(serde_json::Value::Null),
                created: str_attr(&g, "emdtui_created").unwrap_or_default(),
                version: str_attr(&g, "emdtui_version").unwrap_or_default(),
                shape,
                path: format!("/{p}"),
            });
        }
        Ok(v)
    }

    /// The computation log.
    pub fn log(&self) -> Result<Vec<String>> {
        with_read(&self.path, |f| Ok(read_log(f)))
    }

    /// The cached overviews when all of them are present and valid.
    pub fn read_overviews(&self) -> Result<Option<Overviews>> {
        with_read(&self.path, |f| self.overviews_in(f))
    }

    fn overviews_in(&self, f: &hdf5::File) -> Result<Option<Overviews>> {
        let base = format!("{}/cached", self.group);
        let mut params = None;
        let mut get = |name: &str| -> Option<Vec<f32>> {
            let g = f.group(&format!("{base}/{name}")).ok()?;
            cache_validity(&g, &self.fingerprint).ok()?;
            if params.is_none() {
                params = str_attr(&g, "emdtui_params").and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
            }
            g.dataset("data").ok()?.read_raw::<f32>().ok()
        };
        let [rx, ry, qx, qy] = self.shape;
        let (Some(sum), Some(bf), Some(adf), Some(com_x), Some(com_y), Some(mean_dp), Some(max_dp)) = (
            get("virtual_sum"),
            get("virtual_bf"),
            get("virtual_adf"),
            get("com_x"),
            get("com_y"),
            get("dp_mean"),
            get("dp_max"),
        ) else {
            return Ok(None);
        };
        let mask = get(MASK_ENTRY);
        let n = rx * ry;
        if [&sum, &bf, &adf, &com_x, &com_y].iter().any(|v| v.len() != n)
            || mean_dp.len() != qx * qy
            || max_dp.len() != qx * qy
        {
            return Ok(None);
        }
        let Some(params) = params else { return Ok(None) };
        let Ok(geometry) = serde_json::from_value::<Geometry>(params["geometry"].clone()) else { return Ok(None) };
        Ok(Some(Overviews {
            scan_rows: rx,
            scan_cols: ry,
            det_rows: qx,
            det_cols: qy,
            geometry,
            sum,
            bf,
            adf,
            com_x,
            com_y,
            mask: mask.filter(|m| m.len() == n),
            mean_dp,
            max_dp,
            positions_done: params["positions_done"].as_u64().unwrap_or(n as u64) as usize,
            complete: params["complete"].as_bool().unwrap_or(true),
        }))
    }

    /// Store overviews computed from this datacube (replacing older ones), under the writer lock.
    pub fn write_overviews(&self, ov: &Overviews) -> Result<()> {
        let fp = self.fingerprint.clone();
        let group = self.group.clone();
        with_write(&self.path, WRITE_WAIT, |f| {
            write_overviews_into(f, &self.path, &group, ov, &fp)?;
            append_log(f, &self.path, &format!("overviews written (geometry {:?})", ov.geometry))
        })
    }

    /// Remove stale caches only; returns their names.
    pub fn remove_stale(&self) -> Result<Vec<String>> {
        let fp = self.fingerprint.clone();
        with_write(&self.path, WRITE_WAIT, |f| {
            let mut removed = Vec::new();
            for (p, _) in self.cache_groups(f) {
                let Ok(g) = f.group(&p) else { continue };
                if let Err(why) = cache_validity(&g, &fp) {
                    drop(g);
                    f.unlink(&p).map_err(h5(&self.path))?;
                    removed.push(format!("/{p} ({why})"));
                }
            }
            if !removed.is_empty() {
                append_log(f, &self.path, &format!("removed stale caches: {}", removed.join(", ")))?;
            }
            Ok(removed)
        })
    }

    /// Whether `source` (e.g. the original `.mib` dataset) is still the data this file was converted
    /// from (None when the file does not record its source).
    pub fn source_matches(&self, source: &dyn Dataset) -> Option<bool> {
        self.source_fingerprint.as_ref().map(|f| *f == source.fingerprint())
    }

    /// Whether the datacube is unchanged since emdtui converted it (None when not converted by emdtui).
    pub fn datacube_unchanged(&self) -> Option<bool> {
        self.converted_fingerprint.as_ref().map(|f| *f == self.fingerprint)
    }

    /// Run `f` on the file opened read-write under the writer lock (for other cache writers, e.g. the FFT).
    pub fn with_write<R>(&self, f: impl FnOnce(&hdf5::File) -> Result<R>) -> Result<R> {
        with_write(&self.path, WRITE_WAIT, f)
    }
}

fn write_slice_group(
    parent: &hdf5::Group,
    path: &Path,
    name: &str,
    class: &str,
    data: &[f32],
    shape: [usize; 2],
    dims: [(&str, &str, f64); 2],
    params: &serde_json::Value,
    fp: &str,
) -> Result<()> {
    let e = h5(path);
    if parent.link_exists(name) {
        parent.unlink(name).map_err(&e)?;
    }
    let g = parent.create_group(name).map_err(&e)?;
    set_str_attr(&g, "emd_group_type", "array").map_err(&e)?;
    set_str_attr(&g, "python_class", class).map_err(&e)?;
    let d = g
        .new_dataset_builder()
        .with_data(&ndarray::ArrayView2::from_shape(shape, data).map_err(|x| Error::Invalid(x.to_string()))?)
        .create("data")
        .map_err(&e)?;
    set_str_attr(&d, "units", "intensity").map_err(&e)?;
    for (k, (n, u, step)) in dims.iter().enumerate() {
        write_dim(&g, k, n, u, 0.0, *step).map_err(&e)?;
    }
    stamp_cache(&g, params, fp).map_err(&e)
}

/// Write overviews into an open file (used by the conversion and by [`EmdFile::write_overviews`]).
pub fn write_overviews_into(f: &hdf5::File, path: &Path, group: &str, ov: &Overviews, fp: &str) -> Result<()> {
    let e = h5(path);
    let base = format!("{group}/cached");
    let cached = match f.group(&base) {
        Ok(g) => g,
        Err(_) => {
            let g = f.create_group(&base).map_err(&e)?;
            set_str_attr(&g, "emd_group_type", "node").map_err(&e)?;
            set_str_attr(&g, "python_class", "Node").map_err(&e)?;
            g
        }
    };
    // calibration for the dims
    let (r, ru, q, qu) = match f.group(&format!("{group}")) {
        Ok(g) => {
            let a = dim_info(&g, 0, ov.scan_rows, path, group).ok().flatten();
            let b = dim_info(&g, 2, ov.det_rows, path, group).ok().flatten();
            (
                a.as_ref().map(|x| x.1).unwrap_or(1.0),
                a.map(|x| x.3).unwrap_or_else(|| "pixels".into()),
                b.as_ref().map(|x| x.1).unwrap_or(1.0),
                b.map(|x| x.3).unwrap_or_else(|| "pixels".into()),
            )
        }
        Err(_) => (1.0, "pixels".into(), 1.0, "pixels".into()),
    };
    let params = serde_json::json!({
        "kind": "overviews",
        "geometry": ov.geometry,
        "positions_done": ov.positions_done,
        "complete": ov.complete,
    });
    let sshape = [ov.scan_rows, ov.scan_cols];
    let dshape = [ov.det_rows, ov.det_cols];
    let rd = [("Rx", ru.as_str(), r), ("Ry", ru.as_str(), r)];
    let qd = [("Qx", qu.as_str(), q), ("Qy", qu.as_str(), q)];
    let mut items: Vec<(&str, &str, &[f32], [usize; 2], [(&str, &str, f64); 2])> = vec![
        ("com_x", "RealSlice", &ov.com_x, sshape, rd),
        ("com_y", "RealSlice", &ov.com_y, sshape, rd),
        ("dp_max", "DiffractionSlice", &ov.max_dp, dshape, qd),
        ("dp_mean", "DiffractionSlice", &ov.mean_dp, dshape, qd),
        ("virtual_adf", "RealSlice", &ov.adf, sshape, rd),
        ("virtual_bf", "RealSlice", &ov.bf, sshape, rd),
        ("virtual_sum", "RealSlice", &ov.sum, sshape, rd),
    ];
    if let Some(m) = &ov.mask {
        items.push((MASK_ENTRY, "RealSlice", m, sshape, rd));
    }
    for (name, class, data, shape, dims) in items {
        write_slice_group(&cached, path, name, class, data, shape, dims, &params, fp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_are_safe_for_hyperspy() {
        assert_eq!(safe_key("Data Offset"), "mib_data_offset");
        assert_eq!(safe_key("Counter Depth (number)"), "counter_depth_number");
        assert_eq!(safe_key("3 thresholds"), "mib_3_thresholds");
        assert_eq!(safe_key("datacube"), "mib_datacube");
        assert_eq!(safe_key("  "), "key");
    }

    #[test]
    fn chunk_k_is_about_one_mib_of_whole_frames() {
        assert_eq!(chunk_k([4, 100, 256, 256], PixelType::U16), 8);
        assert_eq!(chunk_k([4, 100, 512, 512], PixelType::U16), 2);
        assert_eq!(chunk_k([4, 100, 512, 512], PixelType::U32), 1);
        assert_eq!(chunk_k([4, 3, 64, 64], PixelType::U8), 3);
    }

    #[test]
    fn iso_time_and_lock_path() {
        let t = now_iso();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert_eq!(lock_path(Path::new("/x/a.emd")), PathBuf::from("/x/a.emd.lock"));
    }
}
