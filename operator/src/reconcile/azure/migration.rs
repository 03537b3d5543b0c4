//! The in-place migration from the AKS OSM add-on to the Istio add-on, one recorded step at a time.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, ResourceExt};
use mesh_crds::{MeshInstallation, WorkloadKind, condition_type as ct};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::azure::ArmError;
use mesh_provisioner::labels;
use serde_json::json;

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::conditions::ConditionUpdate;
use crate::reconcile::status::Record;
use crate::reconcile::{apply, observe};

/// The documented in-place migration, one step at a time, each recorded in status so a restarted
/// operator resumes where it stopped.
pub(super) async fn migrate(
    arm: &Arm<'_>,
    revision: &str,
    journal: &mut Record,
    findings: &mut Findings,
) -> Result<()> {
    let Arm { mi, ctx, applier, .. } = *arm;
    loop {
        let step = journal.step().unwrap_or(MIGRATION_STEPS[0]).to_string();
        let index = MIGRATION_STEPS.iter().position(|s| *s == step).unwrap_or(0);
        if index >= 3 {
            findings.outcome.istio_revision = Some(revision.to_string());
        }
        let done = match step.as_str() {
            "DisableOsmAddon" => {
                let result = ensure_cluster(
                    arm,
                    journal,
                    operation::DISABLE_OSM,
                    "disabling the AKS OSM add-on (migration to Istio)",
                    |c| c.set_osm_addon(false),
                )
                .await?;
                cluster_step(result, findings)
            }
            "DeleteOsmWebhooks" => {
                delete_addon_webhooks(applier).await?;
                true
            }
            "EnableIstioAddon" => {
                let result = ensure_cluster(
                    arm,
                    journal,
                    operation::ENABLE_ISTIO,
                    &format!("enabling the AKS Istio add-on ({revision}; migration from OSM)"),
                    |c| c.set_istio(revision),
                )
                .await?;
                cluster_step(result, findings)
            }
            "RelabelNamespaces" => {
                strip_osm_enrolment(mi, applier).await?;
                true
            }
            "RestartWorkloads" => match restart_in_order(mi, ctx, applier, revision).await? {
                None => true,
                Some(waiting) => {
                    findings.progress.provider = Some(ConditionUpdate::not_ok(
                        ct::MESH_READY,
                        "MigratingFromOsm",
                        format!("migration from OSM, step RestartWorkloads: {waiting}"),
                    ));
                    findings.wait(Duration::from_secs(1));
                    false
                }
            },
            "DeleteOsmCrds" => {
                let gone = delete_osm_crds(applier).await?;
                if !gone {
                    // Their instances go first; look again shortly.
                    findings.wait(Duration::from_secs(1));
                }
                gone
            }
            _ => {
                findings.outcome.mesh_prerequisites_met = true;
                return Ok(());
            }
        };
        if !done {
            if findings.progress.provider.is_none() {
                findings.progress.provider = Some(ConditionUpdate::not_ok(
                    ct::MESH_READY,
                    "MigratingFromOsm",
                    format!("migration from OSM to Istio {revision}: step {step}"),
                ));
            } else if let Some(condition) = findings.progress.provider.as_mut()
                && condition.reason == "OperationInProgress"
            {
                condition.reason = "MigratingFromOsm".into();
                condition.message = format!("migration from OSM, step {step}: {}", condition.message);
            }
            return Ok(());
        }
        let next = MIGRATION_STEPS[(index + 1).min(MIGRATION_STEPS.len() - 1)];
        tracing::info!(installation = %mi.name_any(), from = %step, to = next, "OSM → Istio migration advanced");
        journal.set_step(next);
        journal.persist(ctx).await?;
    }
}

pub(super) fn cluster_step(result: Result<Ensure, ArmError>, findings: &mut Findings) -> bool {
    match result {
        Ok(Ensure::Done) => true,
        Ok(Ensure::InProgress(wait, message)) => {
            findings.progress.provider = Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
            findings.wait(wait);
            false
        }
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            false
        }
    }
}

/// Removes OSM's enrolment (label and annotations) from the installation's namespaces, whoever
/// set it; a namespace that does not exist is skipped.
pub(super) async fn strip_osm_enrolment(mi: &MeshInstallation, applier: &Applier) -> Result<()> {
    let body = json!({"metadata": {
        "labels": {labels::OSM_MONITORED_BY: null},
        "annotations": {labels::OSM_SIDECAR_INJECTION: null, labels::OSM_METRICS: null},
    }});
    let namespace = ApiResource::erase::<Namespace>(&());
    for ns in &mi.spec.namespaces {
        applier.merge_patch(MIGRATION_MANAGER, &namespace, None, &ns.name, &body).await?;
    }
    Ok(())
}

/// The apps in dependency order: an app comes after every app it sends traffic to (per
/// `spec.traffic.access`), ties in spec order. Cycles fall back to spec order.
pub fn dependency_order(spec: &mesh_crds::MeshInstallationSpec) -> Vec<&mesh_crds::AppSpec> {
    let apps: Vec<&mesh_crds::AppSpec> = spec.apps.iter().collect();
    let service_app = |namespace: &str, service: &str| {
        apps.iter().position(|a| a.namespace == namespace && a.service_names().contains(&service))
    };
    // depends[i] = apps i calls.
    let mut depends: Vec<Vec<usize>> = vec![Vec::new(); apps.len()];
    for policy in &spec.traffic.access {
        let Some(destination) = service_app(&policy.namespace, &policy.destination) else { continue };
        for source in &policy.sources {
            for (i, app) in apps.iter().enumerate() {
                let account = app.name.as_str();
                if app.namespace == source.namespace && account == source.name && i != destination {
                    depends[i].push(destination);
                }
            }
        }
    }
    let mut placed = vec![false; apps.len()];
    let mut order = Vec::new();
    while order.len() < apps.len() {
        let next = (0..apps.len())
            .find(|&i| !placed[i] && depends[i].iter().all(|&d| placed[d]))
            .or_else(|| (0..apps.len()).find(|&i| !placed[i]));
        let Some(i) = next else { break };
        placed[i] = true;
        order.push(apps[i]);
    }
    order
}

/// Restarts the workloads one at a time in dependency order, each after the previous one has
/// rolled out; then the workloads in the namespaces that mesh-operator does not manage. Returns
/// what it is waiting for, or None when every workload was restarted.
pub(super) async fn restart_in_order(
    mi: &MeshInstallation,
    ctx: &Context,
    applier: &Applier,
    revision: &str,
) -> Result<Option<String>> {
    let body = apply::restart_patch(MIGRATED_ANNOTATION, revision);
    for app in dependency_order(&mi.spec) {
        let Some(live) = observe::workload(ctx, app.kind, &app.namespace, &app.name).await? else { continue };
        if observe::template_annotation(&live, MIGRATED_ANNOTATION) != Some(revision) {
            let resource = live_resource(app.kind);
            applier.merge_patch(MIGRATION_MANAGER, &resource, Some(&app.namespace), &app.name, &body).await?;
            return Ok(Some(format!("restarted {} {}/{}", resource.kind, app.namespace, app.name)));
        }
        if !rolled_out(app.kind, &live) {
            return Ok(Some(format!("waiting for {}/{} to roll out", app.namespace, app.name)));
        }
    }
    // Workloads in the enrolled namespaces that are not ours.
    for ns in &mi.spec.namespaces {
        apply::restart_foreign_workloads(ctx, applier, MIGRATION_MANAGER, &ns.name, MIGRATED_ANNOTATION, revision)
            .await?;
    }
    Ok(None)
}

/// Field manager of the migration's writes to objects it does not own.
const MIGRATION_MANAGER: &str = "migration";

fn live_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
    }
}

/// Whether a restarted workload has rolled out: every wanted replica updated and available
/// (Deployment) or ready (StatefulSet), at the current generation.
fn rolled_out(kind: WorkloadKind, live: &kube::api::DynamicObject) -> bool {
    let field = |path: &str| live.data.pointer(path).and_then(serde_json::Value::as_i64);
    let wanted = field("/spec/replicas").unwrap_or(1);
    let at_generation = field("/status/observedGeneration") >= live.metadata.generation;
    let updated = field("/status/updatedReplicas").unwrap_or(0) >= wanted;
    match kind {
        WorkloadKind::Deployment => {
            at_generation
                && updated
                && field("/status/availableReplicas").unwrap_or(0) >= wanted
                && field("/status/replicas").unwrap_or(0) == wanted
        }
        WorkloadKind::StatefulSet => at_generation && updated && field("/status/readyReplicas").unwrap_or(0) >= wanted,
    }
}
