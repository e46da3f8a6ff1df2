//! The ptychography view of the main screen (`P`): the SSB phase image beside the iCoM (top right)
//! and the bright field (bottom right) computed from the same scan-axes FFT, each with its colour
//! bar and a scale bar, and the run (disk, rotation, flip, trotter coverage, defocus) in the
//! metadata pane. The job is `ops::ptycho` on the EMD of the file (a `.mib` is converted first,
//! the scan-axes FFT computed when missing: the user is asked before either, as for `F`); `x`
//! cancels it, `e` exports the phase. A result stored in the EMD (by `emdtui ptycho` or an
//! earlier session) for the current FFT is shown at once whatever its parameters; a new run uses
//! the calibration given at launch (`--energy`, `--alpha` or `--q-pixel`, `--scan-step`) in focus.

use super::app::{AppEvent, Confirm, Popup, State, ViewLayout};
use super::images;
use super::keys::Action;
use super::render;
use super::view_state::ptycho::PtychoShown;
use crate::jobs::{JobState, Progress};
use crate::ops::ptycho::{Origin, PtychoOptions, PtychoOutcome};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;

/// How the UI says where a result came from.
pub fn describe(o: &Origin) -> &'static str {
    match o {
        Origin::Cache => "loaded from the EMD cache",
        Origin::Computed { fft: Some(_) } => "computed (FFT computed first)",
        Origin::Computed { fft: None } => "computed",
    }
}

/// The EMD the job reads and writes: this file, or the conversion of this `.mib`.
fn emd_of(s: &State) -> std::path::PathBuf {
    if s.is_mib { s.emd_path() } else { s.path.clone() }
}

/// The SSB options of the view: no defocus, except on the built-in demo, which knows the defocus
/// it was made with.
fn options(s: &State) -> PtychoOptions {
    let defocus_a = if s.demo { crate::ops::demo::phase_spec().defocus_a } else { 0.0 };
    PtychoOptions { defocus_a, ..Default::default() }
}

/// Show the result, or start (or ask for) the job that makes it.
pub fn start(s: &mut State) {
    if s.ptycho.shown.is_some() {
        s.ptycho.version += 1;
        return;
    }
    if s.ptycho.running() {
        s.status = "ptychography is being computed (x cancels)".into();
        return;
    }
    let emd = emd_of(s);
    if emd.exists()
        && let Ok(emd_ds) = crate::dataset::open(&emd, &Default::default())
        && let Some(r) = crate::ops::ptycho::cached(emd_ds.as_ref(), &emd)
    {
        s.ptycho.shown = Some(PtychoShown { result: Arc::new(r), origin: "loaded from the EMD cache".into() });
        s.ptycho.version += 1;
        return;
    }
    if let Err(e) = crate::ops::ptycho::params(&s.quant.calibration, &options(s)) {
        s.status = e.to_string();
        s.ptycho.blocked = Some(e.to_string());
        return;
    }
    s.ptycho.blocked = None;
    if s.demo {
        // the demo is small: converted into the cache directory and computed without asking
        return run_job(s);
    }
    let name = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let (bytes, free) = s.fft_estimate();
    let size = humansize::format_size(bytes, humansize::BINARY);
    let free = free.map(|f| humansize::format_size(f, humansize::BINARY)).unwrap_or("unknown".into());
    let question = if s.is_mib && !emd.exists() {
        format!(
            "Ptychography needs the EMD and its 4D FFT.\nConvert to {name} and compute the FFT (about {size}, free {free}) now? (y/n)"
        )
    } else if crate::store::fft::FftCache::open(&emd).is_err() {
        format!("Ptychography needs the 4D FFT.\nCompute it into {name} (about {size}, free {free}) now? (y/n)")
    } else {
        return run_job(s);
    };
    s.popup = Popup::Confirm(Confirm::Ptycho, question);
}

/// The `ops::ptycho` job (after the user agreed, or with nothing to ask).
pub fn run_job(s: &mut State) {
    if s.ptycho.running() {
        return;
    }
    let params = match crate::ops::ptycho::params(&s.quant.calibration, &options(s)) {
        Ok(p) => p,
        Err(e) => {
            s.status = e.to_string();
            return;
        }
    };
    let p = Progress::new("ptycho", 0);
    s.ptycho.job = Some(p.clone());
    let (ds, tx, budget, emd) = (s.ds.clone(), s.tx.clone(), s.memory_budget, emd_of(s));
    let (copts, fopts) = (s.convert_options(), s.fft_options());
    // the result is written into the EMD, which needs this process's readers of it closed: the
    // FFT explorer's handle is let go and opened again when the job ends
    let reopen = s.fft.source.take().is_some();
    let tx2 = tx.clone();
    s.jobs.table.spawn(
        p,
        move |p| {
            let r = crate::ops::fft::ensure_emd(ds, &emd, &copts, p).and_then(|(emd_ds, _)| {
                crate::ops::ptycho::load_or_compute(emd_ds.as_ref(), &emd, &params, true, budget, p, &fopts)
            });
            if reopen && let Ok(c) = crate::store::fft::FftCache::open(&emd) {
                let _ = tx.send(AppEvent::FftReady(Arc::new(c)));
            }
            let _ = tx.send(AppEvent::Ptycho(Box::new(r?)));
            Ok(())
        },
        move |p, r| {
            let msg = match r {
                Ok(()) => return,
                Err(crate::Error::Cancelled) => "ptychography cancelled".to_string(),
                Err(e) => format!("ptychography failed: {e}"),
            };
            let _ = tx2.send(AppEvent::JobEnded(p.kind, msg));
        },
    );
    // selected in the jobs panel, so `x` cancels it
    if let Some(i) = s.jobs.table.list().iter().position(|j| s.ptycho.job.as_ref().is_some_and(|t| Arc::ptr_eq(j, t))) {
        s.jobs.selected = i;
    }
    s.status = "ptychography (SSB): computing (x cancels)".into();
}

/// A result arrived: keep it and show it.
pub fn on_result(s: &mut State, o: PtychoOutcome) {
    let origin = describe(&o.origin).to_string();
    let m = &o.result.summary;
    s.status = format!(
        "ptychography ({origin}): rotation {:.1} deg, flip {}, {:.0} % of Q with trotters",
        m.rotation_deg,
        if m.flip { "yes" } else { "no" },
        m.q_with_trotter * 100.0
    );
    s.ptycho.shown = Some(PtychoShown { result: Arc::new(o.result), origin });
    s.ptycho.version += 1;
}

/// `P`: view on / off.
pub fn action(s: &mut State, a: Action) {
    if a == Action::PtychoView && s.toggle_layout(ViewLayout::Ptycho) {
        start(s);
    }
}

/// The image `e` exports: (values, cols, rows, name).
pub fn export(s: &State) -> Option<(Vec<f32>, usize, usize, String)> {
    let r = &s.ptycho.shown.as_ref()?.result;
    Some((r.phase.clone(), r.scan.1, r.scan.0, "ssb_phase".into()))
}

/// The right column: iCoM above, BF below.
fn right_split(right: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(right)
}

/// Prepare the three panes (when their content or area changed).
pub fn prepare(s: &mut State, a: &render::Areas) {
    s.prepared.views = [None, None, None];
    s.prepared.right = None;
    let Some(cur) = s.ptycho.shown.clone() else {
        s.ptycho.prepared = [None, None, None];
        return;
    };
    let r = cur.result;
    let key = s.ptycho.version ^ (s.main.ov_version << 32);
    let [top, bottom] = right_split(a.right);
    let d = s.main.overview_display;
    let c = s.main.cursor;
    for (i, (img, area)) in [(&r.phase, a.views[0]), (&r.icom, top), (&r.bf, bottom)].into_iter().enumerate() {
        let ar = render::image_area(area).0;
        if s.ptycho.prepared[i].as_ref().is_some_and(|(k, a, _)| *k == key && *a == ar) {
            continue;
        }
        s.ptycho.prepared[i] = render::pane(s, img, r.scan.1, r.scan.0, ar, &d, |ras, m| {
            images::draw_cursor(ras, m, c.0, c.1);
        })
        .map(|sh| (key, ar, sh));
    }
}

fn meta_lines(s: &State) -> Vec<Line<'static>> {
    let key = Style::default().fg(Color::Cyan);
    let kv = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k} "), key), Span::raw(v)]);
    let mut v = vec![kv("file", s.file_name.clone())];
    match &s.ptycho.shown {
        Some(c) => {
            let r = &c.result;
            let m = &r.summary;
            v.push(kv("SSB", c.origin.clone()));
            v.push(kv("energy", format!("{:.0} kV (λ {:.5} Å)", r.params.energy_v / 1e3, m.wavelength_a)));
            v.push(kv("alpha", format!("{:.2} mrad (a {:.3} 1/Å)", m.alpha_mrad, m.disk_radius_inv_a)));
            v.push(kv(
                "scan step",
                format!("{} Å (Nyquist {:.3} 1/Å)", images::num(r.params.scan_step_a), m.q_nyquist_inv_a),
            ));
            v.push(kv("defocus", format!("{} Å", images::num(r.params.defocus_a))));
            v.push(kv(
                "disk",
                format!(
                    "({:.1}, {:.1}) r {:.1} px, {} px ({})",
                    m.disk.centre[0],
                    m.disk.centre[1],
                    m.disk.radius,
                    m.disk.pixels,
                    if m.disk.found { "found" } else { "given" }
                ),
            ));
            v.push(kv(
                "rotation",
                format!(
                    "{:.1}°, flip {} ({}, curl {:.3})",
                    m.rotation_deg,
                    if m.flip { "yes" } else { "no" },
                    if m.orientation_found { "found" } else { "given" },
                    m.curl_ratio
                ),
            ));
            v.push(kv("trotters", format!("{:.0} % of Q", m.q_with_trotter * 100.0)));
            let p = s.pos();
            if let Some(x) = r.phase.get(p).filter(|x| x.is_finite()) {
                v.push(kv(
                    "phase",
                    format!("{} rad at ({}, {})", images::num(*x as f64), s.main.cursor.0, s.main.cursor.1),
                ));
            }
            if !s.deterministic {
                v.push(kv("time", format!("{:.2} s", m.seconds)));
            }
        }
        None => v.push(kv("SSB", wait_text(s))),
    }
    v.extend(super::widgets::quant::calib_lines(&s.quant));
    v.push(Line::raw(""));
    v.push(Line::from(Span::styled("P view  x cancel  e export", Style::default().fg(Color::DarkGray))));
    v
}

/// What the panes say while there is no result.
fn wait_text(s: &State) -> String {
    if let Some(b) = &s.ptycho.blocked {
        return b.clone();
    }
    match &s.ptycho.job {
        Some(j) if j.state() == JobState::Failed => format!("failed: {}", j.message()),
        Some(j) if j.state() == JobState::Cancelled => "cancelled (P P: start again)".into(),
        Some(j) if !j.state().finished() => {
            let m = j.message();
            let pct = format!("{:.0}%", j.fraction() * 100.0);
            if m.is_empty() { format!("computing {pct}") } else { format!("{m} {pct}") }
        }
        _ => "not computed (P: compute)".into(),
    }
}

/// The ptychography layout: metadata, SSB phase, iCoM over BF.
pub fn render(s: &State, f: &mut Frame, a: &render::Areas) {
    f.render_widget(
        Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(render::block(" ptychography ".into())),
        a.meta,
    );
    let wait = wait_text(s);
    let cols = s.ptycho.shown.as_ref().map(|x| x.result.scan.1).unwrap_or(0);
    let [top, bottom] = right_split(a.right);
    let titles = [" SSB phase (rad) ", " iCoM (same FFT) ", " bright field (same FFT) "];
    for (i, area) in [a.views[0], top, bottom].into_iter().enumerate() {
        let shown = s.ptycho.prepared[i].as_ref().map(|(_, _, v)| v);
        render::image_pane(f, area, titles[i].into(), shown, Some(wait.clone()));
        if let Some(v) = shown {
            super::widgets::scale_bar::draw_scale_bar(&s.quant.calibration, f, v.cells, cols);
        }
    }
}
