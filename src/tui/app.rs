//! Application state and `update(&mut State, Action)`. Background work (overview, ROI mean,
//! conversion, FFT) runs as jobs in a [`JobTable`] and reports back as [`AppEvent`]s on the one
//! channel the main loop reads.

use super::images::{Graphics, PaneImage};
use super::keys::Action;
use super::loader::{Frame, Loader};
use crate::compute::display::{Colormap, DisplayParams, Scale};
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
    /// A (partial or final) overview for geometry generation `gen`.
    Overview(u64, Box<Overviews>),
    RoiMean(u64, Vec<f32>, usize),
    FftReady(Arc<dyn FftSource>),
    /// A job ended: (its kind, message to show).
    JobEnded(JobKind, String),
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
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    None,
    Help,
    Confirm(Confirm, String),
}

/// FFT explorer state.
pub struct FftState {
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
    pub version: u64,
    pub error: Option<String>,
}

/// Images prepared outside `render` (see `render::prepare`), keyed by what they show.
#[derive(Default)]
pub struct Prepared {
    pub overview: Option<(u64, Rect, PaneImage)>,
    pub frame: Option<(u64, Rect, PaneImage)>,
    pub fft: [Option<(u64, Rect, PaneImage)>; 3],
    /// Where the overview image sits on screen (cells) and its source size, for mouse clicks.
    pub overview_cells: Option<Rect>,
}

pub struct State {
    pub ds: Arc<dyn Dataset>,
    pub info: DatasetInfo,
    pub path: PathBuf,
    pub file_name: String,
    pub is_mib: bool,
    pub demo: bool,
    pub screen: Screen,
    pub cursor: (usize, usize),
    pub geometry: Geometry,
    pub kind: DetectorKind,
    pub overview_display: DisplayParams,
    pub frame_display: DisplayParams,
    pub overviews: Option<Overviews>,
    pub overview_gen: u64,
    pub overview_job: Option<Arc<Progress>>,
    pub geometry_changed: Option<Instant>,
    /// The detector geometry still follows the automatically found bright-field disk.
    pub auto_geometry: bool,
    /// For EMD files: the state of the caches inside the file (valid / stale).
    pub cache_note: Option<String>,
    /// The frame on screen (its position may lag the cursor while loading).
    pub frame: Option<(usize, Frame)>,
    pub roi_anchor: Option<(usize, usize)>,
    pub roi: Option<((usize, usize), (usize, usize))>,
    pub roi_mean: Option<(Vec<f32>, usize)>,
    pub roi_gen: u64,
    pub jobs: JobTable,
    pub selected_job: usize,
    pub popup: Popup,
    pub status: String,
    pub hint: Option<String>,
    pub fft: Option<Arc<dyn FftSource>>,
    pub fft_state: FftState,
    pub fft_job: Option<Arc<Progress>>,
    pub quit: bool,
    pub dirty: bool,
    /// Hide timings (throughput, ETA) so snapshots are stable.
    pub deterministic: bool,
    pub graphics: Graphics,
    pub picker: Picker,
    pub prepared: Prepared,
    /// Bumped when the overview picture changes (data, cursor, ROI, display, kind).
    pub ov_version: u64,
    /// Bumped when the diffraction picture changes (frame, geometry, display, ROI mean).
    pub frame_version: u64,
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

impl State {
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
        let mut s = State {
            ds,
            info,
            path,
            file_name,
            is_mib,
            demo: o.demo,
            screen: Screen::Main,
            cursor: (0, 0),
            geometry,
            kind: DetectorKind::Bf,
            overview_display: DisplayParams { scale: Scale::Linear, colormap: Colormap::Gray, clip: (0.5, 99.5) },
            frame_display: DisplayParams { scale: Scale::Log, colormap: Colormap::Inferno, clip: (0.1, 99.9) },
            overviews: None,
            overview_gen: 0,
            overview_job: None,
            geometry_changed: None,
            auto_geometry: true,
            cache_note: None,
            frame: None,
            roi_anchor: None,
            roi: None,
            roi_mean: None,
            roi_gen: 0,
            jobs: JobTable::new(),
            selected_job: 0,
            popup: Popup::None,
            status: String::new(),
            hint: o.hint,
            fft: None,
            fft_state: FftState {
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
            },
            fft_job: None,
            quit: false,
            dirty: true,
            deterministic: o.deterministic,
            graphics: o.graphics,
            picker: o.picker,
            prepared: Prepared::default(),
            ov_version: 0,
            frame_version: 0,
            memory_budget: o.memory_budget,
            cache_dir: o.cache_dir,
            tuning: o.tuning,
            tx,
            loader,
            first_complete_draw: None,
            started: Instant::now(),
        };
        if s.info.kind == Kind::Emd {
            s.cache_note = crate::store::emd::EmdFile::open(&s.path).and_then(|f| f.list_caches()).ok().map(|c| {
                let stale: Vec<&str> = c.iter().filter(|e| !e.valid).map(|e| e.name.as_str()).collect();
                let valid = c.len() - stale.len();
                if stale.is_empty() {
                    format!("{valid} valid")
                } else {
                    format!("{valid} valid, {} STALE ({})", stale.len(), stale.join(", "))
                }
            });
        }
        let sc = s.ds.scan();
        s.cursor = (sc.rows / 2, sc.cols / 2);
        s.request_frame();
        s.start_overview();
        s.offer_resume();
        s
    }

    pub fn pos(&self) -> usize {
        self.cursor.0 * self.ds.scan().cols + self.cursor.1
    }

    fn request_frame(&mut self) {
        let p = self.pos();
        if let Some(f) = self.loader.get(p) {
            self.frame = Some((p, f));
            self.frame_version += 1;
        } else {
            self.loader.request(p);
            if let Some(f) = self.loader.get(p) {
                self.frame = Some((p, f));
                self.frame_version += 1;
            }
        }
    }

    /// Start (or restart, after a geometry change) the overview job: the overviews cached in the
    /// EMD, else in the cache directory, else computed with partial results streamed to the UI.
    pub fn start_overview(&mut self) {
        if let Some(j) = self.overview_job.take() {
            j.cancel();
        }
        self.overview_gen += 1;
        let gen_ = self.overview_gen;
        let p = Progress::job(JobKind::Overview, self.ds.positions_present() as u64);
        self.overview_job = Some(p.clone());
        let t = &self.tuning;
        let kernel = KernelTuning {
            block_bytes: t.block_bytes.unwrap_or(KernelTuning::default().block_bytes),
            raw_kernel: !t.no_raw_kernel,
        };
        let job = OverviewJob {
            geometry: if self.auto_geometry {
                GeometryChoice::Auto { fallback: self.geometry.clone() }
            } else {
                GeometryChoice::Fixed(self.geometry.clone())
            },
            compute: ComputeOptions { memory_budget: self.memory_budget, mask: None, coarse_first: true, kernel },
            cache_dir: self.cache_dir.clone(),
            emd_cache: true,
        };
        let (ds, tx) = (self.ds.clone(), self.tx.clone());
        let tx2 = tx.clone();
        self.jobs.spawn(
            p,
            move |p| {
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
            move |p, r| match r {
                Ok(o) => {
                    let _ = tx2.send(AppEvent::Overview(gen_, Box::new(o)));
                }
                Err(crate::Error::Cancelled) => {}
                Err(e) => {
                    let _ = tx2.send(AppEvent::JobEnded(p.kind, format!("overview failed: {e}")));
                }
            },
        );
        self.dirty = true;
    }

    fn emd_path(&self) -> PathBuf {
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
    fn convert_options(&self) -> crate::compute::convert::ConvertOptions {
        let t = &self.tuning;
        crate::compute::convert::ConvertOptions {
            memory_budget: self.memory_budget,
            deflate_level: t.deflate_level(),
            no_space_check: t.no_space_check,
            fail_write_after: t.fail_write_after,
            ..Default::default()
        }
    }

    /// FFT run options of the UI's jobs.
    fn fft_options(&self) -> crate::compute::fft::RunOptions {
        crate::compute::fft::RunOptions {
            group_delay: self.tuning.fft_group_delay,
            buffered_output: self.tuning.fft_buffered,
            scratch_on_disk: self.tuning.fft_scratch_on_disk,
            ..Default::default()
        }
    }

    /// Convert to EMD in the background (then, with `then_fft`, compute the default FFT into it).
    fn start_convert(&mut self, then_fft: bool) {
        if self.jobs.list().iter().any(|j| j.kind == JobKind::Convert && !j.state().finished()) {
            self.status = "a conversion is already running".into();
            return;
        }
        let out = self.emd_path();
        let p = Progress::job(JobKind::Convert, self.ds.positions_present() as u64);
        let (ds, tx, budget) = (self.ds.clone(), self.tx.clone(), self.memory_budget);
        let (opts, fopts) = (self.convert_options(), self.fft_options());
        self.status = format!("converting to {}", out.display());
        let tx2 = tx.clone();
        self.jobs.spawn(
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
        if self.fft_job.as_ref().is_some_and(|j| !j.state().finished()) {
            self.status = "the FFT is already being computed".into();
            return;
        }
        let p = Progress::job(JobKind::Fft, 0);
        self.fft_job = Some(p.clone());
        let (ds, tx, demo, budget) = (self.ds.clone(), self.tx.clone(), self.demo, self.memory_budget);
        let path = if self.is_mib { self.emd_path() } else { self.path.clone() };
        let (copts, fopts) = (self.convert_options(), self.fft_options());
        let tx2 = tx.clone();
        self.jobs.spawn(
            p,
            move |p| {
                let src: Arc<dyn FftSource> = if demo {
                    Arc::new(MemFft::compute(ds.as_ref(), 1 << 23, p)?)
                } else {
                    let (emd_ds, _) = crate::ops::fft::ensure_emd(ds, &path, &copts, p)?;
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
        if self.fft.is_some() {
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
        let [qr, qc, kr, kc] = src.shape();
        self.fft_state.q = (qr / 2, qc / 2 + 1.min(qc / 2));
        self.fft_state.k = (kr / 2, kc / 2);
        self.fft_state.power = src.power_map().unwrap_or_default();
        self.fft = Some(src);
        self.refresh_fft();
    }

    fn refresh_fft(&mut self) {
        let Some(src) = self.fft.clone() else { return };
        let st = &mut self.fft_state;
        let r = if st.reverse {
            src.q_image(st.k, st.half, Part::Amp).and_then(|a| Ok((a, src.q_image(st.k, st.half, Part::Phase)?)))
        } else {
            src.detector_image(st.q, st.half, Part::Amp)
                .and_then(|a| Ok((a, src.detector_image(st.q, st.half, Part::Phase)?)))
        };
        match r {
            Ok((a, mut p)) => {
                // phase is meaningless where there is no amplitude: leave it blank
                let amax = a.iter().cloned().filter(|v| v.is_finite()).fold(0f32, f32::max);
                for (ph, am) in p.iter_mut().zip(&a) {
                    if !(*am > amax * 1e-3) {
                        *ph = f32::NAN;
                    }
                }
                if !st.reverse {
                    st.det_amp = a.clone();
                }
                st.amp = a;
                st.phase = p;
                st.error = None;
            }
            Err(e) => st.error = Some(e.to_string()),
        }
        st.version += 1;
        self.dirty = true;
    }

    /// The mean diffraction pattern over the ROI, on the worker pool.
    fn start_roi_mean(&mut self) {
        let Some(((r0, c0), (r1, c1))) = self.roi else { return };
        self.roi_gen += 1;
        let g = self.roi_gen;
        let n = (r1 - r0 + 1) * (c1 - c0 + 1);
        let p = Progress::job(JobKind::RoiMean, n as u64);
        let (ds, tx, budget) = (self.ds.clone(), self.tx.clone(), self.memory_budget);
        self.jobs.spawn(
            p,
            move |p| {
                let mean = crate::ops::overview::roi_mean(ds.as_ref(), r0..r1 + 1, c0..c1 + 1, budget, p)?;
                let _ = tx.send(AppEvent::RoiMean(g, mean, n));
                Ok(())
            },
            |_, _| {},
        );
    }

    /// Export the image on screen as PNG next to the file (or in the working directory).
    fn export(&mut self) {
        let (vals, w, h, name, disp) = match self.screen {
            Screen::Main => match &self.overviews {
                Some(o) => {
                    (o.image(self.kind), o.scan_cols, o.scan_rows, self.kind.name().to_string(), self.overview_display)
                }
                None => {
                    self.status = "nothing to export yet".into();
                    return;
                }
            },
            Screen::Fft => {
                let Some(src) = &self.fft else {
                    self.status = "no FFT to export".into();
                    return;
                };
                let [qr, qc, _, _] = src.shape();
                let mut d = self.frame_display;
                d.scale = Scale::Log;
                (self.fft_state.power.clone(), qc, qr, "fft-power".into(), d)
            }
        };
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or("emdtui".into());
        let fname = format!("{stem}_{name}.png");
        let rgb = crate::compute::display::to_rgb(&vals, &disp);
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

    fn clamp_geometry(&mut self) {
        let (dr, dc) = self.ds.det();
        let g = &mut self.geometry;
        g.center.0 = g.center.0.clamp(0.0, dr as f32 - 1.0);
        g.center.1 = g.center.1.clamp(0.0, dc as f32 - 1.0);
        let m = dr.max(dc) as f32;
        g.bf_radius = g.bf_radius.clamp(1.0, m);
        g.adf_outer = g.adf_outer.clamp(2.0, m);
        g.adf_inner = g.adf_inner.clamp(0.0, g.adf_outer - 1.0);
        g.com_origin = g.center;
    }

    pub fn any_running(&self) -> bool {
        self.jobs.running() > 0
    }
}

/// Apply one action.
pub fn update(s: &mut State, a: Action) {
    s.dirty = true;
    // prompts and help swallow everything else
    match (&s.popup, a) {
        (Popup::Help, Action::Help | Action::ClearRoi | Action::No | Action::Quit) => {
            s.popup = Popup::None;
            return;
        }
        (Popup::Help, _) => {
            s.popup = Popup::None;
        }
        (Popup::Confirm(c, _), Action::Yes) => {
            let c = c.clone();
            s.popup = Popup::None;
            match c {
                Confirm::Quit => {
                    for j in s.jobs.list() {
                        j.cancel();
                    }
                    s.quit = true;
                }
                Confirm::ConvertForFft => {
                    s.popup = Popup::Confirm(Confirm::Fft, s.confirm_fft_text());
                }
                Confirm::Fft => {
                    if s.is_mib && !s.emd_path().exists() {
                        s.start_convert(true);
                    } else {
                        s.start_fft();
                    }
                }
                Confirm::Resume(_) => s.start_convert(false),
                Confirm::ResumeFft(params) => s.start_fft_with(Some(params)),
            }
            return;
        }
        (Popup::Confirm(..), Action::No) => {
            s.popup = Popup::None;
            return;
        }
        (Popup::Confirm(..), _) => return,
        _ => {}
    }
    let sc = s.ds.scan().clone();
    match a {
        Action::Move(dy, dx) => match s.screen {
            Screen::Main => {
                let r = (s.cursor.0 as i64 + dy as i64).clamp(0, sc.rows as i64 - 1) as usize;
                let c = (s.cursor.1 as i64 + dx as i64).clamp(0, sc.cols as i64 - 1) as usize;
                if (r, c) != s.cursor {
                    s.cursor = (r, c);
                    s.ov_version += 1;
                    s.request_frame();
                }
            }
            Screen::Fft => {
                if let Some(src) = &s.fft {
                    let [qr, qc, kr, kc] = src.shape();
                    let st = &mut s.fft_state;
                    let (p, (nr, nc)) = if st.reverse { (&mut st.k, (kr, kc)) } else { (&mut st.q, (qr, qc)) };
                    p.0 = (p.0 as i64 + dy as i64).clamp(0, nr as i64 - 1) as usize;
                    p.1 = (p.1 as i64 + dx as i64).clamp(0, nc as i64 - 1) as usize;
                    s.refresh_fft();
                }
            }
        },
        Action::ClickOverview(col, row) => {
            if let (Some(r), Screen::Main) = (s.prepared.overview_cells, s.screen)
                && col >= r.x
                && row >= r.y
                && col < r.x + r.width
                && row < r.y + r.height
            {
                let y = ((row - r.y) as usize * sc.rows / r.height as usize).min(sc.rows - 1);
                let x = ((col - r.x) as usize * sc.cols / r.width as usize).min(sc.cols - 1);
                s.cursor = (y, x);
                s.ov_version += 1;
                s.request_frame();
            }
        }
        Action::MoveDetector(dy, dx) => {
            s.geometry.center.0 += dy as f32;
            s.geometry.center.1 += dx as f32;
            s.clamp_geometry();
            s.frame_version += 1;
            s.auto_geometry = false;
            s.geometry_changed = Some(Instant::now());
        }
        Action::Radius(d) => {
            if s.kind == DetectorKind::Adf {
                s.geometry.adf_outer += d as f32;
            } else {
                s.geometry.bf_radius += d as f32;
            }
            s.clamp_geometry();
            s.frame_version += 1;
            s.auto_geometry = false;
            s.geometry_changed = Some(Instant::now());
        }
        Action::InnerRadius(d) => {
            s.geometry.adf_inner += d as f32;
            s.clamp_geometry();
            s.frame_version += 1;
            s.auto_geometry = false;
            s.geometry_changed = Some(Instant::now());
        }
        Action::CycleDetector => {
            let c = DetectorKind::CYCLE;
            let i = c.iter().position(|k| *k == s.kind).map(|i| (i + 1) % c.len()).unwrap_or(0);
            s.kind = c[i];
            s.ov_version += 1;
            s.frame_version += 1;
            s.status = format!("detector: {}", kind_label(s.kind));
        }
        Action::CycleScale => {
            s.frame_display.scale = s.frame_display.scale.next();
            s.frame_version += 1;
            s.fft_state.version += 1;
            s.status = format!("diffraction scale: {}", s.frame_display.scale.name());
        }
        Action::CycleColormap => {
            let c = s.overview_display.colormap.next();
            let c = if c == Colormap::Twilight { c.next() } else { c };
            s.overview_display.colormap = c;
            s.frame_display.colormap = c;
            s.ov_version += 1;
            s.frame_version += 1;
            s.fft_state.version += 1;
            s.status = format!("colour map: {}", c.name());
        }
        Action::Roi => match s.roi_anchor.take() {
            None => {
                s.roi_anchor = Some(s.cursor);
                s.roi = Some((s.cursor, s.cursor));
                s.ov_version += 1;
                s.status = "ROI: move to the opposite corner and press r".into();
            }
            Some(a0) => {
                let (r0, r1) = (a0.0.min(s.cursor.0), a0.0.max(s.cursor.0));
                let (c0, c1) = (a0.1.min(s.cursor.1), a0.1.max(s.cursor.1));
                s.roi = Some(((r0, c0), (r1, c1)));
                s.ov_version += 1;
                s.status = format!("ROI rows {r0}..={r1}, cols {c0}..={c1}: mean diffraction");
                s.start_roi_mean();
            }
        },
        Action::ClearRoi => {
            s.roi = None;
            s.roi_anchor = None;
            s.roi_mean = None;
            s.roi_gen += 1;
            s.ov_version += 1;
            s.frame_version += 1;
        }
        Action::Convert => {
            if !s.is_mib {
                s.status = "already an EMD file".into();
            } else if s.emd_path().exists() {
                s.status = format!("{} exists already", s.emd_path().display());
            } else {
                s.start_convert(false);
            }
        }
        Action::Fft => s.want_fft(true),
        Action::SwitchScreen => match s.screen {
            Screen::Fft => s.screen = Screen::Main,
            Screen::Main => s.want_fft(false),
        },
        Action::CancelJob => {
            let l = s.jobs.list();
            match l.get(s.selected_job.min(l.len().saturating_sub(1))) {
                Some(j) if !j.state().finished() => {
                    j.cancel();
                    s.status = format!("cancelling {}", j.name);
                }
                Some(j) => s.status = format!("{} is not running", j.name),
                None => s.status = "no jobs".into(),
            }
        }
        Action::SelectJob(d) => {
            let n = s.jobs.list().len();
            if n > 0 {
                s.selected_job = (s.selected_job as i64 + d as i64).rem_euclid(n as i64) as usize;
            }
        }
        Action::Export => s.export(),
        Action::Help => s.popup = Popup::Help,
        Action::Quit => {
            // only work the user started is worth a question; views are recomputed next time
            let n = s
                .jobs
                .list()
                .iter()
                .filter(|j| !j.state().finished() && j.name != "overview" && j.name != "roi mean")
                .count();
            if n > 0 {
                s.popup = Popup::Confirm(
                    Confirm::Quit,
                    format!("{n} job{} running. Cancel and quit? (y/n)", if n > 1 { "s" } else { "" }),
                );
            } else {
                s.quit = true;
            }
        }
        Action::FftRegion(d) => {
            s.fft_state.half = (s.fft_state.half as i64 + d as i64).clamp(0, 16) as usize;
            s.refresh_fft();
        }
        Action::FftReverse => {
            s.fft_state.reverse = !s.fft_state.reverse;
            s.refresh_fft();
        }
        Action::Yes | Action::No => {}
    }
}

/// Apply a background event. Returns true when the screen should be redrawn.
pub fn on_event(s: &mut State, e: AppEvent) -> bool {
    match e {
        AppEvent::Input(_) => false,
        AppEvent::FrameReady(p) => {
            if p == s.pos() && s.frame.as_ref().is_none_or(|(fp, _)| *fp != p) {
                if let Some(f) = s.loader.get(p) {
                    s.frame = Some((p, f));
                    s.frame_version += 1;
                    return true;
                }
            }
            false
        }
        AppEvent::Overview(g, o) => {
            if g != s.overview_gen {
                return false;
            }
            if s.auto_geometry && s.geometry != o.geometry {
                s.geometry = o.geometry.clone();
                s.frame_version += 1;
            }
            s.overviews = Some(*o);
            s.ov_version += 1;
            true
        }
        AppEvent::RoiMean(g, v, n) => {
            if g == s.roi_gen {
                s.roi_mean = Some((v, n));
                s.frame_version += 1;
            }
            true
        }
        AppEvent::FftReady(src) => {
            s.set_fft(src);
            s.status = "FFT ready".into();
            true
        }
        AppEvent::JobEnded(_, msg) => {
            s.status = msg;
            true
        }
        AppEvent::Tick => {
            let mut redraw = s.any_running();
            if let Some(t) = s.geometry_changed
                && t.elapsed() >= Duration::from_millis(300)
            {
                s.geometry_changed = None;
                s.start_overview();
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
