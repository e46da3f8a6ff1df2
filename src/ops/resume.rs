//! Interrupted jobs found next to a file: a conversion's `.part` file, an FFT whose blocks are
//! only partly done. Front ends offer to restart or resume them.

use crate::compute::fft::FftParams;
use std::path::{Path, PathBuf};

/// What was interrupted.
#[derive(Debug, Clone, PartialEq)]
pub enum Interrupted {
    /// An FFT in the EMD: its parameters and (blocks done, blocks total).
    Fft { emd: PathBuf, params: FftParams, done: usize, total: usize },
    /// A conversion's partial output.
    Conversion(PathBuf),
}

/// Partial outputs of a conversion to `emd` (`X.emd.part`, `.X.emd.part*`).
pub fn find_partial_conversion(emd: &Path) -> Option<PathBuf> {
    let dir = emd.parent()?;
    let name = emd.file_name()?.to_string_lossy().to_string();
    std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            n == format!("{name}.part") || n.starts_with(&format!(".{name}.part"))
        })
}

/// The first interrupted job for a source whose EMD is `emd` (`mib`: the source is a `.mib`
/// that converts to it): an FFT in the EMD first, then a partial conversion.
pub fn find(emd: &Path, mib: bool) -> Option<Interrupted> {
    if emd.is_file()
        && let Some((params, done, total)) = crate::store::fft::interrupted_params(emd)
    {
        return Some(Interrupted::Fft { emd: emd.to_path_buf(), params, done, total });
    }
    if mib {
        return find_partial_conversion(emd).map(Interrupted::Conversion);
    }
    None
}
