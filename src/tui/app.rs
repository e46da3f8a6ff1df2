//! Application state and `update(&mut State, Action)`.
//!
//! [`State`] holds what belongs to the whole dataset (the file, the screen, the status line,
//! graphics, tuning, the event channel, the frame loader) and one part per area of the UI:
//! [`MainView`] (`s.main`: scan cursor, detector, overviews, diffraction pane, ROI),
//! [`FftView`] (`s.fft`: the FFT explorer), [`JobsPanel`] (`s.jobs`) and the [`Popup`]
//! (`s.popup`). [`update`] hands an action to the popup first, then to the view it concerns, then
//! to the actions shared by both screens. Background work (overview, ROI mean, conversion, FFT)
//! runs as jobs in the [`JobTable`] and reports back as [`AppEvent`]s on the one channel the main
//! loop reads; [`on_event`] applies them.

use super::follow::{Follow, Poll};
use super::images::{Graphics, PaneImage, Readout};
use super::keys::Action;
use super::loader::{Frame, Loader};
use crate::compute::diffractogram::Magnitude;
use crate::compute::display::{Colormap, DisplayParams, Scale, clip_name, next_clip};
use crate::compute::fft::{FftSource, MemFft, Part};
use crate::compute::overview::{self, ComputeOptions, DetectorKind, Geometry, KernelTuning, Overviews};
use crate::dataset::{Dataset, DatasetInfo, Kind};
use crate::jobs::{JobKind, JobTable, Progress};
use crate::ops::overview::{GeometryChoice, OverviewJob};
use crate::ops::resume::Interrupted;
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events from the terminal and from background work.
pub enum AppEvent {
    Input(ratatui::crossterm::event::Event),
    /// A requested frame is decoded (in the loader's cache).
    FrameReady(usize),
    /// A partial overview for geometry generation `gen`.
    Overview(u64, Box<Overviews>),
    /// The exact overview of the positions present when its job ran (generation `gen`).
    OverviewDone(u64, Box<Overviews>),
    RoiMean(u64, Vec<f32>, usize),
    FftReady(Arc<dyn FftSource>),
    /// Hot and dead pixels found in the sampled frames (plus the user's).
    BadPixels(Box<crate::compute::badpix::BadPixels>),
    /// The masked centre of mass behind the DPC view.
    DpcCom(Box<crate::ops::dpc::DpcCom>),
    /// A tcBF result (the tcBF view).
    Tcbf(Box<crate::ops::tcbf::TcbfOutcome>),
    /// An SSB ptychography result (the ptychography view).
    Ptycho(Box<crate::ops::ptycho::PtychoOutcome>),
    /// A job ended: (its kind, message to show).
    JobEnded(JobKind, String),
    /// The custom-detector image of generation `gen` (or why there is none).
    Custom(u64, Result<Vec<f32>, String>),
    /// The spectrum image of spectrum data (the EELS screen's source).
    SpectrumImage(Arc<crate::ops::eels::SpectrumImage>),
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Main,
    Fft,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    Quit,
    ConvertForFft,
    Fft,
    Resume(PathBuf),
    /// An interrupted FFT in the EMD: resume it with its own parameters.
    ResumeFft(crate::compute::fft::FftParams),
    /// tcBF needs a conversion and/or the FFT first.
    Tcbf,
    /// Ptychography needs a conversion and/or the FFT first.
    Ptycho,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    None,
    /// The key help, scrolled down this many lines (when it does not fit the terminal).
    Help(usize),
    Confirm(Confirm, String),
    /// The DPC rotation prompt: the text typed so far (see `tui::dpc::prompt`).
    Rotation(String),
}

/// How the main screen arranges its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewLayout {
    /// Metadata, one virtual image, the diffraction pane.
    Single,
    /// Three virtual images side by side (the current detector, ADF, DPC magnitude) and the
    /// diffraction pane; no metadata pane.
    Three,
    /// DPC: metadata with the orientation, the iCoM image, the CoM field as a colour wheel.
    Dpc,
    /// tcBF: metadata with the fit, the tcBF image, the plain BF image over the shift wheel.
    Tcbf,
    /// Ptychography: metadata with the run, the SSB phase, iCoM over BF.
    Ptycho,
}

impl ViewLayout {
    pub fn next(self) -> Self {
        match self {
            ViewLayout::Single => ViewLayout::Three,
            ViewLayout::Three | ViewLayout::Dpc | ViewLayout::Tcbf | ViewLayout::Ptycho => ViewLayout::Single,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ViewLayout::Single => "one image + frame",
            ViewLayout::Three => "three images + frame",
            ViewLayout::Dpc => "DPC: iCoM + CoM colour wheel",
            ViewLayout::Tcbf => "tcBF: super-resolved BF + plain BF + shifts",
            ViewLayout::Ptycho => "ptychography: SSB phase + iCoM + BF",
        }
    }
}

/// The main screen: scan cursor, detector geometry and kind, the overviews and the diffraction
/// pane (frame at the cursor or ROI mean), with the versions that key their prepared images.
pub struct MainView {
    pub cursor: (usize, usize),
    pub geometry: Geometry,
    /// The detector geometry still follows the automatically found bright-field disk.
    pub auto_geometry: bool,
    pub kind: DetectorKind,
    pub overview_display: DisplayParams,
    /// Display of the diffraction pane (also the FFT explorer's |G| and power panes).
    pub frame_display: DisplayParams,
    pub overviews: Option<Overviews>,
    pub overview_gen: u64,
    pub overview_job: Option<Arc<Progress>>,
    /// The overviews on screen are a job's final result (exact for `positions_done` positions),
    /// not a partial snapshot: they can be extended with new frames.
    pub overview_exact: bool,
    /// When the geometry last changed by hand (the overview restarts after a pause).
    pub geometry_changed: Option<Instant>,
    /// The frame on screen (its position may lag the cursor while loading).
    pub frame: Option<(usize, Frame)>,
    pub roi_anchor: Option<(usize, usize)>,
    pub roi: Option<((usize, usize), (usize, usize))>,
    pub roi_mean: Option<(Vec<f32>, usize)>,
    pub roi_gen: u64,
    /// Bumped when the overview picture changes (data, cursor, ROI, display, kind).
    pub ov_version: u64,
    /// Bumped when the diffraction picture changes (frame, geometry, display, ROI mean).
    pub frame_version: u64,
    pub layout: ViewLayout,
    /// The right pane shows the diffractogram of the current virtual image (of the ROI when one
    /// is set) instead of the diffraction frame, with this magnitude.
    pub diffractogram: Option<Magnitude>,
    /// Bumped when the diffractogram changes (overview data, detector, ROI, display, magnitude).
    pub dgram_version: u64,
    /// The custom detector (first image pane) and the EWPC frame pane.
    pub detect: super::custom::DetectView,
}

/// The FFT explorer: its source (None until computed or loaded), the cursors and the images
/// they select.
pub struct FftView {
    pub source: Option<Arc<dyn FftSource>>,
    pub job: Option<Arc<Progress>>,
    pub q: (usize, usize),
    pub k: (usize, usize),
    pub half: usize,
    /// Reverse view: choose K on the detector, show G over Q.
    pub reverse: bool,
    pub power: Vec<f32>,
    /// |G| and arg G: over the detector at Q (normal) or over Q at K (reverse).
    pub amp: Vec<f32>,
    pub phase: Vec<f32>,
    /// |G| over the detector at Q (the K picker in the reverse view).
    pub det_amp: Vec<f32>,
    /// Bumped when the explorer's pictures change (cursors, region, view, display).
    pub version: u64,
    pub error: Option<String>,
}

/// The jobs panel: every background job, and the one selected for cancelling.
pub struct JobsPanel {
    pub table: JobTable,
    pub selected: usize,
}

/// A prepared image, where it sits on screen (cells) and its readout.
pub struct Shown {
    pub img: PaneImage,
    pub cells: Rect,
    pub readout: Readout,
}

/// Images prepared outside `render` (see `render::prepare`), keyed by what they show and the
/// area they were made for.
#[derive(Default)]
pub struct Prepared {
    /// The virtual-image panes (one, or three in the three-image layout).
    pub views: [Option<(u64, Rect, Shown)>; 3],
    /// The right pane: the diffraction frame (or ROI mean), or the diffractogram.
    pub right: Option<(u64, Rect, Shown)>,
    pub fft: [Option<(u64, Rect, Shown)>; 3],
    /// Where the first overview image sits on screen (cells), for mouse clicks.
    pub overview_cells: Option<Rect>,
}

/// The whole UI: dataset-wide things here, each area in its own part (see the module docs).
pub struct State {
    pub ds: Arc<dyn Dataset>,
    pub info: DatasetInfo,
    pub path: PathBuf,
    pub file_name: String,
    pub is_mib: bool,
    pub demo: bool,
    pub screen: Screen,
    pub main: MainView,
    pub fft: FftView,
    /// The EELS screen (spectrum data only).
    pub eels: Option<super::eels::EelsView>,
    pub jobs: JobsPanel,
    pub popup: Popup,
    /// The DPC view (`i`).
    pub dpc: super::dpc::DpcView,
    /// The tcBF view (`b`).
    pub tcbf: super::tcbf::TcbfView,
    pub ptycho: super::ptycho::PtychoView,
    /// Calibration (scale bars, collection angles) and bad pixels (masked in the frame view).
    pub quant: super::dpc::Quant,
    /// Following a growing `.mib` (a running acquisition).
    pub follow: Follow,
    /// For EMD files: the state of the caches inside the file (valid / stale).
    pub cache_note: Option<String>,
    pub status: String,
    pub hint: Option<String>,
    pub quit: bool,
    pub dirty: bool,
    /// Hide timings (throughput, ETA) so snapshots are stable.
    pub deterministic: bool,
    pub graphics: Graphics,
    pub picker: Picker,
    pub prepared: Prepared,
    pub memory_budget: u64,
    pub cache_dir: Option<PathBuf>,
    pub tuning: crate::Tuning,
    pub tx: Sender<AppEvent>,
    pub loader: Loader,
    pub first_complete_draw: Option<Duration>,
    pub started: Instant,
}

pub struct Options {
    pub graphics: Graphics,
    pub picker: Picker,
    pub hint: Option<String>,
    pub demo: bool,
    pub deterministic: bool,
    /// Frames decoded on the caller's thread (tests).
    pub sync_loader: bool,
    pub memory_budget: u64,
    /// Where complete overviews are cached (None: no cache).
    pub cache_dir: Option<PathBuf>,
    pub tuning: crate::Tuning,
}

impl MainView {
    /// Cursor at `cursor`, geometry from the detector size until the overview finds the disk.
    fn new(cursor: (usize, usize), geometry: Geometry) -> MainView {
        MainView {
            cursor,
            geometry,
            auto_geometry: true,
            kind: DetectorKind::Bf,
            overview_display: DisplayParams { scale: Scale::Linear, colormap: Colormap::Gray, clip: (0.5, 99.5) },
            frame_display: DisplayParams { scale: Scale::Log, colormap: Colormap::Inferno, clip: (0.1, 99.9) },
            overviews: None,
            overview_gen: 0,
            overview_job: None,
            overview_exact: false,
            geometry_changed: None,
            frame: None,
            roi_anchor: None,
            roi: None,
            roi_mean: None,
            roi_gen: 0,
            ov_version: 0,
            frame_version: 0,
            layout: ViewLayout::Single,
            diffractogram: None,
            dgram_version: 0,
            detect: Default::default(),
        }
    }

    /// The detectors of the virtual-image panes: the current one; in the three-image layout also
    /// ADF and DPC magnitude (BF first when the current one is one of those).
    pub fn view_kinds(&self) -> Vec<DetectorKind> {
        match self.layout {
            ViewLayout::Single | ViewLayout::Dpc | ViewLayout::Tcbf | ViewLayout::Ptycho => vec![self.kind],
            ViewLayout::Three => {
                let first = if matches!(self.kind, DetectorKind::Adf | DetectorKind::DpcMag) {
                    DetectorKind::Bf
                } else {
                    self.kind
                };
                vec![first, DetectorKind::Adf, DetectorKind::DpcMag]
            }
        }
    }

    /// The closed ROI as scan row and column ranges (None while a corner is being chosen).
    pub fn roi_ranges(&self) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
        match (self.roi, self.roi_anchor) {
            (Some(((r0, c0), (r1, c1))), None) => Some((r0..r1 + 1, c0..c1 + 1)),
            _ => None,
        }
    }

    /// Change the detector geometry by hand (`det`: detector rows, columns): clamp it, redraw the
    /// diffraction pane, stop following the found disk and restart the overview after a pause.
    fn edit_geometry(&mut self, det: (usize, usize), f: impl FnOnce(&mut Geometry)) {
        f(&mut self.geometry);
        let (dr, dc) = det;
        let g = &mut self.geometry;
        g.center.0 = g.center.0.clamp(0.0, dr as f32 - 1.0);
        g.center.1 = g.center.1.clamp(0.0, dc as f32 - 1.0);
        let m = dr.max(dc) as f32;
        g.bf_radius = g.bf_radius.clamp(1.0, m);
        g.adf_outer = g.adf_outer.clamp(2.0, m);
        g.adf_inner = g.adf_inner.clamp(0.0, g.adf_outer - 1.0);
        g.com_origin = g.center;
        self.frame_version += 1;
        self.auto_geometry = false;
        self.geometry_changed = Some(Instant::now());
    }

    /// The next detector kind of [`DetectorKind::CYCLE`].
    fn cycle_kind(&mut self) {
        let c = DetectorKind::CYCLE;
        let i = c.iter().position(|k| *k == self.kind).map(|i| (i + 1) % c.len()).unwrap_or(0);
        self.kind = c[i];
        self.ov_version += 1;
        self.frame_version += 1;
        self.dgram_version += 1;
    }

    fn clear_roi(&mut self) {
        self.roi = None;
        self.roi_anchor = None;
        self.roi_mean = None;
        self.roi_gen += 1;
        self.ov_version += 1;
        self.frame_version += 1;
        self.dgram_version += 1;
    }

    /// A partial or (`exact`) final overview of generation `gen_`; false when it is out of date.
    fn apply_overview(&mut self, gen_: u64, o: Overviews, exact: bool) -> bool {
        if gen_ != self.overview_gen {
            return false;
        }
        self.overview_exact = exact;
        if self.auto_geometry && self.geometry != o.geometry {
            self.geometry = o.geometry.clone();
            self.frame_version += 1;
        }
        self.overviews = Some(o);
        self.ov_version += 1;
        self.dgram_version += 1;
        true
    }
}

impl FftView {
    fn new() -> FftView {
        FftView {
            source: None,
            job: None,
            q: (0, 0),
            k: (0, 0),
            half: 0,
            reverse: false,
            power: vec![],
            amp: vec![],
            phase: vec![],
            det_amp: vec![],
            version: 0,
            error: None,
        }
    }

    /// Show `src`: cursors to the centre (Q just off the zero frequency), power map loaded.
    fn set_source(&mut self, src: Arc<dyn FftSource>) {
        let [qr, qc, kr, kc] = src.shape();
        self.q = (qr / 2, qc / 2 + 1.min(qc / 2));
        self.k = (kr / 2, kc / 2);
        self.power = src.power_map().unwrap_or_default();
        self.source = Some(src);
        self.refresh();
    }

    /// Move the Q cursor (the K cursor in the reverse view).
    fn move_cursor(&mut self, dy: i32, dx: i32) {
        let Some(src) = &self.source else { return };
        let [qr, qc, kr, kc] = src.shape();
        let (p, (nr, nc)) = if self.reverse { (&mut self.k, (kr, kc)) } else { (&mut self.q, (qr, qc)) };
        p.0 = (p.0 as i64 + dy as i64).clamp(0, nr as i64 - 1) as usize;
        p.1 = (p.1 as i64 + dx as i64).clamp(0, nc as i64 - 1) as usize;
        self.refresh();
    }

    /// Read |G| and arg G for the cursors (nothing without a source).
    fn refresh(&mut self) {
        let Some(src) = self.source.clone() else { return };
        let r = if self.reverse {
            src.q_image(self.k, self.half, Part::Amp)
                .and_then(|a| Ok((a, src.q_image(self.k, self.half, Part::Phase)?)))
        } else {
            src.detector_image(self.q, self.half, Part::Amp)
                .and_then(|a| Ok((a, src.detector_image(self.q, self.half, Part::Phase)?)))
        };
        match r {
            Ok((a, mut p)) => {
                // phase is meaningless where there is no amplitude: leave it blank
                let amax = a.iter().cloned().filter(|v| v.is_finite()).fold(0f32, f32::max);
                for (ph, am) in p.iter_mut().zip(&a) {
                    if am.partial_cmp(&(amax * 1e-3)) != Some(std::cmp::Ordering::Greater) {
                        *ph = f32::NAN;
                    }
                }
                if !self.reverse {
                    self.det_amp = a.clone();
                }
                self.amp = a;
                self.phase = p;
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        self.version += 1;
    }
}

impl JobsPanel {
    /// The selected job (the last one when the selection is past the end).
    fn selected_job(&self) -> Option<Arc<Progress>> {
        let l = self.table.list();
        l.get(self.selected.min(l.len().saturating_sub(1))).cloned()
    }

    fn select(&mut self, d: i32) {
        let n = self.table.list().len();
        if n > 0 {
            self.selected = (self.selected as i64 + d as i64).rem_euclid(n as i64) as usize;
        }
    }

    /// Jobs the user started that are still running (views are recomputed next time, so the
    /// overview and ROI mean do not count).
    fn user_jobs_running(&self) -> usize {
        self.table
            .list()
            .iter()
            .filter(|j| {
                !j.state().finished() && !["overview", "roi mean", super::eels::JOB_NAME].contains(&j.name.as_str())
            })
            .count()
    }

    fn cancel_all(&self) {
        for j in self.table.list() {
            j.cancel();
        }
    }
}

impl State {
    /// Switch the main screen to `layout`, or back to the single-image layout when it is
    /// already shown; true when it was switched on (the caller then starts what it shows).
    pub(super) fn toggle_layout(&mut self, layout: ViewLayout) -> bool {
        let on = self.main.layout != layout;
        self.main.layout = if on { layout } else { ViewLayout::Single };
        self.main.ov_version += 1;
        on
    }

    pub fn new(ds: Arc<dyn Dataset>, tx: Sender<AppEvent>, o: Options) -> State {
        let info = ds.info().clone();
        let path = info.path.clone();
        let (dr, dc) = ds.det();
        let geometry = overview::default_geometry(dr, dc);
        let txl = tx.clone();
        let loader = Loader::new(
            ds.clone(),
            (o.memory_budget / 8).clamp(16 << 20, 512 << 20) as usize,
            o.sync_loader,
            move |p| {
                let _ = txl.send(AppEvent::FrameReady(p));
            },
        );
        let file_name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let is_mib = info.kind == Kind::Mib;
        let sc = ds.scan();
        let (present, total) = (ds.positions_present().min(sc.positions()), sc.positions());
        // a running acquisition: follow it, the cursor on the newest frame
        let mut follow = Follow::new(present, total, is_mib && !o.demo);
        follow.track = follow.active;
        let cursor = if follow.active && present > 0 {
            ((present - 1) / sc.cols.max(1), (present - 1) % sc.cols.max(1))
        } else {
            (sc.rows / 2, sc.cols / 2)
        };
        let cache_note = if info.kind == Kind::Emd { emd_cache_note(&path) } else { None };
        let calibration =
            if o.demo { Default::default() } else { crate::ops::calib::stored(ds.as_ref(), o.cache_dir.as_deref()) };
        let mut s = State {
            ds,
            info,
            path,
            file_name,
            is_mib,
            demo: o.demo,
            screen: Screen::Main,
            main: MainView::new(cursor, geometry),
            fft: FftView::new(),
            eels: None,
            jobs: JobsPanel { table: JobTable::new(), selected: 0 },
            popup: Popup::None,
            dpc: Default::default(),
            tcbf: Default::default(),
            ptycho: Default::default(),
            quant: super::dpc::Quant { calibration, ..Default::default() },
            follow,
            cache_note,
            status: String::new(),
            hint: o.hint,
            quit: false,
            dirty: true,
            deterministic: o.deterministic,
            graphics: o.graphics,
            picker: o.picker,
            prepared: Prepared::default(),
            memory_budget: o.memory_budget,
            cache_dir: o.cache_dir,
            tuning: o.tuning,
            tx,
            loader,
            first_complete_draw: None,
            started: Instant::now(),
        };
        s.request_frame();
        match super::eels::channels_of(&s) {
            Some(ch) => {
                s.eels = Some(super::eels::EelsView::new(ch));
                super::eels::start(&mut s);
                super::eels::sync(&mut s);
            }
            None => s.start_overview(),
        }
        s.offer_resume();
        s
    }

    /// Move the cursor to the newest of `present` positions.
    fn track_newest(&mut self, present: usize) {
        let cols = self.ds.scan().cols.max(1);
        let p = present.saturating_sub(1);
        let c = (p / cols, p % cols);
        if c != self.main.cursor {
            self.main.cursor = c;
            self.main.ov_version += 1;
            self.request_frame();
        }
    }

    /// `f`: follow the acquisition (again), the cursor tracking the newest frame; again: stop tracking.
    fn toggle_follow(&mut self) {
        let total = self.ds.scan().positions();
        let present = self.ds.refresh().min(total);
        self.follow.toggle(present, total, self.is_mib && !self.demo);
        if self.follow.track {
            self.track_newest(present);
            self.status = "following: the cursor tracks the newest frame (f to stop)".into();
        } else {
            self.status = "cursor no longer tracks the newest frame".into();
        }
    }

    /// The scan position (flat index) under the cursor.
    pub fn pos(&self) -> usize {
        self.main.cursor.0 * self.ds.scan().cols + self.main.cursor.1
    }

    /// Show the frame under the cursor, or ask the loader for it (`FrameReady` follows).
    fn request_frame(&mut self) {
        let p = self.pos();
        if let Some(f) = self.loader.get(p) {
            self.main.frame = Some((p, f));
            self.main.frame_version += 1;
        } else {
            self.loader.request(p);
            if let Some(f) = self.loader.get(p) {
                self.main.frame = Some((p, f));
                self.main.frame_version += 1;
            }
        }
    }

    /// Put the scan cursor at `(r, c)` and ask for its frame.
    fn set_cursor(&mut self, r: usize, c: usize) {
        self.main.cursor = (r, c);
        self.main.ov_version += 1;
        self.request_frame();
    }

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
    fn overview_job_spec(&self) -> OverviewJob {
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

    pub(super) fn emd_path(&self) -> PathBuf {
        crate::ops::convert::default_output(&self.path)
    }

    /// Interrupted outputs next to the file (`X.emd.part`, `.X.emd.part*`).
    pub fn find_interrupted(&self) -> Option<PathBuf> {
        crate::ops::resume::find_partial_conversion(&self.emd_path())
    }

    fn offer_resume(&mut self) {
        if self.demo {
            return;
        }
        // an interrupted FFT in this EMD (or in the EMD of this .mib), else a partial conversion
        let emd = if self.is_mib { self.emd_path() } else { self.path.clone() };
        match crate::ops::resume::find(&emd, self.is_mib) {
            Some(Interrupted::Fft { emd, params, done, total }) => {
                let n = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                self.popup = Popup::Confirm(
                    Confirm::ResumeFft(params),
                    format!(
                        "An interrupted 4D FFT was found in {n} ({done} of {total} blocks done).\nResume it now? (y/n)"
                    ),
                );
            }
            Some(Interrupted::Conversion(p)) => {
                let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                self.popup = Popup::Confirm(
                    Confirm::Resume(p),
                    format!("An interrupted conversion was found ({n}).\nResume it now? (y/n)"),
                );
            }
            None => {}
        }
    }

    /// Conversion options of the UI's jobs (tuning knobs filled in).
    pub(super) fn convert_options(&self) -> crate::compute::convert::ConvertOptions {
        let t = &self.tuning;
        crate::compute::convert::ConvertOptions {
            memory_budget: self.memory_budget,
            deflate_level: t.deflate_level(),
            no_space_check: t.no_space_check,
            fail_write_after: t.fail_write_after,
            bad_pixels: (!self.quant.keep_bad).then(|| self.quant.user_bad.clone()),
            ..Default::default()
        }
    }

    /// FFT run options of the UI's jobs.
    pub(super) fn fft_options(&self) -> crate::compute::fft::RunOptions {
        crate::compute::fft::RunOptions {
            group_delay: self.tuning.fft_group_delay,
            buffered_output: self.tuning.fft_buffered,
            scratch_on_disk: self.tuning.fft_scratch_on_disk,
            ..Default::default()
        }
    }

    /// Convert to EMD in the background (then, with `then_fft`, compute the default FFT into it).
    fn start_convert(&mut self, then_fft: bool) {
        if self.jobs.table.list().iter().any(|j| j.kind == JobKind::Convert && !j.state().finished()) {
            self.status = "a conversion is already running".into();
            return;
        }
        let out = self.emd_path();
        let p = Progress::job(JobKind::Convert, self.ds.positions_present() as u64);
        let (ds, tx, budget) = (self.ds.clone(), self.tx.clone(), self.memory_budget);
        let (opts, fopts) = (self.convert_options(), self.fft_options());
        self.status = format!("converting to {}", out.display());
        let tx2 = tx.clone();
        self.jobs.table.spawn(
            p,
            move |p| {
                let r = crate::ops::convert::convert(ds.as_ref(), &out, &opts, p)?;
                if then_fft {
                    let emd = crate::dataset::open(&r.output, &Default::default())?;
                    let c = crate::ops::fft::load_or_compute(emd.as_ref(), &r.output, None, budget, p, &fopts)?.cache();
                    let _ = tx.send(AppEvent::FftReady(Arc::new(c)));
                }
                Ok(r)
            },
            move |p, r| {
                let msg = match r {
                    Ok(r) => format!("converted to {} ({:.1} s)", r.output.display(), r.seconds),
                    Err(crate::Error::Cancelled) => "conversion cancelled".into(),
                    Err(e) => format!("{} failed: {e}", p.name),
                };
                let _ = tx2.send(AppEvent::JobEnded(p.kind, msg));
            },
        );
        self.dirty = true;
    }

    fn start_fft(&mut self) {
        self.start_fft_with(None)
    }

    /// The FFT job: in memory for the demo; otherwise into the EMD (this file, or the conversion of
    /// this `.mib`), with `params` (default: bright-field crop) — an existing complete cache is
    /// loaded, an interrupted one with the same parameters resumes.
    fn start_fft_with(&mut self, params: Option<crate::compute::fft::FftParams>) {
        if self.fft.job.as_ref().is_some_and(|j| !j.state().finished()) {
            self.status = "the FFT is already being computed".into();
            return;
        }
        let p = Progress::job(JobKind::Fft, 0);
        self.fft.job = Some(p.clone());
        let (ds, tx, demo, budget) = (self.ds.clone(), self.tx.clone(), self.demo, self.memory_budget);
        let path = if self.is_mib { self.emd_path() } else { self.path.clone() };
        let (copts, fopts) = (self.convert_options(), self.fft_options());
        let tx2 = tx.clone();
        self.jobs.table.spawn(
            p,
            move |p| {
                let src: Arc<dyn FftSource> = if demo {
                    Arc::new(MemFft::compute(ds.as_ref(), 1 << 23, p)?)
                } else {
                    let (emd_ds, _) = crate::ops::fft::ensure_emd(ds.clone(), &path, &copts, p)?;
                    let pixels = crate::ops::fft::pixel_source(&ds, &path, emd_ds.as_ref());
                    let fopts = crate::compute::fft::RunOptions { pixels, ..fopts };
                    let c = crate::ops::fft::load_or_compute(emd_ds.as_ref(), &path, params, budget, p, &fopts)?;
                    Arc::new(c.cache())
                };
                let _ = tx.send(AppEvent::FftReady(src));
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

    fn confirm_fft_text(&self) -> String {
        let (b, free) = self.fft_estimate();
        let f = free.map(|f| humansize::format_size(f, humansize::BINARY)).unwrap_or("unknown".into());
        format!(
            "Compute the 4D FFT into {}?\nCache size about {} (bright-field disk crop, complex64); free space {f}.\n(y/n)",
            self.emd_path().file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            humansize::format_size(b, humansize::BINARY)
        )
    }

    /// `F` / Tab into the explorer without an FFT: ask, or compute when it is cheap (demo).
    fn want_fft(&mut self, compute: bool) {
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
            self.popup = Popup::Confirm(Confirm::Fft, self.confirm_fft_text());
        } else {
            self.screen = Screen::Fft;
        }
    }

    pub fn set_fft(&mut self, src: Arc<dyn FftSource>) {
        self.fft.set_source(src);
        self.dirty = true;
    }

    /// The mean diffraction pattern over the ROI, on the worker pool.
    fn start_roi_mean(&mut self) {
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

    /// The image on screen as (values, width, height, name, display), or why there is none.
    fn export_image(&self) -> Result<(Vec<f32>, usize, usize, String, DisplayParams), &'static str> {
        match self.screen {
            Screen::Main if self.eels.is_some() => {
                let e = self.eels.as_ref().and_then(|e| e.export()).ok_or("no energy-window map yet")?;
                Ok((e.0, e.1, e.2, e.3, self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Dpc => {
                let o = self.dpc.outcome.as_ref().ok_or("no DPC result to export yet")?;
                let r = &o.result;
                Ok((r.phase.clone(), r.cols, r.rows, "icom".into(), self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Tcbf => {
                let (v, w, h, name, _) = super::tcbf::export(self).ok_or("no tcBF image to export yet")?;
                Ok((v, w, h, name, self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Ptycho => {
                let (v, w, h, name) = super::ptycho::export(self).ok_or("no ptychography image to export yet")?;
                Ok((v, w, h, name, self.main.overview_display))
            }
            Screen::Main => {
                let m = &self.main;
                let o = m.overviews.as_ref().ok_or("nothing to export yet")?;
                // the custom detector's image when one is shown in the first pane
                if let (Some(_), Some(v)) = (&m.detect.det, &m.detect.image) {
                    return Ok((v.clone(), o.scan_cols, o.scan_rows, "custom".into(), m.overview_display));
                }
                Ok((o.image(m.kind), o.scan_cols, o.scan_rows, m.kind.name().to_string(), m.overview_display))
            }
            Screen::Fft => {
                let src = self.fft.source.as_ref().ok_or("no FFT to export")?;
                let [qr, qc, _, _] = src.shape();
                let mut d = self.main.frame_display;
                d.scale = Scale::Log;
                Ok((self.fft.power.clone(), qc, qr, "fft-power".into(), d))
            }
        }
    }

    /// Export the image on screen as PNG next to the file (or in the working directory).
    fn export(&mut self) {
        if let Some(e) = self.eels.as_mut() {
            e.ensure_map();
        }
        let (vals, w, h, name, disp) = match self.export_image() {
            Ok(v) => v,
            Err(why) => {
                self.status = why.into();
                return;
            }
        };
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or("emdtui".into());
        let fname = format!("{stem}_{name}.png");
        let mut rgb = crate::compute::display::to_rgb(&vals, &disp);
        if self.screen == Screen::Main
            && let Some((step, units)) = &self.quant.calibration.r
        {
            // the tcBF image is on a grid finer than the scan
            let fine = if self.main.layout == ViewLayout::Tcbf { w / self.ds.scan().cols.max(1) } else { 1 };
            crate::compute::calib::draw_scale_bar(&mut rgb, h, w, *step / fine.max(1) as f64, units);
        }
        let mut tries = vec![self.path.with_file_name(&fname)];
        if let Ok(cwd) = std::env::current_dir() {
            tries.push(cwd.join(&fname));
        }
        let mut last = String::new();
        for t in tries {
            match crate::format::export::write_png_rgb(&t, h, w, &rgb) {
                Ok(()) => {
                    self.status = format!("exported {}", t.display());
                    return;
                }
                Err(e) => last = e.to_string(),
            }
        }
        self.status = format!("export failed: {last}");
    }

    /// Which keys are live: the FFT explorer, the EELS screen (spectrum data) or the main screen.
    pub fn key_context(&self) -> super::keys::Context {
        match (self.screen, self.eels.is_some()) {
            (Screen::Fft, _) => super::keys::Context::Fft,
            (Screen::Main, true) => super::keys::Context::Eels,
            (Screen::Main, false) => super::keys::Context::Main,
        }
    }

    pub fn any_running(&self) -> bool {
        self.jobs.table.running() > 0
    }
}

/// The state of the caches inside an EMD file ("N valid", or which are stale).
fn emd_cache_note(path: &std::path::Path) -> Option<String> {
    let c = crate::store::emd::EmdFile::open(path).and_then(|f| f.list_caches()).ok()?;
    let stale: Vec<&str> = c.iter().filter(|e| !e.valid).map(|e| e.name.as_str()).collect();
    let valid = c.len() - stale.len();
    Some(if stale.is_empty() {
        format!("{valid} valid")
    } else {
        format!("{valid} valid, {} STALE ({})", stale.len(), stale.join(", "))
    })
}

/// Apply one action: an open popup takes it first; then the view it concerns, or the actions
/// both screens share.
pub fn update(s: &mut State, a: Action) {
    s.dirty = true;
    if popup_action(s, a) {
        return;
    }
    if s.eels.is_some() && a.diffraction_only() {
        s.status = "spectrum data: no virtual detectors, diffraction frames or 4D FFT".into();
        return;
    }
    update_view(s, a);
    if s.eels.is_some() {
        super::eels::sync(s);
    }
}

/// Hand an action to the view it concerns.
fn update_view(s: &mut State, a: Action) {
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
        Action::FftRegion(_) | Action::FftReverse => fft_action(s, a),
        Action::EelsMove(_) | Action::EelsPage(_) | Action::EelsWidth(_) | Action::EelsLog => super::eels::action(s, a),
        Action::CycleScale | Action::CycleColormap | Action::CycleClip => display_action(s, a),
        Action::DpcView | Action::DpcRotate(_) | Action::DpcFlip | Action::DpcAuto | Action::DpcTypeRotation => {
            super::dpc::action(s, a)
        }
        Action::TcbfView | Action::TcbfUpsample => super::tcbf::action(s, a),
        Action::PtychoView => super::ptycho::action(s, a),
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
fn popup_action(s: &mut State, a: Action) -> bool {
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
            super::dpc::prompt(s, a);
            true
        }
    }
}

/// The user answered yes to `c`.
fn confirmed(s: &mut State, c: Confirm) {
    match c {
        Confirm::Quit => {
            s.jobs.cancel_all();
            s.quit = true;
        }
        Confirm::ConvertForFft => s.popup = Popup::Confirm(Confirm::Fft, s.confirm_fft_text()),
        Confirm::Fft => {
            if s.is_mib && !s.emd_path().exists() {
                s.start_convert(true);
            } else {
                s.start_fft();
            }
        }
        Confirm::Resume(_) => s.start_convert(false),
        Confirm::ResumeFft(params) => s.start_fft_with(Some(params)),
        Confirm::Tcbf => super::tcbf::run_job(s),
        Confirm::Ptycho => super::ptycho::run_job(s),
    }
}

/// Actions on the main view: scan cursor, detector, ROI, conversion.
fn main_action(s: &mut State, a: Action) {
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
fn click_overview(s: &mut State, col: u16, row: u16) {
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
fn roi_corner(s: &mut State) {
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
fn convert(s: &mut State) {
    if !s.is_mib {
        s.status = "already an EMD file".into();
    } else if s.emd_path().exists() {
        s.status = format!("{} exists already", s.emd_path().display());
    } else if s.eels.is_some() {
        super::eels::start_convert(s);
    } else {
        s.start_convert(false);
    }
}

/// Actions on the FFT explorer: its cursor, averaging region and view.
fn fft_action(s: &mut State, a: Action) {
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
        _ => {}
    }
}

/// Display settings shared by both screens: diffraction scale, colour map, percentile clipping.
fn display_action(s: &mut State, a: Action) {
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
fn jobs_action(s: &mut State, a: Action) {
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
fn shared_action(s: &mut State, a: Action) {
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

/// The end of an overview job: its exact result, or why it failed.
fn overview_ended(tx: &Sender<AppEvent>, gen_: u64, p: &Progress, r: crate::Result<Overviews>) {
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

/// Poll a growing file (when due): extend the dataset, move the cursor to the newest frame when
/// tracking, run the new frames through the overview.
fn follow_tick(s: &mut State) -> bool {
    let now = Instant::now();
    if !s.follow.due(now) {
        return false;
    }
    let total = s.ds.scan().positions();
    let replaced = s.ds.replaced();
    let present = if replaced { s.follow.frames } else { s.ds.refresh().min(total) };
    match s.follow.observe(present, total, replaced, now) {
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
                super::eels::sync(s);
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
            super::dpc::on_com(s, *c);
            true
        }
        AppEvent::Tcbf(o) => {
            super::tcbf::on_result(s, *o);
            true
        }
        AppEvent::Ptycho(o) => {
            super::ptycho::on_result(s, *o);
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
        AppEvent::SpectrumImage(si) => super::eels::loaded(s, si),
        AppEvent::Tick => {
            let mut redraw = s.any_running() | follow_tick(s);
            if s.eels.is_some() {
                super::eels::sync(s); // the cursor may have followed a growing acquisition
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

pub fn kind_label(k: DetectorKind) -> &'static str {
    match k {
        DetectorKind::Sum => "sum",
        DetectorKind::Bf => "BF",
        DetectorKind::Adf => "ADF",
        DetectorKind::ComX => "CoM x",
        DetectorKind::ComY => "CoM y",
        DetectorKind::DpcMag => "DPC magnitude",
        DetectorKind::DpcAngle => "DPC angle",
        DetectorKind::Mask => "mask",
    }
}
