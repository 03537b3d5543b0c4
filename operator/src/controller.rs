//! Wires the reconciler into a kube-runtime `Controller`: watch caches of managed objects,
//! leader election on a Lease, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use mesh_crds::MeshInstallation;
use mesh_provisioner::apply::ManagedCache;
use tokio::sync::watch;
use tracing::Instrument;

use crate::context::{Context, Settings};
use crate::error::{Error, Result};
use crate::reconcile;
use mesh_provisioner::plan::kinds;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity.
    pub identity: String,
}

/// Checks the MeshInstallation CRD is installed, or installs it.
pub async fn ensure_crd(client: &Client, install: bool) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MeshInstallation::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    if install {
        crds.patch(&name, &PatchParams::apply("mesh-operator/crd").force(), &Patch::Apply(&crd))
            .await
            .map_err(Error::kube(format!("installing CRD {name}")))?;
        // Wait until it is served.
        for _ in 0..50 {
            let established = crds
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("reading CRD {name}")))?
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|conds| conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    match crds.get_opt(&name).await.map_err(Error::kube(format!("reading CRD {name}")))? {
        Some(_) => Ok(()),
        None => Err(Error::CrdMissing { name }),
    }
}

/// Starts leader election; the first receiver is true while this replica leads, the second
/// becomes true once leadership is known (this replica leads, or the Lease names another holder).
async fn elect(
    client: &Client,
    election: Option<LeaderElection>,
) -> Result<(watch::Receiver<bool>, watch::Receiver<bool>)> {
    let Some(election) = election else {
        let (tx, rx) = watch::channel(true);
        // Keep the sender alive for the life of the process so the receiver stays true.
        std::mem::forget(tx);
        let (known_tx, known) = watch::channel(true);
        std::mem::forget(known_tx);
        return Ok((rx, known));
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(15)
        .with_grace(5)
        .with_field_manager("mesh-operator/lease")
        .build()
        .await
        .map_err(|e| Error::LeaderElection(e.to_string()))?;
    let (rx, _task) = manager.watch().await;
    let (known_tx, known) = watch::channel(false);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &election.namespace);
    let mut leader = rx.clone();
    tokio::spawn(async move {
        loop {
            if *leader.borrow_and_update() {
                let _ = known_tx.send(true);
                return;
            }
            if let Ok(Some(lease)) = leases.get_opt(&election.lease_name).await
                && lease.spec.and_then(|s| s.holder_identity).is_some_and(|h| !h.is_empty() && h != election.identity)
            {
                tracing::info!(lease = %election.lease_name, "another replica leads; this one stands by");
                let _ = known_tx.send(true);
                return;
            }
            if known_tx.is_closed() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), leader.changed()).await;
        }
    });
    Ok((rx, known))
}

/// Sends `true` on `ready` once the MeshInstallation cache and the caches of the built-in managed
/// kinds have listed, and leadership is known; says in the log what it is waiting for.
fn report_readiness(
    ready: watch::Sender<bool>,
    store: kube::runtime::reflector::Store<DeserializeGuard<MeshInstallation>>,
    cache: ManagedCache,
    mut leadership_known: watch::Receiver<bool>,
) {
    // kube-runtime's readiness latch wakes only its most recent waiter, and the controller's
    // own runner waits on it too: poll it again and again instead of waiting once, or a
    // replica would never report ready (the readiness probe and `meshctl install` wait on it).
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
        let built_in: Vec<_> = cache
            .kinds()
            .filter(|k| mesh_provisioner::apply::served::crd_name(&k.resource).is_none())
            .map(|k| k.resource.clone())
            .collect();
        let mut logged = false;
        loop {
            let pending: Vec<&str> = built_in.iter().filter(|r| !cache.is_ready(r)).map(|r| r.kind.as_str()).collect();
            if pending.is_empty() {
                break;
            }
            if !logged {
                tracing::info!(kinds = ?pending, "waiting for the caches of managed kinds to sync");
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !*leadership_known.borrow() {
            tracing::info!("waiting to learn who leads");
        }
        if leadership_known.wait_for(|known| *known).await.is_err() {
            return;
        }
        tracing::info!("caches synced and leadership known: ready");
        let _ = ready.send(true);
    });
}

/// Where the scrape-time metrics come from: the MeshInstallation store, the managed caches and
/// the leader flag.
fn metrics_source(
    metrics: &crate::metrics::Metrics,
    store: kube::runtime::reflector::Store<DeserializeGuard<MeshInstallation>>,
    cache: ManagedCache,
    leader: watch::Receiver<bool>,
) {
    use crate::metrics::{InstallationSnapshot, Snapshot};
    metrics.set_source(Box::new(move || {
        let managed_objects = cache
            .kinds()
            .map(|k| (mesh_provisioner::apply::cache::kind_key(&k.resource), cache.count(&k.resource)))
            .collect();
        let installations =
            store.state().iter().filter_map(|guard| guard.0.as_ref().ok().map(InstallationSnapshot::of)).collect();
        Snapshot { managed_objects, installations, leader: *leader.borrow() }
    }));
}

/// Runs the controller until `shutdown` resolves. `ready` (for `/readyz`) becomes true once the
/// MeshInstallation cache and the caches of the built-in managed kinds have synced and leadership
/// is known; `metrics` counts reconciles and ARM requests and reads its gauges from the caches.
pub async fn run(
    client: Client,
    settings: Settings,
    election: Option<LeaderElection>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ready: Option<watch::Sender<bool>>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<()> {
    let (cache, changes) = ManagedCache::start(&client, &kinds::all_managed_kinds());
    let (leader, leadership_known) = elect(&client, election).await?;
    let arm_observer = metrics.arm_observer();
    let (namespaces, namespace_events) = crate::context::watch_namespaces(&client);
    let ctx =
        Arc::new(Context::new(client.clone(), cache.clone(), namespaces, settings, leader.clone(), metrics.clone()));
    let client_for_smi = client.clone();
    let api: Api<DeserializeGuard<MeshInstallation>> = Api::all(client);
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let store = controller.store();
    let triggers = futures::stream::select(
        changes.map(|name| ObjectRef::<DeserializeGuard<MeshInstallation>>::new(&name)).boxed(),
        futures::stream::select(
            smi_changes(&client_for_smi, store.clone()).boxed(),
            // Yields nothing: polled here so the namespace watch lives exactly as long as the controller.
            namespace_events.map(|()| ObjectRef::new("")).boxed(),
        ),
    );
    metrics_source(&metrics, store.clone(), cache.clone(), leader);
    if let Some(ready) = ready {
        report_readiness(ready, store.clone(), cache, leadership_known);
    }
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(
            move |guard, ctx| {
                mesh_provisioner::azure::client::observed(arm_observer.clone(), reconcile_guarded(guard, ctx))
            },
            error_policy_guarded,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!("controller: {error}");
            }
        })
        .await;
    Ok(())
}

/// Installations with `traffic.translateExisting` are reconciled whenever an SMI object changes
/// anywhere, so their translation follows the SMI objects.
fn smi_changes(
    client: &Client,
    installations: kube::runtime::reflector::Store<DeserializeGuard<MeshInstallation>>,
) -> impl futures::Stream<Item = ObjectRef<DeserializeGuard<MeshInstallation>>> + Send + 'static {
    use kube::api::{ApiResource, DynamicObject};
    use kube::runtime::WatchStreamExt;
    use mesh_crds::smi::{HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget};
    let kinds = [
        ApiResource::erase::<TrafficTarget>(&()),
        ApiResource::erase::<HTTPRouteGroup>(&()),
        ApiResource::erase::<TCPRoute>(&()),
        ApiResource::erase::<TrafficSplit>(&()),
    ];
    let watch_client = client.clone();
    // Watched only while the SMI CRDs exist (no 404 retries in the log before they do).
    let touched = move |resource: &ApiResource| {
        // Metadata only: the bodies are never read here.
        watcher(
            Api::<kube::core::PartialObjectMeta<DynamicObject>>::all_with(watch_client.clone(), resource),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects()
        .filter_map(|event| async move { event.ok().map(|_| ()) })
        .boxed()
    };
    let (_, events) = mesh_provisioner::apply::served::while_served(client, &kinds, touched, |_: &ApiResource| {});
    events.flat_map(move |()| {
        let refs: Vec<ObjectRef<DeserializeGuard<MeshInstallation>>> = installations
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|mi| mi.spec.traffic.translate_existing)
            .map(|mi| ObjectRef::new(&mi.name_any()))
            .collect();
        futures::stream::iter(refs)
    })
}

/// Reconciles a well-formed object; a malformed one is reported (Event and condition) and left
/// until it changes. A panic in one reconcile is caught here: kube-runtime would otherwise end the
/// whole controller, stalling every other installation and every finalizer.
async fn reconcile_guarded(guard: Arc<DeserializeGuard<MeshInstallation>>, ctx: Arc<Context>) -> Result<Action> {
    match &guard.0 {
        Ok(mi) => {
            let span = tracing::info_span!("reconcile", installation = %mi.name_any());
            let result = catch_panic(reconcile::reconcile(Arc::new(mi.clone()), ctx.clone())).instrument(span).await;
            if let Err(Error::Panicked { message }) = &result {
                tracing::error!(installation = %mi.name_any(), "reconcile panicked: {message}");
                reconcile::report_failure(
                    &ctx,
                    mi,
                    "ReconcilePanicked",
                    format!("the reconcile panicked (a bug; please report it): {message}"),
                )
                .await;
            }
            result
        }
        Err(invalid) => {
            let name = invalid.metadata.name.clone().unwrap_or_default();
            tracing::warn!(object = %name, "cannot read MeshInstallation: {}", invalid.error);
            if ctx.is_leader() {
                reconcile::report_unreadable(&ctx, &invalid.metadata, &invalid.error).await;
            }
            Ok(Action::await_change())
        }
    }
}

/// Runs `reconcile`, turning a panic into [`Error::Panicked`].
pub async fn catch_panic(reconcile: impl Future<Output = Result<Action>>) -> Result<Action> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(reconcile).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic without a message".to_string());
            Err(Error::Panicked { message })
        }
    }
}

fn error_policy_guarded(guard: Arc<DeserializeGuard<MeshInstallation>>, error: &Error, ctx: Arc<Context>) -> Action {
    match &guard.0 {
        Ok(mi) => reconcile::error_policy(Arc::new(mi.clone()), error, ctx),
        Err(_) => Action::await_change(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_becomes_an_error() {
        let result = catch_panic(async { panic!("boom at {}", 42) }).await;
        assert!(matches!(&result, Err(Error::Panicked { message }) if message == "boom at 42"), "{result:?}");
        let fine = catch_panic(async { Ok(Action::await_change()) }).await;
        assert!(fine.is_ok());
    }
}
