//! Tells the code which HDF5 API it compiles against: HDF5 2.x (the library the `static-hdf5`
//! feature builds) changed `H5Dread_chunk` to take the buffer size. `hdf5-metno-sys` passes the
//! library version to dependents as `DEP_HDF5_VERSION_X_Y_Z`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(hdf5_2)");
    if std::env::vars().any(|(k, _)| k.starts_with("DEP_HDF5_VERSION_2_")) {
        println!("cargo::rustc-cfg=hdf5_2");
    }
}
