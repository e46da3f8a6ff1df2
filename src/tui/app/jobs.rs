//! The background jobs the UI starts (overview, conversion, FFT, ROI mean) and how their
//! results come back as events.

use super::state::*;
use crate::compute::fft::{FftSource, MemFft};
use crate::compute::overview::{ComputeOptions, KernelTuning, Overviews};
use crate::jobs::{JobKind, Progress};
use crate::ops::fft::{EmdSource, FftJob, FftOutcome, FftSink, FftWant};
use crate::ops::overview::{GeometryChoice, OverviewJob};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl State {
    /// Start (or restart, after a geometry change) the overview job: the overviews cached in the
    /// EMD, else in the cache directory, else computed with partial results streamed to the UI.
    pub fn start_overview(&mut self) {
        if let Some(j) = self.main.overview_job.take() {
            j.cancel();
        }
        self.main.overview_gen += 1;
        let gen_ = self.main.overview_gen;
        let p = Progress::job(JobKind::Overview, self.ds.positions_present() as u64);
        self.main.overview_job = Some(p.clone());
        let job = self.overview_job_spec();
        let (ds, tx) = (self.ds.clone(), self.tx.clone());
        let tx2 = tx.clone();
        // the bad pixels the frame view masks: the sample the overview uses, found once
        let find_bad = self.quant.bad.is_none() && ds.positions_present() > 0;
        self.jobs.table.spawn(
            p,
            move |p| {
                if find_bad && let Ok((_, b)) = crate::ops::dpc::bad_pixels(ds.as_ref(), &job.user_bad) {
                    let _ = tx.send(AppEvent::BadPixels(Box::new(b)));
                }
                let last = Mutex::new(Instant::now() - Duration::from_secs(1));
                let txp = Mutex::new(tx.clone());
                let on_partial = |o: &Overviews| {
                    let mut l = last.lock().expect("partial-result throttle");
                    if l.elapsed() >= Duration::from_millis(150) {
                        *l = Instant::now();
                        let _ = txp.lock().expect("sender").send(AppEvent::Overview(gen_, Box::new(o.clone())));
                    }
                };
                let (o, origin) = crate::ops::overview::overview(ds.as_ref(), &job, p, &on_partial)?;
                if origin != crate::ops::overview::Origin::Computed {
                    p.set_message(origin.describe());
                }
                Ok(o)
            },
            move |p, r| overview_ended(&tx2, gen_, p, r),
        );
        self.dirty = true;
    }

    /// The overview request of the UI: the detector follows the found disk until moved by hand.
    pub(crate) fn overview_job_spec(&self) -> OverviewJob {
        let t = &self.tuning;
        let kernel = KernelTuning {
            block_bytes: t.block_bytes.unwrap_or(KernelTuning::default().block_bytes),
            raw_kernel: !t.no_raw_kernel,
        };
        OverviewJob {
            geometry: if self.main.auto_geometry {
                GeometryChoice::Auto { fallback: self.main.geometry.clone() }
            } else {
                GeometryChoice::Fixed(self.main.geometry.clone())
            },
            compute: ComputeOptions {
                memory_budget: self.memory_budget,
                mask: None,
                coarse_first: true,
                kernel,
                // the list the first pass used (found by the same sample), for `extend`
                bad_pixels: Some(Arc::new(self.quant.replaced())).filter(|b| !b.is_empty()),
            },
            cache_dir: self.cache_dir.clone(),
            emd_cache: true,
            keep_bad_pixels: self.quant.keep_bad,
            user_bad: self.quant.user_bad.clone(),
        }
    }

    /// Run the frames that arrived since the last exact overview through the overview (a running
    /// acquisition), unless an overview job is still running.
    pub fn extend_overview(&mut self) {
        let Some(prev) = self.main.overviews.clone() else { return };
        let present = self.ds.positions_present().min(self.ds.scan().positions());
        if !self.main.overview_exact
            || prev.positions_done >= present
            || prev.mask.is_some()
            || self.main.overview_job.as_ref().is_some_and(|j| !j.state().finished())
        {
            return;
        }
        let gen_ = self.main.overview_gen;
        let p = Progress::job(JobKind::Overview, (present - prev.positions_done) as u64);
        self.main.overview_job = Some(p.clone());
        let job = self.overview_job_spec();
        let (ds, tx) = (self.ds.clone(), self.tx.clone());
        self.jobs.table.spawn(
            p,
            move |p| crate::ops::overview::extend(ds.as_ref(), prev, &job, p),
            move |p, r| overview_ended(&tx, gen_, p, r),
        );
    }

    /// Convert to EMD in the background.
    pub(crate) fn start_convert(&mut self) {
        if self.jobs.table.list().iter().any(|j| j.kind == JobKind::Convert && !j.state().finished()) {
            self.status = "a conversion is already running".into();
            return;
        }
        let out = self.emd_path();
        let p = Progress::job(JobKind::Convert, self.ds.positions_present() as u64);
        let (ds, tx) = (self.ds.clone(), self.tx.clone());
        let opts = self.convert_options();
        self.status = format!("converting to {}", out.display());
        self.jobs.table.spawn(
            p,
            move |p| crate::ops::convert::convert(ds.as_ref(), &out, &opts, p),
            move |p, r| {
                let msg = match r {
                    Ok(r) => converted_text(r),
                    Err(crate::Error::Cancelled) => "conversion cancelled".into(),
                    Err(e) => format!("{} failed: {e}", p.name),
                };
                let _ = tx.send(AppEvent::JobEnded(p.kind, msg));
            },
        );
        self.dirty = true;
    }

    pub(crate) fn start_fft(&mut self) {
        self.start_fft_with(None)
    }

    /// The FFT job: in memory for the demo; otherwise the FFT workflow of `ops::fft` into the EMD
    /// (this file, or the conversion of this `.mib`, converted first with pass 1 of the FFT
    /// alongside), with `params` (default: a complete cache, else the bright-field crop) — an
    /// interrupted run with the same parameters resumes.
    pub(crate) fn start_fft_with(&mut self, params: Option<crate::compute::fft::FftParams>) {
        if self.fft.job.as_ref().is_some_and(|j| !j.state().finished()) {
            self.status = "the FFT is already being computed".into();
            return;
        }
        let p = Progress::job(JobKind::Fft, 0);
        self.fft.job = Some(p.clone());
        let (ds, tx, demo, budget) = (self.ds.clone(), self.tx.clone(), self.demo, self.memory_budget);
        let emd = if self.is_mib { self.emd_path() } else { self.path.clone() };
        let (convert, run) = (self.convert_options(), self.fft_options());
        let want = params.map_or(FftWant::AnyOrDefault, FftWant::Exactly);
        if self.is_mib && !emd.exists() {
            self.status = format!("converting to {} (FFT pass 1 alongside)", emd.display());
        }
        let tx2 = tx.clone();
        self.jobs.table.spawn(
            p,
            move |p| {
                if demo {
                    let _ = tx.send(AppEvent::FftReady(Arc::new(MemFft::compute(ds.as_ref(), 1 << 23, p)?)));
                    return Ok(());
                }
                let sink = JobSink::new(p, &tx);
                let job = FftJob { src: ds, emd, convert, want, budget, run };
                let fft = crate::ops::fft::run(job, &sink)?.fft;
                let alongside = matches!(&fft, FftOutcome::Computed(_, rep) if rep.pass1_alongside);
                let _ = tx.send(AppEvent::FftReady(Arc::new(fft.cache())));
                if alongside {
                    let msg = "FFT ready (its pass 1 ran alongside the conversion)".to_string();
                    let _ = tx.send(AppEvent::JobEnded(JobKind::Fft, msg));
                }
                Ok(())
            },
            move |p, r| {
                if let Err(e) = r {
                    let _ = tx2.send(AppEvent::JobEnded(p.kind, format!("FFT: {e}")));
                }
            },
        );
        self.dirty = true;
    }

    /// Size of the FFT cache (complex64, bright-field disk crop as computed by `F`) and free
    /// space where it goes.
    pub fn fft_estimate(&self) -> (u64, Option<u64>) {
        let (dr, dc) = self.ds.det();
        let full = (self.ds.scan().positions() * dr * dc * 8) as u64;
        let bytes = crate::compute::fft::default_params(self.ds.as_ref())
            .and_then(|p| crate::compute::fft::planned_sizes(self.ds.as_ref(), &p, self.memory_budget))
            .map(|(out, _, _)| out)
            .unwrap_or(full);
        (bytes, crate::util::free_space_for(&self.emd_path()))
    }

    /// Start the FFT when its estimate fits the disks and the memory budget (the estimate on
    /// the status line); otherwise ask.
    pub(crate) fn fft_if_it_fits(&mut self) {
        use crate::tui::popups::fft_estimate;
        match fft_estimate::of(self) {
            Ok(e) if e.fits => {
                let before = self.status.clone();
                self.start_fft();
                let est = fft_estimate::status(&e);
                self.status = if self.status != before { format!("{}; {est}", self.status) } else { est };
            }
            e => self.popup = Popup::Confirm(Confirm::Fft, fft_estimate::question(&e)),
        }
    }

    /// `F` / Tab into the explorer without an FFT: ask, or compute when it is cheap (demo).
    pub(crate) fn want_fft(&mut self, compute: bool) {
        if self.fft.source.is_some() {
            self.screen = Screen::Fft;
            return;
        }
        if !self.demo {
            let emd = if self.is_mib { self.emd_path() } else { self.path.clone() };
            if emd.is_file()
                && let Ok(c) = crate::store::fft::FftCache::open(&emd)
            {
                self.set_fft(Arc::new(c));
                self.screen = Screen::Fft;
                return;
            }
        }
        if self.demo {
            self.screen = Screen::Fft;
            self.start_fft();
            return;
        }
        if self.is_mib && !self.emd_path().exists() {
            self.popup =
                Popup::Confirm(Confirm::ConvertForFft, "4D FFT requires conversion to EMD. Convert now? (y/n)".into());
        } else if compute || !self.is_mib {
            self.fft_if_it_fits();
        } else {
            self.screen = Screen::Fft;
        }
    }

    pub fn set_fft(&mut self, src: Arc<dyn FftSource>) {
        self.fft.set_source(src);
        self.dirty = true;
    }

    /// The mean diffraction pattern over the ROI, on the worker pool.
    pub(crate) fn start_roi_mean(&mut self) {
        let Some(((r0, c0), (r1, c1))) = self.main.roi else { return };
        if self.eels.is_some() {
            self.status = format!("ROI rows {r0}..={r1}, cols {c0}..={c1}: mean spectrum");
            return; // the EELS screen's mean spectrum comes from its spectrum image
        }
        self.main.roi_gen += 1;
        let g = self.main.roi_gen;
        let n = (r1 - r0 + 1) * (c1 - c0 + 1);
        let p = Progress::job(JobKind::RoiMean, n as u64);
        let (ds, tx, budget) = (self.ds.clone(), self.tx.clone(), self.memory_budget);
        self.jobs.table.spawn(
            p,
            move |p| {
                let mean = crate::ops::overview::roi_mean(ds.as_ref(), r0..r1 + 1, c0..c1 + 1, budget, p)?;
                let _ = tx.send(AppEvent::RoiMean(g, mean, n));
                Ok(())
            },
            |_, _| {},
        );
    }
}

/// The end of an overview job: its exact result, or why it failed.
pub(crate) fn overview_ended(tx: &Sender<AppEvent>, gen_: u64, p: &Progress, r: crate::Result<Overviews>) {
    match r {
        Ok(o) => {
            let _ = tx.send(AppEvent::OverviewDone(gen_, Box::new(o)));
        }
        Err(crate::Error::Cancelled) => {}
        Err(e) => {
            let _ = tx.send(AppEvent::JobEnded(p.kind, format!("overview failed: {e}")));
        }
    }
}

/// What the status line says about a finished conversion.
fn converted_text(r: crate::ops::convert::ConvertReport) -> String {
    format!("converted to {} ({:.1} s)", r.output.display(), r.seconds)
}

/// The FFT workflow's progress in a viewer job: the job's progress for the conversion and then the
/// FFT; pass 1, while it runs alongside the conversion, on its own (the job shows the conversion).
pub(crate) struct JobSink<'a> {
    pub(crate) job: &'a Progress,
    pub(crate) pass1: Arc<Progress>,
    pub(crate) tx: Sender<AppEvent>,
    pub(crate) emd_ready: AtomicBool,
}

impl JobSink<'_> {
    pub(crate) fn new<'a>(job: &'a Progress, tx: &Sender<AppEvent>) -> JobSink<'a> {
        JobSink { job, pass1: Progress::new("FFT pass 1", 0), tx: tx.clone(), emd_ready: AtomicBool::new(false) }
    }
}

impl FftSink for JobSink<'_> {
    fn convert_progress(&self) -> &Progress {
        self.job
    }
    fn fft_progress(&self) -> &Progress {
        if self.emd_ready.load(Ordering::Acquire) { self.job } else { &self.pass1 }
    }
    fn emd_ready(&self, how: &EmdSource) {
        if let EmdSource::Converted(r) = how {
            let _ = self.tx.send(AppEvent::JobEnded(JobKind::Convert, converted_text(r.clone())));
        }
        self.emd_ready.store(true, Ordering::Release);
    }
}
