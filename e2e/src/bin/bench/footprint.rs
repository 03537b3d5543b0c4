//! The footprint section: the resident memory of the operator as it ships, the release
//! `mesh-operator` binary (mimalloc, default settings but the ARM emulator's endpoints) run as its
//! own process, read from `/proc/<pid>/status`. A process of its own, so nothing the bench itself
//! allocates (its clients, the objects it builds and applies, the allocator's retention of those)
//! is counted as the operator's; with as many tokio workers as it gets under the Deployment's CPU
//! limit (`TOKIO_WORKER_THREADS`), whatever this machine's core count.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use mesh_e2e::TestCluster;
use mesh_e2e::arm_emulator::ArmEmulator;
use mesh_e2e::scenario::SECRET_NAMESPACE;

use super::line;

/// Where the operator process serves /metrics (the in-process operators of the other sections
/// serve none).
const METRICS_ADDR: &str = "127.0.0.1:18092";

/// The tokio worker threads of the operator as deployed: `available_parallelism` rounds the
/// container's CPU limit up to whole CPUs.
fn deployed_worker_threads() -> usize {
    let limit = mesh_operator::manifests::workload::CPU_LIMIT;
    let millis = match limit.strip_suffix('m') {
        Some(millis) => millis.parse::<usize>().unwrap_or(1000),
        None => limit.parse::<usize>().map(|cpus| cpus * 1000).unwrap_or(1000),
    };
    millis.div_ceil(1000).max(1)
}

/// The `mesh-operator` binary of this build: `MESH_OPERATOR_BIN`, else beside the bench's own
/// binary (`make bench` builds both).
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESH_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("the bench's own path")?;
    let path = exe.with_file_name("mesh-operator");
    if path.is_file() {
        Ok(path)
    } else {
        Err(anyhow!(
            "{} not found: build it first (cargo build --release -p mesh-operator --bin mesh-operator, as make bench does) or set MESH_OPERATOR_BIN",
            path.display()
        ))
    }
}

/// The operator binary running against the bench's cluster; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    /// The emulator's CA, which the process trusts; removed with it.
    ca_file: PathBuf,
}

impl OperatorProcess {
    /// Starts the binary with ARM and Entra sent to `emulator` (whose CA it trusts), reading client
    /// secrets from [`SECRET_NAMESPACE`], its other settings the defaults; returns once it serves
    /// /readyz.
    pub async fn start(cluster: &TestCluster, emulator: &ArmEmulator) -> anyhow::Result<OperatorProcess> {
        let binary = binary()?;
        let ca_file = std::env::temp_dir().join(format!("mesh-bench-arm-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, emulator.ca_pem()).context("writing the ARM emulator's CA")?;
        let log = std::fs::File::create(std::env::temp_dir().join("mesh-bench-operator.log"))
            .context("the operator process's log file")?;
        let child = Command::new(&binary)
            .args(["run", "--install-crds", "--metrics-addr", METRICS_ADDR])
            .args(["--lease-namespace", SECRET_NAMESPACE])
            .args(["--azure-arm-endpoint", emulator.endpoint(), "--azure-authority-host", emulator.endpoint()])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("TOKIO_WORKER_THREADS", deployed_worker_threads().to_string())
            .env(mesh_provisioner::azure::tls::EXTRA_CA_ENV, &ca_file)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("the operator process's log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let process = OperatorProcess { child, ca_file };
        let started = Instant::now();
        while process.get("/readyz").await.is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(anyhow!("{} did not serve /readyz on {METRICS_ADDR} in 60 s", binary.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(process)
    }

    /// `/proc/<pid>/status` of the process.
    fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default()
    }

    /// The body of `path` on the process's metrics address (HTTP/1.0, no client dependency).
    async fn get(&self, path: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(METRICS_ADDR).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| anyhow!("no HTTP response"))?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(anyhow!("GET {path}: {}", head.lines().next().unwrap_or_default()));
        }
        Ok(body.to_string())
    }

    /// Prints the process's resident memory now and its peak, and the objects in its caches.
    pub async fn report(&self, label: &str) {
        let status = self.status();
        let mib = |field: &str| super::status_field_mib(&status, field);
        line(
            label,
            format!(
                "{:.1} MiB: {:.1} MiB heap and stacks (RssAnon), {:.1} MiB of the binary's pages (RssFile); peak {:.1} MiB; {} threads",
                mib("VmRSS:"),
                mib("RssAnon:"),
                mib("RssFile:"),
                mib("VmHWM:"),
                status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap_or_default().trim()
            ),
        );
        let metrics = self.get("/metrics").await.unwrap_or_default();
        // `meshoperator_managed_objects{kind="…"} N`, largest first.
        let mut by_kind: Vec<(String, f64)> = metrics
            .lines()
            .filter_map(|l| l.strip_prefix("meshoperator_managed_objects{kind=\""))
            .filter_map(|l| l.split_once("\"} "))
            .filter_map(|(kind, n)| n.parse::<f64>().ok().map(|n| (kind.to_string(), n)))
            .collect();
        by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = by_kind.iter().map(|(_, n)| n).sum();
        let kinds: Vec<String> = by_kind.iter().filter(|(_, n)| *n > 0.0).map(|(k, n)| format!("{n} {k}")).collect();
        line("  managed objects in its caches", format!("{total} ({})", kinds.join(", ")));
    }
}

impl Drop for OperatorProcess {
    /// SIGTERM first (the operator shuts down as under Kubernetes), SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
