//! A scale bar of a nice length over a calibrated scan image.

use crate::compute::calib::{self, Calibration};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Span;
use ratatui::widgets::Paragraph;

/// A scale bar of a nice length (about 1/5 of the image) in `cells` columns showing `cols` scan
/// pixels of `step` `units`: the bar of `━` and its label, e.g. `━━━━ 10 nm`.
pub fn scale_bar_text(cells: u16, cols: usize, step: f64, units: &str) -> Option<String> {
    if cells < 8 || cols == 0 || !(step > 0.0) {
        return None;
    }
    let len = calib::nice_length(cols as f64 * step / 5.0);
    let per_cell = cols as f64 * step / cells as f64;
    let n = (len / per_cell).round().max(1.0) as usize;
    let label = if len >= 1.0 { format!("{len:.0}") } else { format!("{len}") };
    let t = format!("{} {label} {units}", "━".repeat(n));
    (t.chars().count() <= cells as usize).then_some(t)
}

/// Draw the scale bar over the bottom-left of a scan image's cells (calibrated scans only).
pub fn draw_scale_bar(c: &Calibration, f: &mut Frame, cells: Rect, scan_cols: usize) {
    let Some((step, units)) = &c.r else { return };
    let Some(t) = scale_bar_text(cells.width, scan_cols, *step, units) else { return };
    if cells.height == 0 {
        return;
    }
    let r = Rect { y: cells.y + cells.height - 1, height: 1, width: t.chars().count() as u16, ..cells };
    f.render_widget(Paragraph::new(Span::styled(t, Style::default().fg(Color::White).bg(Color::Black))), r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_bar_text_has_a_nice_length() {
        // 100 px of 0.5 nm in 40 cells: 10 nm = 8 cells
        assert_eq!(scale_bar_text(40, 100, 0.5, "nm").unwrap(), format!("{} 10 nm", "━".repeat(8)));
        assert!(scale_bar_text(4, 100, 0.5, "nm").is_none());
        assert!(scale_bar_text(40, 100, 0.0, "nm").is_none());
    }
}
