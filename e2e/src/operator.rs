//! Runs mesh-operator in-process against the test cluster, and stops or kills it.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use mesh_operator::context::Settings;
use mesh_operator::metrics::Metrics;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running operator.
pub struct OperatorHandle {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// True once the operator reports ready (caches listed, leadership known).
    ready: tokio::sync::watch::Receiver<bool>,
}

/// The operator's ServiceAccount, as the API server names it.
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:mesh-operator-system:mesh-operator";

/// A client authenticated as the operator's ServiceAccount (impersonation, as the API server
/// authorises a pod with that ServiceAccount's token). The audit log names it in `impersonatedUser`.
pub async fn service_account_client(cluster: &crate::TestCluster) -> Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    mesh_operator::init_crypto();
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    config.auth_info.impersonate = Some(SERVICE_ACCOUNT.to_string());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{}", mesh_operator::manifests::NAMESPACE),
        "system:authenticated".to_string(),
    ]);
    Client::try_from(config).expect("client")
}

/// Applies the CRD, namespace, ServiceAccount, roles and bindings of `deploy/install.yaml` (not
/// the Deployment: the operator runs in-process), as `meshctl install` would.
pub async fn install_rbac(admin: &Client) {
    use mesh_operator::meshctl::install;
    let objects: Vec<kube::api::DynamicObject> = install::objects(install::INSTALL_YAML)
        .expect("install.yaml parses")
        .into_iter()
        .filter(|o| o.types.as_ref().is_none_or(|t| t.kind != "Deployment"))
        .collect();
    install::apply_objects(admin, &objects, false, &mut Vec::new()).await.expect("apply install.yaml's RBAC");
    mesh_operator::controller::ensure_crd(admin, true).await.expect("the CRD is Established");
}

/// Settings for tests: quick progress checks, short back-off.
pub fn test_settings(resync: Duration) -> Settings {
    Settings {
        resync,
        progress_interval: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        ..Settings::default()
    }
}

impl OperatorHandle {
    /// Starts the controller (installing the CRD if needed).
    pub async fn start(client: Client, settings: Settings) -> OperatorHandle {
        // Operator logs to a file per suite (see harness::init_logs); RUST_LOG overrides.
        crate::harness::init_logs();
        mesh_operator::controller::ensure_crd(&client, true).await.expect("MeshInstallation CRD installs");
        Self::spawn(client, settings)
    }

    /// Starts the controller as the operator's ServiceAccount, bound by `deploy/install.yaml`'s
    /// roles (applied by `admin`).
    pub async fn start_as_service_account(
        cluster: &crate::TestCluster,
        admin: &Client,
        settings: Settings,
    ) -> OperatorHandle {
        install_rbac(admin).await;
        let client = service_account_client(cluster).await;
        // RBAC is cached by the authorizer: wait until the roles apply.
        let probe: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::all(client.clone());
        for _ in 0..100 {
            if probe.list(&kube::api::ListParams::default().limit(1)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self::spawn(client, settings)
    }

    fn spawn(client: Client, settings: Settings) -> OperatorHandle {
        let (tx, rx) = oneshot::channel::<()>();
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let task_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(error) =
                mesh_operator::controller::run(client, settings, None, shutdown, Some(ready_tx), task_metrics).await
            {
                eprintln!("operator stopped with error: {error}");
            }
        });
        OperatorHandle { shutdown: Some(tx), task: Some(task), metrics, ready }
    }

    /// Waits (up to a minute) until the operator is ready as its readiness probe says: its caches
    /// have listed. An operator deployed in a cluster is ready before anyone applies an
    /// installation; a measurement that starts earlier counts its start-up too.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = tokio::time::timeout(Duration::from_secs(60), ready.wait_for(|ready| *ready)).await;
    }

    /// Graceful stop: in-flight reconciles finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Crash: the task is aborted wherever it is, as a killed process would be.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for OperatorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The log of a test process that runs the operator, captured ([`LogCapture::install`]).
#[derive(Clone, Default)]
pub struct LogCapture {
    lines: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.lines.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Makes this capture the process's log: call it before the operator starts, in a test
    /// binary whose tests' own requests log nothing at WARN.
    pub fn install(&self) -> bool {
        tracing::dispatcher::set_global_default(self.dispatch()).is_ok()
    }

    /// A subscriber writing INFO and above of every crate here, without colours.
    fn dispatch(&self) -> tracing::Dispatch {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::Dispatch::new(subscriber)
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().map(String::from).collect()
    }

    /// The lines logged at WARN or ERROR.
    pub fn warnings(&self) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect()
    }
}
