//! `emdtui overview`.

use crate::cli::{Cli, OverviewArgs};
use anyhow::{Result, bail};

pub fn run(_a: &OverviewArgs, _cli: &Cli) -> Result<()> {
    bail!("overview: not implemented yet")
}
