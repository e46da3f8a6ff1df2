"""emdtui for Python: the Rust engine of the ``emdtui`` command line and terminal UI.

>>> import emdtui
>>> ds = emdtui.open("scan.mib")
>>> ds.shape, ds.dtype
>>> bf = ds.overview("bf")              # as `emdtui overview scan.mib --detector bf`
>>> frames = ds[0:8, :]                 # numpy (8, cols, det rows, det cols)
>>> x = ds.to_dask()                    # blocks read by the Rust reader, on any dask scheduler

Every analysis takes the CLI's parameters (keyword arguments named like its flags) with its
defaults and raises :class:`EmdtuiError` with the CLI's message. Long calls report progress
(a tqdm bar when tqdm is installed, or ``progress=callable(done, total)``), release the GIL and
stop on Ctrl-C (``KeyboardInterrupt``).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple, Union

from ._emdtui import EmdtuiError, version as _version
from ._dataset import Dataset, flags

__all__ = ["open", "Dataset", "EmdtuiError", "__version__"]
__version__ = _version()


def open(
    path: Union[str, os.PathLike],
    scan: Union[None, str, Tuple[int, int]] = None,
    skip_frames: int = 0,
    flyback: int = 0,
    mode: str = "auto",
    *,
    scan_step: Optional[str] = None,
    alpha: Optional[str] = None,
    q_pixel: Optional[str] = None,
    memory: Optional[str] = None,
    keep_bad_pixels: bool = False,
    bad_pixels: Union[None, str, os.PathLike] = None,
    no_mmap: bool = False,
) -> Dataset:
    """Open a ``.mib`` (a single file, or the first of a numbered acquisition) or an ``.emd``.

    ``scan``: (rows, cols) or "ROWSxCOLS" (default: from the .hdr / header heuristics);
    ``skip_frames``, ``flyback``: frames dropped at the start / at the end of every scan line;
    ``mode``: auto, eels or diffraction. The global options of the CLI apply to every analysis
    of the dataset: ``scan_step`` ("0.5nm"), ``alpha`` ("20mrad"), ``q_pixel``, ``memory``
    budget ("2G"), ``keep_bad_pixels``, ``bad_pixels`` (mask file), ``no_mmap``.
    """
    if isinstance(scan, (tuple, list)):
        scan = f"{int(scan[0])}x{int(scan[1])}"
    kwargs = dict(scan=scan, skip_frames=skip_frames, flyback=flyback, mode=mode, scan_step=scan_step, alpha=alpha,
                  q_pixel=q_pixel, memory=memory, keep_bad_pixels=keep_bad_pixels,
                  bad_pixels=os.fspath(bad_pixels) if bad_pixels is not None else None, no_mmap=no_mmap)
    g = flags(**{k: v for k, v in kwargs.items() if not (k in ("skip_frames", "flyback") and v == 0)
                 and not (k == "mode" and v == "auto")})
    return Dataset(path, g, {k: v for k, v in kwargs.items() if v not in (None, False)})
