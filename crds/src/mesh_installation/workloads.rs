//! `spec.namespaces` and `spec.apps`: what is enrolled in the mesh and what runs there.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A namespace the installation creates (if missing) and enrols in the mesh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpec {
    /// Namespace name.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Inject the mesh sidecar into pods of this namespace (`osm namespace add`; `--disable-sidecar-injection` when false).
    #[serde(default = "default_true")]
    pub sidecar_injection: bool,
    /// Let the mesh's Prometheus scrape the sidecars of this namespace (`osm metrics enable`).
    #[serde(default)]
    pub metrics: bool,
}

pub(crate) fn default_true() -> bool {
    true
}

/// Workload kind of an app.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum WorkloadKind {
    /// A stateless Deployment.
    #[default]
    Deployment,
    /// A StatefulSet with a governing headless Service (e.g. mysql).
    StatefulSet,
}

/// An application of the topology: its ServiceAccount, workload and Services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Name of the workload (and of its main Service).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Namespace the app runs in; it must be listed in `spec.namespaces`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// Container image. When it equals a `registry.images[].source`, the imported ACR copy is used instead once imported.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// ServiceAccount the pods run as (their mesh identity). Defaults to the app name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account: Option<String>,
    /// Value of the pods' `app` label, which Services select. Defaults to the app name; bookstore-v2 uses `bookstore` so the root `bookstore` Service reaches both versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"))]
    pub app_label: Option<String>,
    /// Value of the pods' `version` label (e.g. `v1`, `v2`), used by version Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"))]
    pub version: Option<String>,
    /// Container port the app listens on. Apps without a port get no Service (e.g. bookbuyer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Container arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub args: Vec<String>,
    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Number of pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Deployment, or StatefulSet for stateful apps such as mysql.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// The Services in front of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<AppService>,
    /// Node selector of the pods. Defaults to `kubernetes.io/os: linux` (the demo images are Linux only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// A persistent volume for StatefulSets, mounted at `mountPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<AppStorage>,
    /// Readiness is checked by opening a TCP connection to `port` (used by mysql).
    #[serde(default)]
    pub tcp_readiness_probe: bool,
}

fn default_replicas() -> i32 {
    1
}

/// Persistent storage of a StatefulSet app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStorage {
    /// Requested size, e.g. `250M`.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"))]
    pub size: String,
    /// Where the volume is mounted in the container.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/"))]
    pub mount_path: String,
}

/// Services of an app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppService {
    /// Ports of the main Service, named after the app. Defaults to one port equal to the app `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ports: Vec<ServicePortSpec>,
    /// Make the main Service headless (`clusterIP: None`), as mysql's is.
    #[serde(default)]
    pub headless: bool,
    /// Extra Services selecting only this app's version, e.g. `bookstore-v1`. They are TrafficSplit backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub version_services: Vec<VersionService>,
    /// Selector of the main Service. Defaults to `app: <name>`; bookstore's root Service selects `app: bookstore` across versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Do not create the main Service (only the version Services). Used when another app owns the root Service.
    #[serde(default)]
    pub skip_main: bool,
}

/// A Service port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    /// Port name, e.g. `bookstore-port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,
    /// Port the Service exposes.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Container port traffic goes to. Defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
    /// Application protocol, e.g. `tcp` for mysql (OSM reads it to pick TCP routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub app_protocol: Option<String>,
}

/// A Service that selects one version of an app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionService {
    /// Service name, e.g. `bookstore-v1`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
}

impl AppSpec {
    /// The ServiceAccount the app runs as.
    pub fn service_account_name(&self) -> &str {
        self.service_account.as_deref().unwrap_or(&self.name)
    }

    /// The pods' `app` label value.
    pub fn app_label_value(&self) -> &str {
        self.app_label.as_deref().unwrap_or(&self.name)
    }

    /// Ports of the main Service, defaulting to the container port.
    pub fn service_ports(&self) -> Vec<ServicePortSpec> {
        match &self.service {
            Some(svc) if !svc.ports.is_empty() => svc.ports.clone(),
            _ => self
                .port
                .map(|port| ServicePortSpec { name: None, port, target_port: None, app_protocol: None })
                .into_iter()
                .collect(),
        }
    }

    /// Names of every Service this app creates (main first, then version Services).
    pub fn service_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if self.port.is_some() || self.service.as_ref().is_some_and(|s| !s.ports.is_empty()) {
            let skip_main = self.service.as_ref().is_some_and(|s| s.skip_main);
            if !skip_main {
                names.push(self.name.as_str());
            }
            if let Some(svc) = &self.service {
                names.extend(svc.version_services.iter().map(|v| v.name.as_str()));
            }
        }
        names
    }
}
