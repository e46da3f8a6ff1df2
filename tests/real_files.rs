//! Every real Merlin file in ../shared/testdata/mib matches ground_truth.json bit for bit.

mod common;

use common::testdata;
use emdtui::dataset::{Dataset, FrameBuf, MibDataset, OpenOptions, ReadScratch};
use md5::{Digest, Md5};
use serde_json::Value;
use std::path::PathBuf;

fn ground_truth() -> (PathBuf, serde_json::Map<String, Value>) {
    let dir = testdata();
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("ground_truth.json")).unwrap()).unwrap();
    (dir, v["files"].as_object().unwrap().clone())
}

fn u32le(buf: &FrameBuf) -> Vec<u8> {
    buf.to_u32().iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn every_real_file_matches_ground_truth() {
    let (dir, files) = ground_truth();
    assert!(files.len() >= 32, "expected the 32 real files, found {}", files.len());
    let mut checked = 0;
    for (name, gt) in &files {
        let path = dir.join(name);
        let before = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let ds = MibDataset::open(&path, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let info = ds.info();
        let n = gt["n_frames"].as_u64().unwrap() as usize;
        assert_eq!(ds.set.n_frames(), n, "{name}: frame count");
        let sig: Vec<usize> =
            gt["signal_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!((info.det_rows, info.det_cols), (sig[0], sig[1]), "{name}: signal shape");
        assert_eq!(info.pixel_type.name(), gt["dtype"].as_str().unwrap(), "{name}: dtype");

        // header fields
        let h = &ds.set.header;
        let gh = &gt["frame0_header"];
        assert_eq!(h.sequence, gh["sequence"].as_u64().unwrap(), "{name}");
        assert_eq!(h.header_bytes as u64, gh["header_bytes"].as_u64().unwrap(), "{name}");
        assert_eq!(h.num_chips as u64, gh["num_chips"].as_u64().unwrap(), "{name}");
        assert_eq!(h.width as u64, gh["width"].as_u64().unwrap(), "{name}");
        assert_eq!(h.height as u64, gh["height"].as_u64().unwrap(), "{name}");
        assert_eq!(h.pixel_depth, gh["pixel_depth"].as_str().unwrap(), "{name}");
        assert_eq!(h.layout, gh["layout"].as_str().unwrap(), "{name}");
        assert_eq!(h.chip_select as u64, gh["chip_select"].as_u64().unwrap(), "{name}");
        assert_eq!(h.timestamp, gh["timestamp"].as_str().unwrap(), "{name}");
        assert!((h.shutter_s - gh["shutter_s"].as_f64().unwrap()).abs() < 1e-12, "{name}");
        assert_eq!(h.counter as u64, gh["counter"].as_u64().unwrap(), "{name}");
        assert_eq!(h.colour_mode as u64, gh["colour_mode"].as_u64().unwrap(), "{name}");
        assert_eq!(h.gain_mode as u64, gh["gain_mode"].as_u64().unwrap(), "{name}");
        let th: Vec<f64> = gh["thresholds_keV"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(h.thresholds_kev, th, "{name}: thresholds");
        assert_eq!(h.dac_blocks.len() as u64, gh["dac_blocks"].as_u64().unwrap(), "{name}: DAC blocks");
        if let Some(d) = gh.get("dacs_chip1") {
            let want: Vec<u32> = d.as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect();
            assert_eq!(h.dac_blocks[0].1, want, "{name}: DACs of chip 1");
        }
        assert_eq!(h.mq1a_timestamp.as_deref(), gh["mq1a_timestamp"].as_str(), "{name}");
        assert_eq!(h.mq1a_shutter_ns, gh["mq1a_shutter_ns"].as_u64(), "{name}");
        assert_eq!(h.mq1a_counter_depth.map(|d| d as u64), gh["mq1a_counter_depth"].as_u64(), "{name}");

        // scan shape
        let known: Vec<usize> = gt["navigation_shape"]["known"]["array_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let want = match known.len() {
            0 => (1, 1),
            1 => (1, known[0]),
            _ => (known[0], known[1]),
        };
        assert_eq!((info.scan.rows, info.scan.cols), want, "{name}: scan shape ({})", info.scan.reason);

        // pixels
        let mut buf = FrameBuf::new(info.pixel_type);
        let mut scratch = ReadScratch::default();
        let npx = info.det_rows * info.det_cols;
        let mut all = Md5::new();
        let mut total: u64 = 0;
        let mut max: u32 = 0;
        let sums: Vec<u64> = gt["per_frame_sums"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert!(sums.len() >= n, "{name}: {} per-frame sums for {n} frames", sums.len());
        for (f, &want) in sums.iter().enumerate().take(n) {
            ds.set.decode_frames_buf(f, 1, &mut buf, &mut scratch.mib).unwrap();
            assert_eq!(buf.len(), npx);
            let s: u64 = buf.to_u32().iter().map(|&v| v as u64).sum();
            assert_eq!(s, want, "{name}: sum of frame {f}");
            total += s;
            max = max.max(buf.to_u32().into_iter().max().unwrap());
            let bytes = u32le(&buf);
            if f == 0 {
                let d = format!("{:x}", Md5::digest(&bytes));
                assert_eq!(d, gt["frame0_md5_u32le_stored"].as_str().unwrap(), "{name}: md5 of frame 0");
            }
            all.update(&bytes);
        }
        assert_eq!(total, gt["sum"].as_u64().unwrap(), "{name}: total");
        assert_eq!(max as u64, gt["max"].as_u64().unwrap(), "{name}: max");
        assert_eq!(
            format!("{:x}", all.finalize()),
            gt["all_frames_md5_u32le_stored"].as_str().unwrap(),
            "{name}: md5 of all frames"
        );

        // via the dataset interface (scan positions) too
        ds.read_positions(0, info.scan.positions().min(n), &mut buf, &mut scratch).unwrap();
        let s: u64 = buf.to_u32().iter().map(|&v| v as u64).sum();
        assert_eq!(s, sums[..info.scan.positions().min(n)].iter().sum::<u64>(), "{name}: positions");

        // memory-mapped reads give the same frames
        let mm = MibDataset::open(&path, &OpenOptions { mmap: true, ..Default::default() }).unwrap();
        assert!(mm.set.is_mmap());
        let mut b2 = FrameBuf::new(info.pixel_type);
        ds.set.decode_frames_buf(0, n, &mut buf, &mut scratch.mib).unwrap();
        mm.set.decode_frames_buf(0, n, &mut b2, &mut scratch.mib).unwrap();
        assert_eq!(buf.to_u32(), b2.to_u32(), "{name}: mmap vs pread");

        // never written to
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name}: file changed");
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime, "{name}: mtime changed");
        checked += 1;
    }
    assert_eq!(checked, files.len());
}

#[test]
fn hot_pixel_at_known_position() {
    let (dir, _) = ground_truth();
    for (f, rows) in [
        ("rosettasciio/002_merlin_test_roi_sig256x128_nav4x2_hot_pixel_52x_39y.mib", 128),
        ("rosettasciio/003_merlin_test_roi_sig256x64_nav4x2_hot_pixel_52x_39y.mib", 64),
    ] {
        let ds = MibDataset::open(&dir.join(f), &OpenOptions::default()).unwrap();
        assert_eq!(ds.info().det_rows, rows);
        let fr = ds.frame_u32(0).unwrap();
        let (i, _) = fr.iter().enumerate().max_by_key(|(_, v)| **v).unwrap();
        assert_eq!((i / 256, i % 256), (39, 52), "{f}");
    }
}
