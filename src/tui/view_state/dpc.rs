//! What the DPC view keeps between frames.

use crate::jobs::Progress;
use crate::ops::dpc::{DpcCom, DpcOutcome};
use crate::tui::images::Shown;
use ratatui::layout::Rect;
use std::sync::Arc;

/// State of the DPC view.
#[derive(Default)]
pub struct DpcView {
    pub job: Option<Arc<Progress>>,
    /// The masked CoM of the dataset (what overrides recompute from).
    pub com: Option<Arc<DpcCom>>,
    /// The result at the current orientation.
    pub outcome: Option<DpcOutcome>,
    /// Rotation (degrees) and flip set by the user (None: found from the curl).
    pub rotation: Option<f64>,
    pub flip: Option<bool>,
    /// The orientation found with nothing set: (rotation, flip, curl ratio).
    pub found: Option<(f64, bool, f64)>,
    pub version: u64,
    pub prepared: [Option<(u64, Rect, Shown)>; 2],
    pub error: Option<String>,
}
