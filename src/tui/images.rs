//! Images in the terminal: value arrays -> colour-mapped rasters at display resolution, with
//! overlays (cursor, ROI, detector circles) drawn into the raster; emitted as half-blocks
//! (two pixels per cell, drawn straight into the ratatui buffer), dithered braille dots, or a
//! ratatui-image protocol (sixel / kitty / iTerm2) prepared outside `render`.

use crate::compute::display::{Colormap, DisplayParams, Stats, clip_name, scaled_range, to_rgb_in, unscaled};
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

/// What the environment says about the terminal, read once at start-up by `main` (from `TMUX`,
/// `STY`, `TERM`, `TERM_PROGRAM`, `WEZTERM_EXECUTABLE`, `KONSOLE_VERSION`) and passed down in
/// [`super::Launch`], so the decisions below stay pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermEnv {
    /// `TMUX` is set.
    pub in_tmux: bool,
    /// GNU screen: `STY` is set or `TERM` starts with `screen` (tmux also uses `screen*` TERMs;
    /// either way the multiplexer does not pass images through by default).
    pub in_screen: bool,
    /// WezTerm or Konsole: their kitty/sixel support is incomplete (as ratatui-image judges), so
    /// the query does not ask for those and iTerm2 is used when the terminal hints at it.
    pub avoid_kitty_sixel: bool,
    /// `TERM_PROGRAM` names a terminal with the iTerm2 image protocol.
    pub iterm2_hint: bool,
}

/// The longest any start-up step waits for the terminal to answer the capability query. A
/// terminal that does not answer by then gets half-blocks; nothing else at start-up reads from
/// the terminal (no cursor-position or size queries).
pub const QUERY_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

pub const TMUX_HINT: &str = "tmux: for images `tmux set -g allow-passthrough on`, --graphics sixel|kitty";
pub const SCREEN_HINT: &str = "screen passes no images (--graphics sixel|kitty to try)";
pub const NO_ANSWER_HINT: &str = "terminal did not answer the query (--graphics sixel|kitty to force)";

/// Parse `--graphics`: `None` for `auto`.
pub fn parse_graphics(graphics: &str) -> anyhow::Result<Option<Graphics>> {
    Ok(match graphics {
        "auto" => None,
        "halfblocks" => Some(Graphics::Halfblocks),
        "braille" => Some(Graphics::Braille),
        "sixel" => Some(Graphics::Protocol(ProtocolType::Sixel)),
        "kitty" => Some(Graphics::Protocol(ProtocolType::Kitty)),
        "iterm2" => Some(Graphics::Protocol(ProtocolType::Iterm2)),
        other => anyhow::bail!("--graphics {other:?}: expected auto, kitty, sixel, iterm2, halfblocks or braille"),
    })
}

/// The start-up decision, before anything is sent to the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Send the capability query (answers read until [`QUERY_DEADLINE`] at most).
    pub query: bool,
    /// The mode when the query is not sent or finds no image protocol; a forced mode is always
    /// used (the query then only supplies the cell size in pixels).
    pub default: Graphics,
    /// `default` was asked for with `--graphics`.
    pub forced: bool,
    /// For the title line: how to get images.
    pub hint: Option<&'static str>,
}

/// Decide whether to query the terminal and what to draw with. Pure: the environment comes in
/// as flags. Under tmux or GNU screen, `auto` means half-blocks without a query (tmux 3.3 answers
/// for the outer terminal but drops its images; a detached session answers nothing).
pub fn plan(forced: Option<Graphics>, no_query: bool, is_tty: bool, in_tmux: bool, in_screen: bool) -> Plan {
    let query = is_tty
        && !no_query
        && match forced {
            Some(Graphics::Halfblocks | Graphics::Braille) => false,
            Some(Graphics::Protocol(_)) => true,
            None => !(in_tmux || in_screen),
        };
    let hint = match forced {
        Some(_) => None,
        None if in_tmux => Some(TMUX_HINT),
        None if in_screen => Some(SCREEN_HINT),
        None => None,
    };
    Plan { query, default: forced.unwrap_or(Graphics::Halfblocks), forced: forced.is_some(), hint }
}

/// The chosen mode and what start-up read from the terminal.
pub struct Choice {
    pub graphics: Graphics,
    pub picker: Picker,
    pub hint: Option<String>,
    /// Keys typed while the query answers were read, to be handled first.
    pub early_input: Vec<ratatui::crossterm::event::Event>,
    /// The query was sent and not answered in time: answers may still arrive (slow link).
    pub answers_may_be_late: bool,
}

/// Choose the graphics mode from `--graphics`, `--no-query` and the environment. Must run in
/// raw mode, after entering the alternate screen and before the input thread starts.
pub fn choose(graphics: &str, no_query: bool, is_tty: bool, env: &TermEnv) -> anyhow::Result<Choice> {
    let forced = parse_graphics(graphics)?;
    let plan = plan(forced, no_query, is_tty, env.in_tmux, env.in_screen);
    let mut hint = plan.hint.map(String::from);
    let mut early_input = Vec::new();
    let mut late = false;
    let mut answer = None;
    if plan.query {
        match query::run(QUERY_DEADLINE, env.avoid_kitty_sixel) {
            Ok(a) => {
                early_input = a.keys.clone();
                late = !a.answered;
                if !a.answered && !plan.forced {
                    hint = Some(NO_ANSWER_HINT.into());
                }
                log::info!("graphics query: answered={} protocol={:?} cell={:?}", a.answered, a.protocol, a.cell);
                answer = Some(a);
            }
            Err(e) => log::warn!("graphics query failed: {e}"),
        }
    }
    let found = answer.as_ref().filter(|a| a.answered).and_then(|a| {
        a.protocol.or_else(|| {
            (env.iterm2_hint && a.cell.or_else(query::cell_from_ioctl).is_some()).then_some(ProtocolType::Iterm2)
        })
    });
    let mode = match (plan.forced, found) {
        (true, _) | (false, None) => plan.default,
        (false, Some(p)) => Graphics::Protocol(p),
    };
    let picker = match mode {
        Graphics::Protocol(p) => {
            let (w, h) = answer.and_then(|a| a.cell).or_else(query::cell_from_ioctl).unwrap_or((10, 20));
            // the only constructor taking a cell size (it also reads TERM for tmux wrapping)
            #[allow(deprecated)]
            let mut picker = Picker::from_fontsize(ratatui_image::FontSize::new(w, h));
            picker.set_protocol_type(p);
            picker
        }
        _ => Picker::halfblocks(),
    };
    Ok(Choice { graphics: mode, picker, hint, early_input, answers_may_be_late: late })
}

use super::termquery as query;

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

/// Fit a `sw`x`sh` image into at most `mw`x`mh` display pixels keeping the aspect ratio: the
/// image fills the box in one direction (scaled up or down by any factor, nearest neighbour).
pub fn fit(sw: usize, sh: usize, mw: usize, mh: usize) -> (usize, usize) {
    if sw == 0 || sh == 0 || mw == 0 || mh == 0 {
        return (0, 0);
    }
    let s = (mw as f64 / sw as f64).min(mh as f64 / sh as f64);
    // the limiting side gets exactly its budget; the other is rounded down
    let w = if mw as f64 / sw as f64 <= s { mw } else { (sw as f64 * s).floor() as usize };
    let h = if mh as f64 / sh as f64 <= s { mh } else { (sh as f64 * s).floor() as usize };
    (w.clamp(1, mw), h.clamp(1, mh))
}

/// Colour-map `v` (`sw`x`sh`) and resample (nearest) to `w`x`h`. When shrinking, only the
/// displayed values are colour-mapped, which keeps a 512x512 frame step cheap; the clip
/// percentiles always come from the whole image.
pub fn raster(v: &[f32], sw: usize, sh: usize, w: usize, h: usize, p: &DisplayParams) -> Raster {
    raster_range(v, sw, sh, w, h, p).0
}

/// [`raster`], with the display range used (data units: the limits of the colour bar).
pub fn raster_range(
    v: &[f32],
    sw: usize,
    sh: usize,
    w: usize,
    h: usize,
    p: &DisplayParams,
) -> (Raster, Option<(f32, f32)>) {
    let idx = |x: usize, y: usize| {
        let sy = (y * sh / h.max(1)).min(sh - 1);
        let sx = (x * sw / w.max(1)).min(sw - 1);
        sy * sw + sx
    };
    let range = scaled_range(v, p);
    let mut px = Vec::with_capacity(w * h);
    if w * h < sw * sh {
        let sampled: Vec<f32> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| v[idx(x, y)]).collect();
        let rgb = to_rgb_in(&sampled, p, range);
        px.extend(rgb.chunks_exact(3).map(|c| [c[0], c[1], c[2]]));
    } else {
        let rgb = to_rgb_in(v, p, range);
        for y in 0..h {
            for x in 0..w {
                let i = idx(x, y) * 3;
                px.push([rgb[i], rgb[i + 1], rgb[i + 2]]);
            }
        }
    }
    (Raster { w, h, px }, range.map(|r| unscaled(p, r)))
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
/// The FFT explorer's trotter overlay: the bright-field disk and its copies shifted by +-Q.
pub const TROTTER_DISK: [u8; 3] = [255, 220, 60];
pub const TROTTER_COPY: [u8; 3] = [80, 220, 255];

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
pub fn draw_circle(r: &mut Raster, m: &Mapping, centre: (f32, f32), rad: f32, c: [u8; 3]) {
    draw_ellipse(r, m, centre, (rad, rad), c)
}

/// Ellipse of source semi-axes `(ry, rx)` (rows, columns) around source centre `(cy, cx)`.
pub fn draw_ellipse(r: &mut Raster, m: &Mapping, (cy, cx): (f32, f32), (ry, rx): (f32, f32), c: [u8; 3]) {
    let (dy, dx) = m.to_display(cy, cx);
    let (ey, ex) = (ry as f64 * m.h as f64 / m.sh as f64, rx as f64 * m.scale());
    if ey.max(ex) < 0.5 {
        r.set(dx as i64, dy as i64, c);
        return;
    }
    let n = ((ey.max(ex) * 8.0) as usize).clamp(16, 4096);
    for i in 0..n {
        let t = i as f64 / n as f64 * std::f64::consts::TAU;
        r.set((dx + ex * t.cos()).floor() as i64, (dy + ey * t.sin()).floor() as i64, c);
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

/// What the readout strip and title of an image pane show: statistics of the values, the display
/// range (percentile-clipped, data units) and the colour map it spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub stats: Option<Stats>,
    pub range: Option<(f32, f32)>,
    pub clip: (f32, f32),
    pub colormap: Colormap,
}

/// A number in at most about 7 characters: 4 significant digits, exponent form outside
/// 0.01..100000 ("217467" -> "2.17e5").
pub fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        return format!("{v}");
    }
    if a == 0.0 {
        return "0".into();
    }
    if (1e-2..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 4) as usize;
        return format!("{v:.decimals$}");
    }
    format!("{v:.2e}")
}

/// The statistics in `width` characters: "min A max B mean C std D"; else, with two lines to
/// spare, "min A max B" and "mean C std D"; else a short form.
pub fn stats_lines(st: &Stats, width: usize, lines: usize) -> Vec<String> {
    let (lo, hi, m, sd) = (num(st.min as f64), num(st.max as f64), num(st.mean), num(st.std));
    let long = format!("min {lo} max {hi} mean {m} std {sd}");
    if long.chars().count() <= width {
        vec![long]
    } else if lines >= 2 {
        vec![format!("min {lo} max {hi}"), format!("mean {m} std {sd}")]
    } else {
        vec![format!("{lo}..{hi} μ{m} σ{sd}")]
    }
}

const RAMP: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/// One-line colour bar: the low limit, the colour map as a rising ramp of blocks in its colours
/// (readable in monochrome too), the high limit and, when there is room, the clipping.
pub struct ColourBar<'a>(pub &'a Readout);

impl Widget for ColourBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some((lo, hi)) = self.0.range else { return };
        if area.width == 0 || area.height == 0 {
            return;
        }
        let (l, h) = (num(lo as f64), num(hi as f64));
        let clip = format!(" ({})", clip_name(self.0.clip));
        let fixed = l.chars().count() + h.chars().count() + 2;
        let width = area.width as usize;
        let with_clip = width >= fixed + 8 + clip.chars().count();
        let bar = width.saturating_sub(fixed + if with_clip { clip.chars().count() } else { 0 });
        let mut x = area.x;
        let end = area.x + area.width;
        let mut put = |x: &mut u16, t: &str, fg: Option<Color>| {
            for ch in t.chars() {
                if *x >= end {
                    return;
                }
                let cell = &mut buf[(*x, area.y)];
                cell.set_char(ch);
                if let Some(c) = fg {
                    cell.set_fg(c);
                }
                *x += 1;
            }
        };
        put(&mut x, &format!("{l} "), None);
        if bar >= 3 {
            let lut = self.0.colormap.lut();
            for i in 0..bar {
                let t = i as f64 / (bar - 1) as f64;
                let c = lut[(t * 255.0).round() as usize];
                put(&mut x, RAMP[(t * 7.0).round() as usize], Some(Color::Rgb(c[0], c[1], c[2])));
            }
            put(&mut x, " ", None);
        }
        put(&mut x, &h, None);
        if with_clip {
            put(&mut x, &clip, Some(Color::DarkGray));
        }
    }
}

/// A prepared image, where it sits on screen (cells) and its readout.
pub struct Shown {
    pub img: PaneImage,
    pub cells: Rect,
    pub readout: Readout,
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

    const SIXEL: Graphics = Graphics::Protocol(ProtocolType::Sixel);

    #[test]
    fn plan_outside_multiplexers_queries_for_auto_only() {
        // auto on a plain terminal: query, half-blocks unless the query finds a protocol
        let p = plan(None, false, true, false, false);
        assert_eq!(p, Plan { query: true, default: Graphics::Halfblocks, forced: false, hint: None });
        // --no-query, no tty, or a forced text mode: no query
        assert!(!plan(None, true, true, false, false).query);
        assert!(!plan(None, false, false, false, false).query);
        assert!(!plan(Some(Graphics::Braille), false, true, false, false).query);
        assert_eq!(plan(Some(Graphics::Braille), false, true, false, false).default, Graphics::Braille);
        // a forced protocol still queries (for the cell size), and stays forced
        let p = plan(Some(SIXEL), false, true, false, false);
        assert_eq!(p, Plan { query: true, default: SIXEL, forced: true, hint: None });
        assert!(!plan(Some(SIXEL), true, true, false, false).query);
    }

    #[test]
    fn plan_under_tmux_and_screen_is_halfblocks_without_query() {
        for (tmux, screen, hint) in [(true, false, TMUX_HINT), (false, true, SCREEN_HINT), (true, true, TMUX_HINT)] {
            let p = plan(None, false, true, tmux, screen);
            assert_eq!(p, Plan { query: false, default: Graphics::Halfblocks, forced: false, hint: Some(hint) });
            // asking for a protocol overrides the default (and queries, bounded, for the cell size)
            let p = plan(Some(Graphics::Protocol(ProtocolType::Kitty)), false, true, tmux, screen);
            assert!(p.query && p.forced && p.hint.is_none());
            assert_eq!(p.default, Graphics::Protocol(ProtocolType::Kitty));
            let p = plan(Some(Graphics::Halfblocks), false, true, tmux, screen);
            assert!(!p.query && p.hint.is_none());
        }
        assert!(TMUX_HINT.contains("allow-passthrough on") && TMUX_HINT.contains("--graphics sixel|kitty"));
    }

    #[test]
    fn parse_graphics_names() {
        assert_eq!(parse_graphics("auto").unwrap(), None);
        assert_eq!(parse_graphics("sixel").unwrap(), Some(SIXEL));
        assert!(parse_graphics("png").is_err());
    }

    #[test]
    fn query_answers_and_typed_keys_are_told_apart() {
        use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
        // xterm with sixel: DA1 with 4, cell size, status; a `j` and an up arrow typed before
        let a = query::interpret(b"j\x1b[A\x1b[?63;1;2;4;6;9;15;22c\x1b[6;20;10t\x1b[0n");
        assert!(a.answered);
        assert_eq!(a.protocol, Some(ProtocolType::Sixel));
        assert_eq!(a.cell, Some((10, 20)));
        assert_eq!(a.keys, vec![Event::Key(KeyCode::Char('j').into()), Event::Key(KeyCode::Up.into())]);
        // kitty answers its graphics query; keys in between survive
        let a = query::interpret(b"\x1b_Gi=31;OK\x1b\\q\x1b[?62;c\x1b[0n");
        assert_eq!(a.protocol, Some(ProtocolType::Kitty));
        assert_eq!(a.keys, vec![Event::Key(KeyCode::Char('q').into())]);
        // nothing answered: only keys, not answered; a mouse report is dropped
        let a = query::interpret(b"\x1b[1;2C\x1b[<0;5;5M\r");
        assert!(!a.answered && a.protocol.is_none());
        assert_eq!(
            a.keys,
            vec![Event::Key(KeyEvent::new(KeyCode::Right, KeyModifiers::SHIFT)), Event::Key(KeyCode::Enter.into())]
        );
        // unfinished answer at the deadline: not a key
        assert!(query::interpret(b"\x1b_Gi=31;O").keys.is_empty());
        assert_eq!(query::key_events(b"\x1b"), vec![Event::Key(KeyCode::Esc.into())]);
        assert_eq!(
            query::key_events(b"Q\x1bx\x1b[5~"),
            vec![
                Event::Key(KeyEvent::new(KeyCode::Char('Q'), KeyModifiers::SHIFT)),
                Event::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::ALT)),
                Event::Key(KeyCode::PageUp.into()),
            ]
        );
    }

    #[test]
    fn late_kitty_answer_is_not_taken_for_keys() {
        use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
        let k = |c: char, alt: bool| {
            Event::Key(KeyEvent::new(KeyCode::Char(c), if alt { KeyModifiers::ALT } else { KeyModifiers::empty() }))
        };
        let late: Vec<Event> = std::iter::once(k('_', true))
            .chain("Gi=31;OK".chars().map(|c| k(c, false)))
            .chain([k('\\', true), k('q', false)])
            .collect();
        let mut f = query::LateAnswerFilter::new(true, std::time::Duration::from_secs(60));
        let out: Vec<Event> = late.iter().cloned().flat_map(|e| f.push(e)).collect();
        assert_eq!(out, vec![k('q', false)]);
        // an Alt+_ that is not an answer is passed on with what follows
        let mut f = query::LateAnswerFilter::new(true, std::time::Duration::from_secs(60));
        let out: Vec<Event> =
            [k('_', true), k('G', false), k('x', false)].into_iter().flat_map(|e| f.push(e)).collect();
        assert_eq!(out, vec![k('_', true), k('G', false), k('x', false)]);
        // inactive: everything passes
        let mut f = query::LateAnswerFilter::new(false, std::time::Duration::from_secs(60));
        let out: Vec<Event> = late.iter().cloned().flat_map(|e| f.push(e)).collect();
        assert_eq!(out, late);
    }

    #[test]
    fn fit_keeps_aspect() {
        assert_eq!(fit(64, 64, 40, 60), (40, 40));
        assert_eq!(fit(512, 256, 100, 100), (100, 50));
        assert_eq!(fit(16, 16, 64, 32), (32, 32));
        // small images are scaled up to fill the box, not only by whole factors
        assert_eq!(fit(48, 48, 58, 90), (58, 58));
        assert_eq!(fit(24, 16, 35, 40), (35, 23));
        assert_eq!(fit(3, 1000, 100, 100), (1, 100));
    }

    #[test]
    fn numbers_and_colour_bar() {
        assert_eq!(num(217467.0), "2.17e5");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(0.12345), "0.1235");
        assert_eq!(num(-0.0005), "-5.00e-4");
        assert_eq!(num(0.0), "0");
        let st = Stats { min: 1.0, max: 200.0, mean: 50.0, std: 2.5, n: 4 };
        assert_eq!(stats_lines(&st, 80, 1), vec!["min 1.000 max 200.0 mean 50.00 std 2.500"]);
        assert_eq!(stats_lines(&st, 20, 1), vec!["1.000..200.0 μ50.00 σ2.500"]);
        assert_eq!(stats_lines(&st, 20, 2), vec!["min 1.000 max 200.0", "mean 50.00 std 2.500"]);
        let r = Readout { stats: Some(st), range: Some((1.0, 200.0)), clip: (0.5, 99.5), colormap: Colormap::Gray };
        let mut buf = Buffer::empty(Rect::new(0, 0, 40, 1));
        ColourBar(&r).render(buf.area, &mut buf);
        let line: String = (0..40).map(|x| buf[(x, 0)].symbol().to_string()).collect();
        assert!(line.starts_with("1.000 ▁") && line.contains("█ 200.0 (0.5-99.5 %)"), "{line}");
        // narrow: no clipping label, still both limits
        let mut buf = Buffer::empty(Rect::new(0, 0, 16, 1));
        ColourBar(&r).render(buf.area, &mut buf);
        let line: String = (0..16).map(|x| buf[(x, 0)].symbol().to_string()).collect();
        assert!(line.starts_with("1.000 ") && line.trim_end().ends_with("200.0"), "{line}");
    }

    #[test]
    fn shrunk_raster_clips_with_the_whole_image() {
        let mut v = vec![1f32; 100];
        v[55] = 1000.0; // not among the 2x2 displayed samples
        let p = DisplayParams { clip: (0.0, 100.0), ..Default::default() };
        let (r, range) = raster_range(&v, 10, 10, 2, 2, &p);
        assert_eq!((r.w, r.h), (2, 2));
        assert_eq!(range, Some((1.0, 1000.0)));
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
