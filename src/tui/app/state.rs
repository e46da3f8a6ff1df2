//! The UI state: [`State`] and its parts, the events and the popups, and what the state
//! answers about itself (the cursor position, the EMD path, the options of its jobs).

use crate::compute::diffractogram::Magnitude;
use crate::compute::display::{Colormap, DisplayParams, Scale};
use crate::compute::fft::{FftSource, Part};
use crate::compute::overview::{DetectorKind, Geometry, Overviews};
use crate::dataset::{Dataset, DatasetInfo};
use crate::jobs::{JobKind, JobTable, Progress};
use crate::tui::follow::Follow;
use crate::tui::images::{Graphics, Shown};
use crate::tui::loader::{Frame, Loader};
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
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
    /// The DPC rotation prompt: the text typed so far (see `tui::popups::rotation`).
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
    pub detect: crate::tui::view_state::detect::DetectView,
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
    /// Draw the trotters of the SSB result (`o`; see `tui::trotters`).
    pub trotters: bool,
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
    pub eels: Option<crate::tui::view_state::eels::EelsView>,
    pub jobs: JobsPanel,
    pub popup: Popup,
    /// The DPC view (`i`).
    pub dpc: crate::tui::view_state::dpc::DpcView,
    /// The tcBF view (`b`).
    pub tcbf: crate::tui::view_state::tcbf::TcbfView,
    /// The ptychography view (`P`).
    pub ptycho: crate::tui::view_state::ptycho::PtychoView,
    /// Calibration (scale bars, collection angles) and bad pixels (masked in the frame view).
    pub quant: crate::tui::widgets::quant::Quant,
    /// Following a growing `.mib` (a running acquisition).
    pub follow: Follow,
    /// The navigation pane (`--nav PATH`).
    pub nav: Option<crate::tui::view_state::nav::NavView>,
    /// The inspector screen (`I`), when open.
    pub inspector: Option<crate::tui::view_state::inspector::InspectorView>,
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
    pub(crate) fn new(cursor: (usize, usize), geometry: Geometry) -> MainView {
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
    pub(crate) fn edit_geometry(&mut self, det: (usize, usize), f: impl FnOnce(&mut Geometry)) {
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
    pub(crate) fn cycle_kind(&mut self) {
        let c = DetectorKind::CYCLE;
        let i = c.iter().position(|k| *k == self.kind).map(|i| (i + 1) % c.len()).unwrap_or(0);
        self.kind = c[i];
        self.ov_version += 1;
        self.frame_version += 1;
        self.dgram_version += 1;
    }

    pub(crate) fn clear_roi(&mut self) {
        self.roi = None;
        self.roi_anchor = None;
        self.roi_mean = None;
        self.roi_gen += 1;
        self.ov_version += 1;
        self.frame_version += 1;
        self.dgram_version += 1;
    }

    /// A partial or (`exact`) final overview of generation `gen_`; false when it is out of date.
    pub(crate) fn apply_overview(&mut self, gen_: u64, o: Overviews, exact: bool) -> bool {
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
    pub(crate) fn new() -> FftView {
        FftView {
            source: None,
            job: None,
            q: (0, 0),
            k: (0, 0),
            half: 0,
            reverse: false,
            trotters: true,
            power: vec![],
            amp: vec![],
            phase: vec![],
            det_amp: vec![],
            version: 0,
            error: None,
        }
    }

    /// Show `src`: cursors to the centre (Q just off the zero frequency), power map loaded.
    pub(crate) fn set_source(&mut self, src: Arc<dyn FftSource>) {
        let [qr, qc, kr, kc] = src.shape();
        self.q = (qr / 2, qc / 2 + 1.min(qc / 2));
        self.k = (kr / 2, kc / 2);
        self.power = src.power_map().unwrap_or_default();
        self.source = Some(src);
        self.refresh();
    }

    /// Move the Q cursor (the K cursor in the reverse view).
    pub(crate) fn move_cursor(&mut self, dy: i32, dx: i32) {
        let Some(src) = &self.source else { return };
        let [qr, qc, kr, kc] = src.shape();
        let (p, (nr, nc)) = if self.reverse { (&mut self.k, (kr, kc)) } else { (&mut self.q, (qr, qc)) };
        p.0 = (p.0 as i64 + dy as i64).clamp(0, nr as i64 - 1) as usize;
        p.1 = (p.1 as i64 + dx as i64).clamp(0, nc as i64 - 1) as usize;
        self.refresh();
    }

    /// Read |G| and arg G for the cursors (nothing without a source).
    pub(crate) fn refresh(&mut self) {
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
    pub(crate) fn selected_job(&self) -> Option<Arc<Progress>> {
        let l = self.table.list();
        l.get(self.selected.min(l.len().saturating_sub(1))).cloned()
    }

    pub(crate) fn select(&mut self, d: i32) {
        let n = self.table.list().len();
        if n > 0 {
            self.selected = (self.selected as i64 + d as i64).rem_euclid(n as i64) as usize;
        }
    }

    /// Jobs the user started that are still running (views are recomputed next time, so the
    /// overview and ROI mean do not count).
    pub(crate) fn user_jobs_running(&self) -> usize {
        self.table
            .list()
            .iter()
            .filter(|j| {
                !j.state().finished()
                    && !["overview", "roi mean", crate::tui::view_state::eels::JOB_NAME].contains(&j.name.as_str())
            })
            .count()
    }

    pub(crate) fn cancel_all(&self) {
        for j in self.table.list() {
            j.cancel();
        }
    }
}

impl State {
    /// Switch the main screen to `layout`, or back to the single-image layout when it is
    /// already shown; true when it was switched on (the caller then starts what it shows).
    pub(crate) fn toggle_layout(&mut self, layout: ViewLayout) -> bool {
        let on = self.main.layout != layout;
        self.main.layout = if on { layout } else { ViewLayout::Single };
        self.main.ov_version += 1;
        on
    }

    /// Move the cursor to the newest of `present` positions.
    pub(crate) fn track_newest(&mut self, present: usize) {
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
    pub(crate) fn toggle_follow(&mut self) {
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
    pub(crate) fn request_frame(&mut self) {
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
    pub(crate) fn set_cursor(&mut self, r: usize, c: usize) {
        self.main.cursor = (r, c);
        self.main.ov_version += 1;
        self.request_frame();
    }

    pub(crate) fn emd_path(&self) -> PathBuf {
        crate::ops::convert::default_output(&self.path)
    }

    /// Interrupted outputs next to the file (`X.emd.part`, `.X.emd.part*`).
    pub fn find_interrupted(&self) -> Option<PathBuf> {
        crate::ops::resume::find_partial_conversion(&self.emd_path())
    }

    /// Conversion options of the UI's jobs (tuning knobs filled in).
    pub(crate) fn convert_options(&self) -> crate::compute::convert::ConvertOptions {
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
    pub(crate) fn fft_options(&self) -> crate::compute::fft::RunOptions {
        crate::compute::fft::RunOptions {
            group_delay: self.tuning.fft_group_delay,
            buffered_output: self.tuning.fft_buffered,
            scratch_on_disk: self.tuning.fft_scratch_on_disk,
            ..Default::default()
        }
    }

    /// Which keys are live: the FFT explorer, the EELS screen (spectrum data) or the main screen.
    pub fn key_context(&self) -> crate::tui::keys::Context {
        match (self.screen, self.eels.is_some()) {
            (Screen::Fft, _) => crate::tui::keys::Context::Fft,
            (Screen::Main, true) => crate::tui::keys::Context::Eels,
            (Screen::Main, false) => crate::tui::keys::Context::Main,
        }
    }

    pub fn any_running(&self) -> bool {
        self.jobs.table.running() > 0
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
