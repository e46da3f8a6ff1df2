//! Layout, image preparation (`prepare`, may be slow, runs before a draw) and the pure
//! `render(&State, &mut Frame)`.

use super::app::{Popup, Screen, State, kind_label};
use super::images::{self, Mapping, PaneImage};
use super::keys;
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::overview::DetectorKind;
use crate::jobs::JobState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};

pub struct Areas {
    pub title: Rect,
    pub meta: Rect,
    pub panes: [Rect; 3],
    pub info: Rect,
    pub jobs: Rect,
    pub footer: Rect,
}

pub fn layout(area: Rect, screen: Screen) -> Areas {
    let [title, body, jobs, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(5), Constraint::Length(1)])
            .areas(area);
    match screen {
        Screen::Main => {
            let mw = (area.width / 4).clamp(26, 40);
            let [meta, a, b] =
                Layout::horizontal([Constraint::Length(mw), Constraint::Fill(1), Constraint::Fill(1)]).areas(body);
            Areas { title, meta, panes: [a, b, Rect::default()], info: Rect::default(), jobs, footer }
        }
        Screen::Fft => {
            let [top, info] = Layout::vertical([Constraint::Fill(1), Constraint::Length(3)]).areas(body);
            let [a, b, c] = Layout::horizontal([Constraint::Fill(1); 3]).areas(top);
            Areas { title, meta: Rect::default(), panes: [a, b, c], info, jobs, footer }
        }
    }
}

fn inner(r: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(r)
}

/// Build a pane image for `vals` (`sw`x`sh`) inside `area`, with overlays drawn by `ov`.
fn pane(
    s: &State,
    vals: &[f32],
    sw: usize,
    sh: usize,
    area: Rect,
    d: &DisplayParams,
    ov: impl Fn(&mut images::Raster, &Mapping),
) -> Option<(PaneImage, Rect)> {
    if sw == 0 || sh == 0 || area.width == 0 || area.height == 0 || vals.len() != sw * sh {
        return None;
    }
    let (mw, mh) = images::pixel_box(s.graphics, Size::new(area.width, area.height), &s.picker);
    let (w, h) = images::fit(sw, sh, mw, mh);
    let mut r = images::raster(vals, sw, sh, w, h, d);
    let m = Mapping { sw, sh, w, h };
    ov(&mut r, &m);
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
    images::finish(s.graphics, r, Size::new(cells.width, cells.height), &s.picker).map(|i| (i, cells))
}

/// Prepare every image the next `render` needs (only those whose content or area changed).
pub fn prepare(s: &mut State, area: Rect) {
    let a = layout(area, s.screen);
    match s.screen {
        Screen::Main => {
            let ov_area = inner(a.panes[0]);
            let key = s.main.ov_version;
            if s.prepared.overview.as_ref().is_none_or(|(k, r, _)| *k != key || *r != ov_area) {
                s.prepared.overview = None;
                s.prepared.overview_cells = None;
                if let Some(o) = &s.main.overviews {
                    let vals = o.image(s.main.kind);
                    let mut d = s.main.overview_display;
                    if matches!(s.main.kind, DetectorKind::DpcAngle) {
                        d.colormap = Colormap::Twilight;
                    }
                    let (cur, roi) = (s.main.cursor, s.main.roi);
                    if let Some((img, cells)) = pane(s, &vals, o.scan_cols, o.scan_rows, ov_area, &d, |r, m| {
                        if let Some((a, b)) = roi {
                            images::draw_rect(r, m, a, b, images::ROI);
                        }
                        images::draw_cursor(r, m, cur.0, cur.1);
                    }) {
                        s.prepared.overview = Some((key, ov_area, img));
                        s.prepared.overview_cells = Some(cells);
                    }
                }
            }
            let fr_area = inner(a.panes[1]);
            let key = s.main.frame_version;
            if s.prepared.frame.as_ref().is_none_or(|(k, r, _)| *k != key || *r != fr_area) {
                s.prepared.frame = None;
                let (dr, dc) = s.ds.det();
                let vals: Option<&[f32]> = match (&s.main.roi_mean, &s.main.frame) {
                    (Some((v, _)), _) => Some(v),
                    (None, Some((_, f))) => Some(f),
                    _ => None,
                };
                if let Some(vals) = vals {
                    let g = s.main.geometry.clone();
                    let kind = s.main.kind;
                    if let Some((img, _)) = pane(s, vals, dc, dr, fr_area, &s.main.frame_display, |r, m| match kind {
                        DetectorKind::Adf => {
                            images::draw_circle(r, m, g.center, g.adf_inner, images::ADF_RING);
                            images::draw_circle(r, m, g.center, g.adf_outer, images::ADF_RING);
                        }
                        DetectorKind::Sum => images::draw_circle(r, m, g.center, 0.0, images::BF_RING),
                        _ => images::draw_circle(r, m, g.center, g.bf_radius, images::BF_RING),
                    }) {
                        s.prepared.frame = Some((key, fr_area, img));
                    }
                }
            }
        }
        Screen::Fft => {
            let Some(src) = s.fft.source.clone() else {
                s.prepared.fft = [None, None, None];
                return;
            };
            let [qr, qc, kr, kc] = src.shape();
            let st = &s.fft;
            let key = st.version;
            let (q, k, half, rev) = (st.q, st.k, st.half, st.reverse);
            let mut dpow = s.main.frame_display;
            dpow.scale = Scale::Log;
            let dphase = DisplayParams { scale: Scale::Linear, colormap: Colormap::Twilight, clip: (0.0, 100.0) };
            let (iw, ih) = if rev { (qc, qr) } else { (kc, kr) };
            // normal: power over Q (Q cursor), |G| and arg G over K at Q
            // reverse: |G| over K at Q (K cursor), |G| and arg G over Q at K
            let first =
                if rev { (st.det_amp.clone(), kc, kr, s.main.frame_display) } else { (st.power.clone(), qc, qr, dpow) };
            let specs: [(Vec<f32>, usize, usize, DisplayParams); 3] =
                [first, (st.amp.clone(), iw, ih, s.main.frame_display), (st.phase.clone(), iw, ih, dphase)];
            for (i, (vals, w, h, d)) in specs.into_iter().enumerate() {
                let ar = inner(a.panes[i]);
                if s.prepared.fft[i].as_ref().is_some_and(|(kk, r, _)| *kk == key && *r == ar) {
                    continue;
                }
                s.prepared.fft[i] = pane(s, &vals, w, h, ar, &d, |r, m| {
                    if i != 0 {
                        return;
                    }
                    let (c, (nr, nc)) = if rev { (k, (kr, kc)) } else { (q, (qr, qc)) };
                    if half > 0 {
                        images::draw_rect(
                            r,
                            m,
                            (c.0.saturating_sub(half), c.1.saturating_sub(half)),
                            ((c.0 + half).min(nr - 1), (c.1 + half).min(nc - 1)),
                            images::ROI,
                        );
                    }
                    images::draw_cursor(r, m, c.0, c.1);
                })
                .map(|(img, _)| (key, ar, img));
            }
        }
    }
}

fn block(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}

fn fmt_bytes(b: f64) -> String {
    humansize::format_size(b.max(0.0) as u64, humansize::BINARY)
}

fn fmt_secs(s: f64) -> String {
    if s >= 3600.0 {
        format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.0}s")
    }
}

pub fn render(s: &State, f: &mut Frame) {
    let area = f.area();
    let a = layout(area, s.screen);
    // title
    let screen = match s.screen {
        Screen::Main => "main",
        Screen::Fft => "FFT explorer",
    };
    let mut t = vec![
        Span::styled(" emdtui ", Style::default().add_modifier(Modifier::BOLD).fg(Color::Black).bg(Color::Cyan)),
        Span::raw(format!(" {}{} ", s.file_name, if s.demo { " (demo)" } else { "" })),
        Span::styled(format!("[{screen}] "), Style::default().fg(Color::Yellow)),
    ];
    if let Some(l) = s.follow.line(s.ds.scan().positions()) {
        t.push(Span::styled(format!("{l} "), Style::default().fg(Color::LightMagenta).add_modifier(Modifier::BOLD)));
    }
    t.push(Span::styled(format!("graphics: {} ", s.graphics.name()), Style::default().fg(Color::DarkGray)));
    if !s.status.is_empty() {
        t.push(Span::styled(format!("| {}", s.status), Style::default().fg(Color::Green)));
    } else if let Some(h) = &s.hint {
        t.push(Span::styled(format!("| {h}"), Style::default().fg(Color::DarkGray)));
    }
    f.render_widget(Paragraph::new(Line::from(t)), a.title);
    match s.screen {
        Screen::Main => render_main(s, f, &a),
        Screen::Fft => render_fft(s, f, &a),
    }
    render_jobs(s, f, a.jobs);
    // footer from the key table
    let mut spans = Vec::new();
    for (k, d) in keys::footer(s.screen == Screen::Fft) {
        spans.push(Span::styled(format!(" {k}"), Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD)));
        spans.push(Span::raw(format!(" {d} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), a.footer);
    match &s.popup {
        Popup::None => {}
        Popup::Help => render_help(s, f, area),
        Popup::Confirm(_, text) => {
            let lines: Vec<Line> = text.lines().map(|l| Line::from(l.to_string())).collect();
            let w = (lines.iter().map(|l| l.width()).max().unwrap_or(20) as u16 + 4).min(area.width.saturating_sub(2));
            let h = (lines.len() as u16 + 2).min(area.height);
            let r = centered(area, w, h);
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" confirm ".into()).style(Style::default().fg(Color::Yellow))),
                r,
            );
        }
    }
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

fn meta_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let mut v = Vec::new();
    for (k, val) in &s.info.metadata {
        let val = if k == "file" { s.file_name.clone() } else { val.clone() };
        v.push(Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(val)]));
    }
    let ov = match (&s.main.overviews, &s.main.overview_job) {
        (Some(o), Some(j)) if o.complete && j.message() == "loaded from cache" => "complete (from cache)".to_string(),
        (Some(o), _) if o.complete => "complete".to_string(),
        (_, Some(j)) if !j.state().finished() => format!("computing {:.0}%", j.fraction() * 100.0),
        (Some(o), _) => format!("{} of {} positions", o.positions_done, o.scan_rows * o.scan_cols),
        _ => "none".into(),
    };
    v.push(Line::from(vec![Span::styled(format!("{} ", "overview"), key), Span::raw(ov)]));
    if s.is_mib {
        let emd = crate::ops::convert::default_output(&s.path);
        let st = if emd.exists() { "present" } else { "not converted" };
        v.push(Line::from(vec![Span::styled(format!("{} ", "EMD"), key), Span::raw(st.to_string())]));
    }
    if let Some(n) = &s.cache_note {
        v.push(Line::from(vec![Span::styled("caches ".to_string(), key), Span::raw(n.clone())]));
    }
    let fft = if s.fft.source.is_some() { "loaded" } else { "none" };
    v.push(Line::from(vec![Span::styled(format!("{} ", "FFT"), key), Span::raw(fft.to_string())]));
    for w in &s.info.warnings {
        v.push(Line::from(Span::styled(format!("! {w}"), Style::default().fg(Color::Red))));
    }
    v.push(Line::raw(""));
    let g = &s.main.geometry;
    v.push(Line::from(vec![
        Span::styled(format!("{} ", "detector"), key),
        Span::raw(kind_label(s.main.kind).to_string()),
    ]));
    v.push(Line::from(vec![
        Span::styled(format!("{} ", "centre"), key),
        Span::raw(format!("{:.0}, {:.0}", g.center.0, g.center.1)),
    ]));
    v.push(Line::from(vec![
        Span::styled(format!("{} ", "radii"), key),
        Span::raw(format!("BF {:.0}  ADF {:.0}-{:.0}", g.bf_radius, g.adf_inner, g.adf_outer)),
    ]));
    v.push(Line::from(vec![
        Span::styled(format!("{} ", "display"), key),
        Span::raw(format!("{} / {}", s.main.frame_display.scale.name(), s.main.frame_display.colormap.name())),
    ]));
    v
}

fn render_main(s: &State, f: &mut Frame, a: &Areas) {
    f.render_widget(Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(block(" dataset ".into())), a.meta);
    // overview
    let sc = s.ds.scan();
    let val = s.main.overviews.as_ref().and_then(|o| {
        let p = s.pos();
        let v = o.image(s.main.kind).get(p).copied()?;
        v.is_finite().then_some(v)
    });
    let t = format!(
        " {} overview  ({}, {}){} ",
        kind_label(s.main.kind),
        s.main.cursor.0,
        s.main.cursor.1,
        val.map(|v| format!(" = {v:.4}")).unwrap_or_default()
    );
    f.render_widget(block(t), a.panes[0]);
    let ia = inner(a.panes[0]);
    match &s.prepared.overview {
        Some((_, _, img)) => images::render_pane(img, ia, f.buffer_mut()),
        None => f.render_widget(Paragraph::new(format!("computing overview of {} x {} ...", sc.rows, sc.cols)), ia),
    }
    // frame
    let t = match (&s.main.roi_mean, &s.main.frame) {
        (Some((_, n)), _) => format!(" ROI mean diffraction ({n} positions) "),
        (None, Some((p, _))) => {
            let (r, c) = (p / sc.cols.max(1), p % sc.cols.max(1));
            let lag = if *p != s.pos() { " loading..." } else { "" };
            format!(" frame ({r}, {c}) #{p}{lag} ")
        }
        _ => " frame (loading...) ".into(),
    };
    f.render_widget(block(t), a.panes[1]);
    if let Some((_, _, img)) = &s.prepared.frame {
        images::render_pane(img, inner(a.panes[1]), f.buffer_mut());
    }
}

fn render_fft(s: &State, f: &mut Frame, a: &Areas) {
    let st = &s.fft;
    let Some(src) = &s.fft.source else {
        for p in &a.panes[..3] {
            f.render_widget(block(" FFT ".into()), *p);
        }
        let msg = match &s.fft.job {
            Some(j) if !j.state().finished() => format!("computing the FFT: {:.0}%", j.fraction() * 100.0),
            _ if s.is_mib => "No FFT yet. Press F: 4D FFT requires conversion to EMD.".into(),
            _ => "No FFT yet. Press F to compute it.".into(),
        };
        f.render_widget(Paragraph::new(msg).block(block(" FFT explorer ".into())), a.info);
        return;
    };
    let [qr, qc, kr, kc] = src.shape();
    let (dq, dk) = ((st.q.0 as i64 - qr as i64 / 2, st.q.1 as i64 - qc as i64 / 2), st.k);
    let titles = if st.reverse {
        [
            format!(" |G| over detector at Q=({}, {}), K=({}, {}) ", dq.0, dq.1, dk.0, dk.1),
            format!(" |G| over Q at K=({}, {}) ", dk.0, dk.1),
            format!(" arg G over Q at K=({}, {}) ", dk.0, dk.1),
        ]
    } else {
        [
            format!(" power over Q, Q=({}, {}) ", dq.0, dq.1),
            format!(" |G| over detector at Q=({}, {}) ", dq.0, dq.1),
            " arg G (cyclic) ".to_string(),
        ]
    };
    for (i, title) in titles.into_iter().enumerate() {
        f.render_widget(block(title), a.panes[i]);
        if let Some((_, _, img)) = &s.prepared.fft[i] {
            images::render_pane(img, inner(a.panes[i]), f.buffer_mut());
        }
    }
    let mut lines = vec![Line::from(format!(
        "{}   Q {}x{}, K {}x{}   region {}x{}   {}",
        src.label(),
        qr,
        qc,
        kr,
        kc,
        2 * st.half + 1,
        2 * st.half + 1,
        if st.reverse { "reverse view (arrows move K)" } else { "arrows move Q" }
    ))];
    if let Some(e) = &st.error {
        lines.push(Line::from(Span::styled(e.clone(), Style::default().fg(Color::Red))));
    }
    f.render_widget(Paragraph::new(lines).block(block(" FFT explorer ".into())), a.info);
}

fn render_jobs(s: &State, f: &mut Frame, area: Rect) {
    let jobs = s.jobs.table.list();
    f.render_widget(block(format!(" jobs ({} running) ", s.jobs.table.running())), area);
    let ia = inner(area);
    // newest first, at most as many as fit
    let n = jobs.len();
    let rows: Vec<(usize, &std::sync::Arc<crate::jobs::Progress>)> =
        jobs.iter().enumerate().rev().take(ia.height as usize).collect();
    for (row, (i, j)) in rows.iter().enumerate() {
        let y = ia.y + row as u16;
        let sel = *i == s.jobs.selected.min(n.saturating_sub(1));
        let st = j.state();
        let name_w = 12u16.min(ia.width);
        let mark = if sel { "›" } else { " " };
        let color = match st {
            JobState::Running | JobState::Queued => Color::Yellow,
            JobState::Done => Color::Green,
            JobState::Failed => Color::Red,
            JobState::Cancelled => Color::DarkGray,
        };
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::raw(mark),
                Span::styled(format!("{:<11}", j.name), Style::default().fg(color)),
            ])),
            Rect::new(ia.x, y, name_w, 1),
        );
        let rest = ia.width.saturating_sub(name_w);
        let gauge_w = (rest / 3).max(10).min(rest);
        let frac = if st == JobState::Done { 1.0 } else { j.fraction() };
        f.render_widget(
            Gauge::default()
                .gauge_style(Style::default().fg(color))
                .ratio(frac.clamp(0.0, 1.0))
                .label(format!("{:.0}%", frac * 100.0)),
            Rect::new(ia.x + name_w, y, gauge_w, 1),
        );
        let detail = if st == JobState::Failed {
            format!(" failed: {}", j.message())
        } else if s.deterministic {
            format!(" {}  {}/{}", st.name(), j.done(), j.total())
        } else if st.finished() {
            format!(" {}  {}/s  in {}", st.name(), fmt_bytes(j.throughput()), fmt_secs(j.elapsed_s()))
        } else {
            let eta = j.eta_s().map(fmt_secs).unwrap_or("-".into());
            format!(" {}  {}/s  ETA {}  {}", st.name(), fmt_bytes(j.throughput()), eta, fmt_secs(j.elapsed_s()))
        };
        f.render_widget(
            Paragraph::new(Span::styled(detail, Style::default().fg(color))),
            Rect::new(ia.x + name_w + gauge_w, y, rest.saturating_sub(gauge_w), 1),
        );
    }
    if jobs.is_empty() {
        f.render_widget(Paragraph::new(Span::styled("no jobs", Style::default().fg(Color::DarkGray))), ia);
    }
}

fn render_help(_s: &State, f: &mut Frame, area: Rect) {
    let mut lines = vec![];
    for (scope, title) in
        [(keys::Scope::Global, "everywhere"), (keys::Scope::Main, "main screen"), (keys::Scope::Fft, "FFT explorer")]
    {
        lines.push(Line::from(Span::styled(title, Style::default().add_modifier(Modifier::BOLD).fg(Color::Yellow))));
        for (k, d, sc) in keys::help_lines() {
            if sc == scope {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {k:<19}"), Style::default().fg(Color::Cyan)),
                    Span::raw(d),
                ]));
            }
        }
    }
    lines.push(Line::from("  mouse    click on the overview moves the cursor"));
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = 90.min(area.width);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(block(" help (any key closes) ".into())), r);
}
