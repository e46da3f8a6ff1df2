//! Convert a dataset to EMD: the one workflow behind `emdtui convert`, `emdtui fft X.mib` and the
//! TUI's `c` / `F`. The file is written as `OUT.emd.part` under the writer lock, gets its
//! overviews cached inside, is marked complete, fsynced and renamed to `OUT.emd`; any failure
//! removes the part file (and says so when the disk is full).

use crate::compute::convert::{self, ConvertOptions};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::format::{emd, h5};
use crate::jobs::Progress;
use crate::util::{free_space_for, hs};
use std::path::{Path, PathBuf};

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub output: PathBuf,
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

/// Start writing `out`: refused when it exists (unless `force`); the writer lock is taken and a
/// `.part` file left by an interrupted run is removed (we hold the lock, so nobody is writing it).
/// Returns the lock (held while writing) and the temporary path.
fn begin_output(out: &Path, force: bool) -> Result<(h5::EmdLock, PathBuf)> {
    if out.exists() && !force {
        return Err(Error::Invalid(format!("{} already exists (use --force to overwrite it)", out.display())));
    }
    let lock = h5::lock_exclusive(out, std::time::Duration::ZERO, &|_| {})?;
    let part = part_path(out);
    if part.exists() {
        std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
    }
    Ok((lock, part))
}

/// Refuses to start when the file system of `out` has less than `needed` bytes free (`what`
/// names the output in the message); `skip` (`--no-space-check`) or an unknown free space lets it
/// go on.
fn check_space(out: &Path, needed: u64, what: &str, skip: bool) -> Result<()> {
    if skip {
        return Ok(());
    }
    match free_space_for(out) {
        Some(free) if free < needed => {
            let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Err(Error::Invalid(format!(
                "{}: not enough free disk space: {what} needs about {}, {} has {} free",
                out.display(),
                hs(needed),
                dir.display(),
                hs(free)
            )))
        }
        _ => Ok(()),
    }
}

/// Convert `ds` into the EMD file `out` (written under a temporary name, renamed when complete).
pub fn convert(ds: &dyn Dataset, out: &Path, opts: &ConvertOptions, progress: &Progress) -> Result<ConvertReport> {
    let t0 = std::time::Instant::now();
    let plan = convert::make_plan(ds, out, opts)?;
    let (_lock, part) = begin_output(out, opts.force)?;
    // whole chunks are stored: the last chunk of a scan row is padded to k frames
    let raw_bytes = (plan.out[0] * plan.chunks_per_row() * plan.k * plan.out_npx() * plan.out_type.bytes()) as u64;
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let needed = if opts.compress { raw_bytes / 4 } else { raw_bytes } + (1 << 20);
    let what = if opts.compress { "the output (compressed estimate)" } else { "the output" };
    check_space(out, needed, what, opts.no_space_check)?;
    match write_complete(ds, &part, &plan, opts, progress) {
        Ok((read, written)) => {
            std::fs::rename(&part, out).map_err(|e| Error::io(out, e))?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(ConvertReport {
                output: out.to_path_buf(),
                bytes_read: read,
                bytes_written: written,
                seconds: t0.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            // judge "disk full" before the partial file is removed and frees its space
            let free_now = free_space_for(out);
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

/// Write the datacube, cache the overviews inside, log, mark complete, fsync. Returns
/// (bytes read, file size).
fn write_complete(
    ds: &dyn Dataset,
    part: &Path,
    plan: &convert::Plan,
    opts: &ConvertOptions,
    progress: &Progress,
) -> Result<(u64, u64)> {
    let w = convert::write_datacube(ds, part, plan, opts, progress)?;
    let file = w.file;
    crate::store::emd::write_overviews_masked(&file, part, emd::DATACUBE, &w.overviews, &w.fingerprint, &w.bad_pixels)?;
    emd::append_log(
        &file,
        part,
        &format!(
            "converted from {} (bin detector {}, bin scan {}, crop {:?}, compress {}), overviews cached ({})",
            ds.info().path.display(),
            opts.bin_detector,
            opts.bin_scan,
            opts.crop,
            opts.compress,
            match (&opts.bad_pixels, w.bad_pixels.len()) {
                (None, _) => "bad pixels kept".to_string(),
                (Some(_), n) => format!("{n} bad pixels masked"),
            }
        ),
    )?;
    file.flush().map_err(h5::err(part))?;
    emd::mark_complete(&file, part)?;
    drop(file);
    let f = std::fs::File::open(part).map_err(|x| Error::io(part, x))?;
    f.sync_all().map_err(|x| Error::io(part, x))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(w.bytes_written);
    Ok((w.bytes_read, size))
}

/// Convert a dataset in EELS mode (or any non-square one when asked) into a 3-D spectrum-image
/// EMD `out` (scan rows, scan cols, energy): every frame summed over its short axis, written as
/// `OUT.emd.part` under the writer lock and renamed when complete, like [`convert`].
pub fn convert_spectra(
    ds: &dyn Dataset,
    out: &Path,
    opts: &crate::compute::spectra::SpectraOptions,
    progress: &Progress,
) -> Result<ConvertReport> {
    let t0 = std::time::Instant::now();
    let plan = crate::compute::spectra::spectra_plan(ds, opts)?;
    let (_lock, part) = begin_output(out, opts.force)?;
    check_space(out, plan.out_bytes() + (1 << 20), "the spectrum image", opts.no_space_check)?;
    let write = || -> Result<(u64, u64)> {
        let (file, read, _) = crate::compute::spectra::write_spectra(ds, &part, &plan, opts, progress)?;
        emd::append_log(
            &file,
            &part,
            &format!(
                "spectrum image from {} (short axis summed, reversed {}, bin {} {}, compress {:?})",
                ds.info().path.display(),
                opts.reverse,
                opts.bin,
                if opts.mean { "mean" } else { "sum" },
                opts.deflate_level
            ),
        )?;
        file.flush().map_err(h5::err(&part))?;
        emd::mark_complete(&file, &part)?;
        drop(file);
        let f = std::fs::File::open(&part).map_err(|x| Error::io(&part, x))?;
        f.sync_all().map_err(|x| Error::io(&part, x))?;
        Ok((read, f.metadata().map(|m| m.len()).unwrap_or(0)))
    };
    match write() {
        Ok((read, written)) => {
            std::fs::rename(&part, out).map_err(|e| Error::io(out, e))?;
            Ok(ConvertReport {
                output: out.to_path_buf(),
                bytes_read: read,
                bytes_written: written,
                seconds: t0.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// True when `emd` is a complete emdtui conversion of `source` (same source fingerprint), so it
/// can be used instead of converting again.
pub fn is_converted_from(emd: &Path, source: &dyn Dataset) -> bool {
    if !emd.is_file() {
        return false;
    }
    match crate::store::emd::EmdFile::open(emd) {
        Ok(f) => f.complete == Some(true) && f.source_fingerprint.as_deref() == Some(source.fingerprint().as_str()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_path_appends_part() {
        assert_eq!(part_path(Path::new("/d/x.emd")), PathBuf::from("/d/x.emd.part"));
        assert_eq!(default_output(Path::new("/d/x.mib")), PathBuf::from("/d/x.emd"));
    }
}
