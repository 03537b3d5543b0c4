//! What AKS does on the cluster when an operation finishes: the add-ons' objects appear or go.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::{OpKind, State};

const FIELD_MANAGER: &str = "aks-addon-manager";

/// Finishes due operations every 100 ms: side effects first, then the status flips, so an
/// operation reported Succeeded has its objects in place.
pub(crate) async fn finish_operations(state: Arc<Mutex<State>>, kube: Option<kube::Client>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let due: Vec<(String, OpKind, Option<String>, String)> = {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            let policy = s.webhook_failure_policy.clone();
            s.operations
                .iter()
                .filter(|(_, op)| op.finished.is_none() && op.done_at <= Instant::now())
                .map(|(id, op)| (id.clone(), op.kind.clone(), op.fail.clone(), policy.clone()))
                .collect()
        };
        for (id, kind, fail, policy) in due {
            if fail.is_none()
                && let (Some(client), OpKind::Cluster { cluster_id, before }) = (&kube, &kind)
            {
                let after = {
                    let s = state.lock().unwrap_or_else(|e| e.into_inner());
                    s.clusters.get(cluster_id).map(|c| c.value.clone()).unwrap_or_default()
                };
                if let Err(error) = side_effects(client, before, &after, &policy).await {
                    eprintln!("ARM emulator: AKS side effects failed (will retry): {error}");
                    continue;
                }
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            let status = if fail.is_some() { "Failed" } else { "Succeeded" };
            match &kind {
                OpKind::Cluster { cluster_id, before } => {
                    if let Some(cluster) = s.clusters.get_mut(cluster_id) {
                        if fail.is_some() {
                            // A failed update leaves the cluster as it was, in state Failed.
                            for field in ["addonProfiles", "serviceMeshProfile"] {
                                match before["properties"].get(field) {
                                    Some(v) => cluster.value["properties"][field] = v.clone(),
                                    None => {
                                        if let Some(p) = cluster.value["properties"].as_object_mut() {
                                            p.remove(field);
                                        }
                                    }
                                }
                            }
                        }
                        cluster.value["properties"]["provisioningState"] = json!(status);
                        cluster.etag += 1;
                        cluster.busy = None;
                    }
                }
                OpKind::Import { registry_id, tags } => {
                    if fail.is_none()
                        && let Some(registry) = s.registries.get_mut(registry_id)
                    {
                        registry.tags.extend(tags.iter().cloned());
                    }
                }
            }
            if let Some(op) = s.operations.get_mut(&id) {
                op.finished = Some(status.to_string());
            }
        }
    }
}

fn osm_enabled(cluster: &Value) -> bool {
    cluster["properties"]["addonProfiles"]["openServiceMesh"]["enabled"].as_bool() == Some(true)
}

fn istio_revisions(cluster: &Value) -> Vec<String> {
    if cluster["properties"]["serviceMeshProfile"]["mode"].as_str() != Some("Istio") {
        return Vec::new();
    }
    cluster["properties"]["serviceMeshProfile"]["istio"]["revisions"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub(crate) async fn side_effects(
    client: &kube::Client,
    before: &Value,
    after: &Value,
    policy: &str,
) -> Result<(), String> {
    match (osm_enabled(before), osm_enabled(after)) {
        (false, true) => enable_osm(client, policy).await?,
        (true, false) => disable_osm(client).await?,
        _ => {}
    }
    let (old, new) = (istio_revisions(before), istio_revisions(after));
    for revision in new.iter().filter(|r| !old.contains(r)) {
        enable_istio(client, revision).await?;
    }
    for revision in old.iter().filter(|r| !new.contains(r)) {
        let api: Api<Deployment> = Api::namespaced(client.clone(), mesh_crds::AKS_ISTIO_NAMESPACE);
        let _ = api.delete(&format!("istiod-{revision}"), &Default::default()).await;
    }
    Ok(())
}

async fn apply<K>(api: &Api<K>, name: &str, object: &Value) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(|e| format!("applying {name}: {e}"))
}

fn addon_labels(component: &str) -> Value {
    json!({"app": component, "meshName": "osm", "kubernetes.azure.com/managedby": "aks", "addonmanager.kubernetes.io/mode": "Reconcile"})
}

async fn enable_osm(client: &kube::Client, policy: &str) -> Result<(), String> {
    let namespace = mesh_crds::AKS_ADDON_NAMESPACE;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in mesh_crds::generate::osm_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // A previous installation's teardown may still be deleting it: applying now would only
        // touch an object about to vanish. Wait (the operation is retried) as AKS's add-on
        // manager, which reconciles until its objects exist, effectively does.
        let existing = crds.get_opt(&name).await.map_err(|e| format!("reading CRD {name}: {e}"))?;
        if existing.is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
            return Err(format!("CRD {name} is still being deleted"));
        }
        let value = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
        apply(&crds, &name, &value).await?;
    }
    // The MeshConfig, once its CRD is served.
    let preset = mesh_provisioner::osm::preset_spec(&mesh_crds::MeshSpec::default()).map_err(|e| e.to_string())?;
    let resource = ApiResource::erase::<mesh_crds::osm::MeshConfig>(&());
    let meshconfigs: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object = json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": "osm-mesh-config", "namespace": namespace, "labels": {"kubernetes.azure.com/managedby": "aks"}},
        "spec": preset,
    });
    // Created (not applied) from OSM's full preset, as osm-bootstrap does: the API server prunes
    // the preset's fields this CRD version does not declare.
    let object: DynamicObject = serde_json::from_value(object).map_err(|e| e.to_string())?;
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match meshconfigs.create(&kube::api::PostParams::default(), &object).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => break,
            Err(e) if Instant::now() < deadline => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("creating osm-mesh-config: {e} (before: {last})")),
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "osm-controller", "namespace": namespace, "labels": addon_labels("osm-controller")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "osm-controller"}},
            "template": {
                "metadata": {"labels": addon_labels("osm-controller")},
                "spec": {"containers": [{"name": "osm-controller", "image": "mcr.microsoft.com/oss/openservicemesh/osm-controller:v1.2.5"}]}
            }
        }
    });
    apply(&deployments, "osm-controller", &deployment).await?;
    let rules = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]);
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": mesh_provisioner::osm::names::AKS_ADDON_WEBHOOK, "labels": addon_labels("osm-injector")},
        "webhooks": [{
            "name": "osm-inject.k8s.io",
            "clientConfig": {"service": {"namespace": namespace, "name": "osm-injector", "path": "/mutate-pod-creation", "port": 9090}},
            "rules": rules,
            "namespaceSelector": {"matchLabels": {"openservicemesh.io/monitored-by": "osm"}},
            "failurePolicy": policy,
            "sideEffects": "NoneOnDryRun",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }]
    });
    apply(&mutating, mesh_provisioner::osm::names::AKS_ADDON_WEBHOOK, &webhook).await?;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let validator = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": mesh_provisioner::osm::names::AKS_ADDON_VALIDATOR, "labels": addon_labels("osm-controller")},
        "webhooks": [{
            "name": "osm-validator.k8s.io",
            "clientConfig": {"service": {"namespace": namespace, "name": "osm-validator", "path": "/validate", "port": 9093}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["policy.openservicemesh.io"], "apiVersions": ["v1alpha1"], "resources": ["egresses", "ingressbackends"]}],
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }]
    });
    apply(&validating, mesh_provisioner::osm::names::AKS_ADDON_VALIDATOR, &validator).await
}

/// Disabling the add-on removes its control plane; the webhooks, MeshConfig and CRDs stay behind.
async fn disable_osm(client: &kube::Client) -> Result<(), String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), mesh_crds::AKS_ADDON_NAMESPACE);
    match deployments.delete("osm-controller", &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(format!("deleting osm-controller: {e}")),
    }
}

async fn enable_istio(client: &kube::Client, revision: &str) -> Result<(), String> {
    let namespace = mesh_crds::AKS_ISTIO_NAMESPACE;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    apply(&namespaces, namespace, &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .await?;
    let name = format!("istiod-{revision}");
    let labels = json!({"app": "istiod", "istio.io/rev": revision, "kubernetes.azure.com/managedby": "aks"});
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "istiod", "istio.io/rev": revision}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "discovery", "image": format!("mcr.microsoft.com/oss/istio/pilot:{revision}")}]}}
        }
    });
    apply(&deployments, &name, &deployment).await
}
