//! Synthetic files of every depth (raw and processed, single chip and quad) decode back to what
//! was written; multi-file sets, truncated and growing files, differing headers.

use emdtui::dataset::{Dataset, FrameBuf, MibDataset, OpenOptions, ReadScratch};
use emdtui::format::synth::{self, SynthSpec};
use std::io::Write;
use std::path::Path;

fn spec(rows: usize, cols: usize, det: usize, depth: u8, raw: bool) -> SynthSpec {
    SynthSpec { rows, cols, det, depth, raw, hdr: true, seed: 7, ..Default::default() }
}

fn open(p: &Path) -> MibDataset {
    MibDataset::open(p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_depth_raw_and_processed_single_and_quad_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for det in [256, 512] {
        for depth in [1u8, 6, 12, 24] {
            for raw in [false, true] {
                let s = spec(3, 4, det, depth, raw);
                let p = dir.path().join(format!("d{det}_{depth}_{raw}.mib"));
                synth::write(&p, &s, &|_, _| {}).unwrap();
                let ds = open(&p);
                let i = ds.info();
                assert_eq!((i.scan.rows, i.scan.cols), (3, 4), "{p:?}: {}", i.scan.reason);
                assert_eq!(i.scan.reason, ".hdr ScanX/ScanY");
                assert_eq!((i.det_rows, i.det_cols), (det, det));
                assert_eq!(ds.set.header.is_raw(), raw);
                assert_eq!(ds.set.header.counter_depth(), Some(depth));
                assert_eq!(ds.set.header.num_chips, if det == 512 { 4 } else { 1 });
                let want_type = match depth {
                    1 | 6 => "uint8",
                    12 => "uint16",
                    _ => "uint32",
                };
                assert_eq!(i.pixel_type.name(), want_type);
                let mut buf = FrameBuf::new(i.pixel_type);
                ds.read_positions(0, 12, &mut buf, &mut ReadScratch::default()).unwrap();
                let got = buf.to_u32();
                let mut nonzero = 0;
                for pos in 0..12 {
                    let want = synth::expected_frame(&s, pos);
                    nonzero += want.iter().filter(|&&v| v > 0).count();
                    assert_eq!(&got[pos * det * det..(pos + 1) * det * det], &want[..], "{p:?} position {pos}");
                }
                assert!(nonzero > 1000, "{p:?}: synthetic frames are nearly empty");
                assert!(got.iter().all(|&v| v < (1u32 << depth)), "{p:?}: value beyond the counter depth");
            }
        }
    }
}

#[test]
fn synthetic_content_is_physical() {
    // the BF disk is the brightest region and it moves with the scan position
    let s = spec(8, 8, 256, 12, false);
    let com = |f: &[u32]| {
        let (mut t, mut y) = (0f64, 0f64);
        for (i, &v) in f.iter().enumerate() {
            if v > 150 {
                t += v as f64;
                y += v as f64 * (i / 256) as f64;
            }
        }
        y / t
    };
    let a = synth::expected_frame(&s, 0);
    let b = synth::expected_frame(&s, 2); // column 2: shifted disk in y
    let centre: u64 = a[128 * 256 + 128] as u64;
    let edge: u64 = a[5 * 256 + 5] as u64;
    assert!(centre > 100 && edge < 20, "centre {centre} edge {edge}");
    assert!((com(&a) - com(&b)).abs() > 1.0, "disk does not move: {} vs {}", com(&a), com(&b));
}

#[test]
fn multi_file_set_opens_as_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let s = SynthSpec { images_per_file: Some(5), ..spec(3, 4, 256, 6, false) };
    let paths = synth::write(&dir.path().join("scan.mib"), &s, &|_, _| {}).unwrap();
    assert_eq!(paths.len(), 3);
    assert!(paths[0].ends_with("scan1.mib") && paths[2].ends_with("scan3.mib"));
    // an unrelated file with the same pattern but its own sequence does not join
    let other = SynthSpec { rows: 1, cols: 2, ..s.clone() };
    let mut o =
        synth::write(&dir.path().join("x.mib"), &SynthSpec { images_per_file: None, ..other }, &|_, _| {}).unwrap();
    std::fs::rename(o.remove(0), dir.path().join("scan9.mib")).unwrap();
    // open from the second file: the set is ordered by sequence number
    let ds = open(&paths[1]);
    assert_eq!(ds.set.parts.len(), 3);
    assert_eq!(ds.set.n_frames(), 12);
    assert!(ds.info().warnings.iter().all(|w| !w.contains("scan9")));
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    ds.read_positions(0, 12, &mut buf, &mut ReadScratch::default()).unwrap();
    let got = buf.to_u32();
    for pos in [0, 4, 5, 9, 10, 11] {
        assert_eq!(&got[pos * 65536..(pos + 1) * 65536], &synth::expected_frame(&s, pos)[..], "position {pos}");
    }
}

#[test]
fn truncated_last_frame_is_dropped_with_warning_and_incomplete_scan_padded() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(3, 4, 256, 12, false);
    let p = dir.path().join("t.mib");
    synth::write(&p, &s, &|_, _| {}).unwrap();
    let stride = 384 + 2 * 65536;
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len((10 * stride + 1000) as u64).unwrap();
    let ds = open(&p);
    assert_eq!(ds.set.n_frames(), 10);
    assert!(
        ds.info().warnings.iter().any(|w| w.contains("truncated") && w.contains("t.mib")),
        "{:?}",
        ds.info().warnings
    );
    assert_eq!((ds.scan().rows, ds.scan().cols), (3, 4));
    assert_eq!(ds.positions_present(), 10);
    assert!(ds.scan().reason.contains("10 of 12"), "{}", ds.scan().reason);
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    ds.read_positions(8, 4, &mut buf, &mut ReadScratch::default()).unwrap();
    let got = buf.to_u32();
    assert_eq!(&got[..65536], &synth::expected_frame(&s, 8)[..]);
    assert!(got[2 * 65536..].iter().all(|&v| v == 0), "missing positions must be empty");
}

#[test]
fn growing_file_shows_new_frames_on_refresh_and_truncation_does_not_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(4, 4, 256, 6, false);
    let full = dir.path().join("full.mib");
    synth::write(&full, &s, &|_, _| {}).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let stride = 384 + 65536;
    let p = dir.path().join("live.mib");
    std::fs::write(&p, &bytes[..5 * stride]).unwrap();
    let ds = open(&p);
    let ds = MibDataset::open(&p, &OpenOptions { scan: Some((4, 4)), ..Default::default() }).unwrap_or(ds);
    assert_eq!(ds.positions_present(), 5);
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(&bytes[5 * stride..9 * stride + 100]).unwrap();
    f.flush().unwrap();
    assert_eq!(ds.refresh(), 9);
    assert_eq!(ds.frame_u32(8).unwrap(), synth::expected_frame(&s, 8));
    // truncate under the open reader: reads fail cleanly or return zeros, never crash
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(3 * stride as u64).unwrap();
    let e = ds.frame_u32(7).unwrap_err().to_string();
    assert!(e.contains("live.mib") && e.contains("beyond the end"), "{e}");
    assert_eq!(ds.refresh(), 3);
    assert!(ds.frame_u32(7).unwrap().iter().all(|&v| v == 0));
}

#[test]
fn frame_with_different_header_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(2, 4, 256, 12, false);
    let p = dir.path().join("h.mib");
    synth::write(&p, &s, &|_, _| {}).unwrap();
    let stride = 384 + 2 * 65536;
    let mut b = std::fs::read(&p).unwrap();
    // frame 4 claims another bit depth in its header (same size): reported, not silently used
    let off = 4 * stride;
    let h = String::from_utf8_lossy(&b[off..off + 384]).replace(",U16,", ",U08,");
    b[off..off + 384].copy_from_slice(h.as_bytes());
    std::fs::write(&p, &b).unwrap();
    let ds = open(&p);
    assert!(ds.info().warnings.iter().any(|w| w.contains("frame 4 header differs")), "{:?}", ds.info().warnings);
    // frame 7 with a broken magic: frames differ in size -> error at open
    let off = 7 * stride;
    b[off..off + 4].copy_from_slice(b"XXXX");
    std::fs::write(&p, &b).unwrap();
    let e = MibDataset::open(&p, &OpenOptions::default()).err().unwrap().to_string();
    assert!(e.contains("h.mib") && e.contains("frame 7"), "{e}");
}

#[test]
fn scan_shape_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = SynthSpec { hdr: false, ..spec(3, 5, 256, 6, false) };
    let p = dir.path().join("n.mib");
    synth::write(&p, &s, &|_, _| {}).unwrap();
    // no .hdr: timestamp gaps at line starts give the scan
    let ds = open(&p);
    assert_eq!((ds.scan().rows, ds.scan().cols), (3, 5), "{}", ds.scan().reason);
    assert!(ds.scan().reason.starts_with("timestamp gaps"));
    assert!(ds.info().warnings.iter().any(|w| w.contains("no .hdr")));
    // explicit wins
    let ds = MibDataset::open(&p, &OpenOptions { scan: Some((5, 3)), ..Default::default() }).unwrap();
    assert_eq!((ds.scan().rows, ds.scan().cols, ds.scan().reason.as_str()), (5, 3, "--scan given"));
    // skip + flyback: 3 rows of 5 frames read as 3 rows of 4 positions after skipping 1 frame
    let ds =
        MibDataset::open(&p, &OpenOptions { scan: Some((2, 4)), skip_frames: 1, flyback: 1, ..Default::default() })
            .unwrap();
    assert_eq!(ds.scan().frame_of(4), 6);
    assert_eq!(ds.frame_u32(4).unwrap(), synth::expected_frame(&s, 6));
}
