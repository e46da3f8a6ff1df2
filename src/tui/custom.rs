//! The TUI's custom detectors and EWPC pane (issue 12 "more at once", issue 14 EWPC).
//!
//! `u` cycles a custom detector shown in the first virtual-image pane: off, point (the pixel at
//! the detector centre), rectangle (a square of half-size = BF radius around the centre), mask
//! from the pattern on screen (pixels >= half its maximum), BF disk, ADF annulus. `U` switches
//! its response between sum and maximum. Point, rectangle, disk and annulus follow the detector
//! centre and radii (w/a/s/d, +/-, [/]). The image comes from `ops::detectors` (the cache
//! directory keyed by the definition, else a background pass over the frames present).
//! `i` shows the EWPC of the pattern in the frame pane (the frame at the cursor or the ROI mean).

use super::app::{AppEvent, State};
use super::view_state::detect::Shape;
use crate::compute::detectors::{self, Response};
use crate::jobs::Progress;

impl State {
    /// `u`: the next custom detector shape (the pattern mask is taken from the pattern on screen).
    pub fn cycle_custom(&mut self) {
        let d = &mut self.main.detect;
        d.shape = d.shape.next();
        if d.shape == Shape::Pattern {
            let pat = match (&self.main.roi_mean, &self.main.frame) {
                (Some((v, _)), _) => Some(v.clone()),
                (None, Some((_, f))) => Some(f.to_vec()),
                _ => None,
            };
            match pat.map(|p| detectors::mask_from_pattern(&p, 0.5)) {
                Some(Ok(m)) => d.pattern_mask = Some(m),
                _ => {
                    d.shape = d.shape.next();
                    self.status = "no pattern on screen to take a mask from".into();
                }
            }
        }
        self.start_custom();
    }

    /// `U`: sum or maximum response of the custom detector.
    pub fn toggle_response(&mut self) {
        let d = &mut self.main.detect;
        d.response = match d.response {
            Response::Sum => Response::Max,
            Response::Max => Response::Sum,
        };
        if d.shape == Shape::Off {
            self.status = format!("custom detector response: {} (u picks a detector)", d.response.name());
            return;
        }
        self.start_custom();
    }

    /// (Re)compute the custom image for the current shape and geometry (nothing when off or
    /// unchanged).
    pub fn start_custom(&mut self) {
        let (dr, dc) = self.ds.det();
        let det = self.main.detect.detector(&self.main.geometry, dr, dc);
        let d = &mut self.main.detect;
        if det == d.det && (d.image.is_some() || d.job.as_ref().is_some_and(|j| !j.state().finished())) {
            return;
        }
        if let Some(j) = d.job.take() {
            j.cancel();
        }
        d.generation += 1;
        d.image = None;
        d.error = None;
        d.det = det.clone();
        self.main.ov_version += 1;
        let Some(det) = det else {
            self.status = "custom detector off".into();
            return;
        };
        self.status = format!("custom detector: {}", det.label());
        let gen_ = d.generation;
        let p = Progress::new("detector", self.ds.positions_present() as u64);
        d.job = Some(p.clone());
        let (ds, tx, budget, cache) = (self.ds.clone(), self.tx.clone(), self.memory_budget, self.cache_dir.clone());
        let bad = (!self.quant.keep_bad).then(|| self.quant.user_bad.clone());
        let tx2 = tx.clone();
        self.jobs.table.spawn(
            p,
            move |p| {
                let (v, _) = crate::ops::detectors::custom_image_masked(
                    ds.as_ref(),
                    &det,
                    bad.as_deref(),
                    budget,
                    cache.as_deref(),
                    p,
                )?;
                let _ = tx.send(AppEvent::Custom(gen_, Ok(v)));
                Ok(())
            },
            move |_, r| {
                if let Err(e) = r
                    && !matches!(e, crate::Error::Cancelled)
                {
                    let _ = tx2.send(AppEvent::Custom(gen_, Err(e.to_string())));
                }
            },
        );
        self.dirty = true;
    }

    /// A custom image (or its error) of generation `gen_`; false when out of date.
    pub fn custom_ready(&mut self, gen_: u64, r: Result<Vec<f32>, String>) -> bool {
        let d = &mut self.main.detect;
        if gen_ != d.generation {
            return false;
        }
        match r {
            Ok(v) => d.image = Some(v),
            Err(e) => {
                self.status = format!("custom detector: {e}");
                d.error = Some(e);
            }
        }
        self.main.ov_version += 1;
        self.main.dgram_version += 1;
        true
    }

    /// `i`: the EWPC of the pattern in the frame pane (toggle).
    pub fn toggle_ewpc(&mut self) {
        self.main.detect.ewpc = !self.main.detect.ewpc;
        self.main.frame_version += 1;
        self.status = if self.main.detect.ewpc {
            "EWPC |FFT(log max(DP, eps))| of the pattern (i: back to the frame)".into()
        } else {
            "diffraction frame".into()
        };
    }
}
