//! Small shared helpers used by every layer: sizes for humans, dates, free disk space, peak memory.

use std::path::Path;

/// Bytes in binary units (`1.5 GiB`).
pub fn hs(b: u64) -> String {
    humansize::format_size(b, humansize::BINARY)
}

/// Civil date (year, month, day) from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Current UTC time, ISO 8601 (`2026-11-27T17:15:25Z`).
pub fn now_iso() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (s.div_euclid(86400), s.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Free bytes on the filesystem holding `dir` (`statvfs`), None when it cannot be asked.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path; `st` points to writable memory of the right size
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct (which was zeroed before anyway)
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail * st.f_frsize)
}

/// Free space where `file` goes (its directory; `.` for a bare name).
pub fn free_space_for(file: &Path) -> Option<u64> {
    free_space(file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Run the calling thread at low priority: nice 10 and the idle IO class (Linux), so background
/// work of the viewer does not slow down an acquisition writing to the same machine. Best effort:
/// returns false when the system refuses.
pub fn lower_thread_priority() -> bool {
    // SAFETY: gettid has no arguments and cannot fail
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: setpriority on this thread's id (Linux nice values are per thread)
    let cpu = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 10) } == 0;
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, tid, IDLE) takes three integers and touches no memory
    let io = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    } == 0;
    cpu && io
}

/// Peak resident set size of this process (VmHWM, Linux), bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_dates_and_disk() {
        let t = now_iso();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert!(free_space(Path::new("/")).is_some_and(|f| f > 0));
        assert!(peak_rss().is_some_and(|b| b > 0));
    }
}

/// One 4 KiB page, aligned to its size: the unit of O_DIRECT buffers.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

// SAFETY: `Page` is a plain 4096-byte array (`repr(C)`, no padding: the alignment equals the size)
unsafe impl bytemuck::Zeroable for Page {}
// SAFETY: as above; every bit pattern is a valid `[u8; 4096]`
unsafe impl bytemuck::Pod for Page {}

/// A zeroed byte buffer whose start is 4 KiB aligned (for O_DIRECT reads and writes), used as a
/// `[u8]` of exactly `len` bytes.
pub struct AlignedBuf {
    pages: Vec<Page>,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        AlignedBuf { pages: huge_zeroed_vec(len.div_ceil(4096)), len }
    }
}

/// A zeroed vector of `n` values, its big interior backed by transparent huge pages where the
/// system grants them on request (`madvise`): the allocation is lazily zeroed by the kernel, and a
/// 4 GiB FFT scratch then costs ~2 000 page faults instead of ~1 000 000.
pub fn huge_zeroed_vec<T: bytemuck::Zeroable + Clone>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = bytemuck::zeroed_vec(n);
    advise_huge_pages(&mut v);
    v
}

/// Ask the kernel to back the 2 MiB-aligned interior of `buf` with transparent huge pages.
/// Advisory: a refusal (THP off, old kernel) changes nothing but speed.
pub fn advise_huge_pages<T>(buf: &mut [T]) {
    const HUGE: usize = 2 << 20;
    let len = std::mem::size_of_val(buf);
    let start = buf.as_mut_ptr() as usize;
    let (a, e) = (start.next_multiple_of(HUGE), (start + len) / HUGE * HUGE);
    if e > a {
        // SAFETY: [a, e) lies inside `buf`, which is mutably borrowed for the call; MADV_HUGEPAGE
        // only changes how the kernel backs these pages, never their contents.
        unsafe { libc::madvise(a as *mut libc::c_void, e - a, libc::MADV_HUGEPAGE) };
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.pages)[..self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.pages)[..self.len]
    }
}

/// Whether a transfer of `buf` at file offset `off` meets O_DIRECT's 4 KiB alignment rules.
pub fn direct_aligned(buf: &[u8], off: u64) -> bool {
    off.is_multiple_of(4096) && buf.len().is_multiple_of(4096) && (buf.as_ptr() as usize).is_multiple_of(4096)
}
