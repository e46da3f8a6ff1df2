//! Each subcommand's `--help` lists only the flags it uses: the viewer's `--graphics` and
//! `--no-query` only on `emdtui --help`, and the global flags a subcommand ignores hidden (still
//! accepted, as the Python package passes its globals to every subcommand).

mod common;

const SUBCOMMANDS: [&str; 11] =
    ["info", "export", "synth", "overview", "convert", "fft", "dpc", "eels", "ewpc", "tcbf", "ptycho"];

fn help(args: &[&str]) -> String {
    let out = common::emdtui().args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The help lists `flag` as an option (a line starting with it).
fn lists(help: &str, flag: &str) -> bool {
    help.lines().map(str::trim_start).any(|l| {
        let l = l.strip_prefix("-o, ").unwrap_or(l);
        l.strip_prefix(flag).is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

#[test]
fn subcommand_help_lists_only_the_flags_it_uses() {
    let viewer = help(&[]);
    for f in ["--graphics", "--no-query", "--memory", "--keep-bad-pixels", "--energy"] {
        assert!(lists(&viewer, f), "emdtui --help lacks {f}:\n{viewer}");
    }
    for sub in SUBCOMMANDS {
        let h = help(&[sub]);
        for f in ["--graphics", "--no-query"] {
            assert!(!lists(&h, f), "emdtui {sub} --help lists the viewer's {f}:\n{h}");
        }
        for id in emdtui::cli::help::unused_globals(sub) {
            let flag = format!("--{}", id.replace('_', "-"));
            assert!(!lists(&h, &flag), "emdtui {sub} --help lists {flag}, which it does not use:\n{h}");
        }
        assert!(lists(&h, "--threads"), "{sub}: --threads applies everywhere");
    }
    // the globals a subcommand uses stay listed
    let fft = help(&["fft"]);
    for f in ["--memory", "--scan", "--scan-step", "--energy", "--keep-bad-pixels", "--bad-pixels", "--estimate"] {
        assert!(lists(&fft, f), "fft --help lacks {f}:\n{fft}");
    }
    assert!(lists(&help(&["tcbf"]), "--energy"));
    assert!(lists(&help(&["synth"]), "--scan"), "synth's --scan (the scan written)");
    // the help of --keep-bad-pixels says where the default applies
    let words = fft.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("wherever pixels are summed into an image"), "{fft}");
}

#[test]
fn hidden_globals_are_accepted_and_viewer_flags_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = emdtui::format::synth::SynthSpec { rows: 4, cols: 4, det: 256, ..Default::default() };
    let f = common::synth(dir.path(), "a.mib", &spec);
    let fs = f.to_str().unwrap();
    // hidden from info's help, still accepted (before or after the subcommand)
    common::emdtui().args(["info", fs, "--energy", "200kV", "--memory", "1G"]).assert().success();
    common::emdtui().args(["--energy", "200kV", "info", fs]).assert().success();
    let out = common::emdtui().args(["info", fs, "--graphics", "kitty"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--graphics'"));
}

/// A long flag defined twice for one subcommand (its own and a global) is refused by clap's
/// checks, which only debug builds run: every command of a debug binary would panic.
#[test]
fn no_long_flag_is_defined_twice_in_a_subcommand() {
    use clap::CommandFactory;
    let c = emdtui::cli::Cli::command();
    let globals: Vec<&str> = c.get_arguments().filter(|a| a.is_global_set()).filter_map(|a| a.get_long()).collect();
    assert!(globals.contains(&"scan") && globals.contains(&"memory"), "{globals:?}");
    for sub in c.get_subcommands() {
        let mut seen = globals.clone();
        for a in sub.get_arguments() {
            if let Some(l) = a.get_long() {
                assert!(!seen.contains(&l), "emdtui {}: --{l} is defined twice", sub.get_name());
                seen.push(l);
            }
        }
    }
    emdtui::cli::help::command().debug_assert();
}

#[test]
fn synth_writes_the_scan_asked_for_and_32x32_by_default() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [(vec!["--scan", "4x4"], (4, 4)), (vec![], (32, 32))] {
        let f = dir.path().join(format!("s{}.mib", want.0));
        common::emdtui().arg("synth").arg(&f).args(&args).assert().success();
        let ds = emdtui::dataset::open(&f, &Default::default()).unwrap();
        assert_eq!((ds.scan().rows, ds.scan().cols), want, "{args:?}");
    }
}
