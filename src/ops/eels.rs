//! EELS: the spectrum image of a source (a 3-D spectrum-image EMD as stored, else the cached
//! short-axis sums of a `.mib` in EELS mode, else computed in one pass and cached), with the
//! energy axis oriented and calibrated; energy-window maps and mean spectra from it. One
//! workflow for `emdtui eels` and (later) the TUI's EELS view.

use crate::compute::eels::{self, SpectrumLayout};
use crate::dataset::{self, Dataset, Kind, Mode, OpenOptions};
use crate::error::{Error, Result};
use crate::format::emd;
use crate::jobs::Progress;
use crate::ops::overview::Origin;
use crate::store::eelscache::{self, CachedSpectra};
use std::path::{Path, PathBuf};

/// Orientation and calibration of the energy axis as asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyOptions {
    /// Reverse the channel order (channel 0 = the last stored channel).
    pub reverse: bool,
    /// eV per channel; with `offset`, remembered for a `.mib` in the cache directory.
    pub dispersion: Option<f64>,
    /// Energy of channel 0 in eV (0 when only the dispersion is given).
    pub offset: Option<f64>,
}

/// An EELS request.
#[derive(Debug, Clone, Default)]
pub struct EelsJob {
    pub energy: EnergyOptions,
    pub memory_budget: u64,
    /// Cache directory for `.mib` spectra and remembered calibrations (None: not used).
    pub cache_dir: Option<PathBuf>,
}

/// A spectrum image ready to use: position-major spectra with the energy axis oriented.
#[derive(Debug, Clone)]
pub struct SpectrumImage {
    pub rows: usize,
    pub cols: usize,
    pub channels: usize,
    pub data: Vec<f32>,
    /// Energy of channel `i` = `energy_offset + i * energy_step` in `energy_units` (`eV` when
    /// calibrated, else `channels`).
    pub energy_offset: f64,
    pub energy_step: f64,
    pub energy_units: String,
    pub origin: Origin,
    /// What the source is, for messages (e.g. "Merlin Nx1 ...", "3-D spectrum-image EMD").
    pub describe: String,
}

impl SpectrumImage {
    pub fn calibrated(&self) -> bool {
        self.energy_units == "eV"
    }
    /// Energy of every channel.
    pub fn axis(&self) -> Vec<f64> {
        (0..self.channels).map(|i| self.energy_offset + i as f64 * self.energy_step).collect()
    }
}

/// An energy window: channels [start, end), or energies in eV when `ev`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub end: f64,
    pub ev: bool,
}

/// True for the extensions opened as HDF5.
fn is_hdf5(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("emd" | "h5" | "hdf5" | "py4dstem")
    )
}

/// The spectrum image of `path`: a 3-D spectrum-image EMD as stored, or the spectra of a
/// dataset in EELS mode (cached for a `.mib`). A dataset in diffraction mode is an error that
/// says why and how to override it.
pub fn spectrum_image(path: &Path, open: &OpenOptions, job: &EelsJob, progress: &Progress) -> Result<SpectrumImage> {
    if is_hdf5(path)
        && let Some(si) = emd::read_spectrum_image(path)?
    {
        progress.set_done(progress.total());
        return Ok(from_emd(si, &job.energy));
    }
    let ds = dataset::open(path, open)?;
    spectrum_image_of(ds.as_ref(), job, progress)
}

/// The spectrum image of an open dataset (the TUI's): a 3-D spectrum-image EMD read as stored
/// (exact floats, its energy axis), else [`spectrum_image_of`] (cached for a `.mib`).
pub fn spectrum_image_ds(ds: &dyn Dataset, job: &EelsJob, progress: &Progress) -> Result<SpectrumImage> {
    let p = &ds.info().path;
    if ds.info().kind == Kind::Emd
        && is_hdf5(p)
        && let Some(si) = emd::read_spectrum_image(p)?
    {
        progress.set_done(progress.total());
        return Ok(from_emd(si, &job.energy));
    }
    spectrum_image_of(ds, job, progress)
}

/// The default energy window of `channels` channels: mib-viewer's 10-200, clamped to the
/// spectrum (the whole spectrum when it has fewer than 20 channels).
pub fn default_window(channels: usize) -> (usize, usize) {
    if channels < 20 { (0, channels) } else { (10, 200.min(channels)) }
}

fn from_emd(si: emd::SpectrumImageData, e: &EnergyOptions) -> SpectrumImage {
    let [rows, cols, channels] = si.shape;
    let mut s = SpectrumImage {
        rows,
        cols,
        channels,
        data: si.data,
        energy_offset: si.energy_offset,
        energy_step: si.energy_step,
        energy_units: if si.energy_units.eq_ignore_ascii_case("ev") { "eV".into() } else { si.energy_units },
        origin: Origin::EmdCache,
        describe: format!("3-D spectrum-image EMD ({:?} layout, /{})", si.layout, si.group),
    };
    if e.reverse {
        eels::reverse_channels(&mut s.data, channels);
    }
    if let Some(d) = e.dispersion {
        (s.energy_offset, s.energy_step, s.energy_units) = (e.offset.unwrap_or(0.0), d, "eV".into());
    }
    s
}

/// Refuse a dataset that is not in EELS mode, saying why.
pub fn require_eels(ds: &dyn Dataset) -> Result<()> {
    let i = ds.info();
    if i.mode.mode != Mode::Eels {
        return Err(Error::Invalid(format!(
            "{}: not spectrum data: {}; `--mode eels` reads each frame as a spectrum",
            i.path.display(),
            i.mode.reason
        )));
    }
    Ok(())
}

/// The energy calibration to use: the options, else the one remembered for the file; the
/// options are remembered for next time.
pub fn calibration(ds: &dyn Dataset, job: &EelsJob) -> Option<(f64, f64)> {
    let dir = job.cache_dir.as_deref().filter(|_| ds.info().kind == Kind::Mib);
    match (job.energy.dispersion, dir) {
        (Some(d), Some(dir)) => {
            let o = job.energy.offset.unwrap_or(0.0);
            if let Err(e) = eelscache::store_calibration(dir, ds, d, o) {
                log::warn!("calibration: {e}");
            }
            Some((d, o))
        }
        (Some(d), None) => Some((d, job.energy.offset.unwrap_or(0.0))),
        (None, Some(dir)) => eelscache::load_calibration(dir, ds),
        (None, None) => None,
    }
}

/// The spectrum image of a dataset in EELS mode: cached, else computed in one pass (and cached
/// when complete).
pub fn spectrum_image_of(ds: &dyn Dataset, job: &EelsJob, progress: &Progress) -> Result<SpectrumImage> {
    require_eels(ds)?;
    let l = SpectrumLayout::of(ds);
    let s = ds.scan();
    let cached = job.cache_dir.as_deref().and_then(|d| eelscache::load(d, ds, &l));
    let (c, origin) = match cached {
        Some(c) => {
            progress.set_done(progress.total());
            (c, Origin::CacheDir)
        }
        None => {
            let n = s.positions();
            progress.set_total(n as u64);
            let mut data = vec![0f32; n * l.channels];
            eels::spectra(ds, 0..n, &l, job.memory_budget, progress, &mut data)?;
            let done = ds.positions_present().min(n);
            let c = CachedSpectra { rows: s.rows, cols: s.cols, channels: l.channels, positions_done: done, data };
            if let Some(dir) = &job.cache_dir
                && done == n
                && eelscache::applies(ds)
                && let Err(e) = eelscache::store(dir, ds, &l, &c)
            {
                log::warn!("spectrum cache: {e}");
            }
            (c, Origin::Computed)
        }
    };
    let mut data = c.data;
    if job.energy.reverse {
        eels::reverse_channels(&mut data, l.channels);
    }
    let (energy_offset, energy_step, energy_units) = match calibration(ds, job) {
        Some((d, o)) => (o, d, "eV".to_string()),
        None => (0.0, 1.0, "channels".to_string()),
    };
    Ok(SpectrumImage {
        rows: s.rows,
        cols: s.cols,
        channels: l.channels,
        data,
        energy_offset,
        energy_step,
        energy_units,
        origin,
        describe: ds.info().mode.reason.clone(),
    })
}

/// Positions at the start of `si` that hold spectra (the rest are NaN: not yet acquired when it
/// was made).
pub fn positions_covered(si: &SpectrumImage) -> usize {
    si.data.chunks_exact(si.channels.max(1)).take_while(|s| s.first().is_some_and(|v| v.is_finite())).count()
}

/// `si` (of the growing acquisition `ds`) with the spectra of the positions acquired since it was
/// made: only the new positions are read; cached when the scan is complete.
pub fn extend(ds: &dyn Dataset, si: &SpectrumImage, job: &EelsJob, progress: &Progress) -> Result<SpectrumImage> {
    let l = SpectrumLayout::of(ds);
    let n = ds.scan().positions();
    let (from, present) = (positions_covered(si), ds.positions_present().min(n));
    let mut out = si.clone();
    if present <= from || l.channels != si.channels || si.rows * si.cols != n {
        return Ok(out);
    }
    let ch = si.channels;
    progress.set_total((present - from) as u64);
    let part = &mut out.data[from * ch..present * ch];
    eels::spectra(ds, from..present, &l, job.memory_budget, progress, part)?;
    if job.energy.reverse {
        eels::reverse_channels(part, ch);
    }
    out.origin = Origin::Computed;
    if let Some(dir) = &job.cache_dir
        && present == n
        && !job.energy.reverse
        && eelscache::applies(ds)
    {
        let c = CachedSpectra { rows: si.rows, cols: si.cols, channels: ch, positions_done: n, data: out.data.clone() };
        if let Err(e) = eelscache::store(dir, ds, &l, &c) {
            log::warn!("spectrum cache: {e}");
        }
    }
    Ok(out)
}

/// Channels [c0, c1) of a window; errors name the problem (empty, outside the channel range,
/// eV without a calibration).
pub fn window_channels(si: &SpectrumImage, w: Window) -> Result<(usize, usize)> {
    if !(w.start.is_finite() && w.end.is_finite()) || w.end <= w.start {
        return Err(Error::Invalid(format!("the energy window {}:{} is empty (E1 must be above E0)", w.start, w.end)));
    }
    let (a, b) = if w.ev {
        if !si.calibrated() {
            return Err(Error::Invalid(format!(
                "the window {}:{} eV needs an energy calibration (--dispersion EV_PER_CH --offset EV); without one give channels",
                w.start, w.end
            )));
        }
        let c = |e: f64| (e - si.energy_offset) / si.energy_step;
        let (x, y) = (c(w.start), c(w.end));
        (x.min(y).ceil(), x.max(y).ceil())
    } else {
        (w.start.ceil(), w.end.ceil())
    };
    let n = si.channels as f64;
    if a < 0.0 || b > n {
        let range = if si.calibrated() {
            let ax = si.axis();
            format!(
                "channels 0..{} ({:.3} to {:.3} eV)",
                si.channels,
                ax.first().copied().unwrap_or(0.0),
                si.energy_offset + n * si.energy_step
            )
        } else {
            format!("channels 0..{}", si.channels)
        };
        return Err(Error::Invalid(format!(
            "the energy window {}:{}{} is outside the spectrum: {range}",
            w.start,
            w.end,
            if w.ev { " eV" } else { "" }
        )));
    }
    if b <= a {
        return Err(Error::Invalid(format!("the energy window {}:{} holds no whole channel", w.start, w.end)));
    }
    Ok((a as usize, b as usize))
}

/// The energy-window map: per scan position, the sum over the window's channels (NaN where a
/// position has no data).
pub fn window_map(si: &SpectrumImage, w: Window) -> Result<Vec<f32>> {
    let (a, b) = window_channels(si, w)?;
    Ok(eels::window_map(&si.data, si.channels, a..b))
}

/// The mean spectrum over the scan rectangle `rows` x `cols` (half-open).
pub fn mean_spectrum(
    si: &SpectrumImage,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Result<Vec<f32>> {
    if rows.is_empty() || cols.is_empty() || rows.end > si.rows || cols.end > si.cols {
        return Err(Error::Invalid(format!(
            "ROI rows {}..{}, cols {}..{} is empty or outside the {}x{} scan",
            rows.start, rows.end, cols.start, cols.end, si.rows, si.cols
        )));
    }
    eels::mean_spectrum(&si.data, si.cols, si.channels, rows, cols)
        .ok_or_else(|| Error::Invalid("the ROI has no frames yet".into()))
}
