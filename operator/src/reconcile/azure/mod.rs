//! The Azure step of a reconcile: the AKS add-on that provides the mesh (OSM or Istio, with the
//! in-place OSM → Istio migration) and the ACR imports of `spec.registry.images`, through Azure
//! Resource Manager.
//!
//! Long-running operations are never waited for inside a reconcile: a write that starts one
//! stores its polling URL in `status.azureOperations` right away (before anything else happens),
//! and later reconciles poll it, so an operator restarted mid-operation resumes polling instead of
//! writing again. Errors are classified as Azure Service Operator does: retryable ones (429, 5xx,
//! a conflicting operation) keep the installation converging with back-off honouring
//! `Retry-After`; fatal ones (400, 401, 403, 404) are reported with the ARM code, message and a
//! hint, and retried only on a spec change or after a long pause. While backing off, the previous
//! result is reused, so the status writes this step makes do not turn into ARM requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::ResourceExt;
use mesh_crds::{AzureSpec, MeshInstallation, MeshProvider, condition_type as ct};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::azure::{ArmClient, ArmError};

mod addon;
mod attach;
mod images;
mod journal;
mod ledger;
mod migration;
mod state;
mod teardown;

#[allow(clippy::wildcard_imports)]
use self::{addon::*, images::*, journal::*, migration::*};
pub use crate::reconcile::progress::AzureProgress;
pub use attach::{FORBIDDEN_REASON as ACR_PULL_FORBIDDEN, teardown_acr_pull};
pub use ledger::LEDGER as IMPORT_LEDGER;
pub use migration::dependency_order;
pub use state::AzureState;
pub use teardown::{
    SKIP_AZURE_TEARDOWN, delete_addon_webhooks, delete_osm_crds, skips_azure_teardown, teardown_addon,
    teardown_leftovers,
};

use super::conditions::{self, ConditionUpdate};
use super::progress::Progress;
use super::retry;
use super::status::Record;
use crate::context::Context;
use crate::error::Result;

/// Images imported at once.
pub const IMPORT_CONCURRENCY: usize = 4;
/// Pause before retrying after a fatal error when the spec does not change.
pub const FATAL_RETRY: Duration = Duration::from_secs(300);
/// Pod-template annotation set by the migration's ordered restart.
pub const MIGRATED_ANNOTATION: &str = "meshoperator.dev/migrated-to";

/// Operation names kept in `status.azureOperations`.
pub mod operation {
    /// Enabling the OSM add-on.
    pub const ENABLE_OSM: &str = "EnableOsmAddon";
    /// Disabling the OSM add-on (teardown, migration).
    pub const DISABLE_OSM: &str = "DisableOsmAddon";
    /// Enabling the Istio add-on.
    pub const ENABLE_ISTIO: &str = "EnableIstioAddon";
    /// Disabling the Istio add-on (teardown).
    pub const DISABLE_ISTIO: &str = "DisableIstioAddon";
    /// Prefix of an image import: `ImportImage/<target>`.
    pub const IMPORT_PREFIX: &str = "ImportImage/";
}

/// Steps of the in-place migration from the OSM add-on to the Istio add-on, in order (the AKS
/// migration guide's), as stored in `status.osmMigrationStep`.
pub const MIGRATION_STEPS: [&str; 7] = [
    "DisableOsmAddon",
    "DeleteOsmWebhooks",
    "EnableIstioAddon",
    "RelabelNamespaces",
    "RestartWorkloads",
    "DeleteOsmCrds",
    "Completed",
];

/// What the rest of the reconcile needs from the Azure step.
#[derive(Clone, Debug, Default)]
pub struct AzureOutcome {
    /// Source image → `<acr>.azurecr.io/<target>` for every image whose import succeeded.
    pub image_overrides: BTreeMap<String, String>,
    /// The Istio revision namespaces are labelled with (once the Istio add-on is enabled).
    pub istio_revision: Option<String>,
    /// Whether the provider's control plane is there, so the mesh objects (MeshConfig) can be applied.
    pub mesh_prerequisites_met: bool,
    /// When to look again, from `Retry-After` or the back-off.
    pub requeue: Option<Duration>,
}

/// What every part of one Azure step works with: the installation, the cluster and ARM.
#[derive(Clone, Copy)]
pub(super) struct Arm<'a> {
    pub(super) mi: &'a MeshInstallation,
    pub(super) ctx: &'a Context,
    pub(super) applier: &'a Applier,
    pub(super) client: &'a ArmClient,
    pub(super) azure: &'a AzureSpec,
}

/// Whether the installation talks to Azure at all.
pub fn uses_azure(mi: &MeshInstallation) -> bool {
    mi.spec.azure.is_some() && (mi.spec.mesh.provider != MeshProvider::SelfHosted || mi.spec.registry.is_some())
}

/// The result of making one cluster property what we want.
pub(super) enum Ensure {
    /// It is.
    Done,
    /// An operation is running; look again after this long.
    InProgress(Duration, String),
}

/// What the step found out, before it becomes conditions.
#[derive(Default)]
pub(super) struct Findings {
    pub(super) outcome: AzureOutcome,
    pub(super) progress: AzureProgress,
    pub(super) errors: Vec<ArmError>,
    pub(super) waits: Vec<Duration>,
}

impl Findings {
    fn wait(&mut self, duration: Duration) {
        self.waits.push(duration);
    }

    fn error(&mut self, error: ArmError) -> ConditionUpdate {
        let condition = error_condition(ct::MESH_READY, &error);
        if !error.is_retryable() {
            self.progress.degraded = Some(conditions::degraded(&error.code(), error.condition_message()));
        }
        self.errors.push(error);
        condition
    }
}

pub(super) fn error_condition(type_: &'static str, error: &ArmError) -> ConditionUpdate {
    let message = if error.is_retryable() {
        format!("{} (transient; retrying)", error.condition_message())
    } else {
        error.condition_message()
    };
    ConditionUpdate::not_ok(type_, &error.code(), message)
}

/// The Azure step. Fills `progress` with the provider and image conditions and returns what the
/// plan needs; what must be on record at once (a started operation, an import, the migration
/// step) it writes through `journal`, the reconcile's status record.
pub async fn converge_azure(
    mi: &MeshInstallation,
    ctx: &Context,
    applier: &Applier,
    journal: &mut Record,
    progress: &mut Progress,
) -> Result<AzureOutcome> {
    let Some(azure) = mi.spec.azure.as_ref().filter(|_| uses_azure(mi)) else {
        return Ok(AzureOutcome { mesh_prerequisites_met: true, ..Default::default() });
    };
    let name = mi.name_any();
    let generation = mi.metadata.generation;
    if let Some(memo) = ctx.azure.recall(&name, generation) {
        progress.azure = memo.progress.clone();
        let mut outcome = memo.outcome.clone();
        outcome.requeue = Some(memo.until.saturating_duration_since(Instant::now()).max(Duration::from_millis(200)));
        return Ok(outcome);
    }

    let mut findings = Findings::default();
    match ctx.azure.client(ctx, azure).await {
        Ok(client) => {
            let arm = Arm { mi, ctx, applier, client: &client, azure };
            provider(&arm, journal, &mut findings).await?;
            let no_token = findings.errors.iter().find(|e| matches!(e, ArmError::Credential { .. }));
            match no_token {
                // Without a token every import fails the same way: say so without asking again.
                Some(error) if mi.spec.registry.is_some() => {
                    findings.progress.images =
                        Some(ConditionUpdate { type_: ct::IMAGES_IMPORTED, ..error_condition(ct::MESH_READY, error) });
                }
                _ => {
                    images(&arm, journal, &mut findings).await?;
                    attach::attach(&arm, journal, &mut findings).await?;
                }
            }
        }
        Err(error) => {
            let condition = error_condition(ct::MESH_READY, &error);
            if mi.spec.mesh.provider != MeshProvider::SelfHosted {
                findings.progress.provider = Some(condition.clone());
            }
            if mi.spec.registry.is_some() {
                findings.progress.images = Some(ConditionUpdate { type_: ct::IMAGES_IMPORTED, ..condition });
            }
            findings.progress.degraded = Some(conditions::degraded(&error.code(), error.condition_message()));
            findings.errors.push(error);
        }
    }
    journal.persist(ctx).await?;

    // Back-off: the server's Retry-After or our exponential back-off for retryable errors, a long
    // pause for fatal ones, the operation's Retry-After while one runs.
    let fatal = findings.errors.iter().any(|e| !e.is_retryable());
    let retryable: Vec<&ArmError> = findings.errors.iter().filter(|e| e.is_retryable()).collect();
    let attempts = ctx.azure.attempts(&name, generation, !findings.errors.is_empty());
    let mut wait = findings.waits.iter().copied().min();
    if !retryable.is_empty() {
        let server = retryable.iter().filter_map(|e| e.retry_after()).max().unwrap_or_default();
        let ours = retry::backoff(attempts.max(1), ctx.settings.max_backoff);
        let delay = server.max(ours);
        wait = Some(wait.map_or(delay, |w| w.min(delay)));
        for error in &retryable {
            tracing::info!(installation = %name, code = %error.code(), ?delay, "transient Azure error: {error}");
        }
    }
    if fatal && wait.is_none() {
        wait = Some(FATAL_RETRY);
    }
    for error in findings.errors.iter().filter(|e| !e.is_retryable()) {
        tracing::warn!(installation = %name, code = %error.code(), "Azure error needs attention: {error}");
    }
    findings.outcome.requeue = wait;
    if let Some(wait) = wait {
        ctx.azure.remember(&name, generation, wait, attempts, &findings.outcome, &findings.progress);
    } else {
        ctx.azure.forget(&name);
    }
    progress.azure = findings.progress;
    Ok(findings.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_provisioner::azure::Target;

    #[test]
    fn apps_restart_after_the_apps_they_call() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore-istio.yaml"))
            .expect("sample");
        let mi = MeshInstallation::from_yaml(&text).expect("sample parses");
        let order: Vec<&str> = dependency_order(&mi.spec).iter().map(|a| a.name.as_str()).collect();
        let at = |name: &str| order.iter().position(|n| *n == name).expect(name);
        assert!(at("mysql") < at("bookwarehouse"), "{order:?}");
        assert!(at("bookwarehouse") < at("bookstore") && at("bookwarehouse") < at("bookstore-v2"), "{order:?}");
        assert!(at("bookstore") < at("bookbuyer") && at("bookstore-v2") < at("bookbuyer"), "{order:?}");
        assert_eq!(order.len(), mi.spec.apps.len());
    }

    #[test]
    fn a_forbidden_cluster_update_names_the_aks_role() {
        let error = ArmError::Response {
            operation: "enabling the AKS OSM add-on".into(),
            target: Target::ManagedCluster,
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "no write permission".into(),
            retry_after: None,
        };
        let condition = error_condition(ct::MESH_READY, &error);
        assert_eq!(condition.reason, "AuthorizationFailed");
        assert!(condition.message.contains("Azure Kubernetes Service Contributor"), "{}", condition.message);
    }
}
