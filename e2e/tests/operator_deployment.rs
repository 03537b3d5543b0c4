//! The operator as its Deployment says, for real: `meshctl install --image mesh-operator:dev`
//! applies `deploy/install.yaml`; the local control plane runs the pod from the image `make image`
//! built, under runc, with the Deployment's hardening (UID 65532, read-only root, no capabilities)
//! and its ServiceAccount's projected token; the Deployment becomes Available through the real
//! `/readyz`. Then, with no operator in the test process:
//! - the bookstore scenario (apply, 50/50 → 0/100, delete and teardown) converges;
//! - two replicas elect one leader (the other stands by and writes nothing); killing the leader
//!   hands the Lease to another replica, which carries on;
//! - the container killed in the middle of an apply restarts and converges.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstallation;
use mesh_e2e::image::{Image, OPERATOR_TAG};
use mesh_e2e::local_images::image_store;
use mesh_e2e::scenario::{self, CONVERGE, apply, delete_and_wait_gone, managed_objects, sample, wait_ready};
use mesh_e2e::{TestCluster, wait};
use mesh_operator::manifests::{LEASE_NAME, METRICS_PORT, NAME, NAMESPACE, RUN_AS};
use mesh_operator::meshctl::install::{self, InstallOptions, UninstallOptions};

/// How the local control plane marks a pod it runs for real, and where it forwards pod ports.
const RUNTIME_ANNOTATION: &str = "localcluster.meshoperator.dev/runtime";
const PORTS_ANNOTATION: &str = "localcluster.meshoperator.dev/ports";
/// The container's name in the Deployment.
const CONTAINER: &str = "operator";

/// One operator installation at a time: the tests share the cluster-scoped install.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster, which must run pods for real, and the image, which must be in its store.
fn cluster() -> Option<&'static TestCluster> {
    let cluster = TestCluster::get()?;
    if let Err(error) = Image::open(&image_store(), OPERATOR_TAG) {
        panic!("the operator image: {error}");
    }
    Some(cluster)
}

/// `meshctl install --image mesh-operator:dev`, then `replicas` replicas; returns how long it
/// took until the Deployment was Available.
async fn install_operator(admin: &Client, replicas: i32) -> Duration {
    let started = Instant::now();
    let mut out = Vec::new();
    let options = InstallOptions { image: Some(OPERATOR_TAG.to_string()), timeout: CONVERGE, ..Default::default() };
    if let Err(error) = install::install(admin, &options, &mut out).await {
        panic!("meshctl install --image {OPERATOR_TAG}: {error}\n{}", String::from_utf8_lossy(&out));
    }
    if replicas != 1 {
        scale(admin, replicas).await;
    }
    started.elapsed()
}

/// Scales the operator Deployment and waits until that many replicas are available.
async fn scale(admin: &Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let scale = serde_json::json!({"spec": {"replicas": replicas}});
    deployments.patch_scale(NAME, &PatchParams::default(), &Patch::Merge(&scale)).await.expect("scale");
    wait::until(&format!("{replicas} operator replicas to be available"), CONVERGE, || async {
        let (ready, state) = install::operator_ready(admin).await.map_err(|e| e.to_string())?;
        if ready { Ok(()) } else { Err(state) }
    })
    .await;
}

async fn uninstall_operator(admin: &Client) {
    let mut out = Vec::new();
    let options = UninstallOptions { delete_installations: true, timeout: CONVERGE, ..Default::default() };
    if let Err(error) = install::uninstall(admin, &options, &mut out).await {
        panic!("meshctl uninstall: {error}\n{}", String::from_utf8_lossy(&out));
    }
}

/// The operator's pods that run and are not being deleted, by name.
async fn running_pods(admin: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let list = pods.list(&ListParams::default().labels(&format!("app.kubernetes.io/name={NAME}"))).await.expect("pods");
    let mut running: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by_key(|p| p.name_any());
    running
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// The loopback address the local control plane forwards the pod's metrics port to.
fn metrics_address(pod: &Pod) -> SocketAddr {
    let ports =
        annotation(pod, PORTS_ANNOTATION).unwrap_or_else(|| panic!("{}: no {PORTS_ANNOTATION}", pod.name_any()));
    ports
        .split(',')
        .find_map(|pair| pair.strip_prefix(&format!("{METRICS_PORT}=")))
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("{}: port {METRICS_PORT} is not forwarded: {ports}", pod.name_any()))
}

/// The sum of a metric's samples in a pod's `/metrics`.
async fn metric(pod: &Pod, name: &str) -> f64 {
    let (code, body) = mesh_operator::server::get(metrics_address(pod), "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200, "{}: /metrics answered {code}", pod.name_any());
    body.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn lease_holder(admin: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    leases.get_opt(LEASE_NAME).await.expect("lease").and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

/// runc's view of one pod's operator container (the local control plane's state dir).
struct Container {
    root: PathBuf,
    id: String,
}

impl Container {
    /// The pod's operator container, in the local control plane's runc state dir.
    fn of(cluster: &TestCluster, pod: &Pod) -> Container {
        let root = cluster.runc_root().expect("the local control plane keeps runc state in its data dir");
        Container { root, id: format!("{NAMESPACE}.{}.{CONTAINER}", pod.name_any()) }
    }

    fn runc(&self, args: &[&str]) -> String {
        let output = Command::new("runc").arg("--root").arg(&self.root).args(args).output().expect("runc runs");
        assert!(
            output.status.success(),
            "runc {args:?}: {}",
            String::from_utf8_lossy(&output.stderr) + String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// The container's init process, from `runc state`.
    fn pid(&self) -> u32 {
        let state: serde_json::Value = serde_json::from_str(&self.runc(&["state", &self.id])).expect("runc state");
        assert_eq!(state["status"], "running", "{}: {state}", self.id);
        state["pid"].as_u64().expect("pid") as u32
    }

    fn kill(&self) {
        self.runc(&["kill", &self.id, "KILL"]);
    }
}

fn proc_file(pid: u32, name: &str) -> String {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join(name))
        .unwrap_or_else(|e| panic!("/proc/{pid}/{name}: {e}"))
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
}

/// The process is the image's binary running as the Deployment says: UID/GID 65532, no
/// capabilities, no privilege escalation, a read-only root, the projected token and in-cluster
/// settings, no kubeconfig.
fn assert_hardened_and_in_cluster(container: &Container) {
    let pid = container.pid();
    let cmdline: Vec<String> =
        proc_file(pid, "cmdline").split('\0').filter(|a| !a.is_empty()).map(String::from).collect();
    assert_eq!(cmdline.first().map(String::as_str), Some("/usr/local/bin/mesh-operator"), "{cmdline:?}");
    assert!(cmdline.iter().any(|a| a == "--leader-elect"), "{cmdline:?}");
    let status = proc_file(pid, "status");
    let run_as = RUN_AS.to_string();
    for field in ["Uid", "Gid"] {
        let ids = status_field(&status, field);
        assert!(ids.split_whitespace().all(|id| id == run_as), "{field}: {ids}");
    }
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000", "no effective capabilities");
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000000", "no permitted capabilities");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "allowPrivilegeEscalation: false");
    let root = proc_file(pid, "mountinfo")
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|fields| fields.get(4) == Some(&"/"))
        .expect("a root mount")
        .join(" ");
    let options = root.split(' ').nth(5).unwrap_or_default().to_string();
    assert!(options.split(',').any(|o| o == "ro"), "the root filesystem is read-only: {root}");
    let environ = proc_file(pid, "environ");
    let env: Vec<&str> = environ.split('\0').collect();
    assert!(env.iter().any(|e| e.starts_with("KUBERNETES_SERVICE_HOST=")), "in-cluster settings: {env:?}");
    assert!(!env.iter().any(|e| e.starts_with("KUBECONFIG=")), "no kubeconfig: {env:?}");
    let token =
        Path::new("/proc").join(pid.to_string()).join("root/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert!(std::fs::metadata(&token).is_ok_and(|m| m.len() > 0), "the projected token is mounted");
}

/// Seconds from the container's start to the pod's Ready condition, as the pod status says.
fn start_to_ready_seconds(pod: &Pod) -> Option<i64> {
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.as_ref()?.iter().find(|c| c.name == CONTAINER)?;
    let started = container.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
    let ready = status.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref()?.0.as_second() - started.as_second())
}

async fn the_containerised_operator_converges_the_bookstore_and_tears_it_down() {
    let Some(cluster) = cluster() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    let install_time = install_operator(&admin, 1).await;

    let pods = running_pods(&admin).await;
    assert_eq!(pods.len(), 1, "one replica: {:?}", pods.iter().map(|p| p.name_any()).collect::<Vec<_>>());
    let pod = &pods[0];
    assert_eq!(annotation(pod, RUNTIME_ANNOTATION), Some("runc"), "the operator pod runs for real");
    let container = Container::of(cluster, pod);
    let listed = container.runc(&["list"]);
    assert!(listed.lines().any(|l| l.starts_with(&container.id) && l.contains("running")), "runc list:\n{listed}");
    assert_hardened_and_in_cluster(&container);
    let (code, body) = mesh_operator::server::get(metrics_address(pod), "/readyz").await.expect("GET /readyz");
    assert_eq!((code, body.as_str()), (200, "ok\n"), "the real /readyz");
    eprintln!(
        "operator image: meshctl install -> Deployment Available in {:.1}s; container start -> pod Ready {:?}s",
        install_time.as_secs_f64(),
        start_to_ready_seconds(pod)
    );
    assert_eq!(lease_holder(&admin).await.as_deref(), Some(pod.name_any().as_str()), "the pod leads");

    let mut mi = sample("bookstore.yaml");
    apply(&admin, &mi).await;
    wait_ready(&admin, "bookstore").await;
    scenario::shift_bookstore_to_v2(&admin, &mut mi).await;
    assert!(metric(pod, "meshoperator_api_writes_total").await > 0.0, "the container wrote the installation");
    delete_and_wait_gone(&admin, "bookstore").await;
    let left = managed_objects(&admin, "bookstore").await;
    assert!(left.is_empty(), "left behind: {left:?}");
    uninstall_operator(&admin).await;
}

async fn two_replicas_elect_one_leader_and_another_takes_over_when_it_is_killed() {
    let Some(cluster) = cluster() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    install_operator(&admin, 2).await;
    let pods = running_pods(&admin).await;
    assert_eq!(pods.len(), 2, "{:?}", pods.iter().map(|p| p.name_any()).collect::<Vec<_>>());
    let holder = wait::until("a replica to hold the Lease", CONVERGE, || async {
        lease_holder(&admin).await.ok_or_else(|| "no holder".to_string())
    })
    .await;
    let leader = pods.iter().find(|p| p.name_any() == holder).unwrap_or_else(|| panic!("the holder {holder} runs"));
    let standby = pods.iter().find(|p| p.name_any() != holder).expect("a standby replica");

    let mut mi = sample("bookstore.yaml");
    apply(&admin, &mi).await;
    wait_ready(&admin, "bookstore").await;
    assert_eq!(metric(leader, "meshoperator_leader").await, 1.0, "{holder} leads");
    assert_eq!(metric(standby, "meshoperator_leader").await, 0.0, "{} stands by", standby.name_any());
    assert!(metric(leader, "meshoperator_api_writes_total").await > 0.0, "the leader wrote");
    assert_eq!(metric(standby, "meshoperator_api_writes_total").await, 0.0, "the standby wrote nothing");

    // Kill the leader's process (no graceful step-down: its Lease must expire), then scale the
    // Deployment back to one replica, its pod the one to go (lowest deletion cost), so that neither
    // the killed identity nor a fresh replacement can take the Lease: the standby must.
    Container::of(cluster, leader).kill();
    let pods_api: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let cost =
        serde_json::json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-1000"}}});
    pods_api.patch(&holder, &PatchParams::default(), &Patch::Merge(&cost)).await.expect("deletion cost");
    scale(&admin, 1).await;
    let killed_at = Instant::now();
    wait::until(&format!("the standby {} to take the Lease", standby.name_any()), CONVERGE, || async {
        match lease_holder(&admin).await {
            Some(h) if h == standby.name_any() => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
    eprintln!(
        "leader election: the standby {} took over from the killed {holder} after {:.1}s",
        standby.name_any(),
        killed_at.elapsed().as_secs_f64()
    );
    let new_leader = standby;
    wait::until("the new leader to report leading", CONVERGE, || async {
        if metric(new_leader, "meshoperator_leader").await == 1.0 { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    let left: Vec<String> = running_pods(&admin).await.iter().map(|p| p.name_any()).collect();
    assert_eq!(left, vec![new_leader.name_any()], "the standby is the one replica left");

    // The new leader carries on: the split moves, the teardown completes.
    scenario::shift_bookstore_to_v2(&admin, &mut mi).await;
    assert!(metric(new_leader, "meshoperator_api_writes_total").await > 0.0, "the new leader wrote");
    delete_and_wait_gone(&admin, "bookstore").await;
    assert!(managed_objects(&admin, "bookstore").await.is_empty());
    uninstall_operator(&admin).await;
}

async fn a_container_killed_in_the_middle_of_an_apply_restarts_and_converges() {
    let Some(cluster) = cluster() else { return };
    let _serial = SERIAL.lock().await;
    let admin = cluster.client().await;
    install_operator(&admin, 1).await;
    let pod = running_pods(&admin).await.into_iter().next().expect("the operator pod");

    let mi = sample("bookstore.yaml");
    apply(&admin, &mi).await;
    // Kill it once the control plane is being written, before the installation is Ready.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "osm-system");
    wait::until("the apply to have started (Deployment osm-system/osm-controller)", CONVERGE, || async {
        deployments.get_opt("osm-controller").await.map_err(|e| e.to_string())?.map(|_| ()).ok_or("not yet".into())
    })
    .await;
    let api: Api<MeshInstallation> = Api::all(admin.clone());
    let before = api.get("bookstore").await.expect("bookstore");
    assert!(
        !matches!(scenario::condition(&before, "Ready"), Some((mesh_crds::ConditionStatus::True, _, _))),
        "the installation was already Ready: the kill would not interrupt the apply"
    );
    Container::of(cluster, &pod).kill();

    let pods_api: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    wait::until("the killed container to be restarted", CONVERGE, || async {
        let pod = pods_api.get(&pod.name_any()).await.map_err(|e| e.to_string())?;
        let restarts = pod
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().find(|c| c.name == CONTAINER))
            .map(|c| (c.restart_count, c.ready))
            .unwrap_or_default();
        if restarts.0 >= 1 && restarts.1 { Ok(()) } else { Err(format!("(restarts, ready) {restarts:?}")) }
    })
    .await;
    wait_ready(&admin, "bookstore").await;
    let restarted = running_pods(&admin).await.into_iter().find(|p| p.name_any() == pod.name_any()).expect("pod");
    assert_hardened_and_in_cluster(&Container::of(cluster, &restarted));
    delete_and_wait_gone(&admin, "bookstore").await;
    assert!(managed_objects(&admin, "bookstore").await.is_empty());
    uninstall_operator(&admin).await;
}

mesh_e2e::e2e_main! {
    the_containerised_operator_converges_the_bookstore_and_tears_it_down: [RealPods, OwnedCluster],
    two_replicas_elect_one_leader_and_another_takes_over_when_it_is_killed: [RealPods, OwnedCluster],
    a_container_killed_in_the_middle_of_an_apply_restarts_and_converges: [RealPods, OwnedCluster],
}
