//! Process-wide memory settings for a gateway binary.
//!
//! mimalloc asks the kernel for transparent huge pages (2 MiB) for its arenas. For a proxy
//! that is a poor trade, measured on the benchmark machine (benches/README.md):
//!
//! - the first touch of each huge page clears 2 MiB synchronously, on whichever thread
//!   touches it: a proxy worker stalls for it, and loading a 10,000-route configuration
//!   spends more than half of its time clearing pages;
//! - resident memory doubles (one route: 24 MB with huge pages, 12 MB without; 10,000
//!   routes: 56 MB and 40 MB) because partly used huge pages count whole;
//! - throughput does not gain from the fewer TLB misses (45.9k req/s without, 44.8k with).
//!
//! With a reload of 10,000 routes every second under full load, p99 went from 4.3 ms to
//! 2.5 ms and peak RSS from 96 MB to 58 MB when huge pages were off.

/// Turns transparent huge pages off for this process (Linux `PR_SET_THP_DISABLE`; the
/// setting is inherited by children). Call it first thing in `main`: pages already
/// faulted in stay as they are. On other systems it does nothing.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments; it only sets a flag on this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether transparent huge pages are off for this process (always false outside Linux).
pub fn transparent_huge_pages_disabled() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments; it only reads a flag of this process.
        let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        rc == 1
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn huge_pages_can_be_turned_off() {
        // Process-wide, but harmless for the other tests of this binary.
        disable_transparent_huge_pages().unwrap();
        assert!(transparent_huge_pages_disabled());
    }
}
