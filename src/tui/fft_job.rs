//! The background job of the views computed from the scan-axes FFT (tcBF `b`, ptychography `P`),
//! written once: the question before converting a `.mib` or computing the FFT, and the job that
//! runs the view's `ops` workflow on the FFT workflow's job and sends its result. The result is
//! sent when the job has ended (its state is final), so the screen that shows it shows the jobs
//! panel with the job finished.

use super::app::{AppEvent, Confirm, Popup, State};
use crate::jobs::Progress;
use crate::ops::fft::{FftJob, FftSink, FftWant};
use crate::tui::app::jobs::JobSink;
use std::path::PathBuf;
use std::sync::Arc;

/// The EMD the job reads and writes: this file, or the conversion of this `.mib`.
pub fn emd_of(s: &State) -> PathBuf {
    if s.is_mib { s.emd_path() } else { s.path.clone() }
}

/// Asks (a popup with `confirm`) before converting the `.mib` or computing the FFT; true when
/// there is nothing to ask (the EMD and its FFT are there: run the job now). `what` names the
/// view in the question ("tcBF", "Ptychography").
pub fn ask_first(s: &mut State, what: &str, confirm: Confirm) -> bool {
    let emd = emd_of(s);
    let name = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let (bytes, free) = s.fft_estimate();
    let size = humansize::format_size(bytes, humansize::BINARY);
    let free = free.map(|f| humansize::format_size(f, humansize::BINARY)).unwrap_or("unknown".into());
    let question = if s.is_mib && !emd.exists() {
        format!(
            "{what} needs the EMD and its 4D FFT.\nConvert to {name} and compute the FFT (about {size}, free {free}) now? (y/n)"
        )
    } else if crate::store::fft::FftCache::open(&emd).is_err() {
        format!("{what} needs the 4D FFT.\nCompute it into {name} (about {size}, free {free}) now? (y/n)")
    } else {
        return true;
    };
    s.popup = Popup::Confirm(confirm, question);
    false
}

/// The view's workflow: the FFT workflow's job (scan-axes FFT of this file) and where it reports.
pub type Work<T> = Box<dyn FnOnce(FftJob, &dyn FftSink) -> crate::Result<T> + Send>;

/// Start the job `p` running `work` on the FFT job of this file; its result goes to the UI as
/// `event(result)` once the job has ended, failures and a cancel as a status line starting with
/// `what` ("tcBF", "ptychography"). The job is selected in the jobs panel (so `x` cancels it).
pub fn spawn<T: Send + 'static>(
    s: &mut State,
    p: Arc<Progress>,
    what: &'static str,
    work: Work<T>,
    event: fn(Box<T>) -> AppEvent,
) {
    let (src, tx, budget, emd) = (s.ds.clone(), s.tx.clone(), s.memory_budget, emd_of(s));
    let (convert, run) = (s.convert_options(), s.fft_options());
    // the result is written into the EMD, which needs this process's readers of it closed: the
    // FFT explorer's handle is let go and opened again when the job ends
    let reopen = s.fft.source.take().is_some();
    let tx2 = tx.clone();
    s.jobs.table.spawn(
        p.clone(),
        move |p| {
            let fft = FftJob { src, emd: emd.clone(), convert, want: FftWant::ScanAxes, budget, run };
            let r = work(fft, &JobSink::new(p, &tx));
            if reopen && let Ok(c) = crate::store::fft::FftCache::open(&emd) {
                let _ = tx.send(AppEvent::FftReady(Arc::new(c)));
            }
            r
        },
        move |p, r| {
            let ev = match r {
                Ok(t) => event(Box::new(t)),
                Err(crate::Error::Cancelled) => AppEvent::JobEnded(p.kind, format!("{what} cancelled")),
                Err(e) => AppEvent::JobEnded(p.kind, format!("{what} failed: {e}")),
            };
            let _ = tx2.send(ev);
        },
    );
    if let Some(i) = s.jobs.table.list().iter().position(|j| Arc::ptr_eq(j, &p)) {
        s.jobs.selected = i;
    }
}
