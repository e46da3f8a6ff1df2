#!/usr/bin/env python3
"""Peer for scripts/bench-convert: the h5py conversion loop a user would write.

    peer_convert.py IN.mib OUT.h5 SCAN_ROWS SCAN_COLS

Maps the .mib with numpy (processed U08/U16/U32 frames of one header size), byte-swaps each
chunk of whole frames to little-endian and writes it into a (rows, cols, det_r, det_c) HDF5
dataset with the same chunk shape as emdtui's datacube (about 1 MiB of whole frames), then
fsyncs the file. Prints the seconds taken.
"""
import os
import sys
import time

import h5py
import numpy as np
from peer_mib import map_mib

mib, out, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
frames, dr, dc, dt = map_mib(mib, rows, cols)
k = max(1, min(cols, (1 << 20) // (dr * dc * np.dtype(dt).itemsize)))
with h5py.File(out, "w") as h:
    d = h.create_dataset("data", shape=(rows, cols, dr, dc), dtype=np.dtype(dt).newbyteorder("<"), chunks=(1, k, dr, dc))
    for r in range(rows):
        for c0 in range(0, cols, k):
            c1 = min(cols, c0 + k)
            d[r, c0:c1] = frames[r * cols + c0 : r * cols + c1].astype(d.dtype)
with open(out, "rb+") as f:
    os.fsync(f.fileno())
print(f"{time.perf_counter() - t0:.3f}")
