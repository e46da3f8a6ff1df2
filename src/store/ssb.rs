//! SSB ptychography results inside an EMD: `/emdtui/cache/ptycho_ssb` holds `phase` (rad),
//! `amplitude`, `bf` and `icom` (float32, scan rows x cols), with the provenance attributes of
//! every emdtui cache (`emdtui_params` = parameters and run summary, `emdtui_version`,
//! `emdtui_cache_format`, `emdtui_created`, `emdtui_source` = datacube fingerprint,
//! `emdtui_complete`, 0 while being written) plus `emdtui_ptycho_key`: the parameters and the
//! identity of the FFT cache it was computed from (its creation time, detector box, binning,
//! shape). It is reused only when that key matches, so a recomputed FFT makes it stale.
//!
//! Also: the FFT cache as the kernel's [`QSource`].

use crate::compute::ssb::{QSource, SsbParams, SsbResult, SsbSummary};
use crate::error::{Error, Result};
use crate::format::emd::{APP_CACHE, cache_validity, stamp_cache};
use crate::format::h5::{self, WRITE_WAIT, ensure_group, set_int_attr, set_str_attr, str_attr};
use crate::store::fft::FftCache;
use num_complex::Complex32;
use std::ops::Range;
use std::path::Path;

/// Name of the entry under `/emdtui/cache`.
pub const ENTRY: &str = "ptycho_ssb";

impl QSource for FftCache {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn q_chunk(&self) -> usize {
        self.chunk[0]
    }
    fn read_q_rows(&self, rows: Range<usize>) -> Result<Vec<Complex32>> {
        self.q_rows(rows)
    }
}

/// The identity of the FFT cache a result was computed from.
pub fn fft_identity(fft: &FftCache) -> serde_json::Value {
    serde_json::json!({"created": fft.created, "det_box": fft.det_box, "bin": fft.params.bin, "shape": fft.shape})
}

/// What a cached result must match to be reused: the parameters and the FFT cache it came from.
pub fn key(p: &SsbParams, fft: &FftCache) -> serde_json::Value {
    serde_json::json!({"ssb": p.to_json(), "fft": fft_identity(fft)})
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    params: SsbParams,
    summary: SsbSummary,
}

/// The cached result when it is complete, computed from this datacube, and (with `key`) for
/// exactly this key; without `key`, whatever its parameters as long as it came from the FFT
/// cache `fft` (the viewer shows the last run).
pub fn load(
    emd: &Path,
    fingerprint: &str,
    key: Option<&serde_json::Value>,
    fft: &serde_json::Value,
) -> Result<Option<SsbResult>> {
    let path = format!("{APP_CACHE}/{ENTRY}");
    h5::with_read(emd, |f| {
        let Ok(g) = f.group(&path) else { return Ok(None) };
        if cache_validity(&g, fingerprint).is_err() {
            return Ok(None);
        }
        let Some(stored) =
            str_attr(&g, "emdtui_ptycho_key").and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        else {
            return Ok(None);
        };
        let matches = match key {
            Some(k) => &stored == k,
            None => stored.get("fft") == Some(fft),
        };
        if !matches {
            return Ok(None);
        }
        let Some(st) = str_attr(&g, "emdtui_params").and_then(|s| serde_json::from_str::<Stored>(&s).ok()) else {
            return Ok(None);
        };
        let e = h5::err(emd);
        let read = |n: &str| -> Result<(Vec<f32>, Vec<usize>)> {
            let d = g.dataset(n).map_err(&e)?;
            Ok((d.read_raw::<f32>().map_err(&e)?, d.shape()))
        };
        let (phase, sh) = read("phase")?;
        let (amplitude, ash) = read("amplitude")?;
        let (bf, bsh) = read("bf")?;
        let (icom, ish) = read("icom")?;
        if sh.len() != 2 || ash != sh || bsh != sh || ish != sh {
            return Err(Error::format(emd, format!("{path}: inconsistent shapes {sh:?} {ash:?} {bsh:?} {ish:?}")));
        }
        Ok(Some(SsbResult { params: st.params, scan: (sh[0], sh[1]), phase, amplitude, bf, icom, summary: st.summary }))
    })
}

/// Store `r` (replacing the entry), under the writer lock: marked incomplete until every dataset
/// is written.
pub fn save(emd: &Path, fingerprint: &str, key: &serde_json::Value, r: &SsbResult) -> Result<()> {
    let st = Stored { params: r.params.clone(), summary: r.summary.clone() };
    let params = serde_json::to_value(&st).map_err(|x| Error::Invalid(x.to_string()))?;
    h5::with_write(emd, WRITE_WAIT, |f| {
        let e = h5::err(emd);
        let parent = ensure_group(f, APP_CACHE).map_err(&e)?;
        if parent.link_exists(ENTRY) {
            parent.unlink(ENTRY).map_err(&e)?;
        }
        let g = parent.create_group(ENTRY).map_err(&e)?;
        set_int_attr(&g, "emdtui_complete", 0).map_err(&e)?;
        let (rows, cols) = r.scan;
        for (n, v) in [("phase", &r.phase), ("amplitude", &r.amplitude), ("bf", &r.bf), ("icom", &r.icom)] {
            let a = ndarray::ArrayView2::from_shape((rows, cols), v).map_err(|x| Error::Invalid(x.to_string()))?;
            g.new_dataset_builder().with_data(&a).create(n).map_err(&e)?;
        }
        set_str_attr(&g, "emdtui_ptycho_key", &key.to_string()).map_err(&e)?;
        set_str_attr(
            &g,
            "description",
            "SSB direct ptychography from the scan-axes FFT: phase (rad) and amplitude of the object wave; bf and icom \
             (dpc units) from the same FFT over the CoM mask",
        )
        .map_err(&e)?;
        stamp_cache(&g, &params, fingerprint).map_err(&e)?;
        set_int_attr(&g, "emdtui_complete", 1).map_err(&e)?;
        crate::format::emd::append_log(f, emd, "ptycho SSB written")
    })
}
