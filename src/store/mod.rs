//! Results that persist, each with one provenance and staleness scheme: the overview cache of
//! `.mib` files in the cache directory ([`ovcache`], keyed by the source fingerprint, scan
//! interpretation, geometry and mask), and the caches inside an EMD file ([`emd`] for the
//! overviews and the cache listing, [`fft`] for the 4D FFT), stamped with the datacube fingerprint
//! they were computed from.

pub mod calib;
pub mod codec;
pub mod dpc;
pub mod eelscache;
pub mod emd;
pub mod fft;
pub mod listing;
pub mod ovcache;
pub mod ssb;
pub mod tcbf;

/// Write a cache-directory entry: `bytes` to `path` atomically (a per-process `.part` file renamed
/// over it, so a reader never sees half an entry), then its JSON sidecar next to it (`.json`):
/// `side`'s fields plus the common provenance (tool, version, format version, source, key,
/// creation time).
pub(crate) fn write_entry(
    path: &std::path::Path,
    bytes: &[u8],
    format_version: u32,
    source: &std::path::Path,
    key: &str,
    side: serde_json::Value,
) -> crate::error::Result<()> {
    use crate::error::Error;
    let tmp = path.with_extension(format!("bin.part{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    let mut m = serde_json::json!({
        "tool": "emdtui",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "format_version": format_version,
        "source": source,
        "key": key,
        "created_unix_s": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    if let (Some(m), serde_json::Value::Object(extra)) = (m.as_object_mut(), side) {
        m.extend(extra);
    }
    let jp = path.with_extension("json");
    std::fs::write(&jp, serde_json::to_vec_pretty(&m).unwrap_or_default()).map_err(|e| Error::io(&jp, e))
}
