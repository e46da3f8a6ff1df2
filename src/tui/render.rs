//! The building blocks of every screen: the layout of the areas, image panes (a raster fitted to
//! its area with its readout, drawn in a border with its colour bar and statistics) and the
//! bordered block. The screens themselves are drawn by `draw`.

use super::app::{Screen, State, ViewLayout};
use super::images::{self, Mapping, Readout, Shown};
use crate::compute::display::{self, DisplayParams};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

pub struct Areas {
    pub title: Rect,
    pub meta: Rect,
    /// Main screen: the virtual-image panes (one, or three in the three-image layout).
    pub views: [Rect; 3],
    /// Main screen: the diffraction frame / diffractogram pane.
    pub right: Rect,
    /// FFT explorer: its three image panes.
    pub panes: [Rect; 3],
    pub info: Rect,
    pub jobs: Rect,
    pub footer: Rect,
    /// Main screen: the navigation image (`--nav`; set by `nav::place`).
    pub nav: Rect,
}

pub fn layout(area: Rect, screen: Screen, main: ViewLayout) -> Areas {
    let [title, body, jobs, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(5), Constraint::Length(1)])
            .areas(area);
    let none = Rect::default();
    let mut a = Areas {
        title,
        meta: none,
        views: [none; 3],
        right: none,
        panes: [none; 3],
        info: none,
        jobs,
        footer,
        nav: none,
    };
    match (screen, main) {
        (Screen::Main, ViewLayout::Single | ViewLayout::Dpc | ViewLayout::Tcbf | ViewLayout::Ptycho) => {
            let mw = (area.width / 4).clamp(26, 40);
            let [meta, v, b] =
                Layout::horizontal([Constraint::Length(mw), Constraint::Fill(1), Constraint::Fill(1)]).areas(body);
            (a.meta, a.views[0], a.right) = (meta, v, b);
        }
        (Screen::Main, ViewLayout::Three) => {
            let [v0, v1, v2, b] = Layout::horizontal([Constraint::Fill(1); 4]).areas(body);
            (a.views, a.right) = ([v0, v1, v2], b);
        }
        (Screen::Fft, _) => {
            let [top, info] = Layout::vertical([Constraint::Fill(1), Constraint::Length(4)]).areas(body);
            a.panes = Layout::horizontal([Constraint::Fill(1); 3]).areas(top);
            a.info = info;
        }
    }
    a
}

pub(crate) fn inner(r: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(r)
}

/// An image pane's inside: the image area and, below it, the one-line colour-bar strip (none
/// when the pane is too low for both).
pub(crate) fn image_area(pane: Rect) -> (Rect, Rect) {
    let i = inner(pane);
    if i.height >= 3 {
        (Rect { height: i.height - 1, ..i }, Rect { y: i.y + i.height - 1, height: 1, ..i })
    } else {
        (i, Rect::default())
    }
}

/// Build a pane image for `vals` (`sw`x`sh`) inside `area`, with overlays drawn by `ov`, and its
/// readout (statistics of all of `vals`, the display range the picture uses).
pub(crate) fn pane(
    s: &State,
    vals: &[f32],
    sw: usize,
    sh: usize,
    area: Rect,
    d: &DisplayParams,
    ov: impl Fn(&mut images::Raster, &Mapping),
) -> Option<Shown> {
    if sw == 0 || sh == 0 || area.width == 0 || area.height == 0 || vals.len() != sw * sh {
        return None;
    }
    let (mw, mh) = images::pixel_box(s.graphics, Size::new(area.width, area.height), &s.picker);
    let (w, h) = images::fit(sw, sh, mw, mh);
    let (mut r, range) = images::raster_range(vals, sw, sh, w, h, d);
    let m = Mapping { sw, sh, w, h };
    ov(&mut r, &m);
    let readout = Readout { stats: display::stats(vals), range, clip: d.clip, colormap: d.colormap };
    shown(s, r, area, readout)
}

/// A pane image for the overlaid raster `r` inside `area`, with its readout.
pub(crate) fn shown(s: &State, r: images::Raster, area: Rect, readout: Readout) -> Option<Shown> {
    let (w, h) = (r.w, r.h);
    // cells actually covered
    let (cw, ch) = match s.graphics {
        images::Graphics::Braille => (w.div_ceil(2), h.div_ceil(4)),
        images::Graphics::Protocol(p) if p != ratatui_image::picker::ProtocolType::Halfblocks => {
            let f = s.picker.font_size();
            (w.div_ceil(f.width as usize), h.div_ceil(f.height as usize))
        }
        _ => (w, h.div_ceil(2)),
    };
    let cells = Rect::new(area.x, area.y, (cw as u16).min(area.width), (ch as u16).min(area.height));
    images::finish(s.graphics, r, Size::new(cells.width, cells.height), &s.picker).map(|img| Shown {
        img,
        cells,
        readout,
    })
}

/// An image pane: the border with `title`, the image (or `placeholder` while there is none), the
/// colour bar right under it and the statistics under that (in the bottom border when the pane
/// has no row to spare).
pub(crate) fn image_pane(f: &mut Frame, pane: Rect, title: String, shown: Option<&Shown>, placeholder: Option<String>) {
    let (ia, strip) = image_area(pane);
    let Some(v) = shown else {
        f.render_widget(block(title), pane);
        if let Some(p) = placeholder {
            f.render_widget(Paragraph::new(p), ia);
        }
        return;
    };
    // the bar directly under the image; then the statistics, if rows are left
    let bar = if strip.height > 0 { Rect { y: v.cells.y + v.cells.height, ..strip } } else { strip };
    let bottom = strip.y + strip.height;
    let free = bottom.saturating_sub(bar.y + bar.height) as usize;
    let mut b = block(title);
    let mut stats_rows = Vec::new();
    if let Some(st) = v.readout.stats.as_ref() {
        let rows = images::stats_lines(st, ia.width as usize, free);
        if rows.len() <= free && bar.height > 0 {
            stats_rows = rows;
        } else {
            let w = pane.width.saturating_sub(4) as usize;
            let line = images::stats_lines(st, w, 1).remove(0);
            b = b.title_bottom(Line::from(format!(" {line} ")));
        }
    }
    f.render_widget(b, pane);
    images::render_pane(&v.img, ia, f.buffer_mut());
    f.render_widget(images::ColourBar(&v.readout), bar);
    for (i, l) in stats_rows.into_iter().enumerate() {
        let r = Rect { y: bar.y + 1 + i as u16, height: 1, ..bar };
        f.render_widget(Paragraph::new(Span::styled(l, Style::default().fg(Color::Gray))), r);
    }
}

pub(crate) fn block(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}

pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}
