//! The 4D FFT cache inside an EMD (`/emdtui/cache/fft_complex`, written by
//! `compute::fft`): status, validated opening, slices for the explorer and `export`.

use crate::compute::fft::{CACHE_FORMAT_VERSION, FftParams, FftSource, GROUP, Key, POWER_GROUP, Part, reduce};
use crate::error::{Error, Result};
use crate::format::h5::{self, str_attr};
use num_complex::Complex32;
use std::path::{Path, PathBuf};

/// Read access to a complete, valid FFT cache.
pub struct FftCache {
    /// (Q rows, Q cols, K rows, K cols) of the stored transform.
    pub shape: [usize; 4],
    pub params: FftParams,
    /// Detector region (row0, col0, rows, cols) in unbinned pixels.
    pub det_box: [usize; 4],
    pub chunk: [usize; 4],
    pub source_fingerprint: String,
    pub tool_version: String,
    pub created: String,
    path: PathBuf,
    _file: hdf5::File,
    data: hdf5::Dataset,
    power: hdf5::Dataset,
}

/// State of the FFT cache in a file, for `info` and the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    Absent,
    /// Interrupted: (blocks done, blocks total).
    Incomplete(usize, usize),
    Stale(String),
    Complete,
}

impl FftCache {
    /// Open the cache in `emd`; Err if absent, incomplete or stale (format version).
    pub fn open(emd: &Path) -> Result<FftCache> {
        Self::open_inner(emd, None)
    }
    /// As [`FftCache::open`], and Err unless the cache was computed from the source with this
    /// fingerprint.
    pub fn open_validated(emd: &Path, fingerprint: &str) -> Result<FftCache> {
        Self::open_inner(emd, Some(fingerprint))
    }
    /// What is in the file, without opening it for reading.
    pub fn status(emd: &Path, fingerprint: Option<&str>) -> CacheStatus {
        if !emd.exists() {
            return CacheStatus::Absent;
        }
        match Self::open_inner(emd, fingerprint) {
            Ok(_) => CacheStatus::Complete,
            Err(Error::Absent { .. }) => CacheStatus::Absent,
            Err(Error::Incomplete { .. }) => {
                let f = h5::open_ro(emd).ok();
                let d = f
                    .and_then(|f| f.group(GROUP).ok())
                    .and_then(|g| g.dataset("blocks_done").ok())
                    .and_then(|d| d.read_raw::<u8>().ok())
                    .unwrap_or_default();
                CacheStatus::Incomplete(d.iter().filter(|&&x| x != 0).count(), d.len())
            }
            Err(e) => CacheStatus::Stale(e.to_string()),
        }
    }
    fn open_inner(emd: &Path, fingerprint: Option<&str>) -> Result<FftCache> {
        // this process's reader handles would share their (possibly older) view of the file
        drop(h5::close_readers(emd));
        let file = h5::open_ro(emd)?;
        if !file.link_exists(GROUP) {
            return Err(Error::Absent { path: emd.to_path_buf(), msg: "no FFT cache (run `emdtui fft`)".into() });
        }
        let g = file.group(GROUP).map_err(h5::err(emd))?;
        let complete = g.attr("complete").and_then(|a| a.read_scalar::<u8>()).unwrap_or(0);
        if complete != 1 {
            return Err(Error::Incomplete {
                path: emd.to_path_buf(),
                msg: "FFT cache is incomplete (interrupted run; rerun `emdtui fft` to resume)".into(),
            });
        }
        let fv = g.attr("cache_format_version").and_then(|a| a.read_scalar::<u32>()).unwrap_or(0);
        if fv != CACHE_FORMAT_VERSION {
            return Err(Error::Stale {
                path: emd.to_path_buf(),
                msg: format!(
                    "FFT cache is stale: format version {fv}, this emdtui writes {CACHE_FORMAT_VERSION}; recompute with `emdtui fft`"
                ),
            });
        }
        let key: Key = str_attr(&g, "emdtui_key")
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| Error::format(emd, "FFT cache: unreadable parameters"))?;
        let src_fp = str_attr(&g, "source_fingerprint").unwrap_or_default();
        if let Some(fp) = fingerprint
            && fp != src_fp
        {
            return Err(Error::Stale {
                path: emd.to_path_buf(),
                msg: "FFT cache is stale: computed from different data; recompute with `emdtui fft`".into(),
            });
        }
        let data = g.dataset("data").map_err(h5::err(emd))?;
        let l = &key.layout;
        let shape = [l.scan.0, l.scan.1, l.k.0, l.k.1];
        if data.shape() != shape {
            return Err(Error::format(emd, format!("FFT cache: data shape {:?} != recorded {shape:?}", data.shape())));
        }
        let power = file.group(POWER_GROUP).and_then(|p| p.dataset("data")).map_err(h5::err(emd))?;
        Ok(FftCache {
            shape,
            params: key.params.clone(),
            det_box: l.det_box,
            chunk: l.chunk,
            source_fingerprint: src_fp,
            tool_version: str_attr(&g, "tool_version").unwrap_or_default(),
            created: str_attr(&g, "created").unwrap_or_default(),
            path: emd.to_path_buf(),
            _file: file,
            data,
            power,
        })
    }
    /// Index of Q = 0 (row, col).
    pub fn q_origin(&self) -> (usize, usize) {
        (self.shape[0] / 2, self.shape[1] / 2)
    }
    /// sum_K |G(Q, K)|^2, Q rows x Q cols (Q = 0 at the centre).
    pub fn power_map(&self) -> Result<Vec<f32>> {
        self.power.read_raw::<f32>().map_err(h5::err(&self.path))
    }
    fn range(c: usize, half: usize, n: usize) -> Result<(usize, usize)> {
        if c >= n {
            return Err(Error::Invalid(format!("FFT index {c} outside 0..{n}")));
        }
        Ok((c.saturating_sub(half), (c + half + 1).min(n)))
    }
    /// Detector-plane image (K rows x K cols) at Q index (row, col), averaged over a
    /// (2*half+1)^2 Q region. Averaging: Amp is the mean of |G|; Phase, Real and Imag are taken
    /// of the mean complex value (a coherent average).
    pub fn detector_image(&self, q: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let (a0, a1) = Self::range(q.0, half, self.shape[0])?;
        let (b0, b1) = Self::range(q.1, half, self.shape[1])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![a0..a1, b0..b1, .., ..]).map_err(h5::err(&self.path))?;
        let kp = self.shape[2] * self.shape[3];
        let flat = arr.as_standard_layout();
        Ok(reduce(flat.as_slice().unwrap(), (a1 - a0) * (b1 - b0), kp, part, false))
    }
    /// Q-plane image (Q rows x Q cols) at detector pixel K (row, col), averaged over a K region.
    pub fn q_image(&self, k: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let (a0, a1) = Self::range(k.0, half, self.shape[2])?;
        let (b0, b1) = Self::range(k.1, half, self.shape[3])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![.., .., a0..a1, b0..b1]).map_err(h5::err(&self.path))?;
        let nq = self.shape[0] * self.shape[1];
        let flat = arr.as_standard_layout();
        Ok(reduce(flat.as_slice().unwrap(), (a1 - a0) * (b1 - b0), nq, part, true))
    }
    /// All Q for the K rectangle rows x cols, as stored: [Q row][Q col][k row][k col].
    pub fn k_block(&self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> Result<Vec<Complex32>> {
        if rows.end > self.shape[2] || cols.end > self.shape[3] || rows.is_empty() || cols.is_empty() {
            return Err(Error::Invalid(format!("FFT K block {rows:?} x {cols:?} outside {:?}", &self.shape[2..])));
        }
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![.., .., rows, cols]).map_err(h5::err(&self.path))?;
        Ok(arr.into_raw_vec_and_offset().0)
    }
    /// All Q columns and K for the Q rows `rows`, as stored: [Q row][Q col][k row][k col].
    pub fn q_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<Complex32>> {
        if rows.end > self.shape[0] || rows.is_empty() {
            return Err(Error::Invalid(format!("FFT Q rows {rows:?} outside 0..{}", self.shape[0])));
        }
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![rows, .., .., ..]).map_err(h5::err(&self.path))?;
        Ok(arr.into_raw_vec_and_offset().0)
    }
    /// The complex values at one Q (K rows x K cols), exactly as stored.
    pub fn detector_complex(&self, q: (usize, usize)) -> Result<Vec<Complex32>> {
        let (a0, a1) = Self::range(q.0, 0, self.shape[0])?;
        let (b0, b1) = Self::range(q.1, 0, self.shape[1])?;
        let arr: ndarray::Array4<Complex32> =
            self.data.read_slice(ndarray::s![a0..a1, b0..b1, .., ..]).map_err(h5::err(&self.path))?;
        Ok(arr.iter().copied().collect())
    }
}

/// Parameters of an interrupted (incomplete) FFT in `emd`, so that it can be resumed as it was
/// started. None when there is no incomplete FFT.
pub fn interrupted_params(emd: &Path) -> Option<(FftParams, usize, usize)> {
    match FftCache::status(emd, None) {
        CacheStatus::Incomplete(done, total) => {
            let f = h5::open_ro(emd).ok()?;
            let g = f.group(GROUP).ok()?;
            let key: Key = serde_json::from_str(&str_attr(&g, "emdtui_key")?).ok()?;
            Some((key.params, done, total))
        }
        _ => None,
    }
}

impl FftSource for FftCache {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn label(&self) -> String {
        format!("FFT cache ({:?})", self.params.axes)
    }
    fn k_origin_bin(&self) -> ((usize, usize), usize) {
        ((self.det_box[0], self.det_box[1]), self.params.bin)
    }
    fn power_map(&self) -> Result<Vec<f32>> {
        FftCache::power_map(self)
    }
    fn detector_image(&self, q: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        FftCache::detector_image(self, q, half, part)
    }
    fn q_image(&self, k: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        FftCache::q_image(self, k, half, part)
    }
}
