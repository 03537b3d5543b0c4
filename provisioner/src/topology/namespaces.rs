//! Namespaces and their enrolment, exactly as `osm namespace add` / `osm metrics enable` do it
//! (OSM), or with `istio.io/rev` (the Istio add-on).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use mesh_crds::{MeshInstallationSpec, MeshProvider, NamespaceSpec};

use crate::desired::{Component, Desired, DesiredError};
use crate::labels;

/// Annotation marking a namespace the installation created (and may delete with `teardown.deleteNamespaces`).
pub const CREATED_BY: &str = "meshoperator.dev/created-by";

/// What was observed about a namespace before building.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedNamespace {
    /// It exists.
    pub exists: bool,
    /// It carries our `created-by` annotation naming this installation.
    pub created_by_us: bool,
}

/// Enrolment of one namespace: the labels and annotations the mesh reads.
pub fn enrolment(
    spec: &MeshInstallationSpec,
    ns: &NamespaceSpec,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    match spec.mesh.provider {
        MeshProvider::SelfHosted | MeshProvider::AksAddon => {
            labels.insert(labels::OSM_MONITORED_BY.to_string(), spec.mesh.name.clone());
            let injection = if ns.sidecar_injection { "enabled" } else { "disabled" };
            annotations.insert(labels::OSM_SIDECAR_INJECTION.to_string(), injection.to_string());
            if ns.metrics {
                annotations.insert(labels::OSM_METRICS.to_string(), "enabled".to_string());
            }
        }
        MeshProvider::AksIstioAddon => {
            if ns.sidecar_injection
                && let Some(revision) = spec.mesh.istio.as_ref().and_then(|i| i.revision.as_ref())
            {
                labels.insert(labels::ISTIO_REV.to_string(), revision.clone());
            }
        }
    }
    (labels, annotations)
}

/// A short, stable digest of a namespace's enrolment; workloads carry it in their pod template so
/// a change of enrolment rolls them (sidecars injected or removed), and nothing else does.
pub fn enrolment_digest(spec: &MeshInstallationSpec, ns: &NamespaceSpec) -> String {
    let (labels, annotations) = enrolment(spec, ns);
    let mut text = String::new();
    for (k, v) in labels.iter().chain(annotations.iter()) {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push(';');
    }
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// FNV-1a: a tiny stable hash (std's hasher is not stable across releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3))
}

/// The Namespace objects: created if missing, enrolled either way.
pub fn namespaces(
    installation: &str,
    spec: &MeshInstallationSpec,
    observed: &BTreeMap<String, ObservedNamespace>,
) -> Result<Vec<Desired>, DesiredError> {
    spec.namespaces
        .iter()
        .map(|ns| {
            let (labels, mut annotations) = enrolment(spec, ns);
            let seen = observed.get(&ns.name).cloned().unwrap_or_default();
            if !seen.exists || seen.created_by_us {
                annotations.insert(CREATED_BY.to_string(), installation.to_string());
            }
            let object = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.name.clone()),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..Default::default()
                },
                ..Default::default()
            };
            Desired::new(Component::Namespaces, installation, &object)
        })
        .collect()
}

/// The namespace a mesh-integrated ingress controller runs in: enrolled (monitored) with sidecar
/// injection disabled, as OSM requires for IngressBackend sources of kind Service.
pub fn ingress_namespace_spec(name: &str) -> NamespaceSpec {
    NamespaceSpec { name: name.to_string(), sidecar_injection: false, metrics: false }
}
