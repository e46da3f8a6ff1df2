//! emdtui: a terminal app and headless engine for 4D-STEM data from Quantum Detectors Merlin
//! cameras. Layers, each using only the ones before it (enforced by `tests/structure.rs`):
//!
//! `format` (bytes on disk: mib, hdr, EMD layout, `h5` for every raw HDF5 call) ->
//! `dataset` (one trait for any 4D source) -> `compute` (kernels: overviews, display, FFT,
//! conversion) -> `store` (results that persist: cache directory, caches inside an EMD) ->
//! `ops` (workflows: use the cache, else compute and store) -> `cli` and `tui` (front ends).
//!
//! Shared infrastructure usable from any layer: `error`, `jobs` (progress and background jobs),
//! `tuning` (knobs built once in `main`), `util`, `sigbus`.

pub mod cli;
pub mod compute;
pub mod dataset;
pub mod error;
pub mod format;
pub mod jobs;
pub mod ops;
pub mod sigbus;
pub mod store;
pub mod tui;
pub mod tuning;
pub mod util;

pub use error::{Error, Result};
pub use tuning::Tuning;

/// Version string written into caches and EMD files.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
