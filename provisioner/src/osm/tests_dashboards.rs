//! Tests of the Grafana dashboards: they parse, they are wired into Grafana's provisioning, and
//! every metric they query is one OSM v1.2.4's control plane or its sidecars export.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use mesh_crds::MeshSpec;
use serde_json::Value;

use super::{control_plane, dashboards, names};
use crate::desired::Desired;

/// What osm-controller, osm-injector and osm-bootstrap v1.2.4 register (`pkg/metricsstore`,
/// namespace `osm`), as Prometheus exposes them (histograms with `_bucket`/`_sum`/`_count`).
const OSM_METRICS: &[&str] = &[
    "osm_k8s_api_event_count",
    "osm_resource_namespace_count",
    "osm_proxy_connect_count",
    "osm_proxy_reconnect_count",
    "osm_proxy_response_send_success_count",
    "osm_proxy_response_send_error_count",
    "osm_proxy_config_update_time_bucket",
    "osm_proxy_broadcast_event_count",
    "osm_proxy_xds_request_count",
    "osm_proxy_max_connections_rejected",
    "osm_admission_webhook_response_total",
    "osm_cert_issued_count",
    "osm_cert_issued_time_bucket",
    "osm_error_err_code_count",
    "osm_http_response_total",
    "osm_http_response_duration_bucket",
    "osm_feature_flag_enabled",
    "osm_version_info",
    "osm_events_queued",
    "osm_reconciliation_total",
];

/// Envoy cluster statistics OSM v1.2.4's sidecars expose on `/stats/prometheus` and OSM's own
/// chart keeps when it scrapes them.
const ENVOY_METRICS: &[&str] = &[
    "envoy_cluster_upstream_rq_xx",
    "envoy_cluster_upstream_rq_total",
    "envoy_cluster_upstream_cx_active",
    "envoy_cluster_upstream_cx_tx_bytes_total",
    "envoy_cluster_upstream_cx_rx_bytes_total",
    "envoy_cluster_upstream_cx_destroy_remote_with_active_rq",
    "envoy_cluster_upstream_cx_destroy_local_with_active_rq",
    "envoy_cluster_upstream_cx_connect_timeout",
    "envoy_cluster_upstream_rq_pending_failure_eject",
    "envoy_cluster_upstream_rq_pending_overflow",
    "envoy_cluster_upstream_rq_timeout",
    "envoy_cluster_upstream_rq_rx_reset",
    "envoy_cluster_upstream_rq_retry",
];

/// Removes every `open … close` group that starts with one of `openers` (brackets not nested).
fn strip_groups(expr: &str, openers: &[&str], close: char) -> String {
    let mut out = expr.to_string();
    for opener in openers {
        while let Some(start) = out.find(opener) {
            let Some(len) = out[start..].find(close) else { break };
            out.replace_range(start..=start + len, " ");
        }
    }
    out
}

/// Metric names in a PromQL expression (identifiers `osm_…`, `envoy_…`): label matchers `{…}`,
/// grouping labels `by (…)` / `without (…)` and `label_values`' label argument are removed first,
/// so label names such as `envoy_cluster_name` are not taken for metrics.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut text = strip_groups(expr, &["{"], '}');
    text = strip_groups(&text, &["by (", "without ("], ')');
    if text.starts_with("label_values(") {
        text = text.rsplit_once(',').map(|(metric, _)| metric.to_string()).unwrap_or(text);
    }
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("osm_") || word.starts_with("envoy_"))
        .map(str::to_string)
        .collect()
}

fn exprs(dashboard: &Value) -> Vec<String> {
    let mut out: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect();
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        out.push(variable["query"].as_str().expect("query").to_string());
    }
    out
}

fn grafana_objects() -> Vec<Desired> {
    let spec: MeshSpec =
        serde_yaml::from_str("provider: SelfHosted\naddons: {prometheus: true, grafana: true}").expect("mesh spec");
    control_plane("demo", &spec).expect("render")
}

fn config_map(objects: &[Desired], name: &str) -> ConfigMap {
    let found = objects.iter().find(|d| d.resource.kind == "ConfigMap" && d.name() == name).expect(name);
    serde_json::from_value(serde_json::to_value(&found.object).expect("json")).expect("ConfigMap")
}

#[test]
fn the_three_dashboards_parse_and_query_only_metrics_osm_exports() {
    let objects = grafana_objects();
    let files = config_map(&objects, names::GRAFANA_DASHBOARDS).data.expect("data");
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["osm-mesh.json", "osm-service.json", "osm-workload.json"]
    );
    let known: BTreeSet<&str> = OSM_METRICS.iter().chain(ENVOY_METRICS).copied().collect();
    let mut uids = BTreeSet::new();
    for (file, text) in &files {
        let dashboard: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(uids.insert(dashboard["uid"].as_str().expect("uid").to_string()), "{file}: uid reused");
        assert!(dashboard["title"].as_str().is_some_and(|t| t.starts_with("OSM / ")), "{file}");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(panels.len() >= 4, "{file}: a view, not a placeholder");
        let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().expect("id")).collect();
        assert_eq!(ids.len(), panels.len(), "{file}: panel ids are unique");
        for expr in exprs(&dashboard) {
            let metrics = metrics_in(&expr);
            assert!(!metrics.is_empty(), "{file}: `{expr}` queries no OSM or Envoy metric");
            for metric in metrics {
                assert!(known.contains(metric.as_str()), "{file}: `{metric}` is not exported by OSM v1.2.4 ({expr})");
            }
        }
        // Every panel's datasource is the provisioned one.
        for panel in panels {
            assert_eq!(panel["datasource"], dashboards::DATASOURCE, "{file}");
        }
    }
    // The mesh view covers the control plane and the data plane.
    let mesh: Value = serde_json::from_str(&files["osm-mesh.json"]).expect("mesh");
    let mesh_metrics: Vec<String> = exprs(&mesh).iter().flat_map(|e| metrics_in(e)).collect();
    assert!(mesh_metrics.iter().any(|m| m.starts_with("osm_proxy_")), "{mesh_metrics:?}");
    assert!(mesh_metrics.iter().any(|m| m.starts_with("envoy_cluster_")), "{mesh_metrics:?}");
}

#[test]
fn metric_extraction_tells_metrics_from_labels() {
    assert_eq!(
        metrics_in(
            "sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~\"x\"}[1m]))"
        ),
        ["envoy_cluster_upstream_rq_total"]
    );
    assert_eq!(metrics_in("label_values(osm_version_info, version)"), ["osm_version_info"]);
    // A misspelt metric is found, so the test above would reject it.
    assert_eq!(metrics_in("rate(osm_proxy_conect_count[1m])"), ["osm_proxy_conect_count"]);
}

#[test]
fn grafana_provisions_the_dashboards_from_their_config_maps() {
    let objects = grafana_objects();
    let provider = config_map(&objects, names::GRAFANA_DASHBOARD_PROVIDERS).data.expect("data");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&provider["osm.yaml"]).expect("provider yaml");
    let entry = &yaml["providers"][0];
    assert_eq!(entry["type"].as_str(), Some("file"));
    let path = entry["options"]["path"].as_str().expect("path").to_string();

    let deployment =
        objects.iter().find(|d| d.resource.kind == "Deployment" && d.name() == names::GRAFANA).expect("grafana");
    let deployment: Deployment =
        serde_json::from_value(serde_json::to_value(&deployment.object).expect("json")).expect("Deployment");
    let pod = deployment.spec.expect("spec").template.spec.expect("pod");
    let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
    let volumes = pod.volumes.expect("volumes");
    let config_map_at = |dir: &str| -> String {
        let mount = mounts.iter().find(|m| m.mount_path == dir).unwrap_or_else(|| panic!("nothing mounted at {dir}"));
        let volume = volumes.iter().find(|v| v.name == mount.name).expect("volume");
        volume.config_map.as_ref().expect("a ConfigMap volume").name.clone()
    };
    assert_eq!(config_map_at("/etc/grafana/provisioning/dashboards"), names::GRAFANA_DASHBOARD_PROVIDERS);
    assert_eq!(config_map_at(&path), names::GRAFANA_DASHBOARDS, "the provider reads where the dashboards are mounted");
    // The datasource the panels name is the one provisioned.
    let datasources = config_map(&objects, names::GRAFANA_DATASOURCES).data.expect("data");
    let datasources: serde_yaml::Value = serde_yaml::from_str(&datasources["prometheus.yaml"]).expect("yaml");
    assert_eq!(datasources["datasources"][0]["name"].as_str(), Some(dashboards::DATASOURCE));
}
