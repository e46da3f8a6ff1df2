//! EWPC of the mean pattern (from the overviews: the EMD's cache, the cache directory, or
//! computed and stored) or of the pattern at one scan position. One workflow for `emdtui ewpc`
//! and the TUI's EWPC pane (which has the pattern at hand and calls [`ewpc`] directly).

pub use crate::compute::ewpc::{EwpcOptions, ewpc};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::ops::overview::OverviewJob;

/// The pattern at scan position `at` (row, col), or the mean pattern over the scan (via the
/// overviews, so a cached overview is reused).
pub fn pattern(
    ds: &dyn Dataset,
    at: Option<(usize, usize)>,
    job: &OverviewJob,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let s = ds.scan();
    match at {
        Some((r, c)) => {
            let n = ds.positions_present().min(s.positions());
            if r >= s.rows || c >= s.cols || r * s.cols + c >= n {
                return Err(Error::Invalid(format!(
                    "{}: scan position {r},{c} is outside the {}x{} scan or has no frame yet",
                    ds.info().path.display(),
                    s.rows,
                    s.cols
                )));
            }
            Ok(ds.frame_u32(r * s.cols + c)?.into_iter().map(|v| v as f32).collect())
        }
        None => Ok(crate::ops::overview::overview(ds, job, progress, &|_| {})?.0.mean_dp),
    }
}

/// The EWPC (detector shape, zero quefrency at the centre) of [`pattern`].
pub fn ewpc_of(
    ds: &dyn Dataset,
    at: Option<(usize, usize)>,
    job: &OverviewJob,
    opts: &EwpcOptions,
    progress: &Progress,
) -> Result<Vec<f32>> {
    let p = pattern(ds, at, job, progress)?;
    let (dr, dc) = ds.det();
    ewpc(&p, dr, dc, opts)
}
