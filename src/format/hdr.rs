//! The Merlin acquisition header (`.hdr`): latin-1 text, CRLF, `Key:\tValue` lines between `HDR,`
//! and `End`. All keys are kept in order; the fields that matter are exposed typed.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AcqHeader {
    pub path: PathBuf,
    /// Every `key -> value` pair, in file order (key without its trailing colon).
    pub fields: Vec<(String, String)>,
    pub frames_in_acquisition: Option<u64>,
    pub frames_per_trigger: Option<u64>,
    pub counter_depth: Option<u8>,
    pub assembly_size: Option<String>,
    pub scan_x: Option<u64>,
    pub scan_y: Option<u64>,
    pub software_version: Option<String>,
    pub trigger_start: Option<String>,
    pub gap_fill_mode: Option<String>,
    pub chip_mode: Option<String>,
    pub gain: Option<String>,
    pub active_counters: Option<String>,
    pub thresholds_kev: Vec<f64>,
    pub time_stamp: Option<String>,
    /// Values that were present but could not be parsed (key, value).
    pub warnings: Vec<String>,
}

impl AcqHeader {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// Value of the first key that starts with `prefix` (keys carry their unit lists).
    pub fn get_prefix(&self, prefix: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()))
            .map(|(_, v)| v.as_str())
    }
    pub fn internal_trigger(&self) -> bool {
        self.trigger_start.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("internal"))
    }
}

/// Parse `.hdr` bytes (latin-1).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<AcqHeader> {
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let mut lines = text.split('\n').map(|l| l.trim_end_matches(['\r', ' ', '\0']));
    let first = lines.next().unwrap_or("");
    if !first.trim_end().starts_with("HDR,") {
        return Err(Error::format(path, "not a Merlin acquisition header (first line is not 'HDR,')"));
    }
    let mut h = AcqHeader { path: path.to_path_buf(), ..Default::default() };
    for line in lines {
        let l = line.trim_start();
        if l.starts_with("End") {
            break;
        }
        if l.is_empty() {
            continue;
        }
        let (k, v) = match l.split_once('\t') {
            Some((k, v)) => (k.trim().trim_end_matches(':').trim(), v.trim()),
            None => match l.split_once(':') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => continue,
            },
        };
        h.fields.push((k.to_string(), v.to_string()));
    }
    let mut warn = Vec::new();
    fn typed<T: std::str::FromStr>(h: &AcqHeader, prefix: &str, warn: &mut Vec<String>) -> Option<T> {
        let v = h.get_prefix(prefix)?;
        match v.trim().parse::<T>() {
            Ok(x) => Some(x),
            Err(_) => {
                warn.push(format!("{}: field '{prefix}' has unreadable value {v:?}; ignored", h.path.display()));
                None
            }
        }
    }
    h.frames_in_acquisition = typed(&h, "Frames in Acquisition", &mut warn);
    h.frames_per_trigger = typed(&h, "Frames per Trigger", &mut warn);
    h.counter_depth = typed(&h, "Counter Depth", &mut warn);
    h.scan_x = typed(&h, "ScanX", &mut warn);
    h.scan_y = typed(&h, "ScanY", &mut warn);
    if let Some(d) = h.counter_depth
        && ![1, 6, 12, 24].contains(&d)
    {
        warn.push(format!("{}: counter depth {d} is not 1, 6, 12 or 24; ignored", path.display()));
        h.counter_depth = None;
    }
    for (name, v) in [("ScanX", &mut h.scan_x), ("ScanY", &mut h.scan_y)] {
        if *v == Some(0) || v.is_some_and(|x| x > 1 << 24) {
            warn.push(format!("{}: {name} = {} is implausible; ignored", path.display(), v.unwrap()));
            *v = None;
        }
    }
    let s = |h: &AcqHeader, p: &str| h.get_prefix(p).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    h.assembly_size = s(&h, "Assembly Size");
    h.software_version = s(&h, "Software Version");
    h.trigger_start = s(&h, "Trigger Start");
    h.gap_fill_mode = s(&h, "Gap Fill Mode");
    h.chip_mode = s(&h, "Chip Mode");
    h.gain = s(&h, "Gain");
    h.active_counters = s(&h, "Active Counters");
    h.time_stamp = s(&h, "Time and Date Stamp");
    h.thresholds_kev = h
        .get_prefix("Thresholds")
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_default();
    h.warnings = warn;
    Ok(h)
}

/// The `.hdr` next to a `.mib` (same stem), if it exists.
pub fn sibling(mib: &Path) -> Option<PathBuf> {
    let p = mib.with_extension("hdr");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical() {
        let t = b"HDR,\t\r\nFrames in Acquisition (Number):\t8\r\nFrames per Trigger (Number):\t4\r\nCounter Depth (number):\t6\r\nScanX:\t4\r\nScanY:\t2\r\nTrigger Start (Positive, Negative, Internal):\tRising Edge\r\nSensor Bias (V, \xb5A)\t120 V\r\nEnd\t    ";
        let h = parse(Path::new("a.hdr"), t).unwrap();
        assert_eq!(h.frames_in_acquisition, Some(8));
        assert_eq!(h.frames_per_trigger, Some(4));
        assert_eq!((h.scan_x, h.scan_y), (Some(4), Some(2)));
        assert_eq!(h.get("Sensor Bias (V, \u{b5}A)"), Some("120 V"));
        assert!(!h.internal_trigger());
        assert!(h.warnings.is_empty());
    }

    #[test]
    fn garbage_values_warn() {
        let t = b"HDR,\r\nFrames per Trigger (Number):\tlots\r\nScanX:\t-3\r\nEnd";
        let h = parse(Path::new("g.hdr"), t).unwrap();
        assert_eq!(h.frames_per_trigger, None);
        assert_eq!(h.scan_x, None);
        assert_eq!(h.warnings.len(), 2, "{:?}", h.warnings);
        assert!(parse(Path::new("x.hdr"), b"\x00\x01garbage").is_err());
    }
}
