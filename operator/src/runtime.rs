//! The async runtime of `mesh-operator`: a single thread when the process has one CPU (as the
//! shipped Deployment does, whose 500m limit `available_parallelism` rounds up to one), tokio's
//! multi-thread scheduler otherwise.
//!
//! Why one thread rather than tokio's default of one worker plus the main thread: mimalloc keeps
//! a heap per thread, and giving freed pages back ([`crate::allocator::return_freed_memory`])
//! works on the calling thread's heap only. With two threads the controller, which runs on the
//! main thread, kept its freed pages while the collect ran on the worker: measured in the bench's
//! footprint (1,000 enrolled namespaces, 200 apps), 44–50 MiB of heap resident with two threads,
//! 42–45 MiB with one, for 17 MiB in use. An operator with one CPU gains nothing from a second
//! thread.

use tokio::runtime::{Builder, Runtime};

/// The tokio setting that fixes the number of workers (read by tokio itself too).
pub const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// How many threads run tasks: `TOKIO_WORKER_THREADS` when set to a number, else the CPUs the
/// process may use.
pub fn worker_threads(setting: Option<&str>, available: usize) -> usize {
    setting.and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or(available).max(1)
}

/// The runtime for `workers` threads: the current thread alone for one, else multi-threaded.
pub fn build(workers: usize) -> std::io::Result<Runtime> {
    if workers <= 1 {
        Builder::new_current_thread().enable_all().build()
    } else {
        Builder::new_multi_thread().enable_all().build()
    }
}

/// The runtime for this process's setting and CPUs.
pub fn for_this_process() -> std::io::Result<Runtime> {
    let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    build(worker_threads(std::env::var(WORKER_THREADS_ENV).ok().as_deref(), available))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn the_setting_wins_over_the_cpus_and_nonsense_falls_back_to_them() {
        assert_eq!(worker_threads(Some("1"), 8), 1);
        assert_eq!(worker_threads(Some(" 3 "), 1), 3);
        assert_eq!(worker_threads(None, 2), 2);
        assert_eq!(worker_threads(Some("0"), 2), 2);
        assert_eq!(worker_threads(Some("many"), 4), 4);
        assert_eq!(worker_threads(None, 0), 1);
    }

    #[test]
    fn one_cpu_runs_everything_on_the_calling_thread() {
        let runtime = build(1).expect("runtime");
        assert_eq!(runtime.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let caller = std::thread::current().id();
        assert_eq!(
            runtime.block_on(async { tokio::spawn(async { std::thread::current().id() }).await }).ok(),
            Some(caller)
        );
        assert_eq!(build(2).expect("runtime").handle().runtime_flavor(), RuntimeFlavor::MultiThread);
    }
}
