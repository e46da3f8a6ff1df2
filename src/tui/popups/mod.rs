//! The popups over a screen, one file each: the key help, a yes/no question and the DPC
//! rotation prompt. What a popup does with a key is in `app::update` (a popup takes keys first).

pub mod confirm;
pub mod fft_estimate;
pub mod help;
pub mod rotation;

use crate::tui::app::{Popup, State};
use crate::tui::render::centered;
use ratatui::Frame;

/// Draw the open popup (if any) over `f`.
pub fn render(s: &State, f: &mut Frame) {
    let area = f.area();
    match &s.popup {
        Popup::None => {}
        Popup::Help(top) => help::render(s, *top, f, area),
        Popup::Rotation(text) => rotation::render(text, f, centered(area, 44, 4)),
        Popup::Confirm(_, text) => confirm::render(text, f, area),
    }
}
