//! `spec.teardown`: what deleting the MeshInstallation undoes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::workloads::default_true;

/// Teardown choices, applied when the MeshInstallation is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeardownSpec {
    /// Restart the workloads of un-enrolled namespaces so their sidecars are removed (the article's `kubectl rollout restart`).
    #[serde(default = "default_true")]
    pub restart_workloads: bool,
    /// Delete the app namespaces the installation created. Off by default: namespaces may hold other things.
    #[serde(default)]
    pub delete_namespaces: bool,
    /// Uninstall the mesh control plane (self-hosted OSM) or disable the AKS add-on.
    #[serde(default = "default_true")]
    pub uninstall_mesh: bool,
}

impl Default for TeardownSpec {
    fn default() -> Self {
        TeardownSpec { restart_workloads: true, delete_namespaces: false, uninstall_mesh: true }
    }
}
