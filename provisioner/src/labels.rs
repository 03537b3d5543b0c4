//! Labels, annotations and field managers shared by everything the operator writes.

use std::collections::BTreeMap;

/// Label every managed object carries: who manages it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "mesh-operator";
/// Label every managed object carries: the MeshInstallation it belongs to.
pub const INSTALLATION: &str = "meshoperator.dev/installation";
/// Label naming the component that rendered an object (mesh, namespaces, apps, ingress, traffic).
pub const COMPONENT: &str = "meshoperator.dev/component";
/// Prefix of every field manager; one manager per component.
pub const FIELD_MANAGER_PREFIX: &str = "mesh-operator";

/// OSM: namespace label naming the mesh that monitors it (a label, not an annotation).
pub const OSM_MONITORED_BY: &str = "openservicemesh.io/monitored-by";
/// OSM: namespace annotation turning sidecar injection on or off.
pub const OSM_SIDECAR_INJECTION: &str = "openservicemesh.io/sidecar-injection";
/// OSM: namespace annotation enabling metrics scraping.
pub const OSM_METRICS: &str = "openservicemesh.io/metrics";
/// OSM: namespace label that makes OSM (and us) leave a namespace alone.
pub const OSM_IGNORE: &str = "openservicemesh.io/ignore";
/// Istio add-on: namespace label selecting the control-plane revision that injects sidecars.
pub const ISTIO_REV: &str = "istio.io/rev";
/// Pod-template annotation whose change makes a workload roll (as `kubectl rollout restart`).
pub const RESTARTED_AT: &str = "meshoperator.dev/restartedAt";

/// The labels every object of `installation` carries.
pub fn managed_labels(installation: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
        (INSTALLATION.to_string(), installation.to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}

/// Label selector matching everything of `installation`.
pub fn installation_selector(installation: &str) -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE},{INSTALLATION}={installation}")
}

/// Field manager of a component, e.g. `mesh-operator/mesh`.
pub fn field_manager(component: &str) -> String {
    format!("{FIELD_MANAGER_PREFIX}/{component}")
}
