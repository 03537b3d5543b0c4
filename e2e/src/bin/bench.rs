//! The benchmark suite on the local control plane: `make bench` (or
//! `cargo run --release -p mesh-e2e --bin bench -- [convergence] [steady] [footprint] [scale]`).
//!
//! Each section prints its figures as `name: value` lines and how to reproduce them. Nothing here
//! is a test: the figures depend on the machine, and nothing fails on a slow one.
//!
//! - convergence: the bookstore sample from apply to Ready through the operator, against a plain
//!   client server-side applying the same rendered objects (`mesh_provisioner::plan::plan`) in the same
//!   order and waiting for the same workloads; the ratio.
//! - steady: requests the operator sends over 5 resyncs (2 s) of a Ready bookstore, counted on its
//!   client (writes; reads that did not come from its watch caches; new watches) and, for writes,
//!   by the API server itself (`apiserver_request_total`).
//! - footprint: resident memory of this process (the operator runs in it) from /proc/self/status:
//!   before the operator starts (the harness), idle with the bookstore, and idle with 1,000 more
//!   enrolled namespaces and 200 apps (the CRD caps namespaces and apps at 256 per
//!   MeshInstallation, so they are spread over 5 installations).
//! - scale: an AKS Istio add-on installation (ARM emulator) in GatewayAPI mode with 200 apps, 64
//!   access policies and 16 splits: time to converge and to re-converge after one weight change;
//!   and the SMI → Gateway API translation of 2,000 SMI objects over 200 apps, server-side applied
//!   with a plain client, then re-translated after one weight change.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_e2e::TestCluster;
use mesh_e2e::arm_emulator::{self, ArmEmulator};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::emulator_settings;
use mesh_provisioner::desired::{Component, Desired};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(600);
const SUB: &str = "00000000-0000-0000-0000-000000000000";
const SECRET_NAMESPACE: &str = "mesh-operator-system";

// ---------------------------------------------------------------------------------------------
// Counting the operator's requests on its client.

#[derive(Default, Debug)]
struct Counts {
    writes: AtomicU64,
    reads: AtomicU64,
    watches: AtomicU64,
    /// Reads by path with object names left out (`GET /api/v1/namespaces/*/secrets/*`).
    read_paths: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// A request path with namespace and object names replaced by `*`.
fn path_shape(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let prefix = match parts.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return path.to_string(),
    };
    let mut out: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    let mut i = prefix;
    if out.get(i).map(String::as_str) == Some("namespaces") && out.len() > i + 2 {
        out[i + 1] = "*".into();
        i += 2;
    }
    // resource, then its object's name (then a subresource).
    if out.len() > i + 1 {
        out[i + 1] = "*".into();
    }
    format!("/{}", out.join("/"))
}

impl Counts {
    fn snapshot(&self) -> (u64, u64, u64) {
        (self.writes.load(Ordering::Relaxed), self.reads.load(Ordering::Relaxed), self.watches.load(Ordering::Relaxed))
    }
}

#[derive(Clone)]
struct Counting<S> {
    inner: S,
    counts: Arc<Counts>,
}

struct CountingLayer(Arc<Counts>);

impl<S> tower::Layer<S> for CountingLayer {
    type Service = Counting<S>;
    fn layer(&self, inner: S) -> Counting<S> {
        Counting { inner, counts: self.0.clone() }
    }
}

impl<S, B> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let watch = request.uri().query().unwrap_or_default().contains("watch=true");
        let counter = match *request.method() {
            http::Method::GET if watch => &self.counts.watches,
            http::Method::GET | http::Method::HEAD => &self.counts.reads,
            _ => &self.counts.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !watch
            && *request.method() == http::Method::GET
            && let Ok(mut paths) = self.counts.read_paths.lock()
        {
            *paths.entry(path_shape(request.uri().path())).or_insert(0) += 1;
        }
        Box::pin(self.inner.call(request))
    }
}

async fn counted_client(cluster: &TestCluster, counts: Arc<Counts>) -> anyhow::Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&CountingLayer(counts)).build())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn sample(name: &str) -> anyhow::Result<MeshInstallation> {
    let path = format!("{}/../samples/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(MeshInstallation::from_yaml(&std::fs::read_to_string(&path)?)?)
}

async fn apply_mi(client: &Client, mi: &MeshInstallation) -> anyhow::Result<()> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let mut mi = mi.clone();
    mi.metadata.managed_fields = None;
    mi.metadata.resource_version = None;
    mi.status = None;
    api.patch(&mi.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&mi)).await?;
    Ok(())
}

fn conditions_true(mi: &MeshInstallation, types: &[&str]) -> bool {
    let Some(status) = &mi.status else { return false };
    status.observed_generation == mi.metadata.generation
        && types.iter().all(|t| status.conditions.iter().any(|c| c.type_ == *t && c.status == ConditionStatus::True))
}

fn conditions_text(mi: &MeshInstallation) -> String {
    mi.status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.status != ConditionStatus::True && c.type_ != "Degraded")
        .map(|c| {
            format!("{}={:?} {}: {}", c.type_, c.status, c.reason, c.message.chars().take(160).collect::<String>())
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Polls every 100 ms until `name` has all `types` True for its generation; returns the time taken.
async fn wait_conditions(client: &Client, name: &str, types: &[&str], since: Instant) -> anyhow::Result<Duration> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    loop {
        let mi = api.get(name).await?;
        if conditions_true(&mi, types) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > TIMEOUT {
            return Err(anyhow!("{name} did not reach {types:?} in {TIMEOUT:?}: {}", conditions_text(&mi)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_mi(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    let started = Instant::now();
    while api.get_opt(name).await?.is_some() {
        if started.elapsed() > TIMEOUT {
            return Err(anyhow!("{name} was not torn down in {TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn wait_namespaces_gone(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    for name in names {
        while api.get_opt(name).await?.is_some() {
            if started.elapsed() > TIMEOUT {
                return Err(anyhow!("namespace {name} was not deleted in {TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

fn line(name: &str, value: impl std::fmt::Display) {
    println!("  {name}: {value}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// convergence

/// Server-side applies `objects` with field manager `bench`.
async fn ssa(client: &Client, objects: &[&Desired]) -> (usize, Vec<String>) {
    let mut errors = Vec::new();
    let mut applied = 0;
    for d in objects {
        let api: Api<DynamicObject> = match d.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &d.resource),
            None => Api::all_with(client.clone(), &d.resource),
        };
        match api.patch(d.name(), &PatchParams::apply("bench").force(), &Patch::Apply(&d.object)).await {
            Ok(_) => applied += 1,
            Err(e) => errors.push(format!("{}/{}: {e}", d.resource.kind, d.name())),
        }
    }
    (applied, errors)
}

async fn workloads_available(client: &Client, objects: &[Desired]) -> anyhow::Result<bool> {
    for d in objects {
        let ns = d.namespace().unwrap_or_default();
        let ready = match d.resource.kind.as_str() {
            "Deployment" => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                api.get_opt(d.name()).await?.is_some_and(|o| {
                    let want = o.spec.and_then(|s| s.replicas).unwrap_or(1);
                    o.status.and_then(|s| s.available_replicas).unwrap_or(0) >= want
                })
            }
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                api.get_opt(d.name()).await?.is_some_and(|o| {
                    let want = o.spec.and_then(|s| s.replicas).unwrap_or(1);
                    o.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= want
                })
            }
            _ => true,
        };
        if !ready {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes every object labelled for `installation` (namespaces too) and the OSM CRDs.
async fn clean(client: &Client, installation: &str) -> anyhow::Result<()> {
    let selector = mesh_provisioner::labels::installation_selector(installation);
    let mut namespaces = Vec::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds().into_iter().rev() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else { continue };
        for o in list.items {
            if kind.resource.kind == "Namespace" {
                namespaces.push(o.name_any());
            }
            let api: Api<DynamicObject> = match o.namespace() {
                Some(ns) => Api::namespaced_with(client.clone(), &ns, &kind.resource),
                None => Api::all_with(client.clone(), &kind.resource),
            };
            let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        let _ = crds.delete(&name, &DeleteParams::default()).await;
    }
    // A CRD being deleted still answers GET; re-creating it before it is gone would fail later.
    let started = Instant::now();
    for name in mesh_crds::generate::osm_crd_names() {
        while crds.get_opt(&name).await?.is_some() {
            if started.elapsed() > TIMEOUT {
                return Err(anyhow!("CRD {name} was not deleted in {TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    wait_namespaces_gone(client, &namespaces).await
}

async fn convergence(cluster: &TestCluster, client: &Client) -> anyhow::Result<()> {
    println!("\n## convergence: bookstore sample, apply -> Ready");
    let mut mi = sample("bookstore.yaml")?;
    mi.spec.teardown.delete_namespaces = true;
    let name = mi.name_any();

    // A plain client applying the same rendered objects, in the operator's order.
    // The key material the operator's ensure step would generate.
    let ingress_spec = mi.spec.ingress.as_ref().ok_or_else(|| anyhow::anyhow!("the sample has an ingress"))?;
    let webhook_tls = mesh_provisioner::ingress::certs::WebhookTls::generate(
        &mesh_provisioner::ingress::admission_service_name(ingress_spec),
        ingress_spec.nginx.namespace(),
    )?;
    let inputs = mesh_provisioner::plan::PlanInputs { webhook_tls: Some(webhook_tls), ..Default::default() };
    let built = mesh_provisioner::plan::plan(&name, &mi.spec, &inputs)?;
    let mut objects = built.objects;
    let ca = mesh_provisioner::osm::ca::generate_root_ca()?;
    objects.push(mesh_provisioner::osm::ca::ca_bundle_secret(&name, mi.spec.mesh.control_plane_namespace(), &ca)?);
    let started = Instant::now();
    let crds: Vec<&Desired> = objects.iter().filter(|d| d.resource.kind == "CustomResourceDefinition").collect();
    let (mut applied, mut errors) = ssa(client, &crds).await;
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for d in &crds {
        loop {
            let established = crd_api
                .get_opt(d.name())
                .await?
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let namespaces: Vec<&Desired> =
        objects.iter().filter(|d| d.resource.kind == "Namespace" && d.component == Component::Mesh).collect();
    let rest: Vec<&Desired> = objects
        .iter()
        .filter(|d| d.resource.kind != "CustomResourceDefinition")
        .filter(|d| !(d.resource.kind == "Namespace" && d.component == Component::Mesh))
        .collect();
    for batch in [namespaces, rest] {
        let (a, e) = ssa(client, &batch).await;
        applied += a;
        errors.extend(e);
    }
    let applied_in = started.elapsed();
    while !workloads_available(client, &objects).await? {
        if started.elapsed() > TIMEOUT {
            return Err(anyhow!("plain apply: workloads not available in {TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plain = started.elapsed();
    let workloads = objects.iter().filter(|d| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet")).count();
    clean(client, &name).await?;

    // The operator, from the same empty start.
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;
    let started = Instant::now();
    apply_mi(client, &mi).await?;
    let through_operator = wait_conditions(client, &name, &["Ready"], started).await?;
    let reconciles = operator.metrics.reconciles("success");
    delete_mi(client, &name).await?;
    operator.stop().await;
    let _ = cluster;

    line("objects rendered", objects.len());
    line("plain client: server-side applies", format!("{applied} ({} refused)", errors.len()));
    for error in errors.iter().take(3) {
        line("  refused", error);
    }
    line("plain client: all applied after", secs(applied_in));
    line("plain client: apply -> every workload available", secs(plain));
    line("operator: apply -> Ready", format!("{} ({reconciles} reconciles)", secs(through_operator)));
    line("workloads waited for", workloads);
    line(
        "ratio operator / plain client",
        format!("{:.2}", through_operator.as_secs_f64() / plain.as_secs_f64().max(0.001)),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// steady

const RESYNC: Duration = Duration::from_secs(2);

/// Plural resource names the operator writes, plus its own.
fn our_resources() -> Vec<String> {
    let mut out: Vec<String> =
        mesh_provisioner::plan::kinds::all_managed_kinds().into_iter().map(|k| k.resource.plural).collect();
    out.extend(["meshinstallations".to_string(), "events".to_string()]);
    out
}

/// Starts the operator on a counting client with a 2 s resync and brings the bookstore to Ready.
async fn start_counted(
    cluster: &TestCluster,
    client: &Client,
    counts: Arc<Counts>,
    emulator: Option<&ArmEmulator>,
) -> anyhow::Result<OperatorHandle> {
    let operator_client = counted_client(cluster, counts).await?;
    let settings = match emulator {
        Some(emulator) => emulator_settings(test_settings(RESYNC), emulator),
        None => test_settings(RESYNC),
    };
    let operator = OperatorHandle::start(operator_client, settings).await;
    let mut mi = sample("bookstore.yaml")?;
    mi.spec.teardown.delete_namespaces = true;
    apply_mi(client, &mi).await?;
    wait_conditions(client, "bookstore", &["Ready"], Instant::now()).await?;
    Ok(operator)
}

async fn steady(client: &Client, operator: &OperatorHandle, counts: &Counts) -> anyhow::Result<()> {
    println!("\n## steady state: a Ready bookstore over 5 resyncs of {RESYNC:?}");
    // Let the last status write and the caches settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reconciles_before = operator.metrics.reconciles("success");
    let (w0, r0, watch0) = counts.snapshot();
    if let Ok(mut paths) = counts.read_paths.lock() {
        paths.clear();
    }
    let before = mesh_e2e::apiserver_metrics::request_totals(client).await;
    let window = RESYNC * 5 + Duration::from_millis(500);
    tokio::time::sleep(window).await;
    let after = mesh_e2e::apiserver_metrics::request_totals(client).await;
    let (w1, r1, watch1) = counts.snapshot();
    let reconciles = operator.metrics.reconciles("success") - reconciles_before;
    let resources = our_resources();
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    let server_writes: u64 = mesh_e2e::apiserver_metrics::writes_between(&before, &after, &resources).values().sum();
    line("window", secs(window));
    line("reconciles in the window", reconciles);
    line("write requests sent by the operator", w1 - w0);
    line("write requests to its resources seen by the API server (all clients)", server_writes);
    line("reads not served by its watch caches (GET/LIST)", r1 - r0);
    line("new watch requests", watch1 - watch0);
    if let Ok(paths) = counts.read_paths.lock() {
        for (path, n) in paths.iter() {
            line("  read", format!("{n} x GET {path}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// footprint and scale

async fn put_secret(client: &Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SECRET_NAMESPACE}});
    namespaces.patch(SECRET_NAMESPACE, &PatchParams::apply("bench").force(), &Patch::Apply(&ns)).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SECRET_NAMESPACE);
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some("azure-sp".into()), ..Default::default() },
        data: Some(BTreeMap::from([(
            "clientSecret".to_string(),
            ByteString(arm_emulator::CLIENT_SECRET.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets.patch("azure-sp", &PatchParams::apply("bench").force(), &Patch::Apply(&secret)).await?;
    Ok(())
}

/// An AKS Istio add-on installation on `cluster` of the emulator, GatewayAPI mode.
fn istio_installation(
    name: &str,
    cluster: &str,
    namespaces: &[String],
    apps: &[(String, String)],
    access: Vec<Value>,
    splits: Vec<Value>,
) -> anyhow::Result<MeshInstallation> {
    let value = json!({
        "apiVersion": "meshoperator.dev/v1alpha1",
        "kind": "MeshInstallation",
        "metadata": {"name": name},
        "spec": {
            "mesh": {"provider": "AksIstioAddon", "name": "istio"},
            "azure": {
                "subscriptionId": SUB, "resourceGroup": "bench-rg", "clusterName": cluster, "location": "eastus",
                "credential": {"clientSecretRef": {
                    "tenantId": arm_emulator::TENANT_ID, "clientId": arm_emulator::CLIENT_ID,
                    "secretName": "azure-sp"
                }}
            },
            "namespaces": namespaces.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "apps": apps.iter().map(|(ns, app)| json!({
                "name": app, "namespace": ns, "image": "nginx:1.27", "port": 8080
            })).collect::<Vec<_>>(),
            "traffic": {"mode": "GatewayAPI", "access": access, "splits": splits},
            "teardown": {"deleteNamespaces": true}
        }
    });
    Ok(serde_json::from_value(value)?)
}

struct Scale {
    namespaces: Vec<String>,
    apps: Vec<(String, String)>,
}

fn scale_shape() -> Scale {
    let namespaces: Vec<String> = (0..20).map(|n| format!("scale-{n:02}")).collect();
    let apps = (0..200).map(|i| (namespaces[i / 10].clone(), format!("app-{i:03}"))).collect();
    Scale { namespaces, apps }
}

fn scale_policies(shape: &Scale, weight: i64) -> (Vec<Value>, Vec<Value>) {
    let access = (0..64)
        .map(|i| {
            let (ns, dest) = &shape.apps[i * 3];
            let (src_ns, src) = &shape.apps[i * 3 + 1];
            json!({
                "name": format!("{dest}-access"), "namespace": ns, "destination": dest,
                "sources": [{"name": src, "namespace": src_ns}],
                "httpRoutes": [{"name": "api", "pathRegex": format!("/api/{dest}/.*"), "methods": ["GET", "POST"]}]
            })
        })
        .collect();
    let splits = (0..16)
        .map(|k| {
            let (ns, root) = &shape.apps[k * 10];
            let (_, a) = &shape.apps[k * 10 + 1];
            let (_, b) = &shape.apps[k * 10 + 2];
            let w = if k == 0 { weight } else { 50 };
            json!({
                "name": format!("{root}-split"), "namespace": ns, "service": root,
                "backends": [{"service": a, "weight": w}, {"service": b, "weight": 100 - w}]
            })
        })
        .collect();
    (access, splits)
}

async fn scale_operator(client: &Client) -> anyhow::Result<()> {
    println!(
        "\n## scale: 200 apps, 64 access policies and 16 splits in GatewayAPI mode (AKS Istio add-on, ARM emulator)"
    );
    let shape = scale_shape();
    let (access, splits) = scale_policies(&shape, 50);
    let mi = istio_installation("scale", "bench-scale", &shape.namespaces, &shape.apps, access, splits)?;
    let bar = ["MeshReady", "NamespacesReady", "AppsReady", "TrafficReady"];
    let started = Instant::now();
    apply_mi(client, &mi).await?;
    let converged = wait_conditions(client, "scale", &bar, started).await?;
    line("converge (MeshReady, NamespacesReady, AppsReady, TrafficReady)", secs(converged));
    let (access, splits) = scale_policies(&shape, 0);
    let changed = istio_installation("scale", "bench-scale", &shape.namespaces, &shape.apps, access, splits)?;
    let started = Instant::now();
    apply_mi(client, &changed).await?;
    let reconverged = wait_conditions(client, "scale", &bar, started).await?;
    line("re-converge after one weight change (50/50 -> 0/100)", secs(reconverged));
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let now = api.get("scale").await?;
    let traffic_ready = now.status.iter().flat_map(|s| s.conditions.iter()).find(|c| c.type_ == "TrafficReady");
    line(
        "TrafficReady",
        traffic_ready
            .map(|c| format!("{:?} {}: {}", c.status, c.reason, c.message.lines().next().unwrap_or_default()))
            .unwrap_or_default(),
    );
    let mut traffic = 0;
    for kind in mesh_provisioner::plan::kinds::kinds_of(Component::Traffic) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let selector = format!(
            "{},{}=traffic",
            mesh_provisioner::labels::installation_selector("scale"),
            mesh_provisioner::labels::COMPONENT
        );
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            traffic += list.items.len();
        }
    }
    line("traffic objects the operator keeps for it (HTTPRoutes, AuthorizationPolicies)", traffic);
    if traffic == 0 {
        line(
            "note",
            "this build renders no traffic objects in GatewayAPI mode: the weight change re-converges the installation, not HTTPRoutes; the translator is measured below",
        );
    }
    Ok(())
}

/// 2,000 SMI objects over 200 apps in 20 namespaces: per app 4 HTTPRouteGroups, 5 TrafficTargets
/// (one per caller) and 1 TrafficSplit; with each app's Service and Deployment.
fn translation_input(weight: i64) -> mesh_provisioner::translate::TranslationInput {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kube::api::ObjectMeta;
    use mesh_crds::smi::{
        HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TrafficSplit, TrafficSplitBackend,
        TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
    };
    let meta = |name: &str, ns: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        ..Default::default()
    };
    let sa = |name: &str, ns: &str| IdentityBinding {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
    };
    let ns_of = |i: usize| format!("tr-{:02}", i / 10);
    let mut input = mesh_provisioner::translate::TranslationInput::default();
    for i in 0..200usize {
        let ns = ns_of(i);
        let app = format!("app-{i:03}");
        let labels = BTreeMap::from([("app".to_string(), app.clone())]);
        input.deployments.push(Deployment {
            metadata: meta(&app, &ns),
            spec: Some(DeploymentSpec {
                selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels.clone()), ..Default::default() }),
                    spec: Some(PodSpec {
                        service_account_name: Some(app.clone()),
                        containers: vec![Container { name: "app".into(), ..Default::default() }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        input.services.push(Service {
            metadata: meta(&app, &ns),
            spec: Some(ServiceSpec {
                selector: Some(labels),
                ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        for g in 0..4 {
            input.http_route_groups.push(HTTPRouteGroup {
                metadata: meta(&format!("{app}-routes-{g}"), &ns),
                spec: HTTPRouteGroupSpec {
                    hosts: Vec::new(),
                    matches: vec![HTTPMatch {
                        name: "m".into(),
                        path_regex: Some(format!("/api/{app}/v{g}/.*")),
                        methods: vec!["GET".into()],
                        headers: None,
                    }],
                },
            });
        }
        for c in 1..=5usize {
            let caller = (i + c) % 200;
            input.traffic_targets.push(TrafficTarget {
                metadata: meta(&format!("{app}-from-{caller:03}"), &ns),
                spec: TrafficTargetSpec {
                    destination: sa(&app, &ns),
                    rules: vec![TrafficTargetRule {
                        kind: "HTTPRouteGroup".into(),
                        name: format!("{app}-routes-{}", c % 4),
                        matches: vec!["m".into()],
                    }],
                    sources: vec![sa(&format!("app-{caller:03}"), &ns_of(caller))],
                },
            });
        }
        let next = format!("app-{:03}", if i % 10 == 9 { i - 1 } else { i + 1 });
        let w = if i == 0 { weight } else { 80 };
        input.traffic_splits.push(TrafficSplit {
            metadata: meta(&format!("{app}-split"), &ns),
            spec: TrafficSplitSpec {
                service: format!("{app}.{ns}"),
                backends: vec![
                    TrafficSplitBackend { service: app.clone(), weight: w },
                    TrafficSplitBackend { service: next, weight: 100 - w },
                ],
            },
        });
    }
    input
}

async fn apply_values(client: &Client, objects: &[Value]) -> anyhow::Result<(usize, Vec<String>)> {
    let discovery = kube::discovery::Discovery::new(client.clone()).run().await?;
    let mut errors = Vec::new();
    let mut applied = 0;
    for value in objects {
        let object: DynamicObject = serde_json::from_value(value.clone())?;
        let gvk = object.types.as_ref().map(kube::core::GroupVersionKind::try_from).transpose()?;
        let Some(gvk) = gvk else { continue };
        let Some((resource, _)) = discovery.resolve_gvk(&gvk) else {
            errors.push(format!("{}: not served", gvk.kind));
            continue;
        };
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.patch(&object.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&object)).await {
            Ok(_) => applied += 1,
            Err(e) => errors.push(format!("{}/{}: {e}", gvk.kind, object.name_any())),
        }
    }
    Ok((applied, errors))
}

async fn scale_translation(client: &Client) -> anyhow::Result<()> {
    use mesh_provisioner::translate::{Target, translate};
    println!("\n## scale: translating 2,000 SMI objects over 200 apps (SMI -> Gateway API + Istio)");
    let input = translation_input(80);
    let smi = input.traffic_targets.len()
        + input.http_route_groups.len()
        + input.tcp_routes.len()
        + input.traffic_splits.len();
    let started = Instant::now();
    let translation = translate(&input, Target::Istio);
    let translated_in = started.elapsed();
    let objects = translation.objects().map_err(|e| anyhow!("{e}"))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..20 {
        let name = format!("tr-{n:02}");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        namespaces.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&ns)).await?;
    }
    let started = Instant::now();
    let (applied, errors) = apply_values(client, &objects).await?;
    let applied_in = started.elapsed();

    let changed_input = translation_input(0);
    let started = Instant::now();
    let changed = translate(&changed_input, Target::Istio);
    let changed_objects = changed.objects().map_err(|e| anyhow!("{e}"))?;
    let before: std::collections::HashSet<String> = objects.iter().map(Value::to_string).collect();
    let diff: Vec<Value> = changed_objects.iter().filter(|o| !before.contains(&o.to_string())).cloned().collect();
    let retranslated_in = started.elapsed();
    let started = Instant::now();
    let (reapplied, reerrors) = apply_values(client, &diff).await?;
    let reapplied_in = started.elapsed();

    line("SMI objects in", smi);
    line("objects out (HTTPRoutes + AuthorizationPolicies)", objects.len());
    line("notifications", translation.notifications.len());
    line("translate", format!("{:.0} ms", translated_in.as_secs_f64() * 1000.0));
    line(
        "server-side apply of the output, one client, sequential",
        format!("{} ({applied} applied, {} refused)", secs(applied_in), errors.len()),
    );
    for error in errors.iter().take(3) {
        line("  refused", error);
    }
    line(
        "one weight change: re-translate and diff",
        format!("{:.0} ms, {} object(s) changed", retranslated_in.as_secs_f64() * 1000.0, diff.len()),
    );
    line(
        "one weight change: apply the changed objects",
        format!("{} ({reapplied} applied, {} refused)", secs(reapplied_in), reerrors.len()),
    );
    Ok(())
}

async fn footprint_extra(client: &Client) -> anyhow::Result<(usize, usize)> {
    // 1,000 namespaces in four installations of 250 (the CRD allows 256 each); their apps are the
    // 200 of the `scale` installation (another 20 namespaces).
    let mut names = Vec::new();
    for m in 0..4 {
        let namespaces: Vec<String> = (0..250).map(|n| format!("fp-{m}-{n:03}")).collect();
        let name = format!("footprint-{m}");
        let mi = istio_installation(&name, "bench-scale", &namespaces, &[], Vec::new(), Vec::new())?;
        apply_mi(client, &mi).await?;
        names.push(name);
    }
    let started = Instant::now();
    for name in &names {
        wait_conditions(client, name, &["NamespacesReady"], started).await?;
    }
    line("1,000 extra namespaces enrolled in", secs(started.elapsed()));
    Ok((1000, 200))
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The operator's logs go to stderr, errors only unless RUST_LOG says otherwise; stdout is the report.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = ["convergence", "steady", "footprint", "scale"];
    let chosen: Vec<&str> = if args.is_empty() {
        all.to_vec()
    } else {
        all.iter().copied().filter(|s| args.iter().any(|a| a == s)).collect()
    };
    if chosen.is_empty() {
        return Err(anyhow!("sections: {}", all.join(" ")));
    }
    println!("# mesh-operator benchmarks on the local control plane");
    println!("reproduce: make bench   (cargo run --release -p mesh-e2e --bin bench -- {})", chosen.join(" "));
    println!(
        "machine: {} CPU(s), {:.1} GiB memory; profile: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        meminfo_gib(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    let cluster = TestCluster::get().context("no cluster (E2E_PROVIDER)")?;
    let client = cluster.client().await;
    let (harness_rss, _) = memory();

    if chosen.contains(&"convergence") {
        convergence(cluster, &client).await?;
    }
    let needs_operator = chosen.iter().any(|s| matches!(*s, "steady" | "footprint" | "scale"));
    if !needs_operator {
        return Ok(());
    }
    let counts = Arc::new(Counts::default());
    // The operator reaches Azure where its own settings say: the emulator, started first.
    let emulator_needed = chosen.contains(&"scale") || chosen.contains(&"footprint");
    let emulator = if emulator_needed { Some(ArmEmulator::start(Some(client.clone())).await) } else { None };
    let operator = start_counted(cluster, &client, counts.clone(), emulator.as_ref()).await?;
    if chosen.contains(&"steady") {
        steady(&client, &operator, &counts).await?;
    }
    if chosen.contains(&"footprint") {
        println!("\n## footprint: resident memory of the bench process (operator in-process)");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (idle, _) = memory();
        line("harness alone (runtime, clients; before the operator started)", format!("{harness_rss:.1} MiB"));
        line(
            "idle with the bookstore (VmRSS)",
            format!("{idle:.1} MiB (operator share ~{:.1} MiB)", idle - harness_rss),
        );
    }
    if let Some(emulator) = &emulator {
        emulator.add_cluster(SUB, "bench-rg", "bench-scale", "eastus", "1.30.4");
        put_secret(&client).await?;
        scale_operator(&client).await?;
        if chosen.contains(&"footprint") {
            println!("\n## footprint with 1,000 extra enrolled namespaces and 200 apps (5 installations)");
            footprint_extra(&client).await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (rss, hwm) = memory();
            line("idle (VmRSS)", format!("{rss:.1} MiB (operator share ~{:.1} MiB)", rss - harness_rss));
            line("peak of the whole run (VmHWM)", format!("{hwm:.1} MiB"));
            line(
                "managed objects in the operator's caches",
                operator
                    .metrics
                    .render()
                    .lines()
                    .filter(|l| l.starts_with("meshoperator_managed_objects{"))
                    .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                    .sum::<f64>(),
            );
        }
        if chosen.contains(&"scale") {
            scale_translation(&client).await?;
        }
    }
    operator.stop().await;
    println!("\ndone");
    Ok(())
}

fn meminfo_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}
