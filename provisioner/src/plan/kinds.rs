//! The kinds mesh-operator writes, per component, in the order teardown deletes them; and the
//! phases objects are applied in ([`dependency_order`]).

use crate::apply::ManagedKind;
use crate::desired::Component;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use mesh_crds::{istio, osm, smi};

fn kind<K: kube::Resource<DynamicType = ()>>(namespaced: bool) -> ManagedKind {
    ManagedKind { resource: ApiResource::erase::<K>(&()), namespaced }
}

/// Namespaces: never deleted by pruning, only released (or deleted on teardown when we created them).
pub fn namespace() -> ApiResource {
    ApiResource::erase::<Namespace>(&())
}

/// Every kind that `component` writes, in teardown order (dependents first, definitions last).
pub fn kinds_of(component: Component) -> Vec<ManagedKind> {
    match component {
        Component::Traffic => vec![
            kind::<smi::TrafficSplit>(true),
            kind::<smi::TrafficTarget>(true),
            kind::<smi::HTTPRouteGroup>(true),
            kind::<smi::TCPRoute>(true),
            kind::<gateway_api::apis::standard::httproutes::HttpRoute>(true),
            kind::<istio::AuthorizationPolicy>(true),
            kind::<osm::Egress>(true),
        ],
        Component::Ingress => vec![
            kind::<osm::IngressBackend>(true),
            kind::<Ingress>(true),
            kind::<gateway_api::apis::standard::httproutes::HttpRoute>(true),
            kind::<gateway_api::apis::standard::gateways::Gateway>(true),
            kind::<gateway_api::apis::standard::referencegrants::ReferenceGrant>(true),
            kind::<istio::AuthorizationPolicy>(true),
            kind::<ValidatingWebhookConfiguration>(false),
            kind::<Deployment>(true),
            kind::<Service>(true),
            kind::<ConfigMap>(true),
            kind::<Secret>(true),
            kind::<IngressClass>(false),
            kind::<RoleBinding>(true),
            kind::<Role>(true),
            kind::<ClusterRoleBinding>(false),
            kind::<ClusterRole>(false),
            kind::<ServiceAccount>(true),
        ],
        Component::Apps => vec![
            kind::<Deployment>(true),
            kind::<StatefulSet>(true),
            kind::<Service>(true),
            kind::<ServiceAccount>(true),
        ],
        Component::Namespaces => vec![kind::<Namespace>(false)],
        Component::Mesh => vec![
            kind::<osm::Egress>(true),
            kind::<osm::MeshConfig>(true),
            kind::<MutatingWebhookConfiguration>(false),
            kind::<ValidatingWebhookConfiguration>(false),
            kind::<Deployment>(true),
            kind::<Service>(true),
            kind::<ConfigMap>(true),
            kind::<Secret>(true),
            kind::<RoleBinding>(true),
            kind::<Role>(true),
            kind::<ClusterRoleBinding>(false),
            kind::<ClusterRole>(false),
            kind::<ServiceAccount>(true),
            kind::<CustomResourceDefinition>(false),
            kind::<Namespace>(false),
        ],
    }
}

/// Every kind any component writes, once each (the watch caches).
pub fn all_managed_kinds() -> Vec<ManagedKind> {
    let mut all: Vec<ManagedKind> = Vec::new();
    for component in Component::ALL {
        for kind in kinds_of(component) {
            if !all.iter().any(|k| k.resource == kind.resource) {
                all.push(kind);
            }
        }
    }
    all
}

/// The phases a plan is applied in: every object depends only on objects of earlier phases
/// (and on what the reconciler ensures between them, such as the mesh's root CA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The mesh's CRDs: nothing using their kinds can be applied before they are Established.
    MeshDefinitions,
    /// The control plane's namespace: its CA Secret and MeshConfig go there.
    MeshNamespace,
    /// The rest of the control plane.
    Mesh,
    /// Enrolment of the spec's namespaces.
    Namespaces,
    /// The apps.
    Apps,
    /// The ingress.
    Ingress,
    /// Traffic policies (SMI kinds need the mesh's CRDs).
    Traffic,
}

/// The phase an object is applied in.
pub fn phase_of(desired: &crate::desired::Desired) -> Phase {
    match desired.component {
        Component::Mesh if desired.resource.kind == "CustomResourceDefinition" => Phase::MeshDefinitions,
        Component::Mesh if desired.resource.kind == "Namespace" => Phase::MeshNamespace,
        Component::Mesh => Phase::Mesh,
        Component::Namespaces => Phase::Namespaces,
        Component::Apps => Phase::Apps,
        Component::Ingress => Phase::Ingress,
        Component::Traffic => Phase::Traffic,
    }
}

/// The objects of one phase, in plan order.
pub fn dependency_order(objects: &[crate::desired::Desired], phase: Phase) -> Vec<&crate::desired::Desired> {
    objects.iter().filter(|d| phase_of(d) == phase).collect()
}
