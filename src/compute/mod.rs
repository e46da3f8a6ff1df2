//! Computation on datasets: display helpers, overviews and virtual detectors, 4D FFT, conversion.

pub mod budget;
pub mod convert;
pub mod display;
pub mod eels;
pub mod fft;
pub mod kernel16;
pub mod overview;
