//! `spec.registry.attach`: AcrPull on the registry for the cluster's kubelet identity, as
//! `az aks update --attach-acr` grants it, through an ARM role assignment with a deterministic
//! name (see `mesh_provisioner::azure::roles`).
//!
//! Ownership is what `status.acrPullAssignment.created` says: true only when this installation's
//! PUT created the assignment. An equal assignment found in place (ours from an earlier
//! installation that was never torn down, or anyone's under another name, 409
//! `RoleAssignmentExists`) is adopted as present and never deleted. When the operator stops
//! between the PUT and the status write, the next reconcile finds the assignment and records it
//! as not created: it then outlives the installation, the safe direction for a grant others may
//! rely on. Once recorded for the registry the spec names, nothing is asked of ARM again (a
//! resync makes no request); changing `spec.registry` or turning `attach` off removes the one
//! this installation created.

use kube::api::{Api, ResourceExt};
use mesh_crds::{AzureSpec, MeshInstallation, RoleAssignmentStatus, condition_type as ct};
use mesh_provisioner::azure::acr::RegistryRef;
use mesh_provisioner::azure::aks::{self, ClusterRef};
use mesh_provisioner::azure::roles::{self, Assignment, Ensured};
use mesh_provisioner::azure::{ArmClient, ArmError, Target};

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::conditions::ConditionUpdate;
use crate::reconcile::status::Record;

/// Condition reason when the operator may not write the role assignment.
pub const FORBIDDEN_REASON: &str = "AcrPullAssignmentForbidden";
/// Condition reason when the cluster has no kubelet managed identity to grant AcrPull to.
pub const NO_KUBELET_IDENTITY_REASON: &str = "KubeletIdentityMissing";

/// Converges the AcrPull assignment and amends the ImagesImported condition with the outcome.
pub(super) async fn attach(arm: &Arm<'_>, journal: &mut Record, findings: &mut Findings) -> Result<()> {
    let Arm { mi, ctx, client, azure, .. } = *arm;
    let wanted = mi.spec.registry.as_ref().filter(|r| r.attach).map(|r| RegistryRef::from_spec(azure, r));
    if let Some(recorded) = journal.acr_pull().cloned() {
        if wanted.as_ref().is_some_and(|registry| on_registry(&recorded, registry)) {
            amend(findings, Ok(granted_message(&recorded)));
            return Ok(());
        }
        // attach turned off, or another registry: the one we created goes.
        if recorded.created
            && let Err(error) = release(ctx, mi, client, &recorded).await?
        {
            amend(findings, Err(error));
            return Ok(());
        }
        journal.set_acr_pull(None);
        journal.persist(ctx).await?;
    }
    let Some(registry) = wanted else { return Ok(()) };
    let result = grant(client, azure, &registry).await;
    if let Ok(recorded) = &result {
        journal.set_acr_pull(Some(recorded.clone()));
        journal.persist(ctx).await?;
    }
    amend(findings, result.map(|r| granted_message(&r)));
    Ok(())
}

/// Reads the kubelet identity and makes sure it holds AcrPull on the registry.
async fn grant(
    client: &ArmClient,
    azure: &AzureSpec,
    registry: &RegistryRef,
) -> Result<RoleAssignmentStatus, ArmError> {
    let cluster = ClusterRef::from_spec(azure);
    let managed = aks::get(client, &cluster).await?;
    let Some(principal) = managed.kubelet_object_id() else {
        return Err(ArmError::Response {
            operation: format!("granting AcrPull on {} (spec.registry.attach)", registry.id()),
            target: Target::ManagedCluster,
            status: 400,
            code: NO_KUBELET_IDENTITY_REASON.into(),
            message: format!(
                "managed cluster {} has no kubelet managed identity (properties.identityProfile.kubeletidentity); grant AcrPull to the principal its nodes pull with yourself and set spec.registry.attach to false",
                cluster.id()
            ),
            retry_after: None,
        });
    };
    let assignment = Assignment::acr_pull(registry, principal)?;
    Ok(match roles::ensure(client, &assignment).await? {
        Ensured::Ours { id, created } => {
            RoleAssignmentStatus { id, principal_id: assignment.principal_id.clone(), created }
        }
        Ensured::Existing { id } => RoleAssignmentStatus {
            id: id.unwrap_or_else(|| format!("{} (existing assignment of AcrPull)", assignment.scope)),
            principal_id: assignment.principal_id.clone(),
            created: false,
        },
    })
}

/// Whether a recorded assignment is on `registry`.
fn on_registry(recorded: &RoleAssignmentStatus, registry: &RegistryRef) -> bool {
    recorded.id.to_ascii_lowercase().starts_with(&format!("{}/providers/", registry.id().to_ascii_lowercase()))
        || recorded.id.eq_ignore_ascii_case(&format!("{} (existing assignment of AcrPull)", registry.id()))
}

fn granted_message(recorded: &RoleAssignmentStatus) -> String {
    let how = if recorded.created { "granted by this installation" } else { "already granted, left as it is" };
    format!("AcrPull for the kubelet identity {} {how}", recorded.principal_id)
}

/// Deletes an assignment this installation created, unless another installation records the same
/// one or the stored ID is not one we would have made. `Ok(Err)` is an ARM error to report.
async fn release(
    ctx: &Context,
    mi: &MeshInstallation,
    client: &ArmClient,
    recorded: &RoleAssignmentStatus,
) -> Result<Result<(), ArmError>> {
    let Some(assignment) = Assignment::from_stored_id(&recorded.id, &recorded.principal_id) else {
        tracing::warn!(installation = %mi.name_any(), id = %recorded.id, "status.acrPullAssignment is not an assignment this operator would make; left in place");
        return Ok(Ok(()));
    };
    if let Some(other) = shared_with(ctx, mi, &recorded.id).await? {
        tracing::info!(installation = %mi.name_any(), id = %recorded.id, "AcrPull assignment left in place: MeshInstallation {other} relies on it too");
        return Ok(Ok(()));
    }
    Ok(roles::delete(client, &assignment).await)
}

/// Another live installation recording the same assignment.
async fn shared_with(ctx: &Context, mi: &MeshInstallation, id: &str) -> Result<Option<String>> {
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let all = api
        .list(&Default::default())
        .await
        .map_err(crate::error::Error::kube("listing MeshInstallations (shared AcrPull assignment)"))?;
    Ok(all
        .items
        .into_iter()
        .filter(|other| other.name_any() != mi.name_any() && other.metadata.deletion_timestamp.is_none())
        .find(|other| {
            other
                .status
                .as_ref()
                .and_then(|s| s.acr_pull_assignment.as_ref())
                .is_some_and(|a| a.id.eq_ignore_ascii_case(id))
        })
        .map(|other| other.name_any()))
}

/// Folds the outcome into ImagesImported: images are of use only when the nodes can pull them.
fn amend(findings: &mut Findings, outcome: Result<String, ArmError>) {
    let images = findings.progress.images.take();
    findings.progress.images = Some(match outcome {
        Ok(message) => match images {
            Some(mut c) => {
                c.message = format!("{}; {message}", c.message);
                c
            }
            None => ConditionUpdate::ok(ct::IMAGES_IMPORTED, "Imported", message),
        },
        Err(error) => {
            let mut condition = findings.error(error);
            condition.type_ = ct::IMAGES_IMPORTED;
            if condition.reason == "AuthorizationFailed"
                || findings.errors.last().and_then(ArmError::status) == Some(403)
            {
                condition.reason = FORBIDDEN_REASON.to_string();
                if let Some(degraded) = findings.progress.degraded.as_mut() {
                    degraded.reason = FORBIDDEN_REASON.to_string();
                }
            }
            if let Some(before) = images.filter(|c| c.is_true()) {
                condition.message = format!("{}; but {}", before.message, condition.message);
            }
            condition
        }
    });
}

/// Teardown: deletes the AcrPull assignment this installation created. True when done. `record`
/// holds the stored status read at the start of the teardown pass, not the cache's copy: a pass
/// started from an older copy must not delete again what a previous pass deleted and took off the
/// record.
pub async fn teardown_acr_pull(mi: &MeshInstallation, ctx: &Context, record: &mut Record) -> Result<bool> {
    let Some(recorded) = record.acr_pull().filter(|a| a.created).cloned() else {
        return Ok(true);
    };
    let Some(azure) = mi.spec.azure.as_ref() else { return Ok(true) };
    if skips_azure_teardown(mi) {
        tracing::warn!(installation = %mi.name_any(), "teardown: {SKIP_AZURE_TEARDOWN} is set; the AcrPull assignment {} is left in Azure", recorded.id);
        return Ok(true);
    }
    let what = "removing the AcrPull assignment on the registry";
    let client = match ctx.azure.client(ctx, azure).await {
        Ok(client) => client,
        Err(error) => return Err(teardown::blocked(ctx, record, what, error).await),
    };
    match release(ctx, mi, &client, &recorded).await? {
        Ok(()) => {
            // On record at once, so a teardown step run again asks nothing more of ARM.
            record.set_acr_pull(None);
            record.persist(ctx).await?;
            Ok(true)
        }
        Err(error) if error.is_retryable() => {
            tracing::info!(installation = %mi.name_any(), "teardown: transient Azure error: {error}");
            Ok(false)
        }
        Err(error) => Err(teardown::blocked(ctx, record, what, error).await),
    }
}
