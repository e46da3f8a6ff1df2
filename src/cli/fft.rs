//! `emdtui fft` and `emdtui export --fft-q/--fft-k`.

use crate::cli::{Cli, ExportArgs, FftArgs, OpenArgs};
use anyhow::{Result, bail};

pub fn run(_a: &FftArgs, _cli: &Cli) -> Result<()> {
    bail!("fft: not implemented yet")
}

pub fn run_export(_a: &ExportArgs, _open: &OpenArgs) -> Result<()> {
    bail!("fft export: not implemented yet")
}
