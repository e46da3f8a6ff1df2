//! What the custom detector and the EWPC pane keep (part of the main view).

use crate::compute::detectors::{CustomDetector, Region, Response};
use crate::compute::overview::Geometry;
use crate::jobs::Progress;

/// Which custom detector is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    Off,
    Point,
    Rect,
    Pattern,
    Disk,
    Annulus,
}

impl Shape {
    pub(crate) fn next(self) -> Shape {
        match self {
            Shape::Off => Shape::Point,
            Shape::Point => Shape::Rect,
            Shape::Rect => Shape::Pattern,
            Shape::Pattern => Shape::Disk,
            Shape::Disk => Shape::Annulus,
            Shape::Annulus => Shape::Off,
        }
    }
}

/// State of the custom detector and the EWPC pane (part of the main view).
#[derive(Debug, Default)]
pub struct DetectView {
    pub shape: Shape,
    pub response: Response,
    /// The mask taken from a pattern (kept while the shape is `Pattern`).
    pub pattern_mask: Option<Vec<f32>>,
    /// The definition of the image on screen (or being computed).
    pub det: Option<CustomDetector>,
    pub image: Option<Vec<f32>>,
    pub generation: u64,
    pub job: Option<std::sync::Arc<Progress>>,
    pub error: Option<String>,
    /// The frame pane shows the EWPC of its pattern.
    pub ewpc: bool,
}

impl DetectView {
    /// The detector of the current shape for geometry `g` on a `rows` x `cols` detector.
    pub fn detector(&self, g: &Geometry, rows: usize, cols: usize) -> Option<CustomDetector> {
        let (cy, cx) = (g.center.0.round().max(0.0) as usize, g.center.1.round().max(0.0) as usize);
        let region = match self.shape {
            Shape::Off => return None,
            Shape::Point => Region::Point { row: cy.min(rows - 1), col: cx.min(cols - 1), radius: 0.0 },
            Shape::Rect => {
                let h = g.bf_radius.round().max(1.0) as usize;
                Region::Rect {
                    r0: cy.saturating_sub(h),
                    r1: (cy + h + 1).min(rows),
                    c0: cx.saturating_sub(h),
                    c1: (cx + h + 1).min(cols),
                }
            }
            Shape::Pattern => Region::Weights(self.pattern_mask.clone()?),
            Shape::Disk => Region::Disk(g.clone()),
            Shape::Annulus => Region::Annulus(g.clone()),
        };
        Some(CustomDetector { region, response: self.response })
    }

    /// The title of the custom image pane (`short`: the kind and response only, for narrow panes).
    pub fn title(&self, short: bool) -> Option<String> {
        let d = self.det.as_ref()?;
        if !short {
            return Some(format!("custom {}", d.label()));
        }
        let kind = match d.region {
            Region::Point { .. } => "point",
            Region::Rect { .. } => "rect",
            Region::Disk(_) => "BF",
            Region::Annulus(_) => "ADF",
            Region::Weights(_) => "mask",
        };
        Some(format!("custom {kind} {}", d.response.name()))
    }
}
