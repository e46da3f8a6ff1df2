//! The EELS screen: for spectrum data (a Merlin Nx1 spectrometer detector, `--mode eels`, or a
//! 3-D spectrum-image EMD) the main screen shows the energy-window map as its overview and the
//! spectrum at the cursor (or the ROI mean) as a line plot with the window marked.
//!
//! The spectrum image comes from `ops::eels::spectrum_image_ds` in one background job (read from
//! the 3-D EMD, or the cache directory, else computed once and cached); from then on every map
//! and spectrum is computed from it in memory, so moving or resizing the window is instant.
//! Until it is there the spectrum at the cursor is summed from the decoded frame.

use super::app::{AppEvent, State};
use super::images::{self, Shown};
use super::keys::Action;
use super::render::{Areas, block, image_area, image_pane, pane};
use super::view_state::eels::{EelsView, JOB_NAME, SpectrumKey};
use crate::compute::spectra::SpectraOptions;
use crate::dataset::ModeInfo;
use crate::jobs::{JobKind, JobState, Progress};
use crate::ops::eels::{self, EelsJob, SpectrumImage};
use crate::ops::overview::Origin;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};
use std::sync::Arc;

/// Whether the dataset of `s` holds spectra: then the main screen is the EELS screen.
pub fn channels_of(s: &State) -> Option<usize> {
    (s.info.mode.mode == crate::dataset::Mode::Eels)
        .then(|| ModeInfo::spectrum_axis(s.info.det_rows, s.info.det_cols).0)
}

/// Start the job that makes the spectrum image (3-D EMD, cache directory, else one pass).
pub fn start(s: &mut State) {
    let p = Progress::new(JOB_NAME, s.ds.positions_present() as u64);
    let job = EelsJob { memory_budget: s.memory_budget, cache_dir: s.cache_dir.clone(), ..Default::default() };
    let (ds, tx, tx2) = (s.ds.clone(), s.tx.clone(), s.tx.clone());
    if let Some(e) = s.eels.as_mut() {
        e.job = Some(p.clone());
    }
    s.jobs.table.spawn(
        p,
        move |p| {
            let si = eels::spectrum_image_ds(ds.as_ref(), &job, p)?;
            p.set_message(si.origin.describe());
            let _ = tx.send(AppEvent::SpectrumImage(Arc::new(si)));
            Ok(())
        },
        report_failure(tx2),
    );
}

/// The end of a spectra job: a failure other than a cancel is reported in the jobs panel.
fn report_failure(tx: std::sync::mpsc::Sender<AppEvent>) -> impl FnOnce(&Progress, crate::Result<()>) + Send + 'static {
    move |p, r| {
        if let Err(e) = r
            && !matches!(e, crate::Error::Cancelled)
        {
            let _ = tx.send(AppEvent::JobEnded(p.kind, format!("spectra: {e}")));
        }
    }
}

/// A growing acquisition: read the spectra of the positions acquired since the spectrum image was
/// made (one job at a time; called on every poll of the follower and when a result arrives).
pub fn extend(s: &mut State) {
    let present = s.ds.positions_present().min(s.ds.scan().positions());
    let Some(e) = s.eels.as_mut() else { return };
    let Some(si) = e.si.clone() else { return };
    if e.job.as_ref().is_some_and(|j| !j.state().finished()) || eels::positions_covered(&si) >= present {
        return;
    }
    let p = Progress::new(JOB_NAME, 0);
    e.job = Some(p.clone());
    let job = EelsJob { memory_budget: s.memory_budget, cache_dir: s.cache_dir.clone(), ..Default::default() };
    let (ds, tx, tx2) = (s.ds.clone(), s.tx.clone(), s.tx.clone());
    s.jobs.table.spawn(
        p,
        move |p| {
            let si = eels::extend(ds.as_ref(), &si, &job, p)?;
            let _ = tx.send(AppEvent::SpectrumImage(Arc::new(si)));
            Ok(())
        },
        report_failure(tx2),
    );
}

/// `c` on spectrum data: write the 3-D spectrum-image EMD next to the `.mib` in the background
/// (short axis summed, the remembered energy calibration written into its energy axis).
pub fn start_convert(s: &mut State) {
    let busy = s.jobs.table.list().iter().any(|j| j.kind == JobKind::Convert && !j.state().finished());
    if busy {
        s.status = "a conversion is already running".into();
        return;
    }
    let out = crate::ops::convert::default_output(&s.path);
    let job = EelsJob { memory_budget: s.memory_budget, cache_dir: s.cache_dir.clone(), ..Default::default() };
    let o = SpectraOptions {
        bin: 1,
        mean: false,
        reverse: false,
        energy: eels::calibration(s.ds.as_ref(), &job),
        deflate_level: Some(s.tuning.deflate_level()),
        memory_budget: s.memory_budget,
        force: false,
        no_space_check: s.tuning.no_space_check,
    };
    let p = Progress::job(JobKind::Convert, s.ds.positions_present() as u64);
    let (ds, tx) = (s.ds.clone(), s.tx.clone());
    s.status = format!("writing the spectrum image {}", out.display());
    s.jobs.table.spawn(
        p,
        move |p| crate::ops::convert::convert_spectra(ds.as_ref(), &out, &o, p),
        move |p, r| {
            let msg = match r {
                Ok(r) => format!("spectrum image {} ({:.1} s)", r.output.display(), r.seconds),
                Err(crate::Error::Cancelled) => "conversion cancelled".into(),
                Err(e) => format!("{} failed: {e}", p.name),
            };
            let _ = tx.send(AppEvent::JobEnded(p.kind, msg));
        },
    );
}

/// The spectrum image arrived: show its map and spectra from now on.
pub fn loaded(s: &mut State, si: Arc<SpectrumImage>) -> bool {
    let Some(e) = s.eels.as_mut() else { return false };
    e.channels = si.channels;
    let (a, b) = e.window;
    e.window = (a.min(si.channels - 1), b.clamp(a.min(si.channels - 1) + 1, si.channels));
    e.si = Some(si);
    // the job that made it has ended (it may not say so yet): a growing scan may extend it
    e.job = None;
    e.key = None;
    e.map_window = None;
    e.ensure_map();
    s.main.ov_version += 1;
    sync(s);
    // frames that arrived while it was made
    extend(s);
    true
}

/// The EELS keys: move and resize the window, log scale.
pub fn action(s: &mut State, a: Action) {
    let Some(e) = s.eels.as_mut() else {
        s.status = "EELS keys apply to spectrum data".into();
        return;
    };
    let step = e.step() as i64;
    match a {
        Action::EelsMove(d) => e.shift(d as i64 * step),
        Action::EelsPage(d) => e.shift(d as i64 * (e.window.1 - e.window.0) as i64),
        Action::EelsWidth(d) => e.grow(d as i64 * step),
        Action::EelsLog => {
            e.log = !e.log;
            s.status = format!("spectrum: {} scale", if e.log { "log" } else { "linear" });
            return;
        }
        _ => return,
    }
    s.status = format!("energy window {}", e.window_label());
    s.main.ov_version += 1;
}

/// Bring the spectrum up to date with the cursor and the ROI (after any action or event).
pub fn sync(s: &mut State) {
    let pos = s.pos();
    let roi = s.main.roi_ranges();
    let cursor = s.main.cursor;
    let frame = s.main.frame.as_ref().filter(|(p, _)| *p == pos).map(|(_, f)| f.clone());
    let (dr, dc) = s.ds.det();
    let Some(e) = s.eels.as_mut() else { return };
    let key = match (&roi, &e.si) {
        (Some((r, c)), Some(_)) => SpectrumKey::Roi(r.clone(), c.clone()),
        _ => SpectrumKey::At(pos, e.si.is_some() || frame.is_some()),
    };
    if e.key.as_ref() == Some(&key) {
        return;
    }
    match (&key, &e.si) {
        (SpectrumKey::Roi(r, c), Some(si)) => match eels::mean_spectrum(si, r.clone(), c.clone()) {
            Ok(m) => {
                e.spectrum = m;
                e.spectrum_of = format!("ROI mean, {} positions", r.len() * c.len());
            }
            Err(x) => e.error = Some(x.to_string()),
        },
        (_, Some(si)) => {
            e.spectrum = si.data[pos * si.channels..(pos + 1) * si.channels].to_vec();
            e.spectrum_of = format!("at ({}, {})", cursor.0, cursor.1);
        }
        (_, None) => {
            e.spectrum = frame.map(|f| frame_spectrum(&f, dr, dc)).unwrap_or_default();
            e.spectrum_of = format!("at ({}, {}), from the frame", cursor.0, cursor.1);
        }
    }
    e.key = Some(key);
}

/// A decoded frame summed over its short axis (channels along the long axis, stored order).
fn frame_spectrum(f: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let (ch, along_cols) = ModeInfo::spectrum_axis(rows, cols);
    let mut acc = vec![0f64; ch];
    for (r, row) in f.chunks_exact(cols.max(1)).take(rows).enumerate() {
        if along_cols {
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
        } else {
            acc[r] = row.iter().map(|&v| v as f64).sum();
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Prepare the map image (the overview pane) with the cursor and the ROI drawn on it.
pub fn prepare(s: &mut State, a: &Areas) {
    let ar = image_area(a.views[0]).0;
    if let Some(e) = s.eels.as_mut() {
        e.ensure_map();
    }
    let key = s.main.ov_version;
    s.prepared.views[1] = None;
    s.prepared.views[2] = None;
    s.prepared.right = None;
    if s.prepared.views[0].as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
        return;
    }
    s.prepared.views[0] = None;
    let Some(e) = &s.eels else { return };
    let Some(si) = &e.si else { return };
    let (cur, roi) = (s.main.cursor, s.main.roi);
    let shown: Option<Shown> = pane(s, &e.map, si.cols, si.rows, ar, &s.main.overview_display, |r, m| {
        if let Some((a, b)) = roi {
            images::draw_rect(r, m, a, b, images::ROI);
        }
        images::draw_cursor(r, m, cur.0, cur.1);
    });
    s.prepared.views[0] = shown.map(|sh| (key, ar, sh));
    s.prepared.overview_cells = s.prepared.views[0].as_ref().map(|(_, _, v)| v.cells);
}

fn kv(k: &str, v: String) -> Line<'static> {
    Line::from(vec![Span::styled(format!("{k} "), Style::default().fg(Color::Cyan)), Span::raw(v)])
}

/// The dataset pane of the EELS screen: the metadata, the mode and why, the spectra's origin.
fn meta_lines(s: &State, e: &EelsView) -> Vec<Line<'static>> {
    let mut v = vec![Line::from(Span::styled(
        "EELS (spectrum) mode",
        Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD),
    ))];
    v.push(Line::from(Span::styled(s.info.mode.reason.clone(), Style::default().fg(Color::Gray))));
    let spectra = match (&e.si, &e.job) {
        (Some(si), _) if eels::positions_covered(si) < si.rows * si.cols => {
            format!("{} of {} positions", eels::positions_covered(si), si.rows * si.cols)
        }
        (Some(si), _) => match si.origin {
            Origin::Computed => "computed (cached for next time)".into(),
            Origin::CacheDir => "from the cache directory".into(),
            Origin::EmdCache => "read from the spectrum-image EMD".into(),
        },
        (None, Some(j)) if j.state() == JobState::Failed => format!("failed: {}", j.message()),
        (None, Some(j)) if j.state() == JobState::Cancelled => "cancelled".into(),
        (None, Some(j)) => format!("computing {:.0}%", j.fraction() * 100.0),
        (None, None) => "none".into(),
    };
    v.push(kv("spectra", spectra));
    v.push(kv("channels", e.channels.to_string()));
    let axis = match &e.si {
        Some(si) if si.calibrated() => format!("{:.3} eV/ch, offset {:.2} eV", si.energy_step, si.energy_offset),
        Some(si) if si.energy_step != 1.0 || si.energy_offset != 0.0 => {
            format!("{} per ch {}, offset {}", si.energy_units, si.energy_step, si.energy_offset)
        }
        _ => "channels (uncalibrated)".into(),
    };
    v.push(kv("energy", axis));
    v.push(kv("window", e.window_label()));
    v.push(kv("scale", if e.log { "log".into() } else { "linear".into() }));
    v.push(Line::raw(""));
    for (k, val) in &s.info.metadata {
        let val = if k == "file" { s.file_name.clone() } else { val.clone() };
        v.push(kv(k, val));
    }
    for w in &s.info.warnings {
        v.push(Line::from(Span::styled(format!("! {w}"), Style::default().fg(Color::Red))));
    }
    if let Some(x) = &e.error {
        v.push(Line::from(Span::styled(format!("! {x}"), Style::default().fg(Color::Red))));
    }
    v
}

/// The main screen for spectrum data: dataset pane, energy-window map, spectrum plot.
pub fn render_main(s: &State, e: &EelsView, f: &mut Frame, a: &Areas) {
    f.render_widget(
        Paragraph::new(meta_lines(s, e)).wrap(Wrap { trim: false }).block(block(" dataset ".into())),
        a.meta,
    );
    let val = e.map.get(s.pos()).copied().filter(|v| v.is_finite());
    let t = format!(
        " EELS map {}{} ",
        e.window_short(),
        val.map(|v| format!(" = {}", images::num(v as f64))).unwrap_or_default()
    );
    let wait = match &e.job {
        Some(j) if e.si.is_none() && !j.state().finished() => {
            Some(format!("computing the spectrum image: {:.0}%", j.fraction() * 100.0))
        }
        _ => Some("no spectrum image".to_string()),
    };
    image_pane(f, a.views[0], t, s.prepared.views[0].as_ref().map(|(_, _, v)| v), wait);
    render_spectrum(e, f, a.right);
}

/// Axis label of a value.
fn num(v: f64) -> String {
    images::num(v)
}

/// The spectrum pane: a braille line plot, the window's part highlighted and its edges marked.
fn render_spectrum(e: &EelsView, f: &mut Frame, area: Rect) {
    let title = format!(" spectrum {}{} ", e.spectrum_of, if e.log { ", log" } else { "" });
    if e.spectrum.is_empty() {
        f.render_widget(Paragraph::new("no spectrum yet").block(block(title)), area);
        return;
    }
    let t = |v: f32| if e.log { (v.max(0.0) as f64 + 1.0).log10() } else { v as f64 };
    let pts: Vec<(f64, f64)> = e
        .spectrum
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| (e.energy(i as f64), t(v)))
        .collect();
    let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.1), h.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo.min(0.0), if hi > lo { hi } else { lo + 1.0 }) } else { (0.0, 1.0) };
    let (a, b) = e.window;
    let inside: Vec<(f64, f64)> =
        pts.iter().copied().filter(|p| p.0 >= e.energy(a as f64) && p.0 < e.energy(b as f64)).collect();
    let (xa, xb) = (e.energy(a as f64), e.energy(b as f64));
    let edge_a = [(xa, lo), (xa, hi)];
    let edge_b = [(xb, lo), (xb, hi)];
    let (x0, x1) = (e.energy(0.0), e.energy(e.spectrum.len().saturating_sub(1) as f64));
    let (x0, x1) = if x0 <= x1 { (x0, x1) } else { (x1, x0) };
    let win = Style::default().fg(Color::Yellow);
    let sets = vec![
        Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(Color::Cyan).data(&pts),
        Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(win).data(&inside),
        Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(win).data(&edge_a),
        Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(win).data(&edge_b),
    ];
    let units = e.units().to_string();
    let ylab = if e.log { "log10(1+counts)" } else { "counts" };
    let chart = Chart::new(sets)
        .block(block(title).title_bottom(Line::from(format!(" window {} ", e.window_label())).style(win)))
        .x_axis(Axis::default().title(units).bounds([x0, x1.max(x0 + 1.0)]).labels([
            num(x0),
            num((x0 + x1) / 2.0),
            num(x1),
        ]))
        .y_axis(Axis::default().title(ylab).bounds([lo, hi]).labels([num(lo), num(hi)]));
    f.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_moves_and_resizes_inside_the_spectrum() {
        let mut e = EelsView::new(1024);
        assert_eq!(e.window, (10, 200));
        e.shift(-100);
        assert_eq!(e.window, (0, 190));
        e.shift(5000);
        assert_eq!(e.window, (834, 1024));
        e.grow(-500);
        assert_eq!(e.window, (834, 835));
        e.grow(8);
        assert_eq!(e.window, (834, 843));
        assert_eq!(e.step(), 8);
        assert_eq!(EelsView::new(12).window, (0, 12));
    }

    #[test]
    fn frame_spectra_sum_the_short_axis() {
        // 2 x 3 frame: channels along the columns
        assert_eq!(frame_spectrum(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3), vec![5.0, 7.0, 9.0]);
        // 3 x 2 frame: channels along the rows
        assert_eq!(frame_spectrum(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2), vec![3.0, 7.0, 11.0]);
    }
}
