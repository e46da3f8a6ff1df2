use clap::Parser;
use emdtui::cli::{Cli, Command};

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Info { file, json }) => emdtui::cli::info::run_info(file, *json, &cli.open),
        Some(Command::Export(a)) => emdtui::cli::info::run_export(a, &cli.open),
        Some(Command::Synth(a)) => emdtui::cli::info::run_synth(a),
        Some(Command::Overview(a)) => emdtui::cli::overview::run(a, cli),
        Some(Command::Convert(a)) => emdtui::cli::convert::run(a, cli),
        Some(Command::Fft(a)) => emdtui::cli::fft::run(a, cli),
        None => emdtui::tui::run(cli),
    }
}

fn main() {
    // `emdtui info --json FILE | head`: die quietly on a closed pipe like other Unix tools
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        // one clear line: the chain of causes, each naming what failed
        let mut msg = e.to_string();
        for c in e.chain().skip(1) {
            let s = c.to_string();
            if !msg.contains(&s) {
                msg.push_str(": ");
                msg.push_str(&s);
            }
        }
        eprintln!("emdtui: error: {msg}");
        std::process::exit(1);
    }
}
