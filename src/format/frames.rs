//! Decoded frames in their native pixel type, as one buffer: what readers fill and kernels take.

use crate::format::mib::PixelType;

/// A block of decoded frames in the dataset's native pixel type.
#[derive(Debug, Clone)]
pub enum FrameBuf {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl FrameBuf {
    pub fn new(t: PixelType) -> Self {
        match t {
            PixelType::U8 => FrameBuf::U8(Vec::new()),
            PixelType::U16 => FrameBuf::U16(Vec::new()),
            PixelType::U32 => FrameBuf::U32(Vec::new()),
        }
    }
    pub fn pixel_type(&self) -> PixelType {
        match self {
            FrameBuf::U8(_) => PixelType::U8,
            FrameBuf::U16(_) => PixelType::U16,
            FrameBuf::U32(_) => PixelType::U32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            FrameBuf::U8(v) => v.len(),
            FrameBuf::U16(v) => v.len(),
            FrameBuf::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Resize to `n` pixels, zero-filled where grown (no allocation when capacity suffices).
    pub fn resize(&mut self, n: usize) {
        match self {
            FrameBuf::U8(v) => v.resize(n, 0),
            FrameBuf::U16(v) => v.resize(n, 0),
            FrameBuf::U32(v) => v.resize(n, 0),
        }
    }
    pub fn get_u32(&self, i: usize) -> u32 {
        match self {
            FrameBuf::U8(v) => v[i] as u32,
            FrameBuf::U16(v) => v[i] as u32,
            FrameBuf::U32(v) => v[i],
        }
    }
    pub fn to_u32(&self) -> Vec<u32> {
        match self {
            FrameBuf::U8(v) => v.iter().map(|&x| x as u32).collect(),
            FrameBuf::U16(v) => v.iter().map(|&x| x as u32).collect(),
            FrameBuf::U32(v) => v.clone(),
        }
    }
    /// Little-endian bytes of the pixels (what an EMD file stores).
    pub fn as_le_bytes(&self) -> &[u8] {
        // all supported targets are little-endian; checked at compile time
        const _: () = assert!(cfg!(target_endian = "little"));
        match self {
            FrameBuf::U8(v) => v,
            FrameBuf::U16(v) => bytemuck::cast_slice(v),
            FrameBuf::U32(v) => bytemuck::cast_slice(v),
        }
    }
}

/// Applies a generic closure to the typed slice inside a [`FrameBuf`].
#[macro_export]
macro_rules! with_frames {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::format::frames::FrameBuf::U8($v) => $body,
            $crate::format::frames::FrameBuf::U16($v) => $body,
            $crate::format::frames::FrameBuf::U32($v) => $body,
        }
    };
}
