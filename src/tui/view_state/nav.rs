//! What the navigation pane keeps (`--nav PATH`): the image with its shape check and
//! calibration, and its prepared picture.

use crate::ops::nav::NavForScan;
use crate::tui::images::Shown;
use ratatui::layout::Rect;

pub struct NavView {
    pub nav: NavForScan,
    /// The picture on screen, keyed by the overview version (cursor, ROI, display) and area.
    pub prepared: Option<(u64, Rect, Shown)>,
}

impl NavView {
    pub fn new(nav: NavForScan) -> NavView {
        NavView { nav, prepared: None }
    }

    /// The navigation-image pixel (row, col) of scan position `p` of a `scan` (rows, cols) scan:
    /// the same pixel when the shapes match, else the same fraction of the image.
    pub fn to_image(&self, p: (usize, usize), scan: (usize, usize)) -> (usize, usize) {
        let i = &self.nav.image;
        let f = |v: usize, n: usize, m: usize| if n == m { v } else { (v * m / n.max(1)).min(m.saturating_sub(1)) };
        (f(p.0, scan.0, i.rows), f(p.1, scan.1, i.cols))
    }
}
