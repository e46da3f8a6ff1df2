//! Before `F` computes: the FFT workflow's estimate (`ops::fft_estimate`: output and scratch
//! sizes, free space, memory at the budget; no timing sample, so the viewer never waits). When
//! it fits, the FFT starts with the estimate on the status line; when it does not, a question.

use crate::ops::fft::FftWant;
use crate::ops::fft_estimate::{EstimateRequest, FftEstimate, estimate, lines};
use crate::tui::app::State;
use crate::util::hs;

/// The estimate of the FFT `F` computes (the default parameters, or a complete cache's).
pub fn of(s: &State) -> crate::Result<FftEstimate> {
    let emd = if s.is_mib { s.emd_path() } else { s.path.clone() };
    let req = EstimateRequest {
        src: s.ds.as_ref(),
        emd: &emd,
        convert: &s.convert_options(),
        want: &FftWant::AnyOrDefault,
        budget: s.memory_budget,
        sample_frames: 0,
    };
    estimate(&req)
}

/// The status line of an FFT that fits: what it will write and use.
pub fn status(e: &FftEstimate) -> String {
    let free = e.disks.first().and_then(|d| d.free).map_or("?".to_string(), hs);
    format!(
        "FFT: output {}, scratch {}, {free} free; memory {} of {}",
        hs(e.output_bytes),
        hs(e.scratch_bytes),
        hs(e.memory_bytes),
        hs(e.memory_budget)
    )
}

/// The question when the FFT will not fit (or could not be estimated): the estimate and y/n.
pub fn question(e: &crate::Result<FftEstimate>) -> String {
    match e {
        Ok(e) => {
            let mut v = vec!["The 4D FFT will not fit. Start anyway? (y/n)".to_string()];
            v.extend(e.problems.iter().map(|p| format!("- {p}")));
            v.extend(lines(e).into_iter().filter(|l| !l.starts_with("fits:")));
            v.join("\n")
        }
        Err(err) => format!("The 4D FFT could not be estimated. Start anyway? (y/n)\n{err}"),
    }
}
