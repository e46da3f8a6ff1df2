//! EMD 1.0 (HDF5) files: see `../shared/docs/emd-layout.md`.

use crate::dataset::{Dataset, DatasetInfo, FrameBuf, OpenOptions, ReadScratch};
use crate::error::{Error, Result};
use std::path::Path;

/// An EMD datacube as a dataset.
pub struct EmdDataset {
    info: DatasetInfo,
}

impl EmdDataset {
    pub fn open(path: &Path, _opts: &OpenOptions) -> Result<Self> {
        Err(Error::unsupported(path, "EMD reading is not implemented yet"))
    }
}

impl Dataset for EmdDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        0
    }
    fn read_positions(&self, _s: usize, _c: usize, _o: &mut FrameBuf, _r: &mut ReadScratch) -> Result<()> {
        unimplemented!()
    }
    fn fingerprint(&self) -> String {
        String::new()
    }
}
