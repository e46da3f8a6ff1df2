//! Calibration: real-space step per scan pixel and diffraction step per detector pixel, with
//! units as py4DSTEM writes them (`nm` or `A`; `mrad` or `A^-1`), parsed from user text that must
//! carry units (`0.5nm`, `5A`, `20mrad`, `0.01A^-1`).

/// A calibration; `None` fields are unknown (pixels).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// Scan step: (size, units `nm` | `A`).
    pub r: Option<(f64, String)>,
    /// Detector step: (size, units `mrad` | `A^-1`).
    pub q: Option<(f64, String)>,
    /// Convergence semi-angle (mrad), when the detector step was derived from it.
    pub alpha_mrad: Option<f64>,
    /// Accelerating voltage (V).
    #[serde(default)]
    pub energy_v: Option<f64>,
}

impl Calibration {
    /// Fields of `over` replace those of `self`.
    pub fn merged(&self, over: &Calibration) -> Calibration {
        Calibration {
            r: over.r.clone().or_else(|| self.r.clone()),
            q: over.q.clone().or_else(|| self.q.clone()),
            alpha_mrad: if over.q.is_some() { over.alpha_mrad } else { over.alpha_mrad.or(self.alpha_mrad) },
            energy_v: over.energy_v.or(self.energy_v),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.r.is_none() && self.q.is_none() && self.energy_v.is_none()
    }
    /// (R size, R units, Q size, Q units) with pixels for unknown parts (the EMD calibration).
    pub fn emd_fields(&self) -> (f64, String, f64, String) {
        let (rs, ru) = self.r.clone().unwrap_or((1.0, "pixels".into()));
        let (qs, qu) = self.q.clone().unwrap_or((1.0, "pixels".into()));
        (rs, ru, qs, qu)
    }
    /// A radius in detector pixels as text with its collection angle when known.
    pub fn describe_radius(&self, px: f32) -> String {
        match &self.q {
            Some((s, u)) => format!("{px:.1} px = {:.3} {u}", px as f64 * s),
            None => format!("{px:.1} px"),
        }
    }
}

/// Split `0.5nm` / `0.5 nm` into the number and the unit text.
fn split(s: &str) -> Option<(f64, String)> {
    let t = s.trim();
    let end = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == 'e' || c == 'E') && i > 0) || c == '-' || c == '+'))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    // an exponent letter at the end belongs to the unit ("5e" is not a number)
    let (num, unit) = t.split_at(end);
    let v: f64 = num.parse().ok()?;
    Some((v, unit.trim().to_string()))
}

fn positive(what: &str, s: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err(format!("{what} {s:?}: must be a positive number with units")) }
}

/// A scan step: `nm`, `A`/`Å`/`angstrom`, `pm`, `um`. Returned in `nm` or `A` as given.
pub fn parse_length(what: &str, s: &str) -> Result<(f64, String), String> {
    let (v, u) = split(s).ok_or_else(|| format!("{what} {s:?}: expected a number with units, e.g. 0.5nm or 5A"))?;
    let v = positive(what, s, v)?;
    match u.as_str() {
        "nm" => Ok((v, "nm".into())),
        "A" | "Å" | "angstrom" | "Angstrom" => Ok((v, "A".into())),
        "pm" => Ok((v / 100.0, "A".into())),
        "um" | "µm" => Ok((v * 1000.0, "nm".into())),
        "" => Err(format!("{what} {s:?}: the calibration has no units; write e.g. {v}nm or {v}A")),
        _ => Err(format!("{what} {s:?}: unknown length unit {u:?} (use nm, A or pm)")),
    }
}

/// An angle in mrad: `mrad` or `rad`.
pub fn parse_angle(what: &str, s: &str) -> Result<f64, String> {
    let (v, u) = split(s).ok_or_else(|| format!("{what} {s:?}: expected a number with units, e.g. 20mrad"))?;
    let v = positive(what, s, v)?;
    match u.as_str() {
        "mrad" => Ok(v),
        "rad" => Ok(v * 1000.0),
        "" => Err(format!("{what} {s:?}: the calibration has no units; write e.g. {v}mrad")),
        _ => Err(format!("{what} {s:?}: unknown angle unit {u:?} (use mrad)")),
    }
}

/// A detector step: `mrad` (per pixel) or reciprocal length `A^-1` / `1/A` / `nm^-1` / `1/nm`.
pub fn parse_q(what: &str, s: &str) -> Result<(f64, String), String> {
    let (v, u) =
        split(s).ok_or_else(|| format!("{what} {s:?}: expected a number with units, e.g. 0.2mrad or 0.01A^-1"))?;
    let v = positive(what, s, v)?;
    let mut u = u.replace(' ', "");
    if u.starts_with('/') {
        u.insert(0, '1');
    }
    match u.as_str() {
        "mrad" | "mrad/px" => Ok((v, "mrad".into())),
        "A^-1" | "1/A" | "Å^-1" | "1/Å" | "A-1" => Ok((v, "A^-1".into())),
        "nm^-1" | "1/nm" | "nm-1" => Ok((v / 10.0, "A^-1".into())),
        "" => Err(format!("{what} {s:?}: the calibration has no units; write e.g. {v}mrad or {v}A^-1")),
        _ => Err(format!("{what} {s:?}: unknown unit {u:?} (use mrad or A^-1)")),
    }
}

/// An accelerating voltage in volts: `200kV`, `200 kV`, `300keV`, `80000V`, `200000` (a bare
/// number is volts).
pub fn parse_energy(s: &str) -> Result<f64, String> {
    let (v, u) = split(s).ok_or_else(|| format!("--energy {s:?}: expected a voltage, e.g. 200kV"))?;
    let v = positive("--energy", s, v)?;
    let volts = match u.to_ascii_lowercase().as_str() {
        "" | "v" | "ev" => v,
        "kv" | "kev" => v * 1e3,
        "mv" | "mev" => v * 1e6,
        _ => return Err(format!("--energy {s:?}: unknown unit {u:?} (use kV, keV or V)")),
    };
    if !(1e3..=1e7).contains(&volts) {
        return Err(format!("--energy {s:?}: {volts} V is not an electron microscope's voltage (1 kV .. 10 MV)"));
    }
    Ok(volts)
}

/// Relativistic electron wavelength (Å) at an accelerating voltage (V).
pub fn electron_wavelength_a(volts: f64) -> f64 {
    // h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))
    let (h, m0, e, c) = (6.626_070_15e-34, 9.109_383_701_5e-31, 1.602_176_634e-19, 299_792_458.0);
    h / (2.0 * m0 * e * volts * (1.0 + e * volts / (2.0 * m0 * c * c))).sqrt() * 1e10
}

/// Detector step (mrad/px) from the convergence semi-angle and the bright-field disk radius.
pub fn q_from_alpha(alpha_mrad: f64, bf_radius_px: f64) -> Option<f64> {
    (bf_radius_px > 0.0 && alpha_mrad > 0.0).then(|| alpha_mrad / bf_radius_px)
}

/// A "nice" scale-bar length (1, 2 or 5 x 10^n) close to `target`.
pub fn nice_length(target: f64) -> f64 {
    if !(target > 0.0) {
        return 0.0;
    }
    let e = target.log10().floor();
    let b = 10f64.powf(e);
    let m = target / b;
    b * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    }
}

/// 3x5 glyphs (rows of 3 bits, top first) for scale-bar labels.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        'n' => [0, 6, 5, 5, 5],
        'm' => [0, 7, 7, 5, 5],
        'A' => [2, 5, 7, 5, 5],
        ' ' => [0, 0, 0, 0, 0],
        _ => return None,
    })
}

/// Draw a scale bar of a "nice" length (about 1/5 of the width) with its label, white on a dark
/// box, into the bottom-left corner of an RGB image (rows x cols) whose pixels are `step` `units`
/// apart. Returns the bar's length in units (None when the image is too small for it).
pub fn draw_scale_bar(rgb: &mut [u8], rows: usize, cols: usize, step: f64, units: &str) -> Option<f64> {
    if !(step > 0.0) || rows < 12 || cols < 16 || rgb.len() != rows * cols * 3 {
        return None;
    }
    let len = nice_length(cols as f64 * step / 5.0);
    let px = ((len / step).round() as usize).clamp(2, cols.saturating_sub(4));
    let label = format!("{} {units}", if len >= 1.0 { format!("{len:.0}") } else { format!("{len}") });
    let glyphs: Vec<[u8; 5]> = label.chars().filter_map(glyph).collect();
    let k = (rows.min(cols) / 64).max(1); // glyph scale
    let text_w = glyphs.len() * 4 * k;
    let (x0, y_bar) = (2usize, rows - 3 - k);
    let box_w = (px.max(text_w) + 4).min(cols);
    let box_top = y_bar.saturating_sub(5 * k + 3);
    let mut put = |y: usize, x: usize, v: u8| {
        if y < rows && x < cols {
            let i = (y * cols + x) * 3;
            rgb[i..i + 3].copy_from_slice(&[v, v, v]);
        }
    };
    for y in box_top..rows {
        for x in 0..box_w {
            put(y, x, 0);
        }
    }
    for y in y_bar..y_bar + k.max(1) + 1 {
        for x in x0..x0 + px {
            put(y, x, 255);
        }
    }
    let ty = box_top + 1;
    for (g, bits) in glyphs.iter().enumerate() {
        for (r, row) in bits.iter().enumerate() {
            for b in 0..3 {
                if row & (4 >> b) != 0 {
                    for dy in 0..k {
                        for dx in 0..k {
                            put(ty + r * k + dy, x0 + (g * 4 + b) * k + dx, 255);
                        }
                    }
                }
            }
        }
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_with_units_and_wavelength() {
        for t in ["200kV", "200 kV", "200keV", "200000V", "200000", "0.2MV"] {
            assert!((parse_energy(t).unwrap() - 200e3).abs() < 1e-6, "{t}");
        }
        assert_eq!(parse_energy("300keV").unwrap(), 300e3);
        assert_eq!(parse_energy("80000V").unwrap(), 80e3);
        assert!(parse_energy("200").unwrap_err().contains("not an electron microscope"));
        assert!(parse_energy("200 kg").unwrap_err().contains("unknown unit"));
        assert!(parse_energy("-200kV").is_err());
        assert!((electron_wavelength_a(200e3) - 0.025079).abs() < 2e-6);
        assert!((electron_wavelength_a(300e3) - 0.019687).abs() < 2e-6);
    }

    #[test]
    fn units_are_required_and_converted() {
        assert_eq!(parse_length("--scan-step", "0.5nm").unwrap(), (0.5, "nm".into()));
        assert_eq!(parse_length("--scan-step", "5 A").unwrap(), (5.0, "A".into()));
        assert_eq!(parse_length("--scan-step", "150pm").unwrap(), (1.5, "A".into()));
        assert!(parse_length("--scan-step", "0.5").unwrap_err().contains("no units"));
        assert!(parse_length("--scan-step", "-1nm").is_err());
        assert!(parse_length("--scan-step", "abc").is_err());
        assert_eq!(parse_angle("--alpha", "20mrad").unwrap(), 20.0);
        assert!(parse_angle("--alpha", "20").unwrap_err().contains("no units"));
        assert_eq!(parse_q("--q-pixel", "0.01A^-1").unwrap(), (0.01, "A^-1".into()));
        assert_eq!(parse_q("--q-pixel", "0.25 mrad").unwrap(), (0.25, "mrad".into()));
        assert!((parse_q("--q-pixel", "0.1/nm").unwrap().0 - 0.01).abs() < 1e-12);
        assert!(parse_q("--q-pixel", "0.1").unwrap_err().contains("no units"));
        assert_eq!(q_from_alpha(20.0, 10.0), Some(2.0));
        assert_eq!(nice_length(3.7), 5.0);
        for (t, v) in [("200kV", 2e5), ("200 kV", 2e5), ("300keV", 3e5), ("80000V", 8e4), ("200000", 2e5)] {
            assert_eq!(parse_energy(t).unwrap(), v, "{t}");
        }
        assert!(parse_energy("200mrad").is_err());
        assert!(parse_energy("-200kV").is_err());
        assert!(parse_energy("200").is_err(), "200 V is no TEM voltage");
        assert!((electron_wavelength_a(200e3) - 0.025079).abs() < 2e-6);
        assert!((electron_wavelength_a(300e3) - 0.019687).abs() < 2e-6);
        assert_eq!(nice_length(0.13), 0.1);
    }

    #[test]
    fn scale_bar_has_a_nice_length_and_is_drawn() {
        let (r, c) = (40, 48);
        let mut rgb = vec![128u8; r * c * 3];
        let len = draw_scale_bar(&mut rgb, r, c, 0.5, "nm").unwrap();
        assert_eq!(len, 5.0); // 48 * 0.5 / 5 = 4.8 -> 5 nm = 10 px
        let white = rgb.chunks(3).filter(|p| p == &[255, 255, 255]).count();
        assert!(white >= 10, "bar and label drawn: {white} white pixels");
        assert!(draw_scale_bar(&mut [0u8; 8 * 8 * 3], 8, 8, 1.0, "nm").is_none());
    }
}
