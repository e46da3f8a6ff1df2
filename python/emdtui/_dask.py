"""Dask arrays whose blocks the Rust reader fills. The graph holds only the path, the open
options and the layout: each worker process opens the file once (on first use) and reads its
blocks itself, so workers on other machines read from a shared file system."""

from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

import numpy as np

#: Target bytes of one block of the "auto" chunking.
AUTO_BLOCK_BYTES = 128 << 20

_open_lock = threading.Lock()
_opened: Dict[Tuple[str, tuple], Any] = {}


def _dataset(path: str, kwargs: tuple):
    """The dataset of this process for (path, open options), opened on first use."""
    key = (path, kwargs)
    with _open_lock:
        ds = _opened.get(key)
        if ds is None:
            from . import open as _open

            ds = _open(path, **dict(kwargs))
            _opened[key] = ds
        return ds


class BlockReader:
    """What ``dask.array.from_array`` slices: shape, dtype and ``[...]`` reading scan
    rectangles through the Rust reader. Pickles as path + options + layout."""

    def __init__(self, path: str, open_kwargs: dict, shape: tuple, dtype: np.dtype, fingerprint: str):
        self.path = path
        self.open_kwargs = tuple(sorted(open_kwargs.items()))
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.fingerprint = fingerprint

    def __getitem__(self, key):
        ds = _dataset(self.path, self.open_kwargs)
        if ds.fingerprint != self.fingerprint:
            raise RuntimeError(f"{self.path}: the file changed since the dask array was made")
        return ds[key]

    def __repr__(self) -> str:
        return f"BlockReader({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def auto_chunks(shape: tuple, itemsize: int) -> tuple:
    """Whole scan rows (about AUTO_BLOCK_BYTES a block), the detector whole."""
    sr, sc, dr, dc = shape
    row_bytes = max(1, sc * dr * dc * itemsize)
    rows = max(1, min(sr, AUTO_BLOCK_BYTES // row_bytes))
    return (rows, sc, dr, dc)


def to_dask(ds, chunks: Any = "auto"):
    import dask.array as da
    from dask.base import tokenize

    shape = ds.shape
    if chunks is None or chunks == "auto":
        chunks = auto_chunks(shape, ds.dtype.itemsize)
    elif isinstance(chunks, int):
        chunks = (chunks, shape[1], shape[2], shape[3])
    reader = BlockReader(ds.path, ds._open_kwargs, shape, ds.dtype, ds.fingerprint)
    name = "emdtui-" + tokenize(ds.path, reader.open_kwargs, ds.fingerprint, chunks)
    meta = np.empty((0, 0, 0, 0), dtype=ds.dtype)
    return da.from_array(reader, chunks=chunks, name=name, asarray=False, fancy=False, lock=False, meta=meta)
