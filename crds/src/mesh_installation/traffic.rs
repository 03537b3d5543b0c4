//! `spec.traffic`: who may talk to whom (SMI access) and how traffic is split between versions.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How traffic policy is expressed in the cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum TrafficMode {
    /// SMI objects (TrafficTarget, HTTPRouteGroup, TCPRoute, TrafficSplit) enforced natively by OSM.
    #[default]
    #[serde(rename = "SMI")]
    Smi,
    /// The same policy translated to Gateway API (GAMMA HTTPRoutes) plus mesh authorization (Istio AuthorizationPolicy), never widening access.
    #[serde(rename = "GatewayAPI")]
    GatewayApi,
}

/// Traffic policy of the installation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSpec {
    /// SMI (OSM) or GatewayAPI (Istio add-on).
    #[serde(default)]
    pub mode: TrafficMode,
    /// Access policies: SMI is deny-by-default, so only what is listed here may reach a destination (unless `mesh.permissiveTrafficPolicy`).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub access: Vec<AccessPolicy>,
    /// Weighted splits of a root Service between backend Services.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub splits: Vec<SplitPolicy>,
    /// In GatewayAPI mode, also translate the SMI objects already present in enrolled namespaces and keep the translation in sync.
    #[serde(default)]
    pub translate_existing: bool,
    /// GatewayAPI mode: how the SMI translation may be adjusted.
    #[serde(default, skip_serializing_if = "TranslationSpec::is_empty")]
    pub translation: TranslationSpec,
}

/// Adjustments of the SMI translation (GatewayAPI mode). Also the file format of
/// `meshctl translate --overrides`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TranslationSpec {
    /// Narrowing overrides: for a match whose regexes have no exact Istio form, the Istio paths
    /// and header values to allow instead. Each must provably lie inside the SMI match (an exact
    /// path must match the path regex; a prefix or suffix only if every value of that form
    /// does), otherwise it is refused with an ERROR naming it. Never widens access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub overrides: Vec<TranslationOverride>,
}

impl TranslationSpec {
    /// Whether nothing is adjusted.
    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty()
    }
}

/// What one TrafficTarget match is translated to instead of its regexes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.paths) && size(self.paths) > 0) || (has(self.headers) && size(self.headers) > 0)").message("spec.traffic.translation.overrides[]: an override must list paths or headers"))]
pub struct TranslationOverride {
    /// Name of the TrafficTarget (for `spec.traffic.access`, the entry's name).
    #[schemars(length(min = 1, max = 253))]
    pub traffic_target: String,
    /// Its namespace.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// HTTPRouteGroup of the match; may be left out when the TrafficTarget grants only one
    /// match of that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub route_group: Option<String>,
    /// Name of the match (in the HTTPRouteGroup).
    #[serde(rename = "match")]
    #[schemars(length(min = 1, max = 253))]
    pub match_name: String,
    /// Paths to allow instead of the match's path regex (OR'ed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub paths: Vec<StringMatch>,
    /// Header values to allow instead of the match's regex for that header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderOverride>,
}

/// The values allowed for one header of a match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOverride {
    /// Header name, as in the HTTPRouteGroup match.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Values to allow (OR'ed).
    #[schemars(length(min = 1, max = 32))]
    pub values: Vec<StringMatch>,
}

/// An Istio string match: exactly one of `exact`, `prefix`, `suffix`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.exact), has(self.prefix), has(self.suffix)].filter(x, x).size() == 1").message("set exactly one of exact, prefix, suffix"))]
pub struct StringMatch {
    /// The whole value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub exact: Option<String>,
    /// Every value starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub prefix: Option<String>,
    /// Every value ending with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub suffix: Option<String>,
}

/// An SMI TrafficTarget with its HTTPRouteGroup and TCPRoute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.httpRoutes) && size(self.httpRoutes) > 0) || (has(self.tcpPorts) && size(self.tcpPorts) > 0)").message("spec.traffic.access[]: a policy must list httpRoutes or tcpPorts, otherwise it grants nothing"))]
pub struct AccessPolicy {
    /// Name of the TrafficTarget.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Namespace of the destination; the TrafficTarget and its routes live there, as OSM requires.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// ServiceAccount of the destination workload.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub destination: String,
    /// ServiceAccounts allowed to reach the destination.
    #[schemars(length(min = 1, max = 16))]
    pub sources: Vec<ServiceAccountRef>,
    /// Name of the HTTPRouteGroup holding `httpRoutes`. Defaults to `<name>-routes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub route_group: Option<String>,
    /// HTTP requests the sources may make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub http_routes: Vec<HttpRouteMatch>,
    /// TCP ports the sources may connect to (an SMI TCPRoute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tcp_ports: Vec<TcpPort>,
}

/// A TCP port number.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(transparent)]
pub struct TcpPort(#[schemars(range(min = 1, max = 65535))] pub i32);

/// A ServiceAccount in a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// ServiceAccount name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Its namespace; it must be listed in `spec.namespaces`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
}

/// One named HTTP match of an HTTPRouteGroup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Match name, listed by the TrafficTarget rule.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// RE2 regular expression the whole request path must match (OSM semantics). Omitted means any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path_regex: Option<String>,
    /// HTTP methods; `*` or empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub methods: Vec<HttpMethod>,
    /// Header name → RE2 regular expression its whole value must match. All must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// HTTP methods SMI knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    /// Any method.
    #[serde(rename = "*")]
    Any,
    /// GET
    GET,
    /// HEAD
    HEAD,
    /// PUT
    PUT,
    /// POST
    POST,
    /// DELETE
    DELETE,
    /// CONNECT
    CONNECT,
    /// OPTIONS
    OPTIONS,
    /// TRACE
    TRACE,
    /// PATCH
    PATCH,
}

impl HttpMethod {
    /// The method as written on the wire (`*` for any).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Any => "*",
            HttpMethod::GET => "GET",
            HttpMethod::HEAD => "HEAD",
            HttpMethod::PUT => "PUT",
            HttpMethod::POST => "POST",
            HttpMethod::DELETE => "DELETE",
            HttpMethod::CONNECT => "CONNECT",
            HttpMethod::OPTIONS => "OPTIONS",
            HttpMethod::TRACE => "TRACE",
            HttpMethod::PATCH => "PATCH",
        }
    }
}

/// A TrafficSplit: requests to `service` are spread over `backends` by weight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.backends.exists(b, b.weight > 0)").message("spec.traffic.splits[].backends: weights must add up to more than 0"))]
pub struct SplitPolicy {
    /// Name of the TrafficSplit (or HTTPRoute).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Namespace of the root Service.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// The root Service clients call, e.g. `bookstore`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub service: String,
    /// Backend Services and their weights.
    #[schemars(length(min = 1, max = 8))]
    pub backends: Vec<SplitBackend>,
}

/// A backend of a split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitBackend {
    /// Backend Service in the split's namespace, declared by an app.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub service: String,
    /// Relative weight; 0 sends no traffic.
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: i32,
}

impl AccessPolicy {
    /// Name of the HTTPRouteGroup.
    pub fn route_group_name(&self) -> String {
        self.route_group.clone().unwrap_or_else(|| format!("{}-routes", self.name))
    }

    /// Name of the TCPRoute.
    pub fn tcp_route_name(&self) -> String {
        format!("{}-tcp", self.name)
    }
}
