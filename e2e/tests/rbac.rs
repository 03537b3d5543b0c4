//! The operator's RBAC, proven on the local control plane: `deploy/install.yaml` passes a server
//! dry run; the operator, authenticated as its ServiceAccount (impersonation) and bound only by the
//! roles in `deploy/install.yaml`, runs the whole bookstore scenario (apply, weight edit, teardown)
//! on OSM's real control plane (built into the local image store by `make cluster`; the API server
//! calls OSM's real injector, as in the README's manual steps), enrolling for metrics the app pods
//! that injector really injected;
//! with one rule removed it fails with a Forbidden naming that rule; and `meshctl install` /
//! `meshctl uninstall` apply and remove the manifests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation, smi};
use mesh_e2e::operator::{SERVICE_ACCOUNT, service_account_client, test_settings};
use mesh_e2e::scenario::CONVERGE;
use mesh_e2e::{TestCluster, audit, scenario, wait};
use mesh_operator::controller::{self, LeaderElection};
use mesh_operator::manifests::workload_identity::WorkloadIdentity;
use mesh_operator::manifests::{LEASE_NAME, NAME, NAMESPACE};
use mesh_operator::meshctl::install::{self, INSTALL_YAML, InstallError, InstallOptions, UninstallOptions};
use mesh_operator::metrics::Metrics;
use mesh_provisioner::labels;
use tokio::sync::watch;

/// Two operators in one cluster would fight, and the tests rewrite the same roles: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sample(name: &str) -> MeshInstallation {
    let path = format!("{}/../samples/{name}", env!("CARGO_MANIFEST_DIR"));
    MeshInstallation::from_yaml(&std::fs::read_to_string(&path).expect("sample")).expect("sample parses")
}

fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map(|t| t.kind.as_str()).unwrap_or_default()
}

/// The objects of `deploy/install.yaml` (as embedded in meshctl; a unit test keeps it equal to the code).
fn install_objects() -> Vec<DynamicObject> {
    install::objects(INSTALL_YAML).expect("install.yaml parses")
}

/// Removes the ClusterRole rule for `group`/`resource`; panics when there is none.
fn without_rule(objects: &mut [DynamicObject], group: &str, resource: &str) {
    let role = objects.iter_mut().find(|o| kind_of(o) == "ClusterRole").expect("ClusterRole");
    let rules = role.data["rules"].as_array_mut().expect("rules");
    let before = rules.len();
    rules.retain(|rule| !(rule["apiGroups"][0] == group && rule["resources"][0] == resource));
    assert_eq!(rules.len(), before - 1, "install.yaml has exactly one rule for {group}/{resource}");
}

/// Removes one verb from the ClusterRole rule for `group`/`resource`; panics when it has none.
fn without_verb(objects: &mut [DynamicObject], group: &str, resource: &str, verb: &str) {
    let role = objects.iter_mut().find(|o| kind_of(o) == "ClusterRole").expect("ClusterRole");
    let rules = role.data["rules"].as_array_mut().expect("rules");
    let rule = rules
        .iter_mut()
        .find(|rule| rule["apiGroups"][0] == group && rule["resources"][0] == resource)
        .expect("a rule for the resource");
    let verbs = rule["verbs"].as_array_mut().expect("verbs");
    let before = verbs.len();
    verbs.retain(|v| v != verb);
    assert_eq!(verbs.len(), before - 1, "the rule for {group}/{resource} grants {verb}");
}

/// What to take out of the ClusterRole.
#[derive(Clone, Copy)]
enum Drop<'a> {
    Nothing,
    Rule(&'a str, &'a str),
    Verb(&'a str, &'a str, &'a str),
}

/// Applies the CRD, namespace, ServiceAccount, roles and bindings of install.yaml (not the
/// Deployment: no image runs here), optionally without one ClusterRole rule or verb.
async fn apply_rbac(admin: &Client, drop: Drop<'_>) {
    let mut objects: Vec<DynamicObject> =
        install_objects().into_iter().filter(|o| kind_of(o) != "Deployment").collect();
    match drop {
        Drop::Nothing => {}
        Drop::Rule(group, resource) => without_rule(&mut objects, group, resource),
        Drop::Verb(group, resource, verb) => without_verb(&mut objects, group, resource, verb),
    }
    let mut out = Vec::new();
    install::apply_objects(admin, &objects, false, &mut out).await.expect("apply install.yaml's RBAC");
    controller::ensure_crd(admin, true).await.expect("the CRD is Established");
}

/// Whether the ServiceAccount may `verb` `group`/`resource` cluster-wide, as the API server decides.
async fn allowed(admin: &Client, verb: &str, group: &str, resource: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(SERVICE_ACCOUNT.to_string()),
            groups: Some(vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{NAMESPACE}")]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let answer = api.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

/// Waits until the RBAC authorizer sees the roles as applied.
async fn wait_authorized(admin: &Client, verb: &str, group: &str, resource: &str, expected: bool) {
    wait::until(
        &format!("{verb} {group}/{resource} to be allowed={expected} for the ServiceAccount"),
        CONVERGE,
        || async {
            if allowed(admin, verb, group, resource).await == expected {
                Ok(())
            } else {
                Err(format!("allowed={}", !expected))
            }
        },
    )
    .await;
}

async fn apply_mi(admin: &Client, mi: &MeshInstallation) {
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let mut mi = mi.clone();
    mi.metadata.managed_fields = None;
    mi.metadata.resource_version = None;
    api.patch(&mi.name_any(), &PatchParams::apply("e2e").force(), &Patch::Apply(&mi))
        .await
        .expect("apply MeshInstallation");
}

fn ready(mi: &MeshInstallation) -> Result<(), String> {
    let status = mi.status.as_ref();
    let condition = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match condition {
        Some(c)
            if c.status == ConditionStatus::True
                && status.and_then(|s| s.observed_generation) == mi.metadata.generation =>
        {
            Ok(())
        }
        _ => Err(format!("conditions: {:?}", status.map(|s| &s.conditions))),
    }
}

/// Every object carrying the installation label, as `Kind/ns/name` (read as admin).
async fn labelled_objects(admin: &Client, installation: &str) -> Vec<String> {
    let selector = labels::installation_selector(installation);
    let mut found = Vec::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &kind.resource);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for o in list.items {
                found.push(format!("{}/{}/{}", kind.resource.kind, o.namespace().unwrap_or_default(), o.name_any()));
            }
        }
    }
    found
}

/// Removes every MeshInstallation without a teardown (a failed test may leave one behind, with a
/// finalizer no operator will remove).
async fn forget_installations(admin: &Client) {
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
    for mi in list.items {
        let _ = api.patch(&mi.name_any(), &PatchParams::default(), &Patch::Merge(&no_finalizers)).await;
        let _ = api.delete(&mi.name_any(), &DeleteParams::default()).await;
    }
}

async fn install_yaml_passes_a_server_side_dry_run() {
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    let objects = install_objects();
    // As `kubectl apply --dry-run=server`, the namespace must exist for the namespaced objects.
    let namespace: Vec<DynamicObject> = objects.iter().filter(|o| kind_of(o) == "Namespace").cloned().collect();
    let mut out = Vec::new();
    install::apply_objects(&admin, &namespace, false, &mut out).await.expect("create the namespace");
    install::apply_objects(&admin, &objects, true, &mut out)
        .await
        .expect("every object of install.yaml passes a server dry run");
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(out.matches("validated (server dry run)").count(), objects.len(), "{out}");
}

async fn operator_as_its_service_account_runs_the_bookstore_scenario() {
    mesh_e2e::local_images::ensure_osm_images().expect("OSM's images in the local image store");
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    apply_rbac(&admin, Drop::Nothing).await;
    wait_authorized(&admin, "list", "apps", "deployments", true).await;
    wait_authorized(&admin, "patch", "", "pods", true).await;
    let client = service_account_client(cluster).await;

    // The impersonated client really is the ServiceAccount: what the roles do not grant is refused.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let refused =
        volumes.list(&ListParams::default()).await.expect_err("PersistentVolumes are not the operator's business");
    assert!(refused.to_string().contains("forbidden"), "{refused}");

    // From here on, every request of the ServiceAccount is the operator's.
    let since = cluster.audit_log.as_deref().map(audit::mark).unwrap_or_default();
    // The operator as deployed: the CRD must already be there (no --install-crds), leader election on.
    controller::ensure_crd(&client, false).await.expect("the ServiceAccount can read the CRD");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let election = LeaderElection {
        namespace: NAMESPACE.to_string(),
        lease_name: LEASE_NAME.to_string(),
        identity: "e2e-rbac".to_string(),
    };
    let operator = tokio::spawn(controller::run(
        client.clone(),
        test_settings(Duration::from_secs(300)),
        Some(election),
        async move {
            let _ = stop_rx.await;
        },
        Some(ready_tx),
        Arc::new(Metrics::default()),
    ));
    tokio::time::timeout(CONVERGE, ready_rx.wait_for(|ready| *ready))
        .await
        .expect("caches sync")
        .expect("ready channel");

    let mut mi = sample("bookstore.yaml");
    apply_mi(&admin, &mi).await;
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    wait::until("bookstore to be Ready, reconciled by the ServiceAccount", CONVERGE, || async {
        ready(&api.get("bookstore").await.map_err(|e| e.to_string())?)
    })
    .await;
    // The app pods OSM's real injector injected: metrics enrolment annotates every one of them, as
    // the ServiceAccount (pods patch).
    let meshed = scenario::wait_injected(&admin, &scenario::BOOKSTORE_APP_NAMESPACES, CONVERGE).await;
    for pod in &meshed {
        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        wait::until(&format!("{namespace}/{name} to be enrolled for metrics"), CONVERGE, || async {
            let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), &namespace);
            let Some(pod) = pods.get_opt(&name).await.map_err(|e| e.to_string())? else { return Ok(()) };
            let annotations = pod.metadata.annotations.unwrap_or_default();
            let scrape = annotations.get("prometheus.io/scrape").map(String::as_str);
            let port = annotations.get("prometheus.io/port").map(String::as_str);
            if (scrape, port) == (Some("true"), Some("15010")) { Ok(()) } else { Err(format!("{annotations:?}")) }
        })
        .await;
    }
    eprintln!("{} app pods injected by the real osm-injector and enrolled for metrics", meshed.len());

    // Leader election went through the Role: the Lease is held by this operator.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    let lease = leases.get(LEASE_NAME).await.expect("the leader Lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some("e2e-rbac"));
    // Events were published (a failure there is only logged by the operator).
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let published = events.list(&ListParams::default()).await.expect("events");
    assert!(
        published.items.iter().any(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bookstore")
            && e.reporting_controller.as_deref() == Some("mesh-operator")),
        "no Event about bookstore from mesh-operator"
    );

    // 50/50 → 0/100.
    for backend in &mut mi.spec.traffic.splits[0].backends {
        backend.weight = if backend.service == "bookstore-v2" { 100 } else { 0 };
    }
    apply_mi(&admin, &mi).await;
    let splits: Api<smi::TrafficSplit> = Api::namespaced(admin.clone(), "bookstore");
    wait::until("the TrafficSplit to send everything to bookstore-v2", CONVERGE, || async {
        let split = splits.get("bookstore-split").await.map_err(|e| e.to_string())?;
        let weights: Vec<i64> = split.spec.backends.iter().map(|b| b.weight).collect();
        if weights == vec![0, 100] { Ok(()) } else { Err(format!("weights {weights:?}")) }
    })
    .await;
    wait::until("bookstore to be Ready again", CONVERGE, || async {
        ready(&api.get("bookstore").await.map_err(|e| e.to_string())?)
    })
    .await;

    // Teardown, as the ServiceAccount: nothing labelled for the installation remains.
    api.delete("bookstore", &DeleteParams::default()).await.expect("delete bookstore");
    wait::until("bookstore to be torn down and gone", CONVERGE, || async {
        match api.get_opt("bookstore").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(mi) => Err(format!("teardown step {:?}", mi.status.and_then(|s| s.teardown_step))),
        }
    })
    .await;
    let left = labelled_objects(&admin, "bookstore").await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        assert!(crds.get_opt(&name).await.expect("get CRD").is_none(), "CRD {name} left behind");
    }

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
    compare_audit_log_with_the_cluster_role(cluster, since);
}

/// What the ServiceAccount really did, from the audit log, against the ClusterRole: nothing was
/// Forbidden, and every verb of every rule was used or is granted only for RBAC's escalation check.
fn compare_audit_log_with_the_cluster_role(cluster: &TestCluster, since: usize) {
    let Some(log) = &cluster.audit_log else { return };
    // A watch is logged when it ends (the policy omits the earlier stages), and the API server
    // notices the stopped operator's closed watches a moment later: read again until they are all
    // in, for a bounded time. Anything but a missing watch fails at once.
    let mut attempts = 0;
    while let Err(message) = try_compare_audit_log_with_the_cluster_role(log, since) {
        attempts += 1;
        assert!(attempts < 30 && message.starts_with(ONLY_WATCHES_MISSING), "{message}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

const ONLY_WATCHES_MISSING: &str = "only watches missing: ";

fn try_compare_audit_log_with_the_cluster_role(log: &std::path::Path, since: usize) -> Result<(), String> {
    let requests = audit::requests_of(log, SERVICE_ACCOUNT, since);
    assert!(requests.len() > 100, "the audit log has {} requests of the ServiceAccount", requests.len());
    let forbidden = audit::forbidden(&requests);
    assert!(forbidden.is_empty(), "Forbidden: {forbidden:#?}");
    let used = audit::used_rules(&requests);
    let mut unused = Vec::new();
    for rule in mesh_operator::manifests::rbac::cluster_rules().expect("rules") {
        let escalation = rule.why.iter().any(|w| w.starts_with("granted by roles the operator creates"));
        let group = rule.rule.api_groups.as_ref().and_then(|g| g.first()).cloned().unwrap_or_default();
        for resource in rule.rule.resources.iter().flatten() {
            for verb in &rule.rule.verbs {
                let group = if group.is_empty() { "core" } else { group.as_str() };
                let key = format!("{verb} {group}/{resource}");
                let elsewhere = NOT_IN_THIS_SCENARIO.iter().any(|(g, _)| *g == group);
                if !used.contains(&key) && !escalation && !elsewhere {
                    unused.push(key);
                }
            }
        }
    }
    eprintln!("audit: {} requests of the ServiceAccount, {} distinct verb/resource pairs", requests.len(), used.len());
    if unused.is_empty() {
        return Ok(());
    }
    let only_watches = if unused.iter().all(|key| key.starts_with("watch ")) { ONLY_WATCHES_MISSING } else { "" };
    Err(format!("{only_watches}ClusterRole verbs neither used nor escalation-only: {unused:#?}\nused: {used:#?}"))
}

/// API groups the code writes only on paths this (OSM, SMI) scenario does not take, with the path.
const NOT_IN_THIS_SCENARIO: &[(&str, &str)] = &[
    ("gateway.networking.k8s.io", "traffic.mode GatewayAPI (samples/bookstore-istio.yaml, the Azure suite)"),
    ("security.istio.io", "traffic.mode GatewayAPI with the Istio add-on (samples/bookstore-istio.yaml)"),
];

/// A context for running reconciles one by one as `client`.
fn reconcile_context(client: &Client) -> Arc<mesh_operator::context::Context> {
    let (cache, _changes) =
        mesh_provisioner::apply::ManagedCache::start(client, &mesh_provisioner::plan::kinds::all_managed_kinds());
    // Neither watch is polled: every read goes to the API server, as a cold operator's would.
    let (namespaces, _namespace_events) = mesh_operator::context::watch_namespaces(client);
    let (leader_tx, leader) = watch::channel(true);
    std::mem::forget(leader_tx);
    Arc::new(mesh_operator::context::Context::new(
        client.clone(),
        cache,
        namespaces,
        test_settings(Duration::from_secs(300)),
        leader,
        Arc::new(Metrics::default()),
    ))
}

/// Reconciles installation `name` as the operator runs it until a reconcile fails; its error.
async fn first_error(api: &Api<MeshInstallation>, ctx: &Arc<mesh_operator::context::Context>, name: &str) -> String {
    for _ in 0..20 {
        let current = api.get(name).await.expect("get");
        match mesh_operator::reconcile::reconcile(Arc::new(current), ctx.clone()).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            Err(e) => return e.to_string(),
        }
    }
    panic!("{name}: no reconcile failed");
}

/// Deletes installation `name` and runs its teardown with `ctx` until it is gone.
async fn tear_down(api: &Api<MeshInstallation>, ctx: &Arc<mesh_operator::context::Context>, name: &str) {
    api.delete(name, &DeleteParams::default()).await.expect("delete");
    let deadline = std::time::Instant::now() + CONVERGE;
    while let Some(current) = api.get_opt(name).await.expect("get") {
        assert!(std::time::Instant::now() < deadline, "{name}: teardown did not finish");
        let _ = mesh_operator::reconcile::reconcile(Arc::new(current), ctx.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn operator_without_the_deployments_rule_is_forbidden_naming_it() {
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    apply_rbac(&admin, Drop::Rule("apps", "deployments")).await;
    wait_authorized(&admin, "list", "apps", "deployments", false).await;
    let client = service_account_client(cluster).await;

    let mut mi = sample("bookstore.yaml");
    mi.metadata.name = Some("bookstore-forbidden".to_string());
    apply_mi(&admin, &mi).await;
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let error = first_error(&api, &reconcile_context(&client), "bookstore-forbidden").await;
    assert!(error.contains("forbidden"), "not a Forbidden: {error}");
    assert!(
        error.contains("deployments") && error.contains("\"apps\""),
        "the Forbidden does not name apps/deployments: {error}"
    );

    // Clean up as admin: nothing was created, so dropping the finalizer is safe.
    let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch("bookstore-forbidden", &PatchParams::default(), &Patch::Merge(&no_finalizers))
        .await
        .expect("drop finalizer");
    api.delete("bookstore-forbidden", &DeleteParams::default()).await.expect("delete");
    assert!(labelled_objects(&admin, "bookstore-forbidden").await.is_empty(), "nothing was applied");
    apply_rbac(&admin, Drop::Nothing).await;
}

/// Metrics enrolment patches meshed pods: without `patch` on pods the reconcile fails with a
/// Forbidden naming the verb and the resource.
async fn operator_without_pods_patch_is_forbidden_naming_it() {
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    apply_rbac(&admin, Drop::Verb("", "pods", "patch")).await;
    wait_authorized(&admin, "patch", "", "pods", false).await;
    let client = service_account_client(cluster).await;
    scenario::meshed_pod(&admin, "bookstore", "meshed-forbidden").await;

    let mut mi = sample("bookstore.yaml");
    mi.metadata.name = Some("bookstore-pods-forbidden".to_string());
    apply_mi(&admin, &mi).await;
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let error = first_error(&api, &reconcile_context(&client), "bookstore-pods-forbidden").await;
    assert!(error.contains("forbidden"), "not a Forbidden: {error}");
    assert!(error.contains("cannot patch resource \"pods\""), "the Forbidden does not name pods patch: {error}");

    // Tear down with the full rules (the reconcile applied the mesh and namespaces before failing).
    apply_rbac(&admin, Drop::Nothing).await;
    wait_authorized(&admin, "patch", "", "pods", true).await;
    tear_down(&api, &reconcile_context(&client), "bookstore-pods-forbidden").await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), "bookstore");
    let _ = pods.delete("meshed-forbidden", &DeleteParams::default()).await;
    assert!(labelled_objects(&admin, "bookstore-pods-forbidden").await.is_empty(), "left behind");
}

/// What the API server stored and admitted for `meshctl install --azure-client-id`: the
/// ServiceAccount's annotations, and a pod of the operator's Deployment with the webhook's label,
/// the projected token for Microsoft Entra ID and the environment `azure_identity` reads.
async fn assert_workload_identity_accepted(admin: &kube::Client, identity: &WorkloadIdentity) {
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    use mesh_operator::manifests::workload_identity as wi;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let account = accounts.get(NAME).await.expect("ServiceAccount");
    let annotations = account.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(wi::CLIENT_ID_ANNOTATION), Some(&identity.client_id));
    assert_eq!(annotations.get(wi::TENANT_ID_ANNOTATION), identity.tenant_id.as_ref());
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let list = pods.list(&ListParams::default().labels(&format!("{}=true", wi::USE_LABEL))).await.expect("pods");
    let pod = list.items.first().expect("an operator pod labelled for the workload identity webhook");
    let spec = pod.spec.clone().expect("pod spec");
    let token = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == wi::TOKEN_VOLUME)
        .and_then(|v| v.projected)
        .and_then(|p| p.sources)
        .and_then(|s| s.into_iter().find_map(|s| s.service_account_token))
        .expect("projected ServiceAccount token volume");
    assert_eq!(token.audience.as_deref(), Some(wi::TOKEN_AUDIENCE));
    let container = &spec.containers[0];
    let env: BTreeMap<String, String> =
        container.env.clone().unwrap_or_default().into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
    assert_eq!(env.get("AZURE_CLIENT_ID"), Some(&identity.client_id));
    assert_eq!(env.get("AZURE_TENANT_ID"), identity.tenant_id.as_ref());
    let token_file = env.get("AZURE_FEDERATED_TOKEN_FILE").expect("AZURE_FEDERATED_TOKEN_FILE");
    let mount = container
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.name == wi::TOKEN_VOLUME)
        .expect("token mount");
    assert_eq!(token_file, &format!("{}/{}", mount.mount_path, token.path), "the env names the mounted token");
}

async fn meshctl_install_waits_for_the_operator_and_uninstall_removes_it() {
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    forget_installations(&admin).await;
    let mut out = Vec::new();
    // As `meshctl install --azure-client-id … --azure-tenant-id …` for AKS workload identity.
    let identity = WorkloadIdentity {
        client_id: "6f1d3b0a-0000-4000-8000-00000000c11e".to_string(),
        tenant_id: Some("72f988bf-0000-4000-8000-0000000072f9".to_string()),
    };
    let options = InstallOptions { timeout: CONVERGE, workload_identity: Some(identity.clone()), ..Default::default() };
    install::install(&admin, &options, &mut out).await.expect("meshctl install");
    let printed = String::from_utf8_lossy(&out).to_string();
    assert!(printed.contains("Deployment/mesh-operator-system/mesh-operator applied"), "{printed}");
    assert!(printed.contains("mesh-operator is ready"), "{printed}");
    assert!(install::operator_ready(&admin).await.expect("readiness").0);
    assert_workload_identity_accepted(&admin, &identity).await;

    // Uninstalling while a MeshInstallation exists is refused.
    let mut guard = sample("bookstore.yaml");
    guard.metadata.name = Some("uninstall-guard".to_string());
    apply_mi(&admin, &guard).await;
    let refused = install::uninstall(&admin, &UninstallOptions::default(), &mut Vec::new()).await;
    assert!(matches!(refused, Err(InstallError::InstallationsExist { .. })), "{refused:?}");
    // (No operator really runs on simulated nodes, so nothing added a finalizer.)
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch("uninstall-guard", &PatchParams::default(), &Patch::Merge(&no_finalizers)).await.expect("drop finalizer");
    api.delete("uninstall-guard", &DeleteParams::default()).await.expect("delete");

    let mut out = Vec::new();
    let options = UninstallOptions { timeout: CONVERGE, ..Default::default() };
    install::uninstall(&admin, &options, &mut out).await.expect("meshctl uninstall");
    let printed = String::from_utf8_lossy(&out).to_string();
    assert!(printed.contains("mesh-operator is uninstalled"), "{printed}");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    assert!(namespaces.get_opt(NAMESPACE).await.expect("get").is_none(), "namespace gone");
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    assert!(crds.get_opt("meshinstallations.meshoperator.dev").await.expect("get").is_none(), "CRD gone");
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    assert!(roles.get_opt(NAME).await.expect("get").is_none(), "ClusterRole gone");
}

mesh_e2e::e2e_main! {
    install_yaml_passes_a_server_side_dry_run: [],
    operator_as_its_service_account_runs_the_bookstore_scenario: [SimulatedPods, RealPods, InProcessOperator, AuditLog],
    operator_without_the_deployments_rule_is_forbidden_naming_it: [OwnedCluster, InProcessOperator],
    operator_without_pods_patch_is_forbidden_naming_it: [OwnedCluster, InProcessOperator],
    meshctl_install_waits_for_the_operator_and_uninstall_removes_it: [OwnedCluster, SimulatedPods],
}
