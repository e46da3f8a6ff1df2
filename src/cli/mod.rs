//! Command-line interface (clap). `emdtui FILE` opens the terminal UI; subcommands run headless.

pub mod common;
pub mod convert;
pub mod detectors;
pub mod dpc;
pub mod eels;
pub mod emd_info;
pub mod ewpc;
pub mod fft;
pub mod from_fft;
pub mod help;
pub mod info;
pub mod inspect;
pub mod overview;
pub mod progress;
pub mod ptycho;
pub mod tcbf;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "emdtui", version, about = "4D-STEM Merlin .mib / EMD viewer and converter", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// File to open in the terminal UI (.mib or .emd); the built-in demo when omitted.
    pub file: Option<PathBuf>,
    /// Which built-in demo opens when no file is given: 4d (a phase object under a defocused
    /// probe, the default) or eels (an Nx1 spectrometer scan).
    #[arg(long, value_name = "KIND", conflicts_with = "file")]
    pub demo: Option<String>,
    #[command(flatten)]
    pub open: OpenArgs,
    /// Terminal graphics of the viewer: auto, kitty, sixel, iterm2, halfblocks, braille.
    #[arg(long, default_value = "auto")]
    pub graphics: String,
    /// Viewer: skip the terminal capability query (implies halfblocks unless --graphics says
    /// otherwise).
    #[arg(long)]
    pub no_query: bool,
    /// Memory budget for computations, e.g. 2G (default: a quarter of RAM, at most 80 %).
    #[arg(long, global = true)]
    pub memory: Option<String>,
    /// Worker threads for computations (default: one per core). In the viewer they also run at
    /// low CPU and IO priority, next to a running acquisition.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub calib: CalibArgs,
    /// Leave hot and dead detector pixels in. Default: replaced by the median of their good
    /// neighbours wherever pixels are summed into an image (overviews and virtual detectors,
    /// the overviews stored by convert, CoM/DPC, EWPC, the viewer's frame); the datacube
    /// convert writes, frame export, the FFT, tcBF, ptycho and EELS always use the raw pixels.
    #[arg(long, global = true)]
    pub keep_bad_pixels: bool,
    /// Your own bad-pixel mask (.npy bool/uint8 or .png of the detector shape, non-zero = bad),
    /// masked like the found hot and dead pixels.
    #[arg(long, global = true, value_name = "PATH")]
    pub bad_pixels: Option<PathBuf>,
    /// Viewer: a navigation image (.ndata, Nion .h5, .npy, .tif) shown beside the overview, its
    /// shape checked against the scan.
    #[arg(long, value_name = "PATH")]
    pub nav: Option<PathBuf>,
}

/// Calibration given on the command line (remembered for a `.mib`, written into EMD output).
#[derive(Args, Debug, Clone, Default)]
pub struct CalibArgs {
    /// Real-space step per scan pixel with units, e.g. 0.5nm or 5A.
    #[arg(long, global = true, value_name = "STEP")]
    pub scan_step: Option<String>,
    /// Convergence semi-angle with units, e.g. 20mrad: the detector step becomes alpha / r_BF.
    #[arg(long, global = true, value_name = "ANGLE")]
    pub alpha: Option<String>,
    /// Detector step per pixel with units, e.g. 0.25mrad or 0.01A^-1.
    #[arg(long, global = true, value_name = "STEP")]
    pub q_pixel: Option<String>,
    /// Accelerating voltage with units, e.g. 200kV or 300keV: the electron wavelength (tcBF's
    /// defocus sign and CTF, ptycho).
    #[arg(long, global = true, value_name = "VOLTAGE")]
    pub energy: Option<String>,
}

impl CalibArgs {
    /// The calibration given (empty when no flag), units checked.
    pub fn given(&self) -> anyhow::Result<crate::compute::calib::Calibration> {
        use crate::compute::calib;
        if self.alpha.is_some() && self.q_pixel.is_some() {
            anyhow::bail!("give either --alpha or --q-pixel, not both");
        }
        let e = |m: String| anyhow::anyhow!(m);
        Ok(calib::Calibration {
            r: self.scan_step.as_deref().map(|s| calib::parse_length("--scan-step", s)).transpose().map_err(e)?,
            q: self.q_pixel.as_deref().map(|s| calib::parse_q("--q-pixel", s)).transpose().map_err(e)?,
            alpha_mrad: self.alpha.as_deref().map(|s| calib::parse_angle("--alpha", s)).transpose().map_err(e)?,
            energy_v: self.energy.as_deref().map(calib::parse_energy).transpose().map_err(e)?,
        })
    }
}

/// How to interpret the source's scan.
#[derive(Args, Debug, Clone, Default)]
pub struct OpenArgs {
    /// Scan shape ROWSxCOLS (overrides .hdr and heuristics; for `synth`: the scan written,
    /// default 32x32).
    #[arg(long, global = true, value_name = "ROWSxCOLS")]
    pub scan: Option<String>,
    /// Frames to skip at the start of the file.
    #[arg(long, global = true, default_value_t = 0)]
    pub skip_frames: usize,
    /// Flyback frames at the end of each scan line (dropped).
    #[arg(long, global = true, default_value_t = 0)]
    pub flyback: usize,
    /// Read .mib files through memory-map windows (one copy fewer). The default of the batch
    /// passes (overview, convert, fft); the viewer uses positional reads unless given this.
    /// A file truncated while mapped ends the run with an error naming it.
    #[arg(long, global = true, conflicts_with = "no_mmap")]
    pub mmap: bool,
    /// Read .mib files with positional reads (pread) only, never memory-mapped.
    #[arg(long, global = true)]
    pub no_mmap: bool,
    /// How frames are read: auto (an Nx1 detector holds spectra, anything else diffraction
    /// patterns), eels (sum the short axis of every frame into a spectrum) or diffraction.
    #[arg(long, global = true, default_value = "auto", value_name = "auto|eels|diffraction")]
    pub mode: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Summary of a .mib or .emd file (and its caches).
    Info {
        /// The .mib or .emd (optional with --nav: then the navigation image is checked against its scan).
        #[arg(required_unless_present = "nav")]
        file: Option<PathBuf>,
        /// Machine-readable JSON (keys documented in the README).
        #[arg(long)]
        json: bool,
        /// The HDF5 tree of an EMD/.h5 (groups, datasets with shape, type, chunks, filters, sizes,
        /// attributes) and emdtui's caches in it with their validity.
        #[arg(long)]
        tree: bool,
        /// A navigation image (.ndata, Nion .h5, .npy, .tif): its metadata, and whether its shape
        /// is FILE's scan shape.
        #[arg(long, value_name = "PATH")]
        nav: Option<PathBuf>,
    },
    /// Export one decoded frame, an FFT slice or a cached image to .npy, .tiff or .png.
    Export(ExportArgs),
    /// Write a synthetic 4D-STEM .mib file with real Merlin header layouts.
    Synth(SynthArgs),
    /// Compute a scan overview (virtual detector image).
    Overview(OverviewArgs),
    /// Convert a .mib to EMD (HDF5) with overviews cached inside.
    Convert(ConvertArgs),
    /// Compute the 4D FFT into the EMD cache (converting a .mib first).
    Fft(FftArgs),
    /// Differential phase contrast: corrected CoM field and integrated CoM (iCoM) phase image.
    Dpc(DpcArgs),
    /// EELS: energy-window map or mean spectrum of spectrum data (Nx1 detector, `--mode eels`,
    /// or a 3-D spectrum-image EMD).
    Eels(EelsArgs),
    /// EWPC (|FFT(log max(DP, eps))|) of the mean pattern or of the pattern at --at.
    Ewpc(EwpcArgs),
    /// Tilt-corrected / super-resolution bright field from the scan-axes FFT (made first when needed).
    ///
    /// The parallax of every bright-field pixel is fitted to the aberration model s = U P theta
    /// (scan-detector rotation U with a possible transpose; P = defocus C1 + two-fold
    /// astigmatism A1), measured from pairs of pixels coarse to fine. With --scan-step and --alpha
    /// (or --q-pixel) the fit is reported in Å, with --energy the defocus sign is decided by the
    /// image contrast and --ctf-correct phase-flips the image. Defocus: positive = underfocus.
    /// Data with no parallax (vacuum, a uniform film, an in-focus probe) fail with "no parallax
    /// found" instead of giving a noise image.
    Tcbf(TcbfArgs),
    /// Direct ptychography (single side band): phase image from the scan-axes FFT (made first when needed).
    Ptycho(PtychoArgs),
}

#[derive(Args, Debug)]
pub struct EwpcArgs {
    pub file: PathBuf,
    /// Scan position ROW,COL (default: the mean pattern over the scan).
    #[arg(long, value_name = "ROW,COL")]
    pub at: Option<String>,
    /// Output .npy / .tiff (float32, detector rows x cols, zero quefrency at the centre) or .png.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Floor before the log, in counts (default: 1e-3 of the pattern maximum).
    #[arg(long)]
    pub eps: Option<f32>,
    /// No Hann window on the log pattern.
    #[arg(long)]
    pub no_window: bool,
    #[command(flatten)]
    pub style: common::ImageStyle,
    /// Ignore and do not write the cache directory.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Args, Debug)]
pub struct TcbfArgs {
    pub file: PathBuf,
    /// Output image: .npy / .tiff (float32, scan rows*N x cols*N) or .png.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Fine grid factor N, 1..=8 (1: Fourier shift-and-add on the scan grid; more: samples placed
    /// on an N times finer grid).
    #[arg(long, default_value_t = 1)]
    pub upsample: usize,
    /// Also write the shifts: .npy float32 (detector rows, cols, 2) = (dy, dx) in scan pixels,
    /// I_K(r) = I_ref(r - s_K), NaN where a pixel was not used.
    #[arg(long, value_name = "SHIFTS.npy")]
    pub shifts_out: Option<PathBuf>,
    /// Print the fit (scale, rotation_deg, rms residual, pixels used) and the run as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// py4D-browser's manual shifts: (k - k_com) / max|k - k_com| * --max-shift, rotated by --theta.
    #[arg(long)]
    pub manual: bool,
    /// Manual mode: shift of the farthest disk pixel, in scan pixels.
    #[arg(long, value_name = "PX", allow_hyphen_values = true)]
    pub max_shift: Option<f64>,
    /// Manual mode: rotation in degrees (default 0).
    #[arg(long, value_name = "DEG", allow_hyphen_values = true)]
    pub theta: Option<f64>,
    /// Manual mode: transpose x/y (py4D-browser's checkbox).
    #[arg(long)]
    pub transpose: bool,
    /// Phase-flip the image by the fitted CTF sign(sin chi(q)) (needs --energy, --scan-step and
    /// --alpha or --q-pixel).
    #[arg(long)]
    pub ctf_correct: bool,
    /// EMD that holds the FFT and the result when FILE is a .mib (default: FILE with .emd).
    #[arg(long, value_name = "PATH")]
    pub emd: Option<PathBuf>,
    #[command(flatten)]
    pub style: common::ImageStyle,
}

#[derive(Args, Debug)]
pub struct PtychoArgs {
    pub file: PathBuf,
    /// Output phase image (rad): .npy / .tiff (float32, scan rows x cols) or .png.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the amplitude of the object wave (.npy / .tiff / .png).
    #[arg(long, value_name = "PATH")]
    pub amplitude_out: Option<PathBuf>,
    /// Defocus to correct, with units (positive = underfocus), e.g. 12nm or -80A; 0 = in focus.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub defocus: String,
    /// Bright-field disk centre ROW,COL in detector pixels (default: found in the data).
    #[arg(long, value_name = "ROW,COL")]
    pub center: Option<String>,
    /// Bright-field disk radius in detector pixels (default: found in the data).
    #[arg(long, value_name = "PX")]
    pub radius: Option<f64>,
    /// Scan rotation in degrees, or auto (as `dpc` finds it: minimum curl).
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub rotation: String,
    /// Detector x mirrored: auto, yes or no.
    #[arg(long, default_value = "auto")]
    pub flip: String,
    /// Print the run (disk, rotation, flip, trotter coverage, times) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Neither read nor write the result cached in the EMD (the FFT cache is still used).
    #[arg(long)]
    pub no_cache: bool,
    /// EMD that holds the FFT and the result when FILE is a .mib (default: FILE with .emd).
    #[arg(long, value_name = "PATH")]
    pub emd: Option<PathBuf>,
    #[command(flatten)]
    pub style: common::ImageStyle,
}

#[derive(Args, Debug)]
pub struct DpcArgs {
    pub file: PathBuf,
    /// Output .npy / .tiff (float32 iCoM, scan rows x cols) or .png; OUT_comx / OUT_comy hold the
    /// corrected CoM field.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Scan rotation in degrees, or auto (minimum curl).
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub rotation: String,
    /// Detector x mirrored: auto, yes or no.
    #[arg(long, default_value = "auto")]
    pub flip: String,
    /// Descan removal: plane (least squares over the scan) or none.
    #[arg(long, default_value = "plane")]
    pub descan: String,
    /// CoM mask: bf (around the bright-field disk), annulus:R1,R2 (pixels), or a .png/.npy file.
    #[arg(long, default_value = "bf")]
    pub mask: String,
    /// Print rotation_deg, flip, descan, curl_ratio (and more) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Ignore and do not write the cache directory.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub style: common::ImageStyle,
}

/// Energy axis of spectra: orientation and calibration.
#[derive(Args, Debug, Clone, Default)]
pub struct EnergyArgs {
    /// Reverse the channel order of the spectra (channel 0 = the last stored channel).
    #[arg(long)]
    pub reverse_energy: bool,
    /// Energy calibration: eV per channel (remembered for the file with --offset).
    #[arg(long, value_name = "EV_PER_CH")]
    pub dispersion: Option<f64>,
    /// Energy calibration: energy of channel 0 in eV.
    #[arg(long, value_name = "EV", allow_hyphen_values = true)]
    pub offset: Option<f64>,
}

#[derive(Args, Debug)]
pub struct EelsArgs {
    pub file: PathBuf,
    /// Energy-window map: sum over channels [E0, E1) per scan position; `E0:E1eV` in calibrated eV.
    #[arg(long, value_name = "E0:E1[eV]", allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Mean spectrum over --roi or --at (default: the whole scan).
    #[arg(long)]
    pub spectrum: bool,
    /// Scan region R0:R1,C0:C1 (half-open) for --spectrum.
    #[arg(long, value_name = "R0:R1,C0:C1")]
    pub roi: Option<String>,
    /// One scan position ROW,COL for --spectrum.
    #[arg(long, value_name = "ROW,COL")]
    pub at: Option<String>,
    #[command(flatten)]
    pub energy: EnergyArgs,
    /// Output: map .npy/.tiff/.png (float32, scan row x col); spectrum .npy/.csv/.png.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub style: common::ImageStyle,
    /// Ignore and do not write the cache directory.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    pub file: PathBuf,
    /// Scan position index (row-major) of the frame to export.
    #[arg(long)]
    pub frame: Option<usize>,
    /// Scan position ROW,COL of the frame to export.
    #[arg(long, value_name = "ROW,COL")]
    pub at: Option<String>,
    /// FFT detector-plane image at spatial frequency QY,QX (offsets from Q = 0).
    #[arg(long, value_name = "QY,QX", allow_hyphen_values = true)]
    pub fft_q: Option<String>,
    /// FFT Q-plane image at detector pixel KY,KX.
    #[arg(long, value_name = "KY,KX")]
    pub fft_k: Option<String>,
    /// Part of the complex FFT: amp, phase, real, imag.
    #[arg(long, default_value = "amp")]
    pub part: String,
    /// Output .npy, .tiff/.tif or .png.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub style: common::ImageStyle,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    pub output: PathBuf,
    /// Detector size: 256 (single chip) or 512 (quad 2x2).
    #[arg(long, default_value_t = 256)]
    pub detector: usize,
    /// Counter depth 1, 6, 12 or 24.
    #[arg(long, default_value_t = 12)]
    pub depth: u8,
    /// Raw (R64) pixel encoding.
    #[arg(long)]
    pub raw: bool,
    /// Quad 2x2 detector (same as --detector 512).
    #[arg(long)]
    pub quad: bool,
    /// Also write the .hdr acquisition header.
    #[arg(long)]
    pub hdr: bool,
    /// Write only this many frames (an interrupted acquisition).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Split into files of this many frames (name1.mib, name2.mib, ...).
    #[arg(long)]
    pub images_per_file: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A Merlin Nx1 spectrometer detector (256 x 1024 EELS spectra; --detector is ignored).
    #[arg(long)]
    pub nx1: bool,
    /// A defocused-probe scan for `tcbf` (64x64 detector, BF disk radius 12, parallax 0.25 scan px
    /// per detector px rotated by 25 deg; the other frame options are ignored).
    #[arg(long)]
    pub defocus: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DetectorArgs {
    /// Detector: sum, bf, adf, comx, comy, dpc (magnitude), dpc-angle, com (writes comx and comy), mask:PATH,
    /// mean / max (diffraction patterns; mean with --roi), point:R,C[,RAD] (one detector pixel or a
    /// disk of radius <= 1), rect:R0:R1,C0:C1 (half-open), pattern:R,C[,FRAC] (pixels of the frame at
    /// scan position R,C at or above FRAC of its maximum, default 0.5)
    #[arg(long, default_value = "sum")]
    pub detector: String,
    /// Inner radius (pixels); BF radius for bf.
    #[arg(long)]
    pub inner: Option<f32>,
    /// Outer radius (pixels) for adf.
    #[arg(long)]
    pub outer: Option<f32>,
    /// Detector centre CY,CX (default: found from the mean pattern).
    #[arg(long, value_name = "CY,CX")]
    pub center: Option<String>,
    /// Response over the detector pixels: sum, or max (the largest pixel value; for bf, adf,
    /// mask:PATH, point:, rect: and pattern:).
    #[arg(long, default_value = "sum")]
    pub response: String,
}

#[derive(Args, Debug)]
pub struct OverviewArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub det: DetectorArgs,
    /// Output .npy / .tiff (float32, scan row x col) or .png (scaled, colour-mapped).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub style: common::ImageStyle,
    /// Ignore and do not write the cache directory.
    #[arg(long)]
    pub no_cache: bool,
    /// Compute a strided preview of the scan first, as the terminal UI does (headless runs do not
    /// need it; with EMDTUI_TIMING set this times the first coarse overview).
    #[arg(long)]
    pub coarse_first: bool,
    /// Scan region R0:R1,C0:C1 (half-open) for --detector mean (mean pattern over the region).
    #[arg(long, value_name = "R0:R1,C0:C1")]
    pub roi: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    pub input: PathBuf,
    /// Output .emd (default: next to the input with the .emd extension).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Compress chunks: `gzip:1`..`gzip:9` (shuffle + deflate; `--compress` alone is gzip:1),
    /// `lz4` (bitshuffle + LZ4, HDF5 filter 32008: several times faster; Python readers need
    /// `import hdf5plugin`) or none.
    #[arg(long, num_args = 0..=1, default_missing_value = "gzip", value_name = "gzip:LEVEL|none")]
    pub compress: Option<String>,
    /// Bin the detector by 2..16 (a factor that divides both detector axes).
    #[arg(long, default_value_t = 1)]
    pub bin_detector: usize,
    /// Binning: sum (integer counts) or mean (float32: the sum divided by the pixels binned).
    #[arg(long, default_value = "sum", value_name = "sum|mean")]
    pub bin_mode: String,
    /// Write a 3-D spectrum image (scan, scan, energy): every frame summed over its short axis.
    /// Automatic in EELS mode.
    #[arg(long)]
    pub sum_short_axis: bool,
    #[command(flatten)]
    pub energy: EnergyArgs,
    /// Bin the scan by N.
    #[arg(long, default_value_t = 1)]
    pub bin_scan: usize,
    /// Crop the scan: R0:R1,C0:C1 (half-open).
    #[arg(long)]
    pub crop: Option<String>,
    /// Overwrite an existing complete output.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FftArgs {
    pub file: PathBuf,
    /// Detector extent: bf (bright-field disk plus margin) or full.
    #[arg(long, default_value = "bf")]
    pub crop: String,
    /// Transform axes: scan (2-D over scan positions) or all (4-D).
    #[arg(long, default_value = "scan")]
    pub axes: String,
    /// Bin the detector before the transform.
    #[arg(long, default_value_t = 1)]
    pub bin: usize,
    /// BF disk centre CY,CX for --crop bf.
    #[arg(long, value_name = "CY,CX")]
    pub center: Option<String>,
    /// BF disk radius for --crop bf.
    #[arg(long)]
    pub radius: Option<f32>,
    /// EMD output when the input is a .mib.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Compute nothing: print what the run needs (output and scratch sizes, free space where
    /// they go, memory at the --memory budget, time from a short measured sample).
    #[arg(long)]
    pub estimate: bool,
    /// With --estimate: frames read (and transforms run) for the time estimate; 0 for none.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub sample_frames: usize,
    /// With --estimate: machine-readable JSON on stdout (keys documented in the README).
    #[arg(long, requires = "estimate")]
    pub json: bool,
}

impl OpenArgs {
    pub fn options(&self) -> anyhow::Result<crate::dataset::OpenOptions> {
        let scan = match &self.scan {
            Some(s) => Some(
                crate::dataset::scan::parse_rxc(s)
                    .ok_or_else(|| anyhow::anyhow!("--scan {s:?}: expected ROWSxCOLS, e.g. 128x128"))?,
            ),
            None => None,
        };
        Ok(crate::dataset::OpenOptions {
            scan,
            skip_frames: self.skip_frames,
            flyback: self.flyback,
            mmap: self.mmap,
            map_window: 0,
            mode: match self.mode.as_str() {
                "auto" => crate::dataset::ModeChoice::Auto,
                "eels" => crate::dataset::ModeChoice::Eels,
                "diffraction" => crate::dataset::ModeChoice::Diffraction,
                m => anyhow::bail!("--mode {m:?}: use auto, eels or diffraction"),
            },
        })
    }

    /// Options of a batch pass over the whole file with memory budget `budget`: memory-mapped
    /// reads unless `--no-mmap`, each thread's window at most 1/16 of the budget.
    pub fn batch_options(&self, budget: u64) -> anyhow::Result<crate::dataset::OpenOptions> {
        let window = ((budget / 16) as usize).clamp(1 << 20, crate::format::mibset::MAP_WINDOW);
        Ok(crate::dataset::OpenOptions { mmap: !self.no_mmap, map_window: window, ..self.options()? })
    }
}

impl Cli {
    pub fn memory_budget(&self) -> anyhow::Result<u64> {
        match &self.memory {
            Some(s) => crate::compute::budget::parse_size(s)
                .ok_or_else(|| anyhow::anyhow!("--memory {s:?}: expected a size like 512M or 2G")),
            None => Ok(crate::compute::budget::default_budget()),
        }
    }
}

/// Parse `A,B` into two numbers.
pub fn parse_pair<T: std::str::FromStr>(s: &str, what: &str) -> anyhow::Result<(T, T)> {
    let (a, b) =
        s.split_once(',').ok_or_else(|| anyhow::anyhow!("{what} {s:?}: expected two comma-separated numbers"))?;
    Ok((
        a.trim().parse().map_err(|_| anyhow::anyhow!("{what} {s:?}: {a:?} is not a number"))?,
        b.trim().parse().map_err(|_| anyhow::anyhow!("{what} {s:?}: {b:?} is not a number"))?,
    ))
}
