"""Shared fixtures: the emdtui CLI to compare against, synthetic files, an empty cache dir."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TESTDATA = Path(os.environ.get("EMDTUI_TESTDATA", REPO.parent / "shared" / "testdata" / "mib"))


def _cli_command():
    """The emdtui CLI: $EMDTUI_BIN, target/release/emdtui, `emdtui` on PATH, else `python -m emdtui`."""
    for c in (os.environ.get("EMDTUI_BIN"), os.environ.get("CARGO_TARGET_DIR", "") + "/release/emdtui",
              str(REPO / "target" / "release" / "emdtui"), shutil.which("emdtui")):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return [c]
    return [sys.executable, "-m", "emdtui"]


CLI = _cli_command()


def run_cli(*args, check=True):
    """Run the CLI; returns the CompletedProcess (text)."""
    p = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"emdtui {' '.join(map(str, args))} failed: {p.stderr}")
    return p


def cli_npy(tmp_path, *args, name="out.npy"):
    """Run a CLI subcommand with `-o OUT.npy` and load the result."""
    out = Path(tmp_path) / name
    run_cli(*args, "-o", out)
    return np.load(out)


def cli_error(*args):
    """The CLI's one error line (without the `emdtui: error: ` prefix)."""
    p = run_cli(*args, check=False)
    assert p.returncode != 0
    line = [l for l in p.stderr.splitlines() if l.startswith("emdtui: error: ")][-1]
    return line[len("emdtui: error: "):]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    """Each test starts with an empty cache directory, for the CLI and the package alike."""
    monkeypatch.setenv("EMDTUI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


def _synth(d, name, *args):
    f = Path(d) / name
    if not f.exists():
        run_cli("synth", f, *args)
    return f


@pytest.fixture(scope="session")
def synth_mib(synth_dir):
    """A 10x12 scan of 256x256 frames (single chip, 12-bit, with .hdr)."""
    return _synth(synth_dir, "scan.mib", "--scan", "10x12", "--detector", "256", "--depth", "12", "--hdr")


@pytest.fixture(scope="session")
def synth_big(synth_dir):
    """32x32 positions of 256x256 (128 MiB): long enough to cancel midway."""
    return _synth(synth_dir, "big.mib", "--scan", "32x32", "--detector", "256", "--depth", "12")


@pytest.fixture(scope="session")
def synth_defocus(synth_dir):
    """A defocused-probe scan (tcBF)."""
    return _synth(synth_dir, "defocus.mib", "--scan", "24x24", "--defocus")


@pytest.fixture(scope="session")
def synth_eels(synth_dir):
    """Nx1 spectrometer frames (EELS)."""
    return _synth(synth_dir, "eels.mib", "--scan", "6x8", "--nx1", "--hdr")


@pytest.fixture(scope="session")
def ground_truth():
    p = TESTDATA / "ground_truth.json"
    if not p.exists():
        pytest.skip(f"{p} not found (real test files)")
    return json.loads(p.read_text())
