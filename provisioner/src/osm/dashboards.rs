//! Grafana dashboards of the mesh, ours (not upstream's JSON): a **mesh** view (control plane and
//! overall traffic), a **service** view (traffic to one Service) and a **workload** view (traffic
//! from one workload), over the metrics OSM v1.2.4 exports and the Prometheus add-on scrapes:
//!
//! - `osm_*` from the control plane's `/metrics` (OSM's `pkg/metricsstore`);
//! - `envoy_cluster_*` from the sidecars' `/stats/prometheus`, labelled by our scrape config with
//!   `source_namespace`, `source_service` (the pod's `app`) and `source_workload_name`; Envoy's own
//!   `envoy_cluster_name` is OSM's upstream cluster `<namespace>/<service>|<port>`.
//!
//! Provisioned as files: a dashboard provider (`osm.yaml`) that reads [`DASHBOARD_DIR`], and one
//! JSON file per dashboard, each from its own ConfigMap. The JSON is built here so it re-renders
//! byte-identically (stable key order) and stays steady under server-side apply.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Where Grafana reads provider configs from (its provisioning directory).
pub(crate) const PROVIDER_DIR: &str = "/etc/grafana/provisioning/dashboards";
/// Where the dashboard files are mounted.
pub(crate) const DASHBOARD_DIR: &str = "/etc/grafana/dashboards/osm";
/// Grafana folder the dashboards appear in.
const FOLDER: &str = "Open Service Mesh";
/// Name of the provisioned Prometheus datasource (see the datasources ConfigMap).
pub(crate) const DATASOURCE: &str = "Prometheus";

/// The provider configuration: read-only dashboards from [`DASHBOARD_DIR`] in [`FOLDER`].
pub(crate) fn provider_yaml() -> String {
    format!(
        "apiVersion: 1\nproviders:\n  - name: osm\n    orgId: 1\n    folder: {FOLDER}\n    type: file\n    \
         disableDeletion: true\n    allowUiUpdates: false\n    options:\n      path: {DASHBOARD_DIR}\n"
    )
}

/// File name → dashboard JSON, for the dashboards ConfigMap.
pub(crate) fn dashboard_files() -> BTreeMap<String, String> {
    [("osm-mesh.json", mesh()), ("osm-service.json", service()), ("osm-workload.json", workload())]
        .into_iter()
        .map(|(file, dashboard)| (file.to_string(), serde_json::to_string_pretty(&dashboard).unwrap_or_default()))
        .collect()
}

/// A Prometheus query target.
fn target(expr: &str, legend: &str) -> Value {
    json!({"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": "A"})
}

/// A panel at grid position (x, y), `w` wide, of `kind` (`timeseries` or `stat`), with `unit`.
fn panel(id: u32, (x, y, w): (u32, u32, u32), kind: &str, title: &str, unit: &str, targets: Vec<Value>) -> Value {
    let targets: Vec<Value> = targets
        .into_iter()
        .enumerate()
        .map(|(i, mut t)| {
            t["refId"] = json!(char::from(b'A' + (i as u8)).to_string());
            t
        })
        .collect();
    json!({
        "id": id,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": if kind == "stat" { 4 } else { 8 }},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets,
    })
}

/// A query variable over the values of `label` in `metric`, filtered by `filter`.
fn variable(name: &str, label: &str, metric: &str, filter: &str) -> Value {
    let query = format!("label_values({metric}{filter}, {label})");
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": false,
        "multi": false,
        "sort": 1,
    })
}

fn dashboard(uid: &str, title: &str, description: &str, variables: Vec<Value>, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["osm", "mesh-operator"],
        "editable": false,
        "schemaVersion": 30,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": variables},
        "panels": panels,
    })
}

/// The mesh as a whole: OSM's control plane and every sidecar's traffic.
pub(crate) fn mesh() -> Value {
    let panels = vec![
        panel(
            1,
            (0, 0, 6),
            "stat",
            "OSM version",
            "none",
            vec![target("max by (version) (osm_version_info)", "{{version}}")],
        ),
        panel(
            2,
            (6, 0, 6),
            "stat",
            "Connected sidecars",
            "none",
            vec![target("sum(osm_proxy_connect_count)", "sidecars")],
        ),
        panel(
            3,
            (12, 0, 6),
            "stat",
            "Monitored namespaces",
            "none",
            vec![target("max(osm_resource_namespace_count)", "namespaces")],
        ),
        panel(
            4,
            (18, 0, 6),
            "stat",
            "Certificates issued",
            "none",
            vec![target("sum(osm_cert_issued_count)", "certificates")],
        ),
        panel(
            5,
            (0, 4, 12),
            "timeseries",
            "xDS requests by type",
            "reqps",
            vec![target("sum by (type) (rate(osm_proxy_xds_request_count[5m]))", "{{type}}")],
        ),
        panel(
            6,
            (12, 4, 12),
            "timeseries",
            "Sidecar config update time (p99)",
            "s",
            vec![target(
                "histogram_quantile(0.99, sum by (le, resource_type) (rate(osm_proxy_config_update_time_bucket[5m])))",
                "{{resource_type}}",
            )],
        ),
        panel(
            7,
            (0, 12, 12),
            "timeseries",
            "Control-plane errors by code",
            "short",
            vec![target("sum by (err_code) (increase(osm_error_err_code_count[5m]))", "{{err_code}}")],
        ),
        panel(
            8,
            (12, 12, 12),
            "timeseries",
            "Admission webhook responses",
            "short",
            vec![target(
                "sum by (kind, success) (increase(osm_admission_webhook_response_total[5m]))",
                "{{kind}} success={{success}}",
            )],
        ),
        panel(
            9,
            (0, 20, 12),
            "timeseries",
            "Mesh request rate by response class",
            "reqps",
            vec![target(
                "sum by (envoy_response_code_class) (rate(envoy_cluster_upstream_rq_xx[1m]))",
                "{{envoy_response_code_class}}xx",
            )],
        ),
        panel(
            10,
            (12, 20, 12),
            "timeseries",
            "Mesh success rate",
            "percentunit",
            vec![target(
                "sum(rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class!=\"5\"}[1m])) / sum(rate(envoy_cluster_upstream_rq_xx[1m]))",
                "non-5xx",
            )],
        ),
    ];
    dashboard(
        "osm-mesh",
        "OSM / Mesh",
        "Open Service Mesh control plane and the traffic of every sidecar (mesh-operator)",
        Vec::new(),
        panels,
    )
}

/// Traffic *to* one Service: Envoy upstream clusters named `<namespace>/<service>|<port>`.
pub(crate) fn service() -> Value {
    let to = "envoy_cluster_name=~\"$namespace/$service.*\"";
    let panels = vec![
        panel(
            1,
            (0, 0, 12),
            "timeseries",
            "Requests to the service by caller",
            "reqps",
            vec![target(
                &format!(
                    "sum by (source_namespace, source_service) (rate(envoy_cluster_upstream_rq_total{{{to}}}[1m]))"
                ),
                "{{source_namespace}}/{{source_service}}",
            )],
        ),
        panel(
            2,
            (12, 0, 12),
            "timeseries",
            "Responses by class",
            "reqps",
            vec![target(
                &format!("sum by (envoy_response_code_class) (rate(envoy_cluster_upstream_rq_xx{{{to}}}[1m]))"),
                "{{envoy_response_code_class}}xx",
            )],
        ),
        panel(
            3,
            (0, 8, 12),
            "timeseries",
            "Active connections to the service",
            "short",
            vec![target(
                &format!("sum by (source_service) (envoy_cluster_upstream_cx_active{{{to}}})"),
                "{{source_service}}",
            )],
        ),
        panel(
            4,
            (12, 8, 12),
            "timeseries",
            "Bytes sent / received",
            "Bps",
            vec![
                target(&format!("sum(rate(envoy_cluster_upstream_cx_tx_bytes_total{{{to}}}[1m]))"), "sent"),
                target(&format!("sum(rate(envoy_cluster_upstream_cx_rx_bytes_total{{{to}}}[1m]))"), "received"),
            ],
        ),
        panel(
            5,
            (0, 16, 24),
            "timeseries",
            "Failures: timeouts, resets, connect timeouts",
            "short",
            vec![
                target(&format!("sum(increase(envoy_cluster_upstream_rq_timeout{{{to}}}[5m]))"), "request timeouts"),
                target(&format!("sum(increase(envoy_cluster_upstream_rq_rx_reset{{{to}}}[5m]))"), "resets"),
                target(
                    &format!("sum(increase(envoy_cluster_upstream_cx_connect_timeout{{{to}}}[5m]))"),
                    "connect timeouts",
                ),
            ],
        ),
    ];
    dashboard(
        "osm-service",
        "OSM / Service",
        "Traffic to one mesh Service, by caller (mesh-operator)",
        vec![
            variable("namespace", "source_namespace", "envoy_cluster_upstream_rq_total", ""),
            // Services are the cluster names' middle part; offer the callers' view of them.
            variable(
                "service",
                "source_service",
                "envoy_cluster_upstream_rq_total",
                "{source_namespace=\"$namespace\"}",
            ),
        ],
        panels,
    )
}

/// Traffic *from* one workload (its sidecar's upstream clusters).
pub(crate) fn workload() -> Value {
    let from = "source_namespace=\"$namespace\", source_workload_name=\"$workload\"";
    let panels = vec![
        panel(
            1,
            (0, 0, 12),
            "timeseries",
            "Outbound requests by destination",
            "reqps",
            vec![target(
                &format!("sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{{{from}}}[1m]))"),
                "{{envoy_cluster_name}}",
            )],
        ),
        panel(
            2,
            (12, 0, 12),
            "timeseries",
            "Outbound responses by destination and class",
            "reqps",
            vec![target(
                &format!(
                    "sum by (envoy_cluster_name, envoy_response_code_class) (rate(envoy_cluster_upstream_rq_xx{{{from}}}[1m]))"
                ),
                "{{envoy_cluster_name}} {{envoy_response_code_class}}xx",
            )],
        ),
        panel(
            3,
            (0, 8, 12),
            "timeseries",
            "Active outbound connections",
            "short",
            vec![target(
                &format!("sum by (envoy_cluster_name) (envoy_cluster_upstream_cx_active{{{from}}})"),
                "{{envoy_cluster_name}}",
            )],
        ),
        panel(
            4,
            (12, 8, 12),
            "timeseries",
            "Retries and overflows",
            "short",
            vec![
                target(&format!("sum(increase(envoy_cluster_upstream_rq_retry{{{from}}}[5m]))"), "retries"),
                target(
                    &format!("sum(increase(envoy_cluster_upstream_rq_pending_overflow{{{from}}}[5m]))"),
                    "pending overflow",
                ),
            ],
        ),
    ];
    dashboard(
        "osm-workload",
        "OSM / Workload",
        "Traffic from one meshed workload's sidecar (mesh-operator)",
        vec![
            variable("namespace", "source_namespace", "envoy_cluster_upstream_rq_total", ""),
            variable(
                "workload",
                "source_workload_name",
                "envoy_cluster_upstream_rq_total",
                "{source_namespace=\"$namespace\"}",
            ),
        ],
        panels,
    )
}
