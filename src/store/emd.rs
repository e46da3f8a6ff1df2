//! The caches inside an EMD file: listing with validity, the overviews (read, written
//! incrementally, replaced), removing only stale ones. Provenance attributes are
//! [`crate::format::emd::stamp_cache`]'s; validity is [`crate::format::emd::cache_validity`].

use crate::compute::overview::{Geometry, Overviews};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::format::emd::{
    APP, APP_CACHE, Layout, append_log, cache_validity, datacube_fingerprint, dim_info, find_datacube, read_log,
    stamp_cache, write_dim,
};
use crate::format::h5::{self, WRITE_WAIT, int_attr, set_str_attr, str_attr, with_read, with_write};
use std::path::{Path, PathBuf};

/// One cached result and its validity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheEntry {
    pub name: String,
    /// HDF5 path of the cache group.
    pub path: String,
    /// python_class (RealSlice, DiffractionSlice, Array) or "emdtui" for app-private caches.
    pub kind: String,
    pub valid: bool,
    /// Why it is stale (empty when valid).
    pub reason: String,
    pub params: serde_json::Value,
    pub created: String,
    pub version: String,
    pub shape: Vec<usize>,
}

/// The names under `cached/` that make up the overviews.
pub const OVERVIEW_ENTRIES: [&str; 7] =
    ["com_x", "com_y", "dp_max", "dp_mean", "virtual_adf", "virtual_bf", "virtual_sum"];
const MASK_ENTRY: &str = "virtual_mask";

/// An EMD file's caches (the datacube fingerprint is computed at open).
pub struct EmdFile {
    pub path: PathBuf,
    pub group: String,
    pub layout: Layout,
    pub shape: [usize; 4],
    pub fingerprint: String,
    /// `/emdtui@complete` (None when the file was not written by emdtui).
    pub complete: Option<bool>,
    /// Fingerprint recorded at conversion (None when not converted by emdtui).
    pub converted_fingerprint: Option<String>,
    pub source_fingerprint: Option<String>,
    pub source_path: Option<String>,
}

impl EmdFile {
    pub fn open(path: &Path) -> Result<EmdFile> {
        with_read(path, |f| Self::open_in(f, path))
    }

    fn open_in(f: &hdf5::File, path: &Path) -> Result<EmdFile> {
        let (group, layout) = find_datacube(f, path)?;
        let d = f.dataset(&format!("{group}/data")).map_err(h5::err(path))?;
        let sh = d.shape();
        if sh.len() != 4 {
            return Err(Error::format(path, format!("{group}/data has shape {sh:?}: expected 4 dimensions")));
        }
        let fingerprint = datacube_fingerprint(&d, path)?;
        let g = f.group(&group).map_err(h5::err(path))?;
        let complete = f.group(APP).ok().and_then(|a| int_attr(&a, "complete")).map(|v| v != 0);
        Ok(EmdFile {
            path: path.to_path_buf(),
            shape: [sh[0], sh[1], sh[2], sh[3]],
            layout,
            fingerprint,
            complete,
            converted_fingerprint: str_attr(&g, "emdtui_fingerprint"),
            source_fingerprint: str_attr(&g, "emdtui_source_fingerprint"),
            source_path: str_attr(&g, "emdtui_source_path"),
            group,
        })
    }

    fn cache_groups(&self, f: &hdf5::File) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (base, kind_default) in [(format!("{}/cached", self.group), ""), (APP_CACHE.to_string(), "emdtui")] {
            if let Ok(g) = f.group(&base) {
                for n in g.member_names().unwrap_or_default() {
                    if g.group(&n).is_ok() {
                        out.push((format!("{base}/{n}"), kind_default.to_string()));
                    }
                }
            }
        }
        out
    }

    /// Every cached result with its validity.
    pub fn list_caches(&self) -> Result<Vec<CacheEntry>> {
        with_read(&self.path, |f| self.list_in(f))
    }

    fn list_in(&self, f: &hdf5::File) -> Result<Vec<CacheEntry>> {
        let mut v = Vec::new();
        for (p, kind) in self.cache_groups(f) {
            let Ok(g) = f.group(&p) else { continue };
            let validity = cache_validity(&g, &self.fingerprint);
            let shape = g.dataset("data").map(|d| d.shape()).unwrap_or_default();
            v.push(CacheEntry {
                name: p.rsplit('/').next().unwrap_or("").to_string(),
                kind: if kind.is_empty() { str_attr(&g, "python_class").unwrap_or_default() } else { kind },
                valid: validity.is_ok(),
                reason: validity.err().unwrap_or_default(),
                params: str_attr(&g, "emdtui_params")
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(serde_json::Value::Null),
                created: str_attr(&g, "emdtui_created").unwrap_or_default(),
                version: str_attr(&g, "emdtui_version").unwrap_or_default(),
                shape,
                path: format!("/{p}"),
            });
        }
        Ok(v)
    }

    /// The computation log.
    pub fn log(&self) -> Result<Vec<String>> {
        with_read(&self.path, |f| Ok(read_log(f)))
    }

    /// The cached overviews when all of them are present and valid.
    pub fn read_overviews(&self) -> Result<Option<Overviews>> {
        Ok(self.read_overviews_masked()?.map(|(o, _)| o))
    }

    /// The cached overviews and the detector pixels that were masked in them (sorted flat
    /// indices; none for caches written without the list).
    pub fn read_overviews_masked(&self) -> Result<Option<(Overviews, Vec<usize>)>> {
        with_read(&self.path, |f| self.overviews_in(f))
    }

    fn overviews_in(&self, f: &hdf5::File) -> Result<Option<(Overviews, Vec<usize>)>> {
        let base = format!("{}/cached", self.group);
        let mut params = None;
        let mut get = |name: &str| -> Option<Vec<f32>> {
            let g = f.group(&format!("{base}/{name}")).ok()?;
            cache_validity(&g, &self.fingerprint).ok()?;
            if params.is_none() {
                params = str_attr(&g, "emdtui_params").and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
            }
            g.dataset("data").ok()?.read_raw::<f32>().ok()
        };
        let [rx, ry, qx, qy] = self.shape;
        let (Some(sum), Some(bf), Some(adf), Some(com_x), Some(com_y), Some(mean_dp), Some(max_dp)) = (
            get("virtual_sum"),
            get("virtual_bf"),
            get("virtual_adf"),
            get("com_x"),
            get("com_y"),
            get("dp_mean"),
            get("dp_max"),
        ) else {
            return Ok(None);
        };
        let mask = get(MASK_ENTRY);
        let n = rx * ry;
        if [&sum, &bf, &adf, &com_x, &com_y].iter().any(|v| v.len() != n)
            || mean_dp.len() != qx * qy
            || max_dp.len() != qx * qy
        {
            return Ok(None);
        }
        let Some(params) = params else { return Ok(None) };
        let Ok(geometry) = serde_json::from_value::<Geometry>(params["geometry"].clone()) else { return Ok(None) };
        let bad: Vec<usize> = serde_json::from_value(params["bad_pixels_masked"].clone()).unwrap_or_default();
        let ov = Overviews {
            scan_rows: rx,
            scan_cols: ry,
            det_rows: qx,
            det_cols: qy,
            geometry,
            sum,
            bf,
            adf,
            com_x,
            com_y,
            mask: mask.filter(|m| m.len() == n),
            mean_dp,
            max_dp,
            positions_done: params["positions_done"].as_u64().unwrap_or(n as u64) as usize,
            complete: params["complete"].as_bool().unwrap_or(true),
        };
        Ok(Some((ov, bad)))
    }

    /// Store overviews computed from this datacube (replacing older ones), under the writer lock.
    pub fn write_overviews(&self, ov: &Overviews) -> Result<()> {
        let fp = self.fingerprint.clone();
        let group = self.group.clone();
        with_write(&self.path, WRITE_WAIT, |f| {
            write_overviews_into(f, &self.path, &group, ov, &fp)?;
            append_log(f, &self.path, &format!("overviews written (geometry {:?})", ov.geometry))
        })
    }

    /// Remove stale caches only; returns their names.
    pub fn remove_stale(&self) -> Result<Vec<String>> {
        let fp = self.fingerprint.clone();
        with_write(&self.path, WRITE_WAIT, |f| {
            let mut removed = Vec::new();
            for (p, _) in self.cache_groups(f) {
                let Ok(g) = f.group(&p) else { continue };
                if let Err(why) = cache_validity(&g, &fp) {
                    drop(g);
                    f.unlink(&p).map_err(h5::err(&self.path))?;
                    removed.push(format!("/{p} ({why})"));
                }
            }
            if !removed.is_empty() {
                append_log(f, &self.path, &format!("removed stale caches: {}", removed.join(", ")))?;
            }
            Ok(removed)
        })
    }

    /// Whether `source` (e.g. the original `.mib` dataset) is still the data this file was converted
    /// from (None when the file does not record its source).
    pub fn source_matches(&self, source: &dyn Dataset) -> Option<bool> {
        self.source_fingerprint.as_ref().map(|f| *f == source.fingerprint())
    }

    /// Whether the datacube is unchanged since emdtui converted it (None when not converted by emdtui).
    pub fn datacube_unchanged(&self) -> Option<bool> {
        self.converted_fingerprint.as_ref().map(|f| *f == self.fingerprint)
    }

    /// Run `f` on the file opened read-write under the writer lock (for other cache writers, e.g. the FFT).
    pub fn with_write<R>(&self, f: impl FnOnce(&hdf5::File) -> Result<R>) -> Result<R> {
        with_write(&self.path, WRITE_WAIT, f)
    }
}

/// One 2-D result to store as an EMD slice (RealSlice / DiffractionSlice).
struct Slice<'a> {
    name: &'a str,
    class: &'a str,
    data: &'a [f32],
    shape: [usize; 2],
    /// (name, units, step) of the two axes.
    dims: [(&'a str, &'a str, f64); 2],
}

fn write_slice_group(
    parent: &hdf5::Group,
    path: &Path,
    sl: &Slice,
    params: &serde_json::Value,
    fp: &str,
) -> Result<()> {
    let e = h5::err(path);
    if parent.link_exists(sl.name) {
        parent.unlink(sl.name).map_err(&e)?;
    }
    let g = parent.create_group(sl.name).map_err(&e)?;
    set_str_attr(&g, "emd_group_type", "array").map_err(&e)?;
    set_str_attr(&g, "python_class", sl.class).map_err(&e)?;
    let d = g
        .new_dataset_builder()
        .with_data(&ndarray::ArrayView2::from_shape(sl.shape, sl.data).map_err(|x| Error::Invalid(x.to_string()))?)
        .create("data")
        .map_err(&e)?;
    set_str_attr(&d, "units", "intensity").map_err(&e)?;
    for (k, (n, u, step)) in sl.dims.iter().enumerate() {
        write_dim(&g, k, n, u, 0.0, *step).map_err(&e)?;
    }
    stamp_cache(&g, params, fp).map_err(&e)
}

/// Write overviews into an open file (used by the conversion and by [`EmdFile::write_overviews`]).
pub fn write_overviews_into(f: &hdf5::File, path: &Path, group: &str, ov: &Overviews, fp: &str) -> Result<()> {
    write_overviews_masked(f, path, group, ov, fp, &[])
}

/// [`write_overviews_into`] for overviews computed with the detector pixels `bad` (flat indices)
/// masked: the list is part of the provenance (`bad_pixels_masked` in `emdtui_params`), so a
/// reader that would mask other pixels does not take them for its own.
pub fn write_overviews_masked(
    f: &hdf5::File,
    path: &Path,
    group: &str,
    ov: &Overviews,
    fp: &str,
    bad: &[usize],
) -> Result<()> {
    let e = h5::err(path);
    let base = format!("{group}/cached");
    let cached = match f.group(&base) {
        Ok(g) => g,
        Err(_) => {
            let g = f.create_group(&base).map_err(&e)?;
            set_str_attr(&g, "emd_group_type", "node").map_err(&e)?;
            set_str_attr(&g, "python_class", "Node").map_err(&e)?;
            g
        }
    };
    // calibration for the dims
    let (r, ru, q, qu) = match f.group(group) {
        Ok(g) => {
            let a = dim_info(&g, 0, ov.scan_rows, path, group).ok().flatten();
            let b = dim_info(&g, 2, ov.det_rows, path, group).ok().flatten();
            (
                a.as_ref().map(|x| x.1).unwrap_or(1.0),
                a.map(|x| x.3).unwrap_or_else(|| "pixels".into()),
                b.as_ref().map(|x| x.1).unwrap_or(1.0),
                b.map(|x| x.3).unwrap_or_else(|| "pixels".into()),
            )
        }
        Err(_) => (1.0, "pixels".into(), 1.0, "pixels".into()),
    };
    let params = serde_json::json!({
        "kind": "overviews",
        "geometry": ov.geometry,
        "positions_done": ov.positions_done,
        "complete": ov.complete,
        "bad_pixels_masked": bad,
    });
    let sshape = [ov.scan_rows, ov.scan_cols];
    let dshape = [ov.det_rows, ov.det_cols];
    let rd = [("Rx", ru.as_str(), r), ("Ry", ru.as_str(), r)];
    let qd = [("Qx", qu.as_str(), q), ("Qy", qu.as_str(), q)];
    let real = |name, data| Slice { name, class: "RealSlice", data, shape: sshape, dims: rd };
    let diff = |name, data| Slice { name, class: "DiffractionSlice", data, shape: dshape, dims: qd };
    let mut items = vec![
        real("com_x", &ov.com_x),
        real("com_y", &ov.com_y),
        diff("dp_max", &ov.max_dp),
        diff("dp_mean", &ov.mean_dp),
        real("virtual_adf", &ov.adf),
        real("virtual_bf", &ov.bf),
        real("virtual_sum", &ov.sum),
    ];
    if let Some(m) = &ov.mask {
        items.push(real(MASK_ENTRY, m));
    }
    for sl in &items {
        write_slice_group(&cached, path, sl, &params, fp)?;
    }
    Ok(())
}
