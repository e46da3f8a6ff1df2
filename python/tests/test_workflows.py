"""Every analysis against the CLI's output on the same file (bit-exact: the same engine)."""

import json
from pathlib import Path

import numpy as np
import pytest

import emdtui
from conftest import TESTDATA, cli_error, cli_npy, run_cli


@pytest.mark.parametrize("detector", ["sum", "bf", "adf", "comx", "dpc-angle", "mean", "max", "point:128,128,1",
                                      "rect:100:150,90:160", "pattern:3,4,0.5"])
def test_overview_equals_cli(synth_mib, tmp_path, detector):
    ds = emdtui.open(synth_mib)
    got = ds.overview(detector, progress=False)
    want = cli_npy(tmp_path, "overview", synth_mib, "--detector", detector)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_overview_options_equal_cli(synth_mib, tmp_path):
    ds = emdtui.open(synth_mib, keep_bad_pixels=True)
    got = ds.overview("adf", inner=20, outer=60, center=(127.5, 128), no_cache=True)
    want = cli_npy(tmp_path, "overview", synth_mib, "--detector", "adf", "--inner", "20", "--outer", "60",
                   "--center", "127.5,128", "--no-cache", "--keep-bad-pixels")
    np.testing.assert_array_equal(got, want)
    got = ds.overview("bf", response="max")
    want = cli_npy(tmp_path, "overview", synth_mib, "--detector", "bf", "--response", "max", "--keep-bad-pixels")
    np.testing.assert_array_equal(got, want)
    mean = ds.overview("mean", roi=((1, 4), (2, 6)))
    want = cli_npy(tmp_path, "overview", synth_mib, "--detector", "mean", "--roi", "1:4,2:6", "--keep-bad-pixels")
    np.testing.assert_array_equal(mean, want)
    comx, comy = ds.overview("com")
    run_cli("overview", synth_mib, "--detector", "com", "-o", tmp_path / "c.npy", "--keep-bad-pixels")
    np.testing.assert_array_equal(comx, np.load(tmp_path / "c_comx.npy"))
    np.testing.assert_array_equal(comy, np.load(tmp_path / "c_comy.npy"))
    img, rep = ds.overview("bf", full=True)
    assert len(rep["geometry"]["center"]) == 2 and rep["geometry"]["bf_radius"] > 0


def test_overview_real_file_equals_cli(tmp_path):
    f = TESTDATA / "rosettasciio" / "001_4x2_6bit.mib"
    if not f.exists():
        pytest.skip("real test files not found")
    ds = emdtui.open(f, scan=(2, 4))
    for det in ("sum", "bf", "max"):
        want = cli_npy(tmp_path, "--scan", "2x4", "overview", f, "--detector", det)
        np.testing.assert_array_equal(ds.overview(det), want)


def test_overview_errors_are_the_clis(synth_mib):
    ds = emdtui.open(synth_mib)
    for kwargs, args in [
        (dict(detector="ring"), ["--detector", "ring"]),
        (dict(detector="adf", inner=50, outer=20), ["--detector", "adf", "--inner", "50", "--outer", "20"]),
        (dict(detector="sum", roi=((0, 2), (0, 2))), ["--detector", "sum", "--roi", "0:2,0:2"]),
        (dict(detector="bf", center=(999, 3)), ["--detector", "bf", "--center", "999,3"]),
    ]:
        with pytest.raises(emdtui.EmdtuiError) as e:
            ds.overview(**kwargs)
        assert str(e.value) == cli_error("overview", synth_mib, "-o", "/tmp/x.npy", *args)


def test_progress_callback_and_cancel(synth_mib):
    ds = emdtui.open(synth_mib)
    seen = []
    ds.overview("sum", no_cache=True, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] == 120



def test_ctrl_c_cancels_the_job(synth_big, tmp_path):
    """A KeyboardInterrupt while the job runs (here raised by the callback, as Ctrl-C is seen
    between two progress ticks) sets the job's cancel flag; the call returns once it stopped."""
    ds = emdtui.open(synth_big, memory="64M")
    seen = []

    def interrupt(done, total):
        seen.append((done, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ds.fft(crop="full", axes="all", out=tmp_path / "c.emd", progress=interrupt)
    assert len(seen) == 1
    # cancelled while running: the FFT was not finished (a later run has work left)
    rep = ds.fft(crop="full", axes="all", out=tmp_path / "c.emd", progress=False)
    assert rep["report"] is not None and not rep["report"]["already_complete"]


def test_convert_equals_cli(synth_mib, tmp_path):
    ds = emdtui.open(synth_mib)
    rep = ds.convert(tmp_path / "py.emd", progress=False)
    assert rep["output"] == str(tmp_path / "py.emd") and rep["bytes_written"] > 0
    run_cli("convert", synth_mib, "-o", tmp_path / "cli.emd")
    a, b = emdtui.open(tmp_path / "py.emd"), emdtui.open(tmp_path / "cli.emd")
    assert a.shape == b.shape == ds.shape
    np.testing.assert_array_equal(a[:, :], ds[:, :])
    np.testing.assert_array_equal(a[:, :], b[:, :])
    # the overviews cached in the EMD are those of the .mib
    np.testing.assert_array_equal(a.overview("bf"), ds.overview("bf"))
    with pytest.raises(emdtui.EmdtuiError) as e:
        ds.convert(tmp_path / "x.emd", bin_mode="median")
    assert str(e.value) == cli_error("convert", synth_mib, "-o", tmp_path / "x.emd", "--bin-mode", "median")
    rep = ds.convert(tmp_path / "binned.emd", bin_detector=4, compress=True, crop=((0, 4), (2, 10)))
    assert emdtui.open(rep["output"]).shape == (4, 8, 64, 64)


def test_dpc_equals_cli(synth_mib, tmp_path):
    ds = emdtui.open(synth_mib)
    got = ds.dpc(progress=False)
    p = run_cli("dpc", synth_mib, "-o", tmp_path / "d.npy", "--json")
    rep = json.loads(p.stdout)
    np.testing.assert_array_equal(got["phase"], np.load(tmp_path / "d.npy"))
    np.testing.assert_array_equal(got["comx"], np.load(tmp_path / "d_comx.npy"))
    np.testing.assert_array_equal(got["comy"], np.load(tmp_path / "d_comy.npy"))
    for k in ("rotation_deg", "flip", "curl_ratio", "center", "bf_radius_px", "hot_pixels"):
        assert got["report"][k] == rep[k], k
    got = ds.dpc(rotation=-12.5, flip=False, descan="none", progress=False)
    run_cli("dpc", synth_mib, "-o", tmp_path / "e.npy", "--rotation", "-12.5", "--flip", "no", "--descan", "none")
    np.testing.assert_array_equal(got["phase"], np.load(tmp_path / "e.npy"))
    assert got["report"]["rotation_deg"] == pytest.approx(-12.5 % 360)


def test_tcbf_equals_cli(synth_defocus, tmp_path):
    ds = emdtui.open(synth_defocus)
    got = ds.tcbf(emd=tmp_path / "py.emd", progress=False)
    p = run_cli("tcbf", synth_defocus, "-o", tmp_path / "t.npy", "--emd", tmp_path / "cli.emd", "--shifts-out",
                tmp_path / "s.npy", "--json")
    rep = json.loads(p.stdout)
    np.testing.assert_array_equal(got["image"], np.load(tmp_path / "t.npy"))
    np.testing.assert_array_equal(got["shifts"], np.load(tmp_path / "s.npy"))
    assert got["report"]["fit"] == rep["fit"]
    up = ds.tcbf(emd=tmp_path / "py.emd", upsample=2)
    assert up["image"].shape == (48, 48) and up["report"]["origin"] in ("computed", "cache")


def test_tcbf_ctf_correct_equals_cli_and_needs_the_optics(synth_defocus, tmp_path):
    ds = emdtui.open(synth_defocus, alpha="20mrad", scan_step="0.5A")
    with pytest.raises(Exception, match="--ctf-correct needs --energy"):
        ds.tcbf(ctf_correct=True, emd=tmp_path / "py.emd", progress=False)
    got = ds.tcbf(energy="200kV", ctf_correct=True, emd=tmp_path / "py.emd", progress=False)
    plain = ds.tcbf(energy="200kV", emd=tmp_path / "py.emd", progress=False)
    run_cli("tcbf", synth_defocus, "-o", tmp_path / "t.npy", "--emd", tmp_path / "cli.emd", "--energy", "200kV",
            "--alpha", "20mrad", "--scan-step", "0.5A", "--ctf-correct")
    np.testing.assert_array_equal(got["image"], np.load(tmp_path / "t.npy"))
    assert not np.array_equal(got["image"], plain["image"])


def test_ptycho_equals_cli(synth_defocus, tmp_path):
    ds = emdtui.open(synth_defocus, alpha="20mrad", scan_step="0.5A")
    got = ds.ptycho(energy="200kV", defocus="-2nm", emd=tmp_path / "py.emd", progress=False)
    p = run_cli("ptycho", synth_defocus, "-o", tmp_path / "p.npy", "--emd", tmp_path / "cli.emd", "--energy", "200kV",
                "--alpha", "20mrad", "--scan-step", "0.5A", "--defocus", "-2nm", "--json")
    rep = json.loads(p.stdout)
    np.testing.assert_array_equal(got["phase"], np.load(tmp_path / "p.npy"))
    assert got["phase"].shape == (24, 24) and got["icom"].shape == (24, 24)
    assert got["report"]["params"] == rep["params"] and got["report"]["params"]["defocus_a"] == -20.0
    assert got["report"]["origin"] == "computed"
    assert ds.ptycho(energy="200kV", defocus="-2nm", emd=tmp_path / "py.emd")["report"]["origin"] == "cache"
    # the energy given once is remembered for the .mib; a bad flag is the CLI's clear error
    with pytest.raises(Exception, match="no units"):
        ds.ptycho(defocus="12", emd=tmp_path / "py.emd")


def test_fft_equals_cli(synth_mib, tmp_path):
    import h5py

    ds = emdtui.open(synth_mib)
    rep = ds.fft(out=tmp_path / "py.emd", crop="full", progress=False)
    assert rep["emd"] == str(tmp_path / "py.emd") and rep["report"]["shape"][:2] == [10, 12]
    run_cli("fft", synth_mib, "-o", tmp_path / "cli.emd", "--crop", "full")
    path = "emdtui/cache/fft_complex/data"
    with h5py.File(tmp_path / "py.emd") as a, h5py.File(tmp_path / "cli.emd") as b:
        np.testing.assert_array_equal(a[path][...], b[path][...])
    again = ds.fft(out=tmp_path / "py.emd", crop="full")
    assert again["report"] is None or again["report"]["already_complete"]


def test_fft_estimate_equals_cli_and_run(synth_mib, tmp_path):
    import h5py

    ds = emdtui.open(synth_mib)
    e = ds.fft_estimate(out=tmp_path / "e.emd", crop="full", sample_frames=0)
    assert not (tmp_path / "e.emd").exists() and e["time"] is None and e["fits"]
    cli = json.loads(run_cli("fft", synth_mib, "-o", tmp_path / "e.emd", "--crop", "full", "--estimate", "--json",
                             "--sample-frames", "0").stdout)
    assert cli["output_bytes"] == e["output_bytes"] and cli["conversion_bytes"] == e["conversion_bytes"]
    ds.fft(out=tmp_path / "e.emd", crop="full", progress=False)
    with h5py.File(tmp_path / "e.emd") as f:
        written = f["emdtui/cache/fft_complex/data"].id.get_storage_size()
        written += f["emdtui/cache/fft_power/data"].id.get_storage_size()
    assert written == e["output_bytes"]


def test_eels_equals_cli(synth_eels, tmp_path):
    ds = emdtui.open(synth_eels)
    m = ds.eels("100:200", progress=False)
    np.testing.assert_array_equal(m, cli_npy(tmp_path, "eels", synth_eels, "--window", "100:200"))
    energy, spec = ds.eels(spectrum=True, roi=((1, 3), (2, 5)))
    np.testing.assert_array_equal(spec, cli_npy(tmp_path, "eels", synth_eels, "--spectrum", "--roi", "1:3,2:5"))
    assert energy.shape == spec.shape
    (_, at), rep = ds.eels(spectrum=True, at=(2, 3), dispersion=0.5, offset=-10, full=True)
    np.testing.assert_array_equal(at, cli_npy(tmp_path, "eels", synth_eels, "--spectrum", "--at", "2,3",
                                              "--dispersion", "0.5", "--offset", "-10"))
    assert rep["energy_step"] == 0.5 and rep["calibrated"]
    with pytest.raises(emdtui.EmdtuiError) as e:
        ds.eels("1:2", spectrum=True)
    assert str(e.value) == cli_error("eels", synth_eels, "-o", "/tmp/x.npy", "--window", "1:2", "--spectrum")
