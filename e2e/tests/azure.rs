//! The AKS add-ons and ACR import through Azure Resource Manager, end to end: the operator runs
//! in-process against the local control plane and talks to the ARM emulator on loopback (HTTPS,
//! client-secret credential against the emulator's token endpoint). Every scenario counts the
//! emulator's requests. `live_azure_*` runs against real Azure when its environment is set.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mesh_crds::{AzureCredential, ConditionStatus, MeshInstallation, MeshProvider};
use mesh_e2e::arm_emulator::{self, FaultKind};
use mesh_e2e::azure_suite::*;
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{
    CONVERGE, apply, delete_and_wait_gone, operator_on_emulator, put_secret, sample, with_client_secret,
};
use mesh_e2e::{TestCluster, wait};
use mesh_provisioner::labels;
use serde_json::json;

/// Scenarios share cluster-scoped names (kube-system add-on objects, CRDs); one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bookstore_aks_addon_converges_with_one_put_and_one_import_per_image_then_stays_quiet() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    let operator = operator_on_emulator(&client, &emulator).await;

    let mut mi = sample("bookstore-aks-addon.yaml");
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    let ready = wait_converged(&client, "bookstore-aks", &mut seen).await;
    print_counts("bookstore-aks-addon converge", &emulator);

    // Exactly one PUT (the add-on), exactly one import per image.
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1, "{:?}", emulator.counts());
    assert_eq!(emulator.count("POST", "importImage", false), 4, "{:?}", emulator.counts());
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["openServiceMesh"], json!({"enabled": true, "config": {}}));
    assert_eq!(cluster_now["properties"]["provisioningState"], "Succeeded");
    assert_eq!(cluster_now["tags"]["environment"], "test", "the rest of the cluster is kept");
    let tags = emulator.registry_tags(SUB, RG, ACR);
    assert_eq!(
        tags,
        ["bookbuyer:v0.11.1", "bookstore:v0.11.1", "bookthief:v0.11.1", "bookwarehouse:v0.11.1"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let status = ready.status.clone().expect("status");
    assert_eq!(status.imported_images.len(), 4, "{:?}", status.imported_images);
    assert!(status.azure_operations.is_empty(), "no operation left: {:?}", status.azure_operations);

    // Workloads run the ACR images; others keep theirs.
    assert_eq!(image_of(&client, "bookbuyer", "bookbuyer").await, "srvmeshacr.azurecr.io/bookbuyer:v0.11.1");
    assert_eq!(image_of(&client, "bookstore", "bookstore-v2").await, "srvmeshacr.azurecr.io/bookstore:v0.11.1");
    assert_eq!(
        image_of(&client, "bookwarehouse", "bookwarehouse").await,
        "srvmeshacr.azurecr.io/bookwarehouse:v0.11.1"
    );
    assert_eq!(image_of(&client, "curl", "curl").await, "curlimages/curl:8.10.1");

    // The add-on's MeshConfig in kube-system carries the spec; namespaces are enrolled as self-hosted.
    let meshconfigs: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(client.clone(), "kube-system");
    let meshconfig = meshconfigs.get("osm-mesh-config").await.expect("osm-mesh-config");
    let traffic = meshconfig.spec.traffic.clone().expect("traffic");
    assert_eq!(traffic.enable_permissive_traffic_policy_mode, Some(false));
    assert_eq!(traffic.enable_egress, Some(true));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces.get("bookstore").await.expect("bookstore namespace");
    assert_eq!(ns.labels().get(labels::OSM_MONITORED_BY).map(String::as_str), Some("osm"));

    // A second reconcile: reads, but zero ARM writes.
    emulator.reset_counts();
    resync(&client, &emulator, "bookstore-aks").await;
    print_counts("bookstore-aks-addon second reconcile", &emulator);
    assert_eq!(emulator.writes(), 0, "a steady installation makes no ARM write: {:?}", emulator.counts());

    // Teardown: the add-on is disabled, and what AKS leaves behind is removed.
    emulator.reset_counts();
    delete_and_wait_gone(&client, "bookstore-aks").await;
    print_counts("bookstore-aks-addon teardown", &emulator);
    assert_eq!(emulator.count("PUT", "managedCluster", true), 1);
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["openServiceMesh"]["enabled"], false);
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(mutating.get_opt("aks-osm-webhook-osm").await.expect("read").is_none());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    assert!(validating.get_opt("aks-osm-validator-mesh-osm").await.expect("read").is_none());
    assert_osm_crds_gone(&client).await;
    operator.stop().await;
}

async fn transient_faults_still_converge_without_duplicate_writes() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    // A 429 burst longer than the pipeline's retries (3 attempts for each of the 4 concurrent
    // imports), 500s, a failed operation, dropped connections.
    let throttled = FaultKind::Status { status: 429, code: "TooManyRequests".into(), retry_after: Some(1) };
    emulator.inject("POST", "/importimage", throttled, 12);
    let broken = FaultKind::Status { status: 500, code: "InternalServerError".into(), retry_after: None };
    emulator.inject("PUT", "/managedclusters/", broken, 3);
    emulator.inject("PUT", "/managedclusters/", FaultKind::FailOperation { code: "InternalOperationError".into() }, 1);
    emulator.inject("GET", "/managedclusters/", FaultKind::Drop, 1);
    emulator.inject("POST", "/importimage", FaultKind::Drop, 1);
    emulator.inject("GET", "/operationresults/", FaultKind::Drop, 1);

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut mi = lean_aks("faults");
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    let ready = wait_converged(&client, "faults", &mut seen).await;
    print_counts("faults converge", &emulator);
    eprintln!("transient conditions seen: {seen:?}");

    assert_eq!(emulator.pending_faults(), 0, "every fault was hit");
    // Writes acted on: the failed enable, then the one that succeeded; one import per image.
    assert_eq!(emulator.count("PUT", "managedCluster", true), 2, "{:?}", emulator.counts());
    assert_eq!(emulator.count("POST", "importImage", true), 4, "{:?}", emulator.counts());
    assert_eq!(emulator.registry_tags(SUB, RG, ACR).len(), 4);
    assert_eq!(ready.status.as_ref().map(|s| s.imported_images.len()), Some(4));
    // The conditions showed the transient errors meanwhile.
    let reasons: BTreeSet<&str> = seen.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons.contains("TooManyRequests"), "throttling was reported: {seen:?}");
    assert!(
        reasons.contains("InternalServerError") || reasons.contains("InternalOperationError"),
        "server errors were reported: {seen:?}"
    );
    // No more writes once converged.
    emulator.reset_counts();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(emulator.writes(), 0);
    delete_and_wait_gone(&client, "faults").await;
    operator.stop().await;
}

async fn restart_during_an_operation_resumes_from_the_stored_token_without_writing_again() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    emulator.inject("PUT", "/managedclusters/", FaultKind::SlowOperation(Duration::from_secs(8)), 1);
    emulator.inject("POST", "/importimage", FaultKind::SlowOperation(Duration::from_secs(8)), 4);

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut mi = lean_aks("restart");
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let stored = wait::until("the operations to be stored in status", Duration::from_secs(60), || async {
        let mi = api.get("restart").await.map_err(|e| e.to_string())?;
        let ops = mi.status.map(|s| s.azure_operations).unwrap_or_default();
        if ops.len() == 5 { Ok(ops) } else { Err(format!("{ops:?}")) }
    })
    .await;
    assert!(stored.iter().any(|o| o.operation == "EnableOsmAddon" && o.polling_kind == "AzureAsyncOperation"));
    assert!(stored.iter().any(|o| o.operation == "ImportImage/bookbuyer:v0.11.1" && o.polling_kind == "Location"));
    operator.kill().await;
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1);
    assert_eq!(emulator.count("POST", "importImage", false), 4);

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut seen = BTreeSet::new();
    wait_converged(&client, "restart", &mut seen).await;
    print_counts("restart mid-operation", &emulator);
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1, "no second PUT: {:?}", emulator.counts());
    assert_eq!(emulator.count("POST", "importImage", false), 4, "no second import: {:?}", emulator.counts());
    assert!(emulator.count("GET", "clusterOperation", false) >= 1, "the stored operation was polled");
    assert!(emulator.count("GET", "importOperation", false) >= 4, "the stored imports were polled");
    delete_and_wait_gone(&client, "restart").await;
    operator.stop().await;
}

async fn a_concurrent_external_change_is_preserved_through_the_etag_retry() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    // Between our GET and our PUT, someone tags the cluster and enables another add-on.
    let change = json!({"tags": {"owner": "platform-team"}, "properties": {"addonProfiles": {"azurepolicy": {"enabled": true, "config": {"version": "v2"}}}}});
    emulator.inject("GET", "/managedclusters/", FaultKind::ExternalChange(change), 1);

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut mi = add_on_only("etag");
    mi.spec.registry = None;
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    wait_condition(&client, "etag", "MeshReady", CONVERGE, &mut seen).await;
    print_counts("concurrent change", &emulator);
    let requests = emulator.requests();
    let puts: Vec<u16> = requests.iter().filter(|s| s.method == "PUT").map(|s| s.status).collect();
    assert_eq!(puts, vec![412, 200], "a stale write is refused, the retry on fresh data succeeds");
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    assert_eq!(cluster_now["tags"]["owner"], "platform-team", "their tag is kept");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true, "their add-on is kept");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["openServiceMesh"]["enabled"], true);
    delete_and_wait_gone(&client, "etag").await;
    operator.stop().await;
}

async fn bad_credentials_missing_cluster_missing_registry_and_forbidden_import_each_name_the_problem() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    reset_cluster(&client).await;
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    put_secret(&client, "azure-sp-wrong", "not-the-secret").await;

    // Only Azure: no namespaces or apps, so each scenario is about its error. One emulator and
    // one operator per scenario: an operator reaches the one ARM endpoint its settings name.

    let bad_credentials = emulator(&client).await;
    let operator = operator_on_emulator(&client, &bad_credentials).await;
    let mut mi = add_on_only("bad-credentials");
    with_client_secret(&mut mi, "azure-sp-wrong");
    apply(&client, &mi).await;
    let (status, message) = wait_reason(&client, "bad-credentials", "MeshReady", "CredentialUnavailable").await;
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("AADSTS7000215") && message.contains("spec.azure.credential"), "{message}");
    assert!(
        !message.contains(arm_emulator::CLIENT_SECRET) && !message.contains("not-the-secret"),
        "no secret in status"
    );
    let (_, message) = wait_reason(&client, "bad-credentials", "ImagesImported", "CredentialUnavailable").await;
    assert!(message.contains("AADSTS7000215"), "{message}");
    wait_reason(&client, "bad-credentials", "Degraded", "CredentialUnavailable").await;
    operator.stop().await;
    force_delete(&client, "bad-credentials").await;

    let missing_cluster = emulator(&client).await;
    let operator = operator_on_emulator(&client, &missing_cluster).await;
    let mut mi = add_on_only("missing-cluster");
    mi.spec.azure.as_mut().expect("azure").cluster_name = "no-such-cluster".into();
    mi.spec.registry = None;
    apply(&client, &mi).await;
    let (_, message) = wait_reason(&client, "missing-cluster", "MeshReady", "ResourceNotFound").await;
    assert!(message.contains("no-such-cluster") && message.contains("spec.azure.clusterName"), "{message}");
    wait_reason(&client, "missing-cluster", "Degraded", "ResourceNotFound").await;
    operator.stop().await;
    force_delete(&client, "missing-cluster").await;

    let missing_registry = emulator(&client).await;
    let operator = operator_on_emulator(&client, &missing_registry).await;
    let mut mi = add_on_only("missing-registry");
    mi.spec.registry.as_mut().expect("registry").acr = "nosuchacr".into();
    apply(&client, &mi).await;
    let (_, message) = wait_reason(&client, "missing-registry", "ImagesImported", "ResourceNotFound").await;
    assert!(message.contains("nosuchacr") && message.contains("spec.registry.acr"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.stop().await;
    force_delete(&client, "missing-registry").await;

    let forbidden = emulator(&client).await;
    forbidden.forbid_imports(SUB, RG, ACR);
    let operator = operator_on_emulator(&client, &forbidden).await;
    apply(&client, &add_on_only("forbidden-import")).await;
    let (_, message) = wait_reason(&client, "forbidden-import", "ImagesImported", "AuthorizationFailed").await;
    assert!(message.contains("Container Registry Data Importer and Data Reader"), "{message}");
    wait_reason(&client, "forbidden-import", "Degraded", "AuthorizationFailed").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let forbidden_mi = api.get("forbidden-import").await.expect("mi");
    assert!(forbidden_mi.status.map(|s| s.imported_images.is_empty()).unwrap_or(true));
    operator.stop().await;
    force_delete(&client, "forbidden-import").await;

    // Nothing else changed in Azure: no write was acted on where the problem was.
    for (scenario, emulator) in [("bad credentials", &bad_credentials), ("missing cluster", &missing_cluster)] {
        print_counts(scenario, emulator);
        assert_eq!(emulator.accepted_writes(), 0, "{scenario}: {:?}", emulator.counts());
    }
    assert_eq!(bad_credentials.requests().iter().filter(|s| arm_emulator::path_kind(&s.path) != "token").count(), 0);
    for (scenario, emulator) in [("missing registry", &missing_registry), ("forbidden import", &forbidden)] {
        print_counts(scenario, emulator);
        assert_eq!(emulator.count("POST", "importImage", true), 0, "{scenario}");
        assert!(emulator.registry_tags(SUB, RG, ACR).is_empty(), "{scenario}");
        // Fatal: not retried in a loop.
        assert!(emulator.count("POST", "importImage", false) <= 4 * 2, "{scenario}: {:?}", emulator.counts());
    }
}

async fn a_leftover_fail_webhook_blocks_pod_creation_and_our_teardown_removes_it() {
    let Some(cluster) = TestCluster::get_with_admission_webhooks() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    emulator.set_webhook_failure_policy("Fail");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let check_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "webhook-check", "labels": {labels::OSM_MONITORED_BY: "osm"}}});
    namespaces.patch("webhook-check", &PatchParams::apply("e2e").force(), &Patch::Apply(&check_ns)).await.expect("ns");

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut mi = add_on_only("webhook");
    mi.spec.registry = None;
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    wait_condition(&client, "webhook", "MeshReady", CONVERGE, &mut seen).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "webhook-check");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "probe-"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    let blocked = pods.create(&PostParams::default(), &pod).await.expect_err("the Fail webhook must block pods");
    eprintln!("pod creation with the add-on's webhook in place: {blocked}");
    assert!(blocked.to_string().contains("osm-inject.k8s.io"), "{blocked}");

    // Teardown disables the add-on (AKS leaves the webhooks) and removes the leftovers.
    delete_and_wait_gone(&client, "webhook").await;
    print_counts("webhook teardown", &emulator);
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(mutating.get_opt("aks-osm-webhook-osm").await.expect("read").is_none());
    pods.create(&PostParams::default(), &pod).await.expect("pods are admitted again");
    operator.stop().await;
    let _ = namespaces.delete("webhook-check", &DeleteParams::default()).await;
}

async fn bookstore_istio_converges_on_the_emulator_choosing_the_newest_compatible_revision() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    let operator = operator_on_emulator(&client, &emulator).await;

    let mut mi = sample("bookstore-istio.yaml");
    mi.spec.mesh.istio = None; // let the operator choose from meshRevisionProfiles
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    wait_condition(&client, "bookstore-istio", "MeshReady", CONVERGE, &mut seen).await;
    wait_condition(&client, "bookstore-istio", "NamespacesReady", CONVERGE, &mut seen).await;
    // Every translated AuthorizationPolicy and HTTPRoute, and the Gateway, admitted by Istio's and
    // Gateway API's own CRDs (installed by the local control plane, nothing of ours).
    wait_condition(&client, "bookstore-istio", "TrafficReady", CONVERGE, &mut seen).await;
    let ready = wait_condition(&client, "bookstore-istio", "IngressReady", CONVERGE, &mut seen).await;
    print_counts("bookstore-istio converge", &emulator);
    eprintln!("bookstore-istio conditions: {}", conditions_text(&ready));

    assert_eq!(emulator.count("GET", "meshRevisionProfiles", false), 1, "{:?}", emulator.counts());
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1);
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    // Kubernetes 1.30: asm-1-25 is the newest revision compatible with it (asm-1-26 needs 1.31).
    assert_eq!(
        cluster_now["properties"]["serviceMeshProfile"],
        json!({"mode": "Istio", "istio": {"revisions": ["asm-1-25"]}})
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["bookstore", "bookbuyer", "bookthief", "bookwarehouse"] {
        let ns = namespaces.get(name).await.expect("namespace");
        assert_eq!(ns.labels().get(labels::ISTIO_REV).map(String::as_str), Some("asm-1-25"), "{name}");
        assert!(!ns.labels().contains_key("istio-injection"), "{name}");
        assert!(!ns.labels().contains_key(labels::OSM_MONITORED_BY), "{name}");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "aks-istio-system");
    deployments.get("istiod-asm-1-25").await.expect("istiod of the chosen revision");
    delete_and_wait_gone(&client, "bookstore-istio").await;
    operator.stop().await;
}

async fn istio_next_to_the_osm_addon_is_refused_and_migrate_from_osm_completes_after_an_interruption() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = prepare(&client).await;
    // The cluster already runs the OSM add-on (enabled by hand, as in the article).
    emulator.enable_osm_addon_now(SUB, RG, CLUSTER).await;
    let operator = operator_on_emulator(&client, &emulator).await;

    let mut mi = sample("bookstore-istio.yaml");
    mi.metadata.name = Some("migrate".into());
    mi.spec.ingress = None;
    let full_spec = mi.spec.clone();
    // mysql's volume cannot bind on simulated nodes, and the ordered restart waits for each rollout.
    mi.spec.apps.retain(|a| a.name != "mysql");
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;
    let (_, message) = wait_reason(&client, "migrate", "MeshReady", "OsmAddonEnabled").await;
    assert!(message.contains("migrateFromOsm"), "{message}");
    wait_reason(&client, "migrate", "Degraded", "OsmAddonEnabled").await;
    assert_eq!(emulator.writes(), 0, "refused: nothing written {:?}", emulator.counts());

    // Migrate; the OSM disable is slow and the operator is killed while it runs.
    emulator.inject("PUT", "/managedclusters/", FaultKind::SlowOperation(Duration::from_secs(6)), 1);
    mi.spec.mesh.migrate_from_osm = true;
    apply(&client, &mi).await;
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until("the migration to store its running operation", Duration::from_secs(60), || async {
        let mi = api.get("migrate").await.map_err(|e| e.to_string())?;
        let status = mi.status.unwrap_or_default();
        if status.osm_migration_step.as_deref() == Some("DisableOsmAddon")
            && status.azure_operations.iter().any(|o| o.operation == "DisableOsmAddon")
        {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", status.osm_migration_step, status.azure_operations))
        }
    })
    .await;
    operator.kill().await;
    assert_eq!(emulator.count("PUT", "managedCluster", false), 1);

    let operator = operator_on_emulator(&client, &emulator).await;
    let mut seen = BTreeSet::new();
    let done = wait_condition(&client, "migrate", "MeshReady", CONVERGE, &mut seen).await;
    print_counts("migrateFromOsm", &emulator);
    eprintln!("migration conditions seen: {seen:?}");
    assert_eq!(done.status.as_ref().and_then(|s| s.osm_migration_step.as_deref()), Some("Completed"));
    assert_eq!(emulator.count("PUT", "managedCluster", false), 2, "disable OSM, enable Istio: {:?}", emulator.counts());
    let cluster_now = emulator.cluster(SUB, RG, CLUSTER).expect("cluster");
    assert_eq!(cluster_now["properties"]["addonProfiles"]["openServiceMesh"]["enabled"], false);
    assert_eq!(cluster_now["properties"]["serviceMeshProfile"]["istio"]["revisions"], json!(["asm-1-25"]));
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(mutating.get_opt("aks-osm-webhook-osm").await.expect("read").is_none());
    assert_osm_crds_gone(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces.get("bookstore").await.expect("namespace");
    assert_eq!(ns.labels().get(labels::ISTIO_REV).map(String::as_str), Some("asm-1-25"));
    // Every app was restarted for the new sidecar.
    for (namespace, name) in
        [("bookwarehouse", "bookwarehouse"), ("bookstore", "bookstore"), ("bookbuyer", "bookbuyer")]
    {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let d = deployments.get(name).await.expect("deployment");
        let annotations = d.spec.and_then(|s| s.template.metadata).and_then(|m| m.annotations).unwrap_or_default();
        assert_eq!(annotations.get("meshoperator.dev/migrated-to").map(String::as_str), Some("asm-1-25"), "{name}");
    }
    let order: Vec<String> =
        mesh_operator::reconcile::azure::dependency_order(&full_spec).iter().map(|a| a.name.clone()).collect();
    eprintln!("restart order: {order:?}");
    let position = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
    assert!(position("mysql") < position("bookwarehouse") && position("bookwarehouse") < position("bookstore"));
    assert!(position("bookstore") < position("bookbuyer"));
    assert_eq!(mi.spec.mesh.provider, MeshProvider::AksIstioAddon);
    delete_and_wait_gone(&client, "migrate").await;
    operator.stop().await;
}

/// Against real Azure, opt-in: `MESH_E2E_AZURE_SUBSCRIPTION`, `MESH_E2E_AZURE_RESOURCE_GROUP`,
/// `MESH_E2E_AZURE_CLUSTER`, `MESH_E2E_AZURE_LOCATION`, `MESH_E2E_AZURE_ACR`, with the Azure CLI
/// signed in (AzureCli credential) and `E2E_PROVIDER=kubeconfig E2E_KUBECONFIG=<the AKS cluster's>`.
async fn live_azure_aks_addon_and_import() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let env = |v: &str| std::env::var(v).unwrap_or_default();
    let mut mi = lean_aks("live-azure");
    let azure = mi.spec.azure.as_mut().expect("azure");
    azure.subscription_id = env("MESH_E2E_AZURE_SUBSCRIPTION");
    azure.resource_group = env("MESH_E2E_AZURE_RESOURCE_GROUP");
    azure.cluster_name = env("MESH_E2E_AZURE_CLUSTER");
    azure.location = env("MESH_E2E_AZURE_LOCATION");
    azure.credential = AzureCredential::AzureCli(Default::default());
    mi.spec.registry.as_mut().expect("registry").acr = env("MESH_E2E_AZURE_ACR");
    mi.spec.registry.as_mut().expect("registry").mode = mesh_crds::ImportMode::Force;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    apply(&client, &mi).await;
    let mut seen = BTreeSet::new();
    wait_condition(&client, "live-azure", "ImagesImported", Duration::from_secs(900), &mut seen).await;
    wait_condition(&client, "live-azure", "MeshReady", Duration::from_secs(1800), &mut seen).await;
    delete_and_wait_gone(&client, "live-azure").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    bookstore_aks_addon_converges_with_one_put_and_one_import_per_image_then_stays_quiet: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    transient_faults_still_converge_without_duplicate_writes: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    restart_during_an_operation_resumes_from_the_stored_token_without_writing_again: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    a_concurrent_external_change_is_preserved_through_the_etag_retry: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    bad_credentials_missing_cluster_missing_registry_and_forbidden_import_each_name_the_problem: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    a_leftover_fail_webhook_blocks_pod_creation_and_our_teardown_removes_it: [ArmEmulator, OwnedCluster, SimulatedPods, InProcessOperator],
    bookstore_istio_converges_on_the_emulator_choosing_the_newest_compatible_revision: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator, IstioCrds, GatewayApiCrds],
    istio_next_to_the_osm_addon_is_refused_and_migrate_from_osm_completes_after_an_interruption: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator, IstioCrds, GatewayApiCrds],
    live_azure_aks_addon_and_import: [LiveAzure, InProcessOperator],
}
