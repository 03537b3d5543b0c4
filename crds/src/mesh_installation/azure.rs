//! `spec.azure` and `spec.registry`: where the AKS cluster and the container registry live in Azure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ARM identifiers follow Azure's naming rules (ASCII only), enforced by the API server: none can
// hold a `/`, `?`, `#` or `%`, so none can change the ARM URL it is put into (the client
// percent-encodes them as path segments as well).

/// The Azure clouds the operator talks to. Each fixes the Resource Manager endpoint, the Microsoft
/// Entra authority host and the token scope: a MeshInstallation names a cloud, never a host, so its
/// author cannot make the operator send a token or a client secret anywhere else.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum AzureCloud {
    /// Azure (public): `management.azure.com`, `login.microsoftonline.com`.
    #[default]
    AzurePublicCloud,
    /// Azure operated by 21Vianet: `management.chinacloudapi.cn`, `login.chinacloudapi.cn`.
    AzureChinaCloud,
    /// Azure Government: `management.usgovcloudapi.net`, `login.microsoftonline.us`.
    #[serde(rename = "AzureUSGovernment")]
    AzureUsGovernment,
}

impl AzureCloud {
    /// The Azure Resource Manager endpoint.
    pub fn arm_endpoint(self) -> &'static str {
        match self {
            AzureCloud::AzurePublicCloud => "https://management.azure.com",
            AzureCloud::AzureChinaCloud => "https://management.chinacloudapi.cn",
            AzureCloud::AzureUsGovernment => "https://management.usgovcloudapi.net",
        }
    }

    /// The Microsoft Entra authority host tokens come from.
    pub fn authority_host(self) -> &'static str {
        match self {
            AzureCloud::AzurePublicCloud => "https://login.microsoftonline.com",
            AzureCloud::AzureChinaCloud => "https://login.chinacloudapi.cn",
            AzureCloud::AzureUsGovernment => "https://login.microsoftonline.us",
        }
    }

    /// The scope of a Resource Manager token in this cloud.
    pub fn arm_scope(self) -> &'static str {
        match self {
            AzureCloud::AzurePublicCloud => "https://management.azure.com/.default",
            AzureCloud::AzureChinaCloud => "https://management.chinacloudapi.cn/.default",
            AzureCloud::AzureUsGovernment => "https://management.usgovcloudapi.net/.default",
        }
    }

    /// The DNS suffix of container registries' login servers.
    pub fn registry_suffix(self) -> &'static str {
        match self {
            AzureCloud::AzurePublicCloud => "azurecr.io",
            AzureCloud::AzureChinaCloud => "azurecr.cn",
            AzureCloud::AzureUsGovernment => "azurecr.us",
        }
    }

    /// As written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            AzureCloud::AzurePublicCloud => "AzurePublicCloud",
            AzureCloud::AzureChinaCloud => "AzureChinaCloud",
            AzureCloud::AzureUsGovernment => "AzureUSGovernment",
        }
    }
}

/// The AKS cluster this installation targets, for the AKS add-on providers and ACR import.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// The Azure cloud: it fixes the Resource Manager endpoint, the Microsoft Entra authority host
    /// and the token scope (only the operator's own flags can point it elsewhere, e.g. at a test emulator).
    #[serde(default)]
    pub cloud: AzureCloud,
    /// Azure subscription ID (a GUID).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub subscription_id: String,
    /// Resource group of the AKS cluster (and of the registry unless `registry.resourceGroup` is set): 1–90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`.
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w.()]{0,89}[-\w()]$"))]
    pub resource_group: String,
    /// Name of the AKS managed cluster: 1–63 letters, digits, `-` and `_`, starting and ending with a letter or digit.
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
    /// Tenant ID of the service principal (a GUID or a domain such as `contoso.onmicrosoft.com`).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[0-9A-Za-z][-0-9A-Za-z.]*$"))]
    pub tenant_id: String,
    /// Client (application) ID of the service principal (a GUID).
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub client_id: String,
    /// Name of the Secret holding the client secret. It is always read from the operator's own
    /// namespace (`mesh-operator-system` unless installed elsewhere): an installation cannot name
    /// a Secret anywhere else.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
    /// Key in the Secret. Defaults to `clientSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
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
    /// Name of the Azure Container Registry (without `.azurecr.io`): 5–50 letters and digits.
    #[schemars(length(min = 5, max = 50), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub acr: String,
    /// Resource group of the registry. Defaults to `azure.resourceGroup`. Same rule: 1–90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w.()]{0,89}[-\w()]$"))]
    pub resource_group: Option<String>,
    /// Grant the cluster's kubelet identity AcrPull on the registry (as `az aks update --attach-acr`), through an ARM role assignment the operator removes on teardown if it created it.
    #[serde(default)]
    pub attach: bool,
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
    /// Target repository and tag in the registry, e.g. `bookbuyer:v0.11.1` (OCI distribution naming: lowercase path components separated by `/`, an optional tag). Workloads whose image equals `source` are pointed at `<acr>.azurecr.io/<target>` once the import succeeded.
    #[schemars(
        length(min = 1, max = 256),
        regex(
            pattern = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
        )
    )]
    pub target: String,
}

impl RegistrySpec {
    /// The registry's login server in `cloud`, e.g. `srvmeshacr.azurecr.io`.
    pub fn login_server(&self, cloud: AzureCloud) -> String {
        format!("{}.{}", self.acr.to_ascii_lowercase(), cloud.registry_suffix())
    }
}
