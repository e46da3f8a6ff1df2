//! emdtui: a terminal app and headless engine for 4D-STEM data from Quantum Detectors Merlin
//! cameras. Layers, each depending only on the ones before it:
//! `format` (parse, decode, read, write) -> `dataset` (one trait for any 4D source) ->
//! `compute` (overviews, virtual detectors, FFT, conversion) -> `jobs` (background pool) ->
//! `cli` and `tui`.

pub mod cli;
pub mod compute;
pub mod dataset;
pub mod error;
pub mod format;
pub mod jobs;
pub mod sigbus;
pub mod tui;

pub use error::{Error, Result};

/// Version string written into caches and EMD files.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
