//! Overviews: the EMD's cached overviews, else the cache directory, else compute and store. One
//! workflow for `emdtui overview` and the TUI, so a `.mib` opened in the viewer and then given to
//! `emdtui overview` (or the other way round) reuses the same cached result.

use crate::compute::badpix;
use crate::compute::overview::{self, ComputeOptions, Geometry, Overviews};
use crate::dataset::{Dataset, Kind};
use crate::error::Result;
use crate::jobs::Progress;
use crate::store;
use std::path::PathBuf;

/// Which detector geometry to use.
#[derive(Debug, Clone, PartialEq)]
pub enum GeometryChoice {
    /// Exactly this geometry.
    Fixed(Geometry),
    /// Follow the bright-field disk found in a sample of frames (`fallback` when none is found).
    /// Overviews cached inside an EMD are accepted whatever their geometry.
    Auto { fallback: Geometry },
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Computed,
    /// Read from the caches inside the EMD file.
    EmdCache,
    /// Read from the cache directory (`.mib` sources).
    CacheDir,
}

impl Origin {
    /// How the UI says it.
    pub fn describe(self) -> &'static str {
        match self {
            Origin::Computed => "computed",
            Origin::EmdCache | Origin::CacheDir => "loaded from cache",
        }
    }
}

/// An overview request.
#[derive(Debug, Clone)]
pub struct OverviewJob {
    pub geometry: GeometryChoice,
    pub compute: ComputeOptions,
    /// The cache directory for `.mib` results (None: neither read nor written there).
    pub cache_dir: Option<PathBuf>,
    /// Use overviews cached inside an EMD source.
    pub emd_cache: bool,
    /// Leave hot and dead pixels in (default: found in a sample of frames, as `emdtui info` and
    /// DPC do, and masked by the median of their neighbours).
    pub keep_bad_pixels: bool,
    /// The user's bad pixels (flat indices; masked unless `keep_bad_pixels`).
    pub user_bad: Vec<usize>,
}

/// The overviews of `ds` and where they came from. `on_partial` sees partial results while they
/// are computed. Complete results of a `.mib` are stored in the cache directory.
pub fn overview(
    ds: &dyn Dataset,
    job: &OverviewJob,
    progress: &Progress,
    on_partial: &(dyn Fn(&Overviews) + Sync),
) -> Result<(Overviews, Origin)> {
    let mask = job.compute.mask.as_ref().map(|m| m.as_slice());
    // an EMD opens with the overviews cached inside it (valid ones, masked as this job masks)
    let cached = emd_cached(ds, job);
    if let Some((o, b)) = &cached
        && job.keep_bad_pixels
        && b.is_empty()
    {
        progress.set_done(progress.total());
        return Ok((o.clone(), Origin::EmdCache));
    }
    let auto = matches!(job.geometry, GeometryChoice::Auto { .. });
    let sample = (auto || !job.keep_bad_pixels)
        .then(|| overview::estimate_geometry(ds, badpix::SAMPLES, &Progress::new("geometry", 0)).ok())
        .flatten();
    let geometry = match (&job.geometry, &sample) {
        (GeometryChoice::Fixed(g), _) => g.clone(),
        (GeometryChoice::Auto { .. }, Some((g, _))) => g.clone(),
        (GeometryChoice::Auto { fallback }, None) => fallback.clone(),
    };
    let bad = bad_list(ds, job, sample.as_ref().map(|s| s.1.as_slice()));
    if let Some((o, b)) = cached
        && b == bad
    {
        progress.set_done(progress.total());
        return Ok((o, Origin::EmdCache));
    }
    let mut compute = job.compute.clone();
    compute.bad_pixels = (!bad.is_empty()).then(|| std::sync::Arc::new(bad.clone()));
    if let Some(dir) = &job.cache_dir
        && let Some(o) = store::ovcache::load_with_bad(dir, ds, &geometry, mask, &bad)
    {
        progress.set_done(progress.total());
        return Ok((o, Origin::CacheDir));
    }
    let o = overview::compute(ds, &geometry, &compute, progress, on_partial)?;
    if let Some(dir) = &job.cache_dir
        && o.complete
        && store::ovcache::applies(ds)
        && let Err(e) = store::ovcache::store_with_bad(dir, ds, &o, mask, &bad)
    {
        log::warn!("overview cache: {e}");
    }
    Ok((o, Origin::Computed))
}

/// The overviews cached inside an EMD source (valid ones, of the job's geometry) and the pixels
/// masked in them; None for other sources, a custom mask or without `job.emd_cache`.
fn emd_cached(ds: &dyn Dataset, job: &OverviewJob) -> Option<(Overviews, Vec<usize>)> {
    if !job.emd_cache || ds.info().kind != Kind::Emd || job.compute.mask.is_some() {
        return None;
    }
    let f = store::emd::EmdFile::open(&ds.info().path).ok()?;
    let (o, bad) = f.read_overviews_masked().ok()??;
    match &job.geometry {
        GeometryChoice::Auto { .. } => Some((o, bad)),
        GeometryChoice::Fixed(g) => (o.geometry == *g).then_some((o, bad)),
    }
}

/// The bad pixels to mask (sorted): hot and dead ones found in the sampled mean pattern `mean`
/// and the user's; none with `keep_bad_pixels`.
fn bad_list(ds: &dyn Dataset, job: &OverviewJob, mean: Option<&[f32]>) -> Vec<usize> {
    if job.keep_bad_pixels {
        return Vec::new();
    }
    let (dr, dc) = ds.det();
    let n = badpix::SAMPLES.clamp(1, ds.positions_present().max(1));
    let mut v = mean.map(|m| badpix::detect(m, dr, dc, n, badpix::DEFAULT_K).all()).unwrap_or_default();
    v.extend(job.user_bad.iter().filter(|&&i| i < dr * dc));
    v.sort_unstable();
    v.dedup();
    v
}

/// Extend complete-so-far overviews `prev` to the frames that arrived since (a running
/// acquisition: only the new frames are read), masking `job.compute.bad_pixels` (the list the
/// first pass used); stored in the cache directory once complete.
pub fn extend(ds: &dyn Dataset, prev: Overviews, job: &OverviewJob, progress: &Progress) -> Result<Overviews> {
    let o = overview::extend(ds, prev, &job.compute, progress)?;
    let bad = job.compute.bad_pixels.as_deref().map(|v| v.as_slice()).unwrap_or(&[]);
    if let Some(dir) = &job.cache_dir
        && o.complete
        && store::ovcache::applies(ds)
        && let Err(e) = store::ovcache::store_with_bad(dir, ds, &o, None, bad)
    {
        log::warn!("overview cache: {e}");
    }
    Ok(o)
}

/// Mean diffraction pattern over a scan rectangle (half-open rows and columns), on the worker
/// pool within the budget: the compute kernel is the whole workflow (nothing is cached).
pub use crate::compute::overview::roi_mean;
