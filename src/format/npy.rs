//! A bounded reader of NumPy `.npy` arrays from untrusted input (a file, or a member of a zip).
//!
//! The header is read first and checked (magic, version, a header of at most 64 KiB, a plain
//! numeric dtype, a shape whose element count fits the caller's limit); only then is the data read,
//! exactly the number of bytes the header promises, so a file that claims gigabytes costs nothing
//! and a truncated one is reported as such.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest header accepted (NumPy writes 128 bytes or so).
const MAX_HEADER: usize = 64 * 1024;

/// Element types of an `.npy` array that convert to `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyType {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::Bool | NpyType::I8 | NpyType::U8 => 1,
            NpyType::I16 | NpyType::U16 => 2,
            NpyType::I32 | NpyType::U32 | NpyType::F32 => 4,
            NpyType::I64 | NpyType::U64 | NpyType::F64 => 8,
        }
    }

    /// NumPy's name of the type (`float32`, `uint16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NpyType::Bool => "bool",
            NpyType::I8 => "int8",
            NpyType::U8 => "uint8",
            NpyType::I16 => "int16",
            NpyType::U16 => "uint16",
            NpyType::I32 => "int32",
            NpyType::U32 => "uint32",
            NpyType::I64 => "int64",
            NpyType::U64 => "uint64",
            NpyType::F32 => "float32",
            NpyType::F64 => "float64",
        }
    }
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    pub dtype: NpyType,
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

impl NpyHeader {
    /// Number of elements (checked against overflow by the parser).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array read from an `.npy`: its header and the values as `f32` in C (row-major) order.
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub header: NpyHeader,
    pub data: Vec<f32>,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(path, msg)
}

fn parse_descr(path: &Path, d: &str) -> Result<(NpyType, bool)> {
    let (order, code) = d.split_at(d.len().min(1));
    let big = match order {
        ">" => true,
        "<" | "|" | "=" => false,
        _ => return Err(bad(path, format!(".npy: unsupported dtype '{d}'"))),
    };
    let t = match code {
        "b1" => NpyType::Bool,
        "i1" => NpyType::I8,
        "u1" => NpyType::U8,
        "i2" => NpyType::I16,
        "u2" => NpyType::U16,
        "i4" => NpyType::I32,
        "u4" => NpyType::U32,
        "i8" => NpyType::I64,
        "u8" => NpyType::U64,
        "f4" => NpyType::F32,
        "f8" => NpyType::F64,
        c if c.starts_with('c') => {
            return Err(bad(path, format!(".npy: complex data ('{d}') is not an image: save its magnitude")));
        }
        _ => return Err(bad(path, format!(".npy: unsupported dtype '{d}' (want bool, integers, float32/64)"))),
    };
    Ok((t, big))
}

/// The value of `'key': value` in NumPy's header dict (a string, a bool or a tuple), as text.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(r) = rest.strip_prefix('\'') {
        r.find('\'')? + 2
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(path: &Path, s: &str, max_elements: usize) -> Result<Vec<usize>> {
    let inner = s.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| bad(path, ".npy: bad shape"))?;
    let mut shape = Vec::new();
    let mut n: usize = 1;
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: usize = part.parse().map_err(|_| bad(path, format!(".npy: bad shape entry '{part}'")))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= max_elements)
            .ok_or_else(|| bad(path, format!(".npy: shape {s} is larger than the {max_elements} elements accepted")))?;
        shape.push(d);
    }
    Ok(shape)
}

/// Read and check the header; the reader is left at the first data byte.
pub fn read_header(r: &mut impl Read, path: &Path, max_elements: usize) -> Result<NpyHeader> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|_| bad(path, ".npy: truncated before the header"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad(path, "not a .npy array (no \\x93NUMPY magic)"));
    }
    let hlen = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| bad(path, ".npy: truncated header"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| bad(path, ".npy: truncated header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(bad(path, format!(".npy: unknown format version {v}"))),
    };
    if hlen > MAX_HEADER {
        return Err(bad(path, format!(".npy: header of {hlen} bytes (at most {MAX_HEADER} accepted)")));
    }
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h).map_err(|_| bad(path, ".npy: truncated header"))?;
    let h = String::from_utf8_lossy(&h);
    let descr = dict_value(&h, "descr").ok_or_else(|| bad(path, ".npy: header has no 'descr'"))?;
    let (dtype, big_endian) = parse_descr(path, descr.trim_matches('\''))?;
    let fortran_order = dict_value(&h, "fortran_order") == Some("True");
    let shape = parse_shape(
        path,
        dict_value(&h, "shape").ok_or_else(|| bad(path, ".npy: header has no 'shape'"))?,
        max_elements,
    )?;
    Ok(NpyHeader { dtype, big_endian, fortran_order, shape })
}

fn convert(h: &NpyHeader, raw: &[u8]) -> Vec<f32> {
    let sz = h.dtype.size();
    let word = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        if h.big_endian {
            for (i, b) in c.iter().rev().enumerate() {
                w[i] = *b;
            }
        } else {
            w[..c.len()].copy_from_slice(c);
        }
        w
    };
    raw.chunks_exact(sz)
        .map(|c| {
            let w = word(c);
            match h.dtype {
                NpyType::Bool | NpyType::U8 => w[0] as f32,
                NpyType::I8 => w[0] as i8 as f32,
                NpyType::I16 => i16::from_le_bytes([w[0], w[1]]) as f32,
                NpyType::U16 => u16::from_le_bytes([w[0], w[1]]) as f32,
                NpyType::I32 => i32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f32,
                NpyType::U32 => u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f32,
                NpyType::F32 => f32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                NpyType::I64 => i64::from_le_bytes(w) as f32,
                NpyType::U64 => u64::from_le_bytes(w) as f32,
                NpyType::F64 => f64::from_le_bytes(w) as f32,
            }
        })
        .collect()
}

/// C order from Fortran order for any number of axes.
fn to_c_order(shape: &[usize], f: Vec<f32>) -> Vec<f32> {
    if shape.len() < 2 {
        return f;
    }
    let n = f.len();
    let mut c = vec![0f32; n];
    let mut idx = vec![0usize; shape.len()];
    for v in c.iter_mut() {
        // offset of idx in Fortran order
        let (mut off, mut stride) = (0usize, 1usize);
        for (i, &d) in idx.iter().zip(shape) {
            off += i * stride;
            stride *= d;
        }
        *v = f[off];
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    c
}

/// Read a whole `.npy` (header, then exactly its data) of at most `max_elements` elements.
pub fn read(r: &mut impl Read, path: &Path, max_elements: usize) -> Result<NpyArray> {
    let header = read_header(r, path, max_elements)?;
    let want = header.len() * header.dtype.size();
    let mut raw = Vec::with_capacity(want);
    let got = r.take(want as u64).read_to_end(&mut raw).map_err(|e| Error::io(path, e))?;
    if got < want {
        return Err(bad(path, format!(".npy: truncated: {got} of {want} data bytes")));
    }
    let mut data = convert(&header, &raw);
    if header.fortran_order {
        data = to_c_order(&header.shape, data);
    }
    Ok(NpyArray { header, data })
}

/// A `.npy` as NumPy 1.x writes it (version 1.0, header padded to 64 bytes).
#[cfg(test)]
pub(crate) fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.npy")
    }

    #[test]
    fn reads_types_orders_and_endianness() {
        let le: Vec<u8> = [1u16, 2, 3, 4, 5, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read(&mut &npy_bytes("<u2", false, "(2, 3)", &le)[..], p(), 100).unwrap();
        assert_eq!(a.header.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1., 2., 3., 4., 5., 6.]);
        let be: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = read(&mut &npy_bytes(">f8", false, "(2,)", &be)[..], p(), 100).unwrap();
        assert_eq!(a.data, vec![1.5, -2.0]);
        // Fortran order: columns stored first
        let f: Vec<u8> = [1f32, 4., 2., 5., 3., 6.].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read(&mut &npy_bytes("<f4", true, "(2, 3)", &f)[..], p(), 100).unwrap();
        assert_eq!(a.data, vec![1., 2., 3., 4., 5., 6.]);
        let a = read(&mut &npy_bytes("|i1", false, "(1, 2)", &[0xff, 7])[..], p(), 100).unwrap();
        assert_eq!(a.data, vec![-1., 7.]);
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let e = |b: Vec<u8>| read(&mut &b[..], p(), 1 << 20).unwrap_err().to_string();
        // claims 80 GB: refused from the header, nothing allocated
        assert!(e(npy_bytes("<f8", false, "(100000, 100000)", &[])).contains("larger than"));
        assert!(e(npy_bytes("<f4", false, "(4, 4)", &[0; 10])).contains("truncated: 10 of 64"));
        assert!(e(npy_bytes("<c8", false, "(2,)", &[0; 16])).contains("complex"));
        assert!(e(npy_bytes("<U4", false, "(2,)", &[0; 16])).contains("unsupported dtype"));
        assert!(e(b"PK\x03\x04 not an npy".to_vec()).contains("no \\x93NUMPY"));
        assert!(e(b"\x93NUMPY\x01\x00\xff".to_vec()).contains("truncated header"));
        // overflowing product
        assert!(e(npy_bytes("<u1", false, "(18446744073709551615, 2)", &[])).contains("larger than"));
    }
}
