#!/usr/bin/env python3
"""Peer for scripts/bench-fft: the 4D FFT a user would do with scipy in RAM.

    peer_fft.py IN.mib SCAN_ROWS SCAN_COLS AXES      (AXES: scan or all)

Loads the .mib's frames with numpy (processed U08/U16/U32, one header size) into a float32
array (rows, cols, det_r, det_c), computes scipy.fft.fftn over the scan axes (scan) or all four
(all) with all cores (workers=-1), fftshifts those axes and keeps complex64, as emdtui stores it.
Writes nothing. Prints the seconds taken (load included) and the peak RSS.
"""
import resource
import sys
import time

import numpy as np
from peer_mib import map_mib
import scipy.fft

mib, rows, cols, axes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
frames, dr, dc, dt = map_mib(mib, rows, cols)
a = frames.astype(np.complex64).reshape(rows, cols, dr, dc)
ax = (0, 1) if axes == "scan" else (0, 1, 2, 3)
g = scipy.fft.fftn(a, axes=ax, workers=-1, overwrite_x=True)
g = np.fft.fftshift(g, axes=ax)
t = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{t:.3f} {rss:.0f}")
