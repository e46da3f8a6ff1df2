#!/usr/bin/env python3
"""Convert an X window dump (xwd, 24/32-bit TrueColor ZPixmap) to PNG with Pillow.

    xwd2png.py IN.xwd OUT.png [X Y W H]     (optional crop box in pixels; default: the bounding
                                             box of the non-black pixels, i.e. the windows)
"""
import struct
import sys

from PIL import Image

data = open(sys.argv[1], "rb").read()
h = struct.unpack(">25I", data[:100])
header_size, width, height = h[0], h[4], h[5]
byte_order, bpp, bpl = h[7], h[11], h[12]
rmask, gmask, bmask, ncolors = h[14], h[15], h[16], h[19]
if bpp != 32:
    sys.exit(f"{sys.argv[1]}: {bpp} bits per pixel; only 32 is supported")
pix = data[header_size + 12 * ncolors :]
raw = Image.frombuffer("RGBA", (width, height), pix, "raw", "BGRA" if byte_order == 0 else "ARGB", bpl, 1)
if (rmask, gmask, bmask) != (0xFF0000, 0xFF00, 0xFF):
    sys.exit(f"{sys.argv[1]}: unexpected colour masks {rmask:#x} {gmask:#x} {bmask:#x}")
img = raw.convert("RGB")
if len(sys.argv) == 7:
    x, y, w, hh = map(int, sys.argv[3:7])
    img = img.crop((x, y, x + w, y + hh))
elif (box := img.getbbox()) is not None:
    img = img.crop(box)
img.save(sys.argv[2])
