//! One reconcile of a `MeshInstallation`: dereference → validate → build → apply → update status,
//! with a finalizer that runs the ordered teardown on delete.

pub mod azure;
pub mod azure_cli;
pub mod conditions;
pub mod gateway_api;
pub mod observe;
pub mod placement;
pub mod shared;
pub mod status;
pub mod teardown;
pub mod validate;
pub mod workloads;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event, finalizer};
use mesh_crds::{MeshInstallation, MeshProvider, condition_type as ct};
use mesh_provisioner::apply::{Applier, ApplyError, ApplyOutcome};
use mesh_provisioner::desired::{Component, Desired};
use mesh_provisioner::osm;
use mesh_provisioner::plan::{self, Phase};

use crate::context::Context;
use crate::error::{Error, Result};
use conditions::ConditionUpdate;
use mesh_provisioner::plan::kinds;
use status::Progress;

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
            Event::Apply(mi) => converge(&mi, &ctx, &applier).await,
            Event::Cleanup(mi) => teardown::run(&mi, &ctx, &applier).await,
        }
    })
    .await
    .or_else(finalizer_already_gone)
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.record(result.is_ok(), started.elapsed(), applier.writes());
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&name);
    }
    result
}

/// Removing the finalizer of an object that is already gone is success: a second teardown pass,
/// queued before the first removed the finalizer, finds nothing left to do and nothing to patch.
fn finalizer_already_gone(
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

async fn publish(ctx: &Context, mi: &MeshInstallation, type_: EventType, reason: &str, action: &str, note: String) {
    let event = KubeEvent { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(error) = ctx.recorder.publish(&event, &mi.object_ref(&())).await {
        tracing::debug!("could not publish event: {error}");
    }
}

/// Reports a failure that ended a reconcile without a status of its own (a caught panic): a
/// Warning Event, and Ready=False/Degraded=True naming it. Best effort: errors are logged.
pub async fn report_failure(ctx: &Context, mi: &MeshInstallation, reason: &str, message: String) {
    publish(ctx, mi, EventType::Warning, reason, "Reconcile", message.clone()).await;
    let mut current = mi.status.clone().unwrap_or_default();
    let updates = [ConditionUpdate::not_ok(ct::READY, reason, message.clone()), degraded(reason, message)];
    let merged = conditions::merge(&current.conditions, &updates, &status::jiff_now(), mi.meta().generation);
    current.conditions.retain(|c| !merged.iter().any(|m| m.type_ == c.type_));
    current.conditions.extend(merged);
    if let Err(error) = status::write(ctx, mi, &current).await {
        tracing::warn!(installation = %mi.name_any(), "could not report {reason}: {error}");
    }
}

/// A MeshInstallation the operator cannot read (its stored form does not match this version's
/// types): a Warning Event and a Ready=False condition saying why, written as a merge patch of the
/// status (the typed status may be what fails to read). Best effort: errors are logged.
pub async fn report_unreadable(ctx: &Context, metadata: &kube::api::ObjectMeta, error: &str) {
    let name = metadata.name.clone().unwrap_or_default();
    let message =
        format!("the operator cannot read this MeshInstallation, so it is left as it is until it changes: {error}");
    let resource = kube::api::ApiResource::erase::<MeshInstallation>(&());
    let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    // Reported already (the status write below is itself a change the controller sees).
    if let Ok(Some(live)) = api.get_opt(&name).await {
        let conditions = live.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions.iter().any(|c| c["reason"] == "Unreadable" && c["message"] == message.as_str()) {
            return;
        }
    }
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(format!("{}/{}", mesh_crds::GROUP, mesh_crds::VERSION)),
        kind: Some("MeshInstallation".into()),
        name: Some(name.clone()),
        uid: metadata.uid.clone(),
        ..Default::default()
    };
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "Unreadable".into(),
        note: Some(message.clone()),
        action: "Read".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::debug!("could not publish event: {error}");
    }
    let condition = serde_json::json!({
        "type": ct::READY, "status": "False", "reason": "Unreadable", "message": message,
        "lastTransitionTime": status::jiff_now(), "observedGeneration": metadata.generation,
    });
    // A JSON merge patch replaces the list: only the reason is known for sure now.
    let body = serde_json::json!({"status": {"conditions": [condition], "observedGeneration": metadata.generation}});
    let params = kube::api::PatchParams::default();
    if let Err(error) = api.patch_status(&name, &params, &kube::api::Patch::Merge(&body)).await {
        tracing::warn!(installation = %name, "could not report that it is unreadable: {error}");
    }
}

/// Translation findings become Events too, once: only those status shows that the stored status
/// does not hold yet (the ones status leaves out are counted there, never published, so they are
/// not repeated on every reconcile either).
async fn publish_new_notifications(ctx: &Context, mi: &MeshInstallation, notifications: &[mesh_crds::Notification]) {
    let known = mi.status.as_ref().map(|s| s.notifications.clone()).unwrap_or_default();
    let (shown, _) = status::bounded_notifications(notifications);
    for note in shown.iter().filter(|n| !known.contains(n)).take(20) {
        let (type_, reason) = match note.level {
            mesh_crds::NotificationLevel::Error => (EventType::Warning, "TranslationError"),
            mesh_crds::NotificationLevel::Warning => (EventType::Warning, "TranslationWarning"),
            mesh_crds::NotificationLevel::Info => (EventType::Normal, "TranslationInfo"),
        };
        publish(ctx, mi, type_, reason, "Translate", format!("{}: {}", note.object, note.message)).await;
    }
}

/// Applies one component's objects; returns the number written, or the errors.
pub(crate) async fn apply_all(applier: &Applier, objects: &[&Desired]) -> (usize, Vec<ApplyError>) {
    let mut written = 0;
    let mut errors = Vec::new();
    for desired in objects {
        match applier.apply(desired).await {
            Ok(ApplyOutcome::Applied) => written += 1,
            Ok(_) => {}
            Err(error) => errors.push(error),
        }
    }
    (written, errors)
}

async fn converge(mi: &MeshInstallation, ctx: &Context, applier: &Applier) -> Result<Action> {
    let name = mi.name_any();
    let spec = &mi.spec;
    let facts = observe::cluster_facts(ctx).await?;

    let mut problems = validate::validate(&name, spec, &facts);
    problems.extend(gateway_api::problem(spec, &gateway_api::installed_crds(ctx, spec).await?));
    if !problems.is_empty() {
        return refuse(ctx, mi, &problems).await;
    }
    // Which objects exist does not depend on the observed inputs: check collisions before any write
    // (the Azure step below writes to ARM).
    if let Ok(preview) = plan::plan(&name, spec, &plan::PlanInputs::default()) {
        let collisions = placement::collisions(spec, &preview.objects);
        if !collisions.is_empty() {
            return refuse(ctx, mi, &collisions).await;
        }
    }

    let mut progress = Progress::new(spec);
    // Azure first: the AKS add-on provides the mesh, and apps use imported images only once imported.
    let azure = azure::converge_azure(mi, ctx, &mut progress).await?;
    let mut inputs = plan::PlanInputs {
        namespaces: observe::observed_namespaces(&name, spec, &facts),
        image_overrides: azure.image_overrides.clone(),
        istio_revision: azure.istio_revision.clone(),
        ..Default::default()
    };
    inputs.webhook_tls = status::ingress_webhook_tls(ctx, spec).await?;
    inputs.existing_smi = observe::existing_smi(ctx, &name, spec).await?;
    inputs.foreign_workloads = observe::foreign_workloads(ctx, &name, spec).await?;
    inputs.edge_certs = status::edge_certificates(ctx, spec).await?;
    let mut built = plan::plan(&name, spec, &inputs)?;

    progress.notifications = built.notifications.clone();
    progress.certificates = status::certificate_statuses(&inputs.edge_certs);

    // Mesh: CRDs first; nothing that depends on them is applied until they are Established.
    let crds = plan::dependency_order(&built.objects, Phase::MeshDefinitions);
    let (written, errors) = apply_all(applier, &crds).await;
    progress.record(Component::Mesh, written, &errors);
    let crd_names = status::osm_crd_names(spec);
    let crds_ready =
        errors.is_empty() && azure.mesh_prerequisites_met && observe::crds_established(ctx, &crd_names).await?;
    let mut ca_bundle = None;
    if crds_ready {
        // The control-plane namespace, then the root CA and the MeshConfig seed, then the rest:
        // the OSM control plane must find its CA when it starts.
        let namespaces = plan::dependency_order(&built.objects, Phase::MeshNamespace);
        let (written, errors) = apply_all(applier, &namespaces).await;
        progress.record(Component::Mesh, written, &errors);
        if spec.mesh.provider == MeshProvider::SelfHosted && errors.is_empty() {
            ca_bundle = ensure_root_ca(ctx, applier, mi, &mut progress).await?;
            seed_mesh_config(ctx, mi).await?;
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
            if let Some(why) = workloads::injector_pending(ctx, spec) {
                progress.waiting(component, &why);
                continue;
            }
            workloads::apply_apps(applier, spec, &objects, &mut progress).await;
            continue;
        }
        let (written, errors) = apply_all(applier, &objects).await;
        progress.record(component, written, &errors);
        if component == Component::Namespaces && errors.is_empty() && spec.mesh.is_osm() {
            let annotated = workloads::annotate_meshed_pods(ctx, spec).await?;
            progress.record(component, annotated, &[]);
        }
    }

    // The CA Secret is not re-rendered (it is never replaced) but must not be pruned either.
    built.objects.extend(ca_bundle);
    // A translation ERROR blocks that source's switch-over: what it produced before stays.
    built.objects.extend(kept_translations(applier, &name, &built.blocked_sources));
    prune(applier, &built.objects, &mut progress).await?;
    status::observe_readiness(ctx, mi, &built.objects, &mut progress);

    if progress.writes() > 0 {
        publish(ctx, mi, EventType::Normal, "Applied", "Apply", progress.summary()).await;
    }
    for error in progress.errors() {
        publish(ctx, mi, EventType::Warning, "ApplyFailed", "Apply", error).await;
    }
    publish_new_notifications(ctx, mi, &progress.notifications).await;
    status::update(ctx, mi, &progress).await?;
    Ok(if progress.ready() {
        Action::requeue(ctx.settings.resync)
    } else {
        // An Azure operation or back-off (Retry-After) may ask for a longer wait.
        Action::requeue(ctx.settings.progress_interval.max(azure.requeue.unwrap_or_default()))
    })
}

/// A spec that must not be applied: the problems go to the status and one Event; nothing is written.
async fn refuse(ctx: &Context, mi: &MeshInstallation, problems: &[validate::Problem]) -> Result<Action> {
    let progress = Progress::invalid(problems);
    let changed = status::update(ctx, mi, &progress).await?;
    if changed {
        let note = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
        publish(ctx, mi, EventType::Warning, "InvalidSpec", "Validate", note).await;
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Markers for the live outputs of translation sources that failed this time, so pruning keeps them.
fn kept_translations(
    applier: &Applier,
    installation: &str,
    blocked: &std::collections::BTreeSet<String>,
) -> Vec<Desired> {
    if blocked.is_empty() {
        return Vec::new();
    }
    let mut kept = Vec::new();
    for kind in kinds::kinds_of(Component::Traffic) {
        for live in applier.cache().owned(&kind.resource, installation, Some(Component::Traffic.as_str())) {
            let source = live.annotations().get(mesh_provisioner::translate::SOURCE_ANNOTATION);
            if source.is_some_and(|s| blocked.contains(s)) {
                kept.push(Desired {
                    component: Component::Traffic,
                    resource: kind.resource.clone(),
                    namespaced: kind.namespaced,
                    object: (*live).clone(),
                    existing: mesh_provisioner::desired::ExistingPolicy::Conflict,
                });
            }
        }
    }
    kept
}

/// Deletes what was applied before but is no longer desired, kind by kind. A component whose apply
/// failed is not pruned (its desired set may be incomplete). Namespaces are released, never deleted.
async fn prune(applier: &Applier, desired: &[Desired], progress: &mut Progress) -> Result<()> {
    for component in Component::ALL {
        if progress.failed(component) {
            continue;
        }
        for kind in kinds::kinds_of(component) {
            if kind.resource.kind == "Namespace" {
                for live in applier.cache().owned(
                    &kind.resource,
                    applier_installation(applier, desired),
                    Some(component.as_str()),
                ) {
                    let live_name = live.name_any();
                    if !desired.iter().any(|d| d.resource.kind == "Namespace" && d.name() == live_name) {
                        applier.release(component, &kind.resource, None, &live_name).await?;
                        progress.pruned.push(format!("Namespace/{live_name} (released)"));
                    }
                }
                continue;
            }
            let pruned = applier.prune(component, &kind, desired).await?;
            progress.pruned.extend(pruned);
        }
    }
    Ok(())
}

fn applier_installation<'a>(_applier: &Applier, desired: &'a [Desired]) -> &'a str {
    desired
        .first()
        .and_then(|d| d.object.metadata.labels.as_ref())
        .and_then(|l| l.get(mesh_provisioner::labels::INSTALLATION))
        .map(String::as_str)
        .unwrap_or_default()
}

/// The mesh's root CA: generated and stored once, never silently replaced. An unreadable stored
/// CA is reported, not overwritten: workload certificates chain to it.
async fn ensure_root_ca(
    ctx: &Context,
    applier: &Applier,
    mi: &MeshInstallation,
    progress: &mut Progress,
) -> Result<Option<Desired>> {
    let namespace = mi.spec.mesh.control_plane_namespace();
    let secret_name = osm::names::CA_BUNDLE_SECRET;
    match observe::secret(ctx, namespace, secret_name).await? {
        Some(existing) => {
            let data = existing.data.clone().unwrap_or_default();
            if let Err(problem) = osm::ca::parse_ca_bundle(&data) {
                progress.fail(
                    Component::Mesh,
                    format!("Secret {namespace}/{secret_name} holds no usable root CA ({problem}); it is left as it is — delete it to have a new CA generated"),
                );
            }
            // Only its identity matters here: it keeps the Secret out of pruning.
            let marker = k8s_openapi::api::core::v1::Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(secret_name.to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            Ok(Some(Desired::new(Component::Mesh, &mi.name_any(), &marker).map_err(plan::PlanError::from)?))
        }
        None => {
            let ca = osm::ca::generate_root_ca().map_err(plan::PlanError::from)?;
            let desired = osm::ca::ca_bundle_secret(&mi.name_any(), namespace, &ca).map_err(plan::PlanError::from)?;
            match applier.apply(&desired).await {
                Ok(_) => progress.record(Component::Mesh, 1, &[]),
                Err(error) => progress.record(Component::Mesh, 0, &[error]),
            }
            Ok(Some(desired))
        }
    }
}

/// Creates `osm-mesh-config` from OSM's preset when it does not exist yet, as osm-bootstrap
/// would, under a field manager of its own: the mesh component then owns only the fields the spec
/// controls, and OSM's required fields (certificate settings, sidecar defaults) stay in place.
async fn seed_mesh_config(ctx: &Context, mi: &MeshInstallation) -> Result<()> {
    let namespace = mi.spec.mesh.control_plane_namespace();
    let resource = kube::api::ApiResource::erase::<mesh_crds::osm::MeshConfig>(&());
    let typed: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(ctx.client.clone(), namespace);
    if ctx.cache.get(&resource, Some(namespace), osm::names::MESH_CONFIG).is_some() {
        return Ok(());
    }
    let context = format!("creating MeshConfig {namespace}/{}", osm::names::MESH_CONFIG);
    if typed.get_opt(osm::names::MESH_CONFIG).await.map_err(Error::kube(context.clone()))?.is_some() {
        return Ok(());
    }
    // Created from OSM's full preset JSON, so fields our typed model leaves out are kept too.
    let preset =
        osm::preset_spec(&mi.spec.mesh).map_err(|e| Error::kube(context.clone())(kube::Error::SerdeError(e)))?;
    let object: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": osm::names::MESH_CONFIG, "namespace": namespace},
        "spec": preset,
    }))
    .map_err(|e| Error::kube(context.clone())(kube::Error::SerdeError(e)))?;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let params =
        kube::api::PostParams { field_manager: Some("mesh-operator/osm-bootstrap".into()), ..Default::default() };
    match api.create(&params, &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(Error::kube(context)(error)),
    }
}

/// Condition updates shared by the status module.
pub(crate) fn degraded(reason: &str, message: String) -> ConditionUpdate {
    ConditionUpdate { type_: ct::DEGRADED, status: mesh_crds::ConditionStatus::True, reason: reason.into(), message }
}
