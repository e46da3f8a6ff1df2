//! SSB ptychography, the one workflow every front end calls ([`run`] with a [`PtychoJob`]): the
//! EMD and its scan-axes FFT through the FFT workflow ([`crate::ops::fft::run`]: converting a
//! `.mib` and computing or resuming the FFT when missing), then the result cached in the EMD when
//! it is valid for these parameters and this FFT, else computed with `compute::ssb` and stored.
//! [`params`] turns a calibration into SSB parameters, with one clear error for each missing
//! value; [`cached`] is the last stored result whatever its parameters (what the viewer shows
//! first).

use crate::compute::calib::{Calibration, electron_wavelength_a};
use crate::compute::fft::FftReport;
use crate::compute::ssb::{self, Angular, SsbParams, SsbResult};
use crate::compute::tcbf::KGeometry;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::store::fft::FftCache;
use std::path::Path;

pub use crate::ops::from_fft::Origin;

pub struct PtychoOutcome {
    pub result: SsbResult,
    pub origin: Origin,
}

/// What the user asks for besides the calibration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PtychoOptions {
    /// Defocus to correct (Å, positive = underfocus).
    pub defocus_a: f64,
    /// Bright-field disk (centre (row, col), radius) in detector pixels; None: found.
    pub disk: Option<((f64, f64), f64)>,
    /// Scan rotation (degrees) as `dpc` defines it; None: found as `dpc` finds it.
    pub rotation_deg: Option<f64>,
    /// Detector x mirrored; None: found.
    pub flip: Option<bool>,
}

/// SSB parameters from a calibration: the energy, the convergence angle (`--alpha`, or the
/// detector step of `--q-pixel`) and the scan step are required.
pub fn params(cal: &Calibration, o: &PtychoOptions) -> Result<SsbParams> {
    let energy_v = cal.energy_v.ok_or_else(|| {
        Error::Invalid(
            "ptycho needs the accelerating voltage for the electron wavelength: give --energy, e.g. 200kV".into(),
        )
    })?;
    let lambda = electron_wavelength_a(energy_v);
    let angular = match (cal.alpha_mrad, &cal.q) {
        (Some(a), _) => Angular::AlphaMrad(a),
        (None, Some((q, u))) if u == "mrad" => Angular::MradPerPixel(*q),
        (None, Some((q, u))) if u == "A^-1" => Angular::MradPerPixel(q * lambda * 1e3),
        _ => {
            return Err(Error::Invalid(
                "ptycho needs the convergence semi-angle: give --alpha, e.g. 22mrad (or the detector step --q-pixel)"
                    .into(),
            ));
        }
    };
    let scan_step_a = match &cal.r {
        Some((v, u)) if u == "A" => *v,
        Some((v, u)) if u == "nm" => v * 10.0,
        _ => return Err(Error::Invalid("ptycho needs the scan step: give --scan-step, e.g. 0.3A".into())),
    };
    Ok(SsbParams {
        energy_v,
        angular,
        scan_step_a,
        defocus_a: o.defocus_a,
        disk: o.disk,
        rotation_deg: o.rotation_deg,
        flip: o.flip,
    })
}

/// A ptychography run to make or load from a `.mib` or an EMD: `fft` says where the EMD is and
/// how to convert (its `want` is set to a scan-axes FFT), `params` which SSB; with `use_cache`
/// false the stored SSB result is neither read nor written (the FFT cache is used all the same).
pub struct PtychoJob {
    pub fft: crate::ops::fft::FftJob,
    pub params: SsbParams,
    pub use_cache: bool,
}

/// The ptychography workflow, once for every front end: the parameters checked against the scan,
/// the EMD and a scan-axes FFT in it through [`crate::ops::fft::run`] (converting, with its
/// pass-1 overlap, and resuming as the FFT workflow does), then the stored result when it is
/// valid for these parameters and this FFT, else SSB computed and stored. Progress goes to
/// `sink`'s FFT progress.
pub fn run(job: PtychoJob, sink: &dyn crate::ops::fft::FftSink) -> Result<PtychoOutcome> {
    use crate::ops::fft::{FftOutcome, FftWant};
    let PtychoJob { fft, params, use_cache } = job;
    ssb::check_params(&params, (fft.src.scan().rows, fft.src.scan().cols))?;
    let (emd, budget) = (fft.emd.clone(), fft.budget);
    let r = crate::ops::fft::run(crate::ops::fft::FftJob { want: FftWant::ScanAxes, ..fft }, sink)?;
    let (cache, made) = match r.fft {
        FftOutcome::Computed(cache, rep) => (cache, Some(rep)),
        FftOutcome::Loaded(cache) => (cache, None),
    };
    let step = Step { ds: r.ds.as_ref(), emd: &emd, use_cache, budget, progress: sink.fft_progress() };
    from_fft(&step, cache, made, &params)
}

/// What [`from_fft`] works on besides the FFT and the parameters.
struct Step<'a> {
    ds: &'a dyn Dataset,
    emd: &'a Path,
    use_cache: bool,
    budget: u64,
    progress: &'a Progress,
}

/// The stored result for `cache` and `p` (when the FFT was not just made), else SSB computed
/// from `cache` and stored.
fn from_fft(s: &Step, cache: FftCache, made: Option<Box<FftReport>>, p: &SsbParams) -> Result<PtychoOutcome> {
    let fp = s.ds.fingerprint();
    let key = crate::store::ssb::key(p, &cache);
    let fft_id = crate::store::ssb::fft_identity(&cache);
    if s.use_cache
        && made.is_none()
        && let Some(result) = crate::store::ssb::load(s.emd, &fp, Some(&key), &fft_id)?
    {
        return Ok(PtychoOutcome { result, origin: Origin::Cache });
    }
    let geom = KGeometry { det: s.ds.det(), origin: (cache.det_box[0], cache.det_box[1]), bin: cache.params.bin };
    s.progress.set_done(0);
    s.progress.set_message("SSB");
    let result = ssb::run(&cache, geom, p, s.budget, s.progress)?;
    // the writer needs the file closed by this process's readers
    drop(cache);
    if s.use_cache {
        crate::store::ssb::save(s.emd, &fp, &key, &result)?;
    }
    Ok(PtychoOutcome { result, origin: Origin::Computed { fft: made } })
}

/// The last stored result for the current FFT cache of `ds` in `emd`, whatever its parameters
/// (what the viewer shows before a new run); None when there is none or it is stale.
pub fn cached(ds: &dyn Dataset, emd: &Path) -> Option<SsbResult> {
    let fp = ds.fingerprint();
    let cache = FftCache::open_validated(emd, &fp).ok()?;
    let id = crate::store::ssb::fft_identity(&cache);
    drop(cache);
    crate::store::ssb::load(emd, &fp, None, &id).ok().flatten()
}
