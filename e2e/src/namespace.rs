//! Per-test temporary namespaces: random suffix, labelled, removed when dropped — also when the
//! test fails.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use rand::distr::{Alphanumeric, SampleString};

/// Label on every temporary namespace, for cleaning up leftovers by hand: `kubectl delete ns -l mesh-e2e`.
pub const TEMP_LABEL: &str = "mesh-e2e";

/// A namespace that is deleted when this value is dropped.
pub struct TempNamespace {
    /// Its name.
    pub name: String,
    kubeconfig: PathBuf,
}

/// A random lowercase suffix.
pub fn random_suffix(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len).to_ascii_lowercase()
}

impl TempNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn create(cluster: &crate::TestCluster, prefix: &str) -> TempNamespace {
        let name = format!("{prefix}-{}", random_suffix(6));
        let api: Api<Namespace> = Api::all(cluster.client().await);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEMP_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TempNamespace { name, kubeconfig: cluster.kubeconfig.clone() }
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        // Drop may run inside a test's runtime: delete from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                mesh_operator::init_crypto();
                let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) else { return };
                let Ok(config) = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await else { return };
                let Ok(client) = kube::Client::try_from(config) else { return };
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        })
        .join();
    }
}
