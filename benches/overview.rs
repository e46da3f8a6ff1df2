//! Overview kernel throughput on in-memory frames (no IO): `cargo bench --bench overview`.

use emdtui::compute::overview::{Accumulator, Geometry, Overviews, default_geometry};
use emdtui::dataset::FrameBuf;

fn main() {
    divan::main();
}

fn setup(det: usize, n: usize) -> (Geometry, FrameBuf, Overviews) {
    let g = default_geometry(det, det);
    let mut s = 12345u64;
    let v: Vec<u16> = (0..det * det * n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 4096) as u16
        })
        .collect();
    let o = Overviews {
        scan_rows: 1,
        scan_cols: n,
        det_rows: det,
        det_cols: det,
        geometry: g.clone(),
        sum: vec![0.0; n],
        bf: vec![0.0; n],
        adf: vec![0.0; n],
        com_x: vec![0.0; n],
        com_y: vec![0.0; n],
        mask: None,
        mean_dp: vec![],
        max_dp: vec![],
        positions_done: 0,
        complete: false,
    };
    (g, FrameBuf::U16(v), o)
}

/// 8 frames of 256x256 u16 (1 MiB) per iteration.
#[divan::bench]
fn kernel_u16_256(b: divan::Bencher) {
    let (g, buf, mut o) = setup(256, 8);
    let mut acc = Accumulator::new(&g, 256, 256, None);
    b.counter(divan::counter::BytesCount::new(buf.len() * 2)).bench_local(|| acc.add(0, &buf, &mut o));
}

/// One frame of 256x256 u16 per public `add` call: includes the flush of the pattern sums into
/// `dp_sum` (f64) that every `add` does (`compute` flushes only once per worker).
#[divan::bench]
fn kernel_u16_256_single_frame(b: divan::Bencher) {
    let (g, buf, mut o) = setup(256, 1);
    let mut acc = Accumulator::new(&g, 256, 256, None);
    b.counter(divan::counter::BytesCount::new(buf.len() * 2)).bench_local(|| acc.add(0, &buf, &mut o));
}
