"""Opening files, metadata and frames: against the CLI and the ground truth of the real files."""

import hashlib
import json
import pickle

import numpy as np
import pytest

import emdtui
from conftest import TESTDATA, run_cli


def real_files(gt):
    return sorted(k for k in gt["files"] if (TESTDATA / k).exists())


def test_real_files_frames_match_ground_truth(ground_truth):
    """Every real file: shape, dtype, per-frame sums and the md5 of all frames (uint32 LE, stored
    orientation) equal the independent reference decoder's."""
    files = real_files(ground_truth)
    assert len(files) >= 20
    for k in files:
        g = ground_truth["files"][k]
        ds = emdtui.open(TESTDATA / k, scan=(1, g["n_frames"]))
        assert ds.shape == (1, g["n_frames"], *g["signal_shape"]), k
        frames = ds[0, :]
        assert frames.shape == (g["n_frames"], *g["signal_shape"])
        assert [int(f.sum(dtype=np.uint64)) for f in frames] == g["per_frame_sums"], k
        md5 = hashlib.md5(frames.astype("<u4").tobytes()).hexdigest()
        assert md5 == g["all_frames_md5_u32le_stored"], k


def test_metadata_is_info_json(synth_mib):
    ds = emdtui.open(synth_mib)
    cli = json.loads(run_cli("info", "--json", synth_mib).stdout)
    assert ds.metadata == cli
    assert ds.shape == (10, 12, 256, 256)
    assert ds.dtype == np.uint16
    assert ds.metadata["scan"]["rows"] == 10


def test_metadata_real_file_with_scan(ground_truth):
    f = TESTDATA / "rosettasciio" / "001_4x2_6bit.mib"
    ds = emdtui.open(f, scan="2x4")
    cli = json.loads(run_cli("--scan", "2x4", "info", "--json", f).stdout)
    assert ds.metadata == cli
    assert ds.shape == (2, 4, 256, 256) and ds.dtype == np.uint8


def test_indexing(synth_mib):
    ds = emdtui.open(synth_mib)
    allf = ds[:, :]
    assert allf.shape == (10, 12, 256, 256)
    assert allf.sum() > 0
    np.testing.assert_array_equal(ds[3, 5], allf[3, 5])
    np.testing.assert_array_equal(ds[-1, -2], allf[-1, -2])
    np.testing.assert_array_equal(ds[0:8, :], allf[0:8, :])
    np.testing.assert_array_equal(ds[2:9:3, 1:11:4], allf[2:9:3, 1:11:4])
    np.testing.assert_array_equal(ds[8:1:-2, ::-3], allf[8:1:-2, ::-3])
    np.testing.assert_array_equal(ds[4], allf[4])
    np.testing.assert_array_equal(ds[1:3, 2, 10:20, 5], allf[1:3, 2, 10:20, 5])
    np.testing.assert_array_equal(ds[..., 7, 9], allf[..., 7, 9])
    assert ds[5:5, :].shape == (0, 12, 256, 256)
    with pytest.raises(IndexError):
        ds[10, 0]
    with pytest.raises(TypeError):
        ds[[1, 2], 0]


def test_frames_equal_cli_export(synth_mib, tmp_path):
    ds = emdtui.open(synth_mib)
    out = tmp_path / "f.npy"
    run_cli("export", synth_mib, "--at", "4,7", "-o", out)
    np.testing.assert_array_equal(np.load(out), ds[4, 7])


def test_open_errors_are_the_clis(tmp_path):
    missing = tmp_path / "nope.mib"
    with pytest.raises(emdtui.EmdtuiError) as e:
        emdtui.open(missing)
    p = run_cli("info", missing, check=False)
    assert str(e.value) in p.stderr
    with pytest.raises(emdtui.EmdtuiError) as e:
        emdtui.open(missing, mode="sideways")
    assert str(e.value) == '--mode "sideways": use auto, eels or diffraction'
    with pytest.raises(ValueError, match="skip-frames"):
        emdtui.open(missing, skip_frames="x")


def test_pickle_reopens(synth_mib):
    ds = emdtui.open(synth_mib, scan=(12, 10))
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2.shape == (12, 10, 256, 256)
    np.testing.assert_array_equal(ds2[3, 3], ds[3, 3])


def test_calibration(synth_mib):
    ds = emdtui.open(synth_mib, scan_step="0.5nm")
    c = ds.calibration
    assert c["r"][0] == pytest.approx(0.5) and c["r"][1] == "nm"


def test_python_m_emdtui_runs_the_cli(synth_mib):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "emdtui", "info", "--json", str(synth_mib)], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == json.loads(run_cli("info", "--json", synth_mib).stdout)
    p = subprocess.run([sys.executable, "-m", "emdtui", "overview", "/nonexistent.mib", "-o", "/tmp/x.npy"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "emdtui: error:" in p.stderr
