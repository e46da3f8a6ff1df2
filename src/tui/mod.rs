//! The terminal UI.

use crate::cli::Cli;

pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.file {
        Some(f) => crate::cli::info::run_info(f, false, &cli.open),
        None => anyhow::bail!("no file given (the built-in demo comes with the terminal UI)"),
    }
}
