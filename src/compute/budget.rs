//! The memory budget: how many bytes of frames a computation may hold at once.

/// Total physical memory in bytes (from sysconf), if known.
pub fn total_ram() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration; these names are valid
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    // SAFETY: as above
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

/// Memory limit of this process's cgroup (v2 `memory.max` or v1 `memory.limit_in_bytes`), if set.
pub fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut candidates = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let path = path.trim_start_matches('/');
        if ctrl.split(',').any(|c| c == "memory") {
            candidates.push(format!("/sys/fs/cgroup/memory/{path}/memory.limit_in_bytes"));
        } else if ctrl.is_empty() {
            candidates.push(format!("/sys/fs/cgroup/{path}/memory.max"));
            candidates.push(format!("/sys/fs/cgroup/unified/{path}/memory.max"));
        }
    }
    candidates
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .filter(|&v| v < (1 << 60))
        .min()
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
    (v > 0.0).then_some((v * mul as f64) as u64)
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
