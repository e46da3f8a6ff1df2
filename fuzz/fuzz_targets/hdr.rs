#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = emdtui::format::hdr::parse(std::path::Path::new("fuzz.hdr"), data);
});
