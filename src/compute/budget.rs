//! The memory budget: how many bytes of frames a computation may hold at once.

/// Total physical memory in bytes (from sysconf), if known.
pub fn total_ram() -> Option<u64> {
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

/// Memory limit of the current cgroup (v2 `memory.max` or v1 `memory.limit_in_bytes`), if set.
pub fn cgroup_limit() -> Option<u64> {
    for p in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
        if let Ok(s) = std::fs::read_to_string(p)
            && let Ok(v) = s.trim().parse::<u64>()
            && v < (1 << 60)
        {
            return Some(v);
        }
    }
    None
}

/// Default budget: a quarter of the memory available to us, at least 256 MiB, never above 80 %.
pub fn default_budget() -> u64 {
    let ram = match (total_ram(), cgroup_limit()) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 4 << 30,
    };
    (ram / 4).max(256 << 20).min(ram / 10 * 8)
}

/// Parse `512M`, `2G`, `2GiB`, `1.5g`, `1000000` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v > 0.0).then(|| (v * mul as f64) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512M"), Some(512 << 20));
        assert_eq!(super::parse_size("2GiB"), Some(2 << 30));
        assert_eq!(super::parse_size("1.5g"), Some(3 << 29));
        assert_eq!(super::parse_size("x"), None);
        let d = super::default_budget();
        assert!(d >= 256 << 20);
    }
}
