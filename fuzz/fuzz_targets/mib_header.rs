#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.mib");
    let _ = emdtui::format::mib::header_length(p, data);
    if let Ok(h) = emdtui::format::mib::parse_header(p, data) {
        let payload = vec![0x5au8; h.payload_bytes.min(1 << 22)];
        if payload.len() == h.payload_bytes {
            let mut s = Vec::new();
            let _ = match h.pixel_type {
                emdtui::format::mib::PixelType::U8 => {
                    emdtui::format::mib::decode_into(&h, &payload, &mut vec![0u8; h.rows * h.cols], &mut s)
                }
                emdtui::format::mib::PixelType::U16 => {
                    emdtui::format::mib::decode_into(&h, &payload, &mut vec![0u16; h.rows * h.cols], &mut s)
                }
                emdtui::format::mib::PixelType::U32 => {
                    emdtui::format::mib::decode_into(&h, &payload, &mut vec![0u32; h.rows * h.cols], &mut s)
                }
            };
        }
    }
});
