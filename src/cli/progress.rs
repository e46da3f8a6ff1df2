//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40.cyan/blue}] {percent:>3}% {binary_bytes_per_sec} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn frames_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40.cyan/blue}] {pos}/{len} frames {per_sec} ETA {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs `work` on a scoped thread while this thread refreshes the bar through `update` every
/// `period`. The worker wakes this thread when it ends, so the command returns as soon as the work
/// is done rather than at the next refresh tick.
pub fn drive<T: Send>(period: std::time::Duration, mut update: impl FnMut(), work: impl FnOnce() -> T + Send) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    let me = std::thread::current();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let r = work();
            done.store(true, Ordering::Release);
            me.unpark();
            r
        });
        while !done.load(Ordering::Acquire) {
            update();
            std::thread::park_timeout(period);
        }
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Run `work` with a frames bar following `progress` (length and position), refreshed every
/// 100 ms; the bar is cleared at the end.
pub fn with_frames_bar<T: Send>(progress: &crate::jobs::Progress, what: &str, work: impl FnOnce() -> T + Send) -> T {
    let pb = frames_bar(progress.total(), what);
    let r = drive(
        std::time::Duration::from_millis(100),
        || {
            pb.set_length(progress.total());
            pb.set_position(progress.done());
        },
        work,
    );
    pb.finish_and_clear();
    r
}
