//! The benchmark suite on the local control plane: `make bench` (or
//! `cargo run --release -p mesh-e2e --bin bench -- [convergence] [steady] [footprint] [scale]`).
//!
//! Each section prints its figures as `name: value` lines and how to reproduce them. Nothing here
//! is a test: the figures depend on the machine, and nothing fails on a slow one.
//!
//! - convergence ([`convergence`]): the bookstore sample from apply to Ready through the operator,
//!   against two baselines applying the same rendered objects (`mesh_provisioner::plan::plan`) and
//!   waiting for the same workloads: a plain client server-side applying them one by one in the
//!   operator's order, and `kubectl apply --server-side` + `kubectl wait`; both ratios, and the
//!   write requests each made on the way.
//! - steady ([`steady`]): requests the operator sends over 5 resyncs (2 s) of a Ready bookstore,
//!   counted on its client (writes; reads that did not come from its watch caches; new watches)
//!   and, for writes, by the API server itself (`apiserver_request_total`).
//! - footprint ([`footprint`]): resident memory of the release `mesh-operator` binary run as its
//!   own process: idle with the bookstore, and idle with 1,000 more enrolled namespaces and 200
//!   apps (the CRD caps namespaces and apps at 256 per MeshInstallation, so they are spread over 5
//!   installations).
//! - scale ([`scale`]): an AKS Istio add-on installation (ARM emulator) in GatewayAPI mode with
//!   200 apps, 64 access policies and 16 splits: time to converge and to re-converge after one
//!   weight change; and the SMI → Gateway API translation of 2,000 SMI objects over 200 apps,
//!   server-side applied with a plain client, then re-translated after one weight change.

mod convergence;
mod footprint;
mod kubectl;
mod scale;
mod steady;

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The operator's own allocator (`operator/src/bin/mesh-operator.rs`): the operator runs in this
/// process, so its memory and speed are measured as they ship.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context as _, anyhow};
use kube::Client;
use kube::api::Api;
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_e2e::TestCluster;
use mesh_e2e::arm_emulator::{self, ArmEmulator};
use mesh_e2e::scenario;

/// How long any one wait of the bench may take.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Field `name` (e.g. `VmRSS:`) of a `/proc/<pid>/status` text, in MiB (0 when absent).
fn status_field_mib(status: &str, name: &str) -> f64 {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
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

/// Polls every 100 ms (finer than `scenario::wait_ready`: this is a measurement) until `name` has
/// all `types` True for its generation; returns the time since `since`.
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

fn line(name: &str, value: impl std::fmt::Display) {
    println!("  {name}: {value}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn meminfo_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

/// The machine's load averages (`/proc/loadavg`): every figure depends on them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

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
        "machine: {} CPU(s), {:.1} GiB memory, load {}; profile: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        meminfo_gib(),
        load(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    let cluster = TestCluster::get().context("no cluster (E2E_PROVIDER)")?;
    let client = cluster.client().await;

    if chosen.contains(&"convergence") {
        convergence::run(cluster, &client).await?;
    }
    let needs_operator = chosen.iter().any(|s| matches!(*s, "steady" | "footprint" | "scale"));
    if !needs_operator {
        println!("\nload at the end: {}", load());
        return Ok(());
    }
    let counts = Arc::new(steady::Counts::default());
    // The operator reaches Azure where its own settings say: the emulator, started first.
    let emulator_needed = chosen.contains(&"scale") || chosen.contains(&"footprint");
    let emulator = if emulator_needed { Some(ArmEmulator::start(Some(client.clone())).await) } else { None };
    let operator = steady::start_counted(cluster, &client, counts.clone(), emulator.as_ref()).await?;
    if chosen.contains(&"steady") {
        steady::run(&client, &operator, &counts).await?;
    }
    // From here on the operator is the shipped binary in its own process when the footprint is
    // measured, so nothing of the bench's own is counted; else the in-process one goes on.
    let (in_process, process) = match (&emulator, chosen.contains(&"footprint")) {
        (Some(emulator), true) => {
            operator.stop().await;
            println!("\n## footprint: resident memory of the release mesh-operator binary in its own process");
            let process = footprint::OperatorProcess::start(cluster, emulator).await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
            process.report("idle with the bookstore (VmRSS)").await;
            (None, Some(process))
        }
        _ => (Some(operator), None),
    };
    if let Some(emulator) = &emulator {
        emulator.add_cluster(scale::SUB, "bench-rg", "bench-scale", "eastus", "1.30.4");
        scenario::put_secret(&client, "azure-sp", arm_emulator::CLIENT_SECRET).await;
        scale::operator(&client).await?;
        if let Some(process) = &process {
            println!("\n## footprint with 1,000 extra enrolled namespaces and 200 apps (5 installations)");
            scale::footprint_extra(&client).await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
            process.report("idle (VmRSS)").await;
        }
        if chosen.contains(&"scale") {
            scale::translation(&client).await?;
        }
    }
    drop(process);
    if let Some(operator) = in_process {
        operator.stop().await;
    }
    println!("\nload at the end: {}", load());
    println!("done");
    Ok(())
}
