//! The inspector's workflow: which HDF5 file belongs to a source (the EMD itself, or the EMD a
//! `.mib` was converted to), its tree, emdtui's caches inside it with their validity, and the
//! source's entries in the cache directory with their provenance.

use crate::dataset::{Dataset, Kind};
use crate::format::h5tree::{self, Tree};
use crate::store::emd::{CacheEntry, EmdFile};
use crate::store::listing::{self, DirEntry};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything the inspector shows about one source.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub source: PathBuf,
    /// The HDF5 file inspected (None: a `.mib` without an EMD conversion).
    pub file: Option<PathBuf>,
    /// Its tree, or why it could not be read.
    pub tree: Option<Tree>,
    pub error: Option<String>,
    /// emdtui's caches inside the file (empty for a file emdtui does not read as an EMD).
    pub emd_caches: Vec<CacheEntry>,
    /// The source's entries in the cache directory.
    pub dir_caches: Vec<DirEntry>,
}

/// The HDF5 file of a source: an `.h5`/`.emd` itself; for a `.mib` its EMD conversion when
/// there is one.
pub fn hdf5_file_of(source: &Path, kind: Kind) -> Option<PathBuf> {
    match kind {
        Kind::Mib => Some(crate::ops::convert::default_output(source)).filter(|p| p.is_file()),
        _ => Some(source.to_path_buf()),
    }
}

/// Inspect `ds` (its file, the EMD it was converted to) and its entries in `cache_dir`.
pub fn inspect(ds: &dyn Dataset, cache_dir: Option<&Path>) -> Inspection {
    let source = ds.info().path.clone();
    let file = hdf5_file_of(&source, ds.info().kind);
    let (tree, error) = match file.as_deref().map(h5tree::read) {
        Some(Ok(t)) => (Some(t), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    let emd_caches =
        file.as_deref().and_then(|f| EmdFile::open(f).ok()).and_then(|e| e.list_caches().ok()).unwrap_or_default();
    let dir_caches = match (cache_dir, ds.info().kind) {
        (Some(d), Kind::Mib) => listing::entries_for(d, ds),
        _ => Vec::new(),
    };
    Inspection { source, file, tree, error, emd_caches, dir_caches }
}
