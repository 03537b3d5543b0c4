//! The bookstore on OSM v1.2.4's **real** control plane: osm-bootstrap, osm-controller and
//! osm-injector built from OSM's Go module (`e2e/osm/`, `make osm-images`) run under runc on the
//! local control plane, with the flags, environment, RBAC, MeshConfig, CA Secret and webhook
//! configurations the operator gives them, on the local control plane as the README's manual steps
//! start it (`localcluster`'s defaults: admission webhooks on).
//!
//! What it shows: the three become Ready through their own probes; the controller and injector
//! create their webhook configurations; the real injector injects every bookstore pod (OSM's
//! `envoy` sidecar, `osm-init` init container, `osm-proxy-uuid` label); the real validator admits
//! our IngressBackend and TrafficTargets and rejects what OSM rejects (so it was called); no OSM
//! component logs an error; the controller's debug server shows the access policies and the split
//! weights of the spec (after 50/50 and 0/100), as OSM parsed them; teardown stops the control
//! plane before deleting what it writes, and nothing comes back.
//!
//! What stays simulated: the injected pods (the Envoy and `openservicemesh/init` images are not in
//! the local store, so after injection those pods are simulated by kwok), and ingress-nginx, whose
//! controller needs nginx itself. ingress-nginx's admission webhook (failurePolicy Fail) is
//! therefore answered by the local control plane in its simulated pod's place: "allowed", with a
//! warning, using the serving certificate that pod mounts (`--simulated-webhooks=admit`, the
//! default, documented in `e2e/cluster/README.md`). Building ingress-nginx's controller would need
//! nginx and its Lua modules in the image; a suite without admission webhooks would not show the
//! injection. The local control plane's log names each such answer; this suite checks the Ingress
//! got one.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{self, apply, delete_and_wait_gone, sample, wait_ready_within};
use mesh_e2e::{TestCluster, wait};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMESPACE: &str = "osm-system";
/// Longer than [`mesh_e2e::scenario::CONVERGE`]: here OSM's own control plane runs for real
/// (osm-bootstrap, osm-controller and osm-injector processes under a real runtime, webhooks called),
/// and the bookstore pods are injected and started by it, not simulated.
const REAL_OSM_CONVERGE: Duration = Duration::from_secs(300);
const RUNTIME_ANNOTATION: &str = "localcluster.meshoperator.dev/runtime";
const PORTS_ANNOTATION: &str = "localcluster.meshoperator.dev/ports";
/// The operator's resync period here: short, so "steady means zero writes" is seen over a few.
const RESYNC: Duration = Duration::from_secs(3);
/// The controller's debug server (MeshConfig `observability.enableDebugServer`).
const DEBUG_PORT: u16 = 9092;

/// The one pod of `app` in the control-plane namespace, once it runs for real and is Ready.
async fn real_ready_pod(pods: &Api<Pod>, app: &str) -> Pod {
    wait::until(&format!("{app} to run for real and be Ready"), REAL_OSM_CONVERGE, || async {
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map_err(|e| e.to_string())?;
        let pod = list.items.into_iter().find(|p| p.metadata.deletion_timestamp.is_none()).ok_or("no pod")?;
        let runtime = pod.annotations().get(RUNTIME_ANNOTATION).cloned();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        if runtime.as_deref() == Some("runc") && ready.as_deref() == Some("True") {
            Ok(pod)
        } else {
            Err(format!(
                "{}: runtime={runtime:?} ready={ready:?} status={}",
                pod.name_any(),
                serde_json::to_string(&pod.status.as_ref().map(|s| &s.container_statuses)).unwrap_or_default()
            ))
        }
    })
    .await
}

/// `GET path` on `port` of `pod` through the local control plane's loopback forwarder of the
/// pod's declared port (annotation `localcluster.meshoperator.dev/ports`).
async fn http_get(pods: &Api<Pod>, pod: &str, port: u16, path: &str) -> Result<String, String> {
    let pod = pods.get(pod).await.map_err(|e| e.to_string())?;
    let ports = pod.annotations().get(PORTS_ANNOTATION).ok_or("no ports annotation yet")?;
    let addr = ports
        .split(',')
        .find_map(|entry| entry.strip_prefix(&format!("{port}=")))
        .ok_or_else(|| format!("port {port} not in {ports}"))?
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| "timed out reading the response".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("not HTTP: {text}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{path}: {head}"));
    }
    Ok(body.to_string())
}

/// A JSON document of the controller's debug server.
async fn debug_json(pods: &Api<Pod>, controller: &str, path: &str) -> Value {
    wait::until(&format!("osm-controller {path}"), Duration::from_secs(60), || async {
        let body = http_get(pods, controller, DEBUG_PORT, path).await?;
        serde_json::from_str::<Value>(&body).map_err(|e| format!("{path}: {e}: {body}"))
    })
    .await
}

/// `(backend service, weight)` of the bookstore split as osm-controller holds it.
fn split_weights(policies: &Value) -> Vec<(String, i64)> {
    policies["traffic_splits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["metadata"]["name"] == "bookstore-split")
        .flat_map(|s| s["spec"]["backends"].as_array().cloned().unwrap_or_default())
        .map(|b| (b["service"].as_str().unwrap_or_default().to_string(), b["weight"].as_i64().unwrap_or(-1)))
        .collect()
}

/// `(source namespace/name)` of the TrafficTarget `namespace/name` as osm-controller holds it.
fn sources(policies: &Value, namespace: &str, name: &str) -> Vec<String> {
    policies["traffic_targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["metadata"]["namespace"] == namespace && t["metadata"]["name"] == name)
        .flat_map(|t| t["spec"]["sources"].as_array().cloned().unwrap_or_default())
        .map(|s| format!("{}/{}", s["namespace"].as_str().unwrap_or_default(), s["name"].as_str().unwrap_or_default()))
        .collect()
}

/// Error lines of a component's log (OSM logs JSON, one object per line).
async fn error_lines(pods: &Api<Pod>, pod: &str) -> Vec<String> {
    let log = pods.logs(pod, &LogParams::default()).await.unwrap_or_else(|e| panic!("logs of {pod}: {e}"));
    log.lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .map(|v| matches!(v["level"].as_str(), Some("error" | "fatal" | "panic")))
                .unwrap_or(false)
        })
        .map(str::to_string)
        .collect()
}

/// Waits until every bookstore pod is injected; returns how many pods that is. Their Envoy and
/// init images are not local, so they are simulated (asserted).
async fn wait_injected(client: &Client) -> usize {
    let pods = scenario::wait_injected(client, &scenario::BOOKSTORE_APP_NAMESPACES, REAL_OSM_CONVERGE).await;
    for pod in &pods {
        let runtime = pod.annotations().get(RUNTIME_ANNOTATION).map(String::as_str);
        let name = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        assert_ne!(runtime, Some("runc"), "{name}: Envoy's image is not local");
    }
    pods.len()
}

fn ingress_backend_resource() -> ApiResource {
    ApiResource {
        group: "policy.openservicemesh.io".into(),
        version: "v1alpha1".into(),
        api_version: "policy.openservicemesh.io/v1alpha1".into(),
        kind: "IngressBackend".into(),
        plural: "ingressbackends".into(),
    }
}

fn traffic_target_resource() -> ApiResource {
    ApiResource {
        group: "access.smi-spec.io".into(),
        version: "v1alpha3".into(),
        api_version: "access.smi-spec.io/v1alpha3".into(),
        kind: "TrafficTarget".into(),
        plural: "traffictargets".into(),
    }
}

/// Re-submits a live object (server-side dry run, so admission webhooks run) and returns the
/// API server's answer.
async fn dry_run_replace(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<(), String> {
    let mut object = object.clone();
    object.metadata.managed_fields = None;
    let params = PostParams { dry_run: true, ..Default::default() };
    api.replace(&object.name_any(), &params, &object).await.map(|_| ()).map_err(|e| e.to_string())
}

/// The osm-validator's verdict on our IngressBackend and TrafficTargets (admitted), and on
/// variants OSM rejects (rejected with OSM's own message, so the webhook was really called).
async fn check_validator(client: &Client) {
    let backends: Api<DynamicObject> = Api::namespaced_with(client.clone(), "bookstore", &ingress_backend_resource());
    let ours = backends.list(&ListParams::default()).await.expect("IngressBackends");
    assert!(!ours.items.is_empty(), "the sample's IngressBackend");
    for backend in &ours.items {
        dry_run_replace(&backends, backend).await.unwrap_or_else(|e| panic!("{}: {e}", backend.name_any()));
        let mut duplicated = backend.clone();
        let list = duplicated.data["spec"]["backends"].as_array_mut().expect("backends");
        list.push(list[0].clone());
        let refused = dry_run_replace(&backends, &duplicated).await.expect_err("OSM refuses duplicate backends");
        assert!(refused.contains("Duplicate backends detected"), "{refused}");
    }
    let targets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "bookstore", &traffic_target_resource());
    let ours = targets.list(&ListParams::default()).await.expect("TrafficTargets");
    assert!(ours.items.len() >= 2, "the sample's TrafficTargets in bookstore");
    for target in &ours.items {
        dry_run_replace(&targets, target).await.unwrap_or_else(|e| panic!("{}: {e}", target.name_any()));
        let mut elsewhere = target.clone();
        elsewhere.data["spec"]["destination"]["namespace"] = json!("bookbuyer");
        let refused = dry_run_replace(&targets, &elsewhere).await.expect_err("OSM refuses a foreign destination");
        assert!(refused.contains("must match spec.Destination.Namespace"), "{refused}");
    }
}

/// `meshoperator_api_writes_total` of the MeshInstallation controller so far.
fn api_writes(operator: &OperatorHandle) -> u64 {
    let text = operator.metrics.render();
    text.lines()
        .filter(|l| l.starts_with("meshoperator_api_writes_total{") && l.contains("controller=\"meshinstallation\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Lines of the local control plane's log (next to its data dir) that name `needle`.
fn cluster_log_lines(cluster: &TestCluster, needle: &str) -> Vec<String> {
    let Some(log) = cluster.data_dir.as_ref().and_then(|d| d.parent()).map(|d| d.join("cluster.log")) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

async fn bookstore_on_the_real_osm_control_plane() {
    mesh_e2e::local_images::ensure_osm_images().expect("OSM's images in the local image store");
    let Some(cluster) = TestCluster::get_as_by_hand() else { return };
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(RESYNC)).await;
    let mut mi = sample("bookstore.yaml");
    apply(&client, &mi).await;
    wait_ready_within(&client, "bookstore", REAL_OSM_CONVERGE).await;

    // The three components run for real and pass their own readiness probes.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    real_ready_pod(&pods, "osm-bootstrap").await;
    let controller = real_ready_pod(&pods, "osm-controller").await.name_any();
    let injector = real_ready_pod(&pods, "osm-injector").await.name_any();

    // They created their webhook configurations, pointing at the Services we render.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhook = wait::until("osm-webhook-osm", REAL_OSM_CONVERGE, || async {
        mutating.get_opt("osm-webhook-osm").await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
    })
    .await;
    let service = webhook.webhooks.as_ref().and_then(|w| w[0].client_config.service.clone()).expect("service");
    assert_eq!(
        (service.namespace.as_str(), service.name.as_str(), service.port),
        (NAMESPACE, "osm-injector", Some(9090))
    );
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let validator = wait::until("osm-validator-mesh-osm", REAL_OSM_CONVERGE, || async {
        validating.get_opt("osm-validator-mesh-osm").await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
    })
    .await;
    let service = validator.webhooks.as_ref().and_then(|w| w[0].client_config.service.clone()).expect("service");
    assert_eq!((service.namespace.as_str(), service.name.as_str()), (NAMESPACE, "osm-validator"));

    // The real injector injected every bookstore pod (the operator starts the apps only once it is
    // Available); the real validator admits our objects and rejects what OSM rejects.
    let injected = wait_injected(&client).await;
    eprintln!(
        "{injected} bookstore pods injected by the real osm-injector (simulated afterwards: Envoy's image is not local)"
    );
    check_validator(&client).await;
    // ingress-nginx's webhook (failurePolicy Fail, simulated pod) was answered by the local control plane.
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "bookstore");
    assert!(!ingresses.list(&ListParams::default()).await.expect("ingresses").items.is_empty());
    let answered = cluster_log_lines(cluster, "simulated webhook: admitted without a check");
    assert!(answered.iter().any(|l| l.contains("Ingress bookstore/")), "ingress-nginx's webhook answers: {answered:?}");

    // What OSM would enforce, from osm-controller's debug server (a MeshConfig field the spec
    // does not control, so the operator leaves it to us).
    let meshconfigs: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(client.clone(), NAMESPACE);
    meshconfigs
        .patch(
            "osm-mesh-config",
            &PatchParams::apply("e2e-debug").force(),
            &Patch::Apply(json!({
                "apiVersion": "config.openservicemesh.io/v1alpha2", "kind": "MeshConfig",
                "spec": {"observability": {"enableDebugServer": true}}
            })),
        )
        .await
        .expect("enable the debug server");
    let config = debug_json(&pods, &controller, "/debug/config").await;
    assert_eq!(config["featureFlags"]["enableWASMStats"], true, "the preset's WASM stats survive our CRD: {config}");
    assert_eq!(config["traffic"]["enablePermissiveTrafficPolicyMode"], false);
    let policies = debug_json(&pods, &controller, "/debug/policies").await;
    let mut bookstore_sources = sources(&policies, "bookstore", "bookstore");
    bookstore_sources.sort();
    assert_eq!(
        bookstore_sources,
        ["bookbuyer/bookbuyer", "bookthief/bookthief"],
        "the article's TrafficTarget: {policies}"
    );
    assert_eq!(sources(&policies, "bookstore", "bookstore-v2"), ["bookbuyer/bookbuyer"]);
    let routes: Vec<String> = policies["route_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["metadata"]["name"] == "bookstore-service-routes")
        .flat_map(|g| g["spec"]["matches"].as_array().cloned().unwrap_or_default())
        .map(|m| m["pathRegex"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        routes.contains(&"/books-bought".to_string()) && routes.contains(&".*a-book.*new".to_string()),
        "{routes:?}"
    );
    assert_eq!(split_weights(&policies), [("bookstore-v1".to_string(), 50), ("bookstore-v2".to_string(), 50)]);

    // The article's last split: everything to v2; OSM sees the new weights.
    for backend in &mut mi.spec.traffic.splits[0].backends {
        backend.weight = if backend.service == "bookstore-v2" { 100 } else { 0 };
    }
    apply(&client, &mi).await;
    wait::until("osm-controller to see the 0/100 split", REAL_OSM_CONVERGE, || async {
        let body = http_get(&pods, &controller, DEBUG_PORT, "/debug/policies").await?;
        let policies: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let weights = split_weights(&policies);
        if weights == [("bookstore-v1".to_string(), 0), ("bookstore-v2".to_string(), 100)] {
            Ok(())
        } else {
            Err(format!("{weights:?}"))
        }
    })
    .await;

    // OSM's CRDs have two writers, the operator and osm-bootstrap (which replaces their spec with
    // its own files at every start): they agree, so a restarted osm-bootstrap changes nothing and
    // the steady installation makes zero writes.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd_versions = || async {
        let mut versions = Vec::new();
        for name in mesh_crds::generate::osm_crd_names() {
            let crd = crds.get(&name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            versions.push((name, crd.metadata.resource_version.unwrap_or_default()));
        }
        versions
    };
    let old_bootstrap = real_ready_pod(&pods, "osm-bootstrap").await.name_any();
    let versions_before = crd_versions().await;
    pods.delete(&old_bootstrap, &Default::default()).await.expect("restart osm-bootstrap");
    wait::until("a new osm-bootstrap to run for real and be Ready", REAL_OSM_CONVERGE, || async {
        let pod = real_ready_pod(&pods, "osm-bootstrap").await;
        if pod.name_any() == old_bootstrap { Err("the old pod".to_string()) } else { Ok(()) }
    })
    .await;
    let writes_before = api_writes(&operator);
    tokio::time::sleep(RESYNC * 4).await;
    assert_eq!(api_writes(&operator), writes_before, "the steady installation wrote (see the operator's log)");
    let versions_after = crd_versions().await;
    if versions_after != versions_before {
        let changed: Vec<_> = versions_after.iter().filter(|v| !versions_before.contains(v)).collect();
        let mut writers = Vec::new();
        for (name, _) in &changed {
            let crd = crds.get(name).await.expect("get");
            let fields = crd.metadata.managed_fields.unwrap_or_default();
            writers.push(format!("{name}: {}", serde_json::to_string(&fields).unwrap_or_default()));
        }
        panic!("osm-bootstrap and the operator disagree on OSM's CRDs: changed {changed:?}\n{}", writers.join("\n"));
    }

    // Nothing we created made OSM log an error.
    let bootstrap = real_ready_pod(&pods, "osm-bootstrap").await.name_any();
    for pod in [&controller, &injector, &bootstrap] {
        let errors = error_lines(&pods, pod).await;
        assert!(errors.is_empty(), "{pod} logged errors:\n{}", errors.join("\n"));
    }

    // Teardown: nothing OSM creates at run time comes back once the installation is gone.
    delete_and_wait_gone(&client, "bookstore").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let meshconfig = meshconfigs.get_opt("osm-mesh-config").await; // an error once its CRD is gone
    assert!(!matches!(meshconfig, Ok(Some(_))), "osm-bootstrap recreated the MeshConfig");
    for name in mesh_crds::generate::osm_crd_names() {
        assert!(crds.get_opt(&name).await.expect("get").is_none(), "{name} came back");
    }
    assert!(mutating.get_opt("osm-webhook-osm").await.expect("get").is_none(), "the injector's webhook came back");
    assert!(validating.get_opt("osm-validator-mesh-osm").await.expect("get").is_none(), "the validator came back");
    let left = pods.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
    assert_eq!(left, 0, "control-plane pods left behind");
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    bookstore_on_the_real_osm_control_plane: [RealPods, OwnedCluster, InProcessOperator],
}
