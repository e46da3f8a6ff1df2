//! Calibration and bad pixels as the UI uses them ([`Quant`]): the masked frame, and the
//! calibration, radii and bad-pixel lines of the metadata panes.

use crate::compute::badpix::{self, BadPixels};
use crate::compute::calib::Calibration;
use crate::compute::overview::Geometry;
use crate::tui::images;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// Calibration and bad pixels as the UI uses them.
#[derive(Debug, Clone, Default)]
pub struct Quant {
    pub calibration: Calibration,
    /// `--keep-bad-pixels`: show and compute with the hot and dead pixels left in.
    pub keep_bad: bool,
    /// `--bad-pixels PATH` (flat detector indices).
    pub user_bad: Vec<usize>,
    /// Hot and dead pixels found in the mean pattern of the complete overview (plus the user's).
    pub bad: Option<BadPixels>,
}

impl Quant {
    /// The pixels replaced in the frame view (none with `keep_bad`).
    pub fn replaced(&self) -> Vec<usize> {
        if self.keep_bad {
            return Vec::new();
        }
        let mut v = self.bad.as_ref().map(|b| b.all()).unwrap_or_default();
        v.extend(&self.user_bad);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Bad pixels from a complete mean pattern (`frames` averaged).
    pub fn set_mean(&mut self, mean: &[f32], det: (usize, usize), frames: usize) {
        let mut b = badpix::detect(mean, det.0, det.1, frames, badpix::DEFAULT_K);
        b.user = self.user_bad.clone();
        self.bad = Some(b);
    }
}

/// A frame with the replaced pixels set to the median of their valid 3x3 neighbours (the frame
/// itself when there is nothing to replace).
pub fn masked_frame<'a>(q: &Quant, v: &'a [f32], det: (usize, usize)) -> std::borrow::Cow<'a, [f32]> {
    let bad = q.replaced();
    if bad.is_empty() || v.len() != det.0 * det.1 {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut flags = vec![false; v.len()];
    for &i in &bad {
        if i < flags.len() {
            flags[i] = true;
        }
    }
    let mut out = v.to_vec();
    badpix::repair(&mut out, det.0, det.1, &bad, &flags);
    std::borrow::Cow::Owned(out)
}

/// The calibration lines of the metadata pane.
pub fn calib_lines(q: &Quant) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let c = &q.calibration;
    let mut v = Vec::new();
    if let Some((st, u)) = &c.r {
        v.push(Line::from(vec![
            Span::styled("scan step ".to_string(), key),
            Span::raw(format!("{} {u}/px", images::num(*st))),
        ]));
    }
    if let Some((st, u)) = &c.q {
        let a = c.alpha_mrad.map(|a| format!(" (alpha {} mrad)", images::num(a))).unwrap_or_default();
        v.push(Line::from(vec![
            Span::styled("detector ".to_string(), key),
            Span::raw(format!("{} {u}/px{a}", images::num(*st))),
        ]));
    }
    v
}

/// The detector radii, as collection angles when the detector step is known.
pub fn radii_text(q: &Quant, g: &Geometry) -> String {
    match &q.calibration.q {
        Some((st, u)) => {
            let f = |px: f32| images::num(px as f64 * st);
            format!("BF {}  ADF {}-{} {u}", f(g.bf_radius), f(g.adf_inner), f(g.adf_outer))
        }
        None => format!("BF {:.0}  ADF {:.0}-{:.0}", g.bf_radius, g.adf_inner, g.adf_outer),
    }
}

/// The bad-pixel line of the metadata pane.
pub fn bad_line(q: &Quant) -> Option<Line<'static>> {
    if let Some(b) = q.bad.as_ref().filter(|b| b.too_few_frames && q.user_bad.is_empty()) {
        return Some(Line::from(vec![
            Span::styled("bad px ".to_string(), Style::default().fg(Color::Cyan)),
            Span::raw(format!("{} ({} sampled)", badpix::TOO_FEW_FRAMES, b.frames)),
        ]));
    }
    let b = q.bad.as_ref().filter(|b| !b.all().is_empty())?;
    let what = if q.keep_bad { "kept (--keep-bad-pixels)" } else { "masked" };
    Some(Line::from(vec![
        Span::styled("bad px ".to_string(), Style::default().fg(Color::Cyan)),
        Span::raw(format!("{} hot, {} dead, {} yours: {what}", b.hot.len(), b.dead.len(), q.user_bad.len())),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frame_replaces_only_the_bad_pixels() {
        let mut q = Quant::default();
        let mut mean = vec![1.0f32; 25];
        mean[12] = 1000.0;
        q.set_mean(&mean, (5, 5), 10);
        assert_eq!(q.replaced(), vec![12]);
        let f = masked_frame(&q, &mean, (5, 5));
        assert_eq!(f[12], 1.0);
        assert_eq!(f.iter().filter(|&&v| v == 1.0).count(), 25);
        q.keep_bad = true;
        assert_eq!(masked_frame(&q, &mean, (5, 5))[12], 1000.0);
    }
}
