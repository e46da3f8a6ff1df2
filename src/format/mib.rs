//! Quantum Detectors Merlin `.mib` frames: header parsing, pixel decoding (U08/U16/U32/U64 and raw
//! R64 at 1/6/12/24 bit, single chip and quad 2x2), raw encoding (for the synthetic generator) and
//! the per-file frame index. No threads, no UI. See `../shared/docs/mib-format.md`.

use crate::error::{Error, Result};
use std::path::Path;

/// How the pixel block is stored in the file (header field 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Storage {
    U8,
    U16,
    U32,
    U64,
    /// Raw chip readout; the counter depth comes from the MQ1A extension.
    Raw {
        depth: u8,
    },
}

/// The decoded pixel type (native little-endian in memory and in EMD files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PixelType {
    U8,
    U16,
    U32,
}

impl PixelType {
    pub fn bytes(self) -> usize {
        match self {
            PixelType::U8 => 1,
            PixelType::U16 => 2,
            PixelType::U32 => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PixelType::U8 => "uint8",
            PixelType::U16 => "uint16",
            PixelType::U32 => "uint32",
        }
    }
    pub fn max_value(self) -> u32 {
        match self {
            PixelType::U8 => u8::MAX as u32,
            PixelType::U16 => u16::MAX as u32,
            PixelType::U32 => u32::MAX,
        }
    }
}

/// One parsed MQ1 frame header. Every field of the format is kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrameHeader {
    pub sequence: u64,
    pub header_bytes: usize,
    pub num_chips: u32,
    /// Field 4 as written (raw width in R64 mode).
    pub width: usize,
    /// Field 5 as written.
    pub height: usize,
    pub pixel_depth: String,
    pub storage: Storage,
    /// Layout string with its padding removed (`1x1`, `2x2`, `2x2G`, `Nx1`, ...).
    pub layout: String,
    pub chip_select: u32,
    pub timestamp: String,
    pub shutter_s: f64,
    pub counter: u32,
    pub colour_mode: u32,
    pub gain_mode: u32,
    pub thresholds_kev: Vec<f64>,
    /// One block per chip: the chip type tag (e.g. `3RX`) and its 27 DAC values.
    pub dac_blocks: Vec<(String, Vec<u32>)>,
    pub mq1a_timestamp: Option<String>,
    pub mq1a_shutter_ns: Option<u64>,
    pub mq1a_counter_depth: Option<u8>,
    /// Decoded frame geometry (rows, cols) in stored orientation.
    pub rows: usize,
    pub cols: usize,
    pub pixel_type: PixelType,
    /// Bytes of the pixel block that follows the header.
    pub payload_bytes: usize,
}

impl FrameHeader {
    pub fn stride(&self) -> usize {
        self.header_bytes + self.payload_bytes
    }
    pub fn is_raw(&self) -> bool {
        matches!(self.storage, Storage::Raw { .. })
    }
    /// Counter depth: MQ1A field, else implied by the storage.
    pub fn counter_depth(&self) -> Option<u8> {
        self.mq1a_counter_depth.or(match self.storage {
            Storage::U8 => None,
            Storage::U16 => Some(12),
            Storage::U32 => Some(24),
            _ => None,
        })
    }
    /// Nanoseconds since the epoch of the MQ1A UTC timestamp, if present and well formed.
    pub fn mq1a_time_ns(&self) -> Option<i128> {
        parse_iso_ns(self.mq1a_timestamp.as_deref()?)
    }
    /// True when two headers describe the same pixel geometry and encoding.
    pub fn same_geometry(&self, o: &FrameHeader) -> bool {
        self.header_bytes == o.header_bytes
            && self.width == o.width
            && self.height == o.height
            && self.storage == o.storage
            && self.num_chips == o.num_chips
    }
}

/// Parse `2021-04-15T13:44:43.100924481Z` into ns since 1970 (UTC, proleptic Gregorian).
pub fn parse_iso_ns(s: &str) -> Option<i128> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let ns_frac: i64 = format!("{frac:0<9}").parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    Some(secs as i128 * 1_000_000_000 + ns_frac as i128)
}

/// Largest header we accept (the field is 5 digits; real files use 384 or 768).
pub const MAX_HEADER: usize = 99_999;

/// Read the header length out of the first bytes of a frame (field 2), checking the magic.
pub fn header_length(path: &Path, head: &[u8]) -> Result<usize> {
    if head.is_empty() {
        return Err(Error::format(path, "empty file"));
    }
    if !head.starts_with(b"MQ1,") {
        if head.len() >= 4 && head[0].is_ascii_digit() && head[..4].contains(&b'B') {
            return Err(Error::unsupported(
                path,
                "pre-MQ1 'Merlin vs 1' header (software < 0.77); convert with the Merlin software first",
            ));
        }
        return Err(Error::format(path, "not a Merlin .mib file (no 'MQ1,' magic at offset 0)"));
    }
    let text_end = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    let text = std::str::from_utf8(&head[..text_end]).map_err(|_| Error::format(path, "frame header is not ASCII"))?;
    let mut f = text.split(',');
    let _ = f.next();
    let _seq = f.next();
    let off = f.next().ok_or_else(|| Error::format(path, "frame header cut before the data offset field"))?;
    let n: usize =
        off.trim().parse().map_err(|_| Error::format(path, format!("header length field {off:?} is not a number")))?;
    if !(64..=MAX_HEADER).contains(&n) {
        return Err(Error::format(path, format!("header length field says {n} bytes, which is implausible")));
    }
    Ok(n)
}

fn field<'a>(path: &Path, f: &[&'a str], i: usize, name: &str) -> Result<&'a str> {
    f.get(i)
        .copied()
        .ok_or_else(|| Error::format(path, format!("frame header has no field {i} ({name}); header cut short?")))
}

fn num<T: std::str::FromStr>(path: &Path, f: &[&str], i: usize, name: &str) -> Result<T> {
    let s = field(path, f, i, name)?;
    s.trim()
        .parse()
        .map_err(|_| Error::format(path, format!("frame header field {i} ({name}) = {s:?} is not a number")))
}

/// The thresholds (keV, fields 14..22 unless field 14 is empty: 2019 raw headers) and the DAC
/// blocks after them, up to field `end`.
fn thresholds_and_dacs(f: &[&str], end: usize) -> (Vec<f64>, Vec<(String, Vec<u32>)>) {
    let mut i = 14;
    let mut thresholds_kev = Vec::new();
    while i < end && i < 22 {
        let s = f[i].trim();
        if s.is_empty() || s.ends_with("RX") || s == "3" {
            break;
        }
        match s.parse::<f64>() {
            Ok(v) => thresholds_kev.push(v),
            Err(_) => break,
        }
        i += 1;
    }
    let mut dac_blocks = Vec::new();
    while i < end {
        let tag = f[i].trim();
        if tag.len() >= 2 && tag.chars().next().is_some_and(|c| c.is_ascii_digit()) && tag.ends_with("RX") {
            let vals: Vec<u32> = f[i + 1..end.min(i + 28)].iter().filter_map(|v| v.trim().parse().ok()).collect();
            dac_blocks.push((tag.to_string(), vals));
            i += 28;
        } else {
            i += 1;
        }
    }
    (thresholds_kev, dac_blocks)
}

/// The MQ1A extension after field `mq1a`: timestamp, shutter (ns) and counter depth.
fn mq1a_fields(f: &[&str], mq1a: Option<usize>) -> (Option<String>, Option<u64>, Option<u8>) {
    let Some(j) = mq1a else { return (None, None, None) };
    let timestamp = f.get(j + 1).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let shutter_ns = f.get(j + 2).and_then(|s| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_suffix("ns").unwrap_or(&s).trim().parse().ok()
    });
    (timestamp, shutter_ns, f.get(j + 3).and_then(|s| s.trim().parse().ok()))
}

/// The pixel storage of a pixel-depth field (raw frames need the MQ1A counter depth).
fn storage_of(path: &Path, pixel_depth: &str, mq1a_counter_depth: Option<u8>) -> Result<Storage> {
    Ok(match pixel_depth {
        "U08" => Storage::U8,
        "U16" => Storage::U16,
        "U32" => Storage::U32,
        "U64" => Storage::U64,
        "U01" => {
            return Err(Error::unsupported(path, "U01 bit-packed pixels (no sample file exists; bit order unknown)"));
        }
        "R64" => {
            let depth = mq1a_counter_depth.ok_or_else(|| {
                Error::format(path, "raw (R64) frame without an MQ1A extension: counter depth unknown")
            })?;
            if ![1, 6, 12, 24].contains(&depth) {
                return Err(Error::format(path, format!("raw counter depth {depth} is not 1, 6, 12 or 24")));
            }
            Storage::Raw { depth }
        }
        other => return Err(Error::format(path, format!("unknown pixel depth {other:?}"))),
    })
}

/// Parse a complete frame header (`hdr` = exactly `header_bytes` bytes).
pub fn parse_header(path: &Path, hdr: &[u8]) -> Result<FrameHeader> {
    let header_bytes = header_length(path, hdr)?;
    if hdr.len() < header_bytes {
        return Err(Error::format(path, format!("frame header cut short: {} of {header_bytes} bytes", hdr.len())));
    }
    let hdr = &hdr[..header_bytes];
    let text_end = hdr.iter().position(|&b| b == 0).unwrap_or(hdr.len());
    let text = std::str::from_utf8(&hdr[..text_end]).map_err(|_| Error::format(path, "frame header is not ASCII"))?;
    let f: Vec<&str> = text.split(',').collect();
    let sequence: u64 = num(path, &f, 1, "sequence number")?;
    let num_chips: u32 = num(path, &f, 3, "number of chips")?;
    let width: usize = num(path, &f, 4, "width")?;
    let height: usize = num(path, &f, 5, "height")?;
    let pixel_depth = field(path, &f, 6, "pixel depth")?.trim().to_string();
    let layout = field(path, &f, 7, "sensor layout")?.trim().to_string();
    let chip_select = u32::from_str_radix(field(path, &f, 8, "chip select")?.trim(), 16)
        .map_err(|_| Error::format(path, "frame header chip select is not hex"))?;
    let timestamp = field(path, &f, 9, "timestamp")?.trim().to_string();
    let shutter_s: f64 = num(path, &f, 10, "shutter time")?;
    let counter: u32 = num(path, &f, 11, "counter")?;
    let colour_mode: u32 = num(path, &f, 12, "colour mode")?;
    let gain_mode: u32 = num(path, &f, 13, "gain mode")?;
    if width == 0 || height == 0 || width > 8192 || height > 8192 {
        return Err(Error::format(path, format!("implausible frame size {width}x{height}")));
    }
    if !(1..=64).contains(&num_chips) {
        return Err(Error::format(path, format!("implausible number of chips {num_chips}")));
    }
    let mq1a = f.iter().position(|s| *s == "MQ1A");
    let end = mq1a.unwrap_or(f.len());
    let (thresholds_kev, dac_blocks) = thresholds_and_dacs(&f, end);
    let (mq1a_timestamp, mq1a_shutter_ns, mq1a_counter_depth) = mq1a_fields(&f, mq1a);
    if colour_mode != 0 {
        return Err(Error::unsupported(
            path,
            "colour / multi-counter mode (colour mode field = 1): frames are colour layers, not scan positions",
        ));
    }
    let storage = storage_of(path, &pixel_depth, mq1a_counter_depth)?;
    let (rows, cols, pixel_type, payload_bytes) = geometry(path, storage, num_chips, &layout, width, height)?;
    Ok(FrameHeader {
        sequence,
        header_bytes,
        num_chips,
        width,
        height,
        pixel_depth,
        storage,
        layout,
        chip_select,
        timestamp,
        shutter_s,
        counter,
        colour_mode,
        gain_mode,
        thresholds_kev,
        dac_blocks,
        mq1a_timestamp,
        mq1a_shutter_ns,
        mq1a_counter_depth,
        rows,
        cols,
        pixel_type,
        payload_bytes,
    })
}

/// Decoded geometry, output pixel type and payload size.
fn geometry(
    path: &Path,
    storage: Storage,
    num_chips: u32,
    layout: &str,
    w: usize,
    h: usize,
) -> Result<(usize, usize, PixelType, usize)> {
    Ok(match storage {
        Storage::U8 => (h, w, PixelType::U8, w * h),
        Storage::U16 => (h, w, PixelType::U16, 2 * w * h),
        Storage::U32 => (h, w, PixelType::U32, 4 * w * h),
        Storage::U64 => (h, w, PixelType::U32, 8 * w * h),
        Storage::Raw { depth } => {
            let raw_w = if depth == 24 { w / 2 } else { w };
            if depth == 24 && !w.is_multiple_of(2) {
                return Err(Error::format(path, "24-bit raw frame with an odd width"));
            }
            if raw_w % 64 != 0 && depth == 1 || raw_w % 8 != 0 {
                return Err(Error::format(path, format!("raw width {raw_w} is not a whole number of 8-byte chunks")));
            }
            let (rows, cols) = match (num_chips, raw_w) {
                (1, 256) => (h, 256),
                (4, 1024) if layout == "2x2" => (2 * h, 512),
                (4, 1024) => {
                    return Err(Error::unsupported(
                        path,
                        format!("raw quad layout {layout:?} (only 2x2 raw is decoded)"),
                    ));
                }
                _ => {
                    return Err(Error::unsupported(
                        path,
                        format!("raw data with {num_chips} chips, width {w}, layout {layout:?}"),
                    ));
                }
            };
            let (pt, payload) = match depth {
                1 => (PixelType::U8, raw_w * h / 8),
                6 => (PixelType::U8, raw_w * h),
                12 => (PixelType::U16, 2 * raw_w * h),
                _ => (PixelType::U32, 4 * raw_w * h),
            };
            (rows, cols, pt, payload)
        }
    })
}

/// Output element types a frame can be decoded into.
pub trait Pixel: Copy + Default + Send + Sync + 'static {
    const TYPE: PixelType;
    fn from_u32(v: u32) -> Self;
    fn to_u32(self) -> u32;
}
impl Pixel for u8 {
    const TYPE: PixelType = PixelType::U8;
    #[inline(always)]
    fn from_u32(v: u32) -> Self {
        v as u8
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self as u32
    }
}
impl Pixel for u16 {
    const TYPE: PixelType = PixelType::U16;
    #[inline(always)]
    fn from_u32(v: u32) -> Self {
        v as u16
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self as u32
    }
}
impl Pixel for u32 {
    const TYPE: PixelType = PixelType::U32;
    #[inline(always)]
    fn from_u32(v: u32) -> Self {
        v
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self
    }
}

/// Decode one pixel block (`payload`, exactly `h.payload_bytes`) into `out` (rows*cols, stored
/// orientation). `T` must be `h.pixel_type`; `scratch` is reused for raw rearrangement.
pub fn decode_into<T: Pixel>(h: &FrameHeader, payload: &[u8], out: &mut [T], scratch: &mut Vec<u32>) -> Result<()> {
    debug_assert_eq!(T::TYPE, h.pixel_type);
    debug_assert_eq!(payload.len(), h.payload_bytes);
    debug_assert_eq!(out.len(), h.rows * h.cols);
    match h.storage {
        Storage::U8 => {
            for (o, &b) in out.iter_mut().zip(payload) {
                *o = T::from_u32(b as u32);
            }
        }
        Storage::U16 => {
            for (o, s) in out.iter_mut().zip(payload.chunks_exact(2)) {
                *o = T::from_u32(u16::from_be_bytes([s[0], s[1]]) as u32);
            }
        }
        Storage::U32 => {
            for (o, s) in out.iter_mut().zip(payload.chunks_exact(4)) {
                *o = T::from_u32(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
            }
        }
        Storage::U64 => {
            for (o, s) in out.iter_mut().zip(payload.chunks_exact(8)) {
                let v = u64::from_be_bytes(s.try_into().unwrap());
                if v > u32::MAX as u64 {
                    return Err(Error::Invalid(format!("U64 pixel value {v} exceeds 32 bits")));
                }
                *o = T::from_u32(v as u32);
            }
        }
        Storage::Raw { depth } => {
            let raw_w = if depth == 24 { h.width / 2 } else { h.width };
            let n = raw_w * h.height;
            scratch.clear();
            scratch.resize(n, 0);
            match depth {
                24 => {
                    let half = payload.len() / 2;
                    raw_chunks(12, &payload[..half], scratch);
                    let mut lsb = vec![0u32; n];
                    raw_chunks(12, &payload[half..], &mut lsb);
                    for (m, l) in scratch.iter_mut().zip(&lsb) {
                        *m = (*m << 12) | *l;
                    }
                }
                d => raw_chunks(d, payload, scratch),
            }
            if h.num_chips == 1 {
                for (o, &v) in out.iter_mut().zip(scratch.iter()) {
                    *o = T::from_u32(v);
                }
            } else {
                quad_assemble(scratch, h.height, out);
            }
        }
    }
    Ok(())
}

/// Decode a stream of raw 8-byte chunks into pixels in raw order.
fn raw_chunks(depth: u8, payload: &[u8], out: &mut [u32]) {
    match depth {
        1 => {
            for (o, c) in out.chunks_exact_mut(64).zip(payload.chunks_exact(8)) {
                let v = u64::from_be_bytes(c.try_into().unwrap());
                for (i, p) in o.iter_mut().enumerate() {
                    *p = ((v >> i) & 1) as u32;
                }
            }
        }
        6 => {
            for (o, c) in out.chunks_exact_mut(8).zip(payload.chunks_exact(8)) {
                for i in 0..8 {
                    o[i] = c[7 - i] as u32;
                }
            }
        }
        _ => {
            for (o, c) in out.chunks_exact_mut(4).zip(payload.chunks_exact(8)) {
                for (i, oi) in o.iter_mut().enumerate() {
                    let k = 2 * (3 - i);
                    *oi = u16::from_be_bytes([c[k], c[k + 1]]) as u32;
                }
            }
        }
    }
}

/// Quad 2x2 raw: each raw row is [c0|c1|c2|c3] (256 px each). Output (2n x 512):
/// top-left c3, top-right c2, bottom-left c1 and bottom-right c0 flipped in x and y.
fn quad_assemble<T: Pixel>(raw: &[u32], n: usize, out: &mut [T]) {
    const W: usize = 512;
    for r in 0..n {
        let row = &raw[r * 1024..(r + 1) * 1024];
        let (c0, c1, c2, c3) = (&row[0..256], &row[256..512], &row[512..768], &row[768..1024]);
        let top = &mut out[r * W..(r + 1) * W];
        for x in 0..256 {
            top[x] = T::from_u32(c3[x]);
            top[256 + x] = T::from_u32(c2[x]);
        }
        let br = 2 * n - 1 - r;
        let bot = &mut out[br * W..(br + 1) * W];
        for x in 0..256 {
            bot[255 - x] = T::from_u32(c1[x]);
            bot[511 - x] = T::from_u32(c0[x]);
        }
    }
}

/// Inverse of [`decode_into`] for raw storage: encode a decoded frame (rows x cols, u32 values)
/// into the raw payload layout. Used by the synthetic generator and round-trip tests.
pub fn encode_raw(depth: u8, quad: bool, frame: &[u32], rows: usize, cols: usize) -> Vec<u8> {
    // rebuild raw order
    let (raw_rows, raw_w) = if quad { (rows / 2, 1024) } else { (rows, cols) };
    let mut raw = vec![0u32; raw_rows * raw_w];
    if quad {
        let n = raw_rows;
        for r in 0..n {
            for x in 0..256 {
                raw[r * 1024 + 768 + x] = frame[r * 512 + x];
                raw[r * 1024 + 512 + x] = frame[r * 512 + 256 + x];
                let br = 2 * n - 1 - r;
                raw[r * 1024 + 256 + x] = frame[br * 512 + 255 - x];
                raw[r * 1024 + x] = frame[br * 512 + 511 - x];
            }
        }
    } else {
        raw.copy_from_slice(frame);
    }
    let chunks = |d: u8, vals: &[u32], mask: u32| -> Vec<u8> {
        let mut out = Vec::new();
        match d {
            1 => {
                for c in vals.chunks_exact(64) {
                    let mut v = 0u64;
                    for (i, &p) in c.iter().enumerate() {
                        v |= ((p & 1) as u64) << i;
                    }
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            6 => {
                for c in vals.chunks_exact(8) {
                    for i in 0..8 {
                        out.push((c[7 - i] & mask) as u8);
                    }
                }
            }
            _ => {
                for c in vals.chunks_exact(4) {
                    for i in 0..4 {
                        out.extend_from_slice(&((c[3 - i] & mask) as u16).to_be_bytes());
                    }
                }
            }
        }
        out
    };
    match depth {
        24 => {
            let msb: Vec<u32> = raw.iter().map(|v| (v >> 12) & 0xfff).collect();
            let mut out = chunks(12, &msb, 0xfff);
            out.extend(chunks(12, &raw, 0xfff));
            out
        }
        1 => chunks(1, &raw, 1),
        6 => chunks(6, &raw, 0xff),
        _ => chunks(12, &raw, 0xffff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_ns() {
        assert_eq!(parse_iso_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_iso_ns("2021-04-15T13:44:43.100924481Z"), Some(1_618_494_283_100_924_481));
        assert_eq!(parse_iso_ns("garbage"), None);
    }

    #[test]
    fn raw_roundtrip_all_depths() {
        for &(depth, quad) in
            &[(1u8, false), (6, false), (12, false), (24, false), (1, true), (6, true), (12, true), (24, true)]
        {
            let (rows, cols) = if quad { (128, 512) } else { (64, 256) };
            let max = match depth {
                1 => 1,
                6 => 63,
                12 => 4095,
                _ => (1 << 24) - 1,
            };
            let frame: Vec<u32> =
                (0..rows * cols).map(|i| ((i as u64 * 2654435761) % (max as u64 + 1)) as u32).collect();
            let payload = encode_raw(depth, quad, &frame, rows, cols);
            let w = if quad { 1024 } else { 256 } * if depth == 24 { 2 } else { 1 };
            let hdr = format!(
                "MQ1,000001,00384,{:02},{:04},{:04},R64,   2x2,0F,2021-01-01 00:00:00.000000,0.001,0,0,0,,MQ1A,2021-01-01T00:00:00.000000000Z,1000ns,{},",
                if quad { 4 } else { 1 },
                w,
                if quad { rows / 2 } else { rows },
                depth
            );
            let mut b = hdr.into_bytes();
            b.resize(384, 0);
            let h = parse_header(Path::new("x"), &b).unwrap();
            assert_eq!((h.rows, h.cols), (rows, cols));
            assert_eq!(h.payload_bytes, payload.len());
            let mut out = vec![0u32; rows * cols];
            let mut scratch = Vec::new();
            match h.pixel_type {
                PixelType::U8 => {
                    let mut o8 = vec![0u8; rows * cols];
                    decode_into(&h, &payload, &mut o8, &mut scratch).unwrap();
                    out = o8.iter().map(|&v| v as u32).collect();
                }
                PixelType::U16 => {
                    let mut o = vec![0u16; rows * cols];
                    decode_into(&h, &payload, &mut o, &mut scratch).unwrap();
                    out = o.iter().map(|&v| v as u32).collect();
                }
                PixelType::U32 => decode_into(&h, &payload, &mut out, &mut scratch).unwrap(),
            }
            assert_eq!(out, frame, "depth {depth} quad {quad}");
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        let p = Path::new("f.mib");
        assert!(header_length(p, b"").is_err());
        assert!(header_length(p, b"hello world").is_err());
        assert!(header_length(p, b"MQ1,000001,abc,").is_err());
        assert!(header_length(p, b"MQ1,000001,00010,").is_err());
        let e = parse_header(p, b"MQ1,000001,00384,01,0256").unwrap_err().to_string();
        assert!(e.contains("f.mib") && e.contains("cut short"), "{e}");
    }
}
