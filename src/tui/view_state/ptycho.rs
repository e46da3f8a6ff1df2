//! What the ptychography view keeps: its job, the result shown and the prepared panes.

use crate::compute::ssb::SsbResult;
use crate::jobs::Progress;
use crate::tui::images::Shown;
use ratatui::layout::Rect;
use std::sync::Arc;

/// A result and how it was obtained.
#[derive(Clone)]
pub struct PtychoShown {
    pub result: Arc<SsbResult>,
    pub origin: String,
}

/// State of the ptychography view.
#[derive(Default)]
pub struct PtychoView {
    pub job: Option<Arc<Progress>>,
    pub shown: Option<PtychoShown>,
    /// Why no job could start (missing calibration), shown in the panes.
    pub blocked: Option<String>,
    pub version: u64,
    /// SSB phase, iCoM, BF.
    pub prepared: [Option<(u64, Rect, Shown)>; 3],
}

impl PtychoView {
    pub fn running(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.state().finished())
    }
}
