//! The DPC view of the main screen (`i`): the iCoM phase image and the corrected CoM field as a
//! colour wheel (hue = direction, brightness = magnitude, with a wheel legend), the found (or
//! set) rotation, flip and curl ratio in the metadata pane; `,`/`.` turn by 1 degree, `<`/`>` by
//! 15, `/` flips, `0` goes back to the found orientation — each recomputed from the masked CoM
//! kept in memory (milliseconds). The masked CoM is the `ops::dpc` job (cached in the EMD or the
//! cache directory). Also here: the calibration and bad-pixel state of the UI (scale bars,
//! collection angles, masked frames).

use super::app::{AppEvent, Shown, State, ViewLayout};
use super::images::{self, Raster, Readout};
use super::keys::Action;
use super::render;
use crate::compute::badpix::{self, BadPixels};
use crate::compute::calib::{self, Calibration};
use crate::compute::dpc::DpcOptions;
use crate::jobs::Progress;
use crate::ops::dpc::{DpcCom, DpcJob, DpcOutcome, MaskChoice};
use ratatui::Frame;
use ratatui::layout::{Rect, Size};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;

/// State of the DPC view.
#[derive(Default)]
pub struct DpcView {
    pub job: Option<Arc<Progress>>,
    /// The masked CoM of the dataset (what overrides recompute from).
    pub com: Option<Arc<DpcCom>>,
    /// The result at the current orientation.
    pub outcome: Option<DpcOutcome>,
    /// Rotation (degrees) and flip set by the user (None: found from the curl).
    pub rotation: Option<f64>,
    pub flip: Option<bool>,
    /// The orientation found with nothing set: (rotation, flip, curl ratio).
    pub found: Option<(f64, bool, f64)>,
    pub version: u64,
    pub prepared: [Option<(u64, Rect, Shown)>; 2],
    pub error: Option<String>,
}

/// Calibration and bad pixels as the UI uses them.
#[derive(Debug, Clone, Default)]
pub struct Quant {
    pub calibration: Calibration,
    /// `--keep-bad-pixels`: show and compute with the hot and dead pixels left in.
    pub keep_bad: bool,
    /// `--bad-pixels PATH` (flat detector indices).
    pub user_bad: Vec<usize>,
    /// Hot and dead pixels found in the mean pattern of the complete overview (plus the user's).
    pub bad: Option<BadPixels>,
}

impl Quant {
    /// The pixels replaced in the frame view (none with `keep_bad`).
    pub fn replaced(&self) -> Vec<usize> {
        if self.keep_bad {
            return Vec::new();
        }
        let mut v = self.bad.as_ref().map(|b| b.all()).unwrap_or_default();
        v.extend(&self.user_bad);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Bad pixels from a complete mean pattern (`frames` averaged).
    pub fn set_mean(&mut self, mean: &[f32], det: (usize, usize), frames: usize) {
        let mut b = badpix::detect(mean, det.0, det.1, frames, badpix::DEFAULT_K);
        b.user = self.user_bad.clone();
        self.bad = Some(b);
    }
}

/// A frame with the replaced pixels set to the median of their valid 3x3 neighbours (the frame
/// itself when there is nothing to replace).
pub fn masked_frame<'a>(q: &Quant, v: &'a [f32], det: (usize, usize)) -> std::borrow::Cow<'a, [f32]> {
    let bad = q.replaced();
    if bad.is_empty() || v.len() != det.0 * det.1 {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut flags = vec![false; v.len()];
    for &i in &bad {
        if i < flags.len() {
            flags[i] = true;
        }
    }
    let mut out = v.to_vec();
    badpix::repair(&mut out, det.0, det.1, &bad, &flags);
    std::borrow::Cow::Owned(out)
}

/// Start the masked-CoM job unless there is a result or one is running.
pub fn start(s: &mut State) {
    if s.dpc.com.is_some() || s.dpc.job.as_ref().is_some_and(|j| !j.state().finished()) {
        return;
    }
    let p = Progress::new("dpc", s.ds.positions_present() as u64);
    s.dpc.job = Some(p.clone());
    s.dpc.error = None;
    let job = DpcJob {
        mask: MaskChoice::Bf,
        dpc: DpcOptions::default(),
        keep_bad_pixels: s.quant.keep_bad,
        user_bad: s.quant.user_bad.clone(),
        memory_budget: s.memory_budget,
        cache_dir: if s.demo { None } else { s.cache_dir.clone() },
        emd_cache: !s.demo,
    };
    let (ds, tx) = (s.ds.clone(), s.tx.clone());
    s.jobs.table.spawn(
        p,
        move |p| {
            let c = crate::ops::dpc::com(ds.as_ref(), &job, p)?;
            if c.origin != crate::ops::overview::Origin::Computed {
                p.set_message(c.origin.describe());
            }
            let _ = tx.send(AppEvent::DpcCom(Box::new(c)));
            Ok(())
        },
        |p, r| {
            if let Err(e) = r
                && !matches!(e, crate::Error::Cancelled)
            {
                log::warn!("{}: {e}", p.name);
            }
        },
    );
    s.status = "DPC: computing the masked centre of mass".into();
}

/// The masked CoM arrived: orient it.
pub fn on_com(s: &mut State, c: DpcCom) {
    s.dpc.com = Some(Arc::new(c));
    s.dpc.found = None;
    reorient(s);
    if let Some(o) = &s.dpc.outcome {
        s.status = format!(
            "DPC ({}): rotation {:.1} deg, flip {}, curl ratio {:.3}",
            o.origin.describe(),
            o.result.rotation_deg,
            yes_no(o.result.flip),
            o.result.curl_ratio
        );
    }
}

/// Recompute the result from the masked CoM with the current overrides.
fn reorient(s: &mut State) {
    let Some(c) = s.dpc.com.clone() else { return };
    let opts = DpcOptions { rotation_deg: s.dpc.rotation, flip: s.dpc.flip, descan: true };
    match crate::ops::dpc::orient(&c, &opts) {
        Ok(o) => {
            if s.dpc.rotation.is_none() && s.dpc.flip.is_none() {
                s.dpc.found = Some((o.result.rotation_deg, o.result.flip, o.result.curl_ratio));
            }
            s.dpc.outcome = Some(o);
            s.dpc.error = None;
        }
        Err(e) => s.dpc.error = Some(e.to_string()),
    }
    s.dpc.version += 1;
}

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
    let super::app::Popup::Rotation(text) = &mut s.popup else { return };
    match a {
        Action::PromptChar(c) if text.len() < 16 => text.push(c),
        Action::PromptBack => {
            text.pop();
        }
        Action::No => {
            s.popup = super::app::Popup::None;
            s.status = "rotation unchanged".into();
        }
        Action::Yes => match parse_rotation(text) {
            Err(e) => s.status = e,
            Ok(deg) => {
                s.popup = super::app::Popup::None;
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
pub fn render_prompt(text: &str, f: &mut Frame, r: Rect) {
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

/// `i`, `,` `.` `<` `>`, `/`, `0`, `R`.
pub fn action(s: &mut State, a: Action) {
    if let Action::DpcView = a {
        if s.toggle_layout(ViewLayout::Dpc) {
            start(s);
        }
        return;
    }
    let Some(o) = &s.dpc.outcome else {
        s.status = "no DPC result yet (i: DPC view)".into();
        return;
    };
    let (rot, flip) = (o.result.rotation_deg, o.result.flip);
    match a {
        Action::DpcRotate(d) => {
            s.dpc.rotation = Some((s.dpc.rotation.unwrap_or(rot) + d as f64).rem_euclid(360.0));
            s.dpc.flip = Some(flip);
        }
        Action::DpcFlip => s.dpc.flip = Some(!flip),
        Action::DpcAuto => (s.dpc.rotation, s.dpc.flip) = (None, None),
        Action::DpcTypeRotation => {
            s.popup = super::app::Popup::Rotation(String::new());
            s.status = format!("DPC rotation now {:.1} deg: type the new one", s.dpc.rotation.unwrap_or(rot));
            return;
        }
        _ => return,
    }
    reorient(s);
    if let Some(o) = &s.dpc.outcome {
        s.status = format!(
            "DPC rotation {:.1} deg, flip {}, curl ratio {:.3}",
            o.result.rotation_deg,
            yes_no(o.result.flip),
            o.result.curl_ratio
        );
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// RGB of a direction (radians) at brightness `v` (0..1), full saturation.
pub fn wheel_colour(angle: f64, v: f64) -> [u8; 3] {
    let h = (angle / std::f64::consts::TAU).rem_euclid(1.0) * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let v = v.clamp(0.0, 1.0) * 255.0;
    [(r * v).round() as u8, (g * v).round() as u8, (b * v).round() as u8]
}

/// The field (vx, vy) (rows x cols) as a colour wheel raster of `w`x`h` display pixels: hue =
/// direction (x right, y down, as displayed), brightness = magnitude / its 99th percentile.
pub fn wheel_raster(vx: &[f32], vy: &[f32], cols: usize, rows: usize, w: usize, h: usize) -> Raster {
    let mut mags: Vec<f32> = vx.iter().zip(vy).map(|(a, b)| a.hypot(*b)).filter(|m| m.is_finite()).collect();
    mags.sort_unstable_by(f32::total_cmp);
    let top = mags.get((mags.len() as f64 * 0.99) as usize).or(mags.last()).copied().unwrap_or(0.0).max(1e-12) as f64;
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let i = (y * rows / h.max(1)).min(rows - 1) * cols + (x * cols / w.max(1)).min(cols - 1);
            let (a, b) = (vx[i] as f64, vy[i] as f64);
            px.push(if a.is_finite() && b.is_finite() { wheel_colour(b.atan2(a), a.hypot(b) / top) } else { [0; 3] });
        }
    }
    let mut r = Raster { w, h, px };
    draw_legend(&mut r);
    r
}

/// The wheel legend in the bottom-right corner: a disc whose colour at each point is that of a
/// field pointing from its centre to the point, as strong as the distance.
pub fn draw_legend(r: &mut Raster) {
    let rad = (r.w.min(r.h) / 6).clamp(3, 24) as i64;
    if r.w < 4 * rad as usize || r.h < 2 * rad as usize + 2 {
        return;
    }
    let (cx, cy) = (r.w as i64 - rad - 2, r.h as i64 - rad - 2);
    for dy in -rad - 1..=rad + 1 {
        for dx in -rad - 1..=rad + 1 {
            let d = ((dx * dx + dy * dy) as f64).sqrt();
            if d <= rad as f64 {
                r.set(cx + dx, cy + dy, wheel_colour((dy as f64).atan2(dx as f64), d / rad as f64));
            } else if d <= rad as f64 + 1.0 {
                r.set(cx + dx, cy + dy, [128, 128, 128]);
            }
        }
    }
}

/// Prepare the iCoM and colour-wheel panes (when their content or area changed).
pub fn prepare(s: &mut State, a: &render::Areas) {
    s.prepared.views = [None, None, None];
    s.prepared.right = None;
    let Some(o) = &s.dpc.outcome else {
        s.dpc.prepared = [None, None];
        return;
    };
    let key = s.dpc.version ^ (s.main.ov_version << 32);
    let (rows, cols) = (o.result.rows, o.result.cols);
    let ar = render::image_area(a.views[0]).0;
    if !s.dpc.prepared[0].as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
        let cur = s.main.cursor;
        let d = s.main.overview_display;
        s.dpc.prepared[0] = render::pane(s, &o.result.phase, cols, rows, ar, &d, |r, m| {
            images::draw_cursor(r, m, cur.0, cur.1);
        })
        .map(|sh| (key, ar, sh));
    }
    let ar = render::image_area(a.right).0;
    if !s.dpc.prepared[1].as_ref().is_some_and(|(k, r, _)| *k == key && *r == ar) {
        let (mw, mh) = images::pixel_box(s.graphics, Size::new(ar.width, ar.height), &s.picker);
        let (w, h) = images::fit(cols, rows, mw, mh);
        s.dpc.prepared[1] = if w == 0 || h == 0 {
            None
        } else {
            let r = wheel_raster(&o.result.com_x, &o.result.com_y, cols, rows, w, h);
            let readout =
                Readout { stats: None, range: None, clip: d_clip(s), colormap: s.main.overview_display.colormap };
            render::shown(s, r, ar, readout).map(|sh| (key, ar, sh))
        };
    }
}

fn d_clip(s: &State) -> (f32, f32) {
    s.main.overview_display.clip
}

/// The calibration lines of the metadata pane.
pub fn calib_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let c = &s.quant.calibration;
    let mut v = Vec::new();
    if let Some((st, u)) = &c.r {
        v.push(Line::from(vec![
            Span::styled("scan step ".to_string(), key),
            Span::raw(format!("{} {u}/px", images::num(*st))),
        ]));
    }
    if let Some((st, u)) = &c.q {
        let a = c.alpha_mrad.map(|a| format!(" (alpha {} mrad)", images::num(a))).unwrap_or_default();
        v.push(Line::from(vec![
            Span::styled("detector ".to_string(), key),
            Span::raw(format!("{} {u}/px{a}", images::num(*st))),
        ]));
    }
    v
}

/// The detector radii, as collection angles when the detector step is known.
pub fn radii_text(s: &State) -> String {
    let g = &s.main.geometry;
    match &s.quant.calibration.q {
        Some((st, u)) => {
            let f = |px: f32| images::num(px as f64 * st);
            format!("BF {}  ADF {}-{} {u}", f(g.bf_radius), f(g.adf_inner), f(g.adf_outer))
        }
        None => format!("BF {:.0}  ADF {:.0}-{:.0}", g.bf_radius, g.adf_inner, g.adf_outer),
    }
}

/// The bad-pixel line of the metadata pane.
pub fn bad_line(s: &State) -> Option<Line<'static>> {
    if let Some(b) = s.quant.bad.as_ref().filter(|b| b.too_few_frames && s.quant.user_bad.is_empty()) {
        return Some(Line::from(vec![
            Span::styled("bad px ".to_string(), Style::default().fg(Color::Cyan)),
            Span::raw(format!("{} ({} sampled)", badpix::TOO_FEW_FRAMES, b.frames)),
        ]));
    }
    let b = s.quant.bad.as_ref().filter(|b| !b.all().is_empty())?;
    let what = if s.quant.keep_bad { "kept (--keep-bad-pixels)" } else { "masked" };
    Some(Line::from(vec![
        Span::styled("bad px ".to_string(), Style::default().fg(Color::Cyan)),
        Span::raw(format!("{} hot, {} dead, {} yours: {what}", b.hot.len(), b.dead.len(), s.quant.user_bad.len())),
    ]))
}

/// A scale bar of a nice length (about 1/5 of the image) in `cells` columns showing `cols` scan
/// pixels of `step` `units`: the bar of `━` and its label, e.g. `━━━━ 10 nm`.
pub fn scale_bar_text(cells: u16, cols: usize, step: f64, units: &str) -> Option<String> {
    if cells < 8 || cols == 0 || !(step > 0.0) {
        return None;
    }
    let len = calib::nice_length(cols as f64 * step / 5.0);
    let per_cell = cols as f64 * step / cells as f64;
    let n = (len / per_cell).round().max(1.0) as usize;
    let label = if len >= 1.0 { format!("{len:.0}") } else { format!("{len}") };
    let t = format!("{} {label} {units}", "━".repeat(n));
    (t.chars().count() <= cells as usize).then_some(t)
}

/// Draw the scale bar over the bottom-left of a scan image's cells (calibrated scans only).
pub fn draw_scale_bar(s: &State, f: &mut Frame, cells: Rect, scan_cols: usize) {
    let Some((step, units)) = &s.quant.calibration.r else { return };
    let Some(t) = scale_bar_text(cells.width, scan_cols, *step, units) else { return };
    if cells.height == 0 {
        return;
    }
    let r = Rect { y: cells.y + cells.height - 1, height: 1, width: t.chars().count() as u16, ..cells };
    f.render_widget(Paragraph::new(Span::styled(t, Style::default().fg(Color::White).bg(Color::Black))), r);
}

fn meta_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let kv = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(v)]);
    let mut v = vec![kv("file", s.file_name.clone())];
    match (&s.dpc.outcome, &s.dpc.job) {
        (Some(o), _) => {
            let r = &o.result;
            let set = |given: bool| if given { "set" } else { "found" };
            v.push(kv("CoM", o.origin.describe().to_string()));
            v.push(kv("rotation", format!("{:.1}° ({})", r.rotation_deg, set(s.dpc.rotation.is_some()))));
            v.push(kv("flip", format!("{} ({})", yes_no(r.flip), set(s.dpc.flip.is_some()))));
            v.push(kv("curl ratio", format!("{:.3}", r.curl_ratio)));
            if let Some((t, fl, c)) = s.dpc.found
                && (s.dpc.rotation.is_some() || s.dpc.flip.is_some())
            {
                v.push(kv("found", format!("{t:.1}°, flip {}, curl {c:.3}", yes_no(fl))));
            }
            if let Some([x, y]) = r.descan {
                v.push(kv("descan x", format!("{:.2} {:+.4}c {:+.4}r", x.a, x.b_col, x.c_row)));
                v.push(kv("descan y", format!("{:.2} {:+.4}c {:+.4}r", y.a, y.b_col, y.c_row)));
            }
            v.push(kv("mask", format!("BF disk, {} px", o.mask_pixels)));
        }
        (None, Some(j)) if !j.state().finished() => {
            v.push(kv("DPC", format!("computing {:.0}%", j.fraction() * 100.0)))
        }
        _ => v.push(kv("DPC", "none".into())),
    }
    if let Some(e) = &s.dpc.error {
        v.push(Line::from(Span::styled(format!("! {e}"), Style::default().fg(Color::Red))));
    }
    v.extend(calib_lines(s));
    v.extend(bad_line(s));
    v.push(Line::raw(""));
    v.push(Line::from(Span::styled(", . ±1°  < > ±15°  / flip  0 found", Style::default().fg(Color::DarkGray))));
    v
}

/// The DPC layout: metadata, iCoM, colour wheel.
pub fn render(s: &State, f: &mut Frame, a: &render::Areas) {
    f.render_widget(
        Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(render::block(" DPC ".into())),
        a.meta,
    );
    let wait = match &s.dpc.job {
        Some(j) if !j.state().finished() => format!("computing the masked CoM: {:.0}%", j.fraction() * 100.0),
        _ => s.dpc.error.clone().unwrap_or_else(|| "no DPC result".into()),
    };
    let (cur, p) = (s.main.cursor, s.pos());
    let val = s.dpc.outcome.as_ref().and_then(|o| o.result.phase.get(p).copied()).filter(|v| v.is_finite());
    let t = format!(
        " iCoM phase ({}, {}){} ",
        cur.0,
        cur.1,
        val.map(|v| format!(" = {}", images::num(v as f64))).unwrap_or_default()
    );
    let shown = s.dpc.prepared[0].as_ref().map(|(_, _, v)| v);
    render::image_pane(f, a.views[0], t, shown, Some(wait.clone()));
    let cols = s.dpc.outcome.as_ref().map(|o| o.result.cols).unwrap_or(0);
    if let Some(v) = shown {
        draw_scale_bar(s, f, v.cells, cols);
    }
    let shown = s.dpc.prepared[1].as_ref().map(|(_, _, v)| v);
    let t =
        if a.right.width >= 44 { " CoM field (hue = direction, brightness = |CoM|) " } else { " CoM colour wheel " };
    render::image_pane(f, a.right, t.into(), shown, Some(wait));
    if let Some(v) = shown {
        draw_scale_bar(s, f, v.cells, cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_colours_follow_the_direction_and_magnitude() {
        assert_eq!(wheel_colour(0.0, 1.0), [255, 0, 0]); // +x: red
        assert_eq!(wheel_colour(std::f64::consts::PI, 1.0), [0, 255, 255]); // -x: cyan
        assert_eq!(wheel_colour(0.0, 0.0), [0, 0, 0]);
        // a field pointing right on the left half, down on the right half, stronger on the right
        let (vx, vy) = (vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 2.0, 0.0, 2.0]);
        let r = wheel_raster(&vx, &vy, 2, 2, 2, 2);
        assert_eq!(r.get(0, 0)[0], 128, "half of the 99th-percentile magnitude: red at half value");
        let down = wheel_colour(std::f64::consts::FRAC_PI_2, 1.0);
        assert_eq!(r.get(1, 1), down);
        assert!(down[1] > 200 && down[0] > 100 && down[2] == 0, "down is yellow-green: {down:?}");
    }

    #[test]
    fn legend_is_drawn_in_the_corner() {
        let mut r = Raster { w: 60, h: 40, px: vec![[0; 3]; 2400] };
        draw_legend(&mut r);
        let rad = 6i64;
        let (cx, cy) = (60 - rad - 2, 40 - rad - 2);
        assert_eq!(r.get((cx + rad - 1) as usize, cy as usize), wheel_colour(0.0, (rad - 1) as f64 / rad as f64));
        assert_eq!(r.get(0, 0), [0; 3]);
    }

    #[test]
    fn scale_bar_text_has_a_nice_length() {
        // 100 px of 0.5 nm in 40 cells: 10 nm = 8 cells
        assert_eq!(scale_bar_text(40, 100, 0.5, "nm").unwrap(), format!("{} 10 nm", "━".repeat(8)));
        assert!(scale_bar_text(4, 100, 0.5, "nm").is_none());
        assert!(scale_bar_text(40, 100, 0.0, "nm").is_none());
    }

    #[test]
    fn masked_frame_replaces_only_the_bad_pixels() {
        let mut q = Quant::default();
        let mut mean = vec![1.0f32; 25];
        mean[12] = 1000.0;
        q.set_mean(&mean, (5, 5), 10);
        assert_eq!(q.replaced(), vec![12]);
        let f = masked_frame(&q, &mean, (5, 5));
        assert_eq!(f[12], 1.0);
        assert_eq!(f.iter().filter(|&&v| v == 1.0).count(), 25);
        q.keep_bad = true;
        assert_eq!(masked_frame(&q, &mean, (5, 5))[12], 1000.0);
    }
}
