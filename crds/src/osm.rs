//! Typed models of Open Service Mesh v1.2 objects (config.openservicemesh.io/v1alpha2 and
//! policy.openservicemesh.io/v1alpha1), shaped as OSM serves them. Only the fields OSM v1.2
//! defines; every field is optional on the wire so partial server-side applies stay small.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name OSM gives its MeshConfig.
pub const MESH_CONFIG_NAME: &str = "osm-mesh-config";

/// OSM mesh-wide configuration (`osm-mesh-config`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "config.openservicemesh.io",
    version = "v1alpha2",
    kind = "MeshConfig",
    namespaced,
    shortname = "meshconfig"
)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfigSpec {
    /// Sidecar (Envoy) settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<SidecarSpec>,
    /// Traffic settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<MeshTrafficSpec>,
    /// Logging and tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<ObservabilitySpec>,
    /// Certificates issued by the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateSpec>,
    /// Feature flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<FeatureFlags>,
}

/// `spec.sidecar` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Run the init container privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_privileged_init_container: Option<bool>,
    /// Envoy log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Connection limit per sidecar (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_plane_connections: Option<i32>,
    /// Envoy image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_image: Option<String>,
    /// Envoy image for Windows nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_windows_image: Option<String>,
    /// Init container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_image: Option<String>,
    /// How often sidecar config is resynced (duration string, "0s" disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_resync_interval: Option<String>,
    /// Minimum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_min_protocol_version: Option<String>,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_max_protocol_version: Option<String>,
    /// Localhost or PodIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_proxy_mode: Option<String>,
}

/// `spec.traffic` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshTrafficSpec {
    /// Global egress passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_egress: Option<bool>,
    /// Allow all traffic between meshed workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_permissive_traffic_policy_mode: Option<bool>,
    /// CIDRs the sidecar does not intercept (OSM spells it `IP`, not camelCase `Ip`).
    #[serde(default, rename = "outboundIPRangeExclusionList", skip_serializing_if = "Option::is_none")]
    pub outbound_ip_range_exclusion_list: Option<Vec<String>>,
    /// CIDRs the sidecar intercepts (if set, only those).
    #[serde(default, rename = "outboundIPRangeInclusionList", skip_serializing_if = "Option::is_none")]
    pub outbound_ip_range_inclusion_list: Option<Vec<String>>,
    /// Outbound ports not intercepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_port_exclusion_list: Option<Vec<i32>>,
    /// Inbound ports not intercepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_port_exclusion_list: Option<Vec<i32>>,
    /// Network interfaces not intercepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_exclusion_list: Option<Vec<String>>,
}

/// `spec.observability` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObservabilitySpec {
    /// Control-plane log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osm_log_level: Option<String>,
    /// Expose the controller's debug server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_debug_server: Option<bool>,
    /// Zipkin tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<MeshTracing>,
}

/// `spec.observability.tracing` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshTracing {
    /// Send spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// Collector port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Collector host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Collector path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// `spec.certificate` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Validity of workload certificates, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cert_validity_duration: Option<String>,
    /// RSA key size of issued certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key_bit_size: Option<i32>,
    /// Client certificate the mesh issues for an ingress gateway (HTTPS to backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_gateway: Option<IngressGatewayCertSpec>,
}

/// `spec.certificate.ingressGateway` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressGatewayCertSpec {
    /// SANs of the certificate, e.g. `ingress-nginx.ingress-nginx.cluster.local`.
    pub subject_alt_names: Vec<String>,
    /// Validity, e.g. `24h`.
    pub validity_duration: String,
    /// Where the certificate is stored.
    pub secret: SecretReference,
}

/// A Secret by name and namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct SecretReference {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
}

/// `spec.featureFlags` of MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlags {
    /// WASM-based stats (OSM spells it `WASM`).
    #[serde(default, rename = "enableWASMStats", skip_serializing_if = "Option::is_none")]
    pub enable_wasm_stats: Option<bool>,
    /// Enforce Egress policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_egress_policy: Option<bool>,
    /// Snapshot cache mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_snapshot_cache_mode: Option<bool>,
    /// Asynchronous proxy-service mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_async_proxy_service_mapping: Option<bool>,
    /// Enforce IngressBackend policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ingress_backend_policy: Option<bool>,
    /// Envoy active health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_envoy_active_health_checks: Option<bool>,
    /// Retry policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_retry_policy: Option<bool>,
}

/// Admits traffic from an ingress into meshed backends.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "policy.openservicemesh.io",
    version = "v1alpha1",
    kind = "IngressBackend",
    namespaced,
    shortname = "ingressbackend"
)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendSpec {
    /// Backend Services in this namespace.
    pub backends: Vec<IngressBackendTarget>,
    /// Who may send ingress traffic.
    pub sources: Vec<IngressSource>,
}

/// A backend of an IngressBackend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendTarget {
    /// Service name.
    pub name: String,
    /// The Service's target port and protocol.
    pub port: IngressBackendPort,
    /// TLS settings for https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressBackendTls>,
}

/// Port of a backend: the Service's **targetPort**.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct IngressBackendPort {
    /// Port number (targetPort).
    pub number: i32,
    /// http or https.
    pub protocol: String,
}

/// TLS of an https backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendTls {
    /// Skip validating the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_client_cert_validation: Option<bool>,
    /// SNI host names accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
}

/// A source of ingress traffic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct IngressSource {
    /// Service, AuthenticatedPrincipal or IPRange.
    pub kind: String,
    /// Name (Service name, principal, or CIDR).
    pub name: String,
    /// Namespace of a Service source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Allows meshed ServiceAccounts to reach destinations outside the mesh.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "policy.openservicemesh.io",
    version = "v1alpha1",
    kind = "Egress",
    plural = "egresses",
    namespaced,
    shortname = "egress"
)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// ServiceAccounts allowed.
    pub sources: Vec<EgressSource>,
    /// Hosts (HTTP Host or TLS SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Destination CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// Destination ports.
    pub ports: Vec<EgressPortSpec>,
}

/// Source of an Egress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EgressSource {
    /// Always ServiceAccount.
    pub kind: String,
    /// ServiceAccount name.
    pub name: String,
    /// ServiceAccount namespace.
    pub namespace: String,
}

/// Port of an Egress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EgressPortSpec {
    /// Port number.
    pub number: i32,
    /// http, https, tcp or tcp-server-first.
    pub protocol: String,
}

/// The mesh's root certificate configuration (served by OSM v1.2; not used by mesh-operator's Tresor CA).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "config.openservicemesh.io",
    version = "v1alpha2",
    kind = "MeshRootCertificate",
    namespaced,
    shortname = "mrc"
)]
pub struct MeshRootCertificateSpec {
    /// Certificate provider settings.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub provider: BTreeMap<String, serde_json::Value>,
}

/// Retry policy between services (OSM v1.2).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "policy.openservicemesh.io",
    version = "v1alpha1",
    kind = "Retry",
    plural = "retries",
    namespaced,
    shortname = "retry"
)]
pub struct RetrySpec {
    /// The ServiceAccount the retry applies to.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub source: BTreeMap<String, serde_json::Value>,
    /// Destination Services.
    #[schemars(schema_with = "preserve_unknown_array")]
    pub destinations: Vec<serde_json::Value>,
    /// Retry settings.
    #[serde(rename = "retryPolicy")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub retry_policy: BTreeMap<String, serde_json::Value>,
}

/// Connection and rate-limit settings for an upstream host (OSM v1.2).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "policy.openservicemesh.io",
    version = "v1alpha1",
    kind = "UpstreamTrafficSetting",
    namespaced,
    shortname = "upstreamtrafficsetting"
)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTrafficSettingSpec {
    /// Upstream host (`<service>.<namespace>.svc.cluster.local`).
    pub host: String,
    /// Connection pool settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub connection_settings: Option<BTreeMap<String, serde_json::Value>>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub rate_limit: Option<BTreeMap<String, serde_json::Value>>,
    /// Per-route settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_array")]
    pub http_routes: Option<Vec<serde_json::Value>>,
}

pub(crate) fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub(crate) fn preserve_unknown_array(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}
