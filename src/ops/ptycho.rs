//! SSB ptychography of an EMD dataset: the cached result when it is valid for these parameters
//! and this FFT, else (making the scan-axes FFT first when there is no valid one, as tcBF does)
//! compute with `compute::ssb` and store it in the EMD. The EMD itself comes from
//! [`crate::ops::fft::ensure_emd`], as for the FFT. [`params`] turns a calibration into SSB
//! parameters, with one clear error for each missing value.

use crate::compute::calib::{Calibration, electron_wavelength_a};
use crate::compute::fft::{FftReport, RunOptions};
use crate::compute::ssb::{self, Angular, SsbParams, SsbResult};
use crate::compute::tcbf::KGeometry;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::store::fft::FftCache;
use std::path::Path;

/// Where the result came from.
#[derive(Debug)]
pub enum Origin {
    /// The EMD held a valid result for these parameters.
    Cache,
    /// Computed now; `fft` when the FFT had to be computed (or resumed) first.
    Computed { fft: Option<Box<FftReport>> },
}

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

/// The SSB of the EMD dataset `ds` stored in `emd` (see the module doc); with `use_cache` false
/// the stored result is neither read nor written (the FFT cache is used all the same).
pub fn load_or_compute(
    ds: &dyn Dataset,
    emd: &Path,
    p: &SsbParams,
    use_cache: bool,
    budget: u64,
    progress: &Progress,
    run: &RunOptions,
) -> Result<PtychoOutcome> {
    ssb::check_params(p, (ds.scan().rows, ds.scan().cols))?;
    let fp = ds.fingerprint();
    let (cache, fft_rep) = crate::ops::tcbf::ensure_fft(ds, emd, budget, progress, run)?;
    let key = crate::store::ssb::key(p, &cache);
    let fft_id = crate::store::ssb::fft_identity(&cache);
    if use_cache
        && fft_rep.is_none()
        && let Some(result) = crate::store::ssb::load(emd, &fp, Some(&key), &fft_id)?
    {
        return Ok(PtychoOutcome { result, origin: Origin::Cache });
    }
    let geom = KGeometry { det: ds.det(), origin: (cache.det_box[0], cache.det_box[1]), bin: cache.params.bin };
    progress.set_done(0);
    let result = ssb::run(&cache, geom, p, budget, progress)?;
    // the writer needs the file closed by this process's readers
    drop(cache);
    if use_cache {
        crate::store::ssb::save(emd, &fp, &key, &result)?;
    }
    Ok(PtychoOutcome { result, origin: Origin::Computed { fft: fft_rep } })
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
