//! Steps every MeshInstallation scenario uses: read a sample, apply it, read its conditions,
//! delete it and wait for the teardown, list what it still owns.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_provisioner::labels;

use mesh_operator::context::Settings;

use crate::arm_emulator::{self, ArmEmulator};
use crate::wait;

/// Namespace of the Secrets holding the emulator's client secret.
pub const SECRET_NAMESPACE: &str = "mesh-operator-system";

/// How long a scenario waits for convergence or teardown: the one timeout of every suite (a suite
/// that needs another says why where it defines it). Generous for a loaded 2-core machine; a
/// timeout is a ceiling, never what a test measures.
pub const CONVERGE: Duration = Duration::from_secs(180);

/// A sample from `samples/`, parsed as the API server reads it, with the ingress node selector of
/// the target (see [`ingress_node_selector`]).
pub fn sample(name: &str) -> MeshInstallation {
    let path = format!("{}/../samples/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut mi = MeshInstallation::from_yaml(&std::fs::read_to_string(&path).expect("sample")).expect("sample parses");
    for_target(&mut mi);
    mi
}

/// An installation as the target can run it: the ingress node selector of the target (see
/// [`ingress_node_selector`]) replaces the installation's.
pub fn for_target(mi: &mut MeshInstallation) {
    if let (Some(ingress), Some(selector)) = (mi.spec.ingress.as_mut(), ingress_node_selector()) {
        ingress.nginx.node_selector = selector;
    }
}

/// The samples pin ingress-nginx to nodes labelled `agentpool=agentpool`, as the article does on
/// AKS; the local control plane's nodes carry that label, kind's do not. On `kind` and `kubeconfig`
/// targets the selector comes from `E2E_INGRESS_NODE_SELECTOR` (`k=v,k2=v2`; empty or unset: none).
/// `None`: keep the sample's.
pub fn ingress_node_selector() -> Option<std::collections::BTreeMap<String, String>> {
    if matches!(crate::cluster::Provider::from_env(), Ok(crate::cluster::Provider::Local) | Err(_)) {
        return None;
    }
    let text = std::env::var("E2E_INGRESS_NODE_SELECTOR").unwrap_or_default();
    Some(
        text.split(',')
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// Server-side applies an installation as a user would (`kubectl apply --server-side`).
pub async fn apply(client: &Client, mi: &MeshInstallation) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let mut mi = mi.clone();
    mi.metadata.managed_fields = None;
    mi.metadata.resource_version = None;
    mi.status = None;
    api.patch(&mi.name_any(), &PatchParams::apply("e2e").force(), &Patch::Apply(&mi))
        .await
        .expect("apply MeshInstallation");
}

/// `(status, reason, message)` of a condition.
pub fn condition(mi: &MeshInstallation, type_: &str) -> Option<(ConditionStatus, String, String)> {
    mi.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
}

/// Deletes an installation and waits until its teardown has finished.
pub async fn delete_and_wait_gone(client: &Client, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_gone(client, name).await;
}

/// Waits until an installation being deleted is gone (its teardown finished).
pub async fn wait_gone(client: &Client, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("MeshInstallation {name} to be gone"), CONVERGE, || async {
        match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(mi) => Err(format!("still there, teardown step {:?}", mi.status.and_then(|s| s.teardown_step))),
        }
    })
    .await;
}

/// Every object carrying the installation's label, as `Kind/namespace/name`.
pub async fn managed_objects(client: &Client, installation: &str) -> Vec<String> {
    let selector = labels::installation_selector(installation);
    let mut found = Vec::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for o in list.items {
                found.push(format!("{}/{}/{}", kind.resource.kind, o.namespace().unwrap_or_default(), o.name_any()));
            }
        }
    }
    found
}

/// Operator settings that send every installation's Azure requests to the emulator, as the
/// operator's `--azure-arm-endpoint`/`--azure-authority-host` flags do (an installation cannot:
/// it only names a cloud), reading client secrets from [`SECRET_NAMESPACE`].
pub fn emulator_settings(mut settings: Settings, emulator: &ArmEmulator) -> Settings {
    settings.azure.overrides = mesh_provisioner::azure::EndpointOverrides {
        arm_endpoint: Some(emulator.endpoint().to_string()),
        authority_host: Some(emulator.endpoint().to_string()),
    };
    settings.operator_namespace = SECRET_NAMESPACE.to_string();
    settings
}

/// Starts the in-process operator (the tests' settings) with its Azure requests sent to `emulator`.
pub async fn operator_on_emulator(client: &Client, emulator: &ArmEmulator) -> crate::operator::OperatorHandle {
    let settings = emulator_settings(crate::operator::test_settings(Duration::from_secs(300)), emulator);
    crate::operator::OperatorHandle::start(client.clone(), settings).await
}

/// Starts `mi` on the AKS Istio add-on with its ARM calls answered by a new emulator: installs
/// OSM's SMI CRDs (as the OSM add-on leaves them before a migration), adds the spec's AKS cluster
/// to the emulator, starts the operator with `settings` and applies `mi` with the emulator's
/// client secret. Keep the emulator alive as long as the operator.
pub async fn start_on_emulator(
    client: &Client,
    mut mi: MeshInstallation,
    settings: Settings,
) -> (ArmEmulator, crate::operator::OperatorHandle) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in mesh_crds::generate::osm_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(&crd)).await.expect("OSM/SMI CRD");
    }
    let emulator = ArmEmulator::start(Some(client.clone())).await;
    let azure = mi.spec.azure.clone().expect("spec.azure");
    emulator.add_cluster(&azure.subscription_id, &azure.resource_group, &azure.cluster_name, &azure.location, "1.30.4");
    put_secret(client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    let operator = crate::operator::OperatorHandle::start(client.clone(), emulator_settings(settings, &emulator)).await;
    with_client_secret(&mut mi, "azure-sp");
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.patch(&mi.name_any(), &PatchParams::apply("e2e").force(), &Patch::Apply(&mi)).await.expect("apply");
    (emulator, operator)
}

/// What the translation suites run: installation `name` on the AKS Istio add-on (revision asm-1-25,
/// cluster `{name}-cluster` in resource group `{name}-rg`, for [`start_on_emulator`]) in GatewayAPI
/// mode translating the SMI objects it finds (`translateExisting`), enrolling `namespace`, with
/// `apps` (a YAML flow list) as `spec.apps`.
pub fn translating_on_istio(name: &str, namespace: &str, apps: &str) -> MeshInstallation {
    let yaml = format!(
        "apiVersion: meshoperator.dev/v1alpha1
kind: MeshInstallation
metadata: {{ name: {name} }}
spec:
  mesh: {{ provider: AksIstioAddon, name: istio, istio: {{ revision: asm-1-25 }} }}
  azure: {{ subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: {name}-rg, clusterName: {name}-cluster, location: eastus }}
  namespaces: [ {{ name: {namespace} }} ]
  apps: {apps}
  traffic: {{ mode: GatewayAPI, translateExisting: true }}
"
    );
    MeshInstallation::from_yaml(&yaml).expect("translating installation")
}

/// Makes an installation authenticate as the emulator's service principal, whose client secret is
/// in Secret `secret` of the operator's namespace (see [`put_secret`]).
pub fn with_client_secret(mi: &mut MeshInstallation, secret: &str) {
    use mesh_crds::{AzureCredential, ClientSecretRef};
    let azure = mi.spec.azure.as_mut().expect("spec.azure");
    azure.credential = AzureCredential::ClientSecretRef(ClientSecretRef {
        tenant_id: arm_emulator::TENANT_ID.into(),
        client_id: arm_emulator::CLIENT_ID.into(),
        secret_name: secret.into(),
        key: None,
    });
}

/// Stores a client secret as the operator reads it (key `clientSecret` in [`SECRET_NAMESPACE`]).
pub async fn put_secret(client: &Client, name: &str, value: &str) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECRET_NAMESPACE}});
    namespaces
        .patch(SECRET_NAMESPACE, &PatchParams::apply("e2e").force(), &Patch::Apply(&ns))
        .await
        .expect("namespace");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SECRET_NAMESPACE);
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(std::collections::BTreeMap::from([(
            "clientSecret".to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&secret)).await.expect("secret");
}

/// The label OSM's sidecar injector puts on every pod it injects (`osm-proxy-uuid`, the Envoy's
/// identity), which `osm metrics enable` selects.
pub const OSM_PROXY_UUID: &str = "osm-proxy-uuid";

/// Creates namespace `namespace` (if missing) and a pod in it as OSM's injector leaves an injected
/// pod: label `osm-proxy-uuid`, the `osm-init` init container and the `envoy` sidecar. Simulated
/// nodes never run it; its metadata is what metrics enrolment reads and patches.
pub async fn meshed_pod(client: &Client, namespace: &str, name: &str) {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use mesh_provisioner::topology::fnv1a;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    namespaces.patch(namespace, &PatchParams::apply("e2e").force(), &Patch::Apply(&ns)).await.expect("namespace");
    let uuid = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        fnv1a(name.as_bytes()) as u32,
        fnv1a(namespace.as_bytes()) & 0xffff_ffff_ffff
    );
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, OSM_PROXY_UUID: uuid}},
        "spec": {
            "initContainers": [{"name": "osm-init", "image": "openservicemesh/init:v1.2.4"}],
            "containers": [
                {"name": name, "image": "example.invalid/app:1"},
                {"name": "envoy", "image": "envoyproxy/envoy-distroless:v1.22.2", "ports": [{"name": "proxy-metrics", "containerPort": 15010}]}
            ]
        }
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&pod)).await.expect("meshed pod");
}

/// The namespaces the bookstore sample enrols.
pub const BOOKSTORE_APP_NAMESPACES: [&str; 4] = ["bookbuyer", "bookthief", "bookstore", "bookwarehouse"];

/// Waits until every live pod of `namespaces` (at least one in each) carries what OSM's real
/// sidecar injector adds — the `envoy` container, the `osm-init` init container and the
/// `osm-proxy-uuid` label — and returns them. Only a real osm-injector called by the API server as
/// an admission webhook does that (the local control plane as the README starts it).
pub async fn wait_injected(
    client: &Client,
    namespaces: &[&str],
    timeout: Duration,
) -> Vec<k8s_openapi::api::core::v1::Pod> {
    use k8s_openapi::api::core::v1::Pod;
    wait::until("every app pod injected by osm-injector", timeout, || async {
        let mut injected = Vec::new();
        for namespace in namespaces {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let list = pods.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let live: Vec<Pod> = list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            if live.is_empty() {
                return Err(format!("no pods in {namespace} yet"));
            }
            for pod in live {
                let spec = pod.spec.as_ref().ok_or("no spec")?;
                let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
                let inits: Vec<&str> = spec.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
                let uuid = pod.labels().get(OSM_PROXY_UUID);
                if !containers.contains(&"envoy") || !inits.contains(&"osm-init") || uuid.is_none() {
                    return Err(format!(
                        "{namespace}/{}: containers {containers:?}, init containers {inits:?}, {OSM_PROXY_UUID} {uuid:?}",
                        pod.name_any()
                    ));
                }
                injected.push(pod);
            }
        }
        Ok(injected)
    })
    .await
}

/// The annotations of pod `namespace/name`.
pub async fn pod_annotations(
    client: &Client,
    namespace: &str,
    name: &str,
) -> std::collections::BTreeMap<String, String> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.get(name).await.expect("pod").metadata.annotations.unwrap_or_default()
}

/// Waits until an installation is Ready for its current generation, and returns it.
pub async fn wait_ready(client: &Client, name: &str) -> MeshInstallation {
    wait_ready_within(client, name, CONVERGE).await
}

/// [`wait_ready`] with another timeout.
pub async fn wait_ready_within(client: &Client, name: &str, timeout: Duration) -> MeshInstallation {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("MeshInstallation {name} to be Ready"), timeout, || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, "Ready") {
            Some((ConditionStatus::True, _, _))
                if mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation =>
            {
                Ok(mi)
            }
            other => Err(format!("Ready={other:?}; conditions={:?}", mi.status.map(|s| s.conditions))),
        }
    })
    .await
}

/// The article's last traffic step: the bookstore split from 50/50 to 0/100 (all to bookstore-v2);
/// applies it and waits until the TrafficSplit says so and the installation is Ready again.
pub async fn shift_bookstore_to_v2(client: &Client, mi: &mut MeshInstallation) {
    for backend in &mut mi.spec.traffic.splits[0].backends {
        backend.weight = if backend.service == "bookstore-v2" { 100 } else { 0 };
    }
    apply(client, mi).await;
    let splits: Api<mesh_crds::smi::TrafficSplit> = Api::namespaced(client.clone(), "bookstore");
    wait::until("the TrafficSplit to send everything to bookstore-v2", CONVERGE, || async {
        let split = splits.get("bookstore-split").await.map_err(|e| e.to_string())?;
        let weights: Vec<i64> = split.spec.backends.iter().map(|b| b.weight).collect();
        if weights == vec![0, 100] { Ok(()) } else { Err(format!("weights {weights:?}")) }
    })
    .await;
    wait_ready(client, &mi.name_any()).await;
}
