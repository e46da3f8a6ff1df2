//! A navigation image beside a scan (mib-viewer's "navigation" item): read it, check its shape
//! against the scan, and take its scan step from the Nion calibration when it has one.

use crate::compute::calib::Calibration;
use crate::error::Result;
use crate::format::nav::{self, NavImage};
use std::path::Path;

/// A navigation image and what it means for a scan of `scan` (rows, cols).
#[derive(Debug, Clone)]
pub struct NavForScan {
    pub image: NavImage,
    /// Why it does not match the scan (both shapes named), None when it does.
    pub mismatch: Option<String>,
    /// Its scan step from the Nion calibration (`r` only; empty when none or not a length).
    pub calibration: Calibration,
}

/// A Nion length unit as emdtui's scan units: (factor, `nm` | `A`).
fn length_unit(units: &str) -> Option<(f64, &'static str)> {
    match units.trim() {
        "nm" => Some((1.0, "nm")),
        "µm" | "um" | "μm" => Some((1000.0, "nm")),
        "Å" | "A" | "Angstrom" | "angstrom" => Some((1.0, "A")),
        "pm" => Some((0.01, "A")),
        _ => None,
    }
}

/// The scan step of a navigation image from its calibration (the column axis; square pixels).
pub fn calibration_of(img: &NavImage) -> Calibration {
    let r = img.calibration.as_ref().and_then(|[_, c]| {
        let (f, u) = length_unit(&c.units)?;
        (c.scale > 0.0 && c.scale.is_finite()).then(|| (c.scale * f, u.to_string()))
    });
    Calibration { r, ..Default::default() }
}

/// Read the navigation image at `path` for a scan of `scan` (rows, cols).
pub fn load(path: &Path, scan: (usize, usize)) -> Result<NavForScan> {
    let image = nav::read(path)?;
    let mismatch = image.check_scan(scan.0, scan.1).err();
    let calibration = calibration_of(&image);
    Ok(NavForScan { image, mismatch, calibration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::nav::{AxisCalibration, NavKind};

    fn img(units: &str, scale: f64) -> NavImage {
        let ax = AxisCalibration { offset: 0.0, scale, units: units.into() };
        NavImage {
            path: "n.ndata".into(),
            kind: NavKind::Ndata,
            rows: 2,
            cols: 3,
            dtype: "float32".into(),
            title: None,
            calibration: Some([ax.clone(), ax]),
            metadata: serde_json::Value::Null,
            data: vec![0.0; 6],
        }
    }

    #[test]
    fn nion_units_become_scan_steps() {
        assert_eq!(calibration_of(&img("nm", 0.25)).r, Some((0.25, "nm".into())));
        assert_eq!(calibration_of(&img("µm", 0.002)).r, Some((2.0, "nm".into())));
        assert_eq!(calibration_of(&img("pm", 50.0)).r, Some((0.5, "A".into())));
        assert_eq!(calibration_of(&img("", 1.0)).r, None, "pixels are no length");
        assert_eq!(calibration_of(&img("nm", 0.0)).r, None);
    }
}
