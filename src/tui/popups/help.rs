//! The key help (`?`): every key of the key table by scope, scrolled when it does not fit.

use crate::tui::app::State;
use crate::tui::keys;
use crate::tui::render::{block, centered};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

pub fn render(s: &State, top: usize, f: &mut Frame, area: Rect) {
    let mut lines = vec![];
    // spectrum data: the EELS keys and no diffraction-only ones
    let sections: &[(keys::Scope, &str)] = if s.eels.is_some() {
        &[(keys::Scope::Global, "everywhere"), (keys::Scope::Main, "main screen"), (keys::Scope::Eels, "EELS screen")]
    } else {
        &[(keys::Scope::Global, "everywhere"), (keys::Scope::Main, "main screen"), (keys::Scope::Fft, "FFT explorer")]
    };
    let hidden: Vec<&str> = if s.eels.is_some() {
        keys::KEYS.iter().filter(|b| b.action.diffraction_only()).map(|b| b.label).collect()
    } else {
        vec![]
    };
    for &(scope, title) in sections {
        lines.push(Line::from(Span::styled(title, Style::default().add_modifier(Modifier::BOLD).fg(Color::Yellow))));
        for (k, d, sc) in keys::help_lines() {
            if sc == scope && !hidden.contains(&k.as_str()) {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {k:<19}"), Style::default().fg(Color::Cyan)),
                    Span::raw(d),
                ]));
            }
        }
    }
    lines.push(Line::from("  mouse              a click on an overview moves the cursor"));
    // what does not fit scrolls (up/down), the bottom border says where
    let rows = (area.height as usize).saturating_sub(2);
    let top = top.min(lines.len().saturating_sub(rows));
    let more = lines.len() > rows;
    let shown: Vec<Line> = lines.iter().skip(top).take(rows).cloned().collect();
    let h = (shown.len() as u16 + 2).min(area.height);
    let w = 90.min(area.width);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    let mut b = block(" help (any key closes) ".into());
    if more {
        let end = (top + rows).min(lines.len());
        b = b.title_bottom(Line::from(format!(" lines {}-{end} of {}: up/down scroll ", top + 1, lines.len())));
    }
    f.render_widget(Paragraph::new(shown).block(b), r);
}
