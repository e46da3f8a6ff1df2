//! The DPC view of the main screen (`i`): the iCoM phase image and the corrected CoM field as a
//! colour wheel (hue = direction, brightness = magnitude, with a wheel legend), the found (or
//! set) rotation, flip and curl ratio in the metadata pane; `,`/`.` turn by 1 degree, `<`/`>` by
//! 15, `/` flips, `0` goes back to the found orientation — each recomputed from the masked CoM
//! kept in memory (milliseconds). The masked CoM is the `ops::dpc` job (cached in the EMD or the
//! cache directory). The view's state is [`DpcView`](crate::tui::view_state::dpc::DpcView); the
//! rotation prompt is `popups::rotation`.

use super::app::{AppEvent, Popup, State, ViewLayout};
use super::images::{self, Readout};
use super::keys::Action;
use super::render;
use super::widgets::quant::{bad_line, calib_lines};
use super::widgets::scale_bar::draw_scale_bar;
use super::widgets::wheel::wheel_raster;
use crate::compute::dpc::DpcOptions;
use crate::jobs::Progress;
use crate::ops::dpc::{DpcCom, DpcJob, MaskChoice};
use ratatui::Frame;
use ratatui::layout::Size;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;

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
pub(crate) fn reorient(s: &mut State) {
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
            s.popup = Popup::Rotation(String::new());
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

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
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
    v.extend(calib_lines(&s.quant));
    v.extend(bad_line(&s.quant));
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
        draw_scale_bar(&s.quant.calibration, f, v.cells, cols);
    }
    let shown = s.dpc.prepared[1].as_ref().map(|(_, _, v)| v);
    let t =
        if a.right.width >= 44 { " CoM field (hue = direction, brightness = |CoM|) " } else { " CoM colour wheel " };
    render::image_pane(f, a.right, t.into(), shown, Some(wait));
    if let Some(v) = shown {
        draw_scale_bar(&s.quant.calibration, f, v.cells, cols);
    }
}
