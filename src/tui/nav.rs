//! The navigation pane (`emdtui FILE --nav PATH`): the navigation image beside the overview, the
//! scan cursor and the ROI drawn on it, its scale bar from the Nion calibration; a click on it
//! moves the cursor. When its shape differs from the scan, its title and the status line name
//! both shapes, and the cursor maps to the same fraction of the image.

use super::app::{Screen, State, ViewLayout};
use super::images;
use super::render::{Areas, image_area, image_pane, pane};
use super::view_state::nav::NavView;
use super::widgets::scale_bar::draw_scale_bar;
use crate::ops::nav::NavForScan;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// Show `nav` beside the overview: the status line says what it is, or how its shape differs
/// from the scan; its scan step calibrates the scan when the scan has none and the shapes match.
pub fn attach(s: &mut State, nav: NavForScan) {
    let i = &nav.image;
    let name = i.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    s.status = match &nav.mismatch {
        Some(m) => m.replacen(&i.path.display().to_string(), &name, 1),
        None => format!("navigation image {name}: {} x {} {}", i.rows, i.cols, i.dtype),
    };
    if nav.mismatch.is_none() && s.quant.calibration.r.is_none() && nav.calibration.r.is_some() {
        s.quant.calibration.r = nav.calibration.r.clone();
    }
    s.nav = Some(NavView::new(nav));
    s.main.ov_version += 1;
    s.dirty = true;
}

/// Give the navigation pane the left half of the overview's place (main screen, one-image
/// layout and the EELS screen).
pub fn place(a: &mut Areas, s: &State) {
    if s.nav.is_none() || s.screen != Screen::Main || s.main.layout != ViewLayout::Single {
        return;
    }
    let [n, v] = Layout::horizontal([Constraint::Fill(1); 2]).areas(a.views[0]);
    (a.nav, a.views[0]) = (n, v);
}

/// The pane's picture, with the cursor and the ROI (only when its content or area changed).
pub fn prepare(s: &mut State, a: &Areas) {
    let Some(v) = &s.nav else { return };
    let ar = image_area(a.nav).0;
    let key = s.main.ov_version;
    if ar.is_empty() {
        s.nav.as_mut().expect("nav").prepared = None;
        return;
    }
    if v.prepared.as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
        return;
    }
    let scan = (s.ds.scan().rows, s.ds.scan().cols);
    let cur = v.to_image(s.main.cursor, scan);
    let roi = s.main.roi.map(|(p, q)| (v.to_image(p, scan), v.to_image(q, scan)));
    let img = &v.nav.image;
    let shown = pane(s, &img.data, img.cols, img.rows, ar, &s.main.overview_display, |r, m| {
        if let Some((p, q)) = roi {
            images::draw_rect(r, m, p, q, images::ROI);
        }
        images::draw_cursor(r, m, cur.0, cur.1);
    });
    s.nav.as_mut().expect("nav").prepared = shown.map(|sh| (key, ar, sh));
}

/// Draw the pane (pure).
pub fn render(s: &State, f: &mut Frame, a: &Areas) {
    let Some(v) = &s.nav else { return };
    if a.nav.is_empty() {
        return;
    }
    let i = &v.nav.image;
    let what = i.title.clone().unwrap_or_else(|| "navigation".into());
    let scan = s.ds.scan();
    let title = match &v.nav.mismatch {
        Some(_) => {
            let full = format!(" {what} {}x{} ≠ scan {}x{} ", i.rows, i.cols, scan.rows, scan.cols);
            if full.chars().count() + 2 <= a.nav.width as usize {
                full
            } else {
                format!(" {}x{}≠{}x{} ", i.rows, i.cols, scan.rows, scan.cols)
            }
        }
        None => {
            let (r, c) = v.to_image(s.main.cursor, (scan.rows, scan.cols));
            let val = i.data.get(r * i.cols + c).filter(|x| x.is_finite());
            format!(" {what} ({r}, {c}){} ", val.map(|x| format!(" = {}", images::num(*x as f64))).unwrap_or_default())
        }
    };
    let shown = v.prepared.as_ref().map(|(_, _, sh)| sh);
    image_pane(f, a.nav, title, shown, None);
    if let Some(sh) = shown {
        draw_scale_bar(&v.nav.calibration, f, sh.cells, i.cols);
    }
    if let Some(m) = &v.nav.mismatch {
        // the message on the pane's last row, over the statistics
        let r = image_area(a.nav).1;
        let short = m.rsplit_once(": ").map(|(_, t)| t).unwrap_or(m);
        if r.height > 0 {
            f.render_widget(
                ratatui::widgets::Paragraph::new(Line::from(Span::styled(
                    short.to_string(),
                    Style::default().fg(Color::Red),
                ))),
                r,
            );
        }
    }
}

/// A click on the navigation image moves the scan cursor there; false when it is not on it.
pub fn click(s: &mut State, col: u16, row: u16) -> bool {
    let Some(r) = s.nav.as_ref().and_then(|v| v.prepared.as_ref()).map(|(_, _, sh)| sh.cells) else {
        return false;
    };
    if r.width == 0 || r.height == 0 || col < r.x || row < r.y || col >= r.x + r.width || row >= r.y + r.height {
        return false;
    }
    let (rows, cols) = (s.ds.scan().rows, s.ds.scan().cols);
    let y = ((row - r.y) as usize * rows / r.height as usize).min(rows - 1);
    let x = ((col - r.x) as usize * cols / r.width as usize).min(cols - 1);
    s.set_cursor(y, x);
    true
}
