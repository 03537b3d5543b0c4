//! Names of OSM objects that the builders render or that OSM creates at run time, so install,
//! status and teardown agree on them.

/// MeshConfig every OSM install reads (`config.openservicemesh.io`), in the control-plane namespace.
pub const MESH_CONFIG: &str = mesh_crds::osm::MESH_CONFIG_NAME;
/// ConfigMap `osm-bootstrap` creates `osm-mesh-config` from when it does not exist.
pub const PRESET_MESH_CONFIG: &str = "preset-mesh-config";
/// Key of the MeshConfig spec (JSON) in [`PRESET_MESH_CONFIG`].
pub const PRESET_MESH_CONFIG_KEY: &str = "preset-mesh-config.json";
/// Secret holding the mesh root CA (`ca.crt`, `private.key`).
pub const CA_BUNDLE_SECRET: &str = "osm-ca-bundle";
/// Key of the root certificate (PEM) in [`CA_BUNDLE_SECRET`].
pub const CA_BUNDLE_CERT_KEY: &str = "ca.crt";
/// Key of the root private key (PKCS#8 PEM) in [`CA_BUNDLE_SECRET`].
pub const CA_BUNDLE_KEY_KEY: &str = "private.key";

/// Deployment and Service of the xDS control plane.
pub const CONTROLLER: &str = "osm-controller";
/// Deployment and Service of the sidecar injector.
pub const INJECTOR: &str = "osm-injector";
/// Deployment and Service that create the MeshConfig and serve CRD conversion.
pub const BOOTSTRAP: &str = "osm-bootstrap";
/// Service in front of the controller's validating webhook.
pub const VALIDATOR: &str = "osm-validator";
/// Prometheus add-on (Deployment, Service, ServiceAccount).
pub const PROMETHEUS: &str = "osm-prometheus";
/// ConfigMap with the Prometheus add-on's `prometheus.yml`.
pub const PROMETHEUS_CONFIG: &str = "osm-prometheus-server-conf";
/// Grafana add-on (Deployment, Service).
pub const GRAFANA: &str = "osm-grafana";
/// ConfigMap with the Grafana add-on's datasource.
pub const GRAFANA_DATASOURCES: &str = "osm-grafana-datasources";
/// ConfigMap with the Grafana add-on's dashboard provider (where the dashboards are read from).
pub const GRAFANA_DASHBOARD_PROVIDERS: &str = "osm-grafana-dashboard-providers";
/// ConfigMap with the Grafana add-on's OSM dashboards (one JSON file each).
pub const GRAFANA_DASHBOARDS: &str = "osm-grafana-dashboards";
/// Jaeger add-on (Deployment, Service); also the default tracing host `jaeger.<ns>.svc.cluster.local`.
pub const JAEGER: &str = "jaeger";

/// MutatingWebhookConfiguration the AKS OSM add-on's injector creates (mesh `osm`).
pub const AKS_ADDON_WEBHOOK: &str = "aks-osm-webhook-osm";
/// ValidatingWebhookConfiguration the AKS OSM add-on's controller creates (mesh `osm`).
pub const AKS_ADDON_VALIDATOR: &str = "aks-osm-validator-mesh-osm";

/// MutatingWebhookConfiguration `osm-injector` creates at run time: `osm-webhook-<mesh>`.
pub fn webhook_name(mesh: &str) -> String {
    format!("osm-webhook-{mesh}")
}

/// ValidatingWebhookConfiguration `osm-controller` creates at run time: `osm-validator-mesh-<mesh>`.
pub fn validator_name(mesh: &str) -> String {
    format!("osm-validator-mesh-{mesh}")
}

/// ServiceAccount, ClusterRole and ClusterRoleBinding of the control plane: the mesh name, as the
/// chart names them after the Helm release (= mesh name).
pub fn mesh_rbac_name(mesh: &str) -> String {
    mesh.to_string()
}

/// ClusterRole and ClusterRoleBinding of the Prometheus add-on: `<mesh>-prometheus`, cluster-scoped
/// and therefore qualified by the mesh like the control plane's own.
pub fn prometheus_rbac_name(mesh: &str) -> String {
    format!("{mesh}-prometheus")
}
