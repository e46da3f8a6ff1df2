//! Scan (navigation) shape: explicit value, `.hdr` ScanX/ScanY, Frames per Trigger, timestamp
//! line-start analysis, square root, 1-D. The reason travels with the shape.

use crate::format::hdr::AcqHeader;
use serde::Serialize;

/// Scan geometry: `rows x cols` positions; position (r, c) is frame `skip + r*(cols+flyback) + c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanShape {
    pub rows: usize,
    pub cols: usize,
    /// Frames skipped at the start of the file.
    pub skip: usize,
    /// Extra (flyback) frames at the end of each scan line, not shown.
    pub flyback: usize,
    pub reason: String,
}

impl ScanShape {
    pub fn new(rows: usize, cols: usize, reason: impl Into<String>) -> Self {
        ScanShape { rows, cols, skip: 0, flyback: 0, reason: reason.into() }
    }
    pub fn positions(&self) -> usize {
        self.rows * self.cols
    }
    /// File frame index of scan position `p` (row-major).
    pub fn frame_of(&self, p: usize) -> usize {
        let (r, c) = (p / self.cols, p % self.cols);
        self.skip + r * (self.cols + self.flyback) + c
    }
    /// Number of positions whose frame lies within `frames` frames of data.
    pub fn positions_present(&self, frames: usize) -> usize {
        if frames <= self.skip {
            return 0;
        }
        let f = frames - self.skip;
        let line = self.cols + self.flyback;
        let full = f / line;
        let rest = (f % line).min(self.cols);
        (full * self.cols + rest).min(self.positions())
    }
}

/// Parse `ROWSxCOLS`.
pub fn parse_rxc(s: &str) -> Option<(usize, usize)> {
    let (a, b) = s.trim().split_once(['x', 'X', ','])?;
    let (r, c) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (r > 0 && c > 0).then_some((r, c))
}

/// Inputs to [`detect`].
pub struct ScanHints<'a> {
    pub explicit: Option<(usize, usize)>,
    pub acq: Option<&'a AcqHeader>,
    /// MQ1A timestamps (ns) of the first frames, if available.
    pub timestamps: Option<&'a [i128]>,
    pub skip: usize,
    pub flyback: usize,
}

/// Decide the scan shape for `n_frames` frames. Incomplete last rows are kept (padded: the
/// missing positions have no data and are shown as empty).
pub fn detect(n_frames: usize, h: &ScanHints) -> ScanShape {
    let n = n_frames.saturating_sub(h.skip);
    let mut s = detect_inner(n, h);
    s.skip = h.skip;
    s.flyback = h.flyback;
    if h.flyback > 0 && !s.reason.starts_with("--scan") {
        // the line length found includes flyback frames
        if s.cols > h.flyback {
            s.cols -= h.flyback;
        }
    }
    let note = presence_note(&s, n_frames);
    s.reason.push_str(&note);
    s
}

/// What the reason of scan `s` adds about `n_frames` frames: how many positions have frames
/// when some are missing, or how many extra frames are not shown (empty when they match).
pub fn presence_note(s: &ScanShape, n_frames: usize) -> String {
    let present = s.positions_present(n_frames);
    if present < s.positions() && s.positions() > 0 {
        format!(
            "; {} of {} positions have frames (incomplete scan: missing positions shown empty)",
            present,
            s.positions()
        )
    } else if s.cols > 0 && s.frame_of(s.positions().saturating_sub(1)) + 1 < n_frames {
        let extra = n_frames - (s.frame_of(s.positions() - 1) + 1);
        format!("; {extra} extra frames at the end not shown")
    } else {
        String::new()
    }
}

fn detect_inner(n: usize, h: &ScanHints) -> ScanShape {
    if let Some((r, c)) = h.explicit {
        return ScanShape::new(r, c, "--scan given");
    }
    let n = n.max(1);
    if let Some(a) = h.acq {
        if let (Some(x), Some(y)) = (a.scan_x, a.scan_y) {
            return ScanShape::new(y as usize, x as usize, ".hdr ScanX/ScanY");
        }
        if let Some(fpt) = a.frames_per_trigger
            && fpt > 1
            && n.is_multiple_of(fpt as usize)
        {
            let c = fpt as usize;
            return ScanShape::new(n / c, c, ".hdr Frames per Trigger (line trigger)");
        }
    }
    if let Some(ts) = h.timestamps
        && let Some(line) = line_length_from_timestamps(ts)
    {
        return ScanShape::new(n.div_ceil(line), line, format!("timestamp gaps: line starts every {line} frames"));
    }
    if n == 1 {
        return ScanShape::new(1, 1, "single frame");
    }
    if h.acq.is_some_and(|a| a.internal_trigger()) {
        return ScanShape::new(1, n, ".hdr internal trigger, no line gaps: frame series (1-D)");
    }
    let s = (n as f64).sqrt().round() as usize;
    if s * s == n {
        return ScanShape::new(s, s, "square root of the frame count");
    }
    ScanShape::new(1, n, "no scan information: 1-D")
}

/// Find a regular line period in frame timestamps: gaps clearly longer than the typical frame
/// interval (beyond the clock jitter) that recur every `L` frames.
pub fn line_length_from_timestamps(ts: &[i128]) -> Option<usize> {
    if ts.len() < 4 {
        return None;
    }
    let d: Vec<i128> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = d.clone();
    sorted.sort_unstable();
    let med = sorted[sorted.len() / 2];
    if med <= 0 {
        return None;
    }
    let mut dev: Vec<i128> = d.iter().map(|x| (x - med).abs()).collect();
    dev.sort_unstable();
    let mad = dev[dev.len() / 2];
    // jitter floor: 10 MAD, at least 5 us and 1e-4 of the interval
    let thr = (10 * mad).max(5_000).max(med / 10_000);
    let starts: Vec<usize> = d.iter().enumerate().filter(|(_, x)| **x - med > thr).map(|(i, _)| i + 1).collect();
    let first = *starts.first()?;
    if first < 2 {
        return None;
    }
    if starts.iter().all(|s| s % first == 0) && starts.len() >= (ts.len() - 1) / first { Some(first) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_line() {
        // 4x2 pixel trigger: one longer gap after frame 4
        let mut ts = vec![0i128];
        for i in 1..8 {
            let gap = if i == 4 { 102_020_979 } else { 101_999_998 };
            ts.push(ts[i - 1] + gap);
        }
        assert_eq!(line_length_from_timestamps(&ts), Some(4));
        // jitter only: no lines
        let ts: Vec<i128> = (0..9).map(|i| i * 2_094_507 - (i % 3) * 238).collect();
        assert_eq!(line_length_from_timestamps(&ts), None);
    }

    #[test]
    fn positions_and_flyback() {
        let mut s = ScanShape::new(3, 4, "t");
        s.flyback = 1;
        s.skip = 2;
        assert_eq!(s.frame_of(0), 2);
        assert_eq!(s.frame_of(4), 7);
        assert_eq!(s.positions_present(2 + 5 + 5 + 3), 11);
        assert_eq!(s.positions_present(100), 12);
        assert_eq!(parse_rxc("3x4"), Some((3, 4)));
        assert_eq!(parse_rxc("0x4"), None);
    }

    #[test]
    fn incomplete_rows_are_padded() {
        let s = detect(10, &ScanHints { explicit: Some((3, 4)), acq: None, timestamps: None, skip: 0, flyback: 0 });
        assert_eq!((s.rows, s.cols), (3, 4));
        assert!(s.reason.contains("10 of 12"), "{}", s.reason);
        let s = detect(9, &ScanHints { explicit: None, acq: None, timestamps: None, skip: 0, flyback: 0 });
        assert_eq!((s.rows, s.cols), (3, 3));
    }
}
