//! The ptychography view of the main screen (`P`): the SSB phase image beside the iCoM (top right)
//! and the bright field (bottom right) computed from the same scan-axes FFT, each with its colour
//! bar and a scale bar, and the run (disk, rotation, flip, trotter coverage, defocus) in the
//! metadata pane. The job is `ops::ptycho` on the EMD of the file (a `.mib` is converted first,
//! the scan-axes FFT computed when missing: the user is asked before either, as for `F`); `x`
//! cancels it, `e` exports the phase. A result stored in the EMD (by `emdtui ptycho` or an
//! earlier session) for the current FFT is shown at once whatever its parameters; a new run uses
//! the calibration given at launch (`--energy`, `--alpha` or `--q-pixel`, `--scan-step`; the
//! panes say which flags are missing) and the defocus asked for: `(` `)` -/+10 nm, `;` `'` -/+1
//! nm, `Z` back to 0, `T` the defocus of this session's tcBF fit; each change recomputes in the
//! background (results of the session come back at once, the EMD keeps the last one).

use super::app::{AppEvent, Confirm, State, ViewLayout};
use super::images;
use super::keys::Action;
use super::render;
use super::view_state::ptycho::{PtychoShown, same_defocus};
use crate::jobs::{JobState, Progress};
use crate::ops::ptycho::{PtychoOptions, PtychoOutcome};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use std::sync::Arc;

/// Show the result at the defocus asked for (or, the first time, the one stored in the EMD), or
/// start (or ask for) the job that makes it.
pub fn start(s: &mut State) {
    begin(s, true)
}

/// [`start`]; with `stored` false a result stored in the EMD at another defocus is not shown.
fn begin(s: &mut State, stored: bool) {
    if s.ptycho.current().is_some() {
        s.ptycho.version += 1;
        return;
    }
    if s.ptycho.running() {
        s.status = format!("ptychography at {} is being computed (x cancels)", nm(s.ptycho.job_defocus_a));
        return;
    }
    if s.demo {
        s.status = "ptychography needs a file: the EMD and its 4D FFT (not the built-in demo)".into();
        return;
    }
    if stored && s.ptycho.results.is_empty() && show_stored(s) {
        return;
    }
    if let Some(why) = missing_calibration(s) {
        s.status = why.clone();
        s.ptycho.blocked = Some(why);
        return;
    }
    s.ptycho.blocked = None;
    if super::fft_job::ask_first(s, "Ptychography", Confirm::Ptycho) {
        run_job(s);
    }
}

/// The result stored in the EMD for its current FFT (by `emdtui ptycho` or an earlier session),
/// whatever its parameters: shown at once, its defocus the one asked for. False when none.
fn show_stored(s: &mut State) -> bool {
    let emd = super::fft_job::emd_of(s);
    if !emd.exists() {
        return false;
    }
    let Ok(emd_ds) = crate::dataset::open(&emd, &Default::default()) else { return false };
    let Some(r) = crate::ops::ptycho::cached(emd_ds.as_ref(), &emd) else { return false };
    s.ptycho.defocus_a = r.params.defocus_a;
    s.ptycho.push(PtychoShown { result: Arc::new(r), origin: "loaded from the EMD cache".into() });
    true
}

/// What the viewer must be started with for SSB, when something is missing: the flags by name,
/// with an example command line.
pub fn missing_calibration(s: &State) -> Option<String> {
    let c = &s.quant.calibration;
    let mut need = Vec::new();
    if c.energy_v.is_none() {
        need.push(("the accelerating voltage", "--energy 200kV"));
    }
    let angular = c.alpha_mrad.is_some() || c.q.as_ref().is_some_and(|(_, u)| u == "mrad" || u == "A^-1");
    if !angular {
        need.push(("the convergence semi-angle", "--alpha 22mrad"));
    }
    if !c.r.as_ref().is_some_and(|(_, u)| u == "A" || u == "nm") {
        need.push(("the scan step", "--scan-step 0.3A"));
    }
    if need.is_empty() {
        return None;
    }
    let what: Vec<&str> = need.iter().map(|n| n.0).collect();
    let flags: Vec<&str> = need.iter().map(|n| n.1).collect();
    let keep = if s.is_mib { "; remembered for this .mib" } else { "" };
    Some(format!(
        "SSB needs {}: quit and open again with `emdtui {} {}` (your values{keep})",
        what.join(", "),
        s.file_name,
        flags.join(" ")
    ))
}

/// A defocus as the view says it (nm, positive = underfocus; to 0.1 Å).
pub fn nm(defocus_a: f64) -> String {
    format!("{} nm", (defocus_a * 10.0).round() / 100.0 + 0.0)
}

/// A defocus in Å (to 0.1 Å).
fn angstrom(defocus_a: f64) -> String {
    format!("{} Å", (defocus_a * 10.0).round() / 10.0 + 0.0)
}

/// The `ops::ptycho` job at the defocus asked for (after the user agreed, or with nothing to ask).
pub fn run_job(s: &mut State) {
    if s.ptycho.running() {
        return;
    }
    let d = s.ptycho.defocus_a;
    let o = PtychoOptions { defocus_a: d, ..Default::default() };
    let params = match crate::ops::ptycho::params(&s.quant.calibration, &o) {
        Ok(p) => p,
        Err(e) => {
            s.status = e.to_string();
            return;
        }
    };
    let p = Progress::new("ptycho", 0);
    s.ptycho.job = Some(p.clone());
    s.ptycho.job_defocus_a = d;
    let work: super::fft_job::Work<PtychoOutcome> = Box::new(move |fft, sink| {
        crate::ops::ptycho::run(crate::ops::ptycho::PtychoJob { fft, params, use_cache: true }, sink)
    });
    super::fft_job::spawn(s, p, "ptychography", work, AppEvent::Ptycho);
    s.status = format!("ptychography (SSB) at defocus {}: computing (x cancels)", nm(d));
}

/// A result arrived: keep it, show it, and go on to the defocus asked for meanwhile.
pub fn on_result(s: &mut State, o: PtychoOutcome) {
    let origin = o.origin.describe().to_string();
    let m = &o.result.summary;
    s.status = format!(
        "ptychography ({origin}) at defocus {}: rotation {:.1} deg, flip {}, {:.0} % of Q with trotters",
        nm(o.result.params.defocus_a),
        m.rotation_deg,
        if m.flip { "yes" } else { "no" },
        m.q_with_trotter * 100.0
    );
    s.ptycho.push(PtychoShown { result: Arc::new(o.result), origin });
    if s.main.layout == ViewLayout::Ptycho && s.ptycho.current().is_none() {
        run_job(s);
    }
}

/// Ask for defocus `d` (Å): shown at once when this session has it, else computed (after the
/// job running) when the view is on.
fn set_defocus(s: &mut State, d: f64) {
    s.ptycho.defocus_a = d;
    s.ptycho.version += 1;
    s.status = format!("ptychography defocus {}", nm(d));
    if s.main.layout != ViewLayout::Ptycho {
        s.status.push_str(" (P shows it)");
    } else if s.ptycho.running() {
        s.status.push_str(": computed after the running job");
    } else {
        begin(s, false);
    }
}

/// The defocus of this session's tcBF fit (Å), rounded to 1 Å.
fn tcbf_defocus(s: &State) -> Option<f64> {
    s.tcbf.results.iter().rev().find_map(|r| r.result.aberrations.as_ref()?.defocus_A).map(f64::round)
}

/// `P` (view on / off) and the defocus keys.
pub fn action(s: &mut State, a: Action) {
    match a {
        Action::PtychoView if s.toggle_layout(ViewLayout::Ptycho) => start(s),
        Action::PtychoDefocus(step) => set_defocus(s, s.ptycho.defocus_a + step as f64),
        Action::PtychoDefocusZero => set_defocus(s, 0.0),
        Action::PtychoDefocusTcbf => match tcbf_defocus(s) {
            Some(d) => set_defocus(s, d),
            None => {
                s.status = "no tcBF fit with a defocus in Å in this session: b computes one (with --energy, \
                            --alpha and --scan-step)"
                    .into()
            }
        },
        _ => {}
    }
}

/// The image `e` exports: (values, cols, rows, name).
pub fn export(s: &State) -> Option<(Vec<f32>, usize, usize, String)> {
    let r = &s.ptycho.shown()?.result;
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
    let Some(cur) = s.ptycho.shown().cloned() else {
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
    match s.ptycho.shown() {
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
            v.push(kv("defocus", defocus_text(s, r.params.defocus_a)));
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
    v.push(Line::from(Span::styled(
        "P view  ( ) ; ' Z T defocus  x cancel  e export",
        Style::default().fg(Color::DarkGray),
    )));
    v
}

/// The defocus the result shown corrected, and the one asked for when it differs.
fn defocus_text(s: &State, used_a: f64) -> String {
    let used = format!("{} (used, {})", nm(used_a), angstrom(used_a));
    if same_defocus(used_a, s.ptycho.defocus_a) {
        return used;
    }
    let asked = nm(s.ptycho.defocus_a);
    let how = if s.ptycho.running() && same_defocus(s.ptycho.job_defocus_a, s.ptycho.defocus_a) {
        "computing"
    } else if s.ptycho.running() {
        "next"
    } else {
        "P P computes"
    };
    format!("{used}; asked {asked}: {how}")
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
        _ => format!("not computed at defocus {} (P: compute)", nm(s.ptycho.defocus_a)),
    }
}

/// The ptychography layout: metadata, SSB phase, iCoM over BF.
pub fn render(s: &State, f: &mut Frame, a: &render::Areas) {
    f.render_widget(
        Paragraph::new(meta_lines(s)).wrap(Wrap { trim: false }).block(render::block(" ptychography ".into())),
        a.meta,
    );
    let wait = wait_text(s);
    let cols = s.ptycho.shown().map(|x| x.result.scan.1).unwrap_or(0);
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

#[cfg(test)]
mod tests {
    #[test]
    fn defocus_text_in_nm_and_angstrom() {
        assert_eq!(super::nm(100.0), "10 nm");
        assert_eq!(super::nm(-15.0), "-1.5 nm");
        assert_eq!(super::nm(12.34), "1.23 nm");
        assert_eq!(super::nm(-0.0), "0 nm");
        assert_eq!(super::angstrom(150.0), "150 Å");
        assert_eq!(super::angstrom(-0.04), "0 Å");
    }
}
