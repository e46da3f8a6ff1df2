//! Navigation images (`--nav`: Nion Swift `.ndata` and `.h5`, `.npy`, `.tif`) read from files
//! written the way their writers write them, untrusted ones refused with one error; and the HDF5
//! tree of `emdtui info --tree` on an emdtui EMD and a py4DSTEM file.

mod common;

use common::nion::{nion_metadata, npy_bytes, ramp, write_ndata};

use emdtui::format::nav::{self, NavKind};
use emdtui::format::synth::SynthSpec;
use std::io::Write;
use std::path::PathBuf;

#[test]
fn ndata_as_nion_writes_it_stored_and_deflated() {
    let dir = tempfile::tempdir().unwrap();
    let (v, b) = ramp(6, 8);
    for (name, m) in
        [("stored.ndata", zip::CompressionMethod::Stored), ("deflated.ndata", zip::CompressionMethod::Deflated)]
    {
        let p = dir.path().join(name);
        write_ndata(&p, &npy_bytes("<f4", "(6, 8)", &b), Some(&nion_metadata(6, 8)), m);
        let img = nav::read(&p).unwrap();
        assert_eq!((img.kind, img.rows, img.cols, img.dtype.as_str()), (NavKind::Ndata, 6, 8, "float32"));
        assert_eq!(img.data, v);
        assert_eq!(img.title.as_deref(), Some("HAADF 1"));
        let c = img.calibration.as_ref().unwrap();
        assert_eq!((c[0].scale, c[0].units.as_str(), c[1].offset), (0.25, "nm", -1.5));
        assert_eq!(img.metadata["metadata"]["hardware_source"]["pixel_time_us"], 16.0);
        assert_eq!(img.range(), Some((0.0, 23.5)));
        assert!(img.check_scan(6, 8).is_ok());
        let e = img.check_scan(8, 6).unwrap_err();
        assert!(e.contains("navigation image is 6x8 but the scan is 8x6 (transposed?)"), "{e}");
    }
}

#[test]
fn nion_h5_npy_and_tiff() {
    let dir = tempfile::tempdir().unwrap();
    let (v, b) = ramp(4, 5);
    // Nion Swift's large items: dataset `data`, JSON `properties` attribute on it
    let h5p = dir.path().join("item.h5");
    {
        let f = hdf5::File::create(&h5p).unwrap();
        let d = f.new_dataset::<u16>().shape([1, 4, 5]).create("data").unwrap();
        let u: Vec<u16> = (0..20).collect();
        d.write_raw(&u).unwrap();
        let props: hdf5::types::VarLenUnicode = nion_metadata(4, 5).parse().unwrap();
        d.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(())
            .create("properties")
            .unwrap()
            .write_scalar(&props)
            .unwrap();
    }
    let img = nav::read(&h5p).unwrap();
    assert_eq!((img.kind, img.rows, img.cols, img.dtype.as_str()), (NavKind::NionH5, 4, 5, "uint16"));
    assert_eq!(img.data, (0..20).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(img.calibration.unwrap()[1].units, "nm");

    let npy = dir.path().join("nav.npy");
    std::fs::write(&npy, npy_bytes("<f4", "(4, 5)", &b)).unwrap();
    let img = nav::read(&npy).unwrap();
    assert_eq!((img.kind, img.rows, img.cols), (NavKind::Npy, 4, 5));
    assert_eq!(img.data, v);
    assert!(img.calibration.is_none());

    let tif = dir.path().join("nav.tif");
    {
        let f = std::fs::File::create(&tif).unwrap();
        let mut e = tiff::encoder::TiffEncoder::new(f).unwrap();
        let u: Vec<u16> = (0..20).map(|i| i * 3).collect();
        e.write_image::<tiff::encoder::colortype::Gray16>(5, 4, &u).unwrap();
    }
    let img = nav::read(&tif).unwrap();
    assert_eq!((img.kind, img.rows, img.cols, img.dtype.as_str()), (NavKind::Tiff, 4, 5, "uint16"));
    assert_eq!(img.data[19], 57.0);
}

/// One error naming the file for each kind of bad input, in bounded memory and time.
#[test]
fn untrusted_files_get_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &PathBuf| {
        let e = nav::read(p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        e
    };
    // a data.npy that claims 10^10 float64 (80 GB): refused from its header
    let huge = dir.path().join("huge.ndata");
    write_ndata(&huge, &npy_bytes("<f8", "(100000, 100000)", &[]), None, zip::CompressionMethod::Deflated);
    assert!(err(&huge).contains("larger than"));
    // a zip bomb: a small header followed by 256 MiB of zeros that deflate to ~256 KiB; only the
    // 64 bytes the header promises are inflated
    let bomb = dir.path().join("bomb.ndata");
    {
        let mut npy = npy_bytes("<f4", "(4, 4)", &[0u8; 64]);
        npy.resize(npy.len() + (256 << 20), 0);
        write_ndata(&bomb, &npy, Some(&nion_metadata(4, 4)), zip::CompressionMethod::Deflated);
        assert!(std::fs::metadata(&bomb).unwrap().len() < 2 << 20);
    }
    let t = std::time::Instant::now();
    let img = nav::read(&bomb).unwrap();
    assert_eq!((img.rows, img.cols), (4, 4));
    eprintln!("bomb read in {:?}", t.elapsed());
    // truncated zip
    let good = dir.path().join("good.ndata");
    write_ndata(
        &good,
        &npy_bytes("<f4", "(6, 8)", &ramp(6, 8).1),
        Some(&nion_metadata(6, 8)),
        zip::CompressionMethod::Stored,
    );
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.ndata");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(err(&cut).contains("not a readable zip"));
    // data.npy shorter than its header says
    let short = dir.path().join("short.ndata");
    write_ndata(&short, &npy_bytes("<f4", "(6, 8)", &[0u8; 100]), None, zip::CompressionMethod::Stored);
    assert!(err(&short).contains("truncated: 100 of 192"));
    // wrong dtype, wrong rank, broken JSON, missing member, not a zip at all
    let cplx = dir.path().join("complex.ndata");
    write_ndata(&cplx, &npy_bytes("<c8", "(2, 2)", &[0u8; 32]), None, zip::CompressionMethod::Stored);
    assert!(err(&cplx).contains("complex"));
    let cube = dir.path().join("cube.ndata");
    write_ndata(&cube, &npy_bytes("<u1", "(2, 2, 2)", &[0u8; 8]), None, zip::CompressionMethod::Stored);
    assert!(err(&cube).contains("must be 2-D"));
    let json = dir.path().join("json.ndata");
    write_ndata(&json, &npy_bytes("<u1", "(2, 2)", &[0u8; 4]), Some("{not json"), zip::CompressionMethod::Stored);
    assert!(err(&json).contains("not valid JSON"));
    let nodata = dir.path().join("nodata.ndata");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&nodata).unwrap());
        z.start_file("metadata.json", zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(b"{}").unwrap();
        z.finish().unwrap();
    }
    assert!(err(&nodata).contains("has no data.npy"));
    let text = dir.path().join("text.ndata");
    std::fs::write(&text, b"hello").unwrap();
    assert!(err(&text).contains("not a readable zip"));
    let h5 = dir.path().join("plain.h5");
    hdf5::File::create(&h5).unwrap();
    assert!(err(&h5).contains("no dataset 'data'"));
    assert!(err(&dir.path().join("x.png")).contains("must be .ndata"));
}

#[test]
fn info_nav_prints_metadata_and_checks_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mib = common::synth(dir.path(), "s.mib", &SynthSpec { rows: 6, cols: 8, ..SynthSpec::default() });
    let nd = dir.path().join("haadf.ndata");
    write_ndata(
        &nd,
        &npy_bytes("<f4", "(6, 8)", &ramp(6, 8).1),
        Some(&nion_metadata(6, 8)),
        zip::CompressionMethod::Stored,
    );
    let o = common::emdtui().args(["info", "--nav"]).arg(&nd).arg(&mib).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("6 x 8 float32") && s.contains("HAADF 1") && s.contains("matches the scan"), "{s}");
    assert!(s.contains("rows 0 + 0.25 nm/px"), "{s}");
    let o = common::emdtui().args(["info", "--json", "--nav"]).arg(&nd).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((j["rows"].as_u64(), j["kind"].as_str()), (Some(6), Some("ndata")));
    // a navigation image of another shape: one error, exit code 1
    let other = dir.path().join("other.ndata");
    write_ndata(&other, &npy_bytes("<f4", "(8, 6)", &ramp(8, 6).1), None, zip::CompressionMethod::Stored);
    let o = common::emdtui().args(["info", "--nav"]).arg(&other).arg(&mib).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("navigation image is 8x6 but the scan is 6x8 (transposed?)"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn info_tree_of_an_emdtui_emd_and_a_py4dstem_file() {
    let dir = tempfile::tempdir().unwrap();
    let mib = common::synth(dir.path(), "s.mib", &SynthSpec { rows: 6, cols: 8, ..SynthSpec::default() });
    let emd = dir.path().join("s.emd");
    common::emdtui().args(["convert"]).arg(&mib).arg("-o").arg(&emd).assert().success();
    let o = common::emdtui().args(["info", "--tree"]).arg(&emd).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("  data  6x8x256x256 uint16 chunks "), "{s}");
    assert!(s.contains("@emd_group_type = "), "{s}");
    assert!(s.contains("emdtui caches:") && s.contains("valid"), "{s}");
    let o = common::emdtui().args(["info", "--tree", "--json"]).arg(&emd).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let data =
        j["tree"].as_array().unwrap().iter().find(|n| n["path"].as_str().unwrap().ends_with("datacube/data")).cloned();
    let data = data.expect("datacube in the tree");
    assert_eq!(data["shape"], serde_json::json!([6, 8, 256, 256]));
    assert_eq!(data["logical_bytes"].as_u64(), Some(6 * 8 * 256 * 256 * 2));
    assert!(data["storage_bytes"].as_u64().unwrap() > 0);

    let Some((py, _)) = common::peer_python() else { return };
    let p4 = dir.path().join("p4.h5");
    let code = format!(
        "import numpy as np, py4DSTEM\ndc = py4DSTEM.DataCube(np.arange(4*5*6*7, dtype=np.float32).reshape(4,5,6,7))\npy4DSTEM.save(r'{}', dc, mode='o')",
        p4.display()
    );
    let st = std::process::Command::new(py).args(["-c", &code]).status().unwrap();
    assert!(st.success());
    let o = common::emdtui().args(["info", "--tree"]).arg(&p4).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("4x5x6x7 float32"), "{s}");
    assert!(s.contains("@emd_group_type"), "{s}");
}
