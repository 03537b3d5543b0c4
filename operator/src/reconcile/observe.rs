//! Observe: every read a reconcile makes of the cluster (namespaces, control planes, Secrets
//! including the stored CA and certificates, CRDs, workload readiness, objects to translate),
//! preferring the watch caches and the API server's watch cache (list with resourceVersion=0)
//! over quorum reads. Nothing here writes.

use std::collections::BTreeMap;

use futures::FutureExt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, ObjectMeta};
use kube::{Api, ResourceExt};
use mesh_crds::MeshInstallationSpec;
use mesh_provisioner::desired::{Component, Desired};
use mesh_provisioner::topology::{CREATED_BY, ObservedNamespace};
use mesh_provisioner::translate::listed::{Listed, Workload};
use mesh_provisioner::{ingress, labels};

use super::validate::ClusterFacts;
use crate::context::Context;
use crate::error::{Error, Result};
use mesh_provisioner::plan::enrolled_namespaces;

/// The metadata (labels, annotations, deletion) of every namespace: from the metadata-only
/// namespace watch once it has listed, else listed from the API server's watch cache.
pub async fn namespaces(ctx: &Context) -> Result<Vec<Namespace>> {
    if ctx.namespaces.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()) {
        return Ok(ctx.namespaces.state().iter().map(|ns| metadata_only(ns.metadata.clone())).collect());
    }
    list_namespaces(ctx, ListParams::default().match_any()).await
}

/// The metadata of every namespace as the API server has it now (a consistent read, metadata
/// only), for teardown: a namespace created moments before the installation was deleted may not
/// have reached the watch yet, and teardown must not miss it.
pub async fn namespaces_now(ctx: &Context) -> Result<Vec<Namespace>> {
    list_namespaces(ctx, ListParams::default()).await
}

async fn list_namespaces(ctx: &Context, params: ListParams) -> Result<Vec<Namespace>> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let listed = api.list_metadata(&params).await.map_err(Error::kube("listing namespaces"))?;
    Ok(listed.items.into_iter().map(|ns| metadata_only(ns.metadata)).collect())
}

fn metadata_only(metadata: ObjectMeta) -> Namespace {
    Namespace { metadata, ..Namespace::default() }
}

/// Reads namespaces and OSM control planes.
pub async fn cluster_facts(ctx: &Context) -> Result<ClusterFacts> {
    let cached = ListParams::default().match_any();
    let namespaces = namespaces(ctx).await?;
    let deployments: Api<Deployment> = Api::all(ctx.client.clone());
    let controllers = deployments
        .list(&cached.clone().labels("app=osm-controller"))
        .await
        .map_err(Error::kube("listing osm-controller Deployments"))?;
    Ok(ClusterFacts {
        namespaces: namespaces.into_iter().map(|ns| (ns.name_any(), ns)).collect(),
        control_planes: controllers
            .items
            .into_iter()
            .filter_map(|d| {
                let mesh = d.labels().get("meshName").cloned().unwrap_or_default();
                d.namespace().map(|ns| (ns, mesh))
            })
            .collect(),
        operator_namespace: ctx.settings.operator_namespace.clone(),
    })
}

/// Existence and ownership of the namespaces the installation touches.
pub fn observed_namespaces(
    installation: &str,
    spec: &MeshInstallationSpec,
    facts: &ClusterFacts,
) -> BTreeMap<String, ObservedNamespace> {
    let mut names: Vec<String> = enrolled_namespaces(spec).into_iter().map(|n| n.name).collect();
    names.push(spec.mesh.control_plane_namespace().to_string());
    names
        .into_iter()
        .map(|name| {
            let live = facts.namespaces.get(&name);
            let observed = ObservedNamespace {
                exists: live.is_some(),
                created_by_us: live
                    .is_some_and(|ns| ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation)),
            };
            (name, observed)
        })
        .collect()
}

/// A Secret from the cache, or from the API when it is not one of ours.
pub async fn secret(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Secret>> {
    let resource = ApiResource::erase::<Secret>(&());
    if let Some(cached) = ctx.cache.get(&resource, Some(namespace), name) {
        let secret: Secret = serde_json::to_value(&*cached)
            .and_then(serde_json::from_value)
            .map_err(|e| Error::kube(format!("decoding Secret {namespace}/{name}"))(kube::Error::SerdeError(e)))?;
        return Ok(Some(secret));
    }
    // Not cached (the cache may still be listing): ask for it by name, but only if it carries our
    // label. The operator never reads a Secret it did not create (a spec names Secrets, e.g. an
    // ingress rule's `tls.secretName`, and its author may not be able to read them).
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let ours = ListParams::default().fields(&format!("metadata.name={name}")).labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let listed = api.list(&ours).await.map_err(Error::kube(format!("reading Secret {namespace}/{name}")))?;
    Ok(listed.items.into_iter().next())
}

/// Whether every named CRD is Established.
pub async fn crds_established(ctx: &Context, names: &[String]) -> Result<bool> {
    let resource = ApiResource::erase::<CustomResourceDefinition>(&());
    for name in names {
        let value = match ctx.cache.get(&resource, None, name) {
            // The body (spec, status) of the cached object, whose `status` is all that is read.
            Some(cached) => std::sync::Arc::unwrap_or_clone(cached).data,
            None => {
                let api: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
                match api.get_opt(name).await.map_err(Error::kube(format!("reading CRD {name}")))? {
                    Some(crd) => serde_json::to_value(crd).unwrap_or_default(),
                    None => return Ok(false),
                }
            }
        };
        let established = value["status"]["conditions"]
            .as_array()
            .is_some_and(|conds| conds.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
        if !established {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Waits up to `timeout` for the CRDs to be Established, so what uses their kinds is applied in
/// the same pass rather than the next one.
pub async fn wait_crds_established(ctx: &Context, names: &[String], timeout: std::time::Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if crds_established(ctx, names).await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        // The watch of CRDs brings the change (a read of memory once it is cached).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Readiness of a workload from the cache: `(ready, message)`.
pub fn workload_ready(ctx: &Context, kind: &str, namespace: &str, name: &str) -> (bool, String) {
    let (resource, ready) = match kind {
        "StatefulSet" => (ApiResource::erase::<StatefulSet>(&()), "readyReplicas"),
        _ => (ApiResource::erase::<Deployment>(&()), "availableReplicas"),
    };
    let Some(object) = ctx.cache.get(&resource, Some(namespace), name) else {
        return (false, format!("{kind} {namespace}/{name} does not exist yet"));
    };
    let body = &object.data;
    let wanted = body["spec"]["replicas"].as_i64().unwrap_or(1);
    let have = body["status"][ready].as_i64().unwrap_or(0);
    let generation = object.metadata.generation.unwrap_or(0);
    let observed = body["status"]["observedGeneration"].as_i64().unwrap_or(0);
    if observed < generation {
        return (false, format!("{kind} {namespace}/{name} is rolling out"));
    }
    if have < wanted {
        return (false, format!("{kind} {namespace}/{name} has {have}/{wanted} ready pods"));
    }
    (true, String::new())
}

/// With `traffic.translateExisting`: the SMI objects already in the enrolled namespaces (not ours),
/// read from the API server's watch cache. A kind whose CRD is not installed has none.
pub async fn existing_smi(
    ctx: &Context,
    installation: &str,
    spec: &MeshInstallationSpec,
) -> Result<mesh_provisioner::translate::TranslationInput> {
    use mesh_crds::smi::{HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget};
    let mut input = mesh_provisioner::translate::TranslationInput::default();
    if !spec.traffic.translate_existing || spec.traffic.mode != mesh_crds::TrafficMode::GatewayApi {
        return Ok(input);
    }
    let namespaces: std::collections::BTreeSet<String> =
        enrolled_namespaces(spec).into_iter().map(|n| n.name).collect();
    input.traffic_targets = list_foreign::<TrafficTarget>(ctx, installation, &namespaces).await?;
    input.http_route_groups = list_foreign::<HTTPRouteGroup>(ctx, installation, &namespaces).await?;
    input.tcp_routes = list_foreign::<TCPRoute>(ctx, installation, &namespaces).await?;
    input.traffic_splits = list_foreign::<TrafficSplit>(ctx, installation, &namespaces).await?;
    Ok(input)
}

/// Objects of kind `K` in `namespaces` that `installation` does not manage.
async fn list_foreign<K>(
    ctx: &Context,
    installation: &str,
    namespaces: &std::collections::BTreeSet<String>,
) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    let kind = kube::api::ApiResource::erase::<K>(&()).kind;
    match api.list(&ListParams::default().match_any()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter(|o| o.meta().namespace.as_ref().is_some_and(|ns| namespaces.contains(ns)))
            .filter(|o| {
                o.meta().labels.as_ref().and_then(|l| l.get(mesh_provisioner::labels::INSTALLATION)).map(String::as_str)
                    != Some(installation)
            })
            .collect()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(error) => Err(Error::kube(format!("listing existing {kind}s"))(error)),
    }
}

/// GatewayAPI mode: the workloads of enrolled namespaces the installation does not manage
/// (Deployments, StatefulSets, Jobs, bare Pods), for the translation's label checks and baseline,
/// decoded with only the fields the translation reads ([`Listed`]).
pub async fn foreign_workloads(
    ctx: &Context,
    installation: &str,
    spec: &MeshInstallationSpec,
) -> Result<mesh_provisioner::translate::TranslationInput> {
    let mut input = mesh_provisioner::translate::TranslationInput::default();
    if spec.traffic.mode != mesh_crds::TrafficMode::GatewayApi {
        return Ok(input);
    }
    let namespaces: std::collections::BTreeSet<String> = spec.namespaces.iter().map(|n| n.name.clone()).collect();
    input.deployments = list_foreign_workloads(ctx, installation, &namespaces).await?;
    input.stateful_sets = list_foreign_workloads(ctx, installation, &namespaces).await?;
    input.jobs = list_foreign_workloads(ctx, installation, &namespaces).await?;
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = list_foreign_workloads(ctx, installation, &namespaces).await?;
    input.pods = pods.into_iter().filter(|p| p.metadata.owner_references.as_ref().is_none_or(Vec::is_empty)).collect();
    Ok(input)
}

/// [`list_foreign`] of a workload kind, each decoded as [`Listed`].
async fn list_foreign_workloads<K>(
    ctx: &Context,
    installation: &str,
    namespaces: &std::collections::BTreeSet<String>,
) -> Result<Vec<K>>
where
    K: Workload<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let listed: Vec<Listed<K>> = list_foreign(ctx, installation, namespaces).await?;
    Ok(listed.into_iter().map(Listed::into_inner).collect())
}

/// Names of the CRDs traffic policy needs.
pub fn osm_crd_names(spec: &MeshInstallationSpec) -> Vec<String> {
    if spec.mesh.is_osm() { mesh_crds::generate::osm_crd_names() } else { Vec::new() }
}

/// Readiness of the desired workloads and the ingress address, as the caches show them.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Each desired workload's component, and why it is not ready (None when it is).
    pub workloads: Vec<(Component, Option<String>)>,
    /// External address of the ingress controller's Service.
    pub ingress_address: Option<String>,
}

/// Reads workload readiness and the ingress address from the caches.
pub fn readiness(ctx: &Context, spec: &MeshInstallationSpec, desired: &[Desired]) -> Readiness {
    let workloads = desired
        .iter()
        .filter(|d| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet"))
        .map(|d| {
            let (ready, why) = workload_ready(ctx, &d.resource.kind, d.namespace().unwrap_or_default(), d.name());
            (d.component, (!ready).then_some(why))
        })
        .collect();
    Readiness { workloads, ingress_address: spec.ingress.as_ref().and_then(|i| ingress_address(ctx, i)) }
}

fn ingress_address(ctx: &Context, spec: &mesh_crds::IngressSpec) -> Option<String> {
    let controller = ingress::ControllerRef::for_spec(spec);
    let resource = ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let service = ctx.cache.get(&resource, Some(&controller.namespace), &controller.controller_service())?;
    let first = service.data["status"]["loadBalancer"]["ingress"].get(0)?;
    first["ip"].as_str().or(first["hostname"].as_str()).map(str::to_string)
}

/// Whether OSM's MeshConfig exists in `namespace` (the cache first, then the API server).
pub async fn mesh_config_exists(ctx: &Context, namespace: &str) -> Result<bool> {
    let name = mesh_provisioner::osm::names::MESH_CONFIG;
    let resource = ApiResource::erase::<mesh_crds::osm::MeshConfig>(&());
    if ctx.cache.get(&resource, Some(namespace), name).is_some() {
        return Ok(true);
    }
    let api: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await.map_err(Error::kube(format!("reading MeshConfig {namespace}/{name}")))?.is_some())
}

/// The meshed pods (label `osm-proxy-uuid`) of a namespace, metadata only.
pub async fn meshed_pods(
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Pod>>> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list_metadata(&ListParams::default().labels("osm-proxy-uuid").match_any())
        .await
        .map_err(Error::kube(format!("listing meshed pods in {namespace}")))?;
    Ok(listed.items)
}

/// The workloads (Deployments, StatefulSets, DaemonSets) in `namespace` that no installation
/// manages and whose pod template does not carry `annotation: value` yet.
pub async fn foreign_workloads_without(
    ctx: &Context,
    namespace: &str,
    annotation: &str,
    value: &str,
) -> Result<Vec<(ApiResource, String)>> {
    let kinds = [
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<k8s_openapi::api::apps::v1::DaemonSet>(&()),
    ];
    let mut found = Vec::new();
    for resource in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
        let list =
            api.list(&ListParams::default()).await.map_err(Error::kube(format!("listing workloads in {namespace}")))?;
        for workload in list.items {
            let ours = workload.labels().contains_key(labels::INSTALLATION);
            if ours || template_annotation(&workload, annotation) == Some(value) {
                continue;
            }
            found.push((resource.clone(), workload.name_any()));
        }
    }
    Ok(found)
}

/// A workload read from the API server (not a cache: a rollout is followed step by step).
pub async fn workload(
    ctx: &Context,
    kind: mesh_crds::WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<DynamicObject>> {
    let resource = match kind {
        mesh_crds::WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        mesh_crds::WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    api.get_opt(name).await.map_err(Error::kube(format!("reading {} {namespace}/{name}", resource.kind)))
}

/// A pod-template annotation of a workload.
pub fn template_annotation<'a>(workload: &'a DynamicObject, annotation: &str) -> Option<&'a str> {
    workload.data.pointer("/spec/template/metadata/annotations")?.get(annotation)?.as_str()
}
