//! What the FFT workflow ([`crate::ops::fft::run`]) would need, without running it: the datasets
//! it writes, the conversion and scratch it makes on the way, the free space where they go, the
//! memory of its buffers at the budget, and a time extrapolated from a short measured sample
//! (`emdtui fft --estimate`, the viewer's question before `F`, the Python package).

use crate::compute::convert::ConvertOptions;
use crate::compute::fft::{self, FftNeeds, FftParams, SampleTiming};
use crate::dataset::{Dataset, Kind};
use crate::error::Result;
use crate::ops::fft::FftWant;
use crate::util::hs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bytes written to probe the disk's write speed (next to the EMD, removed at once).
const WRITE_PROBE: u64 = 32 << 20;

/// What to estimate: the workflow's source, EMD, conversion options, FFT, budget and the
/// frames of the timing sample (0: sizes and memory only, nothing read or written).
pub struct EstimateRequest<'a> {
    pub src: &'a dyn Dataset,
    pub emd: &'a Path,
    pub convert: &'a ConvertOptions,
    pub want: &'a FftWant,
    pub budget: u64,
    pub sample_frames: usize,
}

/// The bytes that go to one filesystem, and its free space.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskNeed {
    /// A directory on that filesystem (where the files go).
    pub dir: PathBuf,
    /// What goes there: output, conversion, scratch.
    pub holds: Vec<String>,
    pub bytes: u64,
    /// None when the filesystem could not be asked.
    pub free: Option<u64>,
}

/// The time estimate: a measured sample extrapolated to the run (no overlap of the steps
/// assumed, so on the long side).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimeEstimate {
    pub seconds: f64,
    pub conversion_seconds: f64,
    pub pass1_seconds: f64,
    pub pass2_seconds: f64,
    /// Output and scratch-file writes (and the scratch's read back) at the probed write speed.
    pub write_seconds: f64,
    pub sample: SampleTiming,
    /// Write speed of a probe file next to the EMD (bytes/s); None when it could not be written.
    pub write_bytes_per_second: Option<f64>,
}

/// The estimate of one FFT run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FftEstimate {
    pub source: PathBuf,
    pub emd: PathBuf,
    pub params: FftParams,
    /// The FFT datasets written: `fft_complex/data` + `fft_power/data`.
    pub output_bytes: u64,
    /// The EMD's datacube and overviews written first when the source is a `.mib` not yet
    /// converted (kept: the FFT lives in it); 0 otherwise.
    pub conversion_bytes: u64,
    /// The conversion is compressed: `conversion_bytes` is its uncompressed size (at most).
    pub conversion_compressed: bool,
    /// Pass 1's scratch file (removed at the end); 0 when the scratch stays in memory.
    pub scratch_file_bytes: u64,
    /// Everything written on the way besides the output: conversion + scratch file.
    pub scratch_bytes: u64,
    pub fft: FftNeeds,
    pub disks: Vec<DiskNeed>,
    /// The run's large buffers (see [`FftNeeds::memory_bytes`]); HDF5 and the process's own
    /// memory are not included.
    pub memory_bytes: u64,
    pub memory_budget: u64,
    /// A complete FFT with these parameters is already in the EMD (the run would do nothing).
    pub already_computed: bool,
    pub time: Option<TimeEstimate>,
    /// Everything fits: the disks' free space and the memory budget.
    pub fits: bool,
    /// Why it does not fit (empty when it does).
    pub problems: Vec<String>,
}

/// The estimate of the FFT workflow `req` describes (see the module doc).
pub fn estimate(req: &EstimateRequest) -> Result<FftEstimate> {
    let params = resolve_params(req.src, req.emd, req.want)?;
    let needs = fft::needs(req.src, &params, req.budget)?;
    let conversion_bytes = conversion_bytes(req)?;
    let scratch_file_bytes = if needs.scratch_in_memory { 0 } else { needs.scratch_bytes };
    let output_bytes = needs.complex_bytes + needs.power_bytes;
    let mut files = vec![("output", req.emd.to_path_buf(), output_bytes)];
    if conversion_bytes > 0 {
        files.push(("conversion", req.emd.to_path_buf(), conversion_bytes));
    }
    if scratch_file_bytes > 0 {
        files.push(("scratch", fft::scratch_paths(req.emd).0, scratch_file_bytes));
    }
    let disks = disk_needs(&files);
    let time = match req.sample_frames {
        0 => None,
        f => Some(time_estimate(req, &params, &needs, f, output_bytes + 2 * scratch_file_bytes, conversion_bytes)?),
    };
    let mut problems: Vec<String> = disks
        .iter()
        .filter_map(|d| d.free.filter(|&f| d.bytes > f).map(|f| (d, f)))
        .map(|(d, f)| format!("{} needs {} on {}, {} free", d.holds.join(" + "), hs(d.bytes), d.dir.display(), hs(f)))
        .collect();
    if needs.memory_bytes > req.budget {
        problems.push(format!("needs {} of memory, the budget is {}", hs(needs.memory_bytes), hs(req.budget)));
    }
    let already_computed = crate::store::fft::FftCache::open(req.emd).is_ok_and(|c| c.params == params);
    Ok(FftEstimate {
        source: req.src.info().path.clone(),
        emd: req.emd.to_path_buf(),
        params,
        output_bytes,
        conversion_bytes,
        conversion_compressed: conversion_bytes > 0 && req.convert.compress,
        scratch_file_bytes,
        scratch_bytes: conversion_bytes + scratch_file_bytes,
        memory_bytes: needs.memory_bytes,
        memory_budget: req.budget,
        fft: needs,
        disks,
        already_computed,
        time,
        fits: problems.is_empty(),
        problems,
    })
}

/// The parameters [`crate::ops::fft::run`] would use for `want` (found from the source's data
/// when they depend on it: the source holds the same pixels as the EMD it is converted to).
fn resolve_params(src: &dyn Dataset, emd: &Path, want: &FftWant) -> Result<FftParams> {
    match want {
        FftWant::Exactly(p) => Ok(p.clone()),
        FftWant::FromData(f) => f(src),
        FftWant::AnyOrDefault => match crate::store::fft::FftCache::open(emd) {
            Ok(c) => Ok(c.params),
            Err(_) => fft::default_params(src),
        },
        FftWant::ScanAxes => match crate::store::fft::interrupted_params(emd) {
            Some((p, _, _)) if p.axes == fft::FftAxes::Scan => Ok(p),
            _ => fft::default_params(src),
        },
    }
}

/// Bytes of the conversion the workflow makes first (0 when the source is an EMD or its
/// conversion is there): the datacube's chunks (uncompressed) and about the overviews stored
/// with it (a few float32 scan images and detector patterns).
fn conversion_bytes(req: &EstimateRequest) -> Result<u64> {
    let src = req.src;
    if src.info().kind == Kind::Emd || crate::ops::convert::is_converted_from(req.emd, src) {
        return Ok(0);
    }
    let plan = crate::compute::convert::make_plan(src, req.emd, req.convert)?;
    let cube = (plan.n_chunks() * plan.chunk_bytes()) as u64;
    let overviews = (plan.out[0] * plan.out[1] * 4 * 8 + plan.out_npx() * 4 * 3) as u64;
    Ok(cube + overviews)
}

/// The filesystems the files go to (grouped by device), with their free space.
fn disk_needs(files: &[(&str, PathBuf, u64)]) -> Vec<DiskNeed> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(Option<u64>, DiskNeed)> = Vec::new();
    for (what, path, bytes) in files {
        let dir = existing_dir(path);
        let dev = std::fs::metadata(&dir).ok().map(|m| m.dev());
        match out.iter_mut().find(|(d, n)| *d == dev && (dev.is_some() || n.dir == dir)) {
            Some((_, n)) => {
                n.bytes += bytes;
                n.holds.push(what.to_string());
            }
            None => {
                let free = crate::util::free_space(&dir);
                out.push((dev, DiskNeed { dir, holds: vec![what.to_string()], bytes: *bytes, free }));
            }
        }
    }
    out.into_iter().map(|(_, n)| n).collect()
}

/// The directory `path` goes in, or its nearest existing ancestor.
fn existing_dir(path: &Path) -> PathBuf {
    let mut d = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    while !d.is_dir() {
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => d = p.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    d
}

/// The time of the run from a sample of `frames` frames and transforms, and a write probe.
fn time_estimate(
    req: &EstimateRequest,
    params: &FftParams,
    needs: &FftNeeds,
    frames: usize,
    fft_writes: u64,
    conversion_bytes: u64,
) -> Result<TimeEstimate> {
    let sample = fft::sample_timing(req.src, params, req.budget, frames)?;
    let per_frame = sample.decode_seconds / sample.frames.max(1) as f64;
    let pass1_seconds = per_frame * needs.positions as f64;
    let pass2_seconds = sample.transform_seconds / sample.transforms.max(1) as f64 * needs.transforms as f64;
    let write_bytes_per_second = write_speed(req.emd);
    let at = |b: u64| write_bytes_per_second.map_or(0.0, |r| b as f64 / r);
    let conversion_seconds = if conversion_bytes > 0 {
        let src_bytes =
            (req.src.scan().positions() * req.src.frame_pixels() * req.src.info().pixel_type.bytes()) as f64;
        let read_rate = sample.bytes_read as f64 / sample.decode_seconds.max(1e-9);
        (src_bytes / read_rate).max(at(conversion_bytes))
    } else {
        0.0
    };
    let write_seconds = at(fft_writes);
    Ok(TimeEstimate {
        seconds: conversion_seconds + pass1_seconds + pass2_seconds + write_seconds,
        conversion_seconds,
        pass1_seconds,
        pass2_seconds,
        write_seconds,
        sample,
        write_bytes_per_second,
    })
}

/// Bytes/s of a [`WRITE_PROBE`] write (made durable) next to `emd`; the probe file is removed.
fn write_speed(emd: &Path) -> Option<f64> {
    use std::io::Write;
    let dir = existing_dir(emd);
    let probe = dir.join(format!(".emdtui-write-probe-{}", std::process::id()));
    let buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&probe)?;
        for _ in 0..WRITE_PROBE >> 20 {
            f.write_all(&buf)?;
        }
        f.sync_all()
    })();
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&probe);
    r.ok().map(|_| WRITE_PROBE as f64 / secs.max(1e-9))
}

/// The estimate as text, one line per item (the CLI prints it, the viewer shows it).
pub fn lines(e: &FftEstimate) -> Vec<String> {
    let [qr, qc, kr, kc] = e.fft.shape;
    let mut v = vec![format!(
        "output:  {} (fft_complex {qr}x{qc}x{kr}x{kc} complex64 {} + fft_power {})",
        hs(e.output_bytes),
        hs(e.fft.complex_bytes),
        hs(e.fft.power_bytes)
    )];
    let conv = match (e.conversion_bytes, e.conversion_compressed) {
        (0, _) => "no conversion".to_string(),
        (b, false) => format!("conversion {}, kept", hs(b)),
        (b, true) => format!("conversion at most {} (compressed), kept", hs(b)),
    };
    let scratch = if e.fft.scratch_in_memory {
        format!("FFT scratch {} in memory", hs(e.fft.scratch_bytes))
    } else {
        format!("FFT scratch file {} (removed at the end)", hs(e.scratch_file_bytes))
    };
    v.push(format!("scratch: {} ({conv}; {scratch})", hs(e.scratch_bytes)));
    for d in &e.disks {
        let free = d.free.map_or("free space unknown".to_string(), |f| format!("{} free", hs(f)));
        v.push(format!("disk:    {} on {} ({}), {free}", hs(d.bytes), d.dir.display(), d.holds.join(" + ")));
    }
    v.push(format!("memory:  {} of the {} budget", hs(e.memory_bytes), hs(e.memory_budget)));
    if let Some(t) = &e.time {
        let w = t
            .write_bytes_per_second
            .map_or("writes not probed".to_string(), |r| format!("writes at {}/s", hs(r as u64)));
        v.push(format!(
            "time:    about {:.1} s (conversion {:.1} s, pass 1 {:.1} s, pass 2 {:.1} s, writes {:.1} s; from {} frames and {} transforms measured, {w})",
            t.seconds,
            t.conversion_seconds,
            t.pass1_seconds,
            t.pass2_seconds,
            t.write_seconds,
            t.sample.frames,
            t.sample.transforms
        ));
    }
    if e.already_computed {
        v.push("already computed: a complete FFT with these parameters is in the EMD".into());
    }
    v.push(if e.fits { "fits: yes".into() } else { format!("fits: NO: {}", e.problems.join("; ")) });
    v
}
