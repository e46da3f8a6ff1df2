//! A detached tmux session for end-to-end tests of the real binary (own server socket, so tests
//! do not collide; killed on drop), and the pane command that reports the exit status.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn have_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    eprintln!("tmux not installed: skipping");
    false
}

/// A detached tmux session on its own server socket (tests do not collide); killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Start `cmd` (a shell command line) in a new detached 120x40 session.
    pub fn start(tag: &str, cmd: &str) -> (Tmux, Instant) {
        Self::start_sized(tag, cmd, 120, 40)
    }
    /// [`Tmux::start`] in a `w`x`h` session.
    pub fn start_sized(tag: &str, cmd: &str, w: u16, h: u16) -> (Tmux, Instant) {
        let (w, h) = (w.to_string(), h.to_string());
        let socket = format!("emdtui-e2e-{tag}-{}", std::process::id());
        let t = Tmux { socket };
        let _ = Command::new("tmux").args(["-L", &t.socket, "kill-server"]).output();
        let t0 = Instant::now();
        let o = Command::new("tmux")
            .args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d", "-x", &w, "-y", &h, cmd])
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(o.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&o.stderr));
        (t, t0)
    }
    pub fn tmux(&self, args: &[&str]) -> String {
        let mut a = vec!["-L", &self.socket];
        a.extend_from_slice(args);
        let o = Command::new("tmux").args(&a).output().expect("run tmux");
        String::from_utf8_lossy(&o.stdout).to_string()
    }
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }
    pub fn send(&self, keys: &[&str]) {
        let mut a = vec!["send-keys"];
        a.extend_from_slice(keys);
        self.tmux(&a);
    }
    /// Poll the screen until `f` holds; returns it and the time since `since`.
    pub fn wait(&self, what: &str, since: Instant, limit: Duration, f: impl Fn(&str) -> bool) -> (String, Duration) {
        loop {
            let s = self.screen();
            if f(&s) {
                return (s, since.elapsed());
            }
            if since.elapsed() > limit {
                panic!("no {what} after {:.1} s; screen:\n{s}", since.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// The pane command: run emdtui with `args`, then print the exit status and stay open.
pub fn pane_cmd(cache: &Path, args: &str) -> String {
    let bin = super::bin();
    format!("env EMDTUI_CACHE_DIR='{}' {} {args}; echo EXITED rc=$?; sleep 600", cache.display(), bin.display())
}

pub fn exited(t: &str) -> Option<&str> {
    t.lines().map(str::trim).find(|l| l.starts_with("EXITED rc="))
}
