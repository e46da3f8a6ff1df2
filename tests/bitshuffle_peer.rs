//! Datacube chunks compressed by emdtui with bitshuffle + LZ4 (HDF5 filter 32008) read back
//! identically through emdtui's own decoder and through h5py + hdf5plugin (the peers' way; that
//! part skips with a printed reason when the Python peer readers are missing).

mod common;

use emdtui::format::{bitshuffle, h5};
use std::path::Path;

/// Small counts, as a counting detector gives: (3, 5, 64, 64) u16.
fn data() -> Vec<u16> {
    (0..3 * 5 * 64 * 64u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 27) % 23) as u16 * (i % 7 == 0) as u16).collect()
}

fn write(path: &Path, v: &[u16]) {
    let f = h5::create_trunc(path).unwrap();
    let d = f
        .new_dataset::<u16>()
        .shape([3, 5, 64, 64])
        .chunk([1, 2, 64, 64])
        .add_filter(bitshuffle::FILTER_ID as _, &bitshuffle::cd_values(2))
        .create("d")
        .unwrap();
    let frame = 64 * 64;
    for r in 0..3 {
        for c0 in (0..5).step_by(2) {
            let mut chunk = vec![0u16; 2 * frame]; // the last chunk of a row is padded with zeros
            let n = (5 - c0).min(2);
            let at = (r * 5 + c0) * frame;
            chunk[..n * frame].copy_from_slice(&v[at..at + n * frame]);
            let z = bitshuffle::compress(bytemuck::cast_slice(&chunk), 2);
            h5::write_chunk_raw(path, &d, &[r as u64, c0 as u64, 0, 0], &z).unwrap();
        }
    }
}

#[test]
fn bitshuffle_lz4_chunks_read_back_in_emdtui_and_hdf5plugin() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.h5");
    let v = data();
    write(&p, &v);
    // emdtui's own decoder
    let f = h5::open_ro(&p).unwrap();
    let d = f.dataset("d").unwrap();
    let (mut raw, mut out) = (Vec::new(), vec![0u8; 2 * 64 * 64 * 2]);
    assert!(h5::read_chunk_raw(&p, &d, &[1, 2, 0, 0], &mut raw).unwrap());
    assert!(raw.len() < out.len() / 2, "compressed to {} of {} bytes", raw.len(), out.len());
    bitshuffle::decompress(&p, &raw, &mut out, 2).unwrap();
    let got: &[u16] = bytemuck::cast_slice(&out);
    let at = (5 + 2) * 64 * 64;
    assert_eq!(got, &v[at..at + 2 * 64 * 64]);
    // HDF5's own reads go through the filter emdtui registers
    assert_eq!(d.read_raw::<u16>().unwrap(), v, "H5Dread through the registered filter");
    drop((d, f));
    // the peers: h5py + hdf5plugin
    let Some((py, _)) = common::peer_python() else { return };
    let npy = dir.path().join("d.npy");
    let code = "import sys, h5py, hdf5plugin, numpy as np; np.save(sys.argv[2], h5py.File(sys.argv[1], 'r')['d'][:])";
    let o =
        std::process::Command::new(py).args(["-c", code, p.to_str().unwrap(), npy.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "python: {}", String::from_utf8_lossy(&o.stderr));
    let a: ndarray::Array4<u16> = ndarray_npy::read_npy(&npy).unwrap();
    assert_eq!(a.shape(), &[3, 5, 64, 64]);
    assert_eq!(a.iter().copied().collect::<Vec<u16>>(), v, "h5py + hdf5plugin read other values");
}

#[test]
fn convert_compress_lz4_is_lossless_smaller_and_read_by_the_peers() {
    let dir = tempfile::tempdir().unwrap();
    let spec = emdtui::format::synth::SynthSpec { rows: 6, cols: 7, ..Default::default() };
    let mib = common::synth(dir.path(), "s.mib", &spec);
    let (raw, lz) = (dir.path().join("raw.emd"), dir.path().join("lz4.emd"));
    for (out, extra) in [(&raw, None), (&lz, Some("lz4"))] {
        let mut c = common::command();
        c.args(["convert", mib.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        if let Some(x) = extra {
            c.args(["--compress", x]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&lz) * 3 < size(&raw), "lz4 output {} bytes vs {} uncompressed", size(&lz), size(&raw));
    // emdtui reads every frame back exactly (parallel decode path)
    let a = emdtui::dataset::open(&raw, &Default::default()).unwrap();
    let b = emdtui::dataset::open(&lz, &Default::default()).unwrap();
    for p in 0..42 {
        assert_eq!(a.frame_u32(p).unwrap(), b.frame_u32(p).unwrap(), "frame {p}");
        assert_eq!(b.frame_u32(p).unwrap(), emdtui::format::synth::expected_frame(&spec, p), "frame {p}");
    }
    let Some((py, _)) = common::peer_python() else { return };
    let code = "import sys, h5py, hdf5plugin, numpy as np\n\
                a = h5py.File(sys.argv[1], 'r')['datacube_root/datacube/data'][:]\n\
                b = h5py.File(sys.argv[2], 'r')['datacube_root/datacube/data'][:]\n\
                assert a.dtype == b.dtype and np.array_equal(a, b), 'datacubes differ'\n\
                import py4DSTEM\n\
                d = py4DSTEM.read(sys.argv[2], datapath='datacube_root/datacube')\n\
                assert np.array_equal(np.asarray(d.data), a), 'py4DSTEM read other values'\n";
    let o = std::process::Command::new(py)
        .args(["-c", code, raw.to_str().unwrap(), lz.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "python: {}", String::from_utf8_lossy(&o.stderr));
}
