//! What the ptychography view keeps: its job, the defocus asked for, the results of this session
//! and the prepared panes.

use crate::compute::ssb::SsbResult;
use crate::jobs::Progress;
use crate::tui::images::Shown;
use ratatui::layout::Rect;
use std::sync::Arc;

/// The results of a session kept (the oldest go first).
pub const KEEP: usize = 8;

/// A result and how it was obtained.
#[derive(Clone)]
pub struct PtychoShown {
    pub result: Arc<SsbResult>,
    pub origin: String,
}

impl PtychoShown {
    /// The defocus this result corrected (Å).
    pub fn defocus_a(&self) -> f64 {
        self.result.params.defocus_a
    }
}

/// State of the ptychography view.
#[derive(Default)]
pub struct PtychoView {
    pub job: Option<Arc<Progress>>,
    /// Defocus of the job running (or last run), Å.
    pub job_defocus_a: f64,
    /// The defocus asked for (Å, positive = underfocus): what the view shows once computed.
    pub defocus_a: f64,
    /// Results of this session, the newest last.
    pub results: Vec<PtychoShown>,
    /// Why no job could start (missing calibration), shown in the panes.
    pub blocked: Option<String>,
    pub version: u64,
    /// SSB phase, iCoM, BF.
    pub prepared: [Option<(u64, Rect, Shown)>; 3],
}

/// Two defocus values the same for the view (Å).
pub fn same_defocus(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

impl PtychoView {
    pub fn running(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.state().finished())
    }
    /// The result at the defocus asked for.
    pub fn current(&self) -> Option<&PtychoShown> {
        self.results.iter().rev().find(|r| same_defocus(r.defocus_a(), self.defocus_a))
    }
    /// What the panes show: the result at the defocus asked for, else the newest (while the
    /// one asked for is computed).
    pub fn shown(&self) -> Option<&PtychoShown> {
        self.current().or(self.results.last())
    }
    /// Keep a new result (replacing one at the same defocus), the newest last.
    pub fn push(&mut self, r: PtychoShown) {
        self.results.retain(|x| !same_defocus(x.defocus_a(), r.defocus_a()));
        self.results.push(r);
        if self.results.len() > KEEP {
            self.results.remove(0);
        }
        self.version += 1;
    }
}
