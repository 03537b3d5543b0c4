//! The binaries' allocator: mimalloc, and giving back what a burst of work freed.
//!
//! mimalloc serves the many small objects of a reconcile and of the SMI translation markedly
//! faster than the system allocator (the translation bench). But mimalloc v3 returns pages freed
//! by a burst to the operating system only from later allocator calls, once its `purge_delay`
//! (1 s) has passed. An operator works in bursts (a reconcile, a relist) and then idles for
//! minutes, so without help what one burst freed stays resident until the next: measured with
//! the bookstore, 39 MiB of heap resident for 4 MiB in use (`make bench`, footprint). Purging at
//! once (`purge_delay` 0) fixes that but slows the translation by a third, since every free then
//! costs a system call; so the delay stays, and [`return_freed_memory`] purges what is due once a
//! second instead.
//!
//! Contract: [`return_freed_memory`] frees nothing in use; it only hands freed pages back to the
//! operating system (`mi_collect(true)`), which mimalloc would otherwise do on its next call.

use std::time::Duration;

/// The global allocator of `mesh-operator` and `meshctl`.
pub type Allocator = mimalloc::MiMalloc;

/// How often an idle operator gives freed memory back.
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(1);

/// Hands the pages mimalloc holds free back to the operating system now.
pub fn return_freed_memory() {
    // SAFETY: mi_collect only inspects mimalloc's own state; `force` purges free pages, it never
    // touches a block in use. It is safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Runs [`return_freed_memory`] every [`COLLECT_INTERVAL`] for as long as the runtime lives.
pub fn spawn_periodic_collect() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut ticks = tokio::time::interval(COLLECT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            return_freed_memory();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident anonymous memory of this process (heap and stacks), in KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A burst of 64 MiB in small blocks, freed: `return_freed_memory` gives it back at once,
    /// where waiting as long as an idle operator does (with no allocator call) gives back none.
    #[test]
    fn a_freed_burst_is_given_back() {
        use std::alloc::{GlobalAlloc, Layout};
        let allocator = mimalloc::MiMalloc;
        let layout = Layout::from_size_align(512, 8).expect("layout");
        let burst = |allocator: &Allocator| {
            let blocks: Vec<*mut u8> = (0..128 * 1024)
                .map(|i| {
                    // SAFETY: a valid layout; each block is written once and freed below.
                    let block = unsafe { allocator.alloc(layout) };
                    assert!(!block.is_null());
                    unsafe { block.write_bytes(i as u8, layout.size()) };
                    block
                })
                .collect();
            for block in blocks {
                // SAFETY: allocated above with the same allocator and layout.
                unsafe { allocator.dealloc(block, layout) };
            }
        };
        let before = rss_anon_kib();
        burst(&allocator);
        std::thread::sleep(Duration::from_millis(1500));
        let retained = rss_anon_kib().saturating_sub(before);
        return_freed_memory();
        let after = rss_anon_kib().saturating_sub(before);
        assert!(
            retained > 32 * 1024,
            "the burst stays resident without a collect ({retained} KiB): the test measures nothing"
        );
        assert!(after < 8 * 1024, "{after} KiB of the freed 64 MiB burst still resident after return_freed_memory");
    }
}
