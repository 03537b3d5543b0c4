//! MeshInstallation read as an attacker would, Azure side: every spec field that once let its
//! author steer the operator's Azure requests, tried against the real API server and the operator
//! (in-process, its Azure endpoints pointed at the ARM emulator by its own settings, as
//! `--azure-arm-endpoint` does). Each attempt is rejected at admission with a message naming the
//! field, or refused with a condition naming it; a loopback listener standing in for a foreign
//! endpoint records that the operator never connects to it.
//!
//! Secrets: the operator is shown not to read a Secret outside its namespace by behaviour — the
//! right client secret is stored only in `kube-system`, and the emulator's token endpoint never
//! sees a token request (a read of that Secret would have authenticated).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_e2e::arm_emulator::{self, ArmEmulator, FaultKind};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{
    CONVERGE, apply, condition, delete_and_wait_gone, emulator_settings, operator_on_emulator, put_secret, sample,
    wait_gone, with_client_secret,
};
use mesh_e2e::{TestCluster, wait};
use serde_json::{Value, json};

const SUB: &str = "00000000-0000-0000-0000-000000000000";
const RG: &str = "aks-train-rg";
const CLUSTER: &str = "aks-train-mesh-cluster";
const ACR: &str = "srvmeshacr";

/// The scenarios share kube-system's add-on objects: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A loopback listener that counts the connections made to it.
struct Listener {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start() -> Listener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback listener");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Listener { port, connections, task }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn emulator(client: &Client) -> ArmEmulator {
    let emulator = ArmEmulator::start(Some(client.clone())).await;
    emulator.add_cluster(SUB, RG, CLUSTER, "eastus", "1.30.4");
    emulator.add_registry(SUB, RG, ACR, "eastus");
    emulator
}

/// The AKS OSM add-on sample reduced to its Azure part, as JSON to tamper with.
fn lean(name: &str, with_registry: bool) -> Value {
    let mut mi = sample("bookstore-aks-addon.yaml");
    mi.metadata.name = Some(name.into());
    mi.spec.apps.clear();
    mi.spec.namespaces.clear();
    mi.spec.ingress = None;
    mi.spec.traffic = Default::default();
    if !with_registry {
        mi.spec.registry = None;
    }
    with_client_secret(&mut mi, "azure-sp");
    mi.status = None;
    serde_json::to_value(&mi).expect("json")
}

/// Server-side applies raw JSON with strict field validation, or with field validation off
/// (server-side apply refuses fields the schema does not declare either way).
async fn apply_raw(client: &Client, value: &Value, strict: bool) -> Result<(), String> {
    let resource = ApiResource::erase::<MeshInstallation>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let params = PatchParams::apply("e2e-attacker").force();
    let params = if strict { params.validation_strict() } else { params.validation_ignore() };
    api.patch(&name, &params, &Patch::Apply(value)).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn wait_reason(client: &Client, name: &str, type_: &str, reason: &str) -> (ConditionStatus, String) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("{type_} reason {reason} on {name}"), Duration::from_secs(90), || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, type_) {
            Some((status, r, message)) if r == reason => Ok((status, message)),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn force_delete(client: &Client, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}}))).await;
    let _ = api.delete(name, &DeleteParams::default()).await;
}

fn non_token_requests(emulator: &ArmEmulator) -> usize {
    emulator.requests().iter().filter(|s| arm_emulator::path_kind(&s.path) != "token").count()
}

fn token_requests(emulator: &ArmEmulator) -> usize {
    emulator.requests().iter().filter(|s| arm_emulator::path_kind(&s.path) == "token").count()
}

async fn foreign_endpoints_and_unknown_clouds_are_refused_and_no_foreign_host_is_contacted() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let foreign = Listener::start().await;
    let emulator = emulator(&client).await;
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    let operator = operator_on_emulator(&client, &emulator).await;

    // The removed endpoint fields, pointed at the listener: each rejected on its own, naming
    // itself, whatever field validation the client asks for. (With both set, the API server
    // names whichever it meets first, which is not a stable order.)
    for field in ["armEndpoint", "authorityHost"] {
        let mut mi = lean("foreign-endpoint", false);
        mi["spec"]["azure"][field] = json!(foreign.url());
        for strict in [true, false] {
            let error = apply_raw(&client, &mi, strict).await.expect_err("a removed endpoint field is refused");
            assert!(error.contains(&format!("spec.azure.{field}")), "strict={strict}: {error}");
        }
    }

    // A cloud outside the closed list.
    let mut unknown = lean("unknown-cloud", false);
    unknown["spec"]["azure"]["cloud"] = json!(format!("https://127.0.0.1:{}", foreign.port));
    let error = apply_raw(&client, &unknown, false).await.expect_err("an unknown cloud is refused");
    assert!(error.contains("spec.azure.cloud") && error.contains("AzurePublicCloud"), "{error}");

    // The same installation without them: the operator reaches Azure only where its own settings say.
    apply_raw(&client, &lean("foreign-endpoint", false), true).await.expect("apply");
    let (status, _) = wait_reason(&client, "foreign-endpoint", "MeshReady", "Available").await;
    assert_eq!(status, ConditionStatus::True);
    eprintln!("ARM requests [foreign endpoint dropped, converged]: {:?}", emulator.counts());
    assert!(emulator.count("PUT", "managedCluster", true) == 1, "the operator used its own endpoint");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(foreign.connections(), 0, "the operator contacted the foreign endpoint");

    delete_and_wait_gone(&client, "foreign-endpoint").await;
    assert_eq!(foreign.connections(), 0, "teardown contacted the foreign endpoint");
    operator.stop().await;
}

async fn a_secret_in_another_namespace_is_never_read() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = emulator(&client).await;
    // The right client secret exists, but only in kube-system.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some("azure-sp-foreign".into()), ..Default::default() },
        data: Some([("clientSecret".to_string(), ByteString(arm_emulator::CLIENT_SECRET.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    secrets
        .patch("azure-sp-foreign", &PatchParams::apply("e2e").force(), &Patch::Apply(&secret))
        .await
        .expect("secret");
    let operator = operator_on_emulator(&client, &emulator).await;

    let mut mi = lean("foreign-secret", false);
    mi["spec"]["azure"]["credential"]["clientSecretRef"]["secretName"] = json!("azure-sp-foreign");
    mi["spec"]["azure"]["credential"]["clientSecretRef"]["secretNamespace"] = json!("kube-system");
    for strict in [true, false] {
        let error = apply_raw(&client, &mi, strict).await.expect_err("secretNamespace is refused");
        assert!(error.contains("spec.azure.credential.clientSecretRef.secretNamespace"), "{error}");
    }

    // Naming the Secret alone: it is looked up in the operator's namespace only.
    if let Some(reference) = mi["spec"]["azure"]["credential"]["clientSecretRef"].as_object_mut() {
        reference.remove("secretNamespace");
    }
    apply_raw(&client, &mi, true).await.expect("apply");
    let (_, message) = wait_reason(&client, "foreign-secret", "MeshReady", "AzureConfigInvalid").await;
    assert!(
        message.contains("spec.azure.credential.clientSecretRef")
            && message.contains("mesh-operator-system/azure-sp-foreign")
            && message.contains("does not exist"),
        "{message}"
    );
    wait_reason(&client, "foreign-secret", "Degraded", "AzureConfigInvalid").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(token_requests(&emulator), 0, "the kube-system Secret was read and used: {:?}", emulator.counts());
    assert_eq!(non_token_requests(&emulator), 0, "{:?}", emulator.counts());
    operator.stop().await;
    force_delete(&client, "foreign-secret").await;
    let _ = secrets.delete("azure-sp-foreign", &DeleteParams::default()).await;
}

async fn url_injecting_names_are_rejected_at_admission_naming_the_field() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    mesh_operator::controller::ensure_crd(&client, true).await.expect("CRD installs");
    let cases: [(&str, &[&str], &str); 5] = [
        ("rg/../x?y", &["registry", "resourceGroup"], "spec.registry.resourceGroup"),
        ("rg?api-version=1", &["azure", "resourceGroup"], "spec.azure.resourceGroup"),
        ("c/../../x", &["azure", "clusterName"], "spec.azure.clusterName"),
        ("acr/x#y", &["registry", "acr"], "spec.registry.acr"),
        ("../roleAssignments", &["azure", "subscriptionId"], "spec.azure.subscriptionId"),
    ];
    for (value, path, field) in cases {
        let mut mi = lean("url-injection", true);
        mi["spec"][path[0]][path[1]] = json!(value);
        let error = apply_raw(&client, &mi, false).await.expect_err(field);
        assert!(error.contains(field), "{field} = {value:?}: {error}");
        eprintln!("rejected {field} = {value:?}: {error}");
    }
    let api: Api<MeshInstallation> = Api::all(client.clone());
    assert!(api.get_opt("url-injection").await.expect("read").is_none(), "nothing was stored");
}

async fn a_huge_retry_after_neither_crashes_nor_stalls_the_operator() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = emulator(&client).await;
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    let throttled =
        FaultKind::Status { status: 429, code: "TooManyRequests".into(), retry_after: Some(1_000_000_000_000) };
    emulator.inject("GET", "/managedclusters/", throttled, 1);
    let operator = operator_on_emulator(&client, &emulator).await;
    let mi = lean("retry-after", false);
    apply_raw(&client, &mi, true).await.expect("apply");
    let (status, message) = wait_reason(&client, "retry-after", "MeshReady", "TooManyRequests").await;
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("retrying"), "{message}");
    assert_eq!(emulator.pending_faults(), 0);

    // The operator is alive and not asleep for 31,000 years: a spec change converges at once.
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let mut typed: MeshInstallation = serde_json::from_value(mi).expect("typed");
    typed.spec.teardown.delete_namespaces = true;
    apply(&client, &typed).await;
    let (status, _) = wait_reason(&client, "retry-after", "MeshReady", "Available").await;
    assert_eq!(status, ConditionStatus::True);
    let stored = api.get("retry-after").await.expect("mi");
    assert!(stored.status.is_some_and(|s| s.azure_operations.is_empty()));
    eprintln!("ARM requests [Retry-After 1e12]: {:?}", emulator.counts());
    delete_and_wait_gone(&client, "retry-after").await;
    operator.stop().await;
}

async fn another_cluster_than_the_managed_one_is_refused_and_its_teardown_needs_the_skip_annotation() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = emulator(&client).await;
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    let managed = arm_emulator::cluster_id(SUB, RG, "the-managed-cluster");
    let mut settings = emulator_settings(test_settings(Duration::from_secs(300)), &emulator);
    settings.azure.cluster_id = Some(managed.clone());
    let operator = OperatorHandle::start(client.clone(), settings).await;

    apply_raw(&client, &lean("other-cluster", false), true).await.expect("apply");
    let (_, message) = wait_reason(&client, "other-cluster", "MeshReady", "ClusterNotManaged").await;
    assert!(message.contains(CLUSTER) && message.contains(&managed), "{message}");
    wait_reason(&client, "other-cluster", "Degraded", "ClusterNotManaged").await;

    // Deleting it cannot disable an add-on on a cluster it may not touch: the teardown says so...
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.delete("other-cluster", &DeleteParams::default()).await.expect("delete");
    let (_, message) = wait_reason(&client, "other-cluster", "Degraded", "AzureTeardownBlocked").await;
    assert!(message.contains("ClusterNotManaged") || message.contains(&managed), "{message}");
    assert!(message.contains("meshoperator.dev/skip-azure-teardown"), "{message}");
    // ...and finishes once a person says to skip the Azure step.
    let skip = json!({"metadata": {"annotations": {"meshoperator.dev/skip-azure-teardown": "true"}}});
    api.patch("other-cluster", &PatchParams::default(), &Patch::Merge(&skip)).await.expect("annotate");
    wait_gone(&client, "other-cluster").await;
    assert_eq!(emulator.requests().len(), 0, "nothing was sent to Azure: {:?}", emulator.counts());
    operator.stop().await;
}

async fn a_teardown_without_its_secret_reports_it_and_finishes_with_the_skip_annotation() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = emulator(&client).await;
    put_secret(&client, "azure-sp-teardown", arm_emulator::CLIENT_SECRET).await;
    let operator = operator_on_emulator(&client, &emulator).await;
    let mut mi = lean("lost-secret", false);
    mi["spec"]["azure"]["credential"]["clientSecretRef"]["secretName"] = json!("azure-sp-teardown");
    apply_raw(&client, &mi, true).await.expect("apply");
    wait_reason(&client, "lost-secret", "MeshReady", "Available").await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "mesh-operator-system");
    secrets.delete("azure-sp-teardown", &DeleteParams::default()).await.expect("delete the Secret");
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.delete("lost-secret", &DeleteParams::default()).await.expect("delete");
    let (_, message) = wait_reason(&client, "lost-secret", "Degraded", "AzureTeardownBlocked").await;
    assert!(
        message.contains("mesh-operator-system/azure-sp-teardown") && message.contains("does not exist"),
        "{message}"
    );
    let skip = json!({"metadata": {"annotations": {"meshoperator.dev/skip-azure-teardown": "true"}}});
    api.patch("lost-secret", &PatchParams::default(), &Patch::Merge(&skip)).await.expect("annotate");
    wait_gone(&client, "lost-secret").await;
    // The Azure step was skipped: the add-on is still enabled.
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["openServiceMesh"]["enabled"], true);
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1, "{:?}", emulator.counts());
    operator.stop().await;
}

async fn a_stale_operation_url_expires_and_the_cluster_is_read_again_without_a_second_write() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = emulator(&client).await;
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    // Every poll of the stored operation is answered 404 (as ARM does once it forgot it).
    let gone = FaultKind::Status { status: 404, code: "NotFound".into(), retry_after: None };
    emulator.inject("GET", "/operations/", gone, 100);
    // The operation outlives the three failed polls: when the operator gives up on its URL, the
    // cluster already says "enabled" but is still Updating, and the add-on's objects are not there
    // yet. Taking that for done would wait for CRDs no event announces.
    emulator.set_operation_duration(Duration::from_secs(15));
    let operator = operator_on_emulator(&client, &emulator).await;
    apply_raw(&client, &lean("stale-operation", false), true).await.expect("apply");
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let done = wait::until("MeshReady after the operation expired", CONVERGE, || async {
        let mi = api.get("stale-operation").await.map_err(|e| e.to_string())?;
        let ops = mi.status.as_ref().map(|s| s.azure_operations.clone()).unwrap_or_default();
        match condition(&mi, "MeshReady") {
            Some((ConditionStatus::True, _, _)) if ops.is_empty() => Ok(mi),
            other => Err(format!("{other:?} {ops:?}")),
        }
    })
    .await;
    assert!(done.status.is_some_and(|s| s.azure_operations.is_empty()));
    eprintln!("ARM requests [stale operation URL]: {:?}", emulator.counts());
    assert_eq!(emulator.count("GET", "clusterOperation", false), 3, "given up after 3 failed polls");
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1, "no second write: {:?}", emulator.counts());
    emulator.clear_faults();
    delete_and_wait_gone(&client, "stale-operation").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    foreign_endpoints_and_unknown_clouds_are_refused_and_no_foreign_host_is_contacted: [ArmEmulator, SimulatedPods, InProcessOperator],
    a_secret_in_another_namespace_is_never_read: [ArmEmulator, SimulatedPods, InProcessOperator],
    url_injecting_names_are_rejected_at_admission_naming_the_field: [],
    a_huge_retry_after_neither_crashes_nor_stalls_the_operator: [ArmEmulator, SimulatedPods, InProcessOperator],
    another_cluster_than_the_managed_one_is_refused_and_its_teardown_needs_the_skip_annotation: [ArmEmulator, SimulatedPods, InProcessOperator],
    a_teardown_without_its_secret_reports_it_and_finishes_with_the_skip_annotation: [ArmEmulator, SimulatedPods, InProcessOperator],
    a_stale_operation_url_expires_and_the_cluster_is_read_again_without_a_second_write: [ArmEmulator, SimulatedPods, InProcessOperator],
}
