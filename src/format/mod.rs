//! File formats: Merlin `.mib` (frames, acquisition sets), `.hdr`, the EMD layout, raw HDF5
//! access (`h5`), image exports and the synthetic generator. No threads, no UI.

pub mod bitshuffle;
pub mod emd;
pub mod export;
pub mod frames;
pub mod h5;
pub mod h5tree;
pub mod hdr;
pub mod mib;
pub mod mibset;
pub mod nav;
pub mod npy;
pub mod synth;
pub mod synth_phase;
pub mod synth_tcbf;
