//! `spec.ingress`: exposing mesh services to the outside world.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default namespace of the ingress-nginx controller.
pub const DEFAULT_INGRESS_NAMESPACE: &str = "ingress-nginx";

/// North-south traffic: ingress-nginx integrated with OSM, or a Gateway in GatewayAPI mode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The ingress-nginx controller (OSM meshes).
    #[serde(default)]
    pub nginx: NginxSpec,
    /// The Gateway used instead of ingress-nginx when `traffic.mode` is GatewayAPI.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Protocol from the ingress to the backends: http, or https with mesh mTLS (OSM `certificate.ingressGateway`).
    #[serde(default)]
    pub backend_protocol: BackendProtocol,
    /// Routes from a host and path to a backend Service.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub rules: Vec<IngressRule>,
}

/// The ingress-nginx controller installation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NginxSpec {
    /// Namespace of the controller. Defaults to `ingress-nginx`. It is enrolled in the mesh with sidecar injection disabled, as OSM requires for IngressBackend sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Node selector of the controller pods, e.g. `agentpool: agentpool`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Type of the controller's Service.
    #[serde(default)]
    pub service_type: IngressServiceType,
}

/// How the ingress controller is exposed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum IngressServiceType {
    /// A cloud load balancer (the default on AKS).
    #[default]
    LoadBalancer,
    /// A port on every node.
    NodePort,
}

/// The Gateway of GatewayAPI mode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// GatewayClass of the generated Gateway. Defaults to `istio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// Namespace of the Gateway. Defaults to the ingress namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
}

/// Protocol between the ingress and the backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    /// Plain HTTP to the sidecar; the IngressBackend admits the controller's Service endpoints.
    #[default]
    Http,
    /// mTLS to the sidecar with a mesh-issued client certificate; the IngressBackend admits the controller's identity.
    Https,
}

/// One routing rule: host + path → Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Name of the generated Ingress/HTTPRoute. Defaults to `<backend service>-ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,
    /// Host name, e.g. `store.example.com`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: String,
    /// Path prefix, e.g. `/store`.
    #[serde(default = "default_path")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub path: String,
    /// Replace the matched path with this before forwarding (ingress-nginx `rewrite-target`), e.g. `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub rewrite_target: Option<String>,
    /// The Service requests go to.
    pub backend: IngressBackendRef,
    /// TLS at the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
}

fn default_path() -> String {
    "/".to_string()
}

/// A backend Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackendRef {
    /// Service name.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub service: String,
    /// Service namespace; it must be listed in `spec.namespaces`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// Service port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// TLS for a rule's host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Secret (type kubernetes.io/tls) in the backend's namespace holding the certificate.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
    /// Generate a certificate for the host into that Secret and renew it before it expires. When false the Secret must exist.
    #[serde(default)]
    pub generate: bool,
}

impl NginxSpec {
    /// The controller namespace.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_INGRESS_NAMESPACE)
    }
}
