//! The kinds mesh-operator writes, per component, in the order teardown deletes them.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use mesh_crds::{istio, osm, smi};
use mesh_provisioner::apply::ManagedKind;
use mesh_provisioner::desired::Component;

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
