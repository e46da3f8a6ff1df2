//! Running engine work from Python: on a worker thread with the GIL released, while the calling
//! thread reports progress to a Python callback and checks for Ctrl-C (which sets the job's
//! cancel flag); errors become Python exceptions with the CLI's messages.

use emdtui::jobs::{JobState, Progress};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pyo3::create_exception!(_emdtui, EmdtuiError, pyo3::exceptions::PyException, "An error of the emdtui engine.");

/// How often the waiting thread wakes to report progress and check signals.
const TICK: Duration = Duration::from_millis(100);

/// The CLI's one-line message of an error (the chain of causes), as an [`EmdtuiError`];
/// a cancelled job as `KeyboardInterrupt`.
pub fn to_py(e: anyhow::Error) -> PyErr {
    if e.chain().any(|c| matches!(c.downcast_ref::<emdtui::Error>(), Some(emdtui::Error::Cancelled))) {
        return PyKeyboardInterrupt::new_err("cancelled");
    }
    EmdtuiError::new_err(crate::cli_main::error_line(&e))
}

/// An engine error (no context chain) as an [`EmdtuiError`].
pub fn engine_err(e: emdtui::Error) -> PyErr {
    to_py(anyhow::Error::new(e))
}

/// A command line clap refused: its message without the usage lines, as a `ValueError`.
pub fn clap_err(e: clap::Error) -> PyErr {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect();
    PyValueError::new_err(lines.join("\n").trim_start_matches("error: ").to_string())
}

/// Run `work` on a scoped thread with the GIL released. Every [`TICK`] this thread calls
/// `callback(done, total)` (when given) and checks signals: Ctrl-C (or an exception raised by
/// the callback) cancels the job through `progress` and is raised once the worker has stopped.
pub fn run<T: Send>(
    py: Python<'_>,
    progress: &Progress,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce() -> anyhow::Result<T> + Send,
) -> PyResult<T> {
    progress.set_state(JobState::Running);
    let done = AtomicBool::new(false);
    let me = std::thread::current();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let r = work();
            done.store(true, Ordering::Release);
            me.unpark();
            r
        });
        let mut raised: Option<PyErr> = None;
        loop {
            let ended = py.detach(|| {
                if !done.load(Ordering::Acquire) {
                    std::thread::park_timeout(TICK);
                }
                done.load(Ordering::Acquire)
            });
            if ended {
                break;
            }
            if raised.is_some() {
                continue;
            }
            let step = py.check_signals().and_then(|_| match callback {
                Some(cb) => cb.call1((progress.done(), progress.total())).map(|_| ()),
                None => Ok(()),
            });
            if let Err(e) = step {
                progress.cancel();
                raised = Some(e);
            }
        }
        let r = py.detach(|| h.join()).unwrap_or_else(|e| std::panic::resume_unwind(e));
        if let Some(cb) = callback
            && raised.is_none()
            && r.is_ok()
        {
            cb.call1((progress.total().max(progress.done()), progress.total().max(progress.done())))?;
        }
        match (raised, r) {
            (Some(e), _) => Err(e),
            (None, r) => r.map_err(to_py),
        }
    })
}
