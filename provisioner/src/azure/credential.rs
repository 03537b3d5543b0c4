//! `spec.azure.credential` → an `azure_identity` 1.x credential. azure_identity 1.x has no
//! `DefaultAzureCredential`; the CR names exactly one way, and workload identity is the default.

use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::Transport;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use mesh_crds::{AzureCredential, AzureSpec};

use super::client::client_options;
use super::cloud::Endpoints;
use super::error::ArmError;

/// Key of the client secret in the referenced Secret unless `key` says otherwise.
pub const DEFAULT_SECRET_KEY: &str = "clientSecret";

/// Builds the credential `spec.credential` names. `client_secret` is the value read from the
/// referenced Secret (only for `clientSecretRef`); it goes into azure_core's `Secret`, whose
/// `Debug` is redacted, and is never logged.
pub fn credential(
    spec: &AzureSpec,
    endpoints: &Endpoints,
    client_secret: Option<String>,
    transport: Transport,
) -> Result<Arc<dyn TokenCredential>, ArmError> {
    let mut options = client_options(transport);
    // Always the cloud's authority host (or the operator's override), never the spec's.
    let mut custom = CustomConfiguration::default();
    custom.authority_host = endpoints.authority_host.clone();
    options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
    let config = |kind: &str, e: azure_core::Error| ArmError::Config {
        context: format!("spec.azure.credential.{kind}"),
        message: e.to_string(),
    };
    Ok(match &spec.credential {
        AzureCredential::WorkloadIdentity(wi) => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options: options },
                client_id: wi.client_id.clone(),
                tenant_id: wi.tenant_id.clone(),
                ..Default::default()
            }))
            .map_err(|e| config("workloadIdentity", e))?
        }
        AzureCredential::ManagedIdentity(mi) => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: mi.client_id.clone().map(UserAssignedId::ClientId),
                client_options: options,
            }))
            .map_err(|e| config("managedIdentity", e))?
        }
        AzureCredential::ClientSecretRef(sp) => {
            let secret = client_secret.ok_or_else(|| ArmError::Config {
                context: "spec.azure.credential.clientSecretRef".into(),
                message: format!("Secret {} holds no client secret", sp.secret_name),
            })?;
            ClientSecretCredential::new(
                &sp.tenant_id,
                sp.client_id.clone(),
                Secret::new(secret),
                Some(ClientSecretCredentialOptions { client_options: options }),
            )
            .map_err(|e| config("clientSecretRef", e))?
        }
        AzureCredential::AzureCli(cli) => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: cli.tenant_id.clone(),
            ..Default::default()
        }))
        .map_err(|e| config("azureCli", e))?,
    })
}
