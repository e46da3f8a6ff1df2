//! What the EELS screen keeps: the spectrum image, the energy window and its map, the spectrum
//! on show.

use crate::jobs::Progress;
use crate::ops::eels::{self, SpectrumImage, Window};
use std::sync::Arc;

/// Name of the background job that makes the spectrum image.
pub const JOB_NAME: &str = "spectra";

/// What the spectrum pane shows: at a scan position, or the mean over a ROI.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SpectrumKey {
    At(usize, bool),
    Roi(std::ops::Range<usize>, std::ops::Range<usize>),
}

/// State of the EELS screen.
pub struct EelsView {
    /// Channels of a spectrum.
    pub channels: usize,
    /// The spectrum image, once loaded or computed.
    pub si: Option<Arc<SpectrumImage>>,
    pub job: Option<Arc<Progress>>,
    /// The energy window: channels [start, end).
    pub window: (usize, usize),
    /// Log scale of the spectrum plot (log10(1 + counts)).
    pub log: bool,
    /// The energy-window map (scan rows x cols), empty until the spectrum image is there; made
    /// for `map_window` (brought up to date before a draw, so a burst of window keys costs one map).
    pub map: Vec<f32>,
    pub map_window: Option<(usize, usize)>,
    /// The spectrum on show and what it is ("at (r, c)", "ROI mean ...").
    pub spectrum: Vec<f32>,
    pub spectrum_of: String,
    pub(crate) key: Option<SpectrumKey>,
    pub error: Option<String>,
}

impl EelsView {
    pub fn new(channels: usize) -> EelsView {
        EelsView {
            channels,
            si: None,
            job: None,
            window: eels::default_window(channels),
            log: false,
            map: vec![],
            map_window: None,
            spectrum: vec![],
            spectrum_of: String::new(),
            key: None,
            error: None,
        }
    }

    /// Energy of channel `i` (eV when calibrated, else the channel number).
    pub fn energy(&self, i: f64) -> f64 {
        match &self.si {
            Some(si) => si.energy_offset + i * si.energy_step,
            None => i,
        }
    }

    pub fn units(&self) -> &str {
        self.si.as_ref().map(|s| s.energy_units.as_str()).unwrap_or("channels")
    }

    /// The window as text: channels, and eV when calibrated.
    pub fn window_label(&self) -> String {
        let (a, b) = self.window;
        match &self.si {
            Some(si) if si.calibrated() => format!("ch {a}-{b} ({})", self.window_short()),
            _ => format!("ch {a}-{b}"),
        }
    }

    /// The window in eV when calibrated, else in channels.
    pub fn window_short(&self) -> String {
        let (a, b) = self.window;
        match &self.si {
            Some(si) if si.calibrated() => {
                format!("{:.1} to {:.1} eV", self.energy(a as f64), self.energy(b as f64))
            }
            _ => format!("ch {a}-{b}"),
        }
    }

    /// Channels a key press moves the window by.
    pub(crate) fn step(&self) -> usize {
        (self.channels / 128).max(1)
    }

    /// Move the window by `d` channels (kept inside the spectrum, width unchanged).
    pub(crate) fn shift(&mut self, d: i64) {
        let (a, b) = self.window;
        let w = (b - a) as i64;
        let a = (a as i64 + d).clamp(0, self.channels as i64 - w);
        self.window = (a as usize, (a + w) as usize);
    }

    /// Move the window's upper edge by `d` channels (at least one channel wide).
    pub(crate) fn grow(&mut self, d: i64) {
        let (a, b) = self.window;
        let b = (b as i64 + d).clamp(a as i64 + 1, self.channels as i64);
        self.window = (a, b as usize);
    }

    /// Bring the map up to date with the window (nothing before the spectrum image is there).
    pub fn ensure_map(&mut self) {
        let Some(si) = &self.si else { return };
        if self.map_window == Some(self.window) {
            return;
        }
        let (a, b) = self.window;
        match eels::window_map(si, Window { start: a as f64, end: b as f64, ev: false }) {
            Ok(m) => {
                self.map = m;
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        self.map_window = Some(self.window);
    }

    /// The map as an image to export: (values, width, height, name).
    pub fn export(&self) -> Option<(Vec<f32>, usize, usize, String)> {
        let si = self.si.as_ref()?;
        if self.map_window != Some(self.window) {
            return None;
        }
        let (a, b) = self.window;
        Some((self.map.clone(), si.cols, si.rows, format!("eels-map-ch{a}-{b}")))
    }
}
