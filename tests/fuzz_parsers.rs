//! Property-based fuzzing of the MIB frame-header parser, the `.hdr` parser and whole-file opening
//! (CI-sized: a few thousand cases each). Long runs: `PROPTEST_CASES=200000 cargo test --release
//! --test fuzz_parsers`, or the cargo-fuzz targets in `fuzz/`.

use emdtui::dataset::{Dataset, MibDataset, OpenOptions};
use emdtui::format::{hdr, mib};
use proptest::prelude::*;
use std::path::Path;

const REAL_HEADER: &str = "MQ1,000001,00384,01,0256,0256,U08,   1x1,01,2021-05-07 18:51:10.905800,0.100000,0,0,0,4.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,3RX,068,511,000,000,000,000,000,000,100,255,100,125,100,100,080,100,090,030,128,004,255,126,128,174,172,511,511,MQ1A,2021-05-07T16:51:10.905800928Z,100000000ns,6,";

fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(i, v) in edits {
        let n = b.len();
        if n > 0 {
            b[i % n] = v;
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

/// CI-sized by default; `PROPTEST_CASES=N` for a long run.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    #[test]
    fn header_parser_never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let p = Path::new("fuzz.mib");
        let _ = mib::header_length(p, &b);
        let _ = mib::parse_header(p, &b);
    }

    #[test]
    fn header_parser_never_panics_on_mutated_real_header(
        edits in proptest::collection::vec((0usize..400, prop_oneof![Just(b','), Just(b'0'), Just(b'9'), Just(0u8), any::<u8>()]), 0..8),
        cut in proptest::option::of(0usize..400),
    ) {
        let mut base = REAL_HEADER.as_bytes().to_vec();
        base.resize(384, 0);
        let b = mutate(&base, &edits, cut);
        if let Ok(h) = mib::parse_header(Path::new("fuzz.mib"), &b) {
            // whatever parses must be self-consistent and decodable
            prop_assert!(h.rows > 0 && h.cols > 0);
            let payload = vec![0x5au8; h.payload_bytes];
            let mut scratch = Vec::new();
            let r = match h.pixel_type {
                mib::PixelType::U8 => mib::decode_into(&h, &payload, &mut vec![0u8; h.rows * h.cols], &mut scratch),
                mib::PixelType::U16 => mib::decode_into(&h, &payload, &mut vec![0u16; h.rows * h.cols], &mut scratch),
                mib::PixelType::U32 => mib::decode_into(&h, &payload, &mut vec![0u32; h.rows * h.cols], &mut scratch),
            };
            prop_assert!(r.is_ok() || h.storage == mib::Storage::U64);
        }
    }

    #[test]
    fn hdr_parser_never_panics(
        lines in proptest::collection::vec("[ -~\\t\u{b5}]{0,60}", 0..30),
        raw in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let text = format!("HDR,\t\r\n{}\r\nEnd\t   ", lines.join("\r\n"));
        let h = hdr::parse(Path::new("fuzz.hdr"), text.as_bytes());
        prop_assert!(h.is_ok());
        let _ = hdr::parse(Path::new("fuzz.hdr"), &raw);
    }

    #[test]
    fn opening_mutated_files_never_panics(
        edits in proptest::collection::vec((0usize..3000, any::<u8>()), 0..6),
        cut in proptest::option::of(0usize..4000),
    ) {
        // a 4-frame single-chip U08 file of 64 rows
        let mut frame = REAL_HEADER.replace("0256,U08", "0064,U08").into_bytes();
        frame.resize(384, 0);
        frame.extend(std::iter::repeat_n(3u8, 256 * 64));
        let file: Vec<u8> = frame.repeat(4);
        let b = mutate(&file, &edits, cut);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.mib");
        std::fs::write(&p, &b).unwrap();
        if let Ok(ds) = MibDataset::open(&p, &OpenOptions::default()) {
            for i in 0..ds.scan().positions() {
                let _ = ds.frame_u32(i);
            }
        }
    }
}
