//! The 4D FFT workflow, once for every front end: [`run`] makes sure there is an EMD (the file
//! itself, an existing conversion of the same `.mib`, or a new conversion, with pass 1 of the FFT
//! alongside it when the parameters are known before), reads the pixels from the `.mib` when the
//! EMD holds them unchanged, then loads a complete cache, resumes an interrupted one or computes.
//! The steps report to an [`FftSink`] (each front end shows them its own way). The steps are also
//! public ([`ensure_emd`], [`ensure_emd_with_pass1`], [`pixel_source`], [`load_or_compute`]).

use crate::compute::convert::ConvertOptions;
use crate::compute::fft::{self, FftAxes, FftParams, FftReport, RunOptions};
use crate::dataset::{self, Dataset, Kind};
use crate::error::Result;
use crate::jobs::Progress;
use crate::ops::convert::{ConvertReport, is_converted_from};
use crate::store::fft::FftCache;
use std::path::{Path, PathBuf};
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

/// Pass 1 of the FFT to run alongside a conversion ([`ensure_emd_with_pass1`]).
#[derive(Clone, Copy)]
pub struct Pass1Alongside<'a> {
    pub params: &'a FftParams,
    /// The memory budget shared by the conversion and pass 1.
    pub budget: u64,
    pub progress: &'a Progress,
    pub run: &'a RunOptions,
}

/// [`ensure_emd`] and, when it converts now and the EMD will hold `src`'s pixels unchanged, pass 1
/// of the FFT with `params` at the same time, read from `src` (the conversion mostly waits for the
/// disk, pass 1 mostly computes). Returns the key to pass as [`RunOptions::adopt_scratch`] to the
/// FFT that follows; None when pass 1 did not run alongside (nothing to convert, a binned or
/// cropped conversion, a scratch that stays in memory, or pass 1 failed: the FFT then runs it).
/// The memory budget is shared: a quarter for the conversion, the rest for pass 1. A failed
/// conversion removes the scratch.
pub fn ensure_emd_with_pass1(
    src: Arc<dyn Dataset>,
    emd: &Path,
    convert: &ConvertOptions,
    progress: &Progress,
    pass1: &Pass1Alongside,
) -> Result<(Arc<dyn Dataset>, EmdSource, Option<String>)> {
    let Pass1Alongside { params, budget, progress: pass1_progress, run } = *pass1;
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

/// Finds the FFT parameters from the EMD's data once it is there.
pub type ParamsFromData = Box<dyn Fn(&dyn Dataset) -> Result<FftParams> + Send + Sync>;

/// Which FFT [`run`] is to make or load.
pub enum FftWant {
    /// A complete cache in the EMD whatever its parameters; else the default (bright-field crop).
    AnyOrDefault,
    /// Exactly these parameters (an interrupted run with the same parameters resumes).
    Exactly(FftParams),
    /// Parameters found from the EMD's data once it is there (e.g. an automatic crop).
    FromData(ParamsFromData),
    /// A scan-axes FFT computed from this data (what tcBF needs): a valid one in the EMD, else an
    /// interrupted scan-axes run resumed, else the default.
    ScanAxes,
}

/// An FFT to make or load: the source (a `.mib` or an EMD), the EMD it lives in, how to convert
/// when there is none, which FFT, the memory budget and the run options (tuning).
pub struct FftJob {
    pub src: Arc<dyn Dataset>,
    pub emd: PathBuf,
    pub convert: ConvertOptions,
    pub want: FftWant,
    pub budget: u64,
    pub run: RunOptions,
}

/// Where [`run`] reports: the progress of the conversion and of the FFT (the same one will do),
/// and each step as it happens.
pub trait FftSink: Sync {
    fn convert_progress(&self) -> &Progress;
    /// Progress of the FFT, and of pass 1 while it runs alongside the conversion.
    fn fft_progress(&self) -> &Progress;
    /// The EMD is there.
    fn emd_ready(&self, _how: &EmdSource) {}
    /// The FFT of `ds` with `params` is about to be computed (or resumed, or found complete).
    fn fft_starts(&self, _ds: &dyn Dataset, _params: &FftParams) {}
}

/// One [`Progress`] for every step (a background job in the viewer).
pub struct OneProgress<'a>(pub &'a Progress);

impl FftSink for OneProgress<'_> {
    fn convert_progress(&self) -> &Progress {
        self.0
    }
    fn fft_progress(&self) -> &Progress {
        self.0
    }
}

/// What [`run`] did: the EMD dataset, how it was obtained, and the FFT.
pub struct FftRun {
    pub ds: Arc<dyn Dataset>,
    pub emd: EmdSource,
    pub fft: FftOutcome,
}

/// The FFT workflow (see the module doc): the EMD, then the FFT `job.want` asks for.
pub fn run(job: FftJob, sink: &dyn FftSink) -> Result<FftRun> {
    let FftJob { src, emd, convert, want, budget, run } = job;
    let needs_conversion = src.info().kind != Kind::Emd && !is_converted_from(&emd, src.as_ref());
    // parameters known before the conversion: pass 1 runs alongside it
    let early = match &want {
        _ if !needs_conversion => None,
        FftWant::Exactly(p) => Some(p.clone()),
        FftWant::AnyOrDefault | FftWant::ScanAxes => fft::default_params(src.as_ref()).ok(),
        FftWant::FromData(_) => None,
    };
    let (ds, how, adopt) = match &early {
        Some(params) => {
            let p1 = Pass1Alongside { params, budget, progress: sink.fft_progress(), run: &run };
            ensure_emd_with_pass1(src.clone(), &emd, &convert, sink.convert_progress(), &p1)?
        }
        None => ensure_emd(src.clone(), &emd, &convert, sink.convert_progress()).map(|(d, h)| (d, h, None))?,
    };
    sink.emd_ready(&how);
    // a default found from the `.mib` holds for the EMD when pass 1 of it was taken over
    let early = early.filter(|_| adopt.is_some());
    let fp = || ds.fingerprint();
    let params = match want {
        FftWant::AnyOrDefault => match FftCache::open(&emd) {
            Ok(c) => return Ok(FftRun { ds, emd: how, fft: FftOutcome::Loaded(c) }),
            Err(_) => early.map_or_else(|| fft::default_params(ds.as_ref()), Ok)?,
        },
        FftWant::ScanAxes => match FftCache::open_validated(&emd, &fp()) {
            Ok(c) if c.params.axes == FftAxes::Scan => {
                return Ok(FftRun { ds, emd: how, fft: FftOutcome::Loaded(c) });
            }
            _ => match crate::store::fft::interrupted_params(&emd) {
                Some((p, _, _)) if p.axes == FftAxes::Scan => p,
                _ => early.map_or_else(|| fft::default_params(ds.as_ref()), Ok)?,
            },
        },
        FftWant::Exactly(p) => p,
        FftWant::FromData(f) => f(ds.as_ref())?,
    };
    let pixels = pixel_source(&src, &emd, ds.as_ref());
    drop(src);
    let run = RunOptions { pixels, adopt_scratch: adopt, ..run };
    sink.fft_starts(ds.as_ref(), &params);
    let rep = fft::compute_with(ds.as_ref(), &emd, &params, budget, sink.fft_progress(), &run)?;
    let cache = FftCache::open(&emd)?;
    Ok(FftRun { ds, emd: how, fft: FftOutcome::Computed(cache, Box::new(rep)) })
}
