//! `on_event`: terminal input, background results and the tick, applied to the state.

use super::state::*;
use crate::tui::follow::Poll;
use std::time::{Duration, Instant};

/// Poll a growing file (when due): extend the dataset, move the cursor to the newest frame when
/// tracking, run the new frames through the overview.
pub(crate) fn follow_tick(s: &mut State) -> bool {
    let now = Instant::now();
    if !s.follow.due(now) {
        return false;
    }
    let total = s.ds.scan().positions();
    let replaced = s.ds.replaced();
    let present = if replaced { s.follow.frames } else { s.ds.refresh().min(total) };
    let poll = s.follow.observe(present, total, replaced, now);
    if matches!(poll, Poll::Grew(_) | Poll::Shrank(_)) {
        // the dataset pane's frame count, size and positions present
        s.info.metadata = s.ds.metadata_now();
    }
    match poll {
        Poll::Grew(n) => {
            if s.follow.track {
                s.track_newest(n);
            }
            s.extend_overview();
        }
        // also picks up the frames that arrived while the first pass ran
        Poll::Same => s.extend_overview(),
        Poll::Shrank(_) | Poll::Replaced | Poll::Idle => {}
    }
    true
}

/// Apply a background event. Returns true when the screen should be redrawn.
pub fn on_event(s: &mut State, e: AppEvent) -> bool {
    match e {
        AppEvent::Input(_) => false,
        AppEvent::FrameReady(p) => {
            if p == s.pos()
                && s.main.frame.as_ref().is_none_or(|(fp, _)| *fp != p)
                && let Some(f) = s.loader.get(p)
            {
                s.main.frame = Some((p, f));
                s.main.frame_version += 1;
                crate::tui::eels::sync(s);
                return true;
            }
            false
        }
        AppEvent::Overview(g, o) => s.main.apply_overview(g, *o, false),
        AppEvent::OverviewDone(g, o) => s.main.apply_overview(g, *o, true),
        AppEvent::BadPixels(b) => {
            s.quant.bad = Some(*b);
            s.main.frame_version += 1;
            true
        }
        AppEvent::DpcCom(c) => {
            crate::tui::dpc::on_com(s, *c);
            true
        }
        AppEvent::Tcbf(o) => {
            crate::tui::tcbf::on_result(s, *o);
            true
        }
        AppEvent::Ptycho(o) => {
            crate::tui::ptycho::on_result(s, *o);
            true
        }
        AppEvent::RoiMean(g, v, n) => {
            if g == s.main.roi_gen {
                s.main.roi_mean = Some((v, n));
                s.main.frame_version += 1;
            }
            true
        }
        AppEvent::FftReady(src) => {
            s.set_fft(src);
            s.status = "FFT ready".into();
            true
        }
        AppEvent::Custom(g, r) => s.custom_ready(g, r),
        AppEvent::JobEnded(_, msg) => {
            s.status = msg;
            true
        }
        AppEvent::SpectrumImage(si) => crate::tui::eels::loaded(s, si),
        AppEvent::Tick => {
            // a job that just ended: the jobs panel shows its final state (its result may have
            // been drawn before the job thread marked it finished)
            let ended = s.jobs.table.list().iter().any(|j| j.ended_within(Duration::from_secs(1)));
            let mut redraw = s.any_running() | ended | follow_tick(s);
            if s.eels.is_some() {
                crate::tui::eels::sync(s); // the cursor may have followed a growing acquisition
            }
            if let Some(t) = s.main.geometry_changed
                && t.elapsed() >= Duration::from_millis(300)
            {
                s.main.geometry_changed = None;
                s.start_overview();
                s.start_custom();
                redraw = true;
            }
            redraw
        }
    }
}
