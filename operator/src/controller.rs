//! Wires the reconciler into a kube-runtime `Controller`: watch caches of managed objects,
//! leader election on a Lease, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
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
use crate::{kinds, reconcile};

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

/// Starts leader election; the receiver is true while this replica leads.
async fn elect(client: &Client, election: Option<LeaderElection>) -> Result<watch::Receiver<bool>> {
    let Some(election) = election else {
        let (tx, rx) = watch::channel(true);
        // Keep the sender alive for the life of the process so the receiver stays true.
        std::mem::forget(tx);
        return Ok(rx);
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
    Ok(rx)
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    election: Option<LeaderElection>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ready: Option<watch::Sender<bool>>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<()> {
    let (cache, changes) = ManagedCache::start(&client, &kinds::all_managed_kinds());
    let leader = elect(&client, election).await?;
    let ctx = Arc::new(Context::new(client.clone(), cache, settings, leader, metrics));
    let api: Api<DeserializeGuard<MeshInstallation>> = Api::all(client);
    let triggers = changes.map(|name| ObjectRef::<DeserializeGuard<MeshInstallation>>::new(&name));
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let store = controller.store();
    if let Some(ready) = ready {
        let store = store.clone();
        // kube-runtime's readiness latch wakes only its most recent waiter, and the controller's
        // own runner waits on it too: poll it again and again instead of waiting once, or a
        // replica would never report ready (the readiness probe and `meshctl install` wait on it).
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                    Ok(Ok(())) => {
                        let _ = ready.send(true);
                        return;
                    }
                    Ok(Err(_)) => return,
                    Err(_) => continue,
                }
            }
        });
    }
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_guarded, error_policy_guarded, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!("controller: {error}");
            }
        })
        .await;
    Ok(())
}

/// Reconciles a well-formed object; a malformed one is reported and left until it changes.
async fn reconcile_guarded(guard: Arc<DeserializeGuard<MeshInstallation>>, ctx: Arc<Context>) -> Result<Action> {
    match &guard.0 {
        Ok(mi) => {
            let span = tracing::info_span!("reconcile", installation = %mi.name_any());
            reconcile::reconcile(Arc::new(mi.clone()), ctx).instrument(span).await
        }
        Err(invalid) => {
            tracing::warn!(object = %invalid.metadata.name.clone().unwrap_or_default(), "cannot read MeshInstallation: {}", invalid.error);
            Ok(Action::await_change())
        }
    }
}

fn error_policy_guarded(guard: Arc<DeserializeGuard<MeshInstallation>>, error: &Error, ctx: Arc<Context>) -> Action {
    match &guard.0 {
        Ok(mi) => reconcile::error_policy(Arc::new(mi.clone()), error, ctx),
        Err(_) => Action::await_change(),
    }
}
