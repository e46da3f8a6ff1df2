//! Following a running acquisition: while a `.mib` grows, its size is polled about twice a
//! second, the dataset extended to the complete frames, only the new frames run through the
//! overview, and the screen says "acquiring: N of M frames, R frames/s, T left". Polling stops
//! when the scan is complete or the file has not grown for a while; `f` follows again and makes
//! the cursor track the newest frame. A file that shrinks or is replaced gets a message.

use std::time::{Duration, Instant};

/// How often the file's size is checked while it grows.
pub const POLL: Duration = Duration::from_millis(500);
/// Stop polling after this long without a new frame.
pub const STALL: Duration = Duration::from_secs(30);

/// What the follower knows.
#[derive(Debug, Clone)]
pub struct Follow {
    /// Polling the file.
    pub active: bool,
    /// The cursor moves to the newest frame as frames arrive.
    pub track: bool,
    /// Positions present at the last poll.
    pub frames: usize,
    /// Frames per second (smoothed) over the recent polls.
    pub rate: f64,
    pub last_poll: Instant,
    pub last_growth: Instant,
    /// Something the user should know (completed, stalled, shrank, replaced).
    pub message: Option<String>,
}

/// What one poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Not due, or not following.
    Idle,
    /// No new frames.
    Same,
    /// New frames: positions present now.
    Grew(usize),
    /// Fewer frames than before (the file was truncated).
    Shrank(usize),
    /// The path now names another file.
    Replaced,
}

impl Follow {
    /// Following starts when positions are still missing (`present` of `total`).
    pub fn new(present: usize, total: usize, growable: bool) -> Follow {
        let now = Instant::now();
        Follow {
            active: growable && present < total,
            track: false,
            frames: present,
            rate: 0.0,
            last_poll: now,
            last_growth: now,
            message: None,
        }
    }

    /// Record a poll's result (`present` positions now of `total`; `replaced` when the file on
    /// disk is not the one open) and say what changed.
    pub fn observe(&mut self, present: usize, total: usize, replaced: bool, now: Instant) -> Poll {
        self.last_poll = now;
        if replaced {
            self.active = false;
            self.message =
                Some("the file was replaced on disk: showing what was read; reopen it for the new data".into());
            return Poll::Replaced;
        }
        let r = if present < self.frames {
            self.message = Some(format!(
                "the file shrank to {present} frames (was {}): later positions show as missing",
                self.frames
            ));
            self.frames = present;
            Poll::Shrank(present)
        } else if present > self.frames {
            let dt = now.duration_since(self.last_growth).as_secs_f64().max(1e-3);
            let r = (present - self.frames) as f64 / dt;
            self.rate = if self.rate > 0.0 { 0.6 * self.rate + 0.4 * r } else { r };
            self.frames = present;
            self.last_growth = now;
            self.message = None;
            Poll::Grew(present)
        } else {
            if now.duration_since(self.last_growth) >= STALL {
                self.active = false;
                self.message =
                    Some(format!("no new frames for {} s: stopped following (f follows again)", STALL.as_secs()));
            }
            Poll::Same
        };
        if present >= total {
            self.active = false;
            self.message = Some(format!("acquisition complete: {present} frames"));
        }
        r
    }

    /// Whether a poll is due.
    pub fn due(&self, now: Instant) -> bool {
        self.active && now.duration_since(self.last_poll) >= POLL
    }

    /// The line for the dataset pane (None when there is nothing to say).
    pub fn line(&self, total: usize) -> Option<String> {
        if self.active {
            let left = if self.rate > 0.0 {
                let s = (total.saturating_sub(self.frames)) as f64 / self.rate;
                format!(", {} left", fmt_secs(s))
            } else {
                String::new()
            };
            let track = if self.track { " (cursor follows)" } else { "" };
            return Some(format!(
                "acquiring: {} of {total} frames, {:.0} frames/s{left}{track}",
                self.frames, self.rate
            ));
        }
        self.message.clone()
    }

    /// `f`: follow (again) and let the cursor track the newest frame; a second `f` stops tracking.
    pub fn toggle(&mut self, present: usize, total: usize, growable: bool) {
        if self.track {
            self.track = false;
            return;
        }
        self.track = true;
        if growable && present < total {
            self.active = true;
            self.last_growth = Instant::now();
            self.message = None;
        }
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_completes_stalls_shrinks() {
        let mut f = Follow::new(10, 100, true);
        let t0 = f.last_poll;
        assert!(f.active && !f.due(t0));
        assert!(f.due(t0 + POLL));
        assert_eq!(f.observe(30, 100, false, t0 + Duration::from_secs(1)), Poll::Grew(30));
        assert!((f.rate - 20.0).abs() < 1e-6, "{}", f.rate);
        assert_eq!(f.line(100).unwrap(), "acquiring: 30 of 100 frames, 20 frames/s, 4 s left");
        assert_eq!(f.observe(30, 100, false, t0 + Duration::from_secs(2)), Poll::Same);
        assert!(f.active);
        assert_eq!(f.observe(30, 100, false, t0 + Duration::from_secs(1) + STALL), Poll::Same);
        assert!(!f.active && f.line(100).unwrap().contains("stopped following"));
        f.toggle(30, 100, true);
        assert!(f.active && f.track);
        assert_eq!(f.observe(20, 100, false, t0 + STALL * 2), Poll::Shrank(20));
        assert!(f.line(100).is_some());
        assert_eq!(f.observe(100, 100, false, t0 + STALL * 3), Poll::Grew(100));
        assert!(!f.active);
        assert_eq!(f.line(100).unwrap(), "acquisition complete: 100 frames");
        let mut g = Follow::new(5, 100, true);
        assert_eq!(g.observe(5, 100, true, g.last_poll), Poll::Replaced);
        assert!(!g.active && g.line(100).unwrap().contains("replaced"));
        assert!(!Follow::new(100, 100, true).active && !Follow::new(5, 100, false).active);
    }
}
