//! End-to-end: the real binary in a detached tmux session on a synthetic file. Sends arrows,
//! `m`, `c`, `q`; reads the screen with `tmux capture-pane -p`; checks the terminal is restored.
//! Skipped (with a message) when tmux is not installed.

mod common;

use emdtui::format::synth::SynthSpec;
use std::process::Command;
use std::time::{Duration, Instant};

struct Session(String);

impl Session {
    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux").args(args).output().expect("run tmux");
        String::from_utf8_lossy(&o.stdout).to_string()
    }
    fn send(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", &self.0];
        a.extend_from_slice(keys);
        self.tmux(&a);
    }
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.0])
    }
    /// Wait until the screen satisfies `f`; returns the screen.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The exit status line printed by `; echo EXIT=$?` (not the command line that contains it).
fn exit_line(t: &str) -> Option<&str> {
    t.lines().map(str::trim).find(|l| l.starts_with("EXIT="))
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

#[test]
fn tmux_arrows_detector_convert_quit() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = common::synth(
        dir.path(),
        "e2e.mib",
        &SynthSpec { rows: 16, cols: 20, det: 256, hdr: true, ..Default::default() },
    );
    let bin = common::bin();
    assert!(bin.exists());
    let bin = bin.display();
    let name = format!("emdtui-e2e-{}", std::process::id());
    let s = Session(name.clone());
    let shell = format!("env PS1='E2E-PROMPT$ ' EMDTUI_CACHE_DIR={} sh", dir.path().join("cache").display());
    let o = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "120", "-y", "36", &shell])
        .output()
        .unwrap();
    assert!(o.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&o.stderr));
    s.wait("the shell prompt", |t| t.contains("E2E-PROMPT$"));
    s.send(&[&format!("{bin} --no-query --graphics halfblocks {}; echo EXIT=$?", f.display()), "Enter"]);
    let t = s.wait("metadata, frame and finished overview", |t| {
        t.contains("BF overview")
            && t.contains("frame (8, 10) #170")
            && t.contains("done")
            && t.contains("scan 16 x 20")
    });
    assert!(t.contains("e2e.mib"));
    assert!(t.contains('▀'), "images drawn as half blocks");
    // arrows: the first key must not be eaten (no terminal query with --no-query)
    s.send(&["Right"]);
    s.wait("cursor moved right", |t| t.contains("frame (8, 11) #171"));
    s.send(&["Right", "Down", "Down"]);
    s.wait("cursor moved", |t| t.contains("frame (10, 12) #212") && t.contains("BF overview  (10, 12)"));
    s.send(&["S-Left"]);
    s.wait("shift moves by 10", |t| t.contains("frame (10, 2) #202"));
    s.send(&["m"]);
    s.wait("ADF detector", |t| t.contains("ADF overview") && t.contains("detector ADF"));
    s.send(&["c"]);
    let t = s.wait("conversion job", |t| {
        t.contains("convert") && (t.contains("failed") || t.contains("converted") || t.contains("running"))
    });
    assert!(t.contains("convert"));
    s.send(&["q"]);
    // a still-running job makes q ask first
    let t = s.wait("quit or prompt", |t| exit_line(t).is_some() || t.contains("Cancel and quit?"));
    if t.contains("Cancel and quit?") {
        s.send(&["y"]);
    }
    let t = s.wait("exit", |t| exit_line(t).is_some());
    assert_eq!(exit_line(&t), Some("EXIT=0"));
    // terminal restored: the alternate screen is gone, the shell prompt is back and usable
    assert!(!t.contains("BF overview") && !t.contains("jobs ("), "alternate screen left:\n{t}");
    s.send(&["echo still-$((40+2))", "Enter"]);
    s.wait("shell works after exit (echo, raw mode off)", |t| t.contains("still-42"));
}

#[test]
fn tmux_panic_restores_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f =
        common::synth(dir.path(), "p.mib", &SynthSpec { rows: 4, cols: 4, det: 256, hdr: true, ..Default::default() });
    let bin = common::bin();
    let bin = bin.display();
    let name = format!("emdtui-e2e-panic-{}", std::process::id());
    let s = Session(name.clone());
    // no backtrace: symbolising one is slow on a loaded machine and not what is tested
    let shell =
        format!("env PS1='E2E-PROMPT$ ' RUST_BACKTRACE=0 EMDTUI_CACHE_DIR={} sh", dir.path().join("cache").display());
    let o = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "120", "-y", "36", &shell])
        .output()
        .unwrap();
    assert!(o.status.success());
    s.wait("the shell prompt", |t| t.contains("E2E-PROMPT$"));
    s.send(&[&format!("EMDTUI_TEST_PANIC=1 {bin} --no-query {}; echo EXIT=$?", f.display()), "Enter"]);
    let t = s.wait("exit after the panic", |t| exit_line(t).is_some());
    assert!(t.contains("deliberate panic"), "panic message printed on the restored screen:\n{t}");
    assert!(!t.contains("jobs ("), "alternate screen left:\n{t}");
    assert_eq!(exit_line(&t), Some("EXIT=101"), "a panic is a failure exit");
    s.send(&["echo still-$((40+2))", "Enter"]);
    s.wait("shell works after the panic", |t| t.contains("still-42"));
}
