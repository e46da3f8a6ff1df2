"""Shared by the peer scripts: a processed Merlin .mib (U08/U16/U32 frames of one header size)
mapped with numpy, as a user of numpy would read it."""
import numpy as np


def map_mib(path, rows, cols):
    """(frames array of shape (rows*cols, det_r, det_c) big-endian, det_r, det_c, dtype string)."""
    with open(path, "rb") as f:
        head = f.read(4096).decode("latin-1").split(",")
    hl, dc, dr, kind = int(head[2]), int(head[4]), int(head[5]), head[6]
    dt = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}[kind]
    frame = np.dtype([("h", f"V{hl}"), ("d", dt, (dr, dc))])
    mm = np.memmap(path, dtype=frame, mode="r", shape=(rows * cols,))
    return mm["d"], dr, dc, dt
