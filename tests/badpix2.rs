//! Bad pixels everywhere a derived image is made (issue 13, last gaps): the overviews `convert`
//! stores in the EMD are masked like `emdtui overview`'s (the datacube stays bit-exact), the
//! masked list is in the cache's provenance; custom detectors and `mask:PATH` images are masked.

mod common;

use common::{emdtui, testdata};
use emdtui::dataset::{self, OpenOptions};
use emdtui::ops::overview::{GeometryChoice, Origin, OverviewJob};
use emdtui::store::emd::EmdFile;
use std::path::{Path, PathBuf};

fn hot_pixel_files() -> Vec<PathBuf> {
    let d = testdata().join("rosettasciio");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mib") && p.to_string_lossy().contains("hot_pixel_52x_39y"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 2, "the two hot-pixel files in {}", d.display());
    v
}

fn read_npy(p: &Path) -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    a.iter().copied().collect()
}

fn run_ok(args: &[&str]) {
    let o = emdtui().args(args).output().unwrap();
    assert!(o.status.success(), "emdtui {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * x.abs().max(1.0))
}

fn job(keep: bool) -> OverviewJob {
    OverviewJob {
        geometry: GeometryChoice::Auto { fallback: emdtui::compute::overview::default_geometry(8, 8) },
        compute: Default::default(),
        cache_dir: None,
        emd_cache: true,
        keep_bad_pixels: keep,
        user_bad: Vec::new(),
    }
}

#[test]
fn converted_overviews_are_masked_like_overview_and_the_datacube_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for mib in hot_pixel_files() {
        let name = mib.file_stem().unwrap().to_string_lossy().to_string();
        let emd = dir.path().join(format!("{name}.emd"));
        let kept = dir.path().join(format!("{name}_kept.emd"));
        run_ok(&["convert", mib.to_str().unwrap(), "-o", emd.to_str().unwrap()]);
        run_ok(&["--keep-bad-pixels", "convert", mib.to_str().unwrap(), "-o", kept.to_str().unwrap()]);
        let (ov, bad) = EmdFile::open(&emd).unwrap().read_overviews_masked().unwrap().expect("overviews cached");
        let (ovk, badk) = EmdFile::open(&kept).unwrap().read_overviews_masked().unwrap().expect("overviews cached");
        let hot = 39 * ov.det_cols + 52;
        assert!(bad.contains(&hot), "{name}: masked {bad:?}");
        assert!(bad.len() <= 3, "{name}: masked {bad:?}");
        assert!(badk.is_empty(), "{name}: --keep-bad-pixels masks nothing: {badk:?}");
        // the stored overviews equal the overview command's (masked) ones
        let sum = dir.path().join(format!("{name}_sum.npy"));
        let mean = dir.path().join(format!("{name}_mean.npy"));
        run_ok(&["overview", mib.to_str().unwrap(), "--no-cache", "--detector", "sum", "-o", sum.to_str().unwrap()]);
        run_ok(&["overview", mib.to_str().unwrap(), "--no-cache", "--detector", "mean", "-o", mean.to_str().unwrap()]);
        let (sum, mean) = (read_npy(&sum), read_npy(&mean));
        assert!(close(&ov.sum, &sum), "{name}: stored sum {:?} != overview {:?}", ov.sum, sum);
        assert!(close(&ov.mean_dp, &mean), "{name}: stored mean pattern differs from the overview's");
        // ... and not the unmasked ones: the hot pixel is in every frame
        let hot_counts = ovk.mean_dp[hot] - ov.mean_dp[hot];
        assert!(hot_counts > 5.0, "{name}: the hot pixel has {} counts per frame above its repair", hot_counts);
        let diff: f32 = ovk.sum.iter().zip(&ov.sum).map(|(a, b)| a - b).sum();
        let n = ov.sum.len() as f32;
        assert!((diff / n - hot_counts).abs() < 0.01 * hot_counts, "{name}: {diff} / {n} vs {hot_counts}");
        assert!(ovk.sum.iter().zip(&ov.sum).all(|(a, b)| a > b), "{name}: the hot pixel is taken out of every frame");
        // masking is for derived images only: the datacube is bit-exact
        let (src, out) = (
            dataset::open(&mib, &OpenOptions::default()).unwrap(),
            dataset::open(&emd, &OpenOptions::default()).unwrap(),
        );
        assert_eq!(src.scan().positions(), out.scan().positions());
        for p in 0..src.scan().positions() {
            assert_eq!(src.frame_u32(p).unwrap(), out.frame_u32(p).unwrap(), "{name}: frame {p}");
        }
        // the viewer and `overview` take the EMD's cache only when it is masked as they mask
        let (o, origin) =
            emdtui::ops::overview::overview(out.as_ref(), &job(false), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::EmdCache, "{name}: the masked cache is used when masking");
        assert!(close(&o.sum, &ov.sum));
        let (o, origin) =
            emdtui::ops::overview::overview(out.as_ref(), &job(true), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::Computed, "{name}: a masked cache is not taken for an unmasked one");
        assert!(close(&o.sum, &ovk.sum), "{name}: --keep-bad-pixels recomputes the unmasked sum");
        let kds = dataset::open(&kept, &OpenOptions::default()).unwrap();
        let (_, origin) =
            emdtui::ops::overview::overview(kds.as_ref(), &job(false), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::Computed, "{name}: an unmasked cache is not taken for a masked one");
        let (_, origin) =
            emdtui::ops::overview::overview(kds.as_ref(), &job(true), &emdtui::jobs::Progress::new("t", 0), &|_| {})
                .unwrap();
        assert_eq!(origin, Origin::EmdCache, "{name}");
    }
}
