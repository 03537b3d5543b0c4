//! `spec.azure.credential.azureCli` only where the operator runs outside a cluster.
//!
//! The Azure CLI credential runs `az account get-access-token` with the signed-in account of the
//! machine. The operator's image is distroless (no shell, no `az`, nobody signed in), so inside a
//! cluster that credential can only fail, and later, with an error about a missing program. It is
//! refused up front instead, with a condition that names the field and the credentials that work
//! in a cluster. Outside a cluster (`mesh-operator run` with a kubeconfig, the e2e harness) it is
//! what a developer signed in with `az login` expects.

use mesh_crds::AzureCredential;
use mesh_provisioner::azure::ArmError;

/// Where a pod's ServiceAccount token is mounted.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Whether this process runs in a Kubernetes pod: the kubelet sets `KUBERNETES_SERVICE_HOST` and
/// mounts the ServiceAccount token (the same test kube-rs' in-cluster configuration relies on).
pub fn running_in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && std::path::Path::new(SERVICE_ACCOUNT_TOKEN).exists()
}

/// The refusal of `credential` when the operator runs in a cluster, or `None`.
pub fn refusal(credential: &AzureCredential, in_cluster: bool) -> Option<ArmError> {
    (in_cluster && matches!(credential, AzureCredential::AzureCli(_))).then(|| ArmError::Config {
        context: "spec.azure.credential.azureCli".into(),
        message: "the Azure CLI credential works only where the operator runs outside a cluster (`mesh-operator \
                  run` with a kubeconfig and `az login`); the operator's image has no `az`. In a cluster use \
                  workloadIdentity (`meshctl install --azure-client-id <client ID>`), managedIdentity or \
                  clientSecretRef"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_crds::{AzureCliCredential, WorkloadIdentityCredential};

    #[test]
    fn azure_cli_in_a_cluster_is_refused_naming_the_field_and_what_works() {
        let error = refusal(&AzureCredential::AzureCli(AzureCliCredential::default()), true).expect("refused");
        let text = error.to_string();
        assert!(text.starts_with("spec.azure.credential.azureCli: "), "{text}");
        assert!(text.contains("workloadIdentity") && text.contains("--azure-client-id"), "{text}");
        assert!(!error.is_retryable(), "retrying cannot help");
    }

    #[test]
    fn azure_cli_outside_a_cluster_and_other_credentials_in_one_are_allowed() {
        assert!(refusal(&AzureCredential::AzureCli(AzureCliCredential::default()), false).is_none());
        let wi = AzureCredential::WorkloadIdentity(WorkloadIdentityCredential::default());
        assert!(refusal(&wi, true).is_none());
    }
}
