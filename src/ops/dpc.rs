//! DPC workflow: bad pixels from a sample of frames, the mask-restricted centre of mass (cache
//! directory for a `.mib` or inside an EMD, else one pass over the data), then descan, rotation,
//! flip and iCoM.

use crate::compute::badpix::{self, BadPixels};
use crate::compute::dpc::{self, DpcOptions, DpcResult};
use crate::compute::overview::{self, Geometry};
use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::ops::overview::Origin;
use crate::store;
use std::path::PathBuf;

/// Frames sampled (evenly over the scan) for the mean pattern behind the bad-pixel search.
pub const BADPIX_SAMPLES: usize = badpix::SAMPLES;

/// The detector region the CoM is restricted to.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskChoice {
    /// A disk around the found bright-field disk, of radius `1.2 r_BF + 2` px (room for the
    /// disk's shifts).
    Bf,
    /// An annulus (inner, outer radius in detector pixels) around the found centre.
    Annulus(f32, f32),
    /// Weights from a file (detector shape).
    Weights(Vec<f32>),
}

/// A DPC request.
#[derive(Debug, Clone)]
pub struct DpcJob {
    pub mask: MaskChoice,
    pub dpc: DpcOptions,
    /// Leave hot and dead pixels in (default: replaced by the median of their neighbours).
    pub keep_bad_pixels: bool,
    /// Extra bad pixels from the user (flat indices).
    pub user_bad: Vec<usize>,
    pub memory_budget: u64,
    /// The cache directory for `.mib` results (None: neither read nor written).
    pub cache_dir: Option<PathBuf>,
    /// Read and write the cache inside an EMD source (`/emdtui/cache/dpc_com`).
    pub emd_cache: bool,
}

/// A DPC result with what it was computed from.
#[derive(Debug, Clone)]
pub struct DpcOutcome {
    pub result: DpcResult,
    pub origin: Origin,
    pub geometry: Geometry,
    pub bad: BadPixels,
    /// Detector pixels inside the mask.
    pub mask_pixels: usize,
}

/// Hot and dead pixels of `ds` from [`BADPIX_SAMPLES`] sampled frames (plus `user`), and the
/// detector geometry found in the same sample.
pub fn bad_pixels(ds: &dyn Dataset, user: &[usize]) -> Result<(Geometry, BadPixels)> {
    let (g, mean) = overview::estimate_geometry(ds, BADPIX_SAMPLES, &Progress::new("bad pixels", 0))?;
    let (dr, dc) = ds.det();
    let n = BADPIX_SAMPLES.clamp(1, ds.positions_present().max(1));
    let mut b = badpix::detect(&mean, dr, dc, n, badpix::DEFAULT_K);
    b.user = user.to_vec();
    Ok((g, b))
}

/// The detector weights of a mask choice.
pub fn weights(mask: &MaskChoice, g: &Geometry, det: (usize, usize)) -> Result<Vec<f32>> {
    let (dr, dc) = det;
    let w = match mask {
        MaskChoice::Bf => dpc::annulus_mask(dr, dc, g.center, 0.0, 1.2 * g.bf_radius + 2.0),
        MaskChoice::Annulus(a, b) => dpc::annulus_mask(dr, dc, g.center, *a, *b),
        MaskChoice::Weights(w) => {
            if w.len() != dr * dc {
                return Err(Error::Invalid(format!(
                    "mask has {} values, the detector has {dr}x{dc} = {} pixels",
                    w.len(),
                    dr * dc
                )));
            }
            w.clone()
        }
    };
    if !w.iter().any(|&v| v != 0.0) {
        return Err(Error::Invalid("the DPC mask contains no detector pixel".into()));
    }
    Ok(w)
}

/// The mask-restricted centre of mass behind a DPC result (the expensive pass over the data),
/// with what it was computed from; [`orient`] turns it into a result in milliseconds.
#[derive(Debug, Clone)]
pub struct DpcCom {
    pub rows: usize,
    pub cols: usize,
    /// Detector CoM (px from the found centre; NaN where no frame).
    pub com_x: Vec<f32>,
    pub com_y: Vec<f32>,
    pub origin: Origin,
    pub geometry: Geometry,
    pub bad: BadPixels,
    /// Bad pixels replaced by their neighbours' median (0 with `keep_bad_pixels`).
    pub bad_replaced: usize,
    /// Detector pixels inside the mask.
    pub mask_pixels: usize,
}

/// The masked CoM of `ds`: cached inside an EMD source (`/emdtui/cache/dpc_com`) or in the cache
/// directory for a `.mib`, else one pass over the data (stored when complete).
pub fn com(ds: &dyn Dataset, job: &DpcJob, progress: &Progress) -> Result<DpcCom> {
    let (rows, cols) = (ds.scan().rows, ds.scan().cols);
    if rows < 2 || cols < 2 {
        return Err(Error::Invalid(format!(
            "{}: DPC needs a 2-D scan of at least 2x2 positions; this scan is {rows}x{cols} (give --scan ROWSxCOLS?)",
            ds.info().path.display()
        )));
    }
    if ds.positions_present() == 0 {
        return Err(Error::Invalid(format!("{}: no frames to compute from", ds.info().path.display())));
    }
    let (geometry, bad) = bad_pixels(ds, &job.user_bad)?;
    let w = weights(&job.mask, &geometry, ds.det())?;
    let replaced = if job.keep_bad_pixels { Vec::new() } else { bad.all() };
    let flags = (!replaced.is_empty()).then(|| {
        let mut f = vec![false; w.len()];
        for &i in &replaced {
            f[i] = true;
        }
        f
    });
    let key = store::dpc::key(ds, &w, geometry.center, &replaced);
    let is_emd = ds.info().kind == Kind::Emd;
    let cached = if is_emd {
        job.emd_cache.then(|| store::dpc::load_emd(ds, &key)).flatten().map(|c| (Origin::EmdCache, c))
    } else {
        job.cache_dir.as_ref().and_then(|d| store::dpc::load(d, ds, &key)).map(|c| (Origin::CacheDir, c))
    };
    let (origin, (com_x, com_y)) = match cached {
        Some(c) => {
            progress.set_done(progress.total());
            c
        }
        None => {
            let c = dpc::masked_com(ds, &w, flags.as_deref(), geometry.center, job.memory_budget, progress)?;
            if ds.positions_present() >= ds.scan().positions() {
                let stored = if is_emd && job.emd_cache {
                    store::dpc::store_emd(ds, &key, &c.0, &c.1).map(|_| ())
                } else if let Some(d) = job.cache_dir.as_ref().filter(|_| store::ovcache::applies(ds)) {
                    store::dpc::store(d, ds, &key, &c.0, &c.1).map(|_| ())
                } else {
                    Ok(())
                };
                if let Err(e) = stored {
                    log::warn!("dpc cache: {e}");
                }
            }
            (Origin::Computed, c)
        }
    };
    let mask_pixels = w.iter().filter(|&&v| v != 0.0).count();
    Ok(DpcCom { rows, cols, com_x, com_y, origin, geometry, bad, bad_replaced: replaced.len(), mask_pixels })
}

/// Descan, rotation, flip and iCoM of a masked CoM (milliseconds: the UI's overrides use it).
pub fn orient(c: &DpcCom, opts: &DpcOptions) -> Result<DpcOutcome> {
    let result = dpc::dpc(&c.com_x, &c.com_y, c.rows, c.cols, opts)?;
    Ok(DpcOutcome {
        result,
        origin: c.origin,
        geometry: c.geometry.clone(),
        bad: c.bad.clone(),
        mask_pixels: c.mask_pixels,
    })
}

/// DPC of `ds`: [`com`] (cached or computed), then [`orient`] with the job's options.
pub fn run(ds: &dyn Dataset, job: &DpcJob, progress: &Progress) -> Result<DpcOutcome> {
    orient(&com(ds, job, progress)?, &job.dpc)
}
