//! Computation on datasets: display helpers, overviews and virtual detectors, 4D FFT, conversion.

pub mod badpix;
pub mod budget;
pub mod calib;
pub mod convert;
pub mod detectors;
pub mod diffractogram;
pub mod display;
pub mod dpc;
pub mod eels;
pub mod ewpc;
pub mod fft;
pub mod kernel16;
pub mod overview;
pub mod spectra;
pub mod ssb;
pub mod tcbf;
