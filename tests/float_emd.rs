//! Float datacubes open like integer ones: a float32 EMD written by `emdtui convert --bin-mode
//! mean` (read back as the exact sums of a `--bin-mode sum` conversion) and one saved by py4DSTEM
//! (fractional values at 16-bit resolution), in the dataset reader, `info`, `overview`, `fft`,
//! `export` and the viewer.

mod common;

use emdtui::dataset::{Dataset, FrameBuf, ReadScratch};
use emdtui::format::synth::SynthSpec;
use emdtui::tui::harness::Harness;
use emdtui::tui::images::Graphics;
use std::path::Path;
use std::time::Duration;

fn all_counts(ds: &dyn Dataset) -> Vec<u32> {
    let mut buf = FrameBuf::new(ds.info().pixel_type);
    ds.read_positions(0, ds.scan().positions(), &mut buf, &mut ReadScratch::default()).unwrap();
    buf.to_u32()
}

fn dtype_note(ds: &dyn Dataset) -> String {
    ds.info().metadata.iter().find(|(k, _)| k == "dtype").map(|(_, v)| v.clone()).unwrap()
}

/// `info`, an overview, an FFT and a frame export of `emd` succeed; the viewer opens it and draws.
fn works_everywhere(emd: &Path, dir: &Path) {
    let e = emd.to_str().unwrap();
    common::emdtui().args(["info", e]).assert().success();
    let ov = dir.join("ov.npy");
    common::emdtui().args(["overview", e, "--detector", "bf", "-o", ov.to_str().unwrap()]).assert().success();
    let fr = dir.join("frame.npy");
    common::emdtui().args(["export", e, "--frame", "3", "-o", fr.to_str().unwrap()]).assert().success();
    common::emdtui().args(["fft", e, "--crop", "full"]).assert().success();
    let mut h = Harness::open(emd, 100, 30, Graphics::Halfblocks).unwrap();
    h.settle(Duration::from_secs(60));
    h.draw();
    let t = h.text();
    assert!(t.contains("float"), "the metadata pane names the float type:\n{t}");
    assert!(!h.state.status.to_lowercase().contains("error"), "{}", h.state.status);
}

#[test]
fn mean_binned_emd_reads_as_the_exact_sums() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { rows: 8, cols: 6, det: 256, depth: 12, ..Default::default() };
    let f = common::synth(dir.path(), "a.mib", &spec);
    let (mean, sum) = (dir.path().join("mean.emd"), dir.path().join("sum.emd"));
    for (out, mode) in [(&mean, "mean"), (&sum, "sum")] {
        common::emdtui()
            .args([
                "convert",
                f.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--bin-detector",
                "2",
                "--bin-mode",
                mode,
            ])
            .assert()
            .success();
    }
    let m = emdtui::dataset::open(&mean, &Default::default()).unwrap();
    let s = emdtui::dataset::open(&sum, &Default::default()).unwrap();
    assert!(dtype_note(m.as_ref()).contains("x 4, exact"), "{}", dtype_note(m.as_ref()));
    let (cm, cs) = (all_counts(m.as_ref()), all_counts(s.as_ref()));
    assert!(cs.iter().any(|&v| v > 0));
    assert_eq!(cm, cs, "mean x 4 = the sums");
    // a computed detector (not one stored by the conversion) agrees with the integer EMD's
    let rect = |e: &Path, o: &str| {
        let out = dir.path().join(o);
        common::emdtui()
            .args(["overview", e.to_str().unwrap(), "--detector", "rect:10:100,20:90", "--keep-bad-pixels"])
            .args(["--no-cache", "-o", out.to_str().unwrap()])
            .assert()
            .success();
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
        a
    };
    assert_eq!(rect(&mean, "m.npy"), rect(&sum, "s.npy"));
    let info = common::emdtui().args(["info", mean.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("float32"), "{}", String::from_utf8_lossy(&info.stdout));
    works_everywhere(&mean, dir.path());
}

#[test]
fn py4dstem_float_emd_opens() {
    let dir = tempfile::tempdir().unwrap();
    let Some((emd, vals)) = common::py4dstem_float_emd(dir.path()) else { return };
    let ds = emdtui::dataset::open(&emd, &Default::default()).unwrap();
    assert_eq!((ds.scan().rows, ds.scan().cols, ds.det()), (6, 5, (32, 32)));
    let note = dtype_note(ds.as_ref());
    let scale: f32 = note
        .split("round(value x ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("fractional data: {note}"));
    let max = vals.iter().cloned().fold(0f32, f32::max);
    assert!(scale.log2().fract() == 0.0 && max * scale <= 65535.0 && max * scale * 2.0 > 65535.0, "{note}, max {max}");
    let counts = all_counts(ds.as_ref());
    for (i, (&c, &v)) in counts.iter().zip(&vals).enumerate() {
        assert!((c as f32 - (v * scale).round()).abs() <= 1.0, "pixel {i}: {c} for {v} x {scale}");
    }
    works_everywhere(&emd, dir.path());
}
