//! Decode every frame of a file once (parallel over blocks of frames, bounded memory) and report
//! throughput. Used by `scripts/bench-read` to compare with `cat FILE > /dev/null`.
//! Usage: cargo run --release --example readpass -- FILE [BLOCK_FRAMES]

use emdtui::dataset::{self, FrameBuf, OpenOptions, ReadScratch};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(1).expect("usage: readpass FILE [BLOCK]"));
    let t0 = std::time::Instant::now();
    let ds =
        dataset::open(&path, &OpenOptions { mmap: std::env::var_os("EMDTUI_MMAP").is_some(), ..Default::default() })
            .unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1)
            });
    // blocks of ~512 KiB stay in the L2 cache between the read and the decode
    let frame_bytes = ds.frame_pixels() * ds.info().pixel_type.bytes();
    let block: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or((512 << 10) / frame_bytes.max(1)).max(1);
    let n = ds.positions_present();
    let checksum = AtomicU64::new(0);
    let blocks: Vec<usize> = (0..n).step_by(block).collect();
    blocks.par_iter().for_each_init(
        || (FrameBuf::new(ds.info().pixel_type), ReadScratch::default()),
        |(buf, scratch), &start| {
            let c = block.min(n - start);
            ds.read_positions(start, c, buf, scratch).unwrap();
            // touch the decoded data so nothing is optimised away
            let s = emdtui::with_frames!(buf, v => v.iter().step_by(61).map(|&x| x as u64).sum::<u64>());
            checksum.fetch_add(s, Ordering::Relaxed);
        },
    );
    let dt = t0.elapsed().as_secs_f64();
    let bytes = ds.info().bytes_on_disk as f64;
    println!(
        "{} frames, {:.2} GB in {:.3} s = {:.2} GB/s (checksum {})",
        n,
        bytes / 1e9,
        dt,
        bytes / 1e9 / dt,
        checksum.load(Ordering::Relaxed)
    );
}
