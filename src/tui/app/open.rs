//! Opening a dataset: the [`State`] and its first jobs, and the offer to resume interrupted work.

use super::state::*;
use crate::compute::overview::{self};
use crate::dataset::{Dataset, Kind};
use crate::jobs::JobTable;
use crate::ops::resume::Interrupted;
use crate::tui::follow::Follow;
use crate::tui::loader::Loader;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

impl State {
    pub fn new(ds: Arc<dyn Dataset>, tx: Sender<AppEvent>, o: Options) -> State {
        let info = ds.info().clone();
        let path = info.path.clone();
        let (dr, dc) = ds.det();
        let geometry = overview::default_geometry(dr, dc);
        let txl = tx.clone();
        let loader = Loader::new(
            ds.clone(),
            (o.memory_budget / 8).clamp(16 << 20, 512 << 20) as usize,
            o.sync_loader,
            move |p| {
                let _ = txl.send(AppEvent::FrameReady(p));
            },
        );
        let file_name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let is_mib = info.kind == Kind::Mib;
        let sc = ds.scan();
        let (present, total) = (ds.positions_present().min(sc.positions()), sc.positions());
        // a running acquisition: follow it, the cursor on the newest frame
        let mut follow = Follow::new(present, total, is_mib && !o.demo);
        follow.track = follow.active;
        let cursor = if follow.active && present > 0 {
            ((present - 1) / sc.cols.max(1), (present - 1) % sc.cols.max(1))
        } else {
            (sc.rows / 2, sc.cols / 2)
        };
        let cache_note = if info.kind == Kind::Emd { emd_cache_note(&path) } else { None };
        // the demo's calibration was remembered for it when it was generated
        let calibration = crate::ops::calib::stored(ds.as_ref(), o.cache_dir.as_deref());
        let mut s = State {
            ds,
            info,
            path,
            file_name,
            is_mib,
            demo: o.demo,
            screen: Screen::Main,
            main: MainView::new(cursor, geometry),
            fft: FftView::new(),
            eels: None,
            jobs: JobsPanel { table: JobTable::new(), selected: 0 },
            popup: Popup::None,
            dpc: Default::default(),
            tcbf: Default::default(),
            ptycho: Default::default(),
            quant: crate::tui::widgets::quant::Quant { calibration, ..Default::default() },
            follow,
            nav: None,
            inspector: None,
            cache_note,
            status: String::new(),
            hint: o.hint,
            quit: false,
            dirty: true,
            deterministic: o.deterministic,
            graphics: o.graphics,
            picker: o.picker,
            prepared: Prepared::default(),
            memory_budget: o.memory_budget,
            cache_dir: o.cache_dir,
            tuning: o.tuning,
            tx,
            loader,
            first_complete_draw: None,
            started: Instant::now(),
        };
        s.request_frame();
        match crate::tui::eels::channels_of(&s) {
            Some(ch) => {
                let mut v = crate::tui::view_state::eels::EelsView::new(ch);
                if s.demo {
                    // the EELS demo opens with the window on its core-loss edge
                    v.window = crate::ops::demo::eels_window(ch);
                }
                s.eels = Some(v);
                crate::tui::eels::start(&mut s);
                crate::tui::eels::sync(&mut s);
            }
            None => s.start_overview(),
        }
        s.offer_resume();
        s
    }

    pub(crate) fn offer_resume(&mut self) {
        if self.demo {
            return;
        }
        // an interrupted FFT in this EMD (or in the EMD of this .mib), else a partial conversion
        let emd = if self.is_mib { self.emd_path() } else { self.path.clone() };
        match crate::ops::resume::find(&emd, self.is_mib) {
            Some(Interrupted::Fft { emd, params, done, total }) => {
                let n = emd.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                self.popup = Popup::Confirm(
                    Confirm::ResumeFft(params),
                    format!(
                        "An interrupted 4D FFT was found in {n} ({done} of {total} blocks done).\nResume it now? (y/n)"
                    ),
                );
            }
            Some(Interrupted::Conversion(p)) => {
                let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                self.popup = Popup::Confirm(
                    Confirm::Resume(p),
                    format!("An interrupted conversion was found ({n}).\nResume it now? (y/n)"),
                );
            }
            None => {}
        }
    }
}

/// The state of the caches inside an EMD file ("N valid", or which are stale).
pub(crate) fn emd_cache_note(path: &std::path::Path) -> Option<String> {
    let c = crate::store::emd::EmdFile::open(path).and_then(|f| f.list_caches()).ok()?;
    let stale: Vec<&str> = c.iter().filter(|e| !e.valid).map(|e| e.name.as_str()).collect();
    let valid = c.len() - stale.len();
    Some(if stale.is_empty() {
        format!("{valid} valid")
    } else {
        format!("{valid} valid, {} STALE ({})", stale.len(), stale.join(", "))
    })
}
