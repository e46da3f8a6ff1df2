//! Drawing a frame: [`prepare`] makes the images the next frame needs (only those whose content
//! or area changed), [`render`] draws the screen from the state (pure).

use super::app::{Screen, State, ViewLayout, kind_label};
use super::images::{self};
use super::keys;
use super::render::{Areas, block, image_area, image_pane, inner, layout, pane};
use super::widgets::quant::{bad_line, calib_lines, masked_frame, radii_text};
use super::widgets::scale_bar::draw_scale_bar;
use crate::compute::diffractogram;
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::overview::DetectorKind;
use crate::jobs::JobState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Wrap};

/// Prepare every image the next `render` needs (only those whose content or area changed).
pub fn prepare(s: &mut State, area: Rect) {
    let mut a = layout(area, s.screen, s.main.layout);
    super::nav::place(&mut a, s);
    super::nav::prepare(s, &a);
    if let Some(i) = &mut s.inspector {
        i.page = super::inspector::page(area);
    }
    match s.screen {
        Screen::Main if s.eels.is_some() => super::eels::prepare(s, &a),
        Screen::Main if s.main.layout == ViewLayout::Dpc => super::dpc::prepare(s, &a),
        Screen::Main if s.main.layout == ViewLayout::Tcbf => super::tcbf::prepare(s, &a),
        Screen::Main if s.main.layout == ViewLayout::Ptycho => super::ptycho::prepare(s, &a),
        Screen::Main => {
            prepare_views(s, &a);
            prepare_right(s, &a);
        }
        Screen::Fft => prepare_fft(s, &a),
    }
}

/// The virtual-image panes, with the cursor and the ROI drawn on them.
fn prepare_views(s: &mut State, a: &Areas) {
    let kinds = s.main.view_kinds();
    let key = s.main.ov_version;
    for i in 0..3 {
        let ar = image_area(a.views[i]).0;
        if i >= kinds.len() || ar.is_empty() {
            s.prepared.views[i] = None;
            continue;
        }
        if s.prepared.views[i].as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
            continue;
        }
        s.prepared.views[i] = None;
        let Some(o) = &s.main.overviews else { continue };
        // the custom detector, when one is picked, takes the first pane
        let vals = match (i, &s.main.detect.det, &s.main.detect.image) {
            (0, Some(_), Some(v)) => v.clone(),
            (0, Some(_), None) => continue,
            _ => o.image(kinds[i]),
        };
        let mut d = s.main.overview_display;
        if matches!(kinds[i], DetectorKind::DpcAngle) {
            d.colormap = Colormap::Twilight;
        }
        let (cur, roi) = (s.main.cursor, s.main.roi);
        s.prepared.views[i] = pane(s, &vals, o.scan_cols, o.scan_rows, ar, &d, |r, m| {
            if let Some((a, b)) = roi {
                images::draw_rect(r, m, a, b, images::ROI);
            }
            images::draw_cursor(r, m, cur.0, cur.1);
        })
        .map(|sh| (key, ar, sh));
    }
    s.prepared.overview_cells = s.prepared.views[0].as_ref().map(|(_, _, v)| v.cells);
}

/// The right pane: the diffractogram of the current virtual image (or of its ROI), else the
/// diffraction frame (or the ROI mean) with the detector drawn on it.
fn prepare_right(s: &mut State, a: &Areas) {
    let ar = image_area(a.right).0;
    let key = match (s.main.diffractogram, s.main.detect.ewpc) {
        (Some(_), _) => s.main.dgram_version | 1 << 63,
        (None, true) => s.main.frame_version | 1 << 62,
        (None, false) => s.main.frame_version,
    };
    if s.prepared.right.as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
        return;
    }
    s.prepared.right = None;
    if let Some(mag) = s.main.diffractogram {
        let Some(o) = &s.main.overviews else { return };
        let (rows, cols) = s.main.roi_ranges().unwrap_or((0..o.scan_rows, 0..o.scan_cols));
        let img = o.image(s.main.kind);
        let Some(dg) = diffractogram::diffractogram(&img, o.scan_cols, rows, cols, mag) else { return };
        let d = DisplayParams { scale: Scale::Linear, ..s.main.overview_display };
        s.prepared.right = pane(s, &dg.values, dg.cols, dg.rows, ar, &d, |_, _| {}).map(|sh| (key, ar, sh));
        return;
    }
    let (dr, dc) = s.ds.det();
    let vals: Option<&[f32]> = match (&s.main.roi_mean, &s.main.frame) {
        (Some((v, _)), _) => Some(v),
        (None, Some((_, f))) => Some(f),
        _ => None,
    };
    let Some(vals) = vals else { return };
    let vals = masked_frame(&s.quant, vals, (dr, dc));
    if s.main.detect.ewpc {
        let Ok(e) = crate::compute::ewpc::ewpc(&vals, dr, dc, &Default::default()) else { return };
        let d = DisplayParams { scale: Scale::Log, ..s.main.frame_display };
        s.prepared.right = pane(s, &e, dc, dr, ar, &d, |_, _| {}).map(|sh| (key, ar, sh));
        return;
    }
    let g = s.main.geometry.clone();
    let kind = s.main.kind;
    let custom = s.main.detect.det.as_ref().map(|d| d.region.clone());
    s.prepared.right = pane(s, &vals, dc, dr, ar, &s.main.frame_display, |r, m| match kind {
        _ if custom.is_some() => draw_custom(r, m, custom.as_ref()),
        DetectorKind::Adf => {
            images::draw_circle(r, m, g.center, g.adf_inner, images::ADF_RING);
            images::draw_circle(r, m, g.center, g.adf_outer, images::ADF_RING);
        }
        DetectorKind::Sum => images::draw_circle(r, m, g.center, 0.0, images::BF_RING),
        _ => images::draw_circle(r, m, g.center, g.bf_radius, images::BF_RING),
    })
    .map(|sh| (key, ar, sh));
}

/// The outline of a custom detector on the frame (a mask from a pattern has none).
fn draw_custom(r: &mut images::Raster, m: &images::Mapping, region: Option<&crate::compute::detectors::Region>) {
    use crate::compute::detectors::Region;
    match region {
        Some(Region::Point { row, col, radius }) => {
            let (a, b) = (radius.floor() as usize, radius.floor() as usize);
            images::draw_rect(r, m, (row.saturating_sub(a), col.saturating_sub(b)), (row + a, col + b), images::CURSOR)
        }
        Some(Region::Rect { r0, r1, c0, c1 }) => images::draw_rect(r, m, (*r0, *c0), (r1 - 1, c1 - 1), images::BF_RING),
        Some(Region::Disk(g)) => images::draw_circle(r, m, g.center, g.bf_radius, images::BF_RING),
        Some(Region::Annulus(g)) => {
            images::draw_circle(r, m, g.center, g.adf_inner, images::ADF_RING);
            images::draw_circle(r, m, g.center, g.adf_outer, images::ADF_RING);
        }
        Some(Region::Weights(_)) | None => {}
    }
}

/// The FFT explorer's three panes.
fn prepare_fft(s: &mut State, a: &Areas) {
    let Some(src) = s.fft.source.clone() else {
        s.prepared.fft = [None, None, None];
        return;
    };
    let [qr, qc, kr, kc] = src.shape();
    let st = &s.fft;
    let trot = super::trotters::overlay(s);
    // the overlay follows the ptychography view's results too
    let key = st.version.wrapping_mul(1 << 20).wrapping_add(s.ptycho.version);
    let (q, k, half, rev) = (st.q, st.k, st.half, st.reverse);
    let mut dpow = s.main.frame_display;
    dpow.scale = Scale::Log;
    let dphase = DisplayParams { scale: Scale::Linear, colormap: Colormap::Twilight, clip: (0.0, 100.0) };
    let (iw, ih) = if rev { (qc, qr) } else { (kc, kr) };
    // normal: power over Q (Q cursor), |G| and arg G over K at Q
    // reverse: |G| over K at Q (K cursor), |G| and arg G over Q at K
    let first = if rev { (st.det_amp.clone(), kc, kr, s.main.frame_display) } else { (st.power.clone(), qc, qr, dpow) };
    let specs: [(Vec<f32>, usize, usize, DisplayParams); 3] =
        [first, (st.amp.clone(), iw, ih, s.main.frame_display), (st.phase.clone(), iw, ih, dphase)];
    for (i, (vals, w, h, d)) in specs.into_iter().enumerate() {
        let ar = image_area(a.panes[i]).0;
        if s.prepared.fft[i].as_ref().is_some_and(|(kk, r, _)| *kk == key && *r == ar) {
            continue;
        }
        s.prepared.fft[i] = pane(s, &vals, w, h, ar, &d, |r, m| {
            if let Some(o) = &trot {
                match i {
                    0 => super::trotters::draw_band(r, m, o, (qr, qc)),
                    _ => super::trotters::draw_disks(r, m, o),
                }
            }
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
        .map(|sh| (key, ar, sh));
    }
}

pub fn render(s: &State, f: &mut Frame) {
    let area = f.area();
    let mut a = layout(area, s.screen, s.main.layout);
    super::nav::place(&mut a, s);
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
    super::nav::render(s, f, &a);
    render_jobs(s, f, a.jobs);
    // footer from the key table
    let mut spans = Vec::new();
    for (k, d) in keys::footer_in(s.key_context()) {
        spans.push(Span::styled(format!(" {k}"), Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD)));
        spans.push(Span::raw(format!(" {d} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), a.footer);
    if let Some(i) = &s.inspector {
        super::inspector::render(s, i, f, area);
    }
    super::popups::render(s, f);
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

fn meta_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let mut v = Vec::new();
    for (k, val) in &s.info.metadata {
        let val = if k == "file" { s.file_name.clone() } else { val.clone() };
        v.push(Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(val)]));
        if k == "file" {
            // calibrated: right under the file name, where a small pane still shows it
            v.extend(calib_lines(&s.quant));
        }
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
        Span::raw(radii_text(&s.quant, &s.main.geometry)),
    ]));
    v.extend(bad_line(&s.quant));
    v.push(Line::from(vec![
        Span::styled(format!("{} ", "display"), key),
        Span::raw(format!("{} / {}", s.main.frame_display.scale.name(), s.main.frame_display.colormap.name())),
    ]));
    v
}

fn render_main(s: &State, f: &mut Frame, a: &Areas) {
    if let Some(e) = &s.eels {
        return super::eels::render_main(s, e, f, a);
    }
    if s.main.layout == ViewLayout::Dpc {
        return super::dpc::render(s, f, a);
    }
    if s.main.layout == ViewLayout::Tcbf {
        return super::tcbf::render(s, f, a);
    }
    if s.main.layout == ViewLayout::Ptycho {
        return super::ptycho::render(s, f, a);
    }
    if s.main.layout == ViewLayout::Single {
        f.render_widget(
            Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(block(" dataset ".into())),
            a.meta,
        );
    }
    let sc = s.ds.scan();
    let kinds = s.main.view_kinds();
    for (i, kind) in kinds.iter().enumerate() {
        let val = s.main.overviews.as_ref().and_then(|o| {
            let v = o.image(*kind).get(s.pos()).copied()?;
            v.is_finite().then_some(v)
        });
        let custom = (i == 0).then(|| s.main.detect.title(s.main.layout != ViewLayout::Single)).flatten();
        let val = match (&custom, &s.main.detect.image) {
            (Some(_), Some(img)) => img.get(s.pos()).copied().filter(|v| v.is_finite()),
            (Some(_), None) => None,
            _ => val,
        };
        let t = if let Some(c) = &custom {
            format!(" {c}{} ", val.map(|v| format!(" = {}", images::num(v as f64))).unwrap_or_default())
        } else if s.main.layout == ViewLayout::Single {
            format!(
                " {} overview  ({}, {}){} ",
                kind_label(*kind),
                s.main.cursor.0,
                s.main.cursor.1,
                val.map(|v| format!(" = {v:.4}")).unwrap_or_default()
            )
        } else {
            let mark = if *kind == s.main.kind { "▸" } else { "" };
            format!(
                " {mark}{}{} ",
                kind_label(*kind),
                val.map(|v| format!(" = {}", images::num(v as f64))).unwrap_or_default()
            )
        };
        let shown = s.prepared.views[i].as_ref().map(|(_, _, v)| v);
        let wait = (i == 0).then(|| match (&custom, &s.main.detect.error) {
            (Some(_), Some(e)) => e.clone(),
            (Some(c), None) => format!("computing {c} ..."),
            _ => format!("computing overview of {} x {} ...", sc.rows, sc.cols),
        });
        image_pane(f, a.views[i], t, shown, wait);
        if let Some(v) = shown {
            draw_scale_bar(&s.quant.calibration, f, v.cells, sc.cols);
        }
    }
    // the right pane: diffractogram or frame
    let t = match (s.main.diffractogram, &s.main.roi_mean, &s.main.frame) {
        (Some(m), _, _) => {
            let of = match s.main.roi_ranges() {
                Some((r, c)) => format!(" ROI {}x{}", r.len(), c.len()),
                None => String::new(),
            };
            let full = format!(" FFT of {}{of} (Hann, {}) ", kind_label(s.main.kind), m.name());
            if full.chars().count() + 2 <= a.right.width as usize {
                full
            } else {
                format!(" FFT {}{of} ", kind_label(s.main.kind))
            }
        }
        (None, Some((_, n)), _) if s.main.detect.ewpc => format!(" EWPC of the ROI mean ({n} positions) "),
        (None, None, Some((p, _))) if s.main.detect.ewpc => {
            format!(" EWPC of frame ({}, {}) ", p / sc.cols.max(1), p % sc.cols.max(1))
        }
        (None, Some((_, n)), _) => format!(" ROI mean diffraction ({n} positions) "),
        (None, None, Some((p, _))) => {
            let (r, c) = (p / sc.cols.max(1), p % sc.cols.max(1));
            let lag = if *p != s.pos() { " loading..." } else { "" };
            format!(" frame ({r}, {c}) #{p}{lag} ")
        }
        _ => " frame (loading...) ".into(),
    };
    image_pane(f, a.right, t, s.prepared.right.as_ref().map(|(_, _, v)| v), None);
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
        image_pane(f, a.panes[i], title, s.prepared.fft[i].as_ref().map(|(_, _, v)| v), None);
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
    lines.extend(super::trotters::info(s));
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
