//! Dereference: read what the validate and build steps need, preferring the watch caches and the
//! API server's watch cache (list with resourceVersion=0) over quorum reads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, ListParams};
use kube::{Api, ResourceExt};
use mesh_crds::MeshInstallationSpec;
use mesh_provisioner::labels;
use mesh_provisioner::topology::{CREATED_BY, ObservedNamespace};

use super::validate::ClusterFacts;
use crate::context::Context;
use crate::error::{Error, Result};
use mesh_provisioner::plan::enrolled_namespaces;

/// Reads namespaces and OSM control planes.
pub async fn cluster_facts(ctx: &Context) -> Result<ClusterFacts> {
    let cached = ListParams::default().match_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let namespaces = namespaces.list(&cached).await.map_err(Error::kube("listing namespaces"))?;
    let deployments: Api<Deployment> = Api::all(ctx.client.clone());
    let controllers = deployments
        .list(&cached.clone().labels("app=osm-controller"))
        .await
        .map_err(Error::kube("listing osm-controller Deployments"))?;
    Ok(ClusterFacts {
        namespaces: namespaces.items.into_iter().map(|ns| (ns.name_any(), ns)).collect(),
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
            Some(cached) => serde_json::to_value(&*cached).unwrap_or_default(),
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

/// Readiness of a workload from the cache: `(ready, message)`.
pub fn workload_ready(ctx: &Context, kind: &str, namespace: &str, name: &str) -> (bool, String) {
    let (resource, ready) = match kind {
        "StatefulSet" => (ApiResource::erase::<StatefulSet>(&()), "readyReplicas"),
        _ => (ApiResource::erase::<Deployment>(&()), "availableReplicas"),
    };
    let Some(object) = ctx.cache.get(&resource, Some(namespace), name) else {
        return (false, format!("{kind} {namespace}/{name} does not exist yet"));
    };
    let value = serde_json::to_value(&*object).unwrap_or_default();
    let wanted = value["spec"]["replicas"].as_i64().unwrap_or(1);
    let have = value["status"][ready].as_i64().unwrap_or(0);
    let generation = value["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = value["status"]["observedGeneration"].as_i64().unwrap_or(0);
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
/// (Deployments, StatefulSets, Jobs, bare Pods), for the translation's label checks and baseline.
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
    input.deployments = list_foreign(ctx, installation, &namespaces).await?;
    input.stateful_sets = list_foreign(ctx, installation, &namespaces).await?;
    input.jobs = list_foreign(ctx, installation, &namespaces).await?;
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = list_foreign(ctx, installation, &namespaces).await?;
    input.pods = pods.into_iter().filter(|p| p.metadata.owner_references.as_ref().is_none_or(Vec::is_empty)).collect();
    Ok(input)
}
