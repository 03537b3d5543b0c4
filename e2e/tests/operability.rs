//! Operability against the local control plane: `/readyz` waits for the caches, `/metrics` carries
//! the reconcile, ARM, LRO and notification series with plausible values during the bookstore
//! scenarios, and `meshctl status`, `status --wait`, `namespace list` and `dashboard` read the
//! live installation as the operator left it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use mesh_crds::{ConditionStatus, MeshInstallation, NotificationLevel};
use mesh_e2e::arm_emulator::{self, ArmEmulator};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{
    CONVERGE, apply, delete_and_wait_gone, operator_on_emulator, put_secret, sample, with_client_secret,
};
use mesh_e2e::{TestCluster, client_hook, wait};
use mesh_operator::meshctl::{dashboard, namespaces, status};
use mesh_operator::metrics::{Metrics, Sample, parse_samples};
use tokio::sync::watch;

const SUB: &str = "00000000-0000-0000-0000-000000000000";
const RG: &str = "aks-train-rg";
const CLUSTER: &str = "aks-train-mesh-cluster";
const LOCATION: &str = "eastus";

/// Operator scenarios share cluster-scoped names; run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn condition_true(mi: &MeshInstallation, type_: &str) -> bool {
    let status = mi.status.as_ref();
    status.and_then(|s| s.observed_generation) == mi.metadata.generation
        && status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_ && c.status == ConditionStatus::True))
}

/// Serves `/metrics` of `metrics` on a free loopback port, as `mesh-operator run` does.
async fn metrics_server(metrics: Arc<Metrics>) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ready_tx, ready_rx) = watch::channel(true);
    std::mem::forget(ready_tx);
    (addr, tokio::spawn(mesh_operator::server::serve_listener(listener, ready_rx, metrics)))
}

async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (code, body) = mesh_operator::server::get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    parse_samples(&body)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
}

fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// The reconcile series are consistent: the histogram counts every reconcile, took a plausible
/// time in total, and successes exceed errors on an installation that converges.
fn assert_reconcile_series(samples: &[Sample], at_least: f64) {
    let c = ("controller", "meshinstallation");
    let ok = value(samples, "meshoperator_reconciles_total", &[c, ("result", "success")]).unwrap_or(0.0);
    let errors = value(samples, "meshoperator_reconciles_total", &[c, ("result", "error")]).unwrap_or(0.0);
    let count = value(samples, "meshoperator_reconcile_duration_seconds_count", &[c]).expect("duration histogram");
    let seconds = value(samples, "meshoperator_reconcile_duration_seconds_sum", &[c]).expect("duration sum");
    let inf =
        value(samples, "meshoperator_reconcile_duration_seconds_bucket", &[c, ("le", "+Inf")]).expect("+Inf bucket");
    assert!(ok >= at_least, "successful reconciles {ok} < {at_least}");
    assert!(ok > errors, "successes {ok} vs errors {errors}");
    assert_eq!(count, ok + errors, "the histogram counts every reconcile");
    assert_eq!(inf, count, "+Inf bucket holds every observation");
    assert!(seconds > 0.0 && seconds / count < 30.0, "mean reconcile {}s", seconds / count);
}

/// `meshoperator_notifications` equals the installation's status notifications, per level, and
/// there is at least one (both samples report the ingress rewrite).
fn assert_notifications_match(samples: &[Sample], mi: &MeshInstallation) {
    let notifications = mi.status.clone().unwrap_or_default().notifications;
    eprintln!("notifications of {}: {notifications:?}", mi.name_any());
    assert!(!notifications.is_empty(), "expected a notification");
    for (level, name) in [
        (NotificationLevel::Error, "ERROR"),
        (NotificationLevel::Warning, "WARNING"),
        (NotificationLevel::Info, "INFO"),
    ] {
        let expected = notifications.iter().filter(|n| n.level == level).count() as f64;
        let got = value(samples, "meshoperator_notifications", &[("installation", &mi.name_any()), ("level", name)]);
        assert_eq!(got, Some(expected), "{name}");
    }
}

/// Writes counted by the reconciles (after the first, which only adds the finalizer).
fn api_writes(samples: &[Sample]) -> f64 {
    value(samples, "meshoperator_api_writes_total", &[("controller", "meshinstallation")]).unwrap_or(0.0)
}

async fn metrics_and_meshctl_during_the_self_hosted_bookstore() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    let (addr, server) = metrics_server(operator.metrics.clone()).await;

    // `meshctl status bookstore --wait`, started before the apply so it sees every change.
    let mi = sample("bookstore.yaml");
    apply(&client, &mi).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut progress = Vec::new();
            let result =
                status::wait_ready(&client, "bookstore", CONVERGE, Duration::from_millis(200), &mut progress).await;
            (result.map(|(view, ready)| (view.ready, ready)).map_err(|e| e.to_string()), progress)
        })
    };

    // Scrape while converging: the installation is there but not ready yet, reconciles are counted.
    let during = wait::until("a scrape during convergence", CONVERGE, || async {
        let samples = scrape(addr).await;
        match value(&samples, "meshoperator_installation_ready", &[("installation", "bookstore")]) {
            Some(v) if v == 0.0 && value(&samples, "meshoperator_reconciles_total", &[]).is_some() => Ok(samples),
            other => Err(format!("installation_ready {other:?}")),
        }
    })
    .await;
    assert_reconcile_series(&during, 1.0);

    let (result, progress) = waiter.await.expect("waiter");
    let progress = String::from_utf8_lossy(&progress).to_string();
    assert_eq!(result, Ok((true, true)), "status --wait: {progress}");
    assert!(progress.contains("✔ Ready=True Converged"), "--wait shows the final Ready: {progress}");
    assert!(progress.contains("✘ ") || progress.contains("observed generation"), "--wait shows progress: {progress}");

    // After Ready: the gauges read the caches and status.
    let samples = scrape(addr).await;
    assert_reconcile_series(&samples, 2.0);
    // The control plane, namespaces, apps, ingress and policies: well over a hundred objects.
    assert!(api_writes(&samples) >= 50.0, "writes {}", api_writes(&samples));
    assert_eq!(value(&samples, "meshoperator_installation_ready", &[("installation", "bookstore")]), Some(1.0));
    assert_eq!(value(&samples, "meshoperator_leader", &[]), Some(1.0));
    // 6 control-plane/add-on Deployments, ingress-nginx and the bookstore apps.
    let deployments = value(&samples, "meshoperator_managed_objects", &[("kind", "apps/v1/Deployment")]).unwrap_or(0.0);
    assert!(deployments >= 10.0, "managed Deployments {deployments}");
    let namespaces_managed =
        value(&samples, "meshoperator_managed_objects", &[("kind", "/v1/Namespace")]).unwrap_or(0.0);
    assert!(namespaces_managed >= mi.spec.namespaces.len() as f64, "managed Namespaces {namespaces_managed}");
    // The notification gauges match status level by level (the ingress rewrite is reported as INFO).
    let live = status::fetch(&client, Some("bookstore")).await.expect("fetch");
    assert_notifications_match(&samples, &live[0]);
    assert_eq!(value(&samples, "meshoperator_azure_operations_in_flight", &[("installation", "bookstore")]), Some(0.0));
    assert_eq!(sum(&samples, "meshoperator_arm_requests_total", &[]), 0.0, "a self-hosted mesh calls no ARM");

    // meshctl status on the live installation: the tree from the spec, every condition as it should be.
    let view = status::StatusView::of(&live[0]);
    assert!(view.ready, "{:?}", view.not_ready);
    assert_eq!(status::exit_code(std::slice::from_ref(&view)), 0);
    let text = status::render_text(&view, status::Style { colour: false });
    eprintln!("meshctl status bookstore:\n{text}");
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("├─") || l.starts_with("└─")).collect();
    assert_eq!(
        headers,
        [
            "├─ ✔ mesh: self-hosted OSM v1.2.4 \"osm\" in osm-system, add-ons prometheus, grafana, jaeger",
            "├─ ✔ namespaces: bookstore, bookbuyer, bookthief, bookwarehouse, curl",
            "├─ ✔ apps: 7 apps: bookbuyer/bookbuyer, bookthief/bookthief, bookstore/bookstore, bookstore/bookstore-v2, \
             bookwarehouse/bookwarehouse, bookwarehouse/mysql, curl/curl",
            headers[3],
            "├─ ✔ traffic: SMI: 4 access policies, 1 split",
            "└─ ✔ azure operations: none (no spec.azure)",
        ]
    );
    assert!(headers[3].starts_with("├─ ✔ ingress: ingress-nginx"), "{}", headers[3]);
    assert!(headers[3].ends_with("store.example.com/store -> bookstore/bookstore:14001"), "{}", headers[3]);
    assert!(!text.contains('✘') && !text.contains("Not ready:"), "{text}");
    assert!(text.starts_with("MeshInstallation bookstore: Ready (generation 1)\n"), "{text}");

    // meshctl namespace list: exactly the enrolled namespaces.
    let rows = namespaces::list(&client, Some("osm")).await.expect("namespace list");
    // The spec's namespaces plus the ingress controller's (monitored, not injected), as the operator enrols them.
    let mut expected: Vec<(String, String, String, String, String)> =
        mesh_provisioner::plan::enrolled_namespaces(&mi.spec)
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    "osm".to_string(),
                    if n.sidecar_injection { "enabled" } else { "disabled" }.to_string(),
                    if n.metrics { "enabled" } else { "-" }.to_string(),
                    "bookstore".to_string(),
                )
            })
            .collect();
    expected.sort();
    let listed: Vec<(String, String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.namespace.clone(),
                r.mesh.clone(),
                r.sidecar_injection.clone(),
                r.metrics.clone(),
                r.installation.clone(),
            )
        })
        .collect();
    assert_eq!(listed, expected);
    eprintln!("meshctl namespace list:\n{}", namespaces::render_table(&rows));

    // meshctl dashboard: the running osm-grafana pod of the control-plane namespace is chosen.
    let found = dashboard::find_pod(&client, &live[0]).await.expect("list pods");
    let (target, pod) = found.expect("a Grafana pod to forward to");
    assert_eq!((target.namespace.as_str(), target.port), ("osm-system", 3000));
    assert!(pod.name_any().starts_with("osm-grafana-"), "{}", pod.name_any());
    // With Grafana switched off, the same command explains itself instead.
    let mut off = live[0].clone();
    off.spec.mesh.addons.grafana = false;
    let none = dashboard::find_pod(&client, &off).await.expect("no API call needed").expect_err("no dashboard");
    assert!(none.to_string().contains("spec.mesh.addons.grafana is false"), "{none}");

    delete_and_wait_gone(&client, "bookstore").await;
    // The installation's series are gone with it.
    let after = scrape(addr).await;
    assert_eq!(value(&after, "meshoperator_installation_ready", &[("installation", "bookstore")]), None);
    server.abort();
    operator.stop().await;
}

async fn arm_lro_and_notification_series_during_the_istio_bookstore() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let emulator = ArmEmulator::start(Some(client.clone())).await;
    emulator.add_cluster(SUB, RG, CLUSTER, LOCATION, "1.30.4");
    // Long enough for a scrape to see the operation in flight.
    emulator.set_operation_duration(Duration::from_secs(4));
    put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
    let operator = operator_on_emulator(&client, &emulator).await;
    let (addr, server) = metrics_server(operator.metrics.clone()).await;

    let mut mi = sample("bookstore-istio.yaml");
    mi.spec.mesh.istio = None; // the operator lists meshRevisionProfiles and chooses
    with_client_secret(&mut mi, "azure-sp");
    apply(&client, &mi).await;

    // The add-on is enabled through a long-running operation: the gauge shows it in flight.
    let labels = [("installation", "bookstore-istio")];
    wait::until("an Azure operation in flight", CONVERGE, || async {
        let samples = scrape(addr).await;
        match value(&samples, "meshoperator_azure_operations_in_flight", &labels) {
            Some(v) if v >= 1.0 => Ok(()),
            other => Err(format!("in flight: {other:?}")),
        }
    })
    .await;

    let api: Api<MeshInstallation> = Api::all(client.clone());
    // As e2e/tests/azure.rs: the mesh and the namespaces converge (Istio's data plane does not run
    // on simulated nodes, so Ready is not the bar here).
    let converged = wait::until("bookstore-istio MeshReady and NamespacesReady", CONVERGE, || async {
        let mi = api.get("bookstore-istio").await.map_err(|e| e.to_string())?;
        if condition_true(&mi, "MeshReady") && condition_true(&mi, "NamespacesReady") {
            Ok(mi)
        } else {
            Err(format!("{:?}", mi.status.map(|s| s.conditions)))
        }
    })
    .await;
    let samples = scrape(addr).await;
    assert_reconcile_series(&samples, 2.0);
    assert!(api_writes(&samples) > 0.0, "namespaces and apps were written");
    assert_eq!(value(&samples, "meshoperator_azure_operations_in_flight", &labels), Some(0.0));
    let ready = value(&samples, "meshoperator_installation_ready", &labels);
    assert_eq!(ready, Some(if condition_true(&converged, "Ready") { 1.0 } else { 0.0 }));

    // ARM requests, as the emulator saw them (no faults, so no retries inside a call).
    eprintln!("emulator counts: {:?}", emulator.counts());
    let arm = |operation: &str| sum(&samples, "meshoperator_arm_requests_total", &[("operation", operation)]);
    assert_eq!(arm("GET meshRevisionProfiles"), emulator.count("GET", "meshRevisionProfiles", false) as f64);
    assert_eq!(arm("PUT managedClusters"), emulator.count("PUT", "managedCluster", false) as f64);
    assert!(arm("PUT managedClusters") >= 1.0, "the add-on was enabled with a PUT");
    assert!(arm("GET managedClusters") >= 1.0, "the cluster was read before writing");
    assert!(arm("GET operations") >= 1.0, "the operation was polled");
    let codes: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "meshoperator_arm_requests_total")
        .filter_map(|s| s.labels.get("code").map(String::as_str))
        .collect();
    assert!(codes.iter().all(|c| c.starts_with('2')), "only successful answers: {codes:?}");

    // Notification gauges match the translation findings in status, level by level.
    assert_notifications_match(&samples, &converged);

    // meshctl dashboard on an add-on: a clear message, no port-forward.
    let none = dashboard::find_pod(&client, &converged).await.expect("no API call needed").expect_err("no Grafana");
    assert!(none.to_string().contains("AKS Istio add-on, which deploys no Grafana"), "{none}");

    delete_and_wait_gone(&client, "bookstore-istio").await;
    server.abort();
    operator.stop().await;
}

async fn readyz_is_not_ready_until_the_caches_sync() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    mesh_operator::controller::ensure_crd(&admin, true).await.expect("CRD");
    let hold = Duration::from_secs(4);
    // The initial LIST of MeshInstallations (not their WATCH) is answered only after `hold`: the
    // MeshInstallation cache cannot sync before then.
    let until = Instant::now() + hold;
    let delay_list: client_hook::Hook = Arc::new(move |method, uri| {
        let list =
            method == http::Method::GET && uri.path().ends_with("/meshinstallations") && !client_hook::is_watch(uri);
        if list { until.saturating_duration_since(Instant::now()) } else { Duration::ZERO }
    });
    let client = client_hook::client_with_hook(cluster, delay_list).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ready_tx, ready_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(mesh_operator::server::serve_listener(listener, ready_rx, metrics.clone()));
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(mesh_operator::controller::run(
        client,
        test_settings(Duration::from_secs(300)),
        None,
        async move {
            let _ = stop_rx.await;
        },
        Some(ready_tx),
        metrics,
    ));

    // While the MeshInstallation list is held back, /readyz says 503 and /healthz 200.
    let mut probes = 0;
    while started.elapsed() + Duration::from_millis(500) < hold {
        let (code, body) = mesh_operator::server::get(addr, "/readyz").await.expect("GET /readyz");
        assert_eq!(code, 503, "ready after {:?} although the cache has not synced: {body}", started.elapsed());
        assert!(body.contains("not ready"), "{body}");
        assert_eq!(mesh_operator::server::get(addr, "/healthz").await.expect("GET /healthz").0, 200);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(probes >= 10, "probed {probes} times");

    // Once the list answers, the caches sync and the operator becomes ready.
    let became_ready = wait::until("/readyz to answer 200", Duration::from_secs(60), || async {
        match mesh_operator::server::get(addr, "/readyz").await {
            Ok((200, _)) => Ok(started.elapsed()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(became_ready >= hold, "ready after {became_ready:?}, before the list was answered ({hold:?})");
    eprintln!("ready after {became_ready:?} (list held back for {hold:?})");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
    server.abort();
}

mesh_e2e::e2e_main! {
    metrics_and_meshctl_during_the_self_hosted_bookstore: [SimulatedPods, InProcessOperator],
    arm_lro_and_notification_series_during_the_istio_bookstore: [ArmEmulator, SimulatedPods, InProcessOperator, IstioCrds, GatewayApiCrds],
    readyz_is_not_ready_until_the_caches_sync: [InProcessOperator],
}
