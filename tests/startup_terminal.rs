//! Start-up without flags (issue 12, "Start anywhere"): the real binary with no `--graphics` /
//! `--no-query` in a detached tmux session and on a pseudo-terminal that answers no queries. The
//! first screen must appear within about 2 s (polled up to 10 s on a loaded machine; the
//! measured time is printed), `q` must exit with status 0 and no error, and a key typed during
//! start-up must not be lost. Under tmux the default is half-blocks without a query.
//! The tmux tests are skipped (with a message) when tmux is not installed.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::tmux::{Tmux, exited, have_tmux, pane_cmd};

const BIN: &str = env!("CARGO_BIN_EXE_emdtui");
/// Fail only when the screen has not appeared by then (the machine may be loaded).
const GIVE_UP: Duration = Duration::from_secs(10);
/// What the issue asks for; a slower start is reported, not failed.
const EXPECTED: Duration = Duration::from_secs(2);

/// A small synthetic file made by the binary itself.
fn synth(dir: &Path, name: &str) -> PathBuf {
    let f = dir.join(name);
    let o = Command::new(BIN)
        .args(["synth", f.to_str().unwrap(), "--scan", "8x8", "--detector", "256", "--hdr"])
        .output()
        .expect("run emdtui synth");
    assert!(o.status.success(), "emdtui synth: {}", String::from_utf8_lossy(&o.stderr));
    f
}

fn report(what: &str, d: Duration) {
    eprintln!("{what}: {:.0} ms{}", d.as_secs_f64() * 1e3, if d > EXPECTED { " (slower than 2 s)" } else { "" });
}

/// `q` ends the program with status 0 and the shell's marker shows no error.
fn quit_cleanly(s: &Tmux) {
    s.send(&["q"]);
    let (t, _) = s.wait("exit marker after q", Instant::now(), GIVE_UP, |t| exited(t).is_some());
    assert_eq!(exited(&t), Some("EXITED rc=0"), "screen:\n{t}");
    assert!(!t.contains("error"), "error text on the screen:\n{t}");
}

#[test]
fn tmux_file_without_flags_shows_screen_and_quits() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "start_e2e.mib");
    let (s, t0) = Tmux::start("file", &pane_cmd(&dir.path().join("cache"), f.to_str().unwrap()));
    let (t, d) = s.wait("file screen", t0, GIVE_UP, |t| t.contains("start_e2e.mib") && t.contains("graphics:"));
    report("tmux, file, no flags: first screen after", d);
    assert!(exited(&t).is_none(), "exited early:\n{t}");
    // the screen is live: metadata and the first frame arrive without any key
    s.wait("metadata and frame", t0, GIVE_UP, |t| t.contains("scan 8 x 8") && t.contains("frame (4, 4)"));
    quit_cleanly(&s);
}

#[test]
fn tmux_demo_without_flags_shows_screen_and_quits() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (s, t0) = Tmux::start("demo", &pane_cmd(&cache, ""));
    let demo = emdtui::ops::demo::path(&cache, emdtui::ops::demo::Demo::FourD);
    let name = format!("{} (demo)", demo.file_name().unwrap().to_string_lossy());
    // generating the demo (about a second) comes first: measure from its end
    let (_, made) = s.wait("demo generation", t0, Duration::from_secs(60), |t| demo.exists() || t.contains("(demo)"));
    let t1 = Instant::now();
    let (t, d) = s.wait("demo screen", t1, GIVE_UP, |t| t.contains(&name));
    report(&format!("tmux, demo, no flags (generated in {:.1} s): first screen after", made.as_secs_f64()), d);
    assert!(exited(&t).is_none(), "exited early:\n{t}");
    quit_cleanly(&s);
}

#[test]
fn tmux_default_is_halfblocks_with_passthrough_hint() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "hb.mib");
    let cache = dir.path().join("cache");
    let (s, t0) = Tmux::start("hb", &pane_cmd(&cache, f.to_str().unwrap()));
    let (t, _) = s.wait("file screen", t0, GIVE_UP, |t| t.contains("hb.mib") && t.contains("graphics:"));
    assert!(t.contains("graphics: halfblocks"), "tmux default must be half-blocks:\n{t}");
    assert!(t.contains("allow-passthrough on"), "hint on how to get images:\n{t}");
    // images are drawn (as half-blocks) once the frame is there
    s.wait("half-block images", t0, GIVE_UP, |t| t.contains('▀'));
    quit_cleanly(&s);
    drop(s);

    // asking for a protocol overrides the default; the bounded query does not hang under tmux
    let (s, t0) = Tmux::start("sixel", &pane_cmd(&cache, &format!("--graphics sixel {}", f.display())));
    let (t, d) = s.wait("file screen", t0, GIVE_UP, |t| t.contains("hb.mib") && t.contains("graphics:"));
    report("tmux, --graphics sixel: first screen after", d);
    assert!(t.contains("graphics: sixel"), "forced protocol:\n{t}");
    quit_cleanly(&s);
}

/// The binary on a pseudo-terminal (120x40) as its session's controlling terminal, with a
/// plain-xterm environment (no tmux/screen variables, so the capability query is sent). The
/// master side is read into `out` by a thread; `answer` (if any) is written back, after the given
/// delay, when the query's closing status request (`ESC [ 5 n`) is seen.
struct Pty {
    child: Child,
    master: std::fs::File,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(args: &[&str], cache: &Path, answer: Option<(&'static [u8], Duration)>) -> (Pty, Instant) {
        let (mut m, mut s) = (-1, -1);
        let ws = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty fills two fds; the winsize is read only
        let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // the child must not inherit the master: it would keep its own terminal alive after the
        // test (a hung-up terminal ends emdtui)
        // SAFETY: fcntl on the fd openpty just returned
        unsafe { libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: fresh fds owned from here on
        let (master, slave) = unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("TMUX")
            .env_remove("STY")
            .env_remove("TERM_PROGRAM")
            .env_remove("WEZTERM_EXECUTABLE")
            .env_remove("KONSOLE_VERSION")
            .env("TERM", "xterm-256color")
            .env("EMDTUI_CACHE_DIR", cache)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let t0 = Instant::now();
        let child = cmd.spawn().expect("spawn emdtui on a pty");
        let out = Arc::new(Mutex::new(Vec::new()));
        {
            let out = out.clone();
            let mut rd = master.try_clone().unwrap();
            let wr = master.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut answered = false;
                // EIO once the child has exited and the slave is closed
                while let Ok(n) = rd.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut o = out.lock().unwrap();
                    o.extend_from_slice(&buf[..n]);
                    if let Some((a, delay)) = answer
                        && !answered
                        && o.windows(4).any(|w| w == b"\x1b[5n")
                    {
                        answered = true;
                        let mut wr = wr.try_clone().unwrap();
                        std::thread::spawn(move || {
                            std::thread::sleep(delay);
                            let _ = wr.write_all(a);
                        });
                    }
                }
            });
        }
        (Pty { child, master, out }, t0)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).to_string()
    }
    fn wait_for(&self, what: &str, since: Instant, needle: &str) -> Duration {
        loop {
            if self.text().contains(needle) {
                return since.elapsed();
            }
            if since.elapsed() > GIVE_UP {
                panic!("no {what} after {:.1} s; output:\n{:?}", since.elapsed().as_secs_f64(), self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn type_keys(&mut self, k: &[u8]) {
        self.master.write_all(k).unwrap();
    }
    /// Wait for the exit (killing the child after [`GIVE_UP`]); status and all output.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > GIVE_UP {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running {:.1} s after q; output:\n{:?}", GIVE_UP.as_secs_f64(), self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100)); // let the reader take the last bytes
        (st, self.text())
    }
}

fn assert_clean_exit(st: std::process::ExitStatus, out: &str) {
    assert!(st.success(), "exit status {st:?}; output:\n{out:?}");
    assert!(!out.contains("error"), "error text in the output:\n{out:?}");
}

#[test]
fn pty_that_answers_nothing_gets_screen_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "silent.mib");
    let (mut p, t0) = Pty::spawn(&[f.to_str().unwrap()], &dir.path().join("cache"), None);
    let d = p.wait_for("file screen", t0, "silent.mib");
    report("pty without answers, no flags: first screen after", d);
    p.wait_for("graphics mode", t0, "graphics: halfblocks");
    // stays up (no cursor-position error a few seconds later) and keeps drawing
    std::thread::sleep(Duration::from_millis(2000).saturating_sub(t0.elapsed()));
    assert!(p.child.try_wait().unwrap().is_none(), "exited without a key; output:\n{:?}", p.text());
    assert!(p.text().contains("did not answer"), "hint about the unanswered query:\n{:?}", p.text());
    p.type_keys(b"q");
    let (st, out) = p.finish();
    assert_clean_exit(st, &out);
}

#[test]
fn pty_key_typed_during_startup_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "early.mib");
    let (mut p, _) = Pty::spawn(&[f.to_str().unwrap()], &dir.path().join("cache"), None);
    // typed at once: before raw mode, or while the query waits for answers
    p.type_keys(b"q");
    let (st, out) = p.finish();
    assert_clean_exit(st, &out);
}

#[test]
fn pty_answering_sixel_terminal_gets_sixel() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "sixel.mib");
    // an xterm with sixel: device attributes with 4, cell size 10x20, status OK
    let answer: &[u8] = b"\x1b[?63;1;2;4;6;9;15;22c\x1b[6;20;10t\x1b[0n";
    let (mut p, t0) = Pty::spawn(&[f.to_str().unwrap()], &dir.path().join("cache"), Some((answer, Duration::ZERO)));
    let d = p.wait_for("file screen", t0, "sixel.mib");
    report("pty answering as a sixel xterm: first screen after", d);
    p.wait_for("graphics mode", t0, "graphics: sixel");
    p.type_keys(b"q");
    let (st, out) = p.finish();
    assert_clean_exit(st, &out);
}

#[test]
fn pty_answers_after_the_deadline_are_not_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "slow.mib");
    // a slow link: a kitty terminal's answers arrive 1.5 s late, after the query gave up
    let answer: &[u8] = b"\x1b_Gi=31;OK\x1b\\\x1b[?62;22c\x1b[6;20;10t\x1b[0n";
    let (mut p, t0) =
        Pty::spawn(&[f.to_str().unwrap()], &dir.path().join("cache"), Some((answer, Duration::from_millis(1500))));
    let d = p.wait_for("file screen", t0, "slow.mib");
    report("pty answering 1.5 s late: first screen after", d);
    p.wait_for("graphics mode", t0, "graphics: halfblocks");
    // the late answer arrives at about 1.5 s. Taken for keys, its `K` (cursor up by 10) and `=`
    // would redraw the panes; answers dropped, the screen is not touched (nothing else changes
    // an 8x8 file's screen by then)
    let len_at = |t: Duration| {
        std::thread::sleep(t.saturating_sub(t0.elapsed()));
        p.out.lock().unwrap().len()
    };
    let before = len_at(Duration::from_millis(1200));
    let after = len_at(Duration::from_millis(3000));
    eprintln!("output around the late answer: {before} -> {after} bytes");
    assert!(after - before < 64, "screen redrawn after the late answer ({before} -> {after} bytes):\n{:?}", p.text());
    assert!(p.child.try_wait().unwrap().is_none(), "exited on the late answer; output:\n{:?}", p.text());
    p.type_keys(b"q");
    let (st, out) = p.finish();
    assert_clean_exit(st, &out);
    assert!(!out.contains("Cancel and quit?") && !out.contains("converting"), "late answer taken for keys:\n{out:?}");
}
