//! `emdtui convert`.

use crate::cli::{Cli, ConvertArgs};
use anyhow::{Result, bail};

pub fn run(_a: &ConvertArgs, _cli: &Cli) -> Result<()> {
    bail!("convert: not implemented yet")
}
