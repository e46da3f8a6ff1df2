//! A `.mib` truncated while it is read through memory-map windows ends the process with an
//! error that names the file (the handler in `emdtui::sigbus`), not a bare SIGBUS crash.
//! The test re-runs itself as a child process, which maps, truncates and reads.

use emdtui::dataset::{self, FrameBuf, OpenOptions, ReadScratch};
use emdtui::format::synth::{self, SynthSpec};
use std::process::Command;

const CHILD: &str = "EMDTUI_SIGBUS_CHILD";

fn child(path: &std::path::Path) {
    let ds = dataset::open(path, &OpenOptions { mmap: true, ..Default::default() }).unwrap();
    let n = ds.positions_present();
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    let mut scratch = ReadScratch::default();
    // the first read maps a window that covers the whole (small) file
    ds.read_positions(0, 1, &mut buf, &mut scratch).unwrap();
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(1000).unwrap();
    let _ = ds.read_positions(n - 1, 1, &mut buf, &mut scratch);
    // not reached: the read above touches pages past the new end of the file
    println!("CHILD SURVIVED");
}

#[test]
fn truncated_mapped_file_is_a_clear_error() {
    if let Some(p) = std::env::var_os(CHILD) {
        child(std::path::Path::new(&p));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shrinks.mib");
    synth::write(&p, &SynthSpec { rows: 8, cols: 8, depth: 12, hdr: false, ..Default::default() }, &|_, _| {}).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "truncated_mapped_file_is_a_clear_error", "--nocapture", "--test-threads=1"])
        .env(CHILD, &p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("CHILD SURVIVED"), "the read past the end should not return");
    assert_eq!(out.status.code(), Some(1), "exit status 1 (not a signal); stderr: {stderr}");
    assert!(stderr.contains(&*p.to_string_lossy()), "names the file: {stderr}");
    assert!(stderr.contains("shrank while it was read through a memory map"), "says what happened: {stderr}");
}
