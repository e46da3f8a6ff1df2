//! The terminal UI: `emdtui FILE` (or `emdtui` for the built-in demo).
//!
//! Event-driven (after ratatui's event-driven template and gitui): one `std::sync::mpsc`
//! channel carries terminal input (from an input thread), background results (frame loader,
//! jobs) and a slow tick; the loop drains everything pending, applies it to the [`app::State`],
//! prepares images, and redraws only when something changed. Draining before drawing coalesces
//! bursts (held arrow keys, slow SSH links): only the latest frame is ever sent.

pub mod app;
pub mod custom;
pub mod dpc;
pub mod draw;
pub mod eels;
pub mod fft_job;
pub mod follow;
pub mod harness;
pub mod images;
pub mod inspector;
pub mod keys;
pub mod loader;
pub mod nav;
pub mod popups;
pub mod ptycho;
pub mod render;
pub mod tcbf;
pub mod termquery;
pub mod trotters;
pub mod view_state;
pub mod widgets;

use crate::Tuning;
use crate::dataset::OpenOptions;
use anyhow::Context;
use app::{AppEvent, State};
use ratatui::crossterm::event::{self, Event, KeyEventKind, MouseButton, MouseEventKind};
use ratatui::crossterm::{execute, terminal};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the front end was asked to open, and how (parsed by the binary from its command line).
#[derive(Debug, Clone)]
pub struct Launch {
    /// The file; the built-in demo when None.
    pub file: Option<PathBuf>,
    /// Which built-in demo (`--demo`) when no file is given.
    pub demo: crate::ops::demo::Demo,
    pub open: OpenOptions,
    pub memory_budget: u64,
    /// `--graphics`: auto, kitty, sixel, iterm2, halfblocks, braille.
    pub graphics: String,
    /// `--no-query`.
    pub no_query: bool,
    /// What the environment says about the terminal (multiplexer, image protocols).
    pub term: images::TermEnv,
    /// Calibration given on the command line (on top of the stored one; remembered for a `.mib`).
    pub calibration: crate::compute::calib::Calibration,
    /// `--keep-bad-pixels`.
    pub keep_bad_pixels: bool,
    /// `--bad-pixels PATH` as flat detector indices.
    pub user_bad: Vec<usize>,
    /// `--nav PATH`: a navigation image shown beside the overview.
    pub nav: Option<PathBuf>,
}

/// The cache directory (from the tuning; `./.emdtui-cache` when none could be found).
pub fn cache_dir(t: &Tuning) -> PathBuf {
    t.cache_dir.clone().unwrap_or_else(|| PathBuf::from(".emdtui-cache"))
}

fn init_logging(dir: &std::path::Path) {
    if std::fs::create_dir_all(dir).is_ok()
        && let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("emdtui.log"))
    {
        let _ = simplelog::WriteLogger::init(log::LevelFilter::Info, simplelog::Config::default(), f);
    }
}

/// True while the terminal is in raw mode + alternate screen.
static TERMINAL_ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Leave raw mode and the alternate screen, once: a second "leave alternate screen" (panic hook,
/// then the guard while unwinding) would move the cursor back over the panic message.
fn restore_terminal() {
    if !TERMINAL_ACTIVE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped (normal exit and error paths).
struct TerminalGuard;
impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

pub fn run(cli: &Launch, tuning: &Tuning) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let cache = cache_dir(tuning);
    init_logging(&cache);
    keys::set_user_keys(
        keys::UserKeys::load(tuning.keys_file.as_deref()).map_err(|e| anyhow::anyhow!("key configuration {e}"))?,
    );
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !tty {
        anyhow::bail!("the terminal UI needs a terminal (use `emdtui info FILE` for a summary)");
    }
    let (path, demo) = match &cli.file {
        Some(f) => (f.clone(), false),
        None => {
            if !crate::ops::demo::file_exists(&cache, cli.demo) {
                eprintln!("emdtui: generating the demo dataset in {} ...", cache.join("demo").display());
            }
            (crate::ops::demo::file(&cache, cli.demo)?, true)
        }
    };
    let ds = crate::dataset::open(&path, &cli.open).with_context(|| format!("opening {}", path.display()))?;
    // a bad navigation image stops here, before the terminal is taken, with one error naming it
    let nav = match &cli.nav {
        Some(p) => Some(crate::ops::nav::load(p, (ds.scan().rows, ds.scan().cols))?),
        None => None,
    };
    let budget = cli.memory_budget;
    let trace = tuning.trace_startup;
    let t_open = t0.elapsed();

    // panic hook: restore the terminal first, then report
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        log::error!("panic: {info}");
        prev(info);
    }));
    TERMINAL_ACTIVE.store(true, std::sync::atomic::Ordering::SeqCst);
    terminal::enable_raw_mode().context("enabling raw mode")?;
    let _guard = TerminalGuard;
    execute!(std::io::stdout(), terminal::EnterAlternateScreen, event::EnableMouseCapture)?;
    // the capability query must run after entering the alternate screen and before the input
    // thread starts reading; it waits at most images::QUERY_DEADLINE, and under tmux/screen
    // (unless --graphics asks for a protocol) it is not sent at all
    let env = cli.term.clone();
    let choice = images::choose(&cli.graphics, cli.no_query, tty, &env)?;
    let (graphics, picker, hint) = (choice.graphics, choice.picker, choice.hint);
    log::info!("open {} graphics={} demo={demo} env={env:?}", path.display(), graphics.name());
    // clear with a plain escape sequence: `Terminal::clear` reads the cursor position first,
    // which blocks on (and fails with) a terminal that does not answer
    execute!(std::io::stdout(), terminal::Clear(terminal::ClearType::All))?;
    let backend =
        ratatui::backend::CrosstermBackend::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()));
    let mut term = ratatui::Terminal::new(backend)?;

    let (tx, rx) = mpsc::channel::<AppEvent>();
    // keys typed while the query answers were read come first
    for e in choice.early_input {
        let _ = tx.send(AppEvent::Input(e));
    }
    spawn_input(tx.clone(), choice.answers_may_be_late)?;
    let mut s = State::new(
        ds,
        tx.clone(),
        app::Options {
            graphics,
            picker,
            hint,
            demo,
            deterministic: false,
            sync_loader: false,
            memory_budget: budget,
            cache_dir: Some(cache.clone()),
            tuning: tuning.clone(),
        },
    );
    s.quant.keep_bad = cli.keep_bad_pixels;
    if let Some(n) = nav {
        nav::attach(&mut s, n);
    }
    s.quant.user_bad = cli.user_bad.clone();
    if cli.calibration != Default::default() && !demo {
        match crate::ops::calib::resolve(s.ds.as_ref(), &cli.calibration, Some(&cache)) {
            Ok(c) => s.quant.calibration = c,
            Err(e) => s.status = format!("calibration: {e}"),
        }
    }
    event_loop(&mut s, &mut term, &rx, t0, tuning.test_panic)?;
    drop(term);
    drop(_guard);
    if trace && let Some(d) = s.first_complete_draw {
        eprintln!(
            "emdtui: first complete draw (metadata + frame) after {:.1} ms (opening the file: {:.1} ms)",
            d.as_secs_f64() * 1e3,
            t_open.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The input thread: terminal events (late answers to the capability query filtered out) as
/// `AppEvent::Input` on `tx`.
fn spawn_input(tx: mpsc::Sender<AppEvent>, answers_may_be_late: bool) -> std::io::Result<()> {
    let mut late = termquery::LateAnswerFilter::new(answers_may_be_late, Duration::from_secs(30));
    std::thread::Builder::new().name("input".into()).spawn(move || {
        while let Ok(e) = event::read() {
            for e in late.push(e) {
                if tx.send(AppEvent::Input(e)).is_err() {
                    return;
                }
            }
        }
    })?;
    Ok(())
}

/// Draw when something changed, wait for events (a tick when none come), drain and apply every
/// pending one; until the user quits.
fn event_loop(
    s: &mut State,
    term: &mut ratatui::Terminal<ratatui::backend::CrosstermBackend<std::io::BufWriter<std::io::Stdout>>>,
    rx: &mpsc::Receiver<AppEvent>,
    t0: Instant,
    test_panic: bool,
) -> anyhow::Result<()> {
    let mut last_tick = Instant::now();
    loop {
        if s.dirty {
            let size = term.size()?;
            draw::prepare(s, ratatui::layout::Rect::new(0, 0, size.width, size.height));
            term.draw(|f| draw::render(s, f))?;
            s.dirty = false;
            if s.first_complete_draw.is_none() && s.main.frame.is_some() {
                let d = t0.elapsed();
                s.first_complete_draw = Some(d);
                log::info!("first complete draw (metadata + frame) after {:.1} ms", d.as_secs_f64() * 1e3);
                // lets the end-to-end test check that a panic restores the terminal
                if test_panic {
                    panic!("EMDTUI_TEST_PANIC set: deliberate panic after the first draw");
                }
            }
        }
        if s.quit {
            break;
        }
        let timeout =
            if s.main.geometry_changed.is_some() { Duration::from_millis(100) } else { Duration::from_millis(250) };
        let first = match rx.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // drain everything pending before drawing again
        let mut evs: Vec<AppEvent> = first.into_iter().collect();
        while let Ok(e) = rx.try_recv() {
            evs.push(e);
        }
        if last_tick.elapsed() >= timeout {
            last_tick = Instant::now();
            evs.push(AppEvent::Tick);
        }
        for e in evs {
            handle(s, e);
        }
    }
    Ok(())
}

/// Route one event: input through the key table, everything else to `app::on_event`.
pub fn handle(s: &mut State, e: AppEvent) {
    match e {
        AppEvent::Input(Event::Key(k)) if k.kind != KeyEventKind::Release => {
            let a = if matches!(s.popup, app::Popup::Confirm(..)) {
                keys::prompt_answer(&k)
            } else if s.inspector.is_some() && matches!(s.popup, app::Popup::None) {
                keys::inspector_key(&k)
            } else if matches!(s.popup, app::Popup::Rotation(_)) {
                keys::number_prompt_key(&k)
            } else {
                keys::lookup_in(&k, s.key_context())
            };
            match a {
                Some(a) => app::update(s, a),
                None if matches!(s.popup, app::Popup::Help(_)) => {
                    s.popup = app::Popup::None;
                    s.dirty = true;
                }
                None => {}
            }
        }
        AppEvent::Input(Event::Mouse(m)) => {
            if matches!(m.kind, MouseEventKind::Down(MouseButton::Left) | MouseEventKind::Drag(MouseButton::Left)) {
                app::update(s, keys::Action::ClickOverview(m.column, m.row));
            }
        }
        AppEvent::Input(Event::Resize(..)) => s.dirty = true,
        AppEvent::Input(_) => {}
        other => {
            if app::on_event(s, other) {
                s.dirty = true;
            }
        }
    }
}
