//! The article on a self-hosted mesh, end to end against the local control plane: converge,
//! assert every object, edit, prune, stay quiet when steady, reject bad input, tear down.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation, smi};
use mesh_e2e::audit;
use mesh_e2e::operator::{OperatorHandle, SERVICE_ACCOUNT, test_settings};
use mesh_e2e::scenario::{CONVERGE, apply, condition, delete_and_wait_gone, managed_objects, sample, wait_ready};
use mesh_e2e::{TestCluster, wait};
use mesh_provisioner::labels;

/// Operator scenarios share cluster-scoped names; run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn label<'a>(map: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    map.as_ref().and_then(|m| m.get(key)).map(String::as_str)
}

async fn bookstore_converges_edits_prune_and_teardown_leaves_nothing() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    let mut mi = sample("bookstore.yaml");
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;

    // The control plane, as `osm install` with the article's flags renders it.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "osm-system");
    for name in ["osm-controller", "osm-injector", "osm-bootstrap", "osm-prometheus", "osm-grafana", "jaeger"] {
        let d = deployments.get(name).await.unwrap_or_else(|e| panic!("Deployment osm-system/{name}: {e}"));
        assert_eq!(label(&d.metadata.labels, labels::MANAGED_BY), Some("mesh-operator"));
        assert_eq!(label(&d.metadata.labels, labels::INSTALLATION), Some("bookstore"));
    }
    let controller = deployments.get("osm-controller").await.expect("osm-controller");
    let image = controller.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
    assert!(image.ends_with("osm-controller:v1.2.4"), "controller image {image}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        crds.get(&name).await.unwrap_or_else(|e| panic!("CRD {name}: {e}"));
    }
    let ca: Api<Secret> = Api::namespaced(client.clone(), "osm-system");
    let ca_bundle = ca.get("osm-ca-bundle").await.expect("osm-ca-bundle");
    let ca_data = ca_bundle.data.clone().unwrap_or_default();
    assert!(ca_data.contains_key("ca.crt") && ca_data.contains_key("private.key"));

    // MeshConfig from the spec: permissive off, tracing to jaeger, egress by policy as the
    // article's egress step (`featureFlags.enableEgressPolicy: true`), no global passthrough.
    let meshconfigs: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(client.clone(), "osm-system");
    let meshconfig = meshconfigs.get("osm-mesh-config").await.expect("osm-mesh-config");
    let traffic = meshconfig.spec.traffic.clone().expect("traffic");
    assert_eq!(traffic.enable_permissive_traffic_policy_mode, Some(false));
    assert_eq!(traffic.enable_egress, Some(false), "no passthrough: only the Egress policy lets curl out");
    let flags = meshconfig.spec.feature_flags.clone().expect("featureFlags");
    assert_eq!(flags.enable_egress_policy, Some(true));
    // What makes the article's `curl http://httpbin.org/get` work: curl may reach httpbin.org:80.
    let egresses: Api<mesh_crds::osm::Egress> = Api::namespaced(client.clone(), "curl");
    let egress = egresses.get("httpbin-80").await.expect("Egress curl/httpbin-80");
    let sources: Vec<(&str, &str, &str)> =
        egress.spec.sources.iter().map(|s| (s.kind.as_str(), s.namespace.as_str(), s.name.as_str())).collect();
    assert_eq!(sources, [("ServiceAccount", "curl", "curl")]);
    assert_eq!(egress.spec.hosts, ["httpbin.org"]);
    let ports: Vec<(i32, &str)> = egress.spec.ports.iter().map(|p| (p.number, p.protocol.as_str())).collect();
    assert_eq!(ports, [(80, "http")]);
    assert!(egress.spec.ip_addresses.is_empty(), "no IP range: nothing wider than the host");
    let tracing = meshconfig.spec.observability.clone().and_then(|o| o.tracing).expect("tracing");
    assert_eq!(tracing.enable, Some(true));
    assert_eq!(tracing.address.as_deref(), Some("jaeger.osm-system.svc.cluster.local"));
    assert_eq!(tracing.port, Some(9411));
    assert_eq!(tracing.endpoint.as_deref(), Some("/api/v2/spans"));
    assert!(meshconfig.spec.certificate.is_some(), "the MeshConfig keeps OSM's certificate settings");

    // Namespaces enrolled exactly as `osm namespace add` + `osm metrics enable`.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["bookstore", "bookbuyer", "bookthief", "bookwarehouse"] {
        let ns = namespaces.get(name).await.expect("namespace");
        assert_eq!(label(&ns.metadata.labels, labels::OSM_MONITORED_BY), Some("osm"), "{name}");
        assert_eq!(label(&ns.metadata.annotations, labels::OSM_SIDECAR_INJECTION), Some("enabled"), "{name}");
        assert_eq!(label(&ns.metadata.annotations, labels::OSM_METRICS), Some("enabled"), "{name}");
    }
    let curl_ns = namespaces.get("curl").await.expect("curl namespace");
    assert_eq!(label(&curl_ns.metadata.annotations, labels::OSM_METRICS), None, "metrics only where asked");
    let ingress_ns = namespaces.get("osm-nginx-ingess-ns").await.expect("ingress namespace");
    assert_eq!(label(&ingress_ns.metadata.annotations, labels::OSM_SIDECAR_INJECTION), Some("disabled"));

    // Apps: ServiceAccounts, workloads, Services including version services and headless mysql.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "bookstore");
    sas.get("bookstore-v2").await.expect("bookstore-v2 ServiceAccount");
    let services: Api<Service> = Api::namespaced(client.clone(), "bookstore");
    let root = services.get("bookstore").await.expect("bookstore Service");
    let root_spec = root.spec.expect("spec");
    assert_eq!(root_spec.selector.as_ref().and_then(|s| s.get("app")).map(String::as_str), Some("bookstore"));
    assert_eq!(root_spec.ports.as_ref().unwrap()[0].port, 14001);
    let v2 = services.get("bookstore-v2").await.expect("bookstore-v2 Service").spec.expect("spec");
    assert_eq!(v2.selector.as_ref().and_then(|s| s.get("version")).map(String::as_str), Some("v2"));
    let mysql: Api<StatefulSet> = Api::namespaced(client.clone(), "bookwarehouse");
    let mysql = mysql.get("mysql").await.expect("mysql StatefulSet");
    assert_eq!(mysql.status.and_then(|s| s.ready_replicas), Some(1));
    let mysql_svc: Api<Service> = Api::namespaced(client.clone(), "bookwarehouse");
    assert_eq!(
        mysql_svc.get("mysql").await.expect("mysql Service").spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );

    // SMI policies as OSM serves them.
    let tts: Api<smi::TrafficTarget> = Api::namespaced(client.clone(), "bookstore");
    let tt = tts.get("bookstore").await.expect("TrafficTarget bookstore");
    assert_eq!(tt.spec.destination.name, "bookstore");
    assert_eq!(tt.spec.rules[0].matches, vec!["books-bought", "buy-a-book"]);
    let sources = |tt: &smi::TrafficTarget| -> Vec<(String, String)> {
        tt.spec.sources.iter().map(|s| (s.namespace.clone().unwrap_or_default(), s.name.clone())).collect()
    };
    // The article's step: bookbuyer and bookthief may both call bookstore (v1)…
    assert_eq!(
        sources(&tt),
        [("bookbuyer".to_string(), "bookbuyer".to_string()), ("bookthief".to_string(), "bookthief".to_string())]
    );
    // …but bookstore-v2 (OSM's bookstore-v2.yaml) admits only bookbuyer.
    let tt_v2 = tts.get("bookstore-v2").await.expect("TrafficTarget bookstore-v2");
    assert_eq!(sources(&tt_v2), [("bookbuyer".to_string(), "bookbuyer".to_string())], "bookthief is not allowed on v2");
    let groups: Api<smi::HTTPRouteGroup> = Api::namespaced(client.clone(), "bookstore");
    let group = groups.get("bookstore-service-routes").await.expect("HTTPRouteGroup");
    let bought = group.spec.matches.iter().find(|m| m.name == "books-bought").expect("books-bought");
    let headers = bought.headers.as_deref().unwrap_or_default();
    assert_eq!(headers.len(), 2, "headers are a list of single-key maps");
    assert!(headers.iter().all(|h| h.len() == 1));
    let tcp: Api<smi::TCPRoute> = Api::namespaced(client.clone(), "bookwarehouse");
    assert_eq!(tcp.get("mysql-tcp").await.expect("TCPRoute").spec.matches.ports, vec![3306]);
    let splits: Api<smi::TrafficSplit> = Api::namespaced(client.clone(), "bookstore");
    let split = splits.get("bookstore-split").await.expect("TrafficSplit");
    assert_eq!(split.spec.service, "bookstore.bookstore");
    let weights: Vec<(String, i64)> = split.spec.backends.iter().map(|b| (b.service.clone(), b.weight)).collect();
    assert_eq!(weights, vec![("bookstore-v1".to_string(), 50), ("bookstore-v2".to_string(), 50)]);

    // 50/50 → 0/100: the TrafficSplit follows.
    for backend in &mut mi.spec.traffic.splits[0].backends {
        backend.weight = if backend.service == "bookstore-v2" { 100 } else { 0 };
    }
    apply(&client, &mi).await;
    wait::until("the TrafficSplit to send everything to bookstore-v2", CONVERGE, || async {
        let split = splits.get("bookstore-split").await.map_err(|e| e.to_string())?;
        let weights: Vec<i64> = split.spec.backends.iter().map(|b| b.weight).collect();
        if weights == vec![0, 100] { Ok(()) } else { Err(format!("weights {weights:?}")) }
    })
    .await;

    // Removing an app prunes its objects; turning Grafana off removes it.
    mi.spec.apps.retain(|a| a.name != "bookthief");
    mi.spec.mesh.addons.grafana = false;
    apply(&client, &mi).await;
    let thief: Api<Deployment> = Api::namespaced(client.clone(), "bookthief");
    wait::until("bookthief and osm-grafana to be pruned", CONVERGE, || async {
        let thief_left = thief.get_opt("bookthief").await.map_err(|e| e.to_string())?.is_some();
        let grafana_left = deployments.get_opt("osm-grafana").await.map_err(|e| e.to_string())?.is_some();
        if !thief_left && !grafana_left {
            Ok(())
        } else {
            Err(format!("bookthief left: {thief_left}, grafana left: {grafana_left}"))
        }
    })
    .await;
    wait_ready(&client, "bookstore").await;

    // Teardown: nothing with our labels, no OSM/SMI CRDs, namespaces un-enrolled.
    delete_and_wait_gone(&client, "bookstore").await;
    let left = managed_objects(&client, "bookstore").await;
    assert!(left.is_empty(), "objects left behind: {left:?}");
    for name in mesh_crds::generate::osm_crd_names() {
        assert!(crds.get_opt(&name).await.expect("get crd").is_none(), "CRD {name} left behind");
    }
    for name in ["bookstore", "bookbuyer", "bookthief", "bookwarehouse"] {
        let ns = namespaces.get(name).await.expect("namespace stays (deleteNamespaces is false)");
        assert_eq!(label(&ns.metadata.labels, labels::OSM_MONITORED_BY), None, "{name} un-enrolled");
        assert_eq!(label(&ns.metadata.annotations, labels::OSM_SIDECAR_INJECTION), None, "{name} un-enrolled");
    }
    operator.stop().await;
}

/// Counts the operator's own writes, as the API server's audit log names them: the operator runs
/// as its ServiceAccount, so the writes of OSM's real control plane (osm-bootstrap, osm-controller
/// and osm-injector run for real once `make cluster` built their images) and the cluster's own
/// controllers are not counted, and any write of the operator is, whatever its resource.
async fn a_steady_installation_makes_zero_writes_over_three_resyncs() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let Some(log) = cluster.audit_log.as_deref() else { panic!("the bookstore suite's cluster keeps an audit log") };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let resync = Duration::from_secs(2);
    let operator = OperatorHandle::start_as_service_account(cluster, &client, test_settings(resync)).await;
    apply(&client, &sample("bookstore.yaml")).await;
    wait_ready(&client, "bookstore").await;
    // `osm metrics enable` also annotates pods that already run a sidecar.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "bookstore");
    let meshed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "meshed", "labels": {"osm-proxy-uuid": "0b5c7f3e"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    }))
    .expect("pod");
    pods.create(&Default::default(), &meshed).await.expect("create a meshed pod");
    wait::until("the meshed pod to get the Prometheus scrape annotations", CONVERGE, || async {
        let pod = pods.get("meshed").await.map_err(|e| e.to_string())?;
        let port = label(&pod.metadata.annotations, "prometheus.io/port").map(str::to_string);
        let path = label(&pod.metadata.annotations, "prometheus.io/path").map(str::to_string);
        match (label(&pod.metadata.annotations, "prometheus.io/scrape"), port.as_deref(), path.as_deref()) {
            (Some("true"), Some("15010"), Some("/stats/prometheus")) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Let the last status write and the caches settle, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reconciles_before = operator.metrics.reconciles("success");
    let since = audit::mark(log);
    // Three resyncs (a loaded machine may take longer than three periods for them).
    wait::until("three resyncs of the steady installation", CONVERGE, || async {
        let reconciles = operator.metrics.reconciles("success") - reconciles_before;
        if reconciles >= 3 { Ok(()) } else { Err(format!("{reconciles} reconciles")) }
    })
    .await;
    let requests = audit::requests_of(log, SERVICE_ACCOUNT, since);
    // The reconciles read (so the log does see the operator), and wrote nothing.
    assert!(
        requests.iter().any(|r| r.verb == "list" || r.verb == "get"),
        "no request of the operator in the audit log"
    );
    let writes = audit::writes(&requests);
    assert!(writes.is_empty(), "a steady installation wrote: {writes:#?}");
    pods.delete("meshed", &DeleteParams::default()).await.expect("delete pod");
    delete_and_wait_gone(&client, "bookstore").await;
    operator.stop().await;
}

/// `metadata.resourceVersion` of every object of an installation.
async fn versions(client: &Client, installation: &str) -> BTreeMap<String, String> {
    let selector = labels::installation_selector(installation);
    let mut out = BTreeMap::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for o in list.items {
                let key = format!("{}/{}/{}", kind.resource.kind, o.namespace().unwrap_or_default(), o.name_any());
                out.insert(key, o.resource_version().unwrap_or_default());
            }
        }
    }
    out
}

async fn wait_condition(client: &Client, name: &str, type_: &str, expected: &str) -> (ConditionStatus, String, String) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("{name}: condition {type_} mentioning {expected:?}"), CONVERGE, || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, type_) {
            Some(c)
                if c.2.contains(expected)
                    && mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation =>
            {
                Ok(c)
            }
            other => Err(format!("{type_}={other:?}")),
        }
    })
    .await
}

async fn invalid_input_names_the_problem_and_changes_nothing() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;

    // Semantically invalid samples pass admission and are refused by the operator, naming the field.
    let samples = mesh_crds::samples::invalid().unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for sample in samples.iter().filter(|sample| sample.passes_admission) {
        let (path, expected) = (sample.path.display(), sample.expected_error.as_str());
        let mi = MeshInstallation::from_yaml(&sample.text).expect("parse");
        apply(&client, &mi).await;
        let (status, _, _) = wait_condition(&client, &mi.name_any(), "Degraded", expected).await;
        assert_eq!(status, ConditionStatus::True);
        assert!(managed_objects(&client, &mi.name_any()).await.is_empty(), "{path}: objects were created");
        delete_and_wait_gone(&client, &mi.name_any()).await;
        checked += 1;
    }
    assert!(checked >= 3, "semantic invalid samples checked: {checked}");

    // An invalid edit of a converged installation changes nothing already applied.
    let mut mi = sample("bookstore.yaml");
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;
    let before = versions(&client, "bookstore").await;
    mi.spec.ingress.as_mut().expect("ingress").rules[0].backend.port = 9999;
    mi.spec.traffic.splits[0].backends[0].weight = 10;
    apply(&client, &mi).await;
    wait_condition(&client, "bookstore", "Degraded", "spec.ingress.rules[0].backend.port").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(versions(&client, "bookstore").await, before, "an invalid spec must not change applied objects");

    // A namespace labelled openservicemesh.io/ignore=true is refused by name.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ignore = serde_json::json!({"metadata": {"labels": {labels::OSM_IGNORE: "true"}}});
    namespaces.patch("bookthief", &PatchParams::default(), &Patch::Merge(&ignore)).await.expect("label bookthief");
    let before = versions(&client, "bookstore").await;
    let valid = sample("bookstore.yaml");
    apply(&client, &valid).await;
    let (status, reason, _) = wait_condition(&client, "bookstore", "NamespacesReady", "namespace bookthief").await;
    assert_eq!((status, reason.as_str()), (ConditionStatus::False, "NamespaceIgnored"));
    assert_eq!(versions(&client, "bookstore").await, before, "a refused namespace must not change applied objects");
    let unignore = serde_json::json!({"metadata": {"labels": {labels::OSM_IGNORE: null}}});
    namespaces.patch("bookthief", &PatchParams::default(), &Patch::Merge(&unignore)).await.expect("unlabel");
    wait_ready(&client, "bookstore").await;
    delete_and_wait_gone(&client, "bookstore").await;
    operator.stop().await;
}

async fn a_foreign_object_is_never_overwritten() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    let mut mi = sample("bookstore.yaml");
    let splits_wanted = std::mem::take(&mut mi.spec.traffic.splits);
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;

    // Someone else's TrafficSplit with the name the spec is about to use.
    let splits: Api<smi::TrafficSplit> = Api::namespaced(client.clone(), "bookstore");
    let foreign: smi::TrafficSplit = serde_json::from_value(serde_json::json!({
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "bookstore-split", "namespace": "bookstore"},
        "spec": {"service": "bookstore.bookstore", "backends": [{"service": "bookstore-v1", "weight": 1}]}
    }))
    .expect("split");
    splits.create(&Default::default(), &foreign).await.expect("create foreign split");
    mi.spec.traffic.splits = splits_wanted;
    apply(&client, &mi).await;
    let (status, reason, message) =
        wait_condition(&client, "bookstore", "Degraded", "TrafficSplit/bookstore/bookstore-split").await;
    assert_eq!((status, reason.as_str()), (ConditionStatus::True, "Conflict"), "{message}");
    let still = splits.get("bookstore-split").await.expect("foreign split");
    assert_eq!(still.spec.backends.len(), 1, "the foreign object was changed");
    assert_eq!(label(&still.metadata.labels, labels::INSTALLATION), None);
    splits.delete("bookstore-split", &DeleteParams::default()).await.expect("delete foreign split");
    wait_ready(&client, "bookstore").await;
    delete_and_wait_gone(&client, "bookstore").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    bookstore_converges_edits_prune_and_teardown_leaves_nothing: [SimulatedPods, InProcessOperator],
    a_steady_installation_makes_zero_writes_over_three_resyncs: [SimulatedPods, InProcessOperator, AuditLog, OwnedCluster],
    invalid_input_names_the_problem_and_changes_nothing: [SimulatedPods, InProcessOperator],
    a_foreign_object_is_never_overwritten: [SimulatedPods, InProcessOperator],
}
