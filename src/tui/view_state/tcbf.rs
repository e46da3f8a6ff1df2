//! What the tcBF view keeps: its job, the results of this session by upsample factor and the
//! prepared panes.

use crate::compute::tcbf::TcbfResult;
use crate::jobs::Progress;
use crate::tui::images::Shown;
use ratatui::layout::Rect;
use std::sync::Arc;

/// The upsample factors `B` cycles through.
pub const UPSAMPLES: [usize; 3] = [1, 2, 4];

/// The factor the view starts with.
pub const DEFAULT_UPSAMPLE: usize = 2;

/// A result and how it was obtained ("computed", "loaded from the EMD cache", ...).
#[derive(Clone)]
pub struct TcbfShown {
    pub result: Arc<TcbfResult>,
    pub origin: String,
}

/// State of the tcBF view.
pub struct TcbfView {
    pub job: Option<Arc<Progress>>,
    /// Upsample factor of the job running (or last run).
    pub job_upsample: usize,
    /// The factor asked for (what the view shows).
    pub upsample: usize,
    /// Results of this session, by upsample factor.
    pub results: Vec<TcbfShown>,
    pub version: u64,
    /// tcBF image, plain BF image, shift wheel.
    pub prepared: [Option<(u64, Rect, Shown)>; 3],
}

impl Default for TcbfView {
    fn default() -> Self {
        TcbfView {
            job: None,
            job_upsample: DEFAULT_UPSAMPLE,
            upsample: DEFAULT_UPSAMPLE,
            results: Vec::new(),
            version: 0,
            prepared: [None, None, None],
        }
    }
}

impl TcbfView {
    /// The result at the current upsample factor.
    pub fn current(&self) -> Option<&TcbfShown> {
        self.results.iter().find(|r| r.result.params.upsample == self.upsample)
    }
    pub(crate) fn running(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.state().finished())
    }
}
