//! Computation on datasets: display helpers, overviews and virtual detectors, 4D FFT, conversion.

pub mod budget;
pub mod display;
pub mod overview;
