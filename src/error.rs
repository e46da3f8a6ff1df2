//! Library error type. Every error that concerns a file names it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{path}: not supported yet: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: HDF5: {msg}")]
    Hdf5 { path: PathBuf, msg: String },
    /// A result that is not there (e.g. no FFT cache in the file).
    #[error("{path}: {msg}")]
    Absent { path: PathBuf, msg: String },
    /// A result whose computation was interrupted (it can be resumed).
    #[error("{path}: {msg}")]
    Incomplete { path: PathBuf, msg: String },
    /// A result computed from other data or by an incompatible version.
    #[error("{path}: {msg}")]
    Stale { path: PathBuf, msg: String },
    #[error("cancelled")]
    Cancelled,
    /// tcBF found no parallax to correct (no structure, or the probe in focus).
    #[error("{0}")]
    NoParallax(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.into(), msg: msg.into() }
    }
    pub fn unsupported(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Unsupported { path: path.into(), msg: msg.into() }
    }
    pub fn hdf5(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Hdf5 { path: path.into(), msg: e.to_string() }
    }
}
