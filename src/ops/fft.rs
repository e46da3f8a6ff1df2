//! The 4D FFT lives in an EMD: make sure there is one (the file itself, an existing conversion of
//! the same `.mib`, or a new conversion), then load a complete cache, resume an interrupted one or
//! compute. The two steps are separate calls so front ends can show each with its own progress.

use crate::compute::convert::ConvertOptions;
use crate::compute::fft::{self, FftParams, FftReport, RunOptions};
use crate::dataset::{self, Dataset, Kind};
use crate::error::Result;
use crate::jobs::Progress;
use crate::ops::convert::{ConvertReport, is_converted_from};
use crate::store::fft::FftCache;
use std::path::Path;
use std::sync::Arc;

/// How the EMD for the FFT was obtained.
#[derive(Debug, Clone)]
pub enum EmdSource {
    /// The dataset is an EMD file.
    Itself,
    /// A complete conversion of the same `.mib` was already there.
    Existing,
    /// Converted now.
    Converted(ConvertReport),
}

/// The EMD dataset at `emd` for `src`: `src` itself when it is an EMD, the existing conversion
/// when it was converted from the same data, else a new conversion (`convert` options).
pub fn ensure_emd(
    src: Arc<dyn Dataset>,
    emd: &Path,
    convert: &ConvertOptions,
    progress: &Progress,
) -> Result<(Arc<dyn Dataset>, EmdSource)> {
    if src.info().kind == Kind::Emd {
        return Ok((src, EmdSource::Itself));
    }
    if is_converted_from(emd, src.as_ref()) {
        return Ok((dataset::open(emd, &Default::default())?, EmdSource::Existing));
    }
    let r = crate::ops::convert::convert(src.as_ref(), emd, convert, progress)?;
    drop(src);
    Ok((dataset::open(emd, &Default::default())?, EmdSource::Converted(r)))
}

/// [`ensure_emd`] and, when it converts now and the EMD will hold `src`'s pixels unchanged, pass 1
/// of the FFT with `params` at the same time, read from `src` (the conversion mostly waits for the
/// disk, pass 1 mostly computes). Returns the key to pass as [`RunOptions::adopt_scratch`] to the
/// FFT that follows; None when pass 1 did not run alongside (nothing to convert, a binned or
/// cropped conversion, a scratch that stays in memory, or pass 1 failed: the FFT then runs it).
/// The memory budget is shared: a quarter for the conversion, the rest for pass 1. A failed
/// conversion removes the scratch.
#[allow(clippy::too_many_arguments)]
pub fn ensure_emd_with_pass1(
    src: Arc<dyn Dataset>,
    emd: &Path,
    convert: &ConvertOptions,
    params: &FftParams,
    budget: u64,
    progress: &Progress,
    pass1_progress: &Progress,
    run: &RunOptions,
) -> Result<(Arc<dyn Dataset>, EmdSource, Option<String>)> {
    let plain = convert.bin_detector <= 1 && convert.bin_scan <= 1 && convert.crop.is_none() && !convert.bin_mean;
    if src.info().kind == Kind::Emd || !plain || is_converted_from(emd, src.as_ref()) {
        let (ds, how) = ensure_emd(src, emd, convert, progress)?;
        return Ok((ds, how, None));
    }
    let conv_opts = ConvertOptions { memory_budget: convert.memory_budget.min(budget / 4), ..convert.clone() };
    let pass1_budget = budget - budget / 4;
    let (converted, ahead) = std::thread::scope(|s| {
        let h = s.spawn(|| fft::pass1_ahead(src.as_ref(), emd, params, pass1_budget, pass1_progress, run));
        let converted = ensure_emd(src.clone(), emd, &conv_opts, progress);
        if converted.is_err() || progress.is_cancelled() {
            pass1_progress.cancel();
        }
        (converted, h.join().expect("FFT pass 1 thread panicked"))
    });
    let (ds, how) = match converted {
        Ok(r) => r,
        Err(e) => {
            // a complete scratch of ours (a failed or cancelled pass 1 removed its own)
            if matches!(ahead, Ok(Some(_))) {
                let (scratch, state) = fft::scratch_paths(emd);
                let _ = std::fs::remove_file(scratch);
                let _ = std::fs::remove_file(state);
            }
            return Err(e);
        }
    };
    let key = match ahead {
        Ok(k) => k,
        Err(e) => {
            log::warn!("{}: FFT pass 1 alongside the conversion: {e}; the FFT runs it", emd.display());
            None
        }
    };
    // the key vouches for the pixels only when the EMD holds `src`'s
    let key = key.filter(|_| pixel_source(&src, emd, ds.as_ref()).is_some());
    Ok((ds, how, key))
}

/// The dataset to read the FFT's pixels from when `emd_ds` (at `emd`) holds `src`'s data: `src`
/// itself when it is not an EMD, `emd` is a complete conversion of it (same source fingerprint)
/// and the datacube kept its shape and pixel type (no binning or crop; the datacube is written
/// bit-exact). The `.mib` is then read without HDF5's chunk reads and is often still in the page
/// cache, while the conversion's datacube was written around it.
pub fn pixel_source(src: &Arc<dyn Dataset>, emd: &Path, emd_ds: &dyn Dataset) -> Option<fft::PixelSource> {
    let same = src.info().kind != Kind::Emd
        && fft::PixelSource::same_shape(src.as_ref(), emd_ds)
        && is_converted_from(emd, src.as_ref());
    same.then(|| fft::PixelSource(src.clone()))
}

/// What [`load_or_compute`] did.
pub enum FftOutcome {
    /// A complete cache was in the file (default parameters asked for).
    Loaded(FftCache),
    /// Computed now (or resumed, or found complete for these exact parameters: see the report).
    Computed(FftCache, Box<FftReport>),
}

impl FftOutcome {
    pub fn cache(self) -> FftCache {
        match self {
            FftOutcome::Loaded(c) | FftOutcome::Computed(c, _) => c,
        }
    }
}

/// The FFT of the EMD dataset `ds` (stored in `emd`): with `params` None, a complete cache in the
/// file is loaded whatever its parameters, and otherwise the default (bright-field crop) is
/// computed; with `params`, exactly those (an interrupted run with the same parameters resumes).
pub fn load_or_compute(
    ds: &dyn Dataset,
    emd: &Path,
    params: Option<FftParams>,
    budget: u64,
    progress: &Progress,
    run: &RunOptions,
) -> Result<FftOutcome> {
    if params.is_none()
        && let Ok(c) = FftCache::open(emd)
    {
        return Ok(FftOutcome::Loaded(c));
    }
    let params = match params {
        Some(p) => p,
        None => fft::default_params(ds)?,
    };
    let rep = fft::compute_with(ds, emd, &params, budget, progress, run)?;
    Ok(FftOutcome::Computed(FftCache::open(emd)?, Box::new(rep)))
}
