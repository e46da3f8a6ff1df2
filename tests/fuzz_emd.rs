//! Hostile EMD files: malformed attributes, wrong shapes, wrong dtypes, missing datasets, dims
//! that lie, flipped bytes in the data. Opening, reading frames, listing caches and reading
//! overviews must give a value or a clear error naming the file, never a panic.
//! CI-sized (proptest, 64 cases); longer: `PROPTEST_CASES=2000 cargo test --release --test fuzz_emd`.

use emdtui::dataset;
use emdtui::format::synth::{self, SynthSpec};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A small valid EMD (converted from a synthetic scan), made once.
fn template() -> &'static PathBuf {
    static T: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &T.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let mib = d.path().join("t.mib");
        synth::write(&mib, &SynthSpec { rows: 3, cols: 4, depth: 12, hdr: true, ..Default::default() }, &|_, _| {})
            .unwrap();
        let out = d.path().join("t.emd");
        let ds = dataset::open(&mib, &Default::default()).unwrap();
        let p = emdtui::jobs::Progress::new("t", 0);
        emdtui::ops::convert::convert(ds.as_ref(), &out, &Default::default(), &p).unwrap();
        (d, out)
    })
    .1
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLink(&'static str),
    DeleteAttr(&'static str, &'static str),
    StringAttr(&'static str, &'static str, String),
    IntAttr(&'static str, &'static str, i64),
    /// Replace a dataset by one of another shape/type.
    ReplaceF32(&'static str, Vec<usize>),
    ReplaceU16(&'static str, Vec<usize>),
    /// Flip a byte somewhere in the second half of the file (raw chunk data).
    FlipDataByte(u64, u8),
}

const LINKS: &[&str] = &[
    "datacube_root/datacube/data",
    "datacube_root/datacube/dim0",
    "datacube_root/datacube/dim3",
    "datacube_root/datacube/cached/virtual_bf/data",
    "datacube_root/datacube/cached",
    "datacube_root/metadatabundle",
    "emdtui",
    "datacube_root",
];
const GROUPS: &[&str] =
    &["/", "datacube_root", "datacube_root/datacube", "datacube_root/datacube/cached/virtual_bf", "emdtui"];
const ATTRS: &[&str] = &[
    "emd_group_type",
    "version_major",
    "python_class",
    "emdtui_params",
    "emdtui_cache_format",
    "emdtui_source",
    "complete",
    "emdtui_fingerprint",
    "format_version",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let link = proptest::sample::select(LINKS);
    let group = proptest::sample::select(GROUPS);
    let attr = proptest::sample::select(ATTRS);
    let shape = proptest::collection::vec(0usize..6, 0..5);
    prop_oneof![
        link.clone().prop_map(Mutation::DeleteLink),
        (group.clone(), attr.clone()).prop_map(|(g, a)| Mutation::DeleteAttr(g, a)),
        (group.clone(), attr.clone(), "[ -~]{0,12}").prop_map(|(g, a, v)| Mutation::StringAttr(g, a, v)),
        (group, attr, any::<i64>()).prop_map(|(g, a, v)| Mutation::IntAttr(g, a, v)),
        (link.clone(), shape.clone()).prop_map(|(l, s)| Mutation::ReplaceF32(l, s)),
        (link, shape).prop_map(|(l, s)| Mutation::ReplaceU16(l, s)),
        (any::<u64>(), any::<u8>()).prop_map(|(o, b)| Mutation::FlipDataByte(o, b)),
    ]
}

fn apply(path: &Path, m: &Mutation) {
    if let Mutation::FlipDataByte(o, b) = m {
        let mut bytes = std::fs::read(path).unwrap();
        let half = bytes.len() / 2;
        let i = half + (*o as usize % (bytes.len() - half));
        bytes[i] ^= b | 1;
        std::fs::write(path, bytes).unwrap();
        return;
    }
    let f = emdtui::format::h5::open_rw(path).unwrap();
    let _ = (|| -> hdf5::Result<()> {
        match m {
            Mutation::DeleteLink(l) => {
                let (parent, name) = l.rsplit_once('/').unwrap_or(("/", l));
                f.group(parent)?.unlink(name)?;
            }
            Mutation::DeleteAttr(g, a) => f.group(g)?.delete_attr(a)?,
            Mutation::StringAttr(g, a, v) => {
                let g = f.group(g)?;
                let _ = g.delete_attr(a);
                let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
                g.new_attr::<hdf5::types::VarLenUnicode>().shape(()).create(*a)?.write_scalar(&v)?;
            }
            Mutation::IntAttr(g, a, v) => {
                let g = f.group(g)?;
                let _ = g.delete_attr(a);
                g.new_attr::<i64>().shape(()).create(*a)?.write_scalar(v)?;
            }
            Mutation::ReplaceF32(l, s) | Mutation::ReplaceU16(l, s) => {
                let (parent, name) = l.rsplit_once('/').unwrap_or(("/", l));
                let g = f.group(parent)?;
                let _ = g.unlink(name);
                let n: usize = s.iter().product();
                if matches!(m, Mutation::ReplaceF32(..)) {
                    g.new_dataset::<f32>().shape(s.clone()).create(name)?.write_raw(&vec![1.5f32; n])?;
                } else {
                    g.new_dataset::<u16>().shape(s.clone()).create(name)?.write_raw(&vec![7u16; n])?;
                }
            }
            Mutation::FlipDataByte(..) => unreachable!(),
        }
        Ok(())
    })();
}

/// Everything a user can do with a file; errors are fine, panics are not.
fn exercise(path: &Path) {
    if let Ok(ds) = dataset::open(path, &Default::default()) {
        let n = ds.scan().positions().min(16);
        for p in 0..n {
            let _ = ds.frame_u32(p);
        }
        let _ = ds.fingerprint();
    } else if let Err(e) = dataset::open(path, &Default::default()) {
        let msg = e.to_string();
        assert!(msg.contains(path.file_name().unwrap().to_str().unwrap()), "error does not name the file: {msg}");
    }
    if let Ok(f) = emdtui::store::emd::EmdFile::open(path) {
        let _ = f.list_caches();
        let _ = f.read_overviews();
        let _ = f.log();
    }
    let _ = emdtui::store::fft::FftCache::open(path);
}

/// CI-sized by default; `PROPTEST_CASES=N` for a long run.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn mutated_emd_files_never_panic(muts in proptest::collection::vec(mutation(), 1..4)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.emd");
        std::fs::copy(template(), &p).unwrap();
        for m in &muts {
            apply(&p, m);
        }
        exercise(&p);
    }
}

#[test]
fn specific_hostile_files_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Mutation, &str)> = vec![
        ("nodata.emd", Mutation::DeleteLink("datacube_root/datacube/data"), ""),
        ("rank.emd", Mutation::ReplaceU16("datacube_root/datacube/data", vec![3, 4, 5]), "rank"),
        ("empty.emd", Mutation::ReplaceU16("datacube_root/datacube/data", vec![0, 4, 8, 8]), ""),
        ("dims.emd", Mutation::ReplaceF32("datacube_root/datacube/dim0", vec![7]), "dim"),
    ];
    for (name, m, needle) in cases {
        let p = d.path().join(name);
        std::fs::copy(template(), &p).unwrap();
        apply(&p, &m);
        match dataset::open(&p, &Default::default()) {
            Ok(ds) => panic!("{name}: opened a hostile file as {:?}", ds.info().scan),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(name), "{name}: {msg}");
                assert!(msg.to_lowercase().contains(needle), "{name}: {msg}");
            }
        }
    }
    // stale provenance is never shown as valid
    let p = d.path().join("stale.emd");
    std::fs::copy(template(), &p).unwrap();
    apply(&p, &Mutation::StringAttr("datacube_root/datacube/cached/virtual_bf", "emdtui_source", "emd:other".into()));
    let f = emdtui::store::emd::EmdFile::open(&p).unwrap();
    let bf = f.list_caches().unwrap().into_iter().find(|c| c.name == "virtual_bf").unwrap();
    assert!(!bf.valid, "{bf:?}");
    assert!(f.read_overviews().unwrap().is_none());
}
