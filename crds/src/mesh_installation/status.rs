//! `status`: what the operator observed and did, in the shape of the Kubernetes API conventions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator reports.
pub mod condition_type {
    /// Everything converged.
    pub const READY: &str = "Ready";
    /// The mesh control plane is installed and available.
    pub const MESH_READY: &str = "MeshReady";
    /// Every registry image was imported.
    pub const IMAGES_IMPORTED: &str = "ImagesImported";
    /// Every namespace exists and is enrolled.
    pub const NAMESPACES_READY: &str = "NamespacesReady";
    /// Every app's workload is available.
    pub const APPS_READY: &str = "AppsReady";
    /// The ingress controller and routes are in place.
    pub const INGRESS_READY: &str = "IngressReady";
    /// Traffic policies are applied.
    pub const TRAFFIC_READY: &str = "TrafficReady";
    /// Something is wrong that needs a person (a conflict, invalid input, a fatal Azure error).
    pub const DEGRADED: &str = "Degraded";
}

/// Observed state of a MeshInstallation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshInstallationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Latest observations: Ready, MeshReady, ImagesImported, NamespacesReady, AppsReady, IngressReady, TrafficReady and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// A one-line summary per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    /// Findings of the SMI → Gateway API translation (and other lossy conversions), most severe
    /// first; at most 100 (`notificationsOmitted` counts the rest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub notifications: Vec<Notification>,
    /// Findings left out of `notifications` (the least severe), so that status stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications_omitted: Option<u32>,
    /// Azure long-running operations in flight, so a restarted operator resumes polling instead of writing again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub azure_operations: Vec<AzureOperation>,
    /// Registry targets imported successfully, as `<acr>.azurecr.io/<target>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imported_images: Vec<String>,
    /// The AcrPull role assignment on the registry for the cluster's kubelet identity (`spec.registry.attach`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_pull_assignment: Option<RoleAssignmentStatus>,
    /// External address of the ingress (load balancer IP or host name, or the Gateway's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_address: Option<String>,
    /// Certificates the operator generated for ingress TLS, with their expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateStatus>,
    /// The step of the in-place migration from the AKS OSM add-on to the Istio add-on (`spec.mesh.migrateFromOsm`) reached so far, so a restarted operator resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osm_migration_step: Option<String>,
    /// The teardown step reached while the installation is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown_step: Option<String>,
}

/// A condition following the Kubernetes API conventions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason for the last transition.
    pub reason: String,
    /// What happened and, when something is wrong, what to do about it.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of a condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// Summary of one component.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component: mesh, images, namespaces, apps, ingress or traffic.
    pub name: String,
    /// Whether it converged.
    pub ready: bool,
    /// Objects of the component that are ready.
    pub ready_count: i32,
    /// Objects of the component in total.
    pub total: i32,
    /// What is not ready and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Severity of a notification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum NotificationLevel {
    /// Something blocked the translation of an object; its previous policy is kept.
    Error,
    /// Translated, but narrower than the source (some requests it allowed are now denied) or not portable.
    Warning,
    /// For information.
    Info,
}

/// A finding about one source object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// ERROR, WARNING or INFO.
    pub level: NotificationLevel,
    /// The source object, as `Kind/namespace/name`.
    pub object: String,
    /// What happened and what to do.
    pub message: String,
}

/// An Azure long-running operation being polled.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureOperation {
    /// What the operation does, e.g. `EnableOsmAddon` or `ImportImage/bookbuyer:v0.11.1`.
    pub operation: String,
    /// ARM ID of the resource the operation acts on.
    pub resource_id: String,
    /// URL to poll (from `Azure-AsyncOperation` or `Location`).
    pub polling_url: String,
    /// Which header the polling URL came from: AzureAsyncOperation or Location.
    pub polling_kind: String,
    /// When the operation started (RFC 3339).
    pub started_at: String,
    /// Polls in a row that got no usable answer; after a few the operation is dropped and the resource read again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_polls: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The AcrPull role assignment of `spec.registry.attach`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentStatus {
    /// ARM ID of the role assignment.
    pub id: String,
    /// Object ID of the principal it grants the role to (the cluster's kubelet identity).
    pub principal_id: String,
    /// Whether this installation created it (only then does teardown delete it).
    pub created: bool,
}

/// A generated certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// Secret holding it, as `namespace/name`.
    pub secret: String,
    /// Host names it covers.
    pub hosts: Vec<String>,
    /// When it expires (RFC 3339).
    pub not_after: String,
}
