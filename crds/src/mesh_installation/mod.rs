//! The `MeshInstallation` custom resource (meshoperator.dev/v1alpha1): one object that describes a
//! whole service-mesh installation — mesh, namespaces, apps, registry imports, ingress and traffic
//! policy — and that the operator keeps converged.

mod azure;
mod ingress;
mod mesh;
mod status;
mod teardown;
mod traffic;
mod workloads;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use azure::*;
pub use ingress::*;
pub use mesh::*;
pub use status::*;
pub use teardown::*;
pub use traffic::*;
pub use workloads::*;

/// API group of the operator's own resources.
pub const GROUP: &str = "meshoperator.dev";
/// API version of `MeshInstallation`.
pub const VERSION: &str = "v1alpha1";

/// The desired service-mesh installation: everything the OSM-on-AKS walkthrough does by hand, as one object.
// kube-derive repeats `type_` once per printer column, which clippy reads as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "meshoperator.dev",
    version = "v1alpha1",
    kind = "MeshInstallation",
    shortname = "mi",
    status = "MeshInstallationStatus",
    doc = "A service-mesh installation (mesh, namespaces, apps, registry imports, ingress and traffic policy) that mesh-operator keeps converged and tears down on delete.",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.mesh.provider",
        description = "Who provides the mesh control plane"
    ),
    printcolumn(name = "Mesh", type_ = "string", json_path = ".spec.mesh.name", description = "Mesh name"),
    printcolumn(
        name = "Traffic mode",
        type_ = "string",
        json_path = ".spec.traffic.mode",
        description = "SMI or GatewayAPI"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the installation converged"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mesh.provider == 'SelfHosted' || has(self.azure)").message("spec.azure is required when spec.mesh.provider is AksAddon or AksIstioAddon").field_path(".azure"),
    validation = Rule::new("self.mesh.provider != 'AksIstioAddon' || (has(self.traffic) && self.traffic.mode == 'GatewayAPI')").message("spec.traffic.mode must be GatewayAPI when spec.mesh.provider is AksIstioAddon: Istio does not serve SMI").field_path(".traffic.mode"),
    validation = Rule::new("self.mesh.provider == 'AksIstioAddon' || !has(self.traffic) || self.traffic.mode != 'GatewayAPI'").message("spec.traffic.mode GatewayAPI needs spec.mesh.provider AksIstioAddon: with SelfHosted or AksAddon the mesh is OSM, which enforces SMI only and none of the translated HTTPRoutes and AuthorizationPolicies").field_path(".traffic.mode"),
    validation = Rule::new("self.mesh.provider != 'AksAddon' || !has(self.mesh.__namespace__) || self.mesh.__namespace__ == 'kube-system'").message("spec.mesh.namespace must be kube-system (or unset) for the AKS OSM add-on, which always runs there").field_path(".mesh.namespace"),
    validation = Rule::new("!has(self.registry) || has(self.azure)").message("spec.azure is required when spec.registry is set: images are imported through Azure Resource Manager").field_path(".azure"),
    validation = Rule::new("!has(self.namespaces) || self.namespaces.all(n, !(n.name in ['kube-system', 'kube-public', 'kube-node-lease']))").message("spec.namespaces[].name: kube-system, kube-public and kube-node-lease belong to Kubernetes and cannot be enrolled").field_path(".namespaces"),
    validation = Rule::new("!has(self.apps) || self.apps.all(a, !(a.__namespace__ in ['kube-system', 'kube-public', 'kube-node-lease']))").message("spec.apps[].namespace: kube-system, kube-public and kube-node-lease belong to Kubernetes; apps cannot run there").field_path(".apps"),
    validation = Rule::new("!has(self.ingress) || ((!has(self.ingress.nginx) || !has(self.ingress.nginx.__namespace__) || !(self.ingress.nginx.__namespace__ in ['kube-system', 'kube-public', 'kube-node-lease'])) && (!has(self.ingress.gateway) || !has(self.ingress.gateway.__namespace__) || !(self.ingress.gateway.__namespace__ in ['kube-system', 'kube-public', 'kube-node-lease'])))").message("spec.ingress: the ingress namespace cannot be kube-system, kube-public or kube-node-lease").field_path(".ingress"),
    validation = Rule::new("!has(self.apps) || self.apps.all(a, self.apps.exists_one(b, b.name == a.name && b.__namespace__ == a.__namespace__))").message("spec.apps: app names must be unique within a namespace").field_path(".apps"),
    validation = Rule::new("!has(self.apps) || self.apps.all(a, has(self.namespaces) && self.namespaces.exists(n, n.name == a.__namespace__))").message("spec.apps[].namespace must be listed in spec.namespaces").field_path(".apps"),
    validation = Rule::new("!has(self.traffic) || !has(self.traffic.splits) || self.traffic.splits.all(s, has(self.namespaces) && self.namespaces.exists(n, n.name == s.__namespace__))").message("spec.traffic.splits[].namespace must be listed in spec.namespaces").field_path(".traffic.splits"),
    validation = Rule::new("!has(self.traffic) || !has(self.traffic.access) || self.traffic.access.all(p, has(self.namespaces) && self.namespaces.exists(n, n.name == p.__namespace__) && p.sources.all(s, self.namespaces.exists(n, n.name == s.__namespace__)))").message("spec.traffic.access[]: the destination namespace and every source namespace must be listed in spec.namespaces").field_path(".traffic.access"),
    validation = Rule::new("!has(self.traffic) || !has(self.traffic.splits) || self.traffic.splits.all(s, has(self.apps) && self.apps.exists(a, a.__namespace__ == s.__namespace__ && a.name == s.service) && s.backends.all(b, has(self.apps) && self.apps.exists(a, a.__namespace__ == s.__namespace__ && (a.name == b.service || (has(a.service) && has(a.service.versionServices) && a.service.versionServices.exists(v, v.name == b.service))))))").message("spec.traffic.splits[]: the root service and every backend must be a Service declared by an app in the split's namespace (the app name or one of its versionServices)").field_path(".traffic.splits"),
    validation = Rule::new("!has(self.registry) || !has(self.registry.images) || self.registry.images.all(i, self.registry.images.exists_one(j, j.target == i.target))").message("spec.registry.images[].target must be unique").field_path(".registry.images"),
    validation = Rule::new("!has(self.ingress) || !has(self.ingress.rules) || self.ingress.rules.all(r, has(self.namespaces) && self.namespaces.exists(n, n.name == r.backend.__namespace__))").message("spec.ingress.rules[].backend.namespace must be listed in spec.namespaces").field_path(".ingress.rules"),
)]
pub struct MeshInstallationSpec {
    /// The mesh control plane and its mesh-wide settings.
    #[serde(default)]
    pub mesh: MeshSpec,
    /// The AKS cluster in Azure; required for the AksAddon and AksIstioAddon providers and for registry imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    /// Images to import into Azure Container Registry before the apps use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistrySpec>,
    /// Namespaces to create (if missing) and enrol in the mesh; each name at most once.
    #[serde(default)]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub namespaces: Vec<NamespaceSpec>,
    /// Applications to deploy into the enrolled namespaces.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub apps: Vec<AppSpec>,
    /// Ingress into the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Access and split policies.
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// What deleting this object undoes.
    #[serde(default)]
    pub teardown: TeardownSpec,
}

impl MeshInstallationSpec {
    /// The app that declares Service `service` in `namespace`, either as its main Service or a version Service.
    pub fn app_declaring_service(&self, namespace: &str, service: &str) -> Option<&AppSpec> {
        self.apps.iter().filter(|app| app.namespace == namespace).find(|app| app.service_names().contains(&service))
    }
}

/// Errors reading a MeshInstallation from YAML.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// YAML, but not a MeshInstallation.
    #[error("not a valid MeshInstallation: {0}")]
    Shape(#[from] serde_json::Error),
}

impl MeshInstallation {
    /// Reads a MeshInstallation from YAML the way the API server does (YAML → JSON → object), so
    /// one-of fields such as `azure.credential: {workloadIdentity: {}}` read as written.
    pub fn from_yaml(text: &str) -> Result<MeshInstallation, ParseError> {
        let value: serde_json::Value = serde_yaml::from_str(text)?;
        Ok(serde_json::from_value(value)?)
    }
}
