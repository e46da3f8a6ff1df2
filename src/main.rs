use emdtui::Tuning;
use emdtui::cli::{Cli, Command};
use std::path::PathBuf;

/// The knobs of [`Tuning`] from `EMDTUI_*` environment variables: the one place the process
/// reads them (the README lists them). The Python package includes this file, so its calls read
/// the same variables.
pub fn tuning_from_env() -> Tuning {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let flag = |k: &str| std::env::var_os(k).is_some();
    let num = |k: &str| var(k).and_then(|v| v.parse::<u64>().ok());
    Tuning {
        cache_dir: var("EMDTUI_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(emdtui::tuning::default_cache_dir)
            .or_else(|| Some(std::env::temp_dir().join("emdtui-cache"))),
        timing: flag("EMDTUI_TIMING"),
        block_bytes: num("EMDTUI_BLOCK_BYTES"),
        no_raw_kernel: flag("EMDTUI_NO_RAW_KERNEL"),
        no_space_check: flag("EMDTUI_NO_SPACE_CHECK"),
        fail_write_after: num("EMDTUI_FAIL_WRITE_AFTER"),
        zlib_level: num("EMDTUI_ZLIB_LEVEL").map(|l| l as u32),
        fft_group_delay: num("EMDTUI_FFT_GROUP_DELAY_MS").map(std::time::Duration::from_millis),
        fft_buffered: flag("EMDTUI_FFT_BUFFERED"),
        fft_scratch_on_disk: flag("EMDTUI_FFT_SCRATCH_ON_DISK"),
        keys_file: var("EMDTUI_KEYS").map(PathBuf::from),
        trace_startup: flag("EMDTUI_TRACE_STARTUP"),
        test_panic: flag("EMDTUI_TEST_PANIC"),
    }
}

/// What the environment says about the terminal: a multiplexer (tmux, GNU screen) and hints at
/// image protocols.
fn term_env() -> emdtui::tui::images::TermEnv {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let term = std::env::var("TERM").unwrap_or_default();
    let term_program = std::env::var("TERM_PROGRAM").unwrap_or_default();
    emdtui::tui::images::TermEnv {
        in_tmux: set("TMUX"),
        in_screen: set("STY") || term.starts_with("screen"),
        avoid_kitty_sixel: set("WEZTERM_EXECUTABLE") || set("KONSOLE_VERSION"),
        iterm2_hint: ["iTerm", "WezTerm", "mintty"].iter().any(|p| term_program.contains(p)),
    }
}

/// The compute threads: `--threads N` (default one per core); in the viewer they run at low CPU
/// and IO priority so that an acquisition on the same machine is not slowed down.
fn worker_pool(cli: &Cli) -> anyhow::Result<()> {
    if cli.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        b = b.num_threads(n);
    }
    if cli.command.is_none() {
        b = b.start_handler(|_| {
            emdtui::util::lower_thread_priority();
        });
    }
    b.build_global().map_err(|e| anyhow::anyhow!("starting the worker threads: {e}"))
}

fn run(cli: &Cli, t: &Tuning) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Info { file, json, tree, nav }) => match (nav, file) {
            (Some(n), f) => emdtui::cli::inspect::run_nav(n, f.as_deref(), *json, &cli.open.options()?),
            (None, Some(f)) if *tree => emdtui::cli::inspect::run_tree(f, *json),
            (None, Some(f)) => emdtui::cli::info::run_info(f, *json, &cli.open, t.cache_dir.as_deref()),
            (None, None) => anyhow::bail!("info needs FILE or --nav PATH"),
        },
        Some(Command::Export(a)) => emdtui::cli::info::run_export(a, &cli.open),
        Some(Command::Synth(a)) => emdtui::cli::info::run_synth(a, cli.open.scan.as_deref()),
        Some(Command::Overview(a)) => emdtui::cli::overview::run(a, cli, t),
        Some(Command::Convert(a)) => emdtui::cli::convert::run(a, cli, t),
        Some(Command::Fft(a)) => emdtui::cli::fft::run(a, cli, t),
        Some(Command::Dpc(a)) => emdtui::cli::dpc::run(a, cli, t),
        Some(Command::Eels(a)) => emdtui::cli::eels::run(a, cli, t),
        Some(Command::Ewpc(a)) => emdtui::cli::ewpc::run(a, cli, t),
        Some(Command::Tcbf(a)) => emdtui::cli::tcbf::run(a, cli, t),
        Some(Command::Ptycho(a)) => emdtui::cli::ptycho::run(a, cli, t),
        None => {
            let open = cli.open.options()?;
            let user_bad = match (&cli.bad_pixels, &cli.file) {
                (Some(p), Some(f)) => {
                    let (dr, dc) = emdtui::dataset::open(f, &open)?.det();
                    emdtui::compute::badpix::from_mask(&emdtui::cli::common::load_mask(p, dr, dc)?, dr, dc)
                }
                _ => Vec::new(),
            };
            let launch = emdtui::tui::Launch {
                file: cli.file.clone(),
                demo: match &cli.demo {
                    Some(d) => emdtui::ops::demo::Demo::parse(d).map_err(|e| anyhow::anyhow!("--demo: {e}"))?,
                    None => Default::default(),
                },
                open,
                memory_budget: cli.memory_budget()?,
                graphics: cli.graphics.clone(),
                no_query: cli.no_query,
                term: term_env(),
                calibration: cli.calib.given()?,
                keep_bad_pixels: cli.keep_bad_pixels,
                user_bad,
                nav: cli.nav.clone(),
            };
            emdtui::tui::run(&launch, t)
        }
    }
}

fn main() {
    // `emdtui info --json FILE | head`: die quietly on a closed pipe like other Unix tools
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::exit(run_args(std::env::args_os()));
}

/// The whole command line `args` (program name first); the process exit code. `python -m
/// emdtui` runs it in-process.
pub fn run_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = emdtui::cli::help::parse_from(args);
    let tuning = tuning_from_env();
    if let Err(e) = worker_pool(&cli) {
        eprintln!("emdtui: error: {e}");
        return 1;
    }
    if let Err(e) = run(&cli, &tuning) {
        eprintln!("emdtui: error: {}", error_line(&e));
        return 1;
    }
    0
}

/// One clear line: the chain of causes, each naming what failed.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for c in e.chain().skip(1) {
        let s = c.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
    }
    msg
}
