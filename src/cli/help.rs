//! The command line as clap builds it, with each subcommand's help listing only the global
//! flags it uses: the globals (open, calibration, memory, bad pixels) are accepted everywhere so
//! that `emdtui GLOBALS SUBCOMMAND` and `emdtui SUBCOMMAND ... GLOBALS` both work, but a
//! subcommand that ignores one hides it from its `--help`.

use crate::cli::Cli;
use clap::{CommandFactory, FromArgMatches};

const CALIB: [&str; 4] = ["scan_step", "alpha", "q_pixel", "energy"];
const BAD: [&str; 2] = ["keep_bad_pixels", "bad_pixels"];
/// `scan` first: `synth` uses it (the scan written) and none of the others.
const OPEN: [&str; 6] = ["scan", "skip_frames", "flyback", "mmap", "no_mmap", "mode"];

/// The global flags (clap ids) each subcommand does not use.
pub fn unused_globals(sub: &str) -> Vec<&'static str> {
    let mut v: Vec<&str> = Vec::new();
    match sub {
        "info" | "export" => v.extend(["memory"].iter().chain(&CALIB).chain(&BAD)),
        "synth" => v.extend(["memory"].iter().chain(&OPEN[1..]).chain(&CALIB).chain(&BAD)),
        "eels" => v.extend(CALIB.iter().chain(&BAD)),
        "ewpc" => v.extend(CALIB),
        "tcbf" | "ptycho" => v.extend(BAD),
        _ => {}
    }
    v
}

/// The clap command of [`Cli`] with each subcommand's unused global flags hidden from its help
/// (still accepted: the Python package passes its globals the same way to every subcommand).
/// Hiding is done before clap builds the command (an argument changed after the build keeps a
/// stale index in clap's lookup table).
pub fn command() -> clap::Command {
    let mut c = Cli::command();
    let subs: Vec<String> = c.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for sub in subs {
        // a hidden copy of the global in the subcommand: clap then does not propagate its own
        let hidden: Vec<clap::Arg> = unused_globals(&sub)
            .into_iter()
            .filter_map(|id| c.get_arguments().find(|a| a.get_id() == id).cloned())
            .map(|a| a.hide(true))
            .collect();
        c = c.mut_subcommand(&sub, |s| s.args(hidden));
    }
    c
}

/// Parse the command line `args` (program name first) as `emdtui` does; exits with clap's
/// message on an error or after `--help`/`--version`.
pub fn parse_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    let m = command().get_matches_from(args);
    Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
}
