//! The DPC rotation prompt (`R`): type a number of degrees, Enter applies, Esc cancels.

use crate::tui::app::{Popup, State};
use crate::tui::dpc::{reorient, yes_no};
use crate::tui::keys::Action;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

/// The rotation typed in the prompt, in degrees in [0, 360); an error naming the text when it
/// is not a finite number.
pub fn parse_rotation(text: &str) -> Result<f64, String> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v.rem_euclid(360.0)),
        _ if t.is_empty() => Err("rotation: type a number of degrees (Esc cancels)".into()),
        _ => Err(format!("rotation {t:?} is not a number of degrees (e.g. -12.5)")),
    }
}

/// The rotation prompt (`R`): typing, Backspace, Enter applies the number (the flip stays as
/// shown; an error in the status line keeps the prompt open), Esc cancels.
pub fn prompt(s: &mut State, a: Action) {
    let Popup::Rotation(text) = &mut s.popup else { return };
    match a {
        Action::PromptChar(c) if text.len() < 16 => text.push(c),
        Action::PromptBack => {
            text.pop();
        }
        Action::No => {
            s.popup = Popup::None;
            s.status = "rotation unchanged".into();
        }
        Action::Yes => match parse_rotation(text) {
            Err(e) => s.status = e,
            Ok(deg) => {
                s.popup = Popup::None;
                let flip = s.dpc.outcome.as_ref().map(|o| o.result.flip).unwrap_or(false);
                s.dpc.rotation = Some(deg);
                s.dpc.flip = Some(s.dpc.flip.unwrap_or(flip));
                reorient(s);
                s.status = match (&s.dpc.outcome, &s.dpc.error) {
                    (_, Some(e)) => format!("DPC: {e}"),
                    (Some(o), None) => format!(
                        "DPC rotation {:.1} deg (typed), flip {}, curl ratio {:.3}",
                        o.result.rotation_deg,
                        yes_no(o.result.flip),
                        o.result.curl_ratio
                    ),
                    (None, None) => String::new(),
                };
            }
        },
        _ => {}
    }
}

/// The rotation prompt box.
pub fn render(text: &str, f: &mut Frame, r: Rect) {
    use ratatui::widgets::{Block, Borders, Clear};
    let lines = vec![Line::from(format!("degrees: {text}_")), Line::from("Enter applies, Esc cancels")];
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" DPC rotation "))
            .style(Style::default().fg(Color::Yellow)),
        r,
    );
}
