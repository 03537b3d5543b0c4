//! Teardown of the mesh's control plane: stop OSM's components before deleting what they write,
//! delete the webhooks they registered (only when they call our control plane), and release CRDs
//! the API server leaves stuck Terminating.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ApiResource, ListParams, ResourceExt};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::{labels, osm};
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};

/// Deletes the control plane's Deployments; true once they and their pods are gone.
pub(super) async fn control_plane_stopped(
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
pub(super) async fn release_stuck_crds(ctx: &Context, applier: &Applier, installation: &str) -> Result<()> {
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
            let resource = ApiResource::erase::<CustomResourceDefinition>(&());
            applier.merge_patch("teardown", &resource, None, &crd.name_any(), &patch).await?;
        }
    }
    Ok(())
}

/// Deletes a webhook configuration whose every webhook calls a Service in `namespace` (the control
/// plane that registered it); one that calls anything else is someone else's and stays.
pub(super) async fn delete_webhook_if_ours<K>(
    ctx: &Context,
    applier: &Applier,
    name: &str,
    namespace: &str,
) -> Result<()>
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
    applier.delete_named(&ApiResource::erase::<K>(&()), None, name).await?;
    Ok(())
}
