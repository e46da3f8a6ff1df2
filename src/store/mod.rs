//! Results that persist, each with one provenance and staleness scheme: the overview cache of
//! `.mib` files in the cache directory ([`ovcache`], keyed by the source fingerprint, scan
//! interpretation, geometry and mask), and the caches inside an EMD file ([`emd`] for the
//! overviews and the cache listing, [`fft`] for the 4D FFT), stamped with the datacube fingerprint
//! they were computed from.

pub mod calib;
pub mod dpc;
pub mod eelscache;
pub mod emd;
pub mod fft;
pub mod ovcache;
pub mod tcbf;
