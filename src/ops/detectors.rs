//! Custom virtual detectors (point, rectangle, BF/ADF with a maximum response, masks from a
//! pattern): the cache directory (`.mib` sources, the one overview cache keyed by the detector
//! definition), else the custom-detector pass, stored once complete. One workflow for
//! `emdtui overview --detector point:..|rect:..|pattern:..|... [--response max]` and the TUI.

use crate::compute::detectors::{self, CustomDetector};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::jobs::Progress;
use crate::ops::overview::Origin;
use crate::store;
use std::path::Path;

/// The image of `det` over the scan (NaN where no frame yet) and where it came from, bad pixels
/// kept. Complete images of a `.mib` are stored in `cache_dir` (None: neither read nor written).
pub fn custom_image(
    ds: &dyn Dataset,
    det: &CustomDetector,
    budget: u64,
    cache_dir: Option<&Path>,
    progress: &Progress,
) -> Result<(Vec<f32>, Origin)> {
    custom_image_masked(ds, det, None, budget, cache_dir, progress)
}

/// [`custom_image`] with bad pixels masked unless `user_bad` is None (`--keep-bad-pixels`): the
/// hot and dead pixels found in a sample of frames (as the overviews find them) and the user's
/// `user_bad`, replaced by the median of their good neighbours. The list is part of the cache key.
pub fn custom_image_masked(
    ds: &dyn Dataset,
    det: &CustomDetector,
    user_bad: Option<&[usize]>,
    budget: u64,
    cache_dir: Option<&Path>,
    progress: &Progress,
) -> Result<(Vec<f32>, Origin)> {
    // check the definition before any cache lookup, so a bad one is always the same error
    let (dr, dc) = ds.det();
    det.pixels(dr, dc)?;
    let bad = match user_bad {
        Some(user) if ds.positions_present() > 0 => crate::ops::dpc::bad_pixels(ds, user)?.1.all(),
        Some(user) => user.to_vec(),
        None => Vec::new(),
    };
    if let Some(dir) = cache_dir
        && let Some(v) = store::ovcache::load_custom(dir, ds, det, &bad)
    {
        progress.set_done(progress.total());
        return Ok((v, Origin::CacheDir));
    }
    let v = detectors::custom_image_masked(ds, det, &bad, budget, progress)?;
    let complete = ds.positions_present() >= ds.scan().positions();
    if let Some(dir) = cache_dir
        && complete
        && store::ovcache::applies(ds)
        && let Err(e) = store::ovcache::store_custom(dir, ds, det, &bad, &v)
    {
        log::warn!("overview cache: {e}");
    }
    Ok((v, Origin::Computed))
}

/// A detector from the pattern at scan position `pos`: the pixels at or above `fraction` of its
/// maximum, with `response`.
pub fn from_pattern(
    ds: &dyn Dataset,
    pos: usize,
    fraction: f32,
    response: detectors::Response,
) -> Result<CustomDetector> {
    let n = ds.positions_present().min(ds.scan().positions());
    if pos >= n {
        return Err(crate::error::Error::Invalid(format!(
            "{}: scan position {pos} has no frame ({n} present)",
            ds.info().path.display()
        )));
    }
    let f: Vec<f32> = ds.frame_u32(pos)?.into_iter().map(|v| v as f32).collect();
    Ok(CustomDetector { region: detectors::Region::Weights(detectors::mask_from_pattern(&f, fraction)?), response })
}
