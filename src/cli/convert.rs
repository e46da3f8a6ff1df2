//! `emdtui convert`.

use crate::cli::{Cli, ConvertArgs};
use crate::compute::convert::{self, ConvertOptions};
use crate::jobs::Progress;
use anyhow::{Context, Result, anyhow};

/// Parse `R0:R1,C0:C1`.
pub fn parse_crop(s: &str) -> Result<((usize, usize), (usize, usize))> {
    let bad = || anyhow!("--crop {s:?}: expected R0:R1,C0:C1 (half-open scan ranges), e.g. 0:64,16:80");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let range = |t: &str| -> Result<(usize, usize)> {
        let (x, y) = t.split_once(':').ok_or_else(bad)?;
        Ok((x.trim().parse().map_err(|_| bad())?, y.trim().parse().map_err(|_| bad())?))
    };
    Ok((range(a)?, range(b)?))
}

pub fn run(a: &ConvertArgs, cli: &Cli) -> Result<()> {
    let opts = cli.open.batch_options(cli.memory_budget()?)?;
    let ds = crate::dataset::open(&a.input, &opts)?;
    for w in &ds.info().warnings {
        eprintln!("warning: {w}");
    }
    let out = a.output.clone().unwrap_or_else(|| convert::default_output(&a.input));
    if out == a.input {
        anyhow::bail!("{}: the output would overwrite the input; choose another -o", out.display());
    }
    let copts = ConvertOptions {
        compress: a.compress,
        bin_detector: a.bin_detector,
        bin_scan: a.bin_scan,
        crop: a.crop.as_deref().map(parse_crop).transpose()?,
        memory_budget: cli.memory_budget()?,
        force: a.force,
    };
    let r = convert_with_bar(ds.as_ref(), &out, &copts).with_context(|| format!("converting {}", a.input.display()))?;
    let mb = |b: u64, s: f64| b as f64 / s.max(1e-9) / (1024.0 * 1024.0);
    println!(
        "wrote {}: {} positions, {} read, {} written in {:.2} s ({:.0} MiB/s read, {:.0} MiB/s written)",
        r.output.display(),
        r.positions,
        humansize::format_size(r.bytes_read, humansize::BINARY),
        humansize::format_size(r.bytes_written, humansize::BINARY),
        r.seconds,
        mb(r.bytes_read, r.seconds),
        mb(r.bytes_written, r.seconds)
    );
    Ok(())
}

/// Run a conversion with a progress bar on stderr.
pub fn convert_with_bar(
    ds: &dyn crate::dataset::Dataset,
    out: &std::path::Path,
    copts: &ConvertOptions,
) -> crate::Result<convert::ConvertReport> {
    let progress = Progress::new("convert", ds.scan().positions() as u64);
    progress.set_state(crate::jobs::JobState::Running);
    let pb = crate::cli::progress::frames_bar(progress.total(), "convert");
    let res = crate::cli::progress::drive(
        std::time::Duration::from_millis(100),
        || {
            pb.set_length(progress.total());
            pb.set_position(progress.done());
        },
        || convert::convert(ds, out, copts, &progress),
    );
    pb.finish_and_clear();
    res.map(|mut r| {
        r.positions = progress.done();
        r
    })
}
