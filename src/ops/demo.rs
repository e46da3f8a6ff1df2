//! The built-in demos, generated once into the cache directory (`demo/`) and reused:
//! * `4d` (plain `emdtui`): a weak phase object (honeycomb lattice with vacancies on an amorphous
//!   film) scanned by a defocused probe, [`crate::format::synth_phase`]; its calibration (energy,
//!   convergence angle, scan step, detector step) is remembered for it like a user-given one, so
//!   DPC/iCoM, tcBF, ptychography and EWPC need no flags;
//! * `eels` (`emdtui --demo eels`): a Merlin Nx1 spectrometer scan ([`crate::format::synth`]'s
//!   Nx1 model: zero-loss peak, plasmon, background and a core-loss edge varying over the scan).
//!
//! The file name carries a hash of the generator's parameters, so a changed demo is generated
//! anew and its conversions (the EMD in the same directory, keyed by the `.mib`'s fingerprint)
//! are never mixed with an older one's. Generation is deterministic, so every cache made from
//! the demo stays valid.

use crate::compute::calib::Calibration;
use crate::error::{Error, Result};
use crate::format::synth::{self, SynthSpec};
use crate::format::synth_phase::PhaseSpec;
use std::path::{Path, PathBuf};

/// Which demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Demo {
    /// 4D-STEM: a weak phase object under a defocused probe.
    #[default]
    FourD,
    /// EELS on a Merlin Nx1 spectrometer detector.
    Eels,
}

impl Demo {
    /// `4d` or `eels`.
    pub fn parse(s: &str) -> std::result::Result<Demo, String> {
        match s.to_ascii_lowercase().as_str() {
            "4d" | "4d-stem" | "stem" => Ok(Demo::FourD),
            "eels" => Ok(Demo::Eels),
            _ => Err(format!("unknown demo {s:?}: use 4d or eels")),
        }
    }
}

/// The 4D demo's scan: 64x64 positions of 64x64 frames (32 MiB), 200 kV, 20 mrad, 0.4 Å step,
/// 120 Å underfocus.
pub fn phase_spec() -> PhaseSpec {
    PhaseSpec::default()
}

/// The EELS demo's scan: 24x24 spectra on the 256x1024 Nx1 detector (288 MiB, 12-bit).
pub fn eels_spec() -> SynthSpec {
    SynthSpec { rows: 24, cols: 24, depth: 12, hdr: true, seed: 11, nx1: true, ..Default::default() }
}

/// The energy window the EELS demo opens with (of `channels`): on its core-loss edge, whose
/// strength varies over the scan.
pub fn eels_window(channels: usize) -> (usize, usize) {
    let a = synth::NX1_EDGE.saturating_sub(10).min(channels.saturating_sub(1));
    (a, (synth::NX1_EDGE + 180).min(channels).max(a + 1))
}

/// The calibration the 4D demo was made with (none for the EELS demo).
pub fn calibration(d: Demo) -> Calibration {
    match d {
        Demo::FourD => {
            let p = phase_spec();
            Calibration {
                r: Some((p.scan_step_a, "A".into())),
                q: Some((p.q_pixel_mrad(), "mrad".into())),
                alpha_mrad: Some(p.alpha_mrad),
                energy_v: Some(p.energy_v),
            }
        }
        Demo::Eels => Calibration::default(),
    }
}

fn file_name(d: Demo) -> String {
    let key = match d {
        Demo::FourD => format!("{:?}", phase_spec()),
        Demo::Eels => format!("{:?}", eels_spec()),
    };
    let h = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    match d {
        Demo::FourD => format!("demo_phase_{:08x}.mib", h as u32),
        Demo::Eels => format!("demo_eels_{:08x}.mib", h as u32),
    }
}

/// Where the demo's `.mib` is (or will be) in `cache`.
pub fn path(cache: &Path, d: Demo) -> PathBuf {
    cache.join("demo").join(file_name(d))
}

/// True when the demo is already in `cache` (opening it takes no generation).
pub fn file_exists(cache: &Path, d: Demo) -> bool {
    path(cache, d).exists()
}

/// The demo's `.mib` in `cache/demo/`, generated when missing (written under a temporary
/// directory and moved into place, `.mib` last, so a crash leaves no half demo); the 4D demo's
/// calibration is remembered for it in `cache`.
pub fn file(cache: &Path, d: Demo) -> Result<PathBuf> {
    let dir = cache.join("demo");
    let f = dir.join(file_name(d));
    if !f.exists() {
        generate(&dir, &f, d)?;
    }
    let cal = calibration(d);
    if !cal.is_empty() {
        let ds = crate::dataset::open(&f, &Default::default())?;
        if crate::store::calib::load(cache, ds.as_ref()).as_ref() != Some(&cal) {
            crate::store::calib::save(cache, ds.as_ref(), &cal)?;
        }
    }
    Ok(f)
}

fn generate(dir: &Path, f: &Path, d: Demo) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".gen{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let name = f.file_name().expect("demo file name");
    let out = tmp.join(name);
    match d {
        Demo::FourD => phase_spec().write(&out)?,
        Demo::Eels => {
            synth::write(&out, &eels_spec(), &|_, _| {})?;
        }
    }
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&tmp).map_err(|e| Error::io(&tmp, e))?.flatten().map(|e| e.path()).collect();
    files.sort_by_key(|p| p.extension().is_some_and(|e| e == "mib"));
    for w in files {
        let to = dir.join(w.file_name().expect("file name"));
        std::fs::rename(&w, &to).map_err(|e| Error::io(&to, e))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(Demo::parse("eels"), Ok(Demo::Eels));
        assert_eq!(Demo::parse("4D"), Ok(Demo::FourD));
        assert!(Demo::parse("nope").unwrap_err().contains("4d or eels"));
    }

    #[test]
    fn calibration_is_complete_for_4d() {
        let c = calibration(Demo::FourD);
        assert_eq!(c.energy_v, Some(200e3));
        assert_eq!(c.alpha_mrad, Some(20.0));
        let q = c.q.unwrap().0;
        // lambda / (64 px x 0.2 Å) = 1.959 mrad
        assert!((q - 1.9593).abs() < 1e-3, "{q}");
    }
}
