//! `update(&mut State, Action)`: a popup takes an action first, then the view it concerns, then
//! the actions both screens share.

use super::state::*;
use crate::compute::diffractogram::Magnitude;
use crate::compute::display::{Colormap, clip_name, next_clip};
use crate::compute::overview::DetectorKind;
use crate::tui::keys::Action;

/// Apply one action: an open popup takes it first; then the view it concerns, or the actions
/// both screens share.
pub fn update(s: &mut State, a: Action) {
    s.dirty = true;
    if popup_action(s, a) {
        return;
    }
    if s.inspector.is_some() && a != Action::Quit {
        return crate::tui::inspector::action(s, a);
    }
    if s.eels.is_some() && a.diffraction_only() {
        s.status = "spectrum data: no virtual detectors, diffraction frames or 4D FFT".into();
        return;
    }
    update_view(s, a);
    if s.eels.is_some() {
        crate::tui::eels::sync(s);
    }
}

/// Hand an action to the view it concerns.
pub(crate) fn update_view(s: &mut State, a: Action) {
    match a {
        // the cursor keys and clicks act on the screen shown
        Action::Move(..) | Action::ClickOverview(..) => match s.screen {
            Screen::Main => main_action(s, a),
            Screen::Fft => fft_action(s, a),
        },
        // the key table offers these on their own screen only; a user binding (keys.json) may
        // send them from the other screen, and they still change their view
        Action::MoveDetector(..)
        | Action::Radius(_)
        | Action::InnerRadius(_)
        | Action::CycleDetector
        | Action::Roi
        | Action::ClearRoi
        | Action::Convert
        | Action::CycleLayout
        | Action::Diffractogram
        | Action::CycleCustom
        | Action::CustomResponse
        | Action::Ewpc => main_action(s, a),
        Action::FftRegion(_) | Action::FftReverse | Action::FftTrotters => fft_action(s, a),
        Action::EelsMove(_) | Action::EelsPage(_) | Action::EelsWidth(_) | Action::EelsLog => {
            crate::tui::eels::action(s, a)
        }
        Action::CycleScale | Action::CycleColormap | Action::CycleClip => display_action(s, a),
        Action::DpcView | Action::DpcRotate(_) | Action::DpcFlip | Action::DpcAuto | Action::DpcTypeRotation => {
            crate::tui::dpc::action(s, a)
        }
        Action::TcbfView | Action::TcbfUpsample => crate::tui::tcbf::action(s, a),
        Action::PtychoView | Action::PtychoDefocus(_) | Action::PtychoDefocusZero | Action::PtychoDefocusTcbf => {
            crate::tui::ptycho::action(s, a)
        }
        Action::Inspector => crate::tui::inspector::toggle(s),
        Action::InspectorMove(_) | Action::InspectorPage(_) | Action::InspectorFold(_) => {}
        Action::CancelJob | Action::SelectJob(_) => jobs_action(s, a),
        Action::Fft | Action::SwitchScreen | Action::Export | Action::Help | Action::Quit | Action::Follow => {
            shared_action(s, a)
        }
        // answers and typing outside a prompt
        Action::Yes | Action::No | Action::PromptChar(_) | Action::PromptBack => {}
    }
}

/// Help closes on any key (the keys that close popups do nothing else); a prompt swallows
/// everything but yes and no. True when the popup used the action up.
pub(crate) fn popup_action(s: &mut State, a: Action) -> bool {
    match (&s.popup, a) {
        (Popup::None, _) => false,
        (Popup::Help(_), Action::Help | Action::ClearRoi | Action::No | Action::Quit) => {
            s.popup = Popup::None;
            true
        }
        (Popup::Help(top), Action::Move(dr, 0)) => {
            s.popup = Popup::Help(top.saturating_add_signed(dr as isize));
            true
        }
        (Popup::Help(_), _) => {
            s.popup = Popup::None;
            false
        }
        (Popup::Confirm(c, _), Action::Yes) => {
            let c = c.clone();
            s.popup = Popup::None;
            confirmed(s, c);
            true
        }
        (Popup::Confirm(..), Action::No) => {
            s.popup = Popup::None;
            true
        }
        (Popup::Confirm(..), _) => true,
        (Popup::Rotation(_), _) => {
            crate::tui::popups::rotation::prompt(s, a);
            true
        }
    }
}

/// The user answered yes to `c`.
pub(crate) fn confirmed(s: &mut State, c: Confirm) {
    match c {
        Confirm::Quit => {
            s.jobs.cancel_all();
            s.quit = true;
        }
        Confirm::ConvertForFft => s.fft_if_it_fits(),
        Confirm::Fft => s.start_fft(),
        Confirm::Resume(_) => s.start_convert(),
        Confirm::ResumeFft(params) => s.start_fft_with(Some(params)),
        Confirm::Tcbf => crate::tui::tcbf::run_job(s),
        Confirm::Ptycho => crate::tui::ptycho::run_job(s),
    }
}

/// Actions on the main view: scan cursor, detector, ROI, conversion.
pub(crate) fn main_action(s: &mut State, a: Action) {
    let det = s.ds.det();
    match a {
        Action::Move(dy, dx) => {
            let (rows, cols) = (s.ds.scan().rows, s.ds.scan().cols);
            let r = (s.main.cursor.0 as i64 + dy as i64).clamp(0, rows as i64 - 1) as usize;
            let c = (s.main.cursor.1 as i64 + dx as i64).clamp(0, cols as i64 - 1) as usize;
            if (r, c) != s.main.cursor {
                s.set_cursor(r, c);
            }
        }
        Action::ClickOverview(col, row) => click_overview(s, col, row),
        Action::MoveDetector(dy, dx) => s.main.edit_geometry(det, |g| {
            g.center.0 += dy as f32;
            g.center.1 += dx as f32;
        }),
        Action::Radius(d) => {
            let adf = s.main.kind == DetectorKind::Adf;
            s.main.edit_geometry(det, |g| if adf { g.adf_outer += d as f32 } else { g.bf_radius += d as f32 });
        }
        Action::InnerRadius(d) => s.main.edit_geometry(det, |g| g.adf_inner += d as f32),
        Action::CycleDetector => {
            s.main.cycle_kind();
            s.status = format!("detector: {}", kind_label(s.main.kind));
        }
        Action::CycleCustom => s.cycle_custom(),
        Action::CustomResponse => s.toggle_response(),
        Action::Ewpc => s.toggle_ewpc(),
        Action::Roi => roi_corner(s),
        Action::ClearRoi => s.main.clear_roi(),
        Action::Convert => convert(s),
        Action::CycleLayout => {
            s.main.layout = s.main.layout.next();
            s.main.ov_version += 1;
            s.status = format!("layout: {}", s.main.layout.name());
        }
        Action::Diffractogram => {
            s.main.diffractogram = match s.main.diffractogram {
                None => Some(Magnitude::Sqrt),
                Some(Magnitude::Sqrt) => Some(Magnitude::Log),
                Some(Magnitude::Log) => None,
            };
            s.main.dgram_version += 1;
            s.status = match s.main.diffractogram {
                Some(m) => format!("diffractogram of the {} image ({})", kind_label(s.main.kind), m.name()),
                None => "diffraction frame".into(),
            };
        }
        _ => {}
    }
}

/// A click on the overview image moves the scan cursor there.
pub(crate) fn click_overview(s: &mut State, col: u16, row: u16) {
    if crate::tui::nav::click(s, col, row) {
        return;
    }
    let hit = s.prepared.views.iter().flatten().map(|(_, _, v)| v.cells).find(|r| {
        col >= r.x && row >= r.y && col < r.x + r.width && row < r.y + r.height && r.width > 0 && r.height > 0
    });
    let Some(r) = hit else { return };
    let (rows, cols) = (s.ds.scan().rows, s.ds.scan().cols);
    let y = ((row - r.y) as usize * rows / r.height as usize).min(rows - 1);
    let x = ((col - r.x) as usize * cols / r.width as usize).min(cols - 1);
    s.set_cursor(y, x);
}

/// `r`: the first press anchors a ROI at the cursor, the second closes it and starts its mean.
pub(crate) fn roi_corner(s: &mut State) {
    let cur = s.main.cursor;
    match s.main.roi_anchor.take() {
        None => {
            s.main.roi_anchor = Some(cur);
            s.main.roi = Some((cur, cur));
            s.main.ov_version += 1;
            s.status = "ROI: move to the opposite corner and press r".into();
        }
        Some(a0) => {
            let (r0, r1) = (a0.0.min(cur.0), a0.0.max(cur.0));
            let (c0, c1) = (a0.1.min(cur.1), a0.1.max(cur.1));
            s.main.roi = Some(((r0, c0), (r1, c1)));
            s.main.ov_version += 1;
            s.main.dgram_version += 1;
            s.status = format!("ROI rows {r0}..={r1}, cols {c0}..={c1}: mean diffraction");
            s.start_roi_mean();
        }
    }
}

/// `c`: convert a `.mib` to EMD unless the EMD is there already.
pub(crate) fn convert(s: &mut State) {
    if !s.is_mib {
        s.status = "already an EMD file".into();
    } else if s.emd_path().exists() {
        s.status = format!("{} exists already", s.emd_path().display());
    } else if s.eels.is_some() {
        crate::tui::eels::start_convert(s);
    } else {
        s.start_convert();
    }
}

/// Actions on the FFT explorer: its cursor, averaging region and view.
pub(crate) fn fft_action(s: &mut State, a: Action) {
    let f = &mut s.fft;
    match a {
        Action::Move(dy, dx) => f.move_cursor(dy, dx),
        Action::FftRegion(d) => {
            f.half = (f.half as i64 + d as i64).clamp(0, 16) as usize;
            f.refresh();
        }
        Action::FftReverse => {
            f.reverse = !f.reverse;
            f.refresh();
        }
        Action::FftTrotters => {
            f.trotters = !f.trotters;
            f.version += 1;
            s.status = format!("trotter overlay {}", if f.trotters { "on" } else { "off" });
        }
        _ => {}
    }
}

/// Display settings shared by both screens: diffraction scale, colour map, percentile clipping.
pub(crate) fn display_action(s: &mut State, a: Action) {
    let m = &mut s.main;
    match a {
        Action::CycleScale => {
            m.frame_display.scale = m.frame_display.scale.next();
            m.frame_version += 1;
            s.fft.version += 1;
            s.status = format!("diffraction scale: {}", m.frame_display.scale.name());
        }
        Action::CycleColormap => {
            let c = m.overview_display.colormap.next();
            let c = if c == Colormap::Twilight { c.next() } else { c };
            m.overview_display.colormap = c;
            m.frame_display.colormap = c;
            m.ov_version += 1;
            m.frame_version += 1;
            m.dgram_version += 1;
            s.fft.version += 1;
            s.status = format!("colour map: {}", c.name());
        }
        Action::CycleClip => {
            let c = next_clip(m.overview_display.clip);
            m.overview_display.clip = c;
            m.frame_display.clip = c;
            m.ov_version += 1;
            m.frame_version += 1;
            m.dgram_version += 1;
            s.fft.version += 1;
            s.status = format!("clipping: {}", clip_name(c));
        }
        _ => {}
    }
}

/// The jobs panel: cancel the selected job, select another.
pub(crate) fn jobs_action(s: &mut State, a: Action) {
    match a {
        Action::CancelJob => {
            s.status = match s.jobs.selected_job() {
                Some(j) if !j.state().finished() => {
                    j.cancel();
                    format!("cancelling {}", j.name)
                }
                Some(j) => format!("{} is not running", j.name),
                None => "no jobs".into(),
            }
        }
        Action::SelectJob(d) => s.jobs.select(d),
        _ => {}
    }
}

/// FFT, screen switch, export, help and quit.
pub(crate) fn shared_action(s: &mut State, a: Action) {
    match a {
        Action::Fft => s.want_fft(true),
        Action::SwitchScreen => match s.screen {
            Screen::Fft => s.screen = Screen::Main,
            Screen::Main => s.want_fft(false),
        },
        Action::Export => s.export(),
        Action::Follow => s.toggle_follow(),
        Action::Help => s.popup = Popup::Help(0),
        Action::Quit => {
            let n = s.jobs.user_jobs_running();
            if n > 0 {
                s.popup = Popup::Confirm(
                    Confirm::Quit,
                    format!("{n} job{} running. Cancel and quit? (y/n)", if n > 1 { "s" } else { "" }),
                );
            } else {
                s.quit = true;
            }
        }
        _ => {}
    }
}
