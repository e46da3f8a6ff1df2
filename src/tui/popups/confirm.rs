//! A yes/no question (quit, convert, compute the FFT, resume): its text in a centred box.

use crate::tui::render::{block, centered};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// The question box, centred in `area`.
pub fn render(text: &str, f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = text.lines().map(|l| Line::from(l.to_string())).collect();
    let w = (lines.iter().map(|l| l.width()).max().unwrap_or(20) as u16 + 4).min(area.width.saturating_sub(2));
    // rows after wrapping (a wrapped line may take one more row at a word boundary)
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner) + usize::from(l.width() > inner)).sum();
    let h = (rows as u16 + 2).min(area.height);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(" confirm ".into()).style(Style::default().fg(Color::Yellow))),
        r,
    );
}
