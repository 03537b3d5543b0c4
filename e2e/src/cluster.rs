//! One cluster per test binary: started on first use, shared by the binary's tests, stopped when
//! the binary exits (the local control plane watches its stdin and exits when we are gone).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Which cluster the suites run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// The local control plane (default).
    Local,
    /// A kind cluster (needs `kind` and a Docker engine).
    Kind,
    /// An existing cluster from `E2E_KUBECONFIG` (else `KUBECONFIG`).
    Kubeconfig,
}

impl Provider {
    /// From `E2E_PROVIDER`.
    pub fn from_env() -> Result<Provider, String> {
        match std::env::var("E2E_PROVIDER").unwrap_or_default().as_str() {
            "" | "local" => Ok(Provider::Local),
            "kind" => Ok(Provider::Kind),
            "kubeconfig" => Ok(Provider::Kubeconfig),
            other => Err(format!("E2E_PROVIDER={other} is not one of local, kind, kubeconfig")),
        }
    }

    /// As `E2E_PROVIDER` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::Kind => "kind",
            Provider::Kubeconfig => "kubeconfig",
        }
    }
}

/// A running cluster the tests can talk to.
#[derive(Debug)]
pub struct TestCluster {
    /// Path of the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Which provider it came from.
    pub provider: Provider,
    /// Whether it is simulated (kwok nodes): only pods whose images are in the local image store
    /// run for real there (`e2e/cluster/README.md`, "Real pods").
    pub simulated: bool,
    /// The local control plane's data dir (its component log, `runc/` state, pod dirs).
    pub data_dir: Option<PathBuf>,
    /// The API server's audit log (JSON lines), when started with [`TestCluster::get_audited`].
    pub audit_log: Option<PathBuf>,
    process: Mutex<Option<Child>>,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static CLUSTER_WITH_WEBHOOKS: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static CLUSTER_AUDITED: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static CLUSTER_AS_BY_HAND: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static CLUSTER_WITHOUT_ISTIO: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// What the local control plane is started with.
#[derive(Clone, Copy, Default)]
struct Options {
    admission_webhooks: bool,
    audit: bool,
    /// `localcluster`'s own defaults for webhooks, as the README's manual steps start it.
    as_by_hand: bool,
    /// Leave Istio's CRDs out (`localcluster --no-istio`), as on a cluster without Istio.
    no_istio: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where the local control plane binaries are built.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESH_E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/mesh-operator/bin")
}

impl TestCluster {
    /// The binary's shared cluster, started on first use. Panics with the reason when it cannot
    /// start; when an opt-in provider's prerequisites are missing, the calling test ends as
    /// ignored with the reason ([`crate::harness::skip`]). Never `None`: the `Option` keeps the
    /// suites' `let Some(cluster) = TestCluster::get() else { return };` unchanged.
    pub fn get() -> Option<&'static TestCluster> {
        Self::unwrap(CLUSTER.get_or_init(|| TestCluster::start(Options::default())))
    }

    /// Like [`TestCluster::get`], but the local control plane calls admission webhooks: real pods
    /// serve theirs; a webhook whose Service has only simulated pods fails fast (on loopback), as
    /// a webhook whose backend is down does (`--simulated-webhooks=refuse`): for tests of what a
    /// broken webhook does to a cluster.
    pub fn get_with_admission_webhooks() -> Option<&'static TestCluster> {
        Self::unwrap(
            CLUSTER_WITH_WEBHOOKS
                .get_or_init(|| TestCluster::start(Options { admission_webhooks: true, ..Default::default() })),
        )
    }

    /// The local control plane as the README's manual steps start it (`localcluster`'s defaults):
    /// admission webhooks on, real pods serving theirs, and webhooks whose Service has only
    /// simulated pods answered "allowed" by the local control plane (`--simulated-webhooks=admit`).
    /// So once OSM's images are in the store (`make cluster`), OSM's real injector injects the apps.
    /// The API server also keeps its audit log (`audit_log`), which the manual steps do not need.
    pub fn get_as_by_hand() -> Option<&'static TestCluster> {
        Self::unwrap(
            CLUSTER_AS_BY_HAND
                .get_or_init(|| TestCluster::start(Options { as_by_hand: true, audit: true, ..Default::default() })),
        )
    }

    /// Like [`TestCluster::get`], with the API server's audit log on (`audit_log`, read with
    /// [`crate::audit`]): for tests of what the operator's requests were. The local control plane
    /// only; other providers give `audit_log: None`.
    pub fn get_audited() -> Option<&'static TestCluster> {
        Self::unwrap(CLUSTER_AUDITED.get_or_init(|| TestCluster::start(Options { audit: true, ..Default::default() })))
    }

    /// Like [`TestCluster::get`], without Istio's CRDs (the local control plane only): a cluster
    /// that never had Istio, where `security.istio.io` kinds are not served.
    pub fn get_without_istio() -> Option<&'static TestCluster> {
        Self::unwrap(
            CLUSTER_WITHOUT_ISTIO.get_or_init(|| TestCluster::start(Options { no_istio: true, ..Default::default() })),
        )
    }

    fn unwrap(result: &'static Result<TestCluster, String>) -> Option<&'static TestCluster> {
        match result {
            Ok(cluster) => Some(cluster),
            Err(reason) if reason.starts_with("SKIP:") => {
                let reason = reason.trim_start_matches("SKIP:").trim();
                eprintln!("e2e: no cluster: {reason}");
                crate::harness::skip(reason)
            }
            Err(reason) => panic!("test cluster: {reason}"),
        }
    }

    fn start(options: Options) -> Result<TestCluster, String> {
        match Provider::from_env()? {
            Provider::Local => start_local(options),
            Provider::Kind => start_kind(),
            Provider::Kubeconfig => {
                let path = std::env::var_os("E2E_KUBECONFIG")
                    .or_else(|| std::env::var_os("KUBECONFIG"))
                    .ok_or_else(|| "SKIP: E2E_PROVIDER=kubeconfig needs E2E_KUBECONFIG (or KUBECONFIG)".to_string())?;
                Ok(TestCluster {
                    kubeconfig: path.into(),
                    provider: Provider::Kubeconfig,
                    simulated: false,
                    data_dir: None,
                    audit_log: None,
                    process: Mutex::new(None),
                })
            }
        }
    }

    /// A new client for the calling test's runtime (clients must not outlive the runtime that made them).
    pub async fn client(&self) -> Client {
        mesh_operator::init_crypto();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("readable kubeconfig");
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("valid kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// `runc --root` of the local control plane's real containers (`runc --root DIR list`).
    pub fn runc_root(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.join("runc"))
    }

    /// Stops the local control plane (tests normally let the process exit instead).
    pub fn stop(&self) {
        if let Ok(mut guard) = self.process.lock()
            && let Some(mut child) = guard.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `tool` is on PATH.
pub fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds the local control plane (Go's build cache makes repeat builds take seconds).
pub fn build_local() -> Result<PathBuf, String> {
    if !which("go") {
        return Err("the local control plane is built from Go modules, but `go` is not on PATH: install Go 1.24+ (https://go.dev/dl) or set E2E_PROVIDER=kubeconfig".into());
    }
    let dir = bin_dir();
    let script = workspace_root().join("e2e/cluster/build.sh");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stdout(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed:\n{}", script.display(), String::from_utf8_lossy(&output.stderr)));
    }
    eprintln!("e2e: control plane binaries ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(dir.join("localcluster"))
}

fn start_local(options: Options) -> Result<TestCluster, String> {
    let binary = build_local()?;
    let workdir = std::env::temp_dir().join(format!(
        "mesh-e2e-{}-{}{}{}{}",
        std::process::id(),
        u8::from(options.admission_webhooks),
        u8::from(options.audit),
        u8::from(options.as_by_hand),
        u8::from(options.no_istio)
    ));
    std::fs::create_dir_all(&workdir).map_err(|e| format!("creating {}: {e}", workdir.display()))?;
    let kubeconfig = workdir.join("kubeconfig");
    let log = workdir.join("cluster.log");
    let data_dir = workdir.join("data");
    // Everything the control plane prints besides the READY line (the log file's path, a failure
    // summary) goes to the same log, never into the test output.
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("creating {}: {e}", log.display()))?;
    let started = Instant::now();
    let mut command = Command::new(&binary);
    // Unless a suite asks for them, webhooks are not called (their configurations are stored):
    // suites keep the behaviour they were written for. With them, a webhook backed only by
    // simulated pods fails fast, as one whose backend is down does.
    if options.admission_webhooks {
        command.arg("--admission-webhooks").arg("--simulated-webhooks=refuse");
    } else if !options.as_by_hand {
        command.arg("--admission-webhooks=false");
    }
    if options.no_istio {
        command.arg("--no-istio");
    }
    let audit_log = if options.audit {
        let (log, args) = crate::audit::apiserver_args(&workdir)?;
        command.arg("--apiserver-args").arg(args);
        Some(log)
    } else {
        None
    };
    let mut child = command
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--node-labels")
        .arg("agentpool=agentpool")
        .arg("--nodes")
        .arg("2")
        .arg("--log-file")
        .arg(&log)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--exit-on-stdin-close")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("LOCALCLUSTER READY") => break,
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String =
                    tail.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(format!(
                    "the local control plane exited before it was ready; last log lines ({}):\n{tail}",
                    log.display()
                ));
            }
        }
    }
    eprintln!(
        "e2e: local control plane ready in {:.1}s (kubeconfig {})",
        started.elapsed().as_secs_f64(),
        kubeconfig.display()
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(TestCluster {
        kubeconfig,
        provider: Provider::Local,
        simulated: true,
        data_dir: Some(data_dir),
        audit_log,
        process: Mutex::new(Some(child)),
    })
}

fn start_kind() -> Result<TestCluster, String> {
    if !which("kind") {
        return Err("SKIP: E2E_PROVIDER=kind needs the `kind` command".into());
    }
    let docker_ok = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !docker_ok {
        return Err("SKIP: E2E_PROVIDER=kind needs a running Docker engine (`docker info` failed)".into());
    }
    let name = std::env::var("E2E_KIND_CLUSTER").unwrap_or_else(|_| "mesh-operator-e2e".to_string());
    let kubeconfig = std::env::temp_dir().join(format!("mesh-e2e-kind-{name}.kubeconfig"));
    let exists = Command::new("kind")
        .args(["get", "clusters"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == name))
        .unwrap_or(false);
    if !exists {
        let status = Command::new("kind")
            .args(["create", "cluster", "--name", &name, "--wait", "120s"])
            .status()
            .map_err(|e| format!("kind create cluster: {e}"))?;
        if !status.success() {
            return Err("kind create cluster failed".into());
        }
    }
    let output =
        Command::new("kind").args(["get", "kubeconfig", "--name", &name]).output().map_err(|e| e.to_string())?;
    std::fs::write(&kubeconfig, &output.stdout).map_err(|e| e.to_string())?;
    Ok(TestCluster {
        kubeconfig,
        provider: Provider::Kind,
        simulated: false,
        data_dir: None,
        audit_log: None,
        process: Mutex::new(None),
    })
}

/// Waits `timeout` for `f` to be true, polling.
pub fn wait_blocking(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
