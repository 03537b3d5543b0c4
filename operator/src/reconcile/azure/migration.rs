//! The in-place migration from the AKS OSM add-on to the Istio add-on, one recorded step at a time.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams, ResourceExt};
use mesh_crds::{MeshInstallation, WorkloadKind, condition_type as ct};
use mesh_provisioner::azure::aks::ClusterRef;
use mesh_provisioner::azure::{ArmClient, ArmError};
use mesh_provisioner::labels;
use serde_json::json;

use super::*;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::reconcile::conditions::ConditionUpdate;

/// The documented in-place migration, one step at a time, each recorded in status so a restarted
/// operator resumes where it stopped.
#[allow(clippy::too_many_arguments)]
pub(super) async fn migrate(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    cluster: &ClusterRef,
    revision: &str,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    loop {
        let step = journal.step().unwrap_or(MIGRATION_STEPS[0]).to_string();
        let index = MIGRATION_STEPS.iter().position(|s| *s == step).unwrap_or(0);
        if index >= 3 {
            findings.outcome.istio_revision = Some(revision.to_string());
        }
        let done = match step.as_str() {
            "DisableOsmAddon" => {
                let result = ensure_cluster(
                    ctx,
                    mi,
                    client,
                    cluster,
                    journal,
                    operation::DISABLE_OSM,
                    "disabling the AKS OSM add-on (migration to Istio)",
                    |c| c.set_osm_addon(false),
                )
                .await?;
                cluster_step(result, findings)
            }
            "DeleteOsmWebhooks" => {
                delete_addon_webhooks(ctx).await?;
                true
            }
            "EnableIstioAddon" => {
                let result = ensure_cluster(
                    ctx,
                    mi,
                    client,
                    cluster,
                    journal,
                    operation::ENABLE_ISTIO,
                    &format!("enabling the AKS Istio add-on ({revision}; migration from OSM)"),
                    |c| c.set_istio(revision),
                )
                .await?;
                cluster_step(result, findings)
            }
            "RelabelNamespaces" => {
                strip_osm_enrolment(mi, ctx).await?;
                true
            }
            "RestartWorkloads" => match restart_in_order(mi, ctx, revision).await? {
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
                let gone = delete_osm_crds(ctx).await?;
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
        journal.persist(ctx, mi).await?;
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

/// Removes OSM's enrolment (label and annotations) from the installation's namespaces, whoever set it.
pub(super) async fn strip_osm_enrolment(mi: &MeshInstallation, ctx: &Context) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let body = json!({"metadata": {
        "labels": {labels::OSM_MONITORED_BY: null},
        "annotations": {labels::OSM_SIDECAR_INJECTION: null, labels::OSM_METRICS: null},
    }});
    for ns in &mi.spec.namespaces {
        match api.patch(&ns.name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(Error::kube(format!("removing OSM enrolment from Namespace/{}", ns.name))(error)),
        }
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
pub(super) async fn restart_in_order(mi: &MeshInstallation, ctx: &Context, revision: &str) -> Result<Option<String>> {
    let body = json!({"spec": {"template": {"metadata": {"annotations": {MIGRATED_ANNOTATION: revision}}}}});
    let params = PatchParams::default();
    for app in dependency_order(&mi.spec) {
        let (annotated, rolled) = match app.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &app.namespace);
                let Some(live) = api
                    .get_opt(&app.name)
                    .await
                    .map_err(Error::kube(format!("reading Deployment {}/{}", app.namespace, app.name)))?
                else {
                    continue;
                };
                let annotated = template_annotation(live.spec.as_ref().map(|s| &s.template)) == Some(revision);
                if !annotated {
                    api.patch(&app.name, &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting Deployment {}/{}", app.namespace, app.name)))?;
                    return Ok(Some(format!("restarted Deployment {}/{}", app.namespace, app.name)));
                }
                let status = live.status.unwrap_or_default();
                let wanted = live.spec.and_then(|s| s.replicas).unwrap_or(1);
                let rolled = status.observed_generation >= live.metadata.generation
                    && status.updated_replicas.unwrap_or(0) >= wanted
                    && status.available_replicas.unwrap_or(0) >= wanted
                    && status.replicas.unwrap_or(0) == wanted;
                (annotated, rolled)
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &app.namespace);
                let Some(live) = api
                    .get_opt(&app.name)
                    .await
                    .map_err(Error::kube(format!("reading StatefulSet {}/{}", app.namespace, app.name)))?
                else {
                    continue;
                };
                let annotated = template_annotation(live.spec.as_ref().map(|s| &s.template)) == Some(revision);
                if !annotated {
                    api.patch(&app.name, &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting StatefulSet {}/{}", app.namespace, app.name)))?;
                    return Ok(Some(format!("restarted StatefulSet {}/{}", app.namespace, app.name)));
                }
                let status = live.status.unwrap_or_default();
                let wanted = live.spec.and_then(|s| s.replicas).unwrap_or(1);
                let rolled = status.observed_generation >= live.metadata.generation
                    && status.updated_replicas.unwrap_or(0) >= wanted
                    && status.ready_replicas.unwrap_or(0) >= wanted;
                (annotated, rolled)
            }
        };
        if annotated && !rolled {
            return Ok(Some(format!("waiting for {}/{} to roll out", app.namespace, app.name)));
        }
    }
    // Workloads in the enrolled namespaces that are not ours.
    for ns in &mi.spec.namespaces {
        macro_rules! restart_foreign {
            ($kind:ty) => {{
                let api: Api<$kind> = Api::namespaced(ctx.client.clone(), &ns.name);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(Error::kube(format!("listing workloads in {}", ns.name)))?;
                for workload in list.items {
                    let ours = workload.labels().contains_key(labels::INSTALLATION);
                    let annotated = template_annotation(workload.spec.as_ref().map(|s| &s.template)) == Some(revision);
                    if ours || annotated {
                        continue;
                    }
                    api.patch(&workload.name_any(), &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting {}/{}", ns.name, workload.name_any())))?;
                }
            }};
        }
        restart_foreign!(Deployment);
        restart_foreign!(StatefulSet);
        restart_foreign!(DaemonSet);
    }
    Ok(None)
}

pub(super) fn template_annotation(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Option<&str> {
    template?.metadata.as_ref()?.annotations.as_ref()?.get(MIGRATED_ANNOTATION).map(String::as_str)
}
