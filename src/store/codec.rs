//! The binary layout of the cache-directory entries, written and read in one place: an 8-byte
//! magic, the format version (u32; some entries have none), the key (u32 length + bytes), then
//! u64 header fields and f32 arrays, all little endian. Reading checks every length (no overflow,
//! nothing read past the end) and the magic, version and key: a damaged or foreign entry reads
//! as absent, never as a panic.

/// Builds an entry.
pub struct Writer {
    b: Vec<u8>,
}

impl Writer {
    /// The header: `magic`, `version` (when the entry has one) and `key`.
    pub fn new(magic: &[u8; 8], version: Option<u32>, key: &str, capacity: usize) -> Writer {
        let mut b = Vec::with_capacity(capacity + 16 + key.len());
        b.extend_from_slice(magic);
        if let Some(v) = version {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key.as_bytes());
        Writer { b }
    }
    /// Header fields, each as a u64.
    pub fn u64s(mut self, v: &[usize]) -> Writer {
        for &x in v {
            self.b.extend_from_slice(&(x as u64).to_le_bytes());
        }
        self
    }
    /// An array of f32.
    pub fn f32s(mut self, v: &[f32]) -> Writer {
        self.b.extend_from_slice(bytemuck::cast_slice(v));
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.b
    }
}

/// Reads an entry, every length checked.
pub struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    /// A reader after the header; None unless `b` starts with `magic`, `version` (when the entry
    /// has one) and `key`.
    pub fn open(b: &'a [u8], magic: &[u8; 8], version: Option<u32>, key: &str) -> Option<Reader<'a>> {
        let mut r = Reader { b, p: 0 };
        if r.take(8)? != magic {
            return None;
        }
        if let Some(v) = version
            && u32::from_le_bytes(r.take(4)?.try_into().ok()?) != v
        {
            return None;
        }
        let kl = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
        (r.take(kl)? == key.as_bytes()).then_some(r)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.p.checked_add(n)?;
        let s = self.b.get(self.p..end)?;
        self.p = end;
        Some(s)
    }
    /// `N` header fields (u64 each, as usize).
    pub fn u64s<const N: usize>(&mut self) -> Option<[usize; N]> {
        let mut h = [0usize; N];
        for v in h.iter_mut() {
            *v = usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()?;
        }
        Some(h)
    }
    /// An array of `n` f32.
    pub fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let s = self.take(n.checked_mul(4)?)?;
        Some(s.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.b.len() - self.p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damaged_ones_read_as_absent() {
        let b = Writer::new(b"EMDTUIXX", Some(3), "key", 0).u64s(&[2, 5]).f32s(&[1.0, -2.5]).finish();
        let mut r = Reader::open(&b, b"EMDTUIXX", Some(3), "key").unwrap();
        assert_eq!(r.u64s::<2>(), Some([2, 5]));
        assert_eq!(r.f32s(2), Some(vec![1.0, -2.5]));
        assert_eq!(r.remaining(), 0);
        assert!(r.f32s(1).is_none(), "nothing past the end");
        assert!(Reader::open(&b, b"EMDTUIXX", Some(4), "key").is_none(), "version");
        assert!(Reader::open(&b, b"EMDTUIXX", Some(3), "kez").is_none(), "key");
        assert!(Reader::open(&b, b"EMDTUIYY", Some(3), "key").is_none(), "magic");
        assert!(Reader::open(&b[..10], b"EMDTUIXX", Some(3), "key").is_none(), "truncated header");
        // a key length or an array length near usize::MAX must not overflow into a panic
        let mut huge = b.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Reader::open(&huge, b"EMDTUIXX", Some(3), "key").is_none());
        let mut r = Reader::open(&b, b"EMDTUIXX", Some(3), "key").unwrap();
        assert!(r.f32s(usize::MAX / 2).is_none());
        assert!(r.f32s(usize::MAX).is_none());
        let b = Writer::new(b"EMDTUICD", None, "k", 0).f32s(&[7.0]).finish();
        let mut r = Reader::open(&b, b"EMDTUICD", None, "k").unwrap();
        assert_eq!((r.remaining(), r.f32s(1)), (4, Some(vec![7.0])));
    }
}
