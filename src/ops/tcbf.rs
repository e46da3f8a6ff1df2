//! Tilt-corrected BF of an EMD dataset: the cached result when it is valid for these parameters
//! and this FFT, else (making the scan-axes FFT first when there is no valid one, resuming an
//! interrupted one) compute with `compute::tcbf` and store it in the EMD. [`run`] is the whole
//! workflow from a `.mib` or an EMD: the FFT workflow of [`crate::ops::fft::run`] first.

use crate::compute::fft::{self, FftAxes, FftReport, RunOptions};
use crate::compute::tcbf::{self, KGeometry, TcbfParams, TcbfResult};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::jobs::Progress;
use crate::store::fft::FftCache;
use std::path::Path;

pub use crate::ops::from_fft::Origin;

pub struct TcbfOutcome {
    pub result: TcbfResult,
    pub origin: Origin,
}

/// A valid scan-axes FFT of `ds` in `emd`, computing it first when needed (an interrupted
/// scan-axes run resumes with its parameters; otherwise the default bright-field crop).
pub fn ensure_fft(
    ds: &dyn Dataset,
    emd: &Path,
    budget: u64,
    progress: &Progress,
    run: &RunOptions,
) -> Result<(FftCache, Option<Box<FftReport>>)> {
    let fp = ds.fingerprint();
    if let Ok(c) = FftCache::open_validated(emd, &fp)
        && c.params.axes == FftAxes::Scan
    {
        return Ok((c, None));
    }
    let params = match crate::store::fft::interrupted_params(emd) {
        Some((p, _, _)) if p.axes == FftAxes::Scan => p,
        _ => fft::default_params(ds)?,
    };
    progress.set_message("tcBF: computing the scan-axes FFT first");
    let rep = fft::compute_with(ds, emd, &params, budget, progress, run)?;
    Ok((FftCache::open_validated(emd, &fp)?, Some(Box::new(rep))))
}

/// The tcBF of the EMD dataset `ds` stored in `emd` (see the module doc).
pub fn load_or_compute(
    ds: &dyn Dataset,
    emd: &Path,
    p: &TcbfParams,
    budget: u64,
    progress: &Progress,
    run: &RunOptions,
) -> Result<TcbfOutcome> {
    tcbf::check_params(p, (ds.scan().rows, ds.scan().cols))?;
    let fp = ds.fingerprint();
    let (cache, fft_rep) = ensure_fft(ds, emd, budget, progress, run)?;
    let key = crate::store::tcbf::key(p, &cache);
    if fft_rep.is_none()
        && let Some(result) = crate::store::tcbf::load(emd, &fp, p, &key)?
    {
        return Ok(TcbfOutcome { result, origin: Origin::Cache });
    }
    let geom = KGeometry { det: ds.det(), origin: (cache.det_box[0], cache.det_box[1]), bin: cache.params.bin };
    progress.set_done(0);
    let result = tcbf::run(&cache, geom, p, budget, progress)?;
    // the writer needs the file closed by this process's readers
    drop(cache);
    crate::store::tcbf::save(emd, &fp, &key, &result)?;
    Ok(TcbfOutcome { result, origin: Origin::Computed { fft: fft_rep } })
}

/// A tcBF to make or load from a `.mib` or an EMD: `fft` says where the EMD is and how to convert
/// (its `want` is set to a scan-axes FFT), `params` which tcBF.
pub struct TcbfJob {
    pub fft: crate::ops::fft::FftJob,
    pub params: TcbfParams,
}

/// The tcBF workflow: the EMD and a scan-axes FFT in it through [`crate::ops::fft::run`] (with
/// its pass-1 overlap and resume), then [`load_or_compute`]. Progress goes to `sink`'s FFT
/// progress.
pub fn run(job: TcbfJob, sink: &dyn crate::ops::fft::FftSink) -> Result<TcbfOutcome> {
    use crate::ops::fft::{FftOutcome, FftWant};
    let TcbfJob { fft, params } = job;
    tcbf::check_params(&params, (fft.src.scan().rows, fft.src.scan().cols))?;
    let (emd, budget, opts) = (fft.emd.clone(), fft.budget, fft.run.clone());
    let r = crate::ops::fft::run(crate::ops::fft::FftJob { want: FftWant::ScanAxes, ..fft }, sink)?;
    // the FFT's readers of the EMD are let go: tcBF writes its result into it
    let crate::ops::fft::FftRun { ds, fft, .. } = r;
    let made = match fft {
        FftOutcome::Computed(cache, rep) => {
            drop(cache);
            Some(rep)
        }
        FftOutcome::Loaded(cache) => {
            drop(cache);
            None
        }
    };
    let mut out = load_or_compute(ds.as_ref(), &emd, &params, budget, sink.fft_progress(), &opts)?;
    if let (Origin::Computed { fft }, Some(rep)) = (&mut out.origin, made)
        && fft.is_none()
    {
        *fft = Some(rep);
    }
    Ok(out)
}
