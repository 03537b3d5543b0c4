//! `spec.azure` and `spec.registry`: where the AKS cluster and the container registry live in Azure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The public-cloud Azure Resource Manager endpoint.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";

/// The AKS cluster this installation targets, for the AKS add-on providers and ACR import.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// Azure subscription ID (a GUID).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub subscription_id: String,
    /// Resource group of the AKS cluster (and of the registry unless `registry.resourceGroup` is set).
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w\._\(\)]+$"))]
    pub resource_group: String,
    /// Name of the AKS managed cluster.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$")
    )]
    pub cluster_name: String,
    /// Azure region of the cluster, e.g. `eastus`. Used to look up Istio revisions.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9]+$"))]
    pub location: String,
    /// How the operator authenticates to Azure Resource Manager.
    #[serde(default)]
    pub credential: AzureCredential,
    /// Azure Resource Manager endpoint, for sovereign clouds or an emulator. Defaults to `https://management.azure.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), regex(pattern = r"^https?://"))]
    pub arm_endpoint: Option<String>,
    /// Microsoft Entra authority host the client-secret credential gets its tokens from, for sovereign clouds or an emulator. Defaults to `AZURE_AUTHORITY_HOST` or `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), regex(pattern = r"^https://"))]
    pub authority_host: Option<String>,
}

/// Exactly one way to obtain Azure tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AzureCredential {
    /// Workload identity federation (the default in a cluster): reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` injected by the AKS workload identity webhook.
    WorkloadIdentity(WorkloadIdentityCredential),
    /// The managed identity of the node or pod (IMDS).
    ManagedIdentity(ManagedIdentityCredential),
    /// A service principal whose secret is held in a Kubernetes Secret.
    ClientSecretRef(ClientSecretRef),
    /// The Azure CLI's signed-in account, for running the operator locally.
    AzureCli(AzureCliCredential),
}

impl Default for AzureCredential {
    fn default() -> Self {
        AzureCredential::WorkloadIdentity(WorkloadIdentityCredential::default())
    }
}

/// Workload identity settings; environment variables are used for what is empty.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityCredential {
    /// Client ID of the federated identity; defaults to `AZURE_CLIENT_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_id: Option<String>,
    /// Tenant ID; defaults to `AZURE_TENANT_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tenant_id: Option<String>,
}

/// Managed identity settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentityCredential {
    /// Client ID of a user-assigned identity; empty for the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_id: Option<String>,
}

/// A service principal secret kept in a Secret in the operator's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Tenant ID of the service principal.
    #[schemars(length(min = 1, max = 64))]
    pub tenant_id: String,
    /// Client (application) ID of the service principal.
    #[schemars(length(min = 1, max = 64))]
    pub client_id: String,
    /// Name of the Secret holding the client secret.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Namespace of that Secret. Defaults to the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub secret_namespace: Option<String>,
    /// Key in the Secret. Defaults to `clientSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub key: Option<String>,
}

/// Azure CLI credential (`az account get-access-token`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AzureCliCredential {
    /// Tenant to request tokens for; defaults to the CLI's current tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tenant_id: Option<String>,
}

/// Images imported into Azure Container Registry, which the workloads then run from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Name of the Azure Container Registry (without `.azurecr.io`).
    #[schemars(length(min = 5, max = 50), regex(pattern = r"^[a-zA-Z0-9]*$"))]
    pub acr: String,
    /// Resource group of the registry. Defaults to `azure.resourceGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: Option<String>,
    /// NoForce fails an import whose target tag exists; Force overwrites it.
    #[serde(default)]
    pub mode: ImportMode,
    /// Images to import, as `az acr import --source <source> -t <target>`.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub images: Vec<ImageImport>,
}

/// ACR import mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ImportMode {
    /// Fail when the target tag already exists (ACR's default).
    #[default]
    NoForce,
    /// Overwrite the target tag.
    Force,
}

/// One image to import.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageImport {
    /// Source image with its registry, e.g. `docker.io/openservicemesh/bookbuyer:v0.11.1`.
    #[schemars(length(min = 3, max = 512), regex(pattern = r"^[a-z0-9.-]+(:[0-9]+)?/[^\s]+$"))]
    pub source: String,
    /// Target repository and tag in the registry, e.g. `bookbuyer:v0.11.1`. Workloads whose image equals `source` are pointed at `<acr>.azurecr.io/<target>` once the import succeeded.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_.-]{1,128})?$"))]
    pub target: String,
}

impl RegistrySpec {
    /// The registry's login server.
    pub fn login_server(&self) -> String {
        format!("{}.azurecr.io", self.acr.to_ascii_lowercase())
    }
}
