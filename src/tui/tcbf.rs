//! The tcBF view of the main screen (`b`): the tilt-corrected (super-resolved) bright-field image
//! beside the plain BF image of the same disk pixels, the measured shift field over the BF disk
//! as a colour wheel (hue = direction, brightness = |s|, with the DPC view's legend), and the
//! fitted aberrations (rotation, transpose, defocus and astigmatism: in Å with the file's
//! calibration, the defocus sign from the contrast when the energy is known) with the rms
//! residual and the pixels used in the metadata pane. `B` cycles the upsample factor 1, 2, 4 (results already computed this session show at
//! once; `ops::tcbf` loads a valid one from the EMD cache). The job is `ops::tcbf` on the EMD of
//! the file (a `.mib` is converted first, the scan-axes FFT computed when missing: the user is
//! asked before either, as for `F`); `x` cancels it.

use super::app::{AppEvent, Confirm, State, ViewLayout};
use super::images::{self, Readout, Shown};
use super::keys::Action;
use super::render;
use super::view_state::tcbf::{TcbfShown, UPSAMPLES};
use crate::compute::tcbf::{TcbfParams, TcbfResult};
use crate::jobs::{JobState, Progress};
use crate::ops::tcbf::TcbfOutcome;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect, Size};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;

/// Show the result at the current factor, or start (or ask for) the job that makes it.
pub fn start(s: &mut State) {
    if s.tcbf.current().is_some() {
        s.tcbf.version += 1;
        return;
    }
    if s.tcbf.running() {
        s.status = format!("tcBF {}x is being computed (x cancels)", s.tcbf.job_upsample);
        return;
    }
    if s.demo {
        s.status = "tcBF needs a file: the EMD and its 4D FFT (not the built-in demo)".into();
        return;
    }
    if super::fft_job::ask_first(s, "tcBF", Confirm::Tcbf) {
        run_job(s);
    }
}

/// The `ops::tcbf` job at the current factor (after the user agreed, or with nothing to ask).
pub fn run_job(s: &mut State) {
    if s.tcbf.running() {
        return;
    }
    let up = s.tcbf.upsample;
    let p = Progress::new("tcbf", 0);
    s.tcbf.job = Some(p.clone());
    s.tcbf.job_upsample = up;
    let optics = crate::compute::tcbf::aberr::Optics::from_calibration(&s.quant.calibration);
    let params = TcbfParams { upsample: up, optics, ..Default::default() };
    let work: super::fft_job::Work<TcbfOutcome> =
        Box::new(move |fft, sink| crate::ops::tcbf::run(crate::ops::tcbf::TcbfJob { fft, params }, sink));
    super::fft_job::spawn(s, p, "tcBF", work, AppEvent::Tcbf);
    s.status = format!("tcBF {up}x: computing (x cancels)");
}

/// A result arrived: keep it, show it, and go on to the factor asked for meanwhile.
pub fn on_result(s: &mut State, o: TcbfOutcome) {
    let up = o.result.params.upsample;
    let origin = o.origin.describe().to_string();
    s.status = match (&o.result.fit, &o.result.aberrations) {
        (Some(f), Some(ab)) => {
            format!("tcBF {up}x ({origin}): {}, rms {:.3} px", crate::compute::tcbf::aberr::summary(ab), f.rms_residual)
        }
        (Some(f), None) => format!(
            "tcBF {up}x ({origin}): scale {:.4} px/px, rotation {:.1} deg, rms {:.3} px",
            f.scale, f.rotation_deg, f.rms_residual
        ),
        _ => format!("tcBF {up}x ({origin})"),
    };
    s.tcbf.results.retain(|r| r.result.params.upsample != up);
    s.tcbf.results.push(TcbfShown { result: Arc::new(o.result), origin });
    s.tcbf.version += 1;
    if s.main.layout == ViewLayout::Tcbf && s.tcbf.current().is_none() {
        run_job(s);
    }
}

/// `b` (view on / off) and `B` (next upsample factor).
pub fn action(s: &mut State, a: Action) {
    match a {
        Action::TcbfView if s.toggle_layout(ViewLayout::Tcbf) => start(s),
        Action::TcbfView => {}
        Action::TcbfUpsample => {
            let i = UPSAMPLES.iter().position(|&u| u == s.tcbf.upsample).unwrap_or(0);
            s.tcbf.upsample = UPSAMPLES[(i + 1) % UPSAMPLES.len()];
            s.status = format!("tcBF upsample {}x", s.tcbf.upsample);
            if s.main.layout == ViewLayout::Tcbf {
                start(s);
            }
            s.tcbf.version += 1;
        }
        _ => {}
    }
}

/// The image `e` exports: (values, cols, rows, name, upsample factor).
pub fn export(s: &State) -> Option<(Vec<f32>, usize, usize, String, usize)> {
    let r = &s.tcbf.current()?.result;
    let (ir, ic) = r.image_shape();
    let up = r.params.upsample;
    Some((r.image.clone(), ic, ir, format!("tcbf_{up}x"), up))
}

/// The right column: plain BF above, shift wheel below.
fn right_split(right: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(right)
}

/// The detector box holding the BF disk (rows, cols ranges).
fn disk_box(r: &TcbfResult) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let (c, rad) = (r.disk.centre, r.disk.radius);
    let span = |c: f64, n: usize| {
        let lo = (c - rad - 1.0).floor().max(0.0) as usize;
        let hi = ((c + rad + 2.0).ceil().max(0.0) as usize).min(n);
        if lo < hi { lo..hi } else { 0..n }
    };
    (span(c[0], r.det.0), span(c[1], r.det.1))
}

/// The shift field over the disk box as (dx, dy, cols, rows).
pub fn shift_maps(r: &TcbfResult) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let (rows, cols) = disk_box(r);
    let (mut dx, mut dy) = (Vec::new(), Vec::new());
    for i in rows.clone() {
        for j in cols.clone() {
            let k = (i * r.det.1 + j) * 2;
            dy.push(r.shifts.get(k).copied().unwrap_or(f32::NAN));
            dx.push(r.shifts.get(k + 1).copied().unwrap_or(f32::NAN));
        }
    }
    (dx, dy, cols.len(), rows.len())
}

/// The maps with `cols / 2` NaN columns appended on the right: (dx, dy, new cols).
fn pad_right(dx: &[f32], dy: &[f32], cols: usize, rows: usize) -> (Vec<f32>, Vec<f32>, usize) {
    let n = cols + cols / 2;
    let (mut px, mut py) = (vec![f32::NAN; n * rows], vec![f32::NAN; n * rows]);
    for i in 0..rows {
        px[i * n..i * n + cols].copy_from_slice(&dx[i * cols..(i + 1) * cols]);
        py[i * n..i * n + cols].copy_from_slice(&dy[i * cols..(i + 1) * cols]);
    }
    (px, py, n)
}

/// Prepare the three panes (when their content or area changed).
pub fn prepare(s: &mut State, a: &render::Areas) {
    s.prepared.views = [None, None, None];
    s.prepared.right = None;
    let Some(cur) = s.tcbf.current().cloned() else {
        s.tcbf.prepared = [None, None, None];
        return;
    };
    let r = cur.result;
    let key = s.tcbf.version ^ (s.main.ov_version << 32);
    let fresh = |p: &Option<(u64, Rect, Shown)>, ar: Rect| p.as_ref().is_some_and(|(k, a, _)| *k == key && *a == ar);
    let [top, bottom] = right_split(a.right);
    let d = s.main.overview_display;
    let c = s.main.cursor;
    let ar = render::image_area(a.views[0]).0;
    if !fresh(&s.tcbf.prepared[0], ar) {
        let (ir, ic) = r.image_shape();
        let up = r.params.upsample;
        s.tcbf.prepared[0] = render::pane(s, &r.image, ic, ir, ar, &d, |ras, m| {
            images::draw_cursor(ras, m, c.0 * up + up / 2, c.1 * up + up / 2);
        })
        .map(|sh| (key, ar, sh));
    }
    let ar = render::image_area(top).0;
    if !fresh(&s.tcbf.prepared[1], ar) {
        s.tcbf.prepared[1] = render::pane(s, &r.plain, r.scan.1, r.scan.0, ar, &d, |ras, m| {
            images::draw_cursor(ras, m, c.0, c.1);
        })
        .map(|sh| (key, ar, sh));
    }
    let ar = render::image_area(bottom).0;
    if !fresh(&s.tcbf.prepared[2], ar) {
        let (dx, dy, cols, rows) = shift_maps(&r);
        // blank columns on the right, where the wheel legend goes (not over the disk)
        let (dx, dy, cols) = pad_right(&dx, &dy, cols, rows);
        let (mw, mh) = images::pixel_box(s.graphics, Size::new(ar.width, ar.height), &s.picker);
        let (w, h) = images::fit(cols, rows, mw, mh);
        s.tcbf.prepared[2] = if w == 0 || h == 0 {
            None
        } else {
            let ras = super::widgets::wheel::wheel_raster(&dx, &dy, cols, rows, w, h);
            let readout = Readout { stats: None, range: None, clip: d.clip, colormap: d.colormap };
            render::shown(s, ras, ar, readout).map(|sh| (key, ar, sh))
        };
    }
}

/// The fitted aberrations as (key, value) rows of the metadata pane (Å when calibrated, else
/// parallax slopes; "?" marks a defocus sign the contrast could not decide: no energy).
fn aberration_lines(ab: &crate::compute::tcbf::aberr::Aberrations) -> Vec<(&'static str, String)> {
    let sign = match ab.sign_from {
        crate::compute::tcbf::aberr::SignFrom::Contrast => "",
        crate::compute::tcbf::aberr::SignFrom::Assumed => " (sign?)",
    };
    let t = if ab.transpose { ", transposed" } else { "" };
    let mut v = vec![("rotation", format!("{:.1}°{t}", ab.rotation_deg))];
    match (ab.defocus_A, ab.astigmatism_A) {
        (Some(d), Some(a)) => {
            v.push(("defocus", format!("{d:.0} Å{sign}")));
            v.push(("astigm.", format!("{a:.0} Å at {:.0}°", ab.astigmatism_angle_deg)));
        }
        _ => {
            v.push(("defocus", format!("{:.4} px/px{sign}", ab.defocus_slope)));
            v.push(("astigm.", format!("{:.4} px/px {:.0}°", ab.astigmatism_slope, ab.astigmatism_angle_deg)));
        }
    }
    v
}

fn meta_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let kv = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(v)]);
    let mut v = vec![kv("file", s.file_name.clone())];
    v.push(kv("upsample", format!("{}x (B: 1/2/4)", s.tcbf.upsample)));
    match s.tcbf.current() {
        Some(c) => {
            let r = &c.result;
            v.push(kv("tcBF", c.origin.clone()));
            if let Some(ab) = &r.aberrations {
                v.extend(aberration_lines(ab).into_iter().map(|(k, t)| kv(k, t)));
            }
            match &r.fit {
                Some(f) if r.aberrations.is_some() => {
                    v.push(kv("rms resid.", format!("{:.3} scan px", f.rms_residual)));
                    v.push(kv("fit", format!("{} px, {} rejected", f.pixels_used, f.pixels_rejected)));
                }
                Some(f) => {
                    v.push(kv("scale", format!("{:.4} scan px/det px (defocus)", f.scale)));
                    v.push(kv(
                        "rotation",
                        format!("{:.1}°, flip {}", f.rotation_deg, if f.flip { "yes" } else { "no" }),
                    ));
                    v.push(kv("rms resid.", format!("{:.3} scan px", f.rms_residual)));
                    v.push(kv("anisotropy", format!("{:.3}", f.anisotropy)));
                    v.push(kv("fit", format!("{} px, {} rejected", f.pixels_used, f.pixels_rejected)));
                }
                None => v.push(kv("fit", "none (manual shifts)".into())),
            }
            v.push(kv(
                "pixels used",
                format!("{} of {} ({} low quality)", r.pixels_used, r.disk.pixels, r.pixels_low_quality),
            ));
            v.push(kv(
                "disk",
                format!("centre ({:.1}, {:.1}) r {:.1}", r.disk.centre[0], r.disk.centre[1], r.disk.radius),
            ));
            let (ir, ic) = r.image_shape();
            v.push(kv("image", format!("{ir}x{ic} ({}x of {}x{})", r.params.upsample, r.scan.0, r.scan.1)));
            if !s.deterministic {
                v.push(kv("time", format!("{:.2} s", r.seconds)));
            }
        }
        None => v.push(kv("tcBF", wait_text(s))),
    }
    v.extend(super::widgets::quant::calib_lines(&s.quant));
    v.push(Line::raw(""));
    v.push(Line::from(Span::styled("b view  B upsample  x cancel  e export", Style::default().fg(Color::DarkGray))));
    v
}

/// What the panes say while there is no result.
fn wait_text(s: &State) -> String {
    match &s.tcbf.job {
        Some(j) if j.state() == JobState::Failed => format!("failed: {}", j.message()),
        Some(j) if j.state() == JobState::Cancelled => "cancelled (b b or B: start again)".into(),
        Some(j) if !j.state().finished() => {
            let m = j.message();
            let pct = format!("{}x: {:.0}%", s.tcbf.job_upsample, j.fraction() * 100.0);
            if m.is_empty() { format!("computing {pct}") } else { format!("{m} {pct}") }
        }
        _ => "not computed (b: compute)".into(),
    }
}

/// The tcBF layout: metadata, tcBF image, plain BF over the shift wheel.
pub fn render(s: &State, f: &mut Frame, a: &render::Areas) {
    f.render_widget(
        Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(render::block(" tcBF ".into())),
        a.meta,
    );
    let wait = wait_text(s);
    let cur = s.tcbf.current();
    let up = s.tcbf.upsample;
    let (c, p) = (s.main.cursor, s.pos());
    let val = cur.and_then(|x| x.result.plain.get(p).copied()).filter(|v| v.is_finite());
    let cols = cur.map(|x| x.result.scan.1).unwrap_or(0);
    let t = format!(" tcBF {up}x (super-resolved BF) ");
    let shown = s.tcbf.prepared[0].as_ref().map(|(_, _, v)| v);
    render::image_pane(f, a.views[0], t, shown, Some(wait.clone()));
    if let Some(v) = shown {
        super::widgets::scale_bar::draw_scale_bar(&s.quant.calibration, f, v.cells, cols);
    }
    let [top, bottom] = right_split(a.right);
    let t = format!(
        " plain BF ({}, {}){} ",
        c.0,
        c.1,
        val.map(|v| format!(" = {}", images::num(v as f64))).unwrap_or_default()
    );
    let shown = s.tcbf.prepared[1].as_ref().map(|(_, _, v)| v);
    render::image_pane(f, top, t, shown, Some(wait.clone()));
    if let Some(v) = shown {
        super::widgets::scale_bar::draw_scale_bar(&s.quant.calibration, f, v.cells, cols);
    }
    let t = if bottom.width >= 40 { " shifts over the BF disk (hue = direction) " } else { " shifts (wheel) " };
    let shown = s.tcbf.prepared[2].as_ref().map(|(_, _, v)| v);
    render::image_pane(f, bottom, t.into(), shown, Some(wait));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::tcbf::Disk;

    fn result() -> TcbfResult {
        // a 6x6 detector, disk of radius 1 at (2, 3): shifts (dy, dx) = (i, -j) everywhere
        let mut shifts = Vec::new();
        for i in 0..6 {
            for j in 0..6 {
                shifts.extend([i as f32, -(j as f32)]);
            }
        }
        TcbfResult {
            params: TcbfParams { upsample: 2, ..Default::default() },
            scan: (8, 8),
            image: vec![0.0; 256],
            plain: vec![0.0; 64],
            det: (6, 6),
            shifts,
            quality: vec![1.0; 36],
            fit: None,
            aberrations: None,
            pairs: vec![],
            disk: Disk { centre: [2.0, 3.0], radius: 1.0, pixels: 5 },
            pixels_used: 5,
            pixels_low_quality: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn aberrations_in_angstrom_when_calibrated_else_slopes() {
        use crate::compute::tcbf::aberr::{Aberrations, SignFrom};
        let mut ab = Aberrations {
            rotation_deg: 17.2,
            transpose: true,
            defocus_A: Some(241.4),
            astigmatism_A: Some(29.6),
            astigmatism_angle_deg: 34.0,
            defocus_slope: 0.28,
            astigmatism_slope: 0.035,
            sign_from: SignFrom::Contrast,
        };
        let l = aberration_lines(&ab);
        assert_eq!(l[0], ("rotation", "17.2°, transposed".to_string()));
        assert_eq!(l[1], ("defocus", "241 Å".to_string()));
        assert_eq!(l[2], ("astigm.", "30 Å at 34°".to_string()));
        (ab.defocus_A, ab.astigmatism_A, ab.sign_from) = (None, None, SignFrom::Assumed);
        let l = aberration_lines(&ab);
        assert_eq!(l[1], ("defocus", "0.2800 px/px (sign?)".to_string()));
        assert_eq!(l[2], ("astigm.", "0.0350 px/px 34°".to_string()));
    }

    #[test]
    fn shift_maps_crop_the_disk_and_split_dy_dx() {
        let (dx, dy, cols, rows) = shift_maps(&result());
        // rows 0..5 (2-1-1 .. 2+1+2), cols 1..6
        assert_eq!((cols, rows), (5, 5));
        assert_eq!(dy[0], 0.0);
        assert_eq!(dx[0], -1.0, "first column of the box is detector column 1");
        assert_eq!(dy[cols * 4], 4.0);
        assert_eq!(dx[cols - 1], -5.0);
        let (px, py, n) = pad_right(&dx, &dy, cols, rows);
        assert_eq!(n, 7);
        assert_eq!((px[n + 4], py[n + 4]), (dx[cols + 4], dy[cols + 4]));
        assert!(px[n + 5].is_nan() && py[2 * n - 1].is_nan(), "the added columns are blank");
    }
}
