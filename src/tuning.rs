//! Knobs for experiments, tests and benchmarks, in one struct. `main` builds it from the
//! environment (the only place that reads `EMDTUI_*` variables; see the README's "Environment"
//! table) and hands it down; library code takes it (or the option structs filled from it) as a
//! parameter and never reads the environment itself.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Where `.mib` results, the demo and the log go (`EMDTUI_CACHE_DIR`; default: the platform
    /// cache directory). None: no cache directory could be found.
    pub cache_dir: Option<PathBuf>,
    /// Print phase timings on stderr (`EMDTUI_TIMING`).
    pub timing: bool,
    /// Target bytes per overview block (`EMDTUI_BLOCK_BYTES`; default 256 KiB).
    pub block_bytes: Option<u64>,
    /// Use the generic overview kernel even for big-endian 16-bit frames (`EMDTUI_NO_RAW_KERNEL`).
    pub no_raw_kernel: bool,
    /// Skip the up-front free-space check of conversions (`EMDTUI_NO_SPACE_CHECK`; tests fill a
    /// small filesystem with it).
    pub no_space_check: bool,
    /// Fail a conversion's writes after this many bytes (`EMDTUI_FAIL_WRITE_AFTER`; fault tests).
    pub fail_write_after: Option<u64>,
    /// Deflate level of compressed datacubes (`EMDTUI_ZLIB_LEVEL`, 1..=9; default 1).
    pub zlib_level: Option<u32>,
    /// Sleep after each FFT pass-2 group (`EMDTUI_FFT_GROUP_DELAY_MS`; kill tests).
    pub fft_group_delay: Option<Duration>,
    /// Write FFT output through HDF5's buffered path (`EMDTUI_FFT_BUFFERED`).
    pub fft_buffered: bool,
    /// Keep FFT pass 1's output in a scratch file even when it fits in memory
    /// (`EMDTUI_FFT_SCRATCH_ON_DISK`; tests of the resumable path on small data).
    pub fft_scratch_on_disk: bool,
    /// Key bindings file (`EMDTUI_KEYS`; default `~/.config/emdtui/keys.json`).
    pub keys_file: Option<PathBuf>,
    /// Log start-up phase times (`EMDTUI_TRACE_STARTUP`).
    pub trace_startup: bool,
    /// Panic inside the UI loop (`EMDTUI_TEST_PANIC`; the terminal-restore test).
    pub test_panic: bool,
}

impl Tuning {
    /// Deflate level for compressed datacubes (1 unless tuned).
    pub fn deflate_level(&self) -> u32 {
        self.zlib_level.filter(|l| (1..=9).contains(l)).unwrap_or(1)
    }
}

/// The platform cache directory for emdtui (`~/.cache/emdtui` on Linux).
pub fn default_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "emdtui", "emdtui").map(|p| p.cache_dir().to_path_buf())
}
