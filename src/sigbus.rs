//! A clear error instead of a crash when a memory-mapped `.mib` shrinks under us.
//!
//! Reading a page of a map beyond the end of its (truncated) file raises SIGBUS. The handler
//! names the file, says what happened and exits with status 1. Outputs are written to a
//! temporary name and renamed only when complete, so nothing half-written looks finished.

use std::ffi::CString;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

static PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static INSTALL: Once = Once::new();

extern "C" fn on_sigbus(_: libc::c_int) {
    // only async-signal-safe calls from here on
    // SAFETY: write(2) is async-signal-safe; `b` is a live slice of b.len() bytes
    let say = |b: &[u8]| unsafe {
        libc::write(2, b.as_ptr().cast(), b.len());
    };
    say(b"\nemdtui: ");
    let p = PATH.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: a leaked NUL-terminated string, never freed
        let len = unsafe { libc::strlen(p) };
        // SAFETY: the same string: `len` bytes before its NUL, alive for the whole process
        say(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) });
        say(b": ");
    }
    say(b"the file shrank while it was read through a memory map (truncated or overwritten by another \
program?); no output was completed. Run again when the file is final, or without --mmap.\n");
    // SAFETY: ends the process without running anything else
    unsafe { libc::_exit(1) };
}

/// Install the handler (once per process) and remember `path` for its message.
pub fn install(path: &Path) {
    if PATH.load(Ordering::Acquire).is_null()
        && let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes())
    {
        let _ = PATH.compare_exchange(std::ptr::null_mut(), c.into_raw(), Ordering::AcqRel, Ordering::Acquire);
    }
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // extern "C" fn that only makes async-signal-safe calls; installed once per process
    INSTALL.call_once(|| unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    });
}
