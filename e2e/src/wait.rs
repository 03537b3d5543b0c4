//! Waiting for a condition with a timeout and a failure message that says what was expected and
//! what was last seen.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Ok(value)`; `Err(seen)` describes the state last seen.
/// Panics after `timeout` with `what` and the last `seen`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
