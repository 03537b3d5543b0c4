//! Observability add-ons of a self-hosted mesh (`osm.deployPrometheus`, `deployGrafana`,
//! `deployJaeger`): `osm-prometheus`, `osm-grafana` and `jaeger`, each only when asked for, so
//! turning one off drops its objects from the desired set and pruning deletes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, PodSpec, Volume, VolumeMount,
};
use mesh_crds::AddonsSpec;

use super::common::{
    Ctx, container_security_context, deployment, env, http_probe, linux_node_selector, pod_security_context, resources,
    service,
};
use super::mesh_config::TRACING_PORT;
use super::{OsmBuildError, dashboards, names, rbac};
use crate::desired::{Component, Desired};

/// `osm.prometheus.image`.
pub(crate) const PROMETHEUS_IMAGE: &str = "prom/prometheus:v2.34.0";
/// `osm.prometheus.port`.
pub(crate) const PROMETHEUS_PORT: i32 = 7070;
/// `osm.prometheus.retention.time`.
const PROMETHEUS_RETENTION: &str = "15d";
/// `osm.grafana.image`.
pub(crate) const GRAFANA_IMAGE: &str = "grafana/grafana:8.2.2";
/// `osm.grafana.port`.
pub(crate) const GRAFANA_PORT: i32 = 3000;
/// Jaeger all-in-one (in-memory storage). The chart leaves `jaegertracing/all-in-one` untagged;
/// we pin a v1 release so re-renders are stable and `latest` cannot move under the mesh.
pub(crate) const JAEGER_IMAGE: &str = "jaegertracing/all-in-one:1.57.0";
/// Jaeger's query UI.
pub(crate) const JAEGER_UI_PORT: i32 = 16686;
/// Jaeger's admin port (health check).
const JAEGER_ADMIN_PORT: i32 = 14269;

/// Users the add-on images are built to run as (`nobody`, `grafana`, `jaeger`): running them as
/// their own non-root user keeps the files they own in the image writable.
const PROMETHEUS_UID: i64 = 65534;
const GRAFANA_UID: i64 = 472;
const JAEGER_UID: i64 = 10001;

/// Prometheus' scrape configuration: every pod annotated `prometheus.io/scrape: "true"`, at its
/// `prometheus.io/port` and `prometheus.io/path`. That covers the control plane (9091, `/metrics`)
/// and the Envoy sidecars of namespaces with `osm metrics enable` (15010, `/stats/prometheus`),
/// labelled with the source namespace, pod, app and workload as OSM's dashboards expect.
const PROMETHEUS_YML: &str = r#"global:
  scrape_interval: 10s
  scrape_timeout: 10s
  evaluation_interval: 1m
scrape_configs:
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        target_label: __metrics_path__
        regex: (.+)
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        action: replace
        target_label: source_namespace
      - source_labels: [__meta_kubernetes_pod_name]
        action: replace
        target_label: source_pod_name
      - source_labels: [__meta_kubernetes_pod_label_app]
        action: replace
        target_label: source_service
      - source_labels: [__meta_kubernetes_pod_controller_kind]
        action: replace
        target_label: source_workload_kind
      - source_labels: [__meta_kubernetes_pod_controller_name]
        action: replace
        target_label: source_workload_name
"#;

/// The enabled add-ons' objects, Prometheus first (Grafana's datasource points at it).
pub(crate) fn addons(installation: &str, ctx: &Ctx<'_>, addons: &AddonsSpec) -> Result<Vec<Desired>, OsmBuildError> {
    let mut out = Vec::new();
    if addons.prometheus {
        let rbac_name = names::prometheus_rbac_name(ctx.mesh);
        out.push(Desired::new(Component::Mesh, installation, &rbac::service_account(ctx, names::PROMETHEUS))?);
        out.push(Desired::new(
            Component::Mesh,
            installation,
            &rbac::cluster_role(ctx, &rbac_name, rbac::prometheus_rules()),
        )?);
        out.push(Desired::new(
            Component::Mesh,
            installation,
            &rbac::cluster_role_binding(ctx, &rbac_name, names::PROMETHEUS),
        )?);
        out.push(Desired::new(Component::Mesh, installation, &prometheus_config(ctx))?);
        out.push(Desired::new(Component::Mesh, installation, &prometheus_deployment(ctx))?);
        out.push(Desired::new(
            Component::Mesh,
            installation,
            &service(
                ctx,
                names::PROMETHEUS,
                names::PROMETHEUS,
                ctx.app_labels(names::PROMETHEUS),
                &[("prometheus", PROMETHEUS_PORT)],
            ),
        )?);
    }
    if addons.grafana {
        out.push(Desired::new(Component::Mesh, installation, &grafana_datasources(ctx))?);
        for config_map in grafana_dashboards(ctx) {
            out.push(Desired::new(Component::Mesh, installation, &config_map)?);
        }
        out.push(Desired::new(Component::Mesh, installation, &grafana_deployment(ctx))?);
        out.push(Desired::new(
            Component::Mesh,
            installation,
            &service(ctx, names::GRAFANA, names::GRAFANA, ctx.app_labels(names::GRAFANA), &[("grafana", GRAFANA_PORT)]),
        )?);
    }
    if addons.jaeger {
        out.push(Desired::new(Component::Mesh, installation, &jaeger_deployment(ctx))?);
        out.push(Desired::new(
            Component::Mesh,
            installation,
            &service(
                ctx,
                names::JAEGER,
                names::JAEGER,
                ctx.app_labels(names::JAEGER),
                &[("zipkin", TRACING_PORT), ("http-query", JAEGER_UI_PORT)],
            ),
        )?);
    }
    Ok(out)
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name.to_string()), container_port: port, ..Default::default() }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: if read_only { Some(true) } else { None },
        ..Default::default()
    }
}

fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource { name: config_map.to_string(), ..Default::default() }),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.to_string(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

/// Pod of an add-on: restricted, Linux, running as the image's own user.
fn addon_pod(uid: i64, service_account: Option<&str>, container: Container, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        service_account_name: service_account.map(str::to_string),
        // Only Prometheus talks to the API server; the others get no token at all.
        automount_service_account_token: if service_account.is_some() { None } else { Some(false) },
        security_context: Some(pod_security_context(uid, uid)),
        node_selector: Some(linux_node_selector()),
        containers: vec![container],
        volumes: if volumes.is_empty() { None } else { Some(volumes) },
        ..Default::default()
    }
}

fn prometheus_config(ctx: &Ctx<'_>) -> ConfigMap {
    ConfigMap {
        metadata: ctx.meta(names::PROMETHEUS_CONFIG, ctx.app_labels(names::PROMETHEUS)),
        data: Some(BTreeMap::from([("prometheus.yml".to_string(), PROMETHEUS_YML.to_string())])),
        ..Default::default()
    }
}

fn prometheus_deployment(ctx: &Ctx<'_>) -> k8s_openapi::api::apps::v1::Deployment {
    let container = Container {
        name: "prometheus".to_string(),
        image: Some(PROMETHEUS_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![
            "--config.file=/etc/prometheus/prometheus.yml".to_string(),
            "--storage.tsdb.path=/prometheus/".to_string(),
            format!("--storage.tsdb.retention.time={PROMETHEUS_RETENTION}"),
            format!("--web.listen-address=:{PROMETHEUS_PORT}"),
        ]),
        ports: Some(vec![port("prometheus", PROMETHEUS_PORT)]),
        resources: Some(resources(("500m", "512M"), ("1", "2G"))),
        readiness_probe: Some(http_probe("/-/ready", PROMETHEUS_PORT, "HTTP", 5)),
        liveness_probe: Some(http_probe("/-/healthy", PROMETHEUS_PORT, "HTTP", 30)),
        volume_mounts: Some(vec![mount("config", "/etc/prometheus", true), mount("storage", "/prometheus", false)]),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    deployment(
        ctx,
        names::PROMETHEUS,
        ctx.app_labels(names::PROMETHEUS),
        ctx.app_labels(names::PROMETHEUS),
        BTreeMap::new(),
        addon_pod(
            PROMETHEUS_UID,
            Some(names::PROMETHEUS),
            container,
            vec![config_map_volume("config", names::PROMETHEUS_CONFIG), empty_dir("storage")],
        ),
    )
}

/// Grafana's provisioned datasource: the mesh's Prometheus.
fn grafana_datasources(ctx: &Ctx<'_>) -> ConfigMap {
    let yaml = format!(
        "apiVersion: 1\ndatasources:\n  - name: {}\n    type: prometheus\n    access: proxy\n    orgId: 1\n    \
         url: http://{}.{}.svc.cluster.local:{PROMETHEUS_PORT}\n    isDefault: true\n    editable: false\n",
        dashboards::DATASOURCE,
        names::PROMETHEUS,
        ctx.namespace
    );
    ConfigMap {
        metadata: ctx.meta(names::GRAFANA_DATASOURCES, ctx.app_labels(names::GRAFANA)),
        data: Some(BTreeMap::from([("prometheus.yaml".to_string(), yaml)])),
        ..Default::default()
    }
}

/// The dashboard provider and our OSM dashboards (see [`dashboards`]).
fn grafana_dashboards(ctx: &Ctx<'_>) -> [ConfigMap; 2] {
    let provider = BTreeMap::from([("osm.yaml".to_string(), dashboards::provider_yaml())]);
    [
        ConfigMap {
            metadata: ctx.meta(names::GRAFANA_DASHBOARD_PROVIDERS, ctx.app_labels(names::GRAFANA)),
            data: Some(provider),
            ..Default::default()
        },
        ConfigMap {
            metadata: ctx.meta(names::GRAFANA_DASHBOARDS, ctx.app_labels(names::GRAFANA)),
            data: Some(dashboards::dashboard_files()),
            ..Default::default()
        },
    ]
}

fn grafana_deployment(ctx: &Ctx<'_>) -> k8s_openapi::api::apps::v1::Deployment {
    let container = Container {
        name: "grafana".to_string(),
        image: Some(GRAFANA_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        ports: Some(vec![port("grafana", GRAFANA_PORT)]),
        readiness_probe: Some(http_probe("/api/health", GRAFANA_PORT, "HTTP", 5)),
        liveness_probe: Some(http_probe("/api/health", GRAFANA_PORT, "HTTP", 30)),
        volume_mounts: Some(vec![
            mount("datasources", "/etc/grafana/provisioning/datasources", true),
            mount("dashboard-providers", dashboards::PROVIDER_DIR, true),
            mount("dashboards", dashboards::DASHBOARD_DIR, true),
            mount("storage", "/var/lib/grafana", false),
        ]),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    deployment(
        ctx,
        names::GRAFANA,
        ctx.app_labels(names::GRAFANA),
        ctx.app_labels(names::GRAFANA),
        BTreeMap::new(),
        addon_pod(
            GRAFANA_UID,
            None,
            container,
            vec![
                config_map_volume("datasources", names::GRAFANA_DATASOURCES),
                config_map_volume("dashboard-providers", names::GRAFANA_DASHBOARD_PROVIDERS),
                config_map_volume("dashboards", names::GRAFANA_DASHBOARDS),
                empty_dir("storage"),
            ],
        ),
    )
}

fn jaeger_deployment(ctx: &Ctx<'_>) -> k8s_openapi::api::apps::v1::Deployment {
    let container = Container {
        name: names::JAEGER.to_string(),
        image: Some(JAEGER_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        // Jaeger only opens its Zipkin collector when asked; the sidecars send Zipkin v2 spans.
        env: Some(vec![env("COLLECTOR_ZIPKIN_HOST_PORT", &format!(":{TRACING_PORT}"))]),
        ports: Some(vec![
            port("zipkin", TRACING_PORT),
            port("http-query", JAEGER_UI_PORT),
            port("admin", JAEGER_ADMIN_PORT),
        ]),
        readiness_probe: Some(http_probe("/", JAEGER_ADMIN_PORT, "HTTP", 5)),
        liveness_probe: Some(http_probe("/", JAEGER_ADMIN_PORT, "HTTP", 30)),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    deployment(
        ctx,
        names::JAEGER,
        ctx.app_labels(names::JAEGER),
        ctx.app_labels(names::JAEGER),
        BTreeMap::new(),
        addon_pod(JAEGER_UID, None, container, Vec::new()),
    )
}
