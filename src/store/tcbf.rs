//! tcBF results inside an EMD, one entry per mode and upsampling factor:
//! `/emdtui/cache/tcbf_auto_x4`, `/emdtui/cache/tcbf_manual_x1`, ... Each holds `data` (the
//! aligned image, float32, scan rows*up x cols*up), `plain_bf` (scan rows x cols), `shifts`
//! (detector rows x cols x 2, float32, NaN where unused) and `quality` (detector rows x cols),
//! with the provenance attributes of every emdtui cache (`emdtui_params`, `emdtui_version`,
//! `emdtui_cache_format`, `emdtui_created`, `emdtui_source` = datacube fingerprint,
//! `emdtui_complete`, 0 while being written) plus `emdtui_tcbf_key`: the parameters and the
//! identity of the FFT cache it was computed from. It is reused only when that key matches.
//!
//! Also: the FFT cache as the kernel's [`GSource`].

use crate::compute::tcbf::{Disk, GSource, TcbfParams, TcbfResult};
use crate::error::{Error, Result};
use crate::format::emd::{APP_CACHE, cache_validity, stamp_cache};
use crate::format::h5::{self, WRITE_WAIT, ensure_group, set_int_attr, set_str_attr, str_attr};
use crate::store::fft::FftCache;
use num_complex::Complex32;
use std::ops::Range;
use std::path::Path;

impl GSource for FftCache {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn k_chunk(&self) -> (usize, usize) {
        (self.chunk[2], self.chunk[3])
    }
    fn read_block(&self, rows: Range<usize>, cols: Range<usize>) -> Result<Vec<Complex32>> {
        self.k_block(rows, cols)
    }
    fn dc_plane(&self) -> Result<Vec<f32>> {
        Ok(self.detector_complex(self.q_origin())?.iter().map(|c| c.re).collect())
    }
}

/// Name of the entry for these parameters (under `/emdtui/cache`).
pub fn entry_name(p: &TcbfParams) -> String {
    let mode = match p.mode {
        crate::compute::tcbf::ShiftMode::Auto => "auto",
        crate::compute::tcbf::ShiftMode::Manual { .. } => "manual",
    };
    format!("tcbf_{mode}_x{}{}", p.upsample, if p.ctf_correct { "_ctf" } else { "" })
}

/// What a cached result must match to be reused: the parameters and the FFT cache it came from.
pub fn key(p: &TcbfParams, fft: &FftCache) -> serde_json::Value {
    serde_json::json!({
        "tcbf": p.to_json(),
        "fft": {"created": fft.created, "det_box": fft.det_box, "bin": fft.params.bin, "shape": fft.shape},
    })
}

/// Summary numbers stored with (and read back from) an entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Summary {
    params: TcbfParams,
    fit: Option<crate::compute::tcbf::fit::LinearFit>,
    #[serde(default)]
    aberrations: Option<crate::compute::tcbf::aberr::Aberrations>,
    #[serde(default)]
    pairs: Vec<crate::compute::tcbf::pairs::PairShift>,
    disk: Disk,
    pixels_used: usize,
    pixels_low_quality: usize,
    seconds: f64,
}

/// The cached result for `key` when it is complete, computed from this datacube and with this key.
pub fn load(emd: &Path, fingerprint: &str, p: &TcbfParams, key: &serde_json::Value) -> Result<Option<TcbfResult>> {
    let path = format!("{APP_CACHE}/{}", entry_name(p));
    h5::with_read(emd, |f| {
        let Ok(g) = f.group(&path) else { return Ok(None) };
        if cache_validity(&g, fingerprint).is_err() {
            return Ok(None);
        }
        let stored: Option<serde_json::Value> =
            str_attr(&g, "emdtui_tcbf_key").and_then(|s| serde_json::from_str(&s).ok());
        if stored.as_ref() != Some(key) {
            return Ok(None);
        }
        let Some(sum) = str_attr(&g, "emdtui_params").and_then(|s| serde_json::from_str::<Summary>(&s).ok()) else {
            return Ok(None);
        };
        let e = h5::err(emd);
        let read = |n: &str| -> Result<(Vec<f32>, Vec<usize>)> {
            let d = g.dataset(n).map_err(&e)?;
            Ok((d.read_raw::<f32>().map_err(&e)?, d.shape()))
        };
        let (image, ish) = read("data")?;
        let (plain, psh) = read("plain_bf")?;
        let (shifts, ssh) = read("shifts")?;
        let (quality, _) = read("quality")?;
        if psh.len() != 2 || ssh.len() != 3 || ish != [psh[0] * sum.params.upsample, psh[1] * sum.params.upsample] {
            return Err(Error::format(emd, format!("{path}: inconsistent shapes {ish:?} {psh:?} {ssh:?}")));
        }
        Ok(Some(TcbfResult {
            params: sum.params,
            scan: (psh[0], psh[1]),
            image,
            plain,
            det: (ssh[0], ssh[1]),
            shifts,
            quality,
            fit: sum.fit,
            aberrations: sum.aberrations,
            pairs: sum.pairs,
            disk: sum.disk,
            pixels_used: sum.pixels_used,
            pixels_low_quality: sum.pixels_low_quality,
            seconds: sum.seconds,
        }))
    })
}

/// Store `r` (replacing the entry for its parameters), under the writer lock: marked incomplete
/// until every dataset is written.
pub fn save(emd: &Path, fingerprint: &str, key: &serde_json::Value, r: &TcbfResult) -> Result<()> {
    let name = entry_name(&r.params);
    let sum = Summary {
        params: r.params.clone(),
        fit: r.fit.clone(),
        aberrations: r.aberrations.clone(),
        pairs: r.pairs.clone(),
        disk: r.disk.clone(),
        pixels_used: r.pixels_used,
        pixels_low_quality: r.pixels_low_quality,
        seconds: r.seconds,
    };
    let params = serde_json::to_value(&sum).map_err(|x| Error::Invalid(x.to_string()))?;
    h5::with_write(emd, WRITE_WAIT, |f| {
        let e = h5::err(emd);
        let parent = ensure_group(f, APP_CACHE).map_err(&e)?;
        if parent.link_exists(&name) {
            parent.unlink(&name).map_err(&e)?;
        }
        let g = parent.create_group(&name).map_err(&e)?;
        set_int_attr(&g, "emdtui_complete", 0).map_err(&e)?;
        let (ir, ic) = r.image_shape();
        let bad = |x: ndarray::ShapeError| Error::Invalid(x.to_string());
        let put2 = |n: &str, rows: usize, cols: usize, v: &[f32]| -> Result<()> {
            let a = ndarray::ArrayView2::from_shape((rows, cols), v).map_err(bad)?;
            g.new_dataset_builder().with_data(&a).create(n).map_err(&e)?;
            Ok(())
        };
        put2("data", ir, ic, &r.image)?;
        put2("plain_bf", r.scan.0, r.scan.1, &r.plain)?;
        put2("quality", r.det.0, r.det.1, &r.quality)?;
        let a = ndarray::ArrayView3::from_shape((r.det.0, r.det.1, 2), &r.shifts).map_err(bad)?;
        g.new_dataset_builder().with_data(&a).create("shifts").map_err(&e)?;
        set_str_attr(&g, "emdtui_tcbf_key", &key.to_string()).map_err(&e)?;
        set_str_attr(
            &g,
            "description",
            "tilt-corrected BF: data = aligned sum (scan rows*up x cols*up); shifts (dy, dx) scan px with \
             I_K(r) = I_ref(r - s_K), NaN where unused",
        )
        .map_err(&e)?;
        stamp_cache(&g, &params, fingerprint).map_err(&e)?;
        set_int_attr(&g, "emdtui_complete", 1).map_err(&e)?;
        crate::format::emd::append_log(f, emd, &format!("tcBF {name} written"))
    })
}
