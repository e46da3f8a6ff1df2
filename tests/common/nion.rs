//! Nion Swift files as Nion Swift writes them, for the navigation-image tests: `.npy` bytes as
//! NumPy writes them, the `metadata.json` of a scan data item, the `.ndata` zip.

use std::io::Write;
use std::path::Path;

/// A `.npy` as NumPy writes it (version 1.0, header padded to a multiple of 64 bytes).
pub fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The `metadata.json` Nion Swift writes for a HAADF scan of `rows` x `cols` at 0.25 nm.
pub fn nion_metadata(rows: usize, cols: usize) -> String {
    serde_json::json!({
        "type": "data-item",
        "version": 13,
        "uuid": "5e2b8a40-9a43-4b1a-9f51-0b7d3b3f2a11",
        "created": "2026-12-07T10:11:12.000000",
        "data_shape": [rows, cols],
        "data_dtype": "float32",
        "title": "HAADF 1",
        "dimensional_calibrations": [
            {"offset": 0.0, "scale": 0.25, "units": "nm"},
            {"offset": -1.5, "scale": 0.25, "units": "nm"}
        ],
        "intensity_calibration": {"offset": 0.0, "scale": 1.0, "units": "counts"},
        "metadata": {"hardware_source": {"hardware_source_name": "Scan", "pixel_time_us": 16.0}}
    })
    .to_string()
}

/// An `.ndata` as Nion Swift writes it: a zip with `metadata.json` and `data.npy`.
pub fn write_ndata(path: &Path, npy: &[u8], meta: Option<&str>, method: zip::CompressionMethod) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let o = zip::write::SimpleFileOptions::default().compression_method(method).large_file(true);
    if let Some(m) = meta {
        z.start_file("metadata.json", o).unwrap();
        z.write_all(m.as_bytes()).unwrap();
    }
    z.start_file("data.npy", o).unwrap();
    z.write_all(npy).unwrap();
    z.finish().unwrap();
}

/// A ramp image (0, 0.5, 1, ...) and its little-endian float32 bytes.
pub fn ramp(rows: usize, cols: usize) -> (Vec<f32>, Vec<u8>) {
    let v: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5).collect();
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (v, b)
}
