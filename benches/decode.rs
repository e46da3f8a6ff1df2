//! Decode throughput per pixel format (one frame, in memory). `cargo bench --bench decode`.

use divan::counter::BytesCount;
use emdtui::format::mib::{self, FrameHeader, PixelType};
use emdtui::format::synth::{self, SynthSpec};
use std::path::Path;

fn main() {
    divan::main();
}

const CASES: &[(&str, usize, u8, bool)] = &[
    ("U08-256", 256, 6, false),
    ("U16-256", 256, 12, false),
    ("U32-256", 256, 24, false),
    ("U16-512", 512, 12, false),
    ("R64-1bit-256", 256, 1, true),
    ("R64-6bit-256", 256, 6, true),
    ("R64-12bit-256", 256, 12, true),
    ("R64-24bit-256", 256, 24, true),
    ("R64-12bit-quad", 512, 12, true),
];

fn frame(det: usize, depth: u8, raw: bool) -> (FrameHeader, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("b.mib");
    let spec = SynthSpec { rows: 1, cols: 1, det, depth, raw, hdr: false, ..Default::default() };
    synth::write(&p, &spec, &|_, _| {}).unwrap();
    let b = std::fs::read(&p).unwrap();
    let h = mib::parse_header(Path::new("b.mib"), &b).unwrap();
    let payload = b[h.header_bytes..h.stride()].to_vec();
    (h, payload)
}

#[divan::bench(args = CASES.iter().map(|c| c.0))]
fn decode(bencher: divan::Bencher, name: &str) {
    let &(_, det, depth, raw) = CASES.iter().find(|c| c.0 == name).unwrap();
    let (h, payload) = frame(det, depth, raw);
    let mut scratch = Vec::new();
    let n = h.rows * h.cols;
    let (mut o8, mut o16, mut o32) = (vec![0u8; n], vec![0u16; n], vec![0u32; n]);
    bencher.counter(BytesCount::new(payload.len())).bench_local(|| match h.pixel_type {
        PixelType::U8 => mib::decode_into(&h, divan::black_box(&payload), &mut o8, &mut scratch).unwrap(),
        PixelType::U16 => mib::decode_into(&h, divan::black_box(&payload), &mut o16, &mut scratch).unwrap(),
        PixelType::U32 => mib::decode_into(&h, divan::black_box(&payload), &mut o32, &mut scratch).unwrap(),
    });
}
