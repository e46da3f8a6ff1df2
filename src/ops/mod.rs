//! Workflows, each written once and used by both front ends: overviews (EMD cache, else the cache
//! directory, else compute and store), conversion, the FFT (ensure the EMD, then load, resume or
//! compute), tcBF and SSB ptychography on the scan-axes FFT (`from_fft`: where such a result came
//! from), the ROI mean, DPC (bad pixels, masked CoM, rotation, iCoM), calibration, and the
//! interrupted jobs found next to a file.

pub mod calib;
pub mod convert;
pub mod demo;
pub mod detectors;
pub mod dpc;
pub mod eels;
pub mod ewpc;
pub mod fft;
pub mod fft_estimate;
pub mod from_fft;
pub mod inspect;
pub mod nav;
pub mod overview;
pub mod ptycho;
pub mod resume;
pub mod tcbf;
