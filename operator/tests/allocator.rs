//! `mesh_operator::allocator`: what an idle operator gives back. Its own test binary: the check
//! reads the whole process's resident memory, which other tests running beside it would move.

use std::time::Duration;

use mesh_operator::allocator::{Allocator, return_freed_memory};

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
    let allocator: Allocator = mimalloc::MiMalloc;
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
