//! `emdtui info FILE.emd`: the datacube and every cached result with its validity.

use crate::dataset::OpenOptions;
use anyhow::Result;
use std::path::Path;

pub fn run(file: &Path, _json: bool, opts: &OpenOptions) -> Result<()> {
    let ds = crate::dataset::open(file, opts)?;
    for (k, v) in &ds.info().metadata {
        println!("{k:>12}  {v}");
    }
    Ok(())
}
