//! Azure Resource Manager (ARM) for the AKS add-ons and ACR image import.
//!
//! A thin client on the `azure_core` 1.x pipeline (retry policy honouring `Retry-After`, bearer
//! token policy for the cloud's Resource Manager scope), credentials from `azure_identity` 1.x, and typed serde models
//! of our own for exactly what mesh-operator reads and writes. There is no usable management-plane
//! crate for azure_core 1.x (`azure_mgmt_*` are built on azure_core 0.1x, `azure_resourcemanager_*`
//! are placeholders), so the REST calls are made here, with pinned api-versions.
//!
//! - [`cloud`]: the closed list of clouds (endpoints, authority host, token scope) and the
//!   operator-level overrides (a test emulator).
//! - [`client`]: the pipeline, requests, long-running operation (LRO) start and polling.
//! - [`credential`]: `spec.azure.credential` → an `azure_identity` credential.
//! - [`error`]: ARM errors classified as Azure Service Operator does (retryable or fatal), with hints.
//! - [`models`]: ManagedCluster, mesh revision profiles, importImage, operation status.
//! - [`aks`]: read-modify-write of a managed cluster guarded by its ETag; Istio revision choice.
//! - [`acr`]: `importImage` bodies and calls.
//! - [`resource`]: where a resource is (its ARM ID and path segments): the cluster, the registry.
//! - [`roles`]: the AcrPull role assignment of `spec.registry.attach`.
//! - [`tls`]: extra CAs trusted for the ARM endpoint (an emulator's self-signed certificate).

pub mod acr;
pub mod aks;
pub mod client;
pub mod cloud;
pub mod credential;
pub mod error;
pub mod models;
pub mod resource;
pub mod roles;
pub mod tls;

pub use client::{ArmClient, PollOutcome, PollingKind, Started, WriteOutcome};
pub use cloud::{EndpointOverrides, Endpoints};
pub use error::{ArmError, ErrorClass, Target};

/// api-version of `Microsoft.ContainerService` (managedClusters, meshRevisionProfiles).
pub const AKS_API_VERSION: &str = "2024-09-01";
/// api-version of `Microsoft.ContainerRegistry` (importImage).
pub const ACR_API_VERSION: &str = "2023-07-01";
/// The AKS add-on profile key of Open Service Mesh.
pub const OSM_ADDON: &str = "openServiceMesh";
