//! Calibration of a dataset: the EMD's own (for an EMD) or the one remembered for a `.mib`, with
//! what the user gives on top; a `.mib`'s calibration is remembered in the cache directory once
//! given. `--alpha` becomes a detector step through the bright-field disk found in the data.

use crate::compute::calib::{self, Calibration};
use crate::compute::overview;
use crate::dataset::{Dataset, Kind};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::store;
use std::path::Path;

/// The calibration stored with the source (EMD dims, or the cache directory for a `.mib`).
pub fn stored(ds: &dyn Dataset, cache_dir: Option<&Path>) -> Calibration {
    match ds.info().kind {
        Kind::Emd => match crate::format::emd::calibration(&ds.info().path) {
            Some((rs, ru, qs, qu)) => Calibration {
                r: (ru != "pixels").then_some((rs, ru)),
                q: (qu != "pixels").then_some((qs, qu)),
                alpha_mrad: None,
                energy_v: None,
            },
            None => Calibration::default(),
        },
        Kind::Mib => cache_dir.and_then(|d| store::calib::load(d, ds)).unwrap_or_default(),
    }
}

/// The stored calibration with `given` on top (an `alpha_mrad` without `q` is turned into a
/// detector step from the bright-field disk). A `.mib`'s result is remembered when anything was
/// given.
pub fn resolve(ds: &dyn Dataset, given: &Calibration, cache_dir: Option<&Path>) -> Result<Calibration> {
    let mut given = given.clone();
    if let (Some(alpha), None) = (given.alpha_mrad, &given.q) {
        let (_, mean) = overview::estimate_geometry(ds, 64, &Progress::new("geometry", 0))?;
        let (dr, dc) = ds.det();
        let (_, r) = overview::find_bf_disk(&mean, dr, dc).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: --alpha needs the bright-field disk, and none was found; give --q-pixel instead",
                ds.info().path.display()
            ))
        })?;
        let q = calib::q_from_alpha(alpha, r as f64)
            .ok_or_else(|| Error::Invalid(format!("--alpha {alpha} mrad: the disk radius {r} px is not usable")))?;
        given.q = Some((q, "mrad".into()));
    }
    let cal = stored(ds, cache_dir).merged(&given);
    if !given.is_empty()
        && ds.info().kind == Kind::Mib
        && let Some(d) = cache_dir
        && let Err(e) = store::calib::save(d, ds, &cal)
    {
        log::warn!("calibration not remembered: {e}");
    }
    Ok(cal)
}
