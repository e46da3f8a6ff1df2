//! `e`: the image on screen as a PNG next to the file.

use super::state::*;
use crate::compute::display::{DisplayParams, Scale};

impl State {
    /// The image on screen as (values, width, height, name, display), or why there is none.
    pub(crate) fn export_image(&self) -> Result<(Vec<f32>, usize, usize, String, DisplayParams), &'static str> {
        match self.screen {
            Screen::Main if self.eels.is_some() => {
                let e = self.eels.as_ref().and_then(|e| e.export()).ok_or("no energy-window map yet")?;
                Ok((e.0, e.1, e.2, e.3, self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Dpc => {
                let o = self.dpc.outcome.as_ref().ok_or("no DPC result to export yet")?;
                let r = &o.result;
                Ok((r.phase.clone(), r.cols, r.rows, "icom".into(), self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Tcbf => {
                let (v, w, h, name, _) = crate::tui::tcbf::export(self).ok_or("no tcBF image to export yet")?;
                Ok((v, w, h, name, self.main.overview_display))
            }
            Screen::Main if self.main.layout == ViewLayout::Ptycho => {
                let (v, w, h, name) = crate::tui::ptycho::export(self).ok_or("no ptychography image to export yet")?;
                Ok((v, w, h, name, self.main.overview_display))
            }
            Screen::Main => {
                let m = &self.main;
                let o = m.overviews.as_ref().ok_or("nothing to export yet")?;
                // the custom detector's image when one is shown in the first pane
                if let (Some(_), Some(v)) = (&m.detect.det, &m.detect.image) {
                    return Ok((v.clone(), o.scan_cols, o.scan_rows, "custom".into(), m.overview_display));
                }
                Ok((o.image(m.kind), o.scan_cols, o.scan_rows, m.kind.name().to_string(), m.overview_display))
            }
            Screen::Fft => {
                let src = self.fft.source.as_ref().ok_or("no FFT to export")?;
                let [qr, qc, _, _] = src.shape();
                let mut d = self.main.frame_display;
                d.scale = Scale::Log;
                Ok((self.fft.power.clone(), qc, qr, "fft-power".into(), d))
            }
        }
    }

    /// Export the image on screen as PNG next to the file (or in the working directory).
    pub(crate) fn export(&mut self) {
        if let Some(e) = self.eels.as_mut() {
            e.ensure_map();
        }
        let (vals, w, h, name, disp) = match self.export_image() {
            Ok(v) => v,
            Err(why) => {
                self.status = why.into();
                return;
            }
        };
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or("emdtui".into());
        let fname = format!("{stem}_{name}.png");
        let mut rgb = crate::compute::display::to_rgb(&vals, &disp);
        if self.screen == Screen::Main
            && let Some((step, units)) = &self.quant.calibration.r
        {
            // the tcBF image is on a grid finer than the scan
            let fine = if self.main.layout == ViewLayout::Tcbf { w / self.ds.scan().cols.max(1) } else { 1 };
            crate::compute::calib::draw_scale_bar(&mut rgb, h, w, *step / fine.max(1) as f64, units);
        }
        let mut tries = vec![self.path.with_file_name(&fname)];
        if let Ok(cwd) = std::env::current_dir() {
            tries.push(cwd.join(&fname));
        }
        let mut last = String::new();
        for t in tries {
            match crate::format::export::write_png_rgb(&t, h, w, &rgb) {
                Ok(()) => {
                    self.status = format!("exported {}", t.display());
                    return;
                }
                Err(e) => last = e.to_string(),
            }
        }
        self.status = format!("export failed: {last}");
    }
}
