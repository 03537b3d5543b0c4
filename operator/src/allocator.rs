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
//! mimalloc keeps a heap per thread and collects the calling thread's only; that is why an
//! operator with one CPU runs on one thread ([`crate::runtime`]).

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
