//! Where a result computed from the scan-axes FFT (tcBF, ptychography) came from: the one type
//! both workflows report and every front end describes.

use crate::compute::fft::FftReport;

/// Where the result came from.
#[derive(Debug)]
pub enum Origin {
    /// The EMD held a valid result for these parameters.
    Cache,
    /// Computed now; `fft` when the FFT had to be computed (or resumed) first.
    Computed { fft: Option<Box<FftReport>> },
}

impl Origin {
    /// How the viewer says it.
    pub fn describe(&self) -> &'static str {
        match self {
            Origin::Cache => "loaded from the EMD cache",
            Origin::Computed { fft: Some(_) } => "computed (FFT computed first)",
            Origin::Computed { fft: None } => "computed",
        }
    }

    /// How the reports say it: `cache` or `computed`, and the FFT's report when it was made first.
    pub fn short(&self) -> (&'static str, Option<&FftReport>) {
        match self {
            Origin::Cache => ("cache", None),
            Origin::Computed { fft } => ("computed", fft.as_deref()),
        }
    }
}
