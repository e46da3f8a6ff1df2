//! File formats: Merlin `.mib` (frames, acquisition sets), `.hdr`, EMD (HDF5), image exports and
//! the synthetic generator. No threads, no UI.

pub mod emd;
pub mod export;
pub mod hdr;
pub mod mib;
pub mod mibset;
pub mod synth;
