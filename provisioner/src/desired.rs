//! The desired state of an installation: a list of objects, each tagged with the component that
//! renders it. Builders produce these without touching the API; the apply layer makes them exist.

use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde::Serialize;

use crate::labels;

/// Components of an installation. Each applies with its own field manager and is pruned on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The mesh control plane (self-hosted OSM, or add-on configuration) and its CRDs.
    Mesh,
    /// Namespaces and their enrolment.
    Namespaces,
    /// ServiceAccounts, workloads and Services of the apps.
    Apps,
    /// The ingress controller, Ingresses, IngressBackends, Gateways.
    Ingress,
    /// Traffic policy: SMI objects, or Gateway API routes and authorization.
    Traffic,
}

impl Component {
    /// Every component, in apply order.
    pub const ALL: [Component; 5] =
        [Component::Mesh, Component::Namespaces, Component::Apps, Component::Ingress, Component::Traffic];

    /// Name used in labels, field managers and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Mesh => "mesh",
            Component::Namespaces => "namespaces",
            Component::Apps => "apps",
            Component::Ingress => "ingress",
            Component::Traffic => "traffic",
        }
    }
}

/// One object the installation wants to exist.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Which component renders it.
    pub component: Component,
    /// Its API resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// Whether it is namespaced.
    pub namespaced: bool,
    /// The object, with apiVersion/kind/metadata and our labels set.
    pub object: DynamicObject,
    /// What to do when an object of that name exists that this installation did not create.
    pub existing: ExistingPolicy,
}

/// How a desired object treats a same-named object the installation did not create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingPolicy {
    /// Never overwrite it: report a conflict naming it.
    Conflict,
    /// Apply our fields onto it (namespaces: enrolment labels and annotations only).
    Merge,
    /// Use it as it is and write nothing (shared CRDs installed by someone else).
    UseAsIs,
}

/// Errors while turning a typed object into a [`Desired`].
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The object did not serialize into a Kubernetes object.
    #[error("rendering {kind} {name}: {source}")]
    Serialize {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// Cause.
        source: serde_json::Error,
    },
}

impl Desired {
    /// Wraps a typed object, adding the managed-by, installation and component labels.
    pub fn new<K>(component: Component, installation: &str, object: &K) -> Result<Self, DesiredError>
    where
        K: Resource<DynamicType = ()> + Serialize,
        K::Scope: ScopeInfo,
    {
        let resource = ApiResource::erase::<K>(&());
        let name = object.meta().name.clone().unwrap_or_default();
        let value = serde_json::to_value(object).map_err(|source| DesiredError::Serialize {
            kind: resource.kind.clone(),
            name: name.clone(),
            source,
        })?;
        let mut dynamic: DynamicObject = serde_json::from_value(value).map_err(|source| DesiredError::Serialize {
            kind: resource.kind.clone(),
            name,
            source,
        })?;
        dynamic.types =
            Some(kube::api::TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
        dynamic
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(labels::managed_labels(installation, component.as_str()));
        let existing = match resource.kind.as_str() {
            // OSM's bootstrap (or AKS) may create osm-mesh-config first; we only own our fields.
            "Namespace" | "MeshConfig" => ExistingPolicy::Merge,
            "CustomResourceDefinition" => ExistingPolicy::UseAsIs,
            _ => ExistingPolicy::Conflict,
        };
        Ok(Desired { component, resource, namespaced: K::Scope::NAMESPACED, object: dynamic, existing })
    }

    /// Group, version and kind of the object.
    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(&self.resource.group, &self.resource.version, &self.resource.kind)
    }

    /// Name of the object.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// Namespace of the object, if namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.object.metadata.namespace.as_deref()
    }

    /// `Kind/namespace/name` (or `Kind/name`), for messages.
    pub fn reference(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.resource.kind, ns, self.name()),
            None => format!("{}/{}", self.resource.kind, self.name()),
        }
    }
}

/// Whether a resource scope is namespaced.
pub trait ScopeInfo {
    /// True for namespaced kinds.
    const NAMESPACED: bool;
}

impl ScopeInfo for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ScopeInfo for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}
