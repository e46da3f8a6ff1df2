//! A Merlin `.mib` acquisition (one file or a multi-file set) as a [`Dataset`].

use super::scan::{self, ScanHints};
use super::{Dataset, DatasetInfo, FrameBuf, Kind, OpenOptions, RawFrames, ReadScratch};
use crate::error::{Error, Result};
use crate::format::mibset::MibSet;
use std::path::Path;

/// A `.mib` acquisition as a dataset.
pub struct MibDataset {
    pub set: MibSet,
    info: DatasetInfo,
    /// How the scan shape was found, without what the frame count at open added to it.
    scan_reason: String,
}

/// Frame timestamps to find the scan line length from, when nothing else gives the scan shape:
/// progressively longer samples (most scans show two line starts in the first 1024 frames).
fn line_timestamps(set: &MibSet, opts: &OpenOptions, n: usize) -> Option<Vec<i128>> {
    let need_ts = opts.scan.is_none()
        && !set.acq.as_ref().is_some_and(|a| {
            (a.scan_x.is_some() && a.scan_y.is_some())
                || a.frames_per_trigger
                    .is_some_and(|f| f > 1 && n.saturating_sub(opts.skip_frames).is_multiple_of(f as usize))
        });
    if !need_ts {
        return None;
    }
    let mut found = None;
    for m in [1024usize, 4096, 16384] {
        let t = set.timestamps(m);
        let enough = t.as_ref().is_none_or(|t| {
            t.len() < m || scan::line_length_from_timestamps(&t[opts.skip_frames.min(t.len())..]).is_some()
        });
        found = t;
        if enough {
            break;
        }
    }
    found
}

impl MibDataset {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let set = if opts.mmap {
            let w = if opts.map_window == 0 { crate::format::mibset::MAP_WINDOW } else { opts.map_window };
            MibSet::open_mmap(path, w)?
        } else {
            MibSet::open(path)?
        };
        let n = set.n_frames();
        let ts = line_timestamps(&set, opts, n);
        let scan = scan::detect(
            n,
            &ScanHints {
                explicit: opts.scan,
                acq: set.acq.as_ref(),
                timestamps: ts.as_deref().map(|t| &t[opts.skip_frames.min(t.len())..]),
                skip: opts.skip_frames,
                flyback: opts.flyback,
            },
        );
        let scan_reason = scan.reason.strip_suffix(&scan::presence_note(&scan, n)).unwrap_or(&scan.reason).to_string();
        let h = &set.header;
        let mut md: Vec<(String, String)> = Vec::new();
        let files = set.parts.len();
        md.push(("file".into(), path.display().to_string()));
        if files > 1 {
            md.push(("files".into(), format!("{files} (multi-file acquisition)")));
        }
        md.push(("size".into(), humansize::format_size(set.total_bytes(), humansize::BINARY)));
        md.push((
            "detector".into(),
            format!(
                "Merlin {} chip{}, layout {}, {}x{}",
                h.num_chips,
                if h.num_chips > 1 { "s" } else { "" },
                h.layout,
                h.rows,
                h.cols
            ),
        ));
        md.push((
            "depth".into(),
            format!(
                "{} bit counter, stored {}{}",
                h.counter_depth().map(|d| d.to_string()).unwrap_or("?".into()),
                h.pixel_depth,
                if h.is_raw() { " (raw)" } else { "" }
            ),
        ));
        md.push(("frames".into(), n.to_string()));
        md.push(("scan".into(), format!("{} x {} ({})", scan.rows, scan.cols, scan.reason)));
        md.push(("exposure".into(), format!("{} ms", h.shutter_s * 1e3)));
        md.push(("acquired".into(), h.timestamp.clone()));
        if !h.thresholds_kev.is_empty() {
            let th: Vec<String> = h.thresholds_kev.iter().take(2).map(|t| format!("{t}")).collect();
            md.push(("thresholds".into(), format!("{} keV", th.join(", "))));
        }
        if let Some(a) = &set.acq {
            if let Some(v) = &a.software_version {
                md.push(("software".into(), v.clone()));
            }
            if let Some(v) = &a.trigger_start {
                md.push(("trigger".into(), v.clone()));
            }
        }
        let mode = super::detect_mode(&h.layout, h.rows, h.cols, opts.mode);
        let info = DatasetInfo {
            path: path.to_path_buf(),
            kind: Kind::Mib,
            mode,
            det_rows: h.rows,
            det_cols: h.cols,
            pixel_type: h.pixel_type,
            bytes_on_disk: set.total_bytes(),
            metadata: md,
            warnings: set.warnings.clone(),
            scan,
        };
        Ok(MibDataset { set, info, scan_reason })
    }
}

impl Dataset for MibDataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn positions_present(&self) -> usize {
        self.info.scan.positions_present(self.set.n_frames())
    }
    fn refresh(&self) -> usize {
        self.set.refresh();
        self.positions_present()
    }
    fn metadata_now(&self) -> Vec<(String, String)> {
        let (n, s) = (self.set.n_frames(), &self.info.scan);
        let mut md = self.info.metadata.clone();
        for (k, v) in md.iter_mut() {
            match k.as_str() {
                "frames" => *v = n.to_string(),
                "size" => *v = humansize::format_size(self.set.total_bytes(), humansize::BINARY),
                "scan" => *v = format!("{} x {} ({}{})", s.rows, s.cols, self.scan_reason, scan::presence_note(s, n)),
                _ => {}
            }
        }
        md
    }
    fn replaced(&self) -> bool {
        self.set.replaced()
    }
    fn fingerprint(&self) -> String {
        self.set.fingerprint()
    }
    fn prefetch(&self, pos: usize) {
        if pos < self.info.scan.positions() {
            self.set.prefetch(self.info.scan.frame_of(pos));
        }
    }
    fn read_raw_positions<'a>(
        &'a self,
        start: usize,
        count: usize,
        scratch: &'a mut ReadScratch,
    ) -> Result<Option<RawFrames<'a>>> {
        let s = &self.info.scan;
        let h = &self.set.header;
        if count == 0 || start + count > s.positions() || !matches!(h.storage, crate::format::mib::Storage::U16) {
            return Ok(None);
        }
        let f0 = s.frame_of(start);
        // consecutive frames only (no flyback frames inside), all present
        if s.frame_of(start + count - 1) != f0 + count - 1 || f0 + count > self.set.n_frames() {
            return Ok(None);
        }
        let bytes = self.set.raw_frames(f0, count, &mut scratch.mib)?;
        Ok(Some(RawFrames { bytes, stride: h.stride(), offset: h.header_bytes, count, pixel_type: h.pixel_type }))
    }
    fn read_positions(&self, start: usize, count: usize, out: &mut FrameBuf, scratch: &mut ReadScratch) -> Result<()> {
        let s = &self.info.scan;
        if start + count > s.positions() {
            return Err(Error::Invalid(format!(
                "positions {start}..{} outside the scan of {}",
                start + count,
                s.positions()
            )));
        }
        let npx = self.frame_pixels();
        out.resize(count * npx);
        let nf = self.set.n_frames();
        // split into runs of consecutive frames (one scan line at most)
        let mut p = start;
        while p < start + count {
            let c = p % s.cols;
            let run = (s.cols - c).min(start + count - p);
            let f0 = s.frame_of(p);
            let avail = nf.saturating_sub(f0).min(run);
            let off = (p - start) * npx;
            if avail > 0 {
                crate::with_frames!(out, v => self.set.decode_frames(f0, avail, &mut v[off..off + avail * npx], &mut scratch.mib)?);
            }
            if avail < run {
                crate::with_frames!(out, v => v[off + avail * npx..off + run * npx].fill(Default::default()));
            }
            p += run;
        }
        Ok(())
    }
}
