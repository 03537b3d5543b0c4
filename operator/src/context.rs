//! What every reconcile shares.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use mesh_provisioner::apply::ManagedCache;
use tokio::sync::watch;

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a converged installation is checked again.
    pub resync: Duration,
    /// How long to wait before checking a converging installation again.
    pub progress_interval: Duration,
    /// Cap of the error back-off.
    pub max_backoff: Duration,
    /// The operator's own namespace: no installation may put workloads there or enrol it (its
    /// ServiceAccount token can do everything the operator can). Azure credential Secrets are read
    /// from here only.
    pub operator_namespace: String,
    /// How Azure is reached: set by whoever installs the operator, never by a MeshInstallation.
    pub azure: AzureSettings,
}

/// The operator's own Azure settings (flags or environment of `mesh-operator run`).
#[derive(Clone, Debug, Default)]
pub struct AzureSettings {
    /// Endpoints replacing the cloud's (a test emulator); empty in production.
    pub overrides: mesh_provisioner::azure::EndpointOverrides,
    /// The only AKS cluster (ARM resource ID) installations may act on, when set.
    pub cluster_id: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            progress_interval: Duration::from_secs(3),
            max_backoff: Duration::from_secs(300),
            operator_namespace: crate::manifests::NAMESPACE.to_string(),
            azure: AzureSettings::default(),
        }
    }
}

/// The metadata (labels, annotations, deletion) of every namespace of the cluster, from one
/// metadata-only watch: validation reads the labels of the namespaces a spec names, which are not
/// all ours, and would otherwise list every namespace, in full, on every reconcile.
pub type NamespaceStore = Store<PartialObjectMeta<Namespace>>;

/// Starts the namespace watch. The stream drives it and yields nothing: it must be polled for as
/// long as the store is used (the controller does).
pub fn watch_namespaces(client: &Client) -> (NamespaceStore, impl Stream<Item = ()> + Send + 'static) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let writer = reflector::store::Writer::default();
    let store = writer.as_reader();
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(|ns| ns.metadata.managed_fields = None),
    )
    .default_backoff()
    .filter_map(|_| futures::future::ready(None));
    (store, events)
}

/// Shared state of the controller.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Caches of managed objects.
    pub cache: ManagedCache,
    /// Metadata of every namespace.
    pub namespaces: NamespaceStore,
    /// Event recorder.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Settings,
    /// True while this replica holds the leader lease (always true without leader election).
    pub leader: watch::Receiver<bool>,
    /// Consecutive failures per installation, for back-off.
    pub failures: std::sync::Mutex<std::collections::BTreeMap<String, u32>>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Azure Resource Manager clients and back-off windows.
    pub azure: crate::reconcile::azure::AzureState,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        cache: ManagedCache,
        namespaces: NamespaceStore,
        settings: Settings,
        leader: watch::Receiver<bool>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let reporter = Reporter { controller: "mesh-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cache,
            namespaces,
            settings,
            leader,
            failures: Default::default(),
            metrics,
            azure: Default::default(),
        }
    }

    /// Whether this replica may write.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
}
