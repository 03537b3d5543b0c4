//! The AKS add-on that provides the mesh: OSM or Istio, each a property of the managed cluster
//! made what we want with a resumable long-running operation.

use std::time::Duration;

use kube::api::ResourceExt;
use mesh_crds::{MeshProvider, condition_type as ct};
use mesh_provisioner::azure::aks::{self, ClusterRef};
use mesh_provisioner::azure::models::ManagedCluster;
use mesh_provisioner::azure::{ArmError, PollOutcome, PollingKind, Target, WriteOutcome};
use mesh_provisioner::osm;

use super::*;
use crate::error::Result;
use crate::reconcile::conditions::{self, ConditionUpdate};
use crate::reconcile::observe;
use crate::reconcile::status::Record;

/// Makes one managed-cluster property what we want: resumes a stored operation, else reads,
/// mutates and writes (no write when nothing changes), storing a started operation at once.
pub(super) async fn ensure_cluster(
    arm: &Arm<'_>,
    journal: &mut Record,
    op_name: &str,
    what: &str,
    mutate: impl Fn(&mut ManagedCluster) -> bool,
) -> Result<Result<Ensure, ArmError>> {
    let Arm { mi, ctx, client, azure, .. } = *arm;
    let cluster = &ClusterRef::from_spec(azure);
    if let Some(stored) = journal.op(op_name) {
        let kind = PollingKind::parse(&stored.polling_kind).unwrap_or(PollingKind::AzureAsyncOperation);
        match client
            .poll(&stored.polling_url, kind, &format!("{what} on {}", cluster.id()), Target::ManagedCluster)
            .await
        {
            Ok(PollOutcome::Running(wait)) => {
                journal.polled(op_name);
                journal.persist(ctx).await?;
                return Ok(Ok(Ensure::InProgress(
                    wait,
                    format!("{what} on {}: operation in progress since {}", cluster.id(), stored.started_at),
                )));
            }
            Ok(PollOutcome::Succeeded) => {
                journal.finish(op_name);
                journal.persist(ctx).await?;
            }
            Ok(PollOutcome::Failed(error)) => {
                journal.finish(op_name);
                journal.persist(ctx).await?;
                return Ok(Err(error));
            }
            Err(error) if error.is_stale_operation() => {
                let dropped = journal.poll_failed(op_name);
                journal.persist(ctx).await?;
                if !dropped {
                    // Not an error of the change itself: look again soon, and give up after a few.
                    return Ok(Ok(Ensure::InProgress(
                        STALE_POLL_RETRY,
                        format!("{what} on {}: polling the stored operation failed ({error})", cluster.id()),
                    )));
                }
                // Given up: read the cluster again below; if the change is there, nothing is written.
                tracing::warn!(installation = %mi.name_any(), operation = op_name, "stored ARM operation gave no usable answer {MAX_FAILED_POLLS} times ({error}); reading {} again", cluster.id());
            }
            Err(error) => return Ok(Err(error)),
        }
    }
    match aks::update(client, cluster, what, mutate).await {
        Ok(WriteOutcome::NoChange | WriteOutcome::Done) => Ok(Ok(Ensure::Done)),
        Ok(WriteOutcome::InFlight(state)) => Ok(Ok(Ensure::InProgress(
            STALE_POLL_RETRY,
            format!("{what} on {}: the change is made, the cluster is still {state}", cluster.id()),
        ))),
        Ok(WriteOutcome::Started(started)) => {
            journal.start(op_name, &cluster.id(), &started);
            journal.persist(ctx).await?;
            tracing::info!(installation = %mi.name_any(), operation = op_name, "started {what} on {}", cluster.id());
            Ok(Ok(Ensure::InProgress(
                started.retry_after.unwrap_or(Duration::from_secs(1)),
                format!("{what} on {}: operation started", cluster.id()),
            )))
        }
        Err(error) => Ok(Err(error)),
    }
}

pub(super) async fn provider(arm: &Arm<'_>, journal: &mut Record, findings: &mut Findings) -> Result<()> {
    match arm.mi.spec.mesh.provider {
        MeshProvider::SelfHosted => {
            findings.outcome.mesh_prerequisites_met = true;
        }
        MeshProvider::AksAddon => {
            let result = ensure_cluster(arm, journal, operation::ENABLE_OSM, "enabling the AKS OSM add-on", |c| {
                c.set_osm_addon(true)
            })
            .await?;
            match result {
                Ok(Ensure::Done) => {
                    let namespace = mesh_crds::AKS_ADDON_NAMESPACE;
                    if observe::mesh_config_exists(arm.ctx, namespace).await? {
                        findings.outcome.mesh_prerequisites_met = true;
                    } else {
                        findings.progress.provider = Some(ConditionUpdate::not_ok(
                            ct::MESH_READY,
                            "WaitingForAddon",
                            format!(
                                "the AKS OSM add-on is enabled; waiting for it to create MeshConfig {namespace}/{}",
                                osm::names::MESH_CONFIG
                            ),
                        ));
                        findings.wait(Duration::from_secs(2));
                    }
                }
                Ok(Ensure::InProgress(wait, message)) => {
                    findings.progress.provider =
                        Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
                    findings.wait(wait);
                }
                Err(error) => findings.progress.provider = Some(findings.error(error)),
            }
        }
        MeshProvider::AksIstioAddon => istio(arm, journal, findings).await?,
    }
    Ok(())
}

/// The Istio revision to use: the one the cluster already runs, else the spec's, else the newest
/// one compatible with the cluster's Kubernetes version.
pub(super) async fn istio_revision(arm: &Arm<'_>, current: &ManagedCluster) -> Result<String, ArmError> {
    let Arm { mi, client, azure, .. } = *arm;
    if let Some(revision) = mi.spec.mesh.istio.as_ref().and_then(|i| i.revision.clone()) {
        return Ok(revision);
    }
    if let Some(revision) = current.istio_revisions().and_then(|r| r.last()) {
        return Ok(revision.clone());
    }
    let version = current.kubernetes_version().unwrap_or_default().to_string();
    let revisions = aks::mesh_revisions(client, &azure.subscription_id, &azure.location).await?;
    aks::pick_revision(&revisions, &version).ok_or_else(|| ArmError::Decode {
        operation: format!("choosing an Istio revision in {}", azure.location),
        message: format!(
            "no revision in meshRevisionProfiles is compatible with Kubernetes {version}; set spec.mesh.istio.revision"
        ),
    })
}

pub(super) async fn istio(arm: &Arm<'_>, journal: &mut Record, findings: &mut Findings) -> Result<()> {
    let Arm { mi, ctx, client, azure, .. } = *arm;
    let current = match aks::get(client, &ClusterRef::from_spec(azure)).await {
        Ok(current) => current,
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            return Ok(());
        }
    };
    let revision = match istio_revision(arm, &current).await {
        Ok(revision) => revision,
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            return Ok(());
        }
    };
    let migrating = journal.step().is_some_and(|s| s != "Completed");
    if current.osm_addon_enabled() && !migrating {
        if !mi.spec.mesh.migrate_from_osm {
            let message = format!(
                "the AKS Open Service Mesh add-on is enabled on cluster {}, and AKS does not run the Istio add-on next to it; nothing was changed. Set spec.mesh.migrateFromOsm: true to migrate in place (disable the OSM add-on, delete its webhooks, enable Istio {revision}, relabel the namespaces with istio.io/rev, restart the workloads in dependency order, delete the OSM/SMI CRDs), or disable the OSM add-on first",
                azure.cluster_name
            );
            findings.progress.provider =
                Some(ConditionUpdate::not_ok(ct::MESH_READY, "OsmAddonEnabled", message.clone()));
            findings.progress.degraded = Some(conditions::degraded("OsmAddonEnabled", message));
            findings.wait(FATAL_RETRY);
            return Ok(());
        }
        journal.set_step(MIGRATION_STEPS[0]);
        journal.persist(ctx).await?;
    }
    if journal.step().is_some_and(|s| s != "Completed") {
        return migrate(arm, &revision, journal, findings).await;
    }
    let result = ensure_cluster(
        arm,
        journal,
        operation::ENABLE_ISTIO,
        &format!("enabling the AKS Istio add-on ({revision})"),
        |c| c.set_istio(&revision),
    )
    .await?;
    match result {
        Ok(Ensure::Done) => {
            findings.outcome.mesh_prerequisites_met = true;
            findings.outcome.istio_revision = Some(revision);
        }
        Ok(Ensure::InProgress(wait, message)) => {
            findings.progress.provider = Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
            findings.wait(wait);
        }
        Err(error) => findings.progress.provider = Some(findings.error(error)),
    }
    Ok(())
}
