#!/usr/bin/env python3
"""Render a `tmux capture-pane -e -p` dump (ANSI colours, half-block images) to a PNG.

usage: ansi2png.py CAPTURE.txt OUT.png
Each cell is 8x16 pixels, so half-block pixels come out square.
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

CW, CH = 8, 16
BASE = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229)]
BRIGHT = [(102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67), (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255)]
DEF_FG, DEF_BG = (220, 220, 220), (24, 24, 28)


def xterm256(n):
    if n < 8:
        return BASE[n]
    if n < 16:
        return BRIGHT[n - 8]
    if n < 232:
        n -= 16
        lv = [0, 95, 135, 175, 215, 255]
        return (lv[n // 36], lv[(n // 6) % 6], lv[n % 6])
    v = 8 + 10 * (n - 232)
    return (v, v, v)


def parse(lines):
    rows = []
    fg, bg, bold, rev = DEF_FG, DEF_BG, False, False
    for line in lines:
        cells = []
        i = 0
        while i < len(line):
            m = re.match(r"\x1b\[([0-9;:]*)m", line[i:])
            if m:
                ps = [int(p) if p else 0 for p in re.split("[;:]", m.group(1))] if m.group(1) else [0]
                j = 0
                while j < len(ps):
                    p = ps[j]
                    if p == 0:
                        fg, bg, bold, rev = DEF_FG, DEF_BG, False, False
                    elif p == 1:
                        bold = True
                    elif p == 22:
                        bold = False
                    elif p == 7:
                        rev = True
                    elif p == 27:
                        rev = False
                    elif 30 <= p <= 37:
                        fg = BASE[p - 30]
                    elif 90 <= p <= 97:
                        fg = BRIGHT[p - 90]
                    elif 40 <= p <= 47:
                        bg = BASE[p - 40]
                    elif 100 <= p <= 107:
                        bg = BRIGHT[p - 100]
                    elif p == 39:
                        fg = DEF_FG
                    elif p == 49:
                        bg = DEF_BG
                    elif p in (38, 48) and j + 1 < len(ps):
                        if ps[j + 1] == 2 and j + 4 < len(ps):
                            c = tuple(ps[j + 2 : j + 5])
                            j += 4
                        elif ps[j + 1] == 5 and j + 2 < len(ps):
                            c = xterm256(ps[j + 2])
                            j += 2
                        else:
                            c = DEF_FG
                        if p == 38:
                            fg = c
                        else:
                            bg = c
                    j += 1
                i += m.end()
                continue
            if line[i] == "\x1b":  # other escape: skip it
                m = re.match(r"\x1b\[[0-9;?]*[A-Za-z]", line[i:])
                i += m.end() if m else 1
                continue
            f, b = (bg, fg) if rev else (fg, bg)
            cells.append((line[i], f, b, bold))
            i += 1
        rows.append(cells)
    return rows


def main():
    src, out = sys.argv[1], sys.argv[2]
    text = open(src, encoding="utf-8", errors="replace").read().rstrip("\n").split("\n")
    rows = parse(text)
    w = max(len(r) for r in rows)
    img = Image.new("RGB", (w * CW, len(rows) * CH), DEF_BG)
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 13)
    bfont = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", 13)
    for y, r in enumerate(rows):
        for x, (ch, fg, bg, bold) in enumerate(r):
            x0, y0 = x * CW, y * CH
            d.rectangle([x0, y0, x0 + CW - 1, y0 + CH - 1], fill=bg)
            if ch == "▀":
                d.rectangle([x0, y0, x0 + CW - 1, y0 + CH // 2 - 1], fill=fg)
            elif ch == "▄":
                d.rectangle([x0, y0 + CH // 2, x0 + CW - 1, y0 + CH - 1], fill=fg)
            elif ch == "█":
                d.rectangle([x0, y0, x0 + CW - 1, y0 + CH - 1], fill=fg)
            elif 0x2800 <= ord(ch) <= 0x28FF:
                bits = ord(ch) - 0x2800
                dots = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80)]
                for dx, dy, bit in dots:
                    if bits & bit:
                        cx, cy = x0 + 2 + dx * 4, y0 + 2 + dy * 4
                        d.rectangle([cx, cy, cx + 1, cy + 1], fill=fg)
            elif ch == "─":
                d.line([x0, y0 + CH // 2, x0 + CW - 1, y0 + CH // 2], fill=fg)
            elif ch == "│":
                d.line([x0 + CW // 2, y0, x0 + CW // 2, y0 + CH - 1], fill=fg)
            elif ch in "┌┐└┘":
                cx, cy = x0 + CW // 2, y0 + CH // 2
                if ch in "┌┐":
                    d.line([cx, cy, cx, y0 + CH - 1], fill=fg)
                else:
                    d.line([cx, y0, cx, cy], fill=fg)
                if ch in "┌└":
                    d.line([cx, cy, x0 + CW - 1, cy], fill=fg)
                else:
                    d.line([x0, cy, cx, cy], fill=fg)
            elif ch != " ":
                d.text((x0, y0 + 1), ch, font=bfont if bold else font, fill=fg)
    img.save(out)


if __name__ == "__main__":
    main()
