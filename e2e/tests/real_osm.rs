//! The bookstore on OSM v1.2.4's **real** control plane: osm-bootstrap, osm-controller and
//! osm-injector built from OSM's Go module (`e2e/osm/`, `make osm-images`) run under runc on the
//! local control plane, with the flags, environment, RBAC, MeshConfig, CA Secret and webhook
//! configurations the operator gives them. The sidecars and the bookstore apps stay simulated
//! (Envoy's image is not local).
//!
//! What it shows: the three become Ready through their own probes; the controller and injector
//! create their webhook configurations; osm-controller logs no error; its debug server shows the
//! access policies and the split weights of the spec (after 50/50 and 0/100), as OSM parsed them;
//! teardown leaves nothing OSM recreates.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{apply, condition, delete_and_wait_gone, sample};
use mesh_e2e::{TestCluster, wait};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMESPACE: &str = "osm-system";
const CONVERGE: Duration = Duration::from_secs(300);
const RUNTIME_ANNOTATION: &str = "localcluster.meshoperator.dev/runtime";
const PORTS_ANNOTATION: &str = "localcluster.meshoperator.dev/ports";
/// The controller's debug server (MeshConfig `observability.enableDebugServer`).
const DEBUG_PORT: u16 = 9092;

/// Builds OSM's images, with the chart's `curlimages/curl` init image, into a store of this suite's
/// own (seconds when warm) and points the local control plane at it. Other suites' stores stay
/// without curl, so their osm-controller and osm-injector remain simulated.
fn use_store_with_osm_images() {
    let store = mesh_e2e::local_images::image_store().with_extension("real-osm");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = std::process::Command::new("bash")
        .arg(format!("{root}/e2e/osm/build.sh"))
        .arg("--with-curl")
        .arg(mesh_e2e::cluster::bin_dir())
        .arg(&store)
        .output()
        .expect("running e2e/osm/build.sh");
    assert!(output.status.success(), "e2e/osm/build.sh failed:\n{}", String::from_utf8_lossy(&output.stderr));
    // SAFETY: the only test of this binary, before the local control plane (a child that reads the
    // variable) is started and before any other thread reads the environment.
    unsafe { std::env::set_var("MESH_IMAGE_STORE", &store) };
}

async fn wait_ready(client: &Client, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("MeshInstallation {name} to be Ready"), CONVERGE, || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, "Ready") {
            Some((ConditionStatus::True, _, _))
                if mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation =>
            {
                Ok(())
            }
            other => Err(format!("Ready={other:?}; conditions={:?}", mi.status.map(|s| s.conditions))),
        }
    })
    .await
}

/// The one pod of `app` in the control-plane namespace, once it runs for real and is Ready.
async fn real_ready_pod(pods: &Api<Pod>, app: &str) -> Pod {
    wait::until(&format!("{app} to run for real and be Ready"), CONVERGE, || async {
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

async fn bookstore_on_the_real_osm_control_plane() {
    use_store_with_osm_images();
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    let mut mi = sample("bookstore.yaml");
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;

    // The three components run for real and pass their own readiness probes.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    real_ready_pod(&pods, "osm-bootstrap").await;
    let controller = real_ready_pod(&pods, "osm-controller").await.name_any();
    let injector = real_ready_pod(&pods, "osm-injector").await.name_any();

    // They created their webhook configurations, pointing at the Services we render.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhook = wait::until("osm-webhook-osm", CONVERGE, || async {
        mutating.get_opt("osm-webhook-osm").await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
    })
    .await;
    let service = webhook.webhooks.as_ref().and_then(|w| w[0].client_config.service.clone()).expect("service");
    assert_eq!(
        (service.namespace.as_str(), service.name.as_str(), service.port),
        (NAMESPACE, "osm-injector", Some(9090))
    );
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let validator = wait::until("osm-validator-mesh-osm", CONVERGE, || async {
        validating.get_opt("osm-validator-mesh-osm").await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
    })
    .await;
    let service = validator.webhooks.as_ref().and_then(|w| w[0].client_config.service.clone()).expect("service");
    assert_eq!((service.namespace.as_str(), service.name.as_str()), (NAMESPACE, "osm-validator"));

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
    wait::until("osm-controller to see the 0/100 split", CONVERGE, || async {
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

    // Nothing we created made OSM log an error.
    for pod in [&controller, &injector] {
        let errors = error_lines(&pods, pod).await;
        assert!(errors.is_empty(), "{pod} logged errors:\n{}", errors.join("\n"));
    }

    // Teardown: nothing OSM creates at run time comes back once the installation is gone.
    delete_and_wait_gone(&client, "bookstore").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(mutating.get_opt("osm-webhook-osm").await.expect("get").is_none(), "the injector's webhook came back");
    assert!(validating.get_opt("osm-validator-mesh-osm").await.expect("get").is_none(), "the validator came back");
    let left = pods.list(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
    assert_eq!(left, 0, "control-plane pods left behind");
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    bookstore_on_the_real_osm_control_plane: [RealPods, OwnedCluster, InProcessOperator],
}
