//! Timing harness (not a test): time per arrow-key step (update + image preparation + draw)
//! and the bytes one step writes to the terminal, for half-blocks, braille and sixel, on a
//! 512x512 quad synthetic file.
//!
//! usage: cargo run --release --example tui_bench [FILE.mib] [COLSxROWS]
//! (without FILE a 24x24-scan quad file is written to a temporary directory)

use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::KeyCode;
use ratatui_image::picker::ProtocolType;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Clone)]
struct Counter(Arc<AtomicU64>);
impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of this thread (ms): wall time is unreliable on a shared, loaded machine.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock id is valid
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tmp = tempfile::tempdir()?;
    let file = match args.get(1) {
        Some(f) => f.into(),
        None => {
            let f = tmp.path().join("quad.mib");
            let spec = emdtui::format::synth::SynthSpec {
                rows: 24,
                cols: 24,
                det: 512,
                depth: 12,
                hdr: true,
                ..Default::default()
            };
            emdtui::format::synth::write(&f, &spec, &|_, _| {})?;
            f
        }
    };
    let (w, h) = args
        .get(2)
        .and_then(|s| emdtui::dataset::scan::parse_rxc(s))
        .map(|(a, b)| (a as u16, b as u16))
        .unwrap_or((160, 48));
    println!("file {}  terminal {w}x{h}", file.display());
    for g in [Graphics::Halfblocks, Graphics::Braille, Graphics::Protocol(ProtocolType::Sixel)] {
        let count = Arc::new(AtomicU64::new(0));
        let backend = CrosstermBackend::new(Counter(count.clone()));
        let mut hs = Harness::with_backend(&file, backend, g, true)?;
        hs.terminal.resize(ratatui::layout::Rect::new(0, 0, w, h))?;
        hs.settle(std::time::Duration::from_secs(120));
        hs.draw();
        let n = 40;
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        count.store(0, Ordering::Relaxed);
        for i in 0..n {
            let t = Instant::now();
            let c = cpu_ms();
            hs.key(if (i / 10) % 2 == 0 { KeyCode::Right } else { KeyCode::Left });
            hs.draw();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(cpu_ms() - c);
        }
        let bytes = count.load(Ordering::Relaxed) as f64 / n as f64;
        // the same steps again: frames now come from the LRU (no decode)
        let mut warm = Vec::new();
        let mut warm_cpu = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            let c = cpu_ms();
            hs.key(if (i / 10) % 2 == 0 { KeyCode::Right } else { KeyCode::Left });
            hs.draw();
            warm.push(t.elapsed().as_secs_f64() * 1e3);
            warm_cpu.push(cpu_ms() - c);
        }
        for v in [&mut times, &mut warm, &mut cpu, &mut warm_cpu] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "{:<10} step (decode+update+prepare+draw): wall median {:.2} ms (max {:.2}), CPU median {:.2} ms | cached frame: wall {:.2} ms, CPU {:.2} ms | {:.0} bytes/step ({:.1} KiB)",
            g.name(),
            times[n / 2],
            times[n - 1],
            cpu[n / 2],
            warm[n / 2],
            warm_cpu[n / 2],
            bytes,
            bytes / 1024.0
        );
    }
    Ok(())
}
