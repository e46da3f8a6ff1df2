//! Images in the terminal: value arrays -> colour-mapped rasters at display resolution, with
//! overlays (cursor, ROI, detector circles) drawn into the raster; emitted as half-blocks
//! (two pixels per cell, drawn straight into the ratatui buffer), dithered braille dots, or a
//! ratatui-image protocol (sixel / kitty / iTerm2) prepared outside `render`.

use crate::compute::display::{DisplayParams, to_rgb};
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::style::Color;
use ratatui::widgets::Widget;
use ratatui_image::picker::{Picker, ProtocolType};

/// How images are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graphics {
    Halfblocks,
    Braille,
    /// A ratatui-image protocol (sixel, kitty, iTerm2).
    Protocol(ProtocolType),
}

impl Graphics {
    pub fn name(self) -> &'static str {
        match self {
            Graphics::Halfblocks => "halfblocks",
            Graphics::Braille => "braille",
            Graphics::Protocol(ProtocolType::Sixel) => "sixel",
            Graphics::Protocol(ProtocolType::Kitty) => "kitty",
            Graphics::Protocol(ProtocolType::Iterm2) => "iterm2",
            Graphics::Protocol(ProtocolType::Halfblocks) => "halfblocks",
        }
    }
}

/// Choose the graphics mode from `--graphics` and `--no-query`. Returns the mode, the picker
/// (for protocol modes) and a hint for the status line (e.g. tmux passthrough).
pub fn choose(graphics: &str, no_query: bool, is_tty: bool) -> anyhow::Result<(Graphics, Picker, Option<String>)> {
    let in_tmux = std::env::var("TMUX").is_ok_and(|v| !v.is_empty());
    let forced = match graphics {
        "auto" => None,
        "halfblocks" => Some(Graphics::Halfblocks),
        "braille" => Some(Graphics::Braille),
        "sixel" => Some(Graphics::Protocol(ProtocolType::Sixel)),
        "kitty" => Some(Graphics::Protocol(ProtocolType::Kitty)),
        "iterm2" => Some(Graphics::Protocol(ProtocolType::Iterm2)),
        other => anyhow::bail!("--graphics {other:?}: expected auto, kitty, sixel, iterm2, halfblocks or braille"),
    };
    let mut hint = None;
    // The query is only safe on a tty, and a timed-out query eats the first keypress, so it is
    // skipped whenever the mode is forced to a text mode or --no-query is given.
    let query = is_tty && !no_query && !matches!(forced, Some(Graphics::Halfblocks | Graphics::Braille));
    let mut picker = if query {
        let opts = ratatui_image::picker::cap_parser::QueryStdioOptions {
            timeout: std::time::Duration::from_millis(600),
            ..Default::default()
        };
        Picker::from_query_stdio_with_options(opts).unwrap_or_else(|_| Picker::halfblocks())
    } else {
        Picker::halfblocks()
    };
    let mode = match forced {
        Some(m) => m,
        None => match picker.protocol_type() {
            ProtocolType::Halfblocks => Graphics::Halfblocks,
            p => Graphics::Protocol(p),
        },
    };
    if let Graphics::Protocol(p) = mode {
        picker.set_protocol_type(p);
    }
    if in_tmux && mode == Graphics::Halfblocks && forced.is_none() {
        hint = Some("tmux: for sixel/kitty images run `tmux set -g allow-passthrough on` (and restart emdtui)".into());
    }
    Ok((mode, picker, hint))
}

/// An RGB image at display resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Raster {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[u8; 3]>,
}

impl Raster {
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        self.px[y * self.w + x]
    }
    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }
}

/// Fit a `sw`x`sh` image into at most `mw`x`mh` display pixels keeping the aspect ratio
/// (scales down freely, up by whole factors).
pub fn fit(sw: usize, sh: usize, mw: usize, mh: usize) -> (usize, usize) {
    if sw == 0 || sh == 0 || mw == 0 || mh == 0 {
        return (0, 0);
    }
    let s = (mw as f64 / sw as f64).min(mh as f64 / sh as f64);
    // upscale by whole factors only, so every source pixel gets the same size
    let s = if s >= 1.0 { s.floor() } else { s };
    (((sw as f64 * s).floor() as usize).max(1), ((sh as f64 * s).floor() as usize).max(1))
}

/// Colour-map `v` (`sw`x`sh`) and resample (nearest) to `w`x`h`. When shrinking, the values are
/// sampled first and only the displayed ones are colour-mapped (percentiles from that sample),
/// which keeps a 512x512 frame step cheap.
pub fn raster(v: &[f32], sw: usize, sh: usize, w: usize, h: usize, p: &DisplayParams) -> Raster {
    let idx = |x: usize, y: usize| {
        let sy = (y * sh / h.max(1)).min(sh - 1);
        let sx = (x * sw / w.max(1)).min(sw - 1);
        sy * sw + sx
    };
    let mut px = Vec::with_capacity(w * h);
    if w * h < sw * sh {
        let sampled: Vec<f32> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| v[idx(x, y)]).collect();
        let rgb = to_rgb(&sampled, p);
        px.extend(rgb.chunks_exact(3).map(|c| [c[0], c[1], c[2]]));
    } else {
        let rgb = to_rgb(v, p);
        for y in 0..h {
            for x in 0..w {
                let i = idx(x, y) * 3;
                px.push([rgb[i], rgb[i + 1], rgb[i + 2]]);
            }
        }
    }
    Raster { w, h, px }
}

/// Maps source-image coordinates to raster pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    pub sw: usize,
    pub sh: usize,
    pub w: usize,
    pub h: usize,
}

impl Mapping {
    pub fn to_display(&self, sy: f32, sx: f32) -> (f64, f64) {
        ((sy as f64 + 0.5) * self.h as f64 / self.sh as f64, (sx as f64 + 0.5) * self.w as f64 / self.sw as f64)
    }
    pub fn scale(&self) -> f64 {
        self.w as f64 / self.sw as f64
    }
}

pub const CURSOR: [u8; 3] = [255, 60, 60];
pub const BF_RING: [u8; 3] = [80, 255, 80];
pub const ADF_RING: [u8; 3] = [80, 200, 255];
pub const ROI: [u8; 3] = [255, 255, 255];

/// Crosshair with a gap at the position (so the pixel itself stays visible).
pub fn draw_cursor(r: &mut Raster, m: &Mapping, sy: usize, sx: usize) {
    let (y0, x0) = (sy * m.h / m.sh, sx * m.w / m.sw);
    let (y1, x1) = (((sy + 1) * m.h / m.sh).max(y0 + 1), ((sx + 1) * m.w / m.sw).max(x0 + 1));
    let arm = 3i64.max((m.scale() * 2.0) as i64);
    for d in 1..=arm {
        for x in x0..x1 {
            r.set(x as i64, y0 as i64 - d, CURSOR);
            r.set(x as i64, y1 as i64 - 1 + d, CURSOR);
        }
        for y in y0..y1 {
            r.set(x0 as i64 - d, y as i64, CURSOR);
            r.set(x1 as i64 - 1 + d, y as i64, CURSOR);
        }
    }
}

/// Rectangle outline around source rows `r0..=r1`, cols `c0..=c1`.
pub fn draw_rect(r: &mut Raster, m: &Mapping, (r0, c0): (usize, usize), (r1, c1): (usize, usize), c: [u8; 3]) {
    let (y0, x0) = (r0 * m.h / m.sh, c0 * m.w / m.sw);
    let (y1, x1) =
        ((((r1 + 1) * m.h / m.sh) as i64 - 1).max(y0 as i64), (((c1 + 1) * m.w / m.sw) as i64 - 1).max(x0 as i64));
    for x in x0 as i64..=x1 {
        r.set(x, y0 as i64, c);
        r.set(x, y1, c);
    }
    for y in y0 as i64..=y1 {
        r.set(x0 as i64, y, c);
        r.set(x1, y, c);
    }
}

/// Circle of source radius `rad` around source centre `(cy, cx)`.
pub fn draw_circle(r: &mut Raster, m: &Mapping, (cy, cx): (f32, f32), rad: f32, c: [u8; 3]) {
    let (dy, dx) = m.to_display(cy, cx);
    let dr = rad as f64 * m.scale();
    if dr < 0.5 {
        r.set(dx as i64, dy as i64, c);
        return;
    }
    let n = ((dr * 8.0) as usize).clamp(16, 4096);
    for i in 0..n {
        let t = i as f64 / n as f64 * std::f64::consts::TAU;
        r.set((dx + dr * t.cos()).floor() as i64, (dy + dr * t.sin()).floor() as i64, c);
    }
}

/// Half-block widget: one cell = one pixel column, two pixel rows (`▀`, fg = top, bg = bottom).
pub struct HalfBlocks<'a>(pub &'a Raster);

impl Widget for HalfBlocks<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let r = self.0;
        let cols = (r.w as u16).min(area.width);
        let rows = (r.h.div_ceil(2) as u16).min(area.height);
        for cy in 0..rows {
            for cx in 0..cols {
                let (x, y) = (cx as usize, cy as usize * 2);
                let top = r.get(x, y);
                let cell = &mut buf[(area.x + cx, area.y + cy)];
                cell.set_symbol("▀").set_fg(Color::Rgb(top[0], top[1], top[2]));
                if y + 1 < r.h {
                    let b = r.get(x, y + 1);
                    cell.set_bg(Color::Rgb(b[0], b[1], b[2]));
                } else {
                    cell.set_bg(Color::Reset);
                }
            }
        }
    }
}

/// Dithered braille (2x4 dots per cell, monochrome): for plain terminals and narrow panes. The
/// raster must be (2*cols)x(4*rows); overlay colours (pure overlay pixels) are always set.
pub struct Braille<'a>(pub &'a Raster);

const BAYER4: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];
const DOT: [[u32; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];

impl Widget for Braille<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let r = self.0;
        let cols = (r.w.div_ceil(2) as u16).min(area.width);
        let rows = (r.h.div_ceil(4) as u16).min(area.height);
        for cy in 0..rows {
            for cx in 0..cols {
                let mut bits = 0u32;
                for (dy, row) in DOT.iter().enumerate() {
                    for (dx, bit) in row.iter().enumerate() {
                        let (x, y) = (cx as usize * 2 + dx, cy as usize * 4 + dy);
                        if x >= r.w || y >= r.h {
                            continue;
                        }
                        let p = r.get(x, y);
                        let overlay = [CURSOR, BF_RING, ADF_RING, ROI].contains(&p);
                        let lum = (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000;
                        let thr = (BAYER4[y % 4][x % 4] as u32 * 16 + 8).min(255);
                        if overlay || lum > thr {
                            bits |= bit;
                        }
                    }
                }
                let ch = char::from_u32(0x2800 + bits).unwrap_or(' ');
                buf[(area.x + cx, area.y + cy)].set_char(ch);
            }
        }
    }
}

/// A prepared pane image: what `render` draws.
pub enum PaneImage {
    Half(Raster),
    Braille(Raster),
    Proto(ratatui_image::protocol::Protocol),
}

/// Display-pixel budget of a pane of `area` cells in a mode.
pub fn pixel_box(g: Graphics, area: Size, picker: &Picker) -> (usize, usize) {
    match g {
        Graphics::Halfblocks | Graphics::Protocol(ProtocolType::Halfblocks) => {
            (area.width as usize, area.height as usize * 2)
        }
        Graphics::Braille => (area.width as usize * 2, area.height as usize * 4),
        Graphics::Protocol(_) => {
            let f = picker.font_size();
            (area.width as usize * f.width as usize, area.height as usize * f.height as usize)
        }
    }
}

/// Turn an overlaid raster into a pane image for the mode.
pub fn finish(g: Graphics, r: Raster, area: Size, picker: &Picker) -> Option<PaneImage> {
    match g {
        Graphics::Halfblocks | Graphics::Protocol(ProtocolType::Halfblocks) => Some(PaneImage::Half(r)),
        Graphics::Braille => Some(PaneImage::Braille(r)),
        Graphics::Protocol(_) => {
            let bytes: Vec<u8> = r.px.iter().flatten().copied().collect();
            let img = image::RgbImage::from_raw(r.w as u32, r.h as u32, bytes)?;
            picker
                .new_protocol(image::DynamicImage::ImageRgb8(img), area, ratatui_image::Resize::Fit(None))
                .ok()
                .map(PaneImage::Proto)
        }
    }
}

pub fn render_pane(img: &PaneImage, area: Rect, buf: &mut Buffer) {
    match img {
        PaneImage::Half(r) => HalfBlocks(r).render(area, buf),
        PaneImage::Braille(r) => Braille(r).render(area, buf),
        PaneImage::Proto(p) => ratatui_image::Image::new(p).render(area, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect() {
        assert_eq!(fit(64, 64, 40, 60), (40, 40));
        assert_eq!(fit(512, 256, 100, 100), (100, 50));
        assert_eq!(fit(16, 16, 64, 32), (32, 32));
        assert_eq!(fit(48, 48, 58, 90), (48, 48));
    }

    #[test]
    fn halfblocks_colours() {
        let r = Raster { w: 2, h: 2, px: vec![[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]] };
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        HalfBlocks(&r).render(buf.area, &mut buf);
        assert_eq!(buf[(1, 0)].symbol(), "▀");
        assert_eq!(buf[(1, 0)].fg, Color::Rgb(4, 5, 6));
        assert_eq!(buf[(1, 0)].bg, Color::Rgb(10, 11, 12));
    }

    #[test]
    fn braille_dither_levels() {
        // black -> no dots, white -> all dots, mid grey -> about half
        let mk = |v: u8| Raster { w: 4, h: 4, px: vec![[v, v, v]; 16] };
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        Braille(&mk(0)).render(buf.area, &mut buf);
        assert_eq!(buf[(0, 0)].symbol(), "\u{2800}");
        Braille(&mk(255)).render(buf.area, &mut buf);
        assert_eq!(buf[(0, 0)].symbol(), "\u{28FF}");
        Braille(&mk(128)).render(buf.area, &mut buf);
        let c = buf[(0, 0)].symbol().chars().next().unwrap() as u32 - 0x2800;
        assert_eq!(c.count_ones(), 4);
    }
}
