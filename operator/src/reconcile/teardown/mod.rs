//! Teardown on delete, in the article's order: traffic policies → ingress → un-enrol namespaces →
//! restart the workloads left in them → apps → control plane (webhooks, MeshConfig, CA, CRDs) →
//! namespaces we created, if asked. Every step is idempotent and re-checked on each pass, so a
//! restarted operator simply resumes. Nothing the operator did not create is deleted.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ApiResource, ListParams, Patch, PatchParams, ResourceExt};
use kube::runtime::controller::Action;
use mesh_crds::MeshInstallation;
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::labels;
use mesh_provisioner::topology::CREATED_BY;
use serde_json::json;

use mesh_provisioner::osm;

use super::shared::Claims;
use super::status;
use crate::context::Context;
use crate::error::{Error, Result};
use mesh_provisioner::plan::enrolled_namespaces;
use mesh_provisioner::plan::kinds;

/// Annotation value set on pod templates of workloads left in un-enrolled namespaces: constant,
/// so a resumed teardown does not restart them twice.
pub const UNENROLLED: &str = "unenrolled";

/// The steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Delete SMI/Gateway API policies.
    TrafficPolicies,
    /// Delete the ingress.
    Ingress,
    /// Remove enrolment labels and annotations.
    Unenrol,
    /// Restart workloads so sidecars go away.
    RestartWorkloads,
    /// Delete the apps.
    Apps,
    /// Delete the control plane.
    ControlPlane,
    /// Delete namespaces we created.
    Namespaces,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::TrafficPolicies => "TrafficPolicies",
            Step::Ingress => "Ingress",
            Step::Unenrol => "Unenrol",
            Step::RestartWorkloads => "RestartWorkloads",
            Step::Apps => "Apps",
            Step::ControlPlane => "ControlPlane",
            Step::Namespaces => "Namespaces",
        }
    }
}

/// Runs the teardown; returns `await_change` when done (the finalizer is then removed).
pub async fn run(mi: &MeshInstallation, ctx: &Context, applier: &Applier) -> Result<Action> {
    let steps = [
        Step::TrafficPolicies,
        Step::Ingress,
        Step::Unenrol,
        Step::RestartWorkloads,
        Step::Apps,
        Step::ControlPlane,
        Step::Namespaces,
    ];
    // Read anew on every pass: an installation created or deleted meanwhile counts as it is now.
    let claims = Claims::of_others(ctx, &mi.name_any()).await?;
    for step in steps {
        let done = run_step(step, mi, ctx, applier, &claims).await?;
        if !done {
            record_step(ctx, mi, step).await?;
            // Not Ok: kube-runtime's finalizer() removes the finalizer after any successful
            // cleanup, which would let the object go with the teardown unfinished.
            return Err(Error::TeardownInProgress { step: step.as_str() });
        }
    }
    tracing::info!(installation = %mi.name_any(), "teardown complete");
    Ok(Action::await_change())
}

async fn record_step(ctx: &Context, mi: &MeshInstallation, step: Step) -> Result<()> {
    // The latest status: a step (the Azure one) may have recorded an operation during this pass.
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    // `get`, not `get_status`: the object carries its status, and the ClusterRole grants no `get`
    // on the status subresource (the RBAC suite's audit log showed it Forbidden).
    let latest = api.get(&mi.name_any()).await.map_err(Error::kube("reading MeshInstallation status"))?;
    let mut current = latest.status.unwrap_or_default();
    if current.teardown_step.as_deref() == Some(step.as_str()) {
        return Ok(());
    }
    current.teardown_step = Some(step.as_str().to_string());
    status::write(ctx, mi, &current).await
}

/// Deletes every object of `component`, but first hands over to another installation what it still
/// declares; true once none of ours remains.
async fn delete_component(
    applier: &Applier,
    claims: &Claims,
    installation: &str,
    component: Component,
) -> Result<bool> {
    claims.hand_over(applier, installation, component).await?;
    let mut remaining = 0;
    for kind in kinds::kinds_of(component) {
        if kind.resource.kind == "Namespace" {
            continue;
        }
        remaining += applier.delete_all(component, &kind.resource).await?;
    }
    Ok(remaining == 0)
}

async fn run_step(
    step: Step,
    mi: &MeshInstallation,
    ctx: &Context,
    applier: &Applier,
    claims: &Claims,
) -> Result<bool> {
    let spec = &mi.spec;
    let name = mi.name_any();
    match step {
        Step::TrafficPolicies => delete_component(applier, claims, &name, Component::Traffic).await,
        Step::Ingress => delete_component(applier, claims, &name, Component::Ingress).await,
        Step::Unenrol => {
            let ns_resource = kinds::namespace();
            let keep_created = spec.teardown.delete_namespaces;
            for ns in owned_namespaces(ctx, &name, Component::Namespaces).await? {
                // Another installation still enrols it: it stays enrolled, and becomes theirs.
                if let Some(to) = claims.namespace_claimant(&ns.name_any()) {
                    applier.hand_over(&ns_resource, None, &ns.name_any(), to).await?;
                    continue;
                }
                let created = ns.annotations().get(CREATED_BY).is_some_and(|v| *v == name);
                if created && keep_created {
                    // Keep only the created-by mark, so the last step can still find it after a restart.
                    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name_any(), "annotations": {CREATED_BY: name}}});
                    let params = PatchParams::apply(&labels::field_manager(Component::Namespaces.as_str())).force();
                    Api::<Namespace>::all(ctx.client.clone())
                        .patch(&ns.name_any(), &params, &Patch::Apply(&body))
                        .await
                        .map_err(Error::kube(format!("un-enrolling Namespace/{}", ns.name_any())))?;
                } else {
                    applier.release(Component::Namespaces, &ns_resource, None, &ns.name_any()).await?;
                }
            }
            Ok(true)
        }
        Step::RestartWorkloads => {
            if spec.teardown.restart_workloads {
                // Where another installation still enrols the namespace, sidecars stay: no restart.
                for ns in enrolled_namespaces(spec).iter().filter(|ns| claims.namespace_claimant(&ns.name).is_none()) {
                    restart_foreign_workloads(ctx, &ns.name).await?;
                }
            }
            Ok(true)
        }
        Step::Apps => delete_component(applier, claims, &name, Component::Apps).await,
        Step::ControlPlane => {
            if !spec.teardown.uninstall_mesh {
                return Ok(true);
            }
            // OSM's components write what is deleted next (osm-bootstrap creates `osm-mesh-config`
            // from its preset when it starts and replaces the CRDs' specs; the injector and the
            // controller register their webhooks): stop them first, and delete the rest only once
            // their pods are gone. Not when another installation runs the same mesh (it takes them over).
            let self_hosted = spec.mesh.provider == mesh_crds::MeshProvider::SelfHosted;
            if self_hosted && !claims.shares_mesh(spec) && !control_plane_stopped(ctx, applier, spec).await? {
                return Ok(false);
            }
            // Webhooks the OSM control plane registers itself at run time (so they carry OSM's
            // labels, not ours): deleted only when they call our control plane, and no other
            // installation runs the same mesh.
            if !claims.shares_mesh(spec) {
                let mesh = &spec.mesh.name;
                let namespace = spec.mesh.control_plane_namespace();
                delete_webhook_if_ours::<MutatingWebhookConfiguration>(ctx, &osm::names::webhook_name(mesh), namespace)
                    .await?;
                delete_webhook_if_ours::<ValidatingWebhookConfiguration>(
                    ctx,
                    &osm::names::validator_name(mesh),
                    namespace,
                )
                .await?;
            }
            // AKS add-ons: disable through ARM, then remove what AKS leaves behind.
            if !super::azure::teardown_addon(mi, ctx).await? {
                return Ok(false);
            }
            let done = delete_component(applier, claims, &name, Component::Mesh).await?;
            if !done {
                release_stuck_crds(ctx, &name).await?;
                return Ok(false);
            }
            if !super::azure::teardown_leftovers(mi, ctx).await? {
                return Ok(false);
            }
            delete_created_namespaces(ctx, applier, &name, Component::Mesh).await
        }
        Step::Namespaces => {
            // Pull rights go once nothing of ours pulls any more, and after the add-on step, whose
            // status writes would otherwise put back the record of a removed assignment.
            if !super::azure::teardown_acr_pull(mi, ctx).await? {
                return Ok(false);
            }
            if spec.teardown.delete_namespaces {
                delete_created_namespaces(ctx, applier, &name, Component::Namespaces).await
            } else {
                Ok(true)
            }
        }
    }
}

/// Deletes the control plane's Deployments; true once they and their pods are gone.
async fn control_plane_stopped(
    ctx: &Context,
    applier: &Applier,
    spec: &mesh_crds::MeshInstallationSpec,
) -> Result<bool> {
    let remaining = applier.delete_all(Component::Mesh, &ApiResource::erase::<Deployment>(&())).await?;
    let namespace = spec.mesh.control_plane_namespace();
    let components = [osm::names::BOOTSTRAP, osm::names::CONTROLLER, osm::names::INJECTOR];
    let selector = format!("app in ({})", components.join(","));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube(format!("listing the OSM control plane's pods in {namespace}")))?;
    if !pods.items.is_empty() {
        let names: Vec<String> = pods.items.iter().map(ResourceExt::name_any).collect();
        tracing::info!("teardown: waiting for OSM's control-plane pods to stop: {names:?}");
    }
    Ok(remaining == 0 && pods.items.is_empty())
}

/// How long a deleted CRD of ours may stay Terminating before we look at why.
const CRD_STUCK_AFTER: i64 = 10;

/// The API server can leave a CRD deleted during a storage re-initialisation Terminating for good
/// ("storage is (re)initializing" from its finalizer). When such a CRD of ours has no instances
/// left, the cleanup finalizer has nothing to do: remove it so teardown can finish.
async fn release_stuck_crds(ctx: &Context, installation: &str) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let selector = labels::installation_selector(installation);
    let listed = crds.list(&ListParams::default().labels(&selector)).await.map_err(Error::kube("listing our CRDs"))?;
    let now = jiff::Timestamp::now();
    for crd in listed.items {
        let Some(deleted) = crd.metadata.deletion_timestamp.as_ref() else { continue };
        if now.duration_since(deleted.0).as_secs() < CRD_STUCK_AFTER {
            continue;
        }
        let Some(version) = crd.spec.versions.iter().find(|v| v.served).map(|v| v.name.clone()) else { continue };
        let gvk = kube::api::GroupVersionKind::gvk(&crd.spec.group, &version, &crd.spec.names.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
        let instances: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let remaining = match instances.list(&ListParams::default().limit(1)).await {
            Ok(list) => list.items.len(),
            Err(kube::Error::Api(status)) if status.code == 404 => 0,
            Err(_) => continue,
        };
        if remaining == 0 {
            tracing::warn!(crd = %crd.name_any(), "CRD stuck Terminating with no instances; removing its cleanup finalizer");
            let patch = json!({"metadata": {"finalizers": null}});
            crds.patch(&crd.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube(format!("releasing CRD {}", crd.name_any())))?;
        }
    }
    Ok(())
}

/// Namespaces carrying our installation and component labels (listed from the API, not the cache).
async fn owned_namespaces(ctx: &Context, installation: &str, component: Component) -> Result<Vec<Namespace>> {
    let selector =
        format!("{},{}={}", labels::installation_selector(installation), labels::COMPONENT, component.as_str());
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let listed =
        api.list(&ListParams::default().labels(&selector)).await.map_err(Error::kube("listing our namespaces"))?;
    let created =
        api.list(&ListParams::default()).await.map_err(Error::kube("listing namespaces"))?.items.into_iter().filter(
            |ns| {
                ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation)
                    && component == Component::Namespaces
            },
        );
    let mut all: Vec<Namespace> = listed.items;
    for ns in created {
        if !all.iter().any(|n| n.name_any() == ns.name_any()) {
            all.push(ns);
        }
    }
    Ok(all)
}

/// Deletes namespaces this installation created (by annotation); true once they are gone.
async fn delete_created_namespaces(
    ctx: &Context,
    applier: &Applier,
    installation: &str,
    component: Component,
) -> Result<bool> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let all = api.list(&ListParams::default()).await.map_err(Error::kube("listing namespaces"))?;
    let mut remaining = 0;
    for ns in all.items {
        let created = ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation);
        let of_component = ns.labels().get(labels::COMPONENT).map(String::as_str) == Some(component.as_str())
            || (component == Component::Namespaces && !ns.labels().contains_key(labels::COMPONENT));
        if created && of_component {
            remaining += 1;
            if ns.metadata.deletion_timestamp.is_none() {
                applier.delete(&kinds::namespace(), None, &ns.name_any()).await?;
            }
        } else if !created && ns.labels().get(labels::INSTALLATION).is_some_and(|v| v == installation) && of_component {
            // A namespace that existed before us: give back what we set on it.
            applier.release(component, &kinds::namespace(), None, &ns.name_any()).await?;
        }
    }
    Ok(remaining == 0)
}

/// Deletes a webhook configuration whose every webhook calls a Service in `namespace` (the control
/// plane that registered it); one that calls anything else is someone else's and stays.
async fn delete_webhook_if_ours<K>(ctx: &Context, name: &str, namespace: &str) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    let kind = ApiResource::erase::<K>(&()).kind;
    let Some(live) = api.get_opt(name).await.map_err(Error::kube(format!("reading {kind} {name}")))? else {
        return Ok(());
    };
    let value = serde_json::to_value(&live).unwrap_or_default();
    let webhooks = value["webhooks"].as_array().cloned().unwrap_or_default();
    let ours = !webhooks.is_empty()
        && webhooks.iter().all(|w| w["clientConfig"]["service"]["namespace"].as_str() == Some(namespace));
    if !ours {
        tracing::info!(%kind, name, "left in place: it does not call the control plane in {namespace}");
        return Ok(());
    }
    delete_named::<K>(ctx, name).await?;
    Ok(())
}

/// Deletes a cluster-scoped object by name; a missing one is fine. True when it is gone, false
/// while it is still being deleted (finalizers).
pub(super) async fn delete_named<K>(ctx: &Context, name: &str) -> Result<bool>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    match api.delete(name, &Default::default()).await {
        Ok(deleted) => Ok(deleted.is_right()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
        Err(error) => Err(Error::kube(format!("deleting {} {name}", ApiResource::erase::<K>(&()).kind))(error)),
    }
}

/// Rolls the workloads we did not create in a namespace leaving the mesh, as `kubectl rollout
/// restart` does, so their sidecars are removed. The annotation value is constant, so repeating
/// the step is a no-op.
async fn restart_foreign_workloads(ctx: &Context, namespace: &str) -> Result<()> {
    let body = json!({"spec": {"template": {"metadata": {"annotations": {labels::RESTARTED_AT: UNENROLLED}}}}});
    macro_rules! restart {
        ($kind:ty) => {{
            let api: Api<$kind> = Api::namespaced(ctx.client.clone(), namespace);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(Error::kube(format!("listing workloads in {namespace}")))?;
            for workload in list.items {
                let ours = workload.labels().contains_key(labels::INSTALLATION);
                let template_annotations = workload
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref());
                let done =
                    template_annotations.and_then(|a| a.get(labels::RESTARTED_AT)).is_some_and(|v| v == UNENROLLED);
                if ours || done {
                    continue;
                }
                api.patch(&workload.name_any(), &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(Error::kube(format!("restarting {}/{}", namespace, workload.name_any())))?;
            }
        }};
    }
    restart!(Deployment);
    restart!(StatefulSet);
    restart!(DaemonSet);
    Ok(())
}
