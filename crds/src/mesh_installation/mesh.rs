//! `spec.mesh`: which service mesh to run and how it is configured.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Namespace of the self-hosted OSM control plane unless `spec.mesh.namespace` says otherwise.
pub const DEFAULT_OSM_NAMESPACE: &str = "osm-system";
/// Namespace where the AKS OSM add-on runs its control plane; it cannot be changed.
pub const AKS_ADDON_NAMESPACE: &str = "kube-system";
/// Namespace where the AKS Istio add-on runs istiod.
pub const AKS_ISTIO_NAMESPACE: &str = "aks-istio-system";
/// The OSM release the self-hosted provider installs.
pub const DEFAULT_OSM_VERSION: &str = "v1.2.4";

/// Who provides the mesh control plane.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum MeshProvider {
    /// Open Service Mesh v1.2, installed and managed by mesh-operator itself.
    #[default]
    SelfHosted,
    /// The AKS Open Service Mesh add-on (retires on 2027-09-30), enabled through Azure Resource Manager.
    AksAddon,
    /// The AKS Istio-based service mesh add-on, enabled through Azure Resource Manager. Traffic policy is expressed with Gateway API.
    AksIstioAddon,
}

/// The service mesh control plane and its mesh-wide settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    /// Who provides the control plane: SelfHosted (OSM installed by the operator), AksAddon (AKS OSM add-on) or AksIstioAddon (AKS Istio add-on).
    #[serde(default)]
    pub provider: MeshProvider,
    /// Mesh name, as `osm install --mesh-name`. It is used as a label value, so it must be a valid Kubernetes label value (at most 63 characters).
    #[serde(default = "default_mesh_name")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$"))]
    pub name: String,
    /// Namespace of the mesh control plane. Defaults to `osm-system` for SelfHosted; the AKS OSM add-on always uses `kube-system` and the Istio add-on `aks-istio-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Control-plane version. SelfHosted installs OSM `v1.2.4` by default; the add-ons ignore this field (AKS chooses the version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^v[0-9]+\.[0-9]+\.[0-9]+$"))]
    pub version: Option<String>,
    /// Allow all traffic between meshed workloads regardless of SMI policy (OSM permissive traffic policy mode). The article turns it off so SMI access policies apply.
    #[serde(default)]
    pub permissive_traffic_policy: bool,
    /// Traffic leaving the mesh.
    #[serde(default)]
    pub egress: EgressSpec,
    /// Distributed tracing (Zipkin protocol, e.g. to Jaeger).
    #[serde(default)]
    pub tracing: TracingSpec,
    /// Optional observability add-ons deployed next to a self-hosted control plane.
    #[serde(default)]
    pub addons: AddonsSpec,
    /// Settings for the AKS Istio add-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioSpec>,
    /// With provider AksIstioAddon on a cluster where the AKS OSM add-on is enabled: perform the documented in-place migration (disable OSM, enable Istio, relabel namespaces, restart workloads, delete the OSM/SMI CRDs). Without it the operator refuses to enable Istio next to OSM.
    #[serde(default)]
    pub migrate_from_osm: bool,
}

fn default_mesh_name() -> String {
    "osm".to_string()
}

impl Default for MeshSpec {
    fn default() -> Self {
        MeshSpec {
            provider: MeshProvider::default(),
            name: default_mesh_name(),
            namespace: None,
            version: None,
            permissive_traffic_policy: false,
            egress: EgressSpec::default(),
            tracing: TracingSpec::default(),
            addons: AddonsSpec::default(),
            istio: None,
            migrate_from_osm: false,
        }
    }
}

/// How egress policy is enforced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum EgressPolicyMode {
    /// All egress is allowed (`traffic.enableEgress: true`, OSM passthrough).
    #[default]
    Passthrough,
    /// Only the listed `rules` are allowed (OSM Egress policies, `featureFlags.enableEgressPolicy`).
    Policy,
}

/// Egress from meshed pods to destinations outside the mesh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// Allow meshed pods to reach destinations outside the mesh at all. Off by default, as in the article before its egress step.
    #[serde(default)]
    pub enabled: bool,
    /// Passthrough allows any egress; Policy allows only what `rules` list.
    #[serde(default)]
    pub policy: EgressPolicyMode,
    /// Egress rules, each becoming an OSM `Egress` policy (used with policy Policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<EgressRule>,
}

/// One allowed egress destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Name of the generated Egress object.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Namespace the Egress object is created in (the namespace of the source ServiceAccounts).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// ServiceAccounts (in `namespace`) allowed to use this egress.
    #[schemars(length(min = 1, max = 32))]
    pub source_service_accounts: Vec<String>,
    /// Host names (HTTP Host header or TLS SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub hosts: Vec<String>,
    /// Destination IP ranges in CIDR notation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ip_addresses: Vec<String>,
    /// Destination ports and their protocols.
    #[schemars(length(min = 1, max = 16))]
    pub ports: Vec<EgressPort>,
}

/// A destination port of an egress rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressPort {
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub number: i32,
    /// Protocol spoken on the port.
    pub protocol: EgressProtocol,
}

/// Protocols OSM egress policies understand.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EgressProtocol {
    /// Plain HTTP, matched on the Host header.
    Http,
    /// TLS, matched on SNI.
    Https,
    /// Raw TCP, matched on IP ranges.
    Tcp,
    /// TCP protocols where the server speaks first (e.g. MySQL).
    TcpServerFirst,
}

/// Distributed tracing settings (OSM MeshConfig `observability.tracing`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// Send spans from the sidecars to a Zipkin-compatible collector.
    #[serde(default)]
    pub enabled: bool,
    /// Collector host. Defaults to the mesh's Jaeger: `jaeger.<mesh namespace>.svc.cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub address: Option<String>,
    /// Collector port. Defaults to 9411.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Collector path. Defaults to `/api/v2/spans`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/"))]
    pub endpoint: Option<String>,
}

/// Observability add-ons of a self-hosted OSM (`osm install --set osm.deploy{Prometheus,Grafana,Jaeger}`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AddonsSpec {
    /// Deploy `osm-prometheus`, scraping the sidecars.
    #[serde(default)]
    pub prometheus: bool,
    /// Deploy `osm-grafana` with the OSM dashboards (`meshctl dashboard` opens it).
    #[serde(default)]
    pub grafana: bool,
    /// Deploy an all-in-one `jaeger` as the tracing collector.
    #[serde(default)]
    pub jaeger: bool,
}

/// Settings of the AKS Istio add-on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IstioSpec {
    /// Istio control-plane revision such as `asm-1-25`. When empty, the newest revision compatible with the cluster's Kubernetes version is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^asm-[0-9]+-[0-9]+$"))]
    pub revision: Option<String>,
}

impl MeshSpec {
    /// The namespace that holds the control plane for this provider.
    pub fn control_plane_namespace(&self) -> &str {
        match self.provider {
            MeshProvider::AksAddon => AKS_ADDON_NAMESPACE,
            MeshProvider::AksIstioAddon => AKS_ISTIO_NAMESPACE,
            MeshProvider::SelfHosted => self.namespace.as_deref().unwrap_or(DEFAULT_OSM_NAMESPACE),
        }
    }

    /// The OSM version a self-hosted install uses.
    pub fn osm_version(&self) -> &str {
        self.version.as_deref().unwrap_or(DEFAULT_OSM_VERSION)
    }

    /// Whether the mesh is Open Service Mesh (self-hosted or the AKS add-on).
    pub fn is_osm(&self) -> bool {
        matches!(self.provider, MeshProvider::SelfHosted | MeshProvider::AksAddon)
    }
}
