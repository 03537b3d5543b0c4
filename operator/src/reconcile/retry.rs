//! When to look again: the controller's error policy (exponential back-off with jitter, capped)
//! and the finalizer outcomes that are not failures.

use std::sync::Arc;
use std::time::Duration;

use kube::api::ResourceExt;
use kube::runtime::controller::Action;
use mesh_crds::MeshInstallation;

use crate::context::Context;
use crate::error::Error;

/// Removing the finalizer of an object that is already gone is success: a second teardown pass,
/// queued before the first removed the finalizer, finds nothing left to do and nothing to patch.
pub(super) fn finalizer_already_gone(
    error: kube::runtime::finalizer::Error<Error>,
) -> std::result::Result<Action, kube::runtime::finalizer::Error<Error>> {
    use kube::runtime::finalizer::Error as FinalizerError;
    match error {
        FinalizerError::RemoveFinalizer(kube::Error::Api(status)) if status.code == 404 => {
            tracing::debug!("finalizer already gone with its object");
            Ok(Action::await_change())
        }
        other => Err(other),
    }
}

/// Error policy: exponential back-off with jitter, capped; one installation's errors never stop the others.
pub fn error_policy(mi: Arc<MeshInstallation>, error: &Error, ctx: Arc<Context>) -> Action {
    // An unfinished teardown step is not a failure: look again soon, without back-off.
    if let Error::Finalizer(inner) = error
        && let kube::runtime::finalizer::Error::CleanupFailed(Error::TeardownInProgress { .. }) = inner.as_ref()
    {
        return Action::requeue(Duration::from_secs(1));
    }
    let name = mi.name_any();
    let attempt = ctx
        .failures
        .lock()
        .map(|mut failures| {
            let count = failures.entry(name.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
        .unwrap_or(1);
    let delay = backoff(attempt, ctx.settings.max_backoff);
    tracing::warn!(installation = %name, attempt, ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}

/// `min(cap, 1s · 2^(attempt-1))`, then jittered down by up to 25% so many failing objects spread out.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base =
        Duration::from_secs(1).saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX));
    let capped = base.min(cap);
    let jitter = rand::random::<f64>() * 0.25;
    capped.mul_f64(1.0 - jitter)
}
