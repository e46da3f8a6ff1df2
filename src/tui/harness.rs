//! Drive the app without a terminal: key sequences in, `TestBackend` screens out. Used by the
//! snapshot tests and the timing harness (`examples/tui_bench.rs`).

use super::app::{self, AppEvent, State};
use super::images::Graphics;
use super::{draw, handle};
use ratatui::backend::{Backend, TestBackend};
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub struct Harness<B: Backend = TestBackend> {
    pub state: State,
    pub rx: Receiver<AppEvent>,
    pub terminal: ratatui::Terminal<B>,
}

impl Harness<TestBackend> {
    /// Open `path` in a `w`x`h` test terminal (frames decoded synchronously, timings hidden).
    pub fn open(path: &Path, w: u16, h: u16, graphics: Graphics) -> anyhow::Result<Self> {
        Self::with_backend(path, TestBackend::new(w, h), graphics, true)
    }

    /// [`Harness::open`], with complete overviews read from and stored in the overview cache in
    /// `cache_dir` (as the app does with its cache directory). `open` uses no cache.
    pub fn open_with_cache(path: &Path, w: u16, h: u16, graphics: Graphics, cache_dir: &Path) -> anyhow::Result<Self> {
        Self::with_backend_and_cache(path, TestBackend::new(w, h), graphics, true, Some(cache_dir.to_path_buf()))
    }

    /// The built-in demo `d` (generated into `cache_dir/demo` when missing, its calibration
    /// remembered there) in a `w`x`h` test terminal, as `emdtui` / `emdtui --demo eels` open it.
    pub fn demo(
        d: crate::ops::demo::Demo,
        w: u16,
        h: u16,
        graphics: Graphics,
        cache_dir: &Path,
    ) -> anyhow::Result<Self> {
        let f = crate::ops::demo::file(cache_dir, d)?;
        Self::build(&f, TestBackend::new(w, h), graphics, true, Some(cache_dir.to_path_buf()), true)
    }

    /// The screen as text (symbols only), one line per row.
    pub fn text(&self) -> String {
        self.terminal.backend().to_string()
    }
}

impl<B: Backend> Harness<B> {
    /// The app on `backend`, without an overview cache.
    pub fn with_backend(path: &Path, backend: B, graphics: Graphics, deterministic: bool) -> anyhow::Result<Self> {
        Self::with_backend_and_cache(path, backend, graphics, deterministic, None)
    }

    /// The app on `backend`; complete overviews are cached in `cache_dir` (None: no cache).
    pub fn with_backend_and_cache(
        path: &Path,
        backend: B,
        graphics: Graphics,
        deterministic: bool,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Self::build(path, backend, graphics, deterministic, cache_dir, false)
    }

    fn build(
        path: &Path,
        backend: B,
        graphics: Graphics,
        deterministic: bool,
        cache_dir: Option<PathBuf>,
        demo: bool,
    ) -> anyhow::Result<Self> {
        let ds = crate::dataset::open(path, &Default::default())?;
        let (tx, rx) = mpsc::channel();
        let mut picker = ratatui_image::picker::Picker::halfblocks();
        if let Graphics::Protocol(p) = graphics {
            picker.set_protocol_type(p);
        }
        let state = State::new(
            ds,
            tx,
            app::Options {
                graphics,
                picker,
                hint: None,
                demo,
                deterministic,
                sync_loader: deterministic,
                memory_budget: 1 << 30,
                cache_dir,
                tuning: crate::Tuning::default(),
            },
        );
        let terminal = ratatui::Terminal::new(backend).map_err(|e| anyhow::anyhow!("terminal: {e:?}"))?;
        Ok(Harness { state, rx, terminal })
    }

    pub fn key_mod(&mut self, code: KeyCode, m: KeyModifiers) {
        handle(&mut self.state, AppEvent::Input(Event::Key(KeyEvent::new(code, m))));
        self.pump();
    }

    pub fn key(&mut self, code: KeyCode) {
        self.key_mod(code, KeyModifiers::NONE);
    }

    pub fn keys(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Apply events already waiting.
    pub fn pump(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            handle(&mut self.state, e);
        }
    }

    /// Fire pending debounced work and wait until every job has finished and reported
    /// (at most `timeout`).
    pub fn settle(&mut self, timeout: Duration) {
        if self.state.main.geometry_changed.is_some() {
            self.state.main.geometry_changed = Some(Instant::now() - Duration::from_secs(10));
            handle(&mut self.state, AppEvent::Tick);
        }
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            self.pump();
            if !self.state.any_running() {
                std::thread::sleep(Duration::from_millis(20));
                self.pump();
                if !self.state.any_running() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Prepare and draw into the backend.
    pub fn draw(&mut self) {
        let size = self.terminal.size().expect("size");
        draw::prepare(&mut self.state, Rect::new(0, 0, size.width, size.height));
        let s = &self.state;
        self.terminal.draw(|f| draw::render(s, f)).expect("draw");
        self.state.dirty = false;
    }
}
