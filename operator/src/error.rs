//! Errors of the operator.

use mesh_provisioner::apply::ApplyError;

/// Errors a reconcile can end with. Each says what it was doing and to which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or write against the API server failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Applying, pruning or deleting an object failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Planning the desired objects failed.
    #[error("planning the desired objects: {0}")]
    Plan(#[from] mesh_provisioner::plan::PlanError),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The MeshInstallation CRD is not installed.
    #[error(
        "CRD {name} is not installed: apply crds/yaml/meshinstallations.meshoperator.dev.yaml, or run with --install-crds"
    )]
    CrdMissing {
        /// CRD name.
        name: String,
    },
    /// Leader election could not start.
    #[error("starting leader election: {0}")]
    LeaderElection(String),
    /// Azure Resource Manager refused or failed (teardown of an AKS add-on).
    #[error("Azure: {0}")]
    Azure(#[source] Box<mesh_provisioner::azure::ArmError>),
    /// The teardown is waiting for a step to finish (reported as an error so the finalizer stays).
    #[error("teardown in progress at step {step}")]
    TeardownInProgress {
        /// The step.
        step: &'static str,
    },
    /// A reconcile panicked; the panic was caught so the other installations carry on.
    #[error("the reconcile panicked (a bug; please report it): {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The object has no name (should never happen for a stored object).
    #[error("MeshInstallation without a name")]
    Unnamed,
}

impl Error {
    /// Wraps a kube error with context.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Kube { context, source: Box::new(source) }
    }
}

/// Result of the operator's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
