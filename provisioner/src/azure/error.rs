//! ARM errors, classified as Azure Service Operator does: retryable errors keep the installation
//! converging with back-off (honouring `Retry-After`); fatal ones need a person, so they are
//! reported with the ARM error code, its message and a hint of what to fix.

use std::time::Duration;

/// What a request was acting on, for the hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The token endpoint (the credential).
    Credential,
    /// The AKS managed cluster (read or write).
    ManagedCluster,
    /// The Istio mesh revision profiles of a location.
    MeshRevisions,
    /// The container registry (importImage).
    Registry,
    /// A role assignment on the registry (`spec.registry.attach`).
    RoleAssignment,
}

/// Whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, server errors, a conflicting operation in progress: retry with back-off.
    Retryable,
    /// Bad request, bad credentials, missing resources, missing permissions: report and wait for a change.
    Fatal,
}

/// An error talking to ARM. Messages never contain credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// ARM answered with an error status.
    #[error("{operation}: ARM answered HTTP {status} {code}: {message}")]
    Response {
        /// What was being done, e.g. `reading managed cluster …`.
        operation: String,
        /// What it acted on.
        target: Target,
        /// HTTP status.
        status: u16,
        /// ARM error code (`error.code`), or the status' reason when the body had none.
        code: String,
        /// ARM error message.
        message: String,
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// A long-running operation ended Failed or Canceled.
    #[error("{operation}: the operation ended {status}: {code}: {message}")]
    OperationFailed {
        /// What was being done.
        operation: String,
        /// What it acted on.
        target: Target,
        /// `Failed` or `Canceled`.
        status: String,
        /// ARM error code.
        code: String,
        /// ARM error message.
        message: String,
    },
    /// No token could be obtained.
    #[error("{operation}: no Azure token: {message}")]
    Credential {
        /// What was being done.
        operation: String,
        /// Why (from azure_identity; it carries no secret).
        message: String,
    },
    /// The request did not get an answer (connection refused or dropped, timeout).
    #[error("{operation}: no answer from ARM: {message}")]
    Transport {
        /// What was being done.
        operation: String,
        /// Why.
        message: String,
    },
    /// ARM answered something we could not read.
    #[error("{operation}: unreadable ARM answer: {message}")]
    Decode {
        /// What was being done.
        operation: String,
        /// Why.
        message: String,
    },
    /// The installation names an AKS cluster other than the one the operator was installed for.
    #[error(
        "spec.azure names managed cluster {cluster}, but this operator acts only on {managed} (its --azure-cluster-id); nothing was sent to Azure"
    )]
    ClusterNotManaged {
        /// The cluster the spec names.
        cluster: String,
        /// The one the operator manages.
        managed: String,
    },
    /// An import's target tag exists (ACR refused a `NoForce` import) and holds, or may hold,
    /// another image than the one the spec asks for.
    #[error("{operation}: {message}")]
    ImageTagConflict {
        /// What was being done.
        operation: String,
        /// Which tag, what it holds as far as known, which source the spec asks for.
        message: String,
    },
    /// The client could not be set up (bad endpoint, unreadable CA, credential options).
    #[error("{context}: {message}")]
    Config {
        /// What was being set up.
        context: String,
        /// Why.
        message: String,
    },
}

/// ARM codes that never succeed on retry (Azure Service Operator's fatal list plus auth codes).
const FATAL_CODES: &[&str] = &[
    "BadRequest",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidRequestContent",
    "PropertyChangeNotAllowed",
    "RequestDisallowedByPolicy",
    "SkuNotAvailable",
    "SubscriptionNotFound",
    "AuthorizationFailed",
    "LinkedAuthorizationFailed",
    "InvalidAuthenticationToken",
    "ResourceNotFound",
    "ResourceGroupNotFound",
    "InvalidResourceReference",
];

/// ARM codes that mean "try again later".
const RETRYABLE_CODES: &[&str] = &[
    "AnotherOperationInProgress",
    "OperationNotAllowed",
    "Conflict",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "GatewayTimeout",
    "ResourceQuotaExceeded",
    "ScopeLocked",
];

impl ArmError {
    /// Retryable or fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            ArmError::Response { status, code, target, .. } => match status {
                408 | 429 | 500..=599 => ErrorClass::Retryable,
                // A kubelet identity just created may not have reached the directory yet.
                400 if *target == Target::RoleAssignment && code == "PrincipalNotFound" => ErrorClass::Retryable,
                // A NoForce import onto an existing tag does not resolve itself.
                409 if *target == Target::Registry => ErrorClass::Fatal,
                409 => ErrorClass::Retryable,
                400 | 401 | 403 | 404 => ErrorClass::Fatal,
                _ if FATAL_CODES.contains(&code.as_str()) => ErrorClass::Fatal,
                _ if RETRYABLE_CODES.contains(&code.as_str()) => ErrorClass::Retryable,
                400..=499 => ErrorClass::Fatal,
                _ => ErrorClass::Retryable,
            },
            ArmError::OperationFailed { code, .. } => {
                if FATAL_CODES.iter().any(|c| code.starts_with(c)) {
                    ErrorClass::Fatal
                } else {
                    ErrorClass::Retryable
                }
            }
            ArmError::Credential { .. }
            | ArmError::Config { .. }
            | ArmError::Decode { .. }
            | ArmError::ClusterNotManaged { .. }
            | ArmError::ImageTagConflict { .. } => ErrorClass::Fatal,
            ArmError::Transport { .. } => ErrorClass::Retryable,
        }
    }

    /// Whether this error, from polling a stored operation, says the polling URL itself is no
    /// good (unknown to ARM, refused, or answering something unreadable), as opposed to a
    /// passing fault (throttling, a server error, no connection) or a missing token.
    pub fn is_stale_operation(&self) -> bool {
        match self {
            ArmError::Response { status, .. } => (400..500).contains(status) && !matches!(status, 401 | 408 | 429),
            ArmError::Decode { .. } => true,
            _ => false,
        }
    }

    /// Whether to retry.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// The ARM error code, usable as a condition reason (CamelCase).
    pub fn code(&self) -> String {
        let code = match self {
            ArmError::Response { code, .. } | ArmError::OperationFailed { code, .. } => code.as_str(),
            ArmError::Credential { .. } => "CredentialUnavailable",
            ArmError::Transport { .. } => "ArmUnreachable",
            ArmError::Decode { .. } => "UnexpectedArmResponse",
            ArmError::Config { .. } => "AzureConfigInvalid",
            ArmError::ClusterNotManaged { .. } => "ClusterNotManaged",
            ArmError::ImageTagConflict { .. } => "ImageTagConflict",
        };
        let cleaned: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        if cleaned.is_empty() || !cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
            "ArmError".to_string()
        } else {
            cleaned
        }
    }

    /// HTTP status, when ARM answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when given.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ArmError::Response { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn target(&self) -> Option<Target> {
        match self {
            ArmError::Response { target, .. } | ArmError::OperationFailed { target, .. } => Some(*target),
            ArmError::Credential { .. } => Some(Target::Credential),
            _ => None,
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        let status = self.status();
        match (status, self.target()) {
            (_, Some(Target::Credential)) | (Some(401), _) => Some(
                "check spec.azure.credential: the tenant, the client ID and the client secret (or the federated token / managed identity the operator runs with)",
            ),
            (Some(403), Some(Target::Registry)) => Some(
                "the operator's identity needs the role 'Container Registry Data Importer and Data Reader' on the registry",
            ),
            (Some(403), Some(Target::ManagedCluster)) => {
                Some("the operator's identity needs the role 'Azure Kubernetes Service Contributor' on the cluster")
            }
            (Some(403), Some(Target::MeshRevisions)) => {
                Some("the operator's identity needs read access (e.g. 'Reader') on the subscription")
            }
            (Some(403), Some(Target::RoleAssignment)) => Some(
                "spec.registry.attach: the operator's identity needs Microsoft.Authorization/roleAssignments/write and /delete on the registry, e.g. the role 'Role Based Access Control Administrator' on the registry with a condition allowing only AcrPull (7f951dda-4ed3-4680-a7ca-43fe172d538d) — or run `az aks update --attach-acr` yourself and set attach to false",
            ),
            (Some(404), Some(Target::RoleAssignment)) => {
                Some("check spec.registry.acr and spec.registry.resourceGroup (and spec.azure.subscriptionId)")
            }
            (Some(404), Some(Target::Registry)) => {
                Some("check spec.registry.acr and spec.registry.resourceGroup (and spec.azure.subscriptionId)")
            }
            (Some(404), Some(Target::ManagedCluster)) => {
                Some("check spec.azure.subscriptionId, spec.azure.resourceGroup and spec.azure.clusterName")
            }
            (Some(409), Some(Target::Registry)) => {
                Some("the target tag already exists in the registry; set spec.registry.mode to Force to overwrite it")
            }
            _ => None,
        }
    }

    /// The message for a condition: the error, and the hint when there is one.
    pub fn condition_message(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self}; {hint}"),
            None => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, code: &str) -> ArmError {
        ArmError::Response {
            operation: "op".into(),
            target: if code == "AnotherOperationInProgress" { Target::ManagedCluster } else { Target::Registry },
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn classification_follows_aso() {
        assert!(response(429, "TooManyRequests").is_retryable());
        assert!(response(500, "InternalServerError").is_retryable());
        assert!(response(503, "x").is_retryable());
        assert!(response(409, "AnotherOperationInProgress").is_retryable());
        for status in [400, 401, 403, 404] {
            assert!(!response(status, "Whatever").is_retryable(), "{status}");
        }
        let failed = |code: &str| ArmError::OperationFailed {
            operation: "op".into(),
            target: Target::ManagedCluster,
            status: "Failed".into(),
            code: code.into(),
            message: "m".into(),
        };
        assert!(failed("InternalOperationError").is_retryable());
        assert!(!failed("InvalidParameter").is_retryable());
    }

    #[test]
    fn a_forbidden_role_assignment_names_the_permission_and_a_new_principal_is_retried() {
        let error = |status: u16, code: &str| ArmError::Response {
            operation: "granting AcrPull".into(),
            target: Target::RoleAssignment,
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: None,
        };
        let forbidden = error(403, "AuthorizationFailed");
        assert!(!forbidden.is_retryable());
        let message = forbidden.condition_message();
        for part in ["roleAssignments/write", "Role Based Access Control Administrator", "AcrPull", "attach to false"] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        assert!(error(400, "PrincipalNotFound").is_retryable(), "a kubelet identity not yet replicated");
        assert!(!error(400, "InvalidRoleAssignmentId").is_retryable());
        let conflict = ArmError::ImageTagConflict { operation: "importing".into(), message: "tag t".into() };
        assert!(!conflict.is_retryable());
        assert_eq!(conflict.code(), "ImageTagConflict");
    }

    #[test]
    fn forbidden_import_names_the_role() {
        let error = response(403, "AuthorizationFailed");
        assert!(error.condition_message().contains("Container Registry Data Importer and Data Reader"));
        assert!(!response(409, "Conflict").is_retryable(), "an import onto an existing tag needs mode Force");
        assert_eq!(error.code(), "AuthorizationFailed");
    }
}
