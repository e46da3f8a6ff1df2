//! Bad input gets one clear error line naming the file and the problem, a non-zero exit code and
//! no panic; `info` and `export` work on good files.

mod common;

use common::emdtui;
use emdtui::format::synth::{self, SynthSpec};
use std::path::Path;

/// Run and expect failure: returns stderr, checks it is one line naming `needle`s.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = emdtui().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
    err
}

fn good_file(dir: &Path) -> std::path::PathBuf {
    common::synth(dir, "good.mib", &SynthSpec { rows: 2, cols: 3, depth: 12, ..Default::default() })
}

#[test]
fn bad_mib_files_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let w = |name: &str, b: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, b).unwrap();
        p.to_str().unwrap().to_string()
    };
    let empty = w("empty.mib", b"");
    let err = fails(&["info", &empty], &["empty.mib", "empty file"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let random: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fails(&["info", &w("random.mib", &random)], &["random.mib", "not a Merlin"]);
    fails(&["info", &w("text.mib", b"hello, this is a text file\n")], &["text.mib", "not a Merlin"]);

    let good = good_file(d.path());
    let bytes = std::fs::read(&good).unwrap();
    // header length field that lies (larger than the file)
    let mut lie = bytes[..2000].to_vec();
    lie[11..16].copy_from_slice(b"99000");
    fails(&["info", &w("lie.mib", &lie)], &["lie.mib", "cut short"]);
    let mut lie2 = bytes.clone();
    lie2[11..16].copy_from_slice(b"00012");
    fails(&["info", &w("lie2.mib", &lie2)], &["lie2.mib", "implausible"]);
    // header cut in the middle
    fails(&["info", &w("cut.mib", &bytes[..200])], &["cut.mib"]);
    // a whole header but less than one frame of pixels
    fails(&["info", &w("short.mib", &bytes[..1000])], &["short.mib", "less than one whole frame"]);
    // unsupported encodings are refused, never decoded wrongly
    let mut u01 = bytes.clone();
    let h = String::from_utf8_lossy(&u01[..384]).replace(",U16,", ",U01,");
    u01[..384].copy_from_slice(h.as_bytes());
    fails(&["info", &w("u01.mib", &u01)], &["u01.mib", "not supported yet", "U01"]);
    let mut colour = bytes.clone();
    let h = String::from_utf8_lossy(&colour[..384]).replacen(",0,0,0,", ",0,1,0,", 1);
    colour[..384].copy_from_slice(h.as_bytes());
    fails(&["info", &w("colour.mib", &colour)], &["colour.mib", "not supported yet", "colour"]);
    // alternating counters (real files do this in continuous read/write): a warning, frames kept
    let mut two = bytes.clone();
    let stride = 384 + 2 * 65536;
    let h = String::from_utf8_lossy(&two[stride..stride + 384]).replacen(",0,0,0,", ",1,0,0,", 1);
    two[stride..stride + 384].copy_from_slice(h.as_bytes());
    let out = emdtui().args(["info", &w("two.mib", &two)]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("alternating counters"));
    // paths
    fails(&["info", "/nonexistent/dir/x.mib"], &["/nonexistent/dir/x.mib", "No such file"]);
    fails(&["info", d.path().to_str().unwrap()], &["is a directory"]);
    // unreadable (running as root, permissions do not stop us: a path through a regular file)
    let through = format!("{}/inside.mib", good.display());
    fails(&["info", &through], &["good.mib/inside.mib", "Not a directory"]);
}

#[test]
fn missing_or_garbage_hdr_is_a_warning_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    let p = good_file(d.path());
    std::fs::remove_file(p.with_extension("hdr")).unwrap();
    let out = emdtui().args(["info", p.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("no .hdr acquisition header"), "{s}");
    std::fs::write(
        p.with_extension("hdr"),
        b"HDR,\r\nScanX:\tbanana\r\nScanY:\t-1\r\nCounter Depth (number):\t99\r\nEnd",
    )
    .unwrap();
    let out = emdtui().args(["info", p.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = j["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().contains("good.hdr") && w.as_str().unwrap().contains("ScanX")),
        "{warnings:?}"
    );
    std::fs::write(p.with_extension("hdr"), b"\x00\x01\x02 not a header").unwrap();
    let out = emdtui().args(["info", p.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a Merlin acquisition header"));
}

#[test]
fn wrong_flags_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = good_file(d.path());
    let f = p.to_str().unwrap();
    fails(&["info", f, "--scan", "0x3"], &["--scan", "ROWSxCOLS"]);
    fails(&["info", f, "--scan", "banana"], &["--scan"]);
    fails(&["info", f, "--bogus"], &["--bogus"]);
    fails(
        &["export", f, "--frame", "99", "-o", d.path().join("x.npy").to_str().unwrap()],
        &["good.mib", "outside the scan"],
    );
    fails(&["export", f, "--frame", "0", "-o", "/nonexistent/dir/x.npy"], &["/nonexistent/dir", "does not exist"]);
    fails(
        &["export", f, "--frame", "0", "-o", d.path().join("x.jpg").to_str().unwrap()],
        &["x.jpg", "unknown output format"],
    );
    fails(&["export", f, "--at", "5,0", "-o", d.path().join("x.npy").to_str().unwrap()], &["outside"]);
    fails(&["synth", d.path().join("s.mib").to_str().unwrap(), "--depth", "7"], &["--depth 7"]);
    assert!(std::fs::read_dir(d.path()).unwrap().all(|e| {
        let n = e.unwrap().file_name();
        let n = n.to_string_lossy();
        n.starts_with("good.") && !n.contains("part")
    }));
}

#[test]
fn info_json_and_export_on_good_file() {
    let d = tempfile::tempdir().unwrap();
    let p = good_file(d.path());
    let f = p.to_str().unwrap();
    let out = emdtui().args(["info", f, "--json"]).output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["frames"], 6);
    assert_eq!(j["scan"]["rows"], 2);
    assert_eq!(j["scan"]["cols"], 3);
    assert_eq!(j["dtype"], "uint16");
    assert_eq!(j["counter_depth"], 12);
    assert_eq!(j["raw"], false);
    assert_eq!(j["detector"]["rows"], 256);
    assert_eq!(j["header"]["header_bytes"], 384);
    assert_eq!(j["hdr"]["ScanX"], "3");
    // npy: exact counts in the native dtype
    let npy = d.path().join("f.npy");
    emdtui().args(["export", f, "--at", "1,2", "-o", npy.to_str().unwrap()]).assert().success();
    let b = std::fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = String::from_utf8_lossy(&b[10..10 + header_len]);
    assert!(header.contains("'descr': '<u2'") && header.contains("(256, 256)"), "{header}");
    let vals: Vec<u32> =
        b[10 + header_len..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect();
    let spec = SynthSpec { rows: 2, cols: 3, depth: 12, ..Default::default() };
    assert_eq!(vals, synth::expected_frame(&spec, 5));
    // tiff and png exist and are non-trivial
    for ext in ["tiff", "png"] {
        let o = d.path().join(format!("f.{ext}"));
        emdtui().args(["export", f, "--frame", "5", "-o", o.to_str().unwrap(), "--scale", "log"]).assert().success();
        assert!(std::fs::metadata(&o).unwrap().len() > 1000);
    }
    let img = image::open(d.path().join("f.png")).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (256, 256));
}
