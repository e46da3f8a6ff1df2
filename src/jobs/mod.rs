//! Background jobs with typed progress, cancellation and a shared table the UI can draw.
//! Each job runs on its own std thread (compute inside uses rayon); HDF5 writes stay on the
//! job's single writer thread.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => JobState::Queued,
            1 => JobState::Running,
            2 => JobState::Done,
            3 => JobState::Failed,
            _ => JobState::Cancelled,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// What a job does (its name in the jobs panel comes from here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Overview,
    Convert,
    Fft,
    RoiMean,
    /// Anything else (tests, helpers), named freely.
    Other,
}

impl JobKind {
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Overview => "overview",
            JobKind::Convert => "convert",
            JobKind::Fft => "fft",
            JobKind::RoiMean => "roi mean",
            JobKind::Other => "job",
        }
    }
}

/// Progress and control shared between a job and whoever watches it.
#[derive(Debug)]
pub struct Progress {
    pub kind: JobKind,
    pub name: String,
    done: AtomicU64,
    total: AtomicU64,
    bytes: AtomicU64,
    state: AtomicU8,
    cancel: AtomicBool,
    started: Mutex<Option<Instant>>,
    /// When the job finished: its elapsed time and rate stop there.
    ended: Mutex<Option<Instant>>,
    message: Mutex<String>,
}

impl Progress {
    /// A job of a known kind (named after it).
    pub fn job(kind: JobKind, total: u64) -> Arc<Self> {
        Self::with(kind, kind.name().to_string(), total)
    }
    /// A freely named job ([`JobKind::Other`]).
    pub fn new(name: impl Into<String>, total: u64) -> Arc<Self> {
        Self::with(JobKind::Other, name.into(), total)
    }
    fn with(kind: JobKind, name: String, total: u64) -> Arc<Self> {
        Arc::new(Progress {
            kind,
            name,
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
            bytes: AtomicU64::new(0),
            state: AtomicU8::new(0),
            cancel: AtomicBool::new(false),
            started: Mutex::new(None),
            ended: Mutex::new(None),
            message: Mutex::new(String::new()),
        })
    }
    pub fn set_total(&self, t: u64) {
        self.total.store(t, Ordering::Relaxed);
    }
    pub fn set_done(&self, d: u64) {
        self.done.store(d, Ordering::Relaxed);
    }
    pub fn add(&self, units: u64, bytes: u64) {
        self.done.fetch_add(units, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn fraction(&self) -> f64 {
        let t = self.total();
        if t == 0 { 0.0 } else { (self.done() as f64 / t as f64).min(1.0) }
    }
    pub fn state(&self) -> JobState {
        JobState::from_u8(self.state.load(Ordering::Relaxed))
    }
    pub fn set_state(&self, s: JobState) {
        if s == JobState::Running {
            let mut st = self.started.lock().unwrap();
            if st.is_none() {
                *st = Some(Instant::now());
            }
        }
        if s.finished() {
            self.ended.lock().unwrap().get_or_insert_with(Instant::now);
        }
        self.state.store(s as u8, Ordering::Relaxed);
    }
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    /// Err(Cancelled) when cancellation was requested.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() { Err(crate::Error::Cancelled) } else { Ok(()) }
    }
    pub fn set_message(&self, m: impl Into<String>) {
        *self.message.lock().unwrap() = m.into();
    }
    pub fn message(&self) -> String {
        self.message.lock().unwrap().clone()
    }
    /// Whether the job finished less than `d` ago.
    pub fn ended_within(&self, d: std::time::Duration) -> bool {
        self.ended.lock().unwrap().is_some_and(|t| t.elapsed() < d)
    }
    /// Seconds from the start to now, or to the end once the job finished.
    pub fn elapsed_s(&self) -> f64 {
        let Some(t0) = *self.started.lock().unwrap() else { return 0.0 };
        let end = self.ended.lock().unwrap().unwrap_or_else(Instant::now);
        end.saturating_duration_since(t0).as_secs_f64()
    }
    /// Bytes per second since start.
    pub fn throughput(&self) -> f64 {
        let e = self.elapsed_s();
        if e > 0.0 { self.bytes() as f64 / e } else { 0.0 }
    }
    /// Seconds to completion at the current rate.
    pub fn eta_s(&self) -> Option<f64> {
        let f = self.fraction();
        let e = self.elapsed_s();
        (f > 0.0 && f < 1.0 && e > 0.0).then(|| e * (1.0 - f) / f)
    }
}

/// The table of jobs (what the UI's jobs panel shows).
#[derive(Default, Clone)]
pub struct JobTable {
    jobs: Arc<Mutex<Vec<Arc<Progress>>>>,
}

impl JobTable {
    pub fn new() -> Self {
        Self::default()
    }
    /// Run `f` on a new thread, tracked by `p`. `on_end` is called with the result on that thread.
    pub fn spawn<T: Send + 'static>(
        &self,
        p: Arc<Progress>,
        f: impl FnOnce(&Progress) -> crate::Result<T> + Send + 'static,
        on_end: impl FnOnce(&Progress, crate::Result<T>) + Send + 'static,
    ) {
        self.jobs.lock().unwrap().push(p.clone());
        std::thread::Builder::new()
            .name(format!("job-{}", p.name))
            .spawn(move || {
                // background work yields to the acquisition and to the UI
                crate::util::lower_thread_priority();
                p.set_state(JobState::Running);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&p)))
                    .unwrap_or_else(|_| Err(crate::Error::Invalid("job panicked".into())));
                match &r {
                    Ok(_) => p.set_state(JobState::Done),
                    Err(crate::Error::Cancelled) => p.set_state(JobState::Cancelled),
                    Err(e) => {
                        p.set_message(e.to_string());
                        p.set_state(JobState::Failed)
                    }
                }
                on_end(&p, r);
            })
            .expect("spawn job thread");
    }
    pub fn list(&self) -> Vec<Arc<Progress>> {
        self.jobs.lock().unwrap().clone()
    }
    pub fn running(&self) -> usize {
        self.list().iter().filter(|p| !p.state().finished()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_job_keeps_its_elapsed_time_and_rate() {
        let p = Progress::new("done", 1);
        p.set_state(JobState::Running);
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.add(1, 1 << 20);
        p.set_state(JobState::Done);
        let (e, r) = (p.elapsed_s(), p.throughput());
        assert!(e >= 0.02 && r > 0.0, "{e} {r}");
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(p.elapsed_s(), e, "elapsed time frozen at completion");
        assert_eq!(p.throughput(), r, "rate frozen at completion");
        // a job still running keeps counting
        let q = Progress::new("running", 1);
        q.set_state(JobState::Running);
        let e0 = q.elapsed_s();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(q.elapsed_s() >= e0 + 0.015);
    }

    #[test]
    fn job_runs_and_cancels() {
        let t = JobTable::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = Progress::new("count", 10);
        t.spawn(
            p.clone(),
            |p| {
                for _ in 0..10 {
                    p.add(1, 100);
                }
                Ok(42)
            },
            move |_, r| tx.send(r.unwrap()).unwrap(),
        );
        assert_eq!(rx.recv().unwrap(), 42);
        assert_eq!(p.done(), 10);
        assert_eq!(p.bytes(), 1000);
        let (tx, rx) = std::sync::mpsc::channel();
        let q = Progress::new("forever", 0);
        q.cancel();
        t.spawn(
            q.clone(),
            |p| loop {
                p.check()?;
            },
            move |p, r: crate::Result<()>| tx.send((p.state(), r.is_err())).unwrap(),
        );
        assert_eq!(rx.recv().unwrap(), (JobState::Cancelled, true));
    }
}
