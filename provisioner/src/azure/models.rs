//! Typed serde models of the ARM resources and bodies mesh-operator uses, and nothing more. Every
//! object model keeps the fields it does not name in `rest`, so a read-modify-write of a managed
//! cluster sends back everything it read and changes only the fields we own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `Microsoft.ContainerService/managedClusters` (only what we read or change).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Entity tag, also returned as the `ETag` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: ManagedClusterProperties,
    /// Everything else, sent back unchanged.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `properties` of a managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterProperties {
    /// `Succeeded`, `Updating`, `Failed`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Requested Kubernetes version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Running Kubernetes version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_kubernetes_version: Option<String>,
    /// Add-ons by name (`openServiceMesh`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon_profiles: Option<BTreeMap<String, AddonProfile>>,
    /// The Istio-based service mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_mesh_profile: Option<ServiceMeshProfile>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One add-on profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AddonProfile {
    /// Whether the add-on is enabled.
    #[serde(default)]
    pub enabled: bool,
    /// Add-on settings (none are documented for OSM).
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// Everything else (e.g. the read-only `identity`).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `properties.serviceMeshProfile`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMeshProfile {
    /// `Istio` or `Disabled`.
    pub mode: String,
    /// Istio settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioServiceMesh>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `serviceMeshProfile.istio`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioServiceMesh {
    /// Control-plane revisions, e.g. `["asm-1-25"]` (two only during a canary upgrade).
    #[serde(default)]
    pub revisions: Vec<String>,
    /// Everything else (components, certificateAuthority).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Service mesh mode values.
pub mod mesh_mode {
    /// The Istio add-on is enabled.
    pub const ISTIO: &str = "Istio";
    /// No service mesh add-on.
    pub const DISABLED: &str = "Disabled";
}

impl ManagedCluster {
    /// Whether the OSM add-on is enabled.
    pub fn osm_addon_enabled(&self) -> bool {
        self.properties.addon_profiles.as_ref().and_then(|p| p.get(super::OSM_ADDON)).is_some_and(|p| p.enabled)
    }

    /// Sets the OSM add-on profile as `az aks enable-addons`/`disable-addons` do. Returns whether it changed.
    pub fn set_osm_addon(&mut self, enabled: bool) -> bool {
        if self.osm_addon_enabled() == enabled {
            return false;
        }
        let profiles = self.properties.addon_profiles.get_or_insert_with(BTreeMap::new);
        let profile = profiles.entry(super::OSM_ADDON.to_string()).or_default();
        profile.enabled = enabled;
        profile.config = if enabled { Some(BTreeMap::new()) } else { None };
        true
    }

    /// The Istio revisions when the Istio add-on is enabled.
    pub fn istio_revisions(&self) -> Option<&[String]> {
        let profile = self.properties.service_mesh_profile.as_ref()?;
        (profile.mode == mesh_mode::ISTIO)
            .then(|| profile.istio.as_ref().map(|i| i.revisions.as_slice()).unwrap_or(&[]))
    }

    /// Enables the Istio add-on at `revision` (keeping other Istio settings). Returns whether it changed.
    pub fn set_istio(&mut self, revision: &str) -> bool {
        if self.istio_revisions().is_some_and(|r| r.iter().any(|x| x == revision)) {
            return false;
        }
        let profile = self.properties.service_mesh_profile.get_or_insert_with(Default::default);
        profile.mode = mesh_mode::ISTIO.to_string();
        let istio = profile.istio.get_or_insert_with(Default::default);
        istio.revisions = vec![revision.to_string()];
        true
    }

    /// Disables the Istio add-on. Returns whether it changed.
    pub fn disable_istio(&mut self) -> bool {
        if self.istio_revisions().is_none() {
            return false;
        }
        let profile = self.properties.service_mesh_profile.get_or_insert_with(Default::default);
        profile.mode = mesh_mode::DISABLED.to_string();
        profile.istio = None;
        true
    }

    /// The object ID of the kubelet's managed identity
    /// (`properties.identityProfile.kubeletidentity.objectId`), which pulls the nodes' images.
    pub fn kubelet_object_id(&self) -> Option<&str> {
        self.properties.rest.get("identityProfile")?.get("kubeletidentity")?.get("objectId")?.as_str()
    }

    /// The running Kubernetes version (`currentKubernetesVersion`, else `kubernetesVersion`).
    pub fn kubernetes_version(&self) -> Option<&str> {
        self.properties.current_kubernetes_version.as_deref().or(self.properties.kubernetes_version.as_deref())
    }

    /// Whether an operation is running on the cluster.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.properties.provisioning_state.as_deref(),
            Some("Updating" | "Creating" | "Upgrading" | "Deleting" | "Scaling" | "Starting" | "Stopping")
        )
    }
}

/// `GET …/locations/{location}/meshRevisionProfiles`: a list (ARM list shape).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionProfileList {
    /// Profiles (one, `default`, in practice).
    #[serde(default)]
    pub value: Vec<MeshRevisionProfile>,
}

/// A mesh revision profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionProfile {
    /// Properties.
    #[serde(default)]
    pub properties: MeshRevisionProfileProperties,
}

/// `properties` of a mesh revision profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionProfileProperties {
    /// Available revisions.
    #[serde(default)]
    pub mesh_revisions: Vec<MeshRevision>,
}

/// One Istio revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevision {
    /// `asm-1-25`.
    pub revision: String,
    /// Revisions it can be upgraded to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Compatible versions of other products.
    #[serde(default)]
    pub compatible_with: Vec<CompatibleVersions>,
}

/// Versions of a product (`kubernetes`) compatible with a revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompatibleVersions {
    /// Product name.
    pub name: String,
    /// Versions, e.g. `["1.29", "1.30"]`.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// `POST …/registries/{name}/importImage` body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportImageParameters {
    /// Where the image comes from.
    pub source: ImportSource,
    /// `repo:tag` targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_tags: Vec<String>,
    /// `NoForce` or `Force`.
    pub mode: String,
}

/// `source` of an import.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportSource {
    /// `docker.io`, `mcr.microsoft.com`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_uri: Option<String>,
    /// `repo:tag` or `repo@sha256:…` within the source registry.
    pub source_image: String,
}

/// `Microsoft.Authorization/roleAssignments` (what we send and read).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// ARM ID (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The assignment's GUID name (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: RoleAssignmentProperties,
}

/// `properties` of a role assignment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    /// `/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
    #[serde(default)]
    pub role_definition_id: String,
    /// Object ID of the principal.
    #[serde(default)]
    pub principal_id: String,
    /// `ServicePrincipal`, `User`, `Group`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<String>,
    /// Everything else (scope, condition, createdOn, …), read only.
    #[serde(flatten, skip_serializing)]
    pub rest: Map<String, Value>,
}

/// The body of an `Azure-AsyncOperation` status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled`.
    #[serde(default)]
    pub status: String,
    /// The error of a failed operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The ARM error body `{"error": {"code", "message"}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CloudError {
    /// The error.
    #[serde(default)]
    pub error: ErrorDetail,
}

/// ARM error details.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ErrorDetail {
    /// Code, e.g. `AuthorizationFailed`.
    #[serde(default)]
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}
