//! One converge of a `MeshInstallation`, the data flowing one way:
//! observe (reads) → validate (pure) → plan (pure, `mesh_provisioner::plan`) → apply (every write
//! through the `Applier`) → status (one writer, [`super::status::Record`]). The Azure step runs
//! between validate and plan: the AKS add-on provides the mesh, and apps use imported images only
//! once imported.

use std::time::Duration;

use kube::api::{DynamicObject, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mesh_crds::{MeshInstallation, MeshProvider};
use mesh_provisioner::apply::{Applier, Create, KeepSet};
use mesh_provisioner::desired::{Component, Desired};
use mesh_provisioner::osm;
use mesh_provisioner::plan::{self, Phase, kinds};

use super::apply::{self, apply_all};
use super::progress::Progress;
use super::status::Record;
use super::{azure, certificates, events, gateway_api, observe, placement, validate};
use crate::context::Context;
use crate::error::{Error, Result};

/// How long one pass waits for the mesh's CRDs to be Established before leaving the rest of the
/// mesh for the next pass (the CRD watch triggers it). A new CRD usually is within a second.
const CRD_WAIT: Duration = Duration::from_secs(5);

/// How long an installation that waits only for what its watches bring is left before it is looked
/// at again anyway (the watches re-check it at once; this bounds the cost of an event missed
/// while a watch restarts).
const WATCHED_FALLBACK: Duration = Duration::from_secs(5);

/// Makes the cluster what the installation's spec says, then writes its status.
pub(super) async fn converge(mi: &MeshInstallation, ctx: &Context, applier: &Applier) -> Result<Action> {
    let name = mi.name_any();
    let spec = &mi.spec;
    let mut record = Record::of(mi);
    let facts = observe::cluster_facts(ctx).await?;

    let mut problems = validate::validate(&name, spec, &facts);
    problems.extend(gateway_api::problem(spec, &gateway_api::installed_crds(ctx, spec).await?));
    if !problems.is_empty() {
        return refuse(ctx, mi, &mut record, &problems).await;
    }
    // Which objects exist does not depend on the observed inputs: check collisions before any write
    // (the Azure step below writes to ARM).
    if let Ok(preview) = plan::plan(&name, spec, &plan::PlanInputs::default()) {
        let collisions = placement::collisions(spec, &preview.objects);
        if !collisions.is_empty() {
            return refuse(ctx, mi, &mut record, &collisions).await;
        }
    }

    let mut progress = Progress::new(spec);
    // Azure first: the AKS add-on provides the mesh, and apps use imported images only once imported.
    let azure = azure::converge_azure(mi, ctx, applier, &mut record, &mut progress).await?;
    let mut inputs = plan::PlanInputs {
        namespaces: observe::observed_namespaces(&name, spec, &facts),
        image_overrides: azure.image_overrides.clone(),
        istio_revision: azure.istio_revision.clone(),
        ..Default::default()
    };
    inputs.webhook_tls = certificates::ingress_webhook_tls(ctx, spec).await?;
    inputs.existing_smi = observe::existing_smi(ctx, &name, spec).await?;
    inputs.foreign_workloads = observe::foreign_workloads(ctx, &name, spec).await?;
    inputs.edge_certs = certificates::edge_certificates(ctx, spec).await?;
    let built = plan::plan(&name, spec, &inputs)?;

    progress.notifications = built.notifications.clone();
    progress.certificates = certificates::certificate_statuses(&inputs.edge_certs);
    let mut keep = KeepSet::default();

    // Mesh: CRDs first; nothing that depends on them is applied until they are Established.
    let crds = plan::dependency_order(&built.objects, Phase::MeshDefinitions);
    let (written, errors) = apply_all(applier, &crds).await;
    progress.record(Component::Mesh, written, &errors);
    let crd_names = observe::osm_crd_names(spec);
    let crds_ready = errors.is_empty()
        && azure.mesh_prerequisites_met
        && observe::wait_crds_established(ctx, &crd_names, CRD_WAIT).await?;
    if crds_ready {
        // The control-plane namespace, then the root CA and the MeshConfig seed, then the rest:
        // the OSM control plane must find its CA when it starts.
        let namespaces = plan::dependency_order(&built.objects, Phase::MeshNamespace);
        let (written, errors) = apply_all(applier, &namespaces).await;
        progress.record(Component::Mesh, written, &errors);
        if spec.mesh.provider == MeshProvider::SelfHosted && errors.is_empty() {
            // Independent writes: the CA Secret and the MeshConfig seed go out together.
            let (ca, seed) = tokio::join!(
                certificates::ensure_root_ca(ctx, applier, mi, &mut progress, &mut keep),
                seed_mesh_config(ctx, applier, mi)
            );
            ca?;
            seed?;
        }
        let (written, errors) = apply_all(applier, &plan::dependency_order(&built.objects, Phase::Mesh)).await;
        progress.record(Component::Mesh, written, &errors);
    } else {
        progress.waiting(Component::Mesh, "waiting for the OSM and SMI CRDs to be Established");
    }

    for component in [Component::Namespaces, Component::Apps, Component::Ingress, Component::Traffic] {
        if component == Component::Traffic && !crds_ready {
            progress.waiting(component, "waiting for the SMI CRDs to be Established");
            continue;
        }
        if component != Component::Namespaces && progress.blocked(Component::Namespaces) {
            progress.waiting(component, "waiting for the namespaces");
            continue;
        }
        let objects: Vec<&Desired> = built.objects.iter().filter(|d| d.component == component).collect();
        if component == Component::Apps {
            if let Some(why) = apply::injector_pending(ctx, spec) {
                progress.waiting(component, &why);
                continue;
            }
            apply::apply_apps(applier, spec, &objects, &mut progress).await;
            continue;
        }
        let (written, errors) = apply_all(applier, &objects).await;
        progress.record(component, written, &errors);
        if component == Component::Namespaces && errors.is_empty() && spec.mesh.is_osm() {
            let annotated = apply::annotate_meshed_pods(ctx, applier, spec).await?;
            progress.record(component, annotated, &[]);
        }
    }

    // A translation ERROR blocks that source's switch-over: what it produced before stays.
    keep_blocked_translations(applier, &built.blocked_sources, &mut keep);
    prune(applier, &built.objects, &keep, &mut progress).await?;
    progress.record_readiness(observe::readiness(ctx, spec, &built.objects));

    if progress.writes() > 0 {
        events::publish(ctx, mi, EventType::Normal, "Applied", "Apply", progress.summary()).await;
    }
    for error in progress.errors() {
        events::publish(ctx, mi, EventType::Warning, "ApplyFailed", "Apply", error).await;
    }
    events::publish_new_notifications(ctx, mi, &progress.notifications).await;
    record.conclude(ctx, &progress).await?;
    // Everything is applied and only our own workloads (or the ingress Service's address) are not
    // ready yet: their watch brings every change, so a timer is only a fallback.
    let only_watched = spec.azure.is_none()
        && spec.registry.is_none()
        && Component::ALL.iter().all(|component| !progress.failed(*component));
    Ok(if progress.ready() {
        Action::requeue(ctx.settings.resync)
    } else if only_watched {
        Action::requeue(ctx.settings.resync.min(WATCHED_FALLBACK).max(ctx.settings.progress_interval))
    } else {
        // An Azure operation or back-off (Retry-After) may ask for a longer wait.
        Action::requeue(ctx.settings.progress_interval.max(azure.requeue.unwrap_or_default()))
    })
}

/// A spec that must not be applied: the problems go to the status and one Event; nothing is written.
async fn refuse(
    ctx: &Context,
    mi: &MeshInstallation,
    record: &mut Record,
    problems: &[validate::Problem],
) -> Result<Action> {
    let changed = record.conclude(ctx, &Progress::invalid(problems)).await?;
    if changed {
        let note = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
        events::publish(ctx, mi, EventType::Warning, "InvalidSpec", "Validate", note).await;
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Keeps the live outputs of translation sources that failed this time out of pruning.
fn keep_blocked_translations(applier: &Applier, blocked: &std::collections::BTreeSet<String>, keep: &mut KeepSet) {
    if blocked.is_empty() {
        return;
    }
    for kind in kinds::kinds_of(Component::Traffic) {
        for live in applier.cache().owned(&kind.resource, applier.installation(), Some(Component::Traffic.as_str())) {
            let source = live.annotations().get(mesh_provisioner::translate::SOURCE_ANNOTATION);
            if source.is_some_and(|s| blocked.contains(s)) {
                keep.keep(&kind.resource, live.metadata.namespace.as_deref(), &live.name_any());
            }
        }
    }
}

/// Deletes what was applied before but is no longer desired nor kept, kind by kind. A component
/// whose apply failed is not pruned (its desired set may be incomplete). Namespaces are released,
/// never deleted.
async fn prune(applier: &Applier, desired: &[Desired], keep: &KeepSet, progress: &mut Progress) -> Result<()> {
    for component in Component::ALL {
        if progress.failed(component) {
            continue;
        }
        for kind in kinds::kinds_of(component) {
            if kind.resource.kind == "Namespace" {
                for live in applier.cache().owned(&kind.resource, applier.installation(), Some(component.as_str())) {
                    let live_name = live.name_any();
                    if !desired.iter().any(|d| d.resource.kind == "Namespace" && d.name() == live_name) {
                        applier.release(component, &kind.resource, None, &live_name).await?;
                        progress.pruned.push(format!("Namespace/{live_name} (released)"));
                    }
                }
                continue;
            }
            let pruned = applier.prune(component, &kind, desired, keep).await?;
            progress.pruned.extend(pruned);
        }
    }
    Ok(())
}

/// Creates `osm-mesh-config` from OSM's preset when it does not exist yet, as osm-bootstrap
/// would, under a field manager of its own: the mesh component then owns only the fields the spec
/// controls, and OSM's required fields (certificate settings, sidecar defaults) stay in place.
async fn seed_mesh_config(ctx: &Context, applier: &Applier, mi: &MeshInstallation) -> Result<()> {
    let namespace = mi.spec.mesh.control_plane_namespace();
    if observe::mesh_config_exists(ctx, namespace).await? {
        return Ok(());
    }
    let context = format!("creating MeshConfig {namespace}/{}", osm::names::MESH_CONFIG);
    let resource = kube::api::ApiResource::erase::<mesh_crds::osm::MeshConfig>(&());
    // Created from OSM's full preset JSON, so fields our typed model leaves out are kept too.
    let preset =
        osm::preset_spec(&mi.spec.mesh).map_err(|e| Error::kube(context.clone())(kube::Error::SerdeError(e)))?;
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": osm::names::MESH_CONFIG, "namespace": namespace},
        "spec": preset,
    }))
    .map_err(|e| Error::kube(context.clone())(kube::Error::SerdeError(e)))?;
    // Already there (created meanwhile) is fine: its values are left as they are.
    applier.create(Create::ApplyIfAbsent, "osm-bootstrap", &resource, Some(namespace), &object).await?;
    Ok(())
}
