#!/usr/bin/env python3
"""Peer for scripts/bench-fft: the out-of-core 4D FFT a user would write with dask.

    peer_fft_dask.py IN.mib SCAN_ROWS SCAN_COLS OUT.h5 [MEMORY_GIB]

The .mib's frames mapped with numpy (scripts/peer_mib.py) become a dask array in blocks of scan
rows; the detector-axis FFT runs per block, the array is rechunked to detector-row blocks and the
scan-axis FFT runs per block; all four axes are fftshifted and the complex64 result is stored to
OUT.h5 (`data`, chunks of the last step's blocks) with dask's threaded scheduler on every core.
The same job as `emdtui fft --crop full --axes all`. Prints the seconds taken and the peak RSS.
"""
import resource
import sys
import time

import dask
import dask.array as da
import h5py
import numpy as np
from peer_mib import map_mib

mib, rows, cols, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
frames, dr, dc, _ = map_mib(mib, rows, cols)
frames = frames.reshape(rows, cols, dr, dc)
block_rows = max(1, min(rows, (64 << 20) // (cols * dr * dc * 8)))
a = da.from_array(frames, chunks=(block_rows, cols, dr, dc)).astype(np.complex64)
g = da.fft.fft2(a, axes=(2, 3)).astype(np.complex64)
det_block = max(1, min(dr, (64 << 20) // (rows * cols * dc * 8)))
g = g.rechunk((rows, cols, det_block, dc))
g = da.fft.fft2(g, axes=(0, 1)).astype(np.complex64)
g = da.fft.fftshift(g, axes=(0, 1, 2, 3))
with h5py.File(out, "w") as f:
    d = f.create_dataset("data", shape=g.shape, dtype=np.complex64, chunks=(rows, cols, det_block, dc))
    with dask.config.set(scheduler="threads"):
        da.store(g, d, lock=True)
t = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{t:.3f} {rss:.0f}")
