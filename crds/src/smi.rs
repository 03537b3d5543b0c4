//! Typed models of the SMI objects OSM v1.2 serves: TrafficTarget (access.smi-spec.io/v1alpha3),
//! HTTPRouteGroup and TCPRoute (specs.smi-spec.io/v1alpha4), TrafficSplit (split.smi-spec.io/v1alpha2).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may send which traffic to a destination ServiceAccount.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "access.smi-spec.io", version = "v1alpha3", kind = "TrafficTarget", namespaced, shortname = "tt")]
#[serde(rename_all = "camelCase")]
pub struct TrafficTargetSpec {
    /// The destination ServiceAccount.
    pub destination: IdentityBinding,
    /// Route rules that are allowed.
    #[serde(default)]
    pub rules: Vec<TrafficTargetRule>,
    /// Source ServiceAccounts.
    #[serde(default)]
    pub sources: Vec<IdentityBinding>,
}

/// A ServiceAccount reference in SMI.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub struct IdentityBinding {
    /// Always ServiceAccount.
    pub kind: String,
    /// ServiceAccount name.
    pub name: String,
    /// ServiceAccount namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A rule of a TrafficTarget, naming a route group and the matches it allows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TrafficTargetRule {
    /// HTTPRouteGroup or TCPRoute.
    pub kind: String,
    /// Name of the route object, in the TrafficTarget's namespace.
    pub name: String,
    /// Names of the matches allowed. OSM allows nothing when this is empty for an HTTPRouteGroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
}

/// Named HTTP request matches.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "specs.smi-spec.io", version = "v1alpha4", kind = "HTTPRouteGroup", namespaced, shortname = "htr")]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteGroupSpec {
    /// Match on the request's authority; not used by OSM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The matches.
    #[serde(default)]
    pub matches: Vec<HTTPMatch>,
}

/// One HTTP match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HTTPMatch {
    /// Match name.
    pub name: String,
    /// RE2 regex over the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Methods (`*` for any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Headers: on the wire a list of single-key maps, header name → value regex.
    // `headers: []` (Some(empty)) is kept apart from a missing `headers` (None): OSM's SDK reads
    // the first as an empty map and the second as a nil map, which `reflect.DeepEqual` tells
    // apart, so OSM does not merge two otherwise identical matches that differ only there. The
    // schema stays OSM's (a list, not nullable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<BTreeMap<String, String>>")]
    pub headers: Option<Vec<BTreeMap<String, String>>>,
}

/// TCP traffic on ports.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "specs.smi-spec.io", version = "v1alpha4", kind = "TCPRoute", namespaced)]
#[serde(rename_all = "camelCase")]
pub struct TCPRouteSpec {
    /// The match (an object, not a list).
    #[serde(default)]
    pub matches: TCPMatch,
}

/// A TCP match: ports (empty = all).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct TCPMatch {
    /// Match name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
}

/// Splits traffic to a root Service between backends.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "split.smi-spec.io", version = "v1alpha2", kind = "TrafficSplit", namespaced, shortname = "ts")]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitSpec {
    /// The root Service (`name` or `name.namespace`).
    pub service: String,
    /// Backends and weights.
    pub backends: Vec<TrafficSplitBackend>,
}

/// A backend of a TrafficSplit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TrafficSplitBackend {
    /// Backend Service name.
    pub service: String,
    /// Relative weight.
    pub weight: i64,
}
