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
        // Operator logs on stderr (shown for failing tests); RUST_LOG overrides.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mesh_provisioner=info,mesh_operator=info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        mesh_operator::controller::ensure_crd(&client, true).await.expect("MeshInstallation CRD installs");
        let (tx, rx) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::default());
        let task_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(error) =
                mesh_operator::controller::run(client, settings, None, shutdown, None, task_metrics).await
            {
                eprintln!("operator stopped with error: {error}");
            }
        });
        OperatorHandle { shutdown: Some(tx), task: Some(task), metrics }
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
