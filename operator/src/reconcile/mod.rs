//! One reconcile of a `MeshInstallation`, and the finalizer that runs the ordered teardown on
//! delete.
//!
//! The pipeline, as the data flows ([`converge`]): [`observe`] (every read) → [`validate`] (pure;
//! with [`placement`] and [`gateway_api`]) → `mesh_provisioner::plan` (pure) → apply (every write
//! through `mesh_provisioner::apply::Applier`, each under its field manager) → [`status`] (the one
//! writer, fed by the [`progress`] the steps return). [`azure`] is the step that talks to ARM;
//! [`teardown`] runs the steps backwards.
//!
//! Modules depend one way only, each on modules to its right and never back (checked with
//! `grep -n "super::\|crate::reconcile::"`):
//! `mod` → `converge`, `teardown` → `azure` → `apply`, `certificates`, `shared` → `status` →
//! `events` → `progress` → `observe` → `validate` → `placement`, `gateway_api` → `conditions`;
//! `retry` and `azure_cli` are leaves.

pub mod apply;
pub mod azure;
pub mod azure_cli;
pub mod certificates;
pub mod conditions;
mod converge;
pub mod events;
pub mod gateway_api;
pub mod observe;
pub mod placement;
pub mod progress;
pub mod retry;
pub mod shared;
pub mod status;
pub mod teardown;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use mesh_crds::MeshInstallation;
use mesh_provisioner::apply::Applier;

use crate::context::Context;
use crate::error::{Error, Result};

pub use retry::{backoff, error_policy};
pub use status::{report_failure, report_unreadable};

/// Finalizer guarding deletion until the teardown has finished.
pub const FINALIZER: &str = "meshoperator.dev/teardown";

/// Reconciles one installation.
pub async fn reconcile(mi: Arc<MeshInstallation>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.is_leader() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let name = mi.meta().name.clone().ok_or(Error::Unnamed)?;
    let applier = Applier::new(ctx.client.clone(), ctx.cache.clone(), &name);
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, mi, |event| async {
        match event {
            Event::Apply(mi) => converge::converge(&mi, &ctx, &applier).await,
            Event::Cleanup(mi) => teardown::run(&mi, &ctx, &applier).await,
        }
    })
    .await
    .or_else(retry::finalizer_already_gone)
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.record(result.is_ok(), started.elapsed(), applier.writes());
    tracing::debug!(
        installation = %name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        writes = applier.writes(),
        action = ?result.as_ref().ok(),
        "reconciled"
    );
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&name);
    }
    result
}
