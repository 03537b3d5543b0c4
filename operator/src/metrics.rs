//! Operator metrics (prometheus-client), served as OpenMetrics text on `/metrics`.
//!
//! Counted as things happen:
//! - `meshoperator_reconciles_total{controller,result}` and the histogram
//!   `meshoperator_reconcile_duration_seconds{controller}`;
//! - `meshoperator_api_writes_total{controller}`: write requests reconciles sent to the API server;
//! - `meshoperator_arm_requests_total{operation,code}`: Azure Resource Manager requests by
//!   `METHOD resourceType` and HTTP status (`none` when no answer came), told by the provisioner's
//!   [`ArmObserver`] hook.
//!
//! Read from the controller's caches at scrape time (so they are never stale and cost nothing
//! between scrapes):
//! - `meshoperator_managed_objects{kind}`: objects carrying the managed-by label, per kind;
//! - `meshoperator_azure_operations_in_flight{installation}`: long-running ARM operations kept in status;
//! - `meshoperator_notifications{installation,level}`: translation notifications in status;
//! - `meshoperator_installation_ready{installation}`: 1 when Ready is True;
//! - `meshoperator_leader`: 1 while this replica may write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_crds::{ConditionStatus, MeshInstallation, NotificationLevel, condition_type};
use mesh_provisioner::azure::client::ArmObserver;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set: ordered name/value pairs.
type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The controller label of the MeshInstallation controller.
pub const CONTROLLER: &str = "meshinstallation";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn reconcile_histogram() -> Histogram {
    // 5 ms … ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// What the controller's caches say at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Managed objects per kind (`group/version/Kind`, core kinds as `v1/Kind`).
    pub managed_objects: BTreeMap<String, usize>,
    /// One entry per MeshInstallation.
    pub installations: Vec<InstallationSnapshot>,
    /// Whether this replica leads.
    pub leader: bool,
}

/// The status figures of one installation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallationSnapshot {
    /// Its name.
    pub name: String,
    /// Ready is True.
    pub ready: bool,
    /// Azure long-running operations in flight (kept in status).
    pub azure_operations: usize,
    /// Notifications per level.
    pub notifications: BTreeMap<NotificationLevel, usize>,
}

impl InstallationSnapshot {
    /// The figures of `mi`'s status.
    pub fn of(mi: &MeshInstallation) -> Self {
        let name = mi.metadata.name.clone().unwrap_or_default();
        let Some(status) = &mi.status else {
            return InstallationSnapshot { name, ..Default::default() };
        };
        let mut notifications = BTreeMap::new();
        for n in &status.notifications {
            *notifications.entry(n.level).or_insert(0) += 1;
        }
        InstallationSnapshot {
            name,
            ready: status
                .conditions
                .iter()
                .any(|c| c.type_ == condition_type::READY && c.status == ConditionStatus::True),
            azure_operations: status.azure_operations.len(),
            notifications,
        }
    }
}

/// Reads a [`Snapshot`] on each scrape.
pub type SnapshotSource = Box<dyn Fn() -> Snapshot + Send + Sync>;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_duration: HistogramFamily,
    api_writes: Family<Labels, Counter>,
    arm_requests: Family<Labels, Counter>,
    managed_objects: Family<Labels, Gauge>,
    azure_operations: Family<Labels, Gauge>,
    notifications: Family<Labels, Gauge>,
    installation_ready: Family<Labels, Gauge>,
    leader: Gauge,
    source: Mutex<Option<SnapshotSource>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("meshoperator");
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_duration: HistogramFamily = Family::new_with_constructor(reconcile_histogram);
        let api_writes = Family::<Labels, Counter>::default();
        let arm_requests = Family::<Labels, Counter>::default();
        let managed_objects = Family::<Labels, Gauge>::default();
        let azure_operations = Family::<Labels, Gauge>::default();
        let notifications = Family::<Labels, Gauge>::default();
        let installation_ready = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by controller and result (success or error)", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests reconciles sent to the Kubernetes API server",
            api_writes.clone(),
        );
        registry.register(
            "arm_requests",
            "Azure Resource Manager requests by operation (METHOD resourceType) and HTTP status code (none: no answer)",
            arm_requests.clone(),
        );
        registry.register(
            "managed_objects",
            "Objects carrying app.kubernetes.io/managed-by=mesh-operator in the watch caches, by kind",
            managed_objects.clone(),
        );
        registry.register(
            "azure_operations_in_flight",
            "Azure long-running operations being polled, by installation",
            azure_operations.clone(),
        );
        registry.register(
            "notifications",
            "Translation notifications in status, by installation and level (ERROR, WARNING, INFO)",
            notifications.clone(),
        );
        registry.register(
            "installation_ready",
            "1 when the installation's Ready condition is True, else 0",
            installation_ready.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            api_writes,
            arm_requests,
            managed_objects,
            azure_operations,
            notifications,
            installation_ready,
            leader,
            source: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Records one reconcile of the MeshInstallation controller.
    pub fn record(&self, ok: bool, elapsed: Duration, writes: u64) {
        self.record_for(CONTROLLER, ok, elapsed, writes);
    }

    /// Records one reconcile of `controller`.
    pub fn record_for(&self, controller: &str, ok: bool, elapsed: Duration, writes: u64) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&labels(&[("controller", controller), ("result", result)])).inc();
        self.reconcile_duration.get_or_create(&labels(&[("controller", controller)])).observe(elapsed.as_secs_f64());
        self.api_writes.get_or_create(&labels(&[("controller", controller)])).inc_by(writes);
    }

    /// Records one ARM request.
    pub fn record_arm_request(&self, operation: &str, status: Option<u16>) {
        let code = status.map(|s| s.to_string()).unwrap_or_else(|| "none".to_string());
        self.arm_requests.get_or_create(&labels(&[("operation", operation), ("code", &code)])).inc();
    }

    /// An [`ArmObserver`] feeding these metrics.
    pub fn arm_observer(self: &Arc<Self>) -> Arc<dyn ArmObserver> {
        Arc::new(ArmRequests(self.clone()))
    }

    /// Sets where the scrape-time gauges come from (the controller does, once it runs).
    pub fn set_source(&self, source: SnapshotSource) {
        if let Ok(mut slot) = self.source.lock() {
            *slot = Some(source);
        }
    }

    /// Reconciles recorded so far with `result` (`success` or `error`).
    pub fn reconciles(&self, result: &str) -> u64 {
        self.reconciles.get(&labels(&[("controller", CONTROLLER), ("result", result)])).map(|c| c.get()).unwrap_or(0)
    }

    fn refresh(&self) {
        let snapshot = match self.source.lock() {
            Ok(slot) => match slot.as_ref() {
                Some(source) => source(),
                None => return,
            },
            Err(_) => return,
        };
        self.apply(&snapshot);
    }

    /// Sets the scrape-time gauges from `snapshot`, dropping series of things that are gone.
    pub fn apply(&self, snapshot: &Snapshot) {
        self.managed_objects.clear();
        for (kind, count) in &snapshot.managed_objects {
            self.managed_objects.get_or_create(&labels(&[("kind", kind)])).set(*count as i64);
        }
        self.azure_operations.clear();
        self.notifications.clear();
        self.installation_ready.clear();
        for mi in &snapshot.installations {
            self.azure_operations.get_or_create(&labels(&[("installation", &mi.name)])).set(mi.azure_operations as i64);
            self.installation_ready.get_or_create(&labels(&[("installation", &mi.name)])).set(i64::from(mi.ready));
            for level in [NotificationLevel::Error, NotificationLevel::Warning, NotificationLevel::Info] {
                let count = mi.notifications.get(&level).copied().unwrap_or(0);
                let level = level_name(level);
                self.notifications
                    .get_or_create(&labels(&[("installation", &mi.name), ("level", level)]))
                    .set(count as i64);
            }
        }
        self.leader.set(i64::from(snapshot.leader));
    }

    /// The metrics in the OpenMetrics text format (scrape-time gauges refreshed first).
    pub fn render(&self) -> String {
        self.refresh();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out = "# metrics could not be encoded\n# EOF\n".to_string();
        }
        out
    }
}

/// `ERROR`, `WARNING` or `INFO`, as in status.
pub fn level_name(level: NotificationLevel) -> &'static str {
    match level {
        NotificationLevel::Error => "ERROR",
        NotificationLevel::Warning => "WARNING",
        NotificationLevel::Info => "INFO",
    }
}

struct ArmRequests(Arc<Metrics>);

impl ArmObserver for ArmRequests {
    fn request(&self, operation: &str, status: Option<u16>) {
        self.0.record_arm_request(operation, status);
    }
}

/// One sample of a scraped text: `name{labels} value`, for tests and tools that read `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `meshoperator_reconciles_total`.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the samples of a Prometheus/OpenMetrics text (comments skipped).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in split_labels(labels) {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(k.trim().to_string(), v.trim().trim_matches('"').replace("\\\"", "\""));
            }
        }
        out.push(Sample { name: name.to_string(), labels: map, value });
    }
    out
}

fn split_labels(labels: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in labels.char_indices() {
        match c {
            '\\' if quoted => escaped = !escaped,
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&labels[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    if start < labels.len() {
        parts.push(&labels[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
    }

    #[test]
    fn reconciles_arm_requests_and_snapshots_render_as_named_series() {
        let metrics = Arc::new(Metrics::default());
        metrics.record(true, Duration::from_millis(20), 3);
        metrics.record(true, Duration::from_millis(40), 0);
        metrics.record(false, Duration::from_millis(10), 1);
        let observer = metrics.arm_observer();
        observer.request("PUT managedClusters", Some(201));
        observer.request("PUT managedClusters", Some(201));
        observer.request("GET managedClusters", None);
        metrics.set_source(Box::new(|| Snapshot {
            managed_objects: BTreeMap::from([("apps/v1/Deployment".to_string(), 7)]),
            installations: vec![InstallationSnapshot {
                name: "bookstore".into(),
                ready: true,
                azure_operations: 2,
                notifications: BTreeMap::from([(NotificationLevel::Warning, 3)]),
            }],
            leader: true,
        }));
        let text = metrics.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = parse_samples(&text);
        let get = |name: &str, want: &[(&str, &str)]| value(&samples, name, want);
        let c = ("controller", CONTROLLER);
        assert_eq!(get("meshoperator_reconciles_total", &[c, ("result", "success")]), Some(2.0));
        assert_eq!(get("meshoperator_reconciles_total", &[c, ("result", "error")]), Some(1.0));
        assert_eq!(get("meshoperator_reconcile_duration_seconds_count", &[c]), Some(3.0));
        let sum = get("meshoperator_reconcile_duration_seconds_sum", &[c]).unwrap_or_default();
        assert!((sum - 0.07).abs() < 1e-9, "{sum}");
        assert_eq!(get("meshoperator_api_writes_total", &[c]), Some(4.0));
        assert_eq!(
            get("meshoperator_arm_requests_total", &[("operation", "PUT managedClusters"), ("code", "201")]),
            Some(2.0)
        );
        assert_eq!(
            get("meshoperator_arm_requests_total", &[("operation", "GET managedClusters"), ("code", "none")]),
            Some(1.0)
        );
        assert_eq!(get("meshoperator_managed_objects", &[("kind", "apps/v1/Deployment")]), Some(7.0));
        assert_eq!(get("meshoperator_azure_operations_in_flight", &[("installation", "bookstore")]), Some(2.0));
        assert_eq!(
            get("meshoperator_notifications", &[("installation", "bookstore"), ("level", "WARNING")]),
            Some(3.0)
        );
        assert_eq!(get("meshoperator_notifications", &[("installation", "bookstore"), ("level", "ERROR")]), Some(0.0));
        assert_eq!(get("meshoperator_installation_ready", &[("installation", "bookstore")]), Some(1.0));
        assert_eq!(get("meshoperator_leader", &[]), Some(1.0));
        assert_eq!(metrics.reconciles("success"), 2);
    }

    #[test]
    fn gone_installations_drop_their_series() {
        let metrics = Metrics::default();
        let one = InstallationSnapshot { name: "a".into(), ..Default::default() };
        metrics.apply(&Snapshot { installations: vec![one], ..Default::default() });
        assert!(metrics.render().contains("installation=\"a\""));
        metrics.apply(&Snapshot::default());
        assert!(!metrics.render().contains("installation=\"a\""));
    }

    #[test]
    fn installation_snapshot_counts_status() {
        let mi: MeshInstallation = serde_json::from_value(serde_json::json!({
            "apiVersion": "meshoperator.dev/v1alpha1", "kind": "MeshInstallation",
            "metadata": {"name": "x"},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Converged", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "notifications": [
                    {"level": "ERROR", "object": "TrafficTarget/a/b", "message": "m"},
                    {"level": "INFO", "object": "TrafficTarget/a/c", "message": "m"},
                    {"level": "INFO", "object": "TrafficTarget/a/d", "message": "m"}
                ],
                "azureOperations": [{"operation": "EnableOsmAddon", "resourceId": "/x", "pollingUrl": "https://x", "pollingKind": "Location", "startedAt": "2026-01-01T00:00:00Z"}]
            }
        }))
        .expect("fixture");
        let snap = InstallationSnapshot::of(&mi);
        assert!(snap.ready);
        assert_eq!(snap.azure_operations, 1);
        assert_eq!(snap.notifications.get(&NotificationLevel::Info), Some(&2));
        assert_eq!(snap.notifications.get(&NotificationLevel::Error), Some(&1));
    }

    #[test]
    fn parse_samples_reads_quoted_commas() {
        let s = parse_samples("a_total{x=\"1,2\",y=\"z\"} 3\n# HELP a\nb 4.5\n");
        assert_eq!(s[0].labels.get("x").map(String::as_str), Some("1,2"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].name, "b");
    }
}
