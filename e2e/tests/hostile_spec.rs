//! A MeshInstallation read as an attacker would write it. The operator runs as its ServiceAccount
//! (bound by `deploy/install.yaml`), on a cluster whose API server keeps an audit log:
//!
//! - an app in kube-system is rejected at admission, naming the field;
//! - an app with the mesh's ServiceAccount (in the mesh's namespace), self-enrolment of the mesh's
//!   namespace and an app whose ServiceAccount is a foreign existing one are refused with a
//!   condition naming the field or object, and the workload is not applied;
//! - across all of it, the operator reads no Secret it did not create (audit log);
//! - two installations sharing the cluster, the mesh and one namespace: deleting the first leaves
//!   the second Ready with its SMI objects, and restarts nothing in the shared namespace;
//! - a full scenario (bookstore: ingress TLS, the mesh root CA) never puts a private key or
//!   certificate into the operator's debug log, its Events or the status.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation, smi};
use mesh_e2e::operator::{OperatorHandle, SERVICE_ACCOUNT, test_settings};
use mesh_e2e::scenario::{self, CONVERGE, apply, condition, delete_and_wait_gone, wait_ready};
use mesh_e2e::{TestCluster, audit, wait};
use mesh_provisioner::labels::INSTALLATION;

/// One operator and one scenario at a time: they share the cluster's mesh namespace.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Secrets (`namespace/name`) installations of this binary created.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Everything the operator logs in this binary, at debug level.
static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        // Not echoed: the e2e harness does not capture output, and debug logs would flood it.
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once for the binary (before any operator starts, so the
/// operator's own `try_init` finds it in place).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buffer.clone());
        let filter = tracing_subscriber::EnvFilter::new("info,mesh_operator=debug,mesh_provisioner=debug,kube=debug");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

async fn start(cluster: &'static TestCluster) -> (Client, OperatorHandle) {
    capture_logs();
    let admin = cluster.client().await;
    let operator =
        OperatorHandle::start_as_service_account(cluster, &admin, test_settings(Duration::from_secs(300))).await;
    (admin, operator)
}

fn installation(yaml: &str) -> MeshInstallation {
    MeshInstallation::from_yaml(yaml).expect("installation")
}

/// Waits until condition `type_` says `expected` (in its message); returns `(status, reason, message)`.
async fn wait_condition(client: &Client, name: &str, type_: &str, expected: &str) -> (ConditionStatus, String, String) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("{name}: condition {type_} mentioning {expected:?}"), CONVERGE, || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, type_) {
            Some(found) if found.2.contains(expected) => Ok(found),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn deployment_exists(client: &Client, namespace: &str, name: &str) -> bool {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("get Deployment").is_some()
}

/// Every Secret request of the operator so far: `list`/`watch` only with its own label selector,
/// `get` only in its own namespace, of a Secret that does not exist, or of one it created
/// (`created`, as `namespace/name`) — so it never reads someone else's Secret.
fn assert_no_foreign_secret_read(cluster: &TestCluster, created: &[String]) {
    let Some(log) = &cluster.audit_log else { return };
    // The log covers the whole binary: what earlier tests' installations created counts too.
    let created: Vec<String> = {
        let mut all = CREATED.lock().expect("created");
        all.extend(created.iter().cloned());
        all.extend(root_ca());
        all.clone()
    };
    let requests = audit::requests_of(log, SERVICE_ACCOUNT, 0);
    let secret_reads: Vec<&audit::Request> = requests
        .iter()
        .filter(|r| r.resource == "secrets" && matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(!secret_reads.is_empty(), "the operator read no Secret at all: is the audit log on?");
    let selector = format!("labelSelector={}%3D{}", "app.kubernetes.io%2Fmanaged-by", "mesh-operator");
    let foreign: Vec<String> = secret_reads
        .iter()
        .filter(|r| match r.verb.as_str() {
            "get" => {
                let id = format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default());
                r.namespace.as_deref() != Some(mesh_operator::manifests::NAMESPACE)
                    && r.code != 404
                    && !created.contains(&id)
            }
            _ => !r.uri.contains(&selector),
        })
        .map(|r| format!("{} {} ({})", r.verb, r.uri, r.code))
        .collect();
    assert!(foreign.is_empty(), "Secrets read that the operator did not create: {foreign:#?}");
}

/// The mesh root CA, which every self-hosted installation creates.
fn root_ca() -> Vec<String> {
    vec![format!("osm-system/{}", mesh_provisioner::osm::names::CA_BUNDLE_SECRET)]
}

async fn an_app_in_kube_system_is_rejected_at_admission() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    mesh_operator::controller::ensure_crd(&admin, true).await.expect("CRD");
    let mi = installation(
        "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: hostile-kube-system}\nspec:\n  namespaces: [{name: kube-system}]\n  apps: [{name: miner, namespace: kube-system, image: example.invalid/miner:1}]\n",
    );
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let error = api.create(&PostParams::default(), &mi).await.expect_err("must be rejected");
    assert!(error.to_string().contains("spec.apps[].namespace: kube-system"), "{error}");
    assert!(!deployment_exists(&admin, "kube-system", "miner").await);
}

async fn an_app_with_the_mesh_service_account_is_refused_naming_the_field() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let (admin, operator) = start(cluster).await;
    let mi = installation(
        "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: hostile-mesh-sa}\nspec:\n  namespaces: [{name: osm-system}]\n  apps: [{name: thief, namespace: osm-system, image: example.invalid/thief:1, serviceAccount: osm}]\n",
    );
    apply(&admin, &mi).await;
    let (status, reason, _) = wait_condition(&admin, "hostile-mesh-sa", "Degraded", "spec.apps[0].namespace").await;
    assert_eq!((status, reason.as_str()), (ConditionStatus::True, "ReservedNamespace"));
    assert!(!deployment_exists(&admin, "osm-system", "thief").await, "the workload was applied");
    assert!(scenario::managed_objects(&admin, "hostile-mesh-sa").await.is_empty(), "something was applied");
    delete_and_wait_gone(&admin, "hostile-mesh-sa").await;
    operator.stop().await;
    assert_no_foreign_secret_read(cluster, &[]);
}

async fn self_enrolment_is_refused_naming_the_field() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let (admin, operator) = start(cluster).await;
    let mi = installation(
        "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: hostile-self-enrol}\nspec:\n  mesh: {namespace: mesh-blue}\n  namespaces: [{name: shop}, {name: mesh-blue}]\n",
    );
    apply(&admin, &mi).await;
    let (status, _, message) =
        wait_condition(&admin, "hostile-self-enrol", "Degraded", "spec.namespaces[1].name").await;
    assert_eq!(status, ConditionStatus::True);
    assert!(message.contains("namespace mesh-blue is reserved"), "{message}");
    assert!(scenario::managed_objects(&admin, "hostile-self-enrol").await.is_empty(), "something was applied");
    delete_and_wait_gone(&admin, "hostile-self-enrol").await;
    operator.stop().await;
}

async fn an_app_with_a_foreign_service_account_is_not_run() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let (admin, operator) = start(cluster).await;
    // Someone else's ServiceAccount, maybe bound to powerful roles.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "victim"}});
    namespaces.patch("victim", &PatchParams::apply("e2e").force(), &Patch::Apply(&ns)).await.expect("namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "victim");
    let account = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}});
    accounts.patch("deployer", &PatchParams::apply("e2e").force(), &Patch::Apply(&account)).await.expect("SA");

    let mi = installation(
        "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: hostile-foreign-sa}\nspec:\n  namespaces: [{name: victim}]\n  apps:\n  - {name: thief, namespace: victim, image: example.invalid/thief:1, serviceAccount: deployer}\n  - {name: honest, namespace: victim, image: example.invalid/honest:1}\n",
    );
    apply(&admin, &mi).await;
    let (status, reason, message) =
        wait_condition(&admin, "hostile-foreign-sa", "AppsReady", "ServiceAccount/victim/deployer").await;
    assert_eq!((status, reason.as_str()), (ConditionStatus::False, "Conflict"), "{message}");
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let status = serde_json::to_string(&api.get("hostile-foreign-sa").await.expect("get").status).expect("json");
    assert!(status.contains("spec.apps[0] (victim/thief): its workload is not applied"), "{status}");
    // The other app runs; the thief's workload never existed.
    wait::until("the honest app's Deployment", CONVERGE, || async {
        if deployment_exists(&admin, "victim", "honest").await { Ok(()) } else { Err("missing".to_string()) }
    })
    .await;
    assert!(!deployment_exists(&admin, "victim", "thief").await, "the workload was applied");
    let account = accounts.get("deployer").await.expect("the foreign ServiceAccount");
    assert!(account.labels().get(mesh_provisioner::labels::INSTALLATION).is_none(), "it was taken over");
    delete_and_wait_gone(&admin, "hostile-foreign-sa").await;
    assert!(accounts.get_opt("deployer").await.expect("get").is_some(), "teardown deleted a foreign object");
    operator.stop().await;
    assert_no_foreign_secret_read(cluster, &[]);
}

const SHARED_A: &str = r#"
apiVersion: meshoperator.dev/v1alpha1
kind: MeshInstallation
metadata: {name: shared-a}
spec:
  namespaces: [{name: shared}, {name: only-a}]
  apps:
  - {name: a-web, namespace: shared, image: example.invalid/a-web:1, port: 8080}
  - {name: a-client, namespace: only-a, image: example.invalid/a-client:1}
"#;

const SHARED_B: &str = r#"
apiVersion: meshoperator.dev/v1alpha1
kind: MeshInstallation
metadata: {name: shared-b}
spec:
  namespaces: [{name: shared}]
  apps:
  - {name: b-web, namespace: shared, image: example.invalid/b-web:1, port: 8080}
  - {name: b-client, namespace: shared, image: example.invalid/b-client:1}
  traffic:
    access:
    - name: b-client-to-b-web
      namespace: shared
      destination: b-web
      routeGroup: b-web-routes
      sources: [{name: b-client, namespace: shared}]
      httpRoutes: [{name: all, pathRegex: "/.*", methods: [GET]}]
"#;

/// `(name, generation, restart annotation)` of every Deployment in `namespace`.
async fn rollouts(client: &Client, namespace: &str) -> Vec<(String, Option<i64>, Option<String>)> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut found: Vec<_> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|d| {
            let restarted = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(mesh_provisioner::labels::RESTARTED_AT).cloned());
            (d.name_any(), d.metadata.generation, restarted)
        })
        .collect();
    found.sort();
    found
}

async fn two_installations_share_a_namespace_and_deleting_one_leaves_the_other_whole() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let (admin, operator) = start(cluster).await;
    let a = installation(SHARED_A);
    let b = installation(SHARED_B);
    apply(&admin, &a).await;
    wait_ready(&admin, "shared-a").await;
    // Someone's own workload in the shared namespace: no teardown may restart it while B enrols it.
    let bystander: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bystander", "namespace": "shared"},
        "spec": {"selector": {"matchLabels": {"app": "bystander"}}, "template": {
            "metadata": {"labels": {"app": "bystander"}},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/bystander:1"}]}}}
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "shared");
    deployments.create(&PostParams::default(), &bystander).await.expect("bystander");
    apply(&admin, &b).await;
    wait_ready(&admin, "shared-b").await;

    let targets: Api<smi::TrafficTarget> = Api::namespaced(admin.clone(), "shared");
    let b_targets: Vec<String> =
        targets.list(&ListParams::default()).await.expect("list").items.iter().map(|t| t.name_any()).collect();
    assert!(!b_targets.is_empty(), "B has SMI objects");
    let before = rollouts(&admin, "shared").await;

    delete_and_wait_gone(&admin, "shared-a").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_ready(&admin, "shared-b").await;

    // B's SMI objects, the SMI CRDs and the shared namespace's enrolment are intact.
    let after_targets: Vec<String> =
        targets.list(&ListParams::default()).await.expect("list").items.iter().map(|t| t.name_any()).collect();
    assert_eq!(after_targets, b_targets, "B's TrafficTargets changed");
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        let crd = crds.get_opt(&name).await.expect("get CRD").unwrap_or_else(|| panic!("CRD {name} was deleted"));
        assert!(crd.metadata.deletion_timestamp.is_none(), "CRD {name} is being deleted");
    }
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let shared = namespaces.get("shared").await.expect("shared namespace");
    assert_eq!(
        shared.labels().get(mesh_provisioner::labels::OSM_MONITORED_BY).map(String::as_str),
        Some("osm"),
        "the shared namespace was un-enrolled"
    );
    // What A handed over is B's, and the API server says one of our managers made it so.
    let handed_over = std::iter::once(shared.metadata.clone())
        .chain(crds.list(&ListParams::default()).await.expect("CRDs").items.into_iter().map(|crd| crd.metadata))
        .filter(|meta| meta.labels.as_ref().and_then(|l| l.get(INSTALLATION)).is_some_and(|i| i == "shared-b"));
    for meta in handed_over {
        let managers = installation_label_managers(&meta);
        assert!(
            !managers.is_empty() && managers.iter().all(|m| m.starts_with("mesh-operator/")),
            "{:?}: its {INSTALLATION} label is managed by {managers:?}",
            meta.name
        );
    }
    // Nothing in the shared namespace was restarted; A's own app is gone.
    let mut expected = before.clone();
    expected.retain(|(name, _, _)| name != "a-web");
    assert_eq!(rollouts(&admin, "shared").await, expected, "a workload in the shared namespace was restarted");
    // A's namespace of its own was un-enrolled and its workloads restarted as usual.
    let only_a = namespaces.get("only-a").await.expect("only-a");
    assert!(only_a.labels().get(mesh_provisioner::labels::OSM_MONITORED_BY).is_none(), "only-a is still enrolled");

    delete_and_wait_gone(&admin, "shared-b").await;
    for name in mesh_crds::generate::osm_crd_names() {
        wait::until(&format!("CRD {name} to go with the last installation"), CONVERGE, || async {
            match crds.get_opt(&name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        })
        .await;
    }
    let _ = deployments.delete("bystander", &Default::default()).await;
    operator.stop().await;
    assert_no_foreign_secret_read(cluster, &[]);
}

/// The field managers owning `meta`'s installation label: who set it, as
/// `kubectl get --show-managed-fields` tells it.
fn installation_label_managers(meta: &ObjectMeta) -> Vec<String> {
    let label = format!("/f:metadata/f:labels/f:{}", INSTALLATION.replace('~', "~0").replace('/', "~1"));
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.fields_v1.as_ref().is_some_and(|fields| fields.0.pointer(&label).is_some()))
        .map(|entry| entry.manager.clone().unwrap_or_default())
        .collect()
}

/// Every string of at least 24 characters in `secret`'s data that would betray it: the base64 of
/// each value, and each line of its PEM bodies.
fn secret_fingerprints(secret: &Secret) -> Vec<String> {
    use base64::Engine;
    let mut prints = Vec::new();
    for value in secret.data.iter().flat_map(|d| d.values()) {
        prints.push(base64::engine::general_purpose::STANDARD.encode(&value.0));
        let text = String::from_utf8_lossy(&value.0);
        prints.extend(text.lines().filter(|l| l.len() >= 24 && !l.starts_with("-----")).map(str::to_string));
    }
    prints.retain(|p| p.len() >= 24);
    prints
}

async fn no_key_or_certificate_reaches_logs_events_or_status() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let log = capture_logs();
    let (admin, operator) = start(cluster).await;
    let mi = scenario::sample("bookstore.yaml");
    apply(&admin, &mi).await;
    wait_ready(&admin, "bookstore").await;
    // An edit, so the apply layer's "updating" lines run too.
    let mut edited = mi.clone();
    edited.spec.traffic.splits[0].backends[0].weight = 0;
    edited.spec.traffic.splits[0].backends[1].weight = 100;
    apply(&admin, &edited).await;
    wait_ready(&admin, "bookstore").await;

    // The generated Secrets: the mesh root CA, the ingress TLS and webhook certificates.
    let secrets: Api<Secret> = Api::all(admin.clone());
    let ours = secrets
        .list(&ListParams::default().labels(&mesh_provisioner::labels::installation_selector("bookstore")))
        .await
        .expect("list Secrets");
    let names: Vec<String> =
        ours.items.iter().map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())).collect();
    assert!(names.iter().any(|n| n.ends_with("/osm-tls-secret")), "no ingress TLS Secret: {names:?}");
    let fingerprints: Vec<String> = ours.items.iter().flat_map(secret_fingerprints).collect();
    let ca = secrets.list(&ListParams::default().fields("metadata.name=osm-ca-bundle")).await.expect("CA");
    let fingerprints: Vec<String> =
        fingerprints.into_iter().chain(ca.items.iter().flat_map(secret_fingerprints)).collect();
    assert!(fingerprints.len() >= 6, "too few key and certificate fingerprints: {}", fingerprints.len());

    let logged = String::from_utf8_lossy(&log.lock().expect("log").clone()).to_string();
    assert!(logged.contains("bookstore"), "the operator's log was not captured");
    let events: Api<Event> = Api::all(admin.clone());
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.expect("events").items).expect("json");
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let status = serde_json::to_string(&api.get("bookstore").await.expect("get").status).expect("json");
    for (place, text) in [("log", &logged), ("Events", &events), ("status", &status)] {
        let leaked: Vec<&String> = fingerprints.iter().filter(|p| text.contains(p.as_str())).collect();
        assert!(leaked.is_empty(), "{place} contains key or certificate material: {leaked:?}");
        assert!(!text.contains("PRIVATE KEY"), "{place} mentions a PRIVATE KEY block");
    }
    eprintln!(
        "log scan: {} bytes of debug log, {} bytes of Events, {} fingerprints of {} Secrets",
        logged.len(),
        events.len(),
        fingerprints.len(),
        ours.items.len() + ca.items.len()
    );
    delete_and_wait_gone(&admin, "bookstore").await;
    operator.stop().await;
    assert_no_foreign_secret_read(cluster, &names);
}

mesh_e2e::e2e_main! {
    an_app_in_kube_system_is_rejected_at_admission: [],
    an_app_with_the_mesh_service_account_is_refused_naming_the_field: [InProcessOperator, AuditLog],
    self_enrolment_is_refused_naming_the_field: [InProcessOperator],
    an_app_with_a_foreign_service_account_is_not_run: [InProcessOperator, AuditLog],
    two_installations_share_a_namespace_and_deleting_one_leaves_the_other_whole: [SimulatedPods, InProcessOperator, AuditLog],
    no_key_or_certificate_reaches_logs_events_or_status: [SimulatedPods, InProcessOperator, AuditLog],
}
