//! Semantic validation: what the CRD schema and CEL rules cannot see — the live cluster (ignored
//! namespaces, other meshes) and relations between objects. Pure. Any problem stops the reconcile
//! before it writes, so nothing already applied is lost or half-changed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use mesh_crds::MeshInstallationSpec;
use mesh_provisioner::labels;
use mesh_provisioner::topology::{SmiBuildError, smi_policies};

pub use super::conditions::Problem;

/// What the validation needs from the cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Namespaces running an OSM control plane, with that mesh's name.
    pub control_planes: BTreeMap<String, String>,
    /// The operator's own namespace.
    pub operator_namespace: String,
}

/// Checks `spec` against itself and the cluster.
pub fn validate(installation: &str, spec: &MeshInstallationSpec, facts: &ClusterFacts) -> Vec<Problem> {
    let mut problems = super::placement::problems(spec, &facts.operator_namespace);
    let own_control_plane = spec.mesh.control_plane_namespace();
    for (index, ns) in spec.namespaces.iter().enumerate() {
        let Some(live) = facts.namespaces.get(&ns.name) else { continue };
        let live_labels = live.metadata.labels.clone().unwrap_or_default();
        if live_labels.get(labels::OSM_IGNORE).is_some_and(|v| v == "true") {
            problems.push(Problem {
                reason: "NamespaceIgnored",
                message: format!(
                    "spec.namespaces[{index}].name: namespace {} is labelled {}=true, so the mesh must leave it alone; remove the label or drop the namespace from the spec",
                    ns.name,
                    labels::OSM_IGNORE
                ),
            });
        }
        // The OSM → Istio migration takes over namespaces the AKS OSM add-on monitors.
        let migrating = spec.mesh.provider == mesh_crds::MeshProvider::AksIstioAddon && spec.mesh.migrate_from_osm;
        if let Some(other) =
            live_labels.get(labels::OSM_MONITORED_BY).filter(|m| **m != spec.mesh.name && !(migrating && *m == "osm"))
        {
            problems.push(Problem {
                reason: "NamespaceInAnotherMesh",
                message: format!(
                    "spec.namespaces[{index}].name: namespace {} is already monitored by mesh {other}; remove it from that mesh first",
                    ns.name
                ),
            });
        }
        if ns.name != own_control_plane
            && let Some(mesh) = facts.control_planes.get(&ns.name)
        {
            problems.push(Problem {
                reason: "NamespaceHoldsControlPlane",
                message: format!(
                    "spec.namespaces[{index}].name: namespace {} holds the control plane of mesh {mesh}; a control-plane namespace cannot be enrolled",
                    ns.name
                ),
            });
        }
    }
    if let Some(mesh) = facts.control_planes.get(own_control_plane).filter(|m| **m != spec.mesh.name) {
        problems.push(Problem {
            reason: "Conflict",
            message: format!(
                "spec.mesh.namespace: namespace {own_control_plane} already runs the control plane of another mesh ({mesh}); choose another namespace or uninstall it"
            ),
        });
    }
    if let Err(error @ SmiBuildError::ConflictingRouteGroup { .. }) = smi_policies(installation, spec) {
        problems.push(Problem { reason: "InvalidSpec", message: error.to_string() });
    }
    problems.extend(split_problems(spec));
    problems.extend(ingress_problems(spec));
    problems
}

#[cfg(test)]
mod tests;

/// OSM shares the root Service's ports with every backend: a backend without them gets no traffic.
fn split_problems(spec: &MeshInstallationSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, split) in spec.traffic.splits.iter().enumerate() {
        let Some(root_app) = spec.app_declaring_service(&split.namespace, &split.service) else { continue };
        let root_ports: Vec<i32> = root_app.service_ports().iter().map(|p| p.port).collect();
        for (backend_index, backend) in split.backends.iter().enumerate() {
            let Some(app) = spec.app_declaring_service(&split.namespace, &backend.service) else { continue };
            let ports: Vec<i32> = app.service_ports().iter().map(|p| p.port).collect();
            if ports != root_ports {
                problems.push(Problem {
                    reason: "InvalidSpec",
                    message: format!(
                        "spec.traffic.splits[{index}].backends[{backend_index}].service: backend {} exposes ports {ports:?} but the root service {} exposes {root_ports:?}; split backends must serve the root's ports",
                        backend.service, split.service
                    ),
                });
            }
        }
    }
    problems
}

/// Every ingress rule must point at a declared Service and one of its ports.
fn ingress_problems(spec: &MeshInstallationSpec) -> Vec<Problem> {
    let Some(ingress) = &spec.ingress else { return Vec::new() };
    let mut problems = Vec::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        let backend = &rule.backend;
        match spec.app_declaring_service(&backend.namespace, &backend.service) {
            None => problems.push(Problem {
                reason: "InvalidSpec",
                message: format!(
                    "spec.ingress.rules[{index}].backend: Service {}/{} is not declared by any app in spec.apps",
                    backend.namespace, backend.service
                ),
            }),
            Some(app) if !app.service_ports().iter().any(|p| p.port == backend.port) => problems.push(Problem {
                reason: "InvalidSpec",
                message: format!(
                    "spec.ingress.rules[{index}].backend.port: Service {}/{} has no port {}",
                    backend.namespace, backend.service, backend.port
                ),
            }),
            Some(_) => {}
        }
    }
    problems
}
