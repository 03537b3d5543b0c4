//! The steady section, and counting the operator's requests on its client.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use mesh_e2e::TestCluster;
use mesh_e2e::arm_emulator::ArmEmulator;
use mesh_e2e::client_hook::{self, Hook};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{self, emulator_settings};

use super::{line, secs, wait_conditions};

/// Requests one client sent.
#[derive(Default, Debug)]
pub struct Counts {
    writes: AtomicU64,
    reads: AtomicU64,
    watches: AtomicU64,
    /// Reads by path with object names left out (`GET /api/v1/namespaces/*/secrets/*`).
    read_paths: Mutex<BTreeMap<String, u64>>,
    /// Writes by method and path with object names left out (`PATCH /apis/apps/v1/namespaces/*/deployments/*`).
    write_paths: Mutex<BTreeMap<String, u64>>,
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
    /// `(writes, reads, watches)` so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (self.writes.load(Ordering::Relaxed), self.reads.load(Ordering::Relaxed), self.watches.load(Ordering::Relaxed))
    }

    /// Writes so far by method and path shape.
    pub fn writes_by_path(&self) -> BTreeMap<String, u64> {
        self.write_paths.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn count(&self, method: &http::Method, uri: &http::Uri) {
        let bump = |paths: &Mutex<BTreeMap<String, u64>>, key: String| {
            if let Ok(mut paths) = paths.lock() {
                *paths.entry(key).or_insert(0) += 1;
            }
        };
        match *method {
            http::Method::GET if client_hook::is_watch(uri) => {
                self.watches.fetch_add(1, Ordering::Relaxed);
            }
            http::Method::GET | http::Method::HEAD => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                bump(&self.read_paths, path_shape(uri.path()));
            }
            _ => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                bump(&self.write_paths, format!("{method} {}", path_shape(uri.path())));
            }
        }
    }
}

/// A client of `cluster` that counts its requests in `counts`.
pub async fn counted_client(cluster: &TestCluster, counts: Arc<Counts>) -> Client {
    let hook: Hook = Arc::new(move |method, uri| {
        counts.count(method, uri);
        Duration::ZERO
    });
    client_hook::client_with_hook(cluster, hook).await
}

const RESYNC: Duration = Duration::from_secs(2);

/// Plural resource names the operator writes, plus its own.
fn our_resources() -> Vec<String> {
    let mut out: Vec<String> =
        mesh_provisioner::plan::kinds::all_managed_kinds().into_iter().map(|k| k.resource.plural).collect();
    out.extend(["meshinstallations".to_string(), "events".to_string()]);
    out
}

/// Starts the operator on a counting client with a 2 s resync and brings the bookstore to Ready.
pub async fn start_counted(
    cluster: &TestCluster,
    client: &Client,
    counts: Arc<Counts>,
    emulator: Option<&ArmEmulator>,
) -> anyhow::Result<OperatorHandle> {
    let operator_client = counted_client(cluster, counts).await;
    let settings = match emulator {
        Some(emulator) => emulator_settings(test_settings(RESYNC), emulator),
        None => test_settings(RESYNC),
    };
    let operator = OperatorHandle::start(operator_client, settings).await;
    let mut mi = scenario::sample("bookstore.yaml");
    mi.spec.teardown.delete_namespaces = true;
    scenario::apply(client, &mi).await;
    wait_conditions(client, "bookstore", &["Ready"], Instant::now()).await?;
    Ok(operator)
}

/// The steady section: what a Ready installation costs the API server.
pub async fn run(client: &Client, operator: &OperatorHandle, counts: &Counts) -> anyhow::Result<()> {
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
