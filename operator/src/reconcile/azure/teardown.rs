//! The Azure part of the teardown: disable the add-on, delete what AKS leaves behind.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ResourceExt};
use mesh_crds::{MeshInstallation, MeshProvider};
use mesh_provisioner::azure::aks::ClusterRef;
use mesh_provisioner::osm;

use super::*;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::reconcile::status;

/// Deletes the webhooks the AKS OSM add-on leaves behind (they block pod creation once nothing
/// serves them).
pub async fn delete_addon_webhooks(ctx: &Context) -> Result<()> {
    crate::reconcile::teardown::delete_named::<MutatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_WEBHOOK)
        .await?;
    crate::reconcile::teardown::delete_named::<ValidatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_VALIDATOR)
        .await?;
    Ok(())
}

/// Deletes the 10 OSM/SMI CRDs by their correct names. True once all of them are gone: a CRD
/// deletes its instances first, and an installation applied meanwhile (or the add-on's manager)
/// would otherwise write CRDs that are about to vanish.
pub async fn delete_osm_crds(ctx: &Context) -> Result<bool> {
    let mut all_gone = true;
    for name in mesh_crds::generate::osm_crd_names() {
        all_gone &= crate::reconcile::teardown::delete_named::<CustomResourceDefinition>(ctx, &name).await?;
    }
    Ok(all_gone)
}

/// Teardown, before the control plane's objects are deleted: disables the add-on (resuming a
/// stored operation) and deletes the webhooks AKS leaves behind. True when done.
pub async fn teardown_addon(mi: &MeshInstallation, ctx: &Context) -> Result<bool> {
    let Some(azure) = mi.spec.azure.as_ref() else { return Ok(true) };
    let (op_name, what): (&str, &str) = match mi.spec.mesh.provider {
        MeshProvider::SelfHosted => return Ok(true),
        MeshProvider::AksAddon => (operation::DISABLE_OSM, "disabling the AKS OSM add-on"),
        MeshProvider::AksIstioAddon => (operation::DISABLE_ISTIO, "disabling the AKS Istio add-on"),
    };
    if skips_azure_teardown(mi) {
        tracing::warn!(installation = %mi.name_any(), "teardown: {SKIP_AZURE_TEARDOWN} is set; the add-on is left as it is in Azure");
        return Ok(true);
    }
    let client = match ctx.azure.client(ctx, azure).await {
        Ok(client) => client,
        Err(error) => return Err(blocked(ctx, mi, what, error).await),
    };
    let cluster = ClusterRef::from_spec(azure);
    let mut journal = Journal::new(mi);
    let provider = mi.spec.mesh.provider;
    let result = ensure_cluster(ctx, mi, &client, &cluster, &mut journal, op_name, what, |c| match provider {
        MeshProvider::AksAddon => c.set_osm_addon(false),
        _ => c.disable_istio(),
    })
    .await?;
    match result {
        Ok(Ensure::Done) => {}
        Ok(Ensure::InProgress(_, message)) => {
            tracing::info!(installation = %mi.name_any(), "teardown: {message}");
            return Ok(false);
        }
        Err(error) if error.is_retryable() => {
            tracing::info!(installation = %mi.name_any(), "teardown: transient Azure error: {error}");
            return Ok(false);
        }
        // No cluster: no add-on to disable.
        Err(error) if error.status() == Some(404) => {
            tracing::info!(installation = %mi.name_any(), "teardown: {error}; nothing to disable");
        }
        Err(error) => return Err(blocked(ctx, mi, what, error).await),
    }
    if provider == MeshProvider::AksAddon {
        delete_addon_webhooks(ctx).await?;
    }
    Ok(true)
}

/// Teardown, after the control plane's objects are deleted: the 10 OSM/SMI CRDs the AKS OSM
/// add-on leaves behind. True once they are gone.
pub async fn teardown_leftovers(mi: &MeshInstallation, ctx: &Context) -> Result<bool> {
    // With the Azure step skipped the add-on still runs, and these CRDs are its own.
    if mi.spec.mesh.provider == MeshProvider::AksAddon && !skips_azure_teardown(mi) {
        return delete_osm_crds(ctx).await;
    }
    Ok(true)
}

/// Annotation that lets a teardown blocked in Azure (no credential, 401/403) finish without its
/// Azure step: the add-on is then left enabled in Azure, and the objects it owns in the cluster
/// are left too. Value `"true"`.
pub const SKIP_AZURE_TEARDOWN: &str = "meshoperator.dev/skip-azure-teardown";

/// Whether the installation carries [`SKIP_AZURE_TEARDOWN`]`: "true"`.
pub fn skips_azure_teardown(mi: &MeshInstallation) -> bool {
    mi.annotations().get(SKIP_AZURE_TEARDOWN).is_some_and(|v| v == "true")
}

/// A teardown that cannot go on without a person: says so in a Degraded condition naming the
/// problem and the way out, and returns the error (the finalizer stays; the reconcile backs off).
pub(super) async fn blocked(ctx: &Context, mi: &MeshInstallation, what: &str, error: ArmError) -> Error {
    let message = format!(
        "teardown is blocked {what}: {}; fix that, or annotate this MeshInstallation with {SKIP_AZURE_TEARDOWN}=true to finish the teardown without the Azure step (what it would remove then stays in Azure)",
        error.condition_message()
    );
    let update = crate::reconcile::degraded("AzureTeardownBlocked", message);
    if let Err(write) = set_condition(ctx, mi, update).await {
        tracing::warn!(installation = %mi.name_any(), "could not report the blocked teardown: {write}");
    }
    Error::Azure(Box::new(error))
}

/// Removes `status.acrPullAssignment` from the stored status (the rest kept).
pub(super) async fn clear_acr_pull(ctx: &Context, mi: &MeshInstallation) -> Result<()> {
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let latest = api.get(&mi.name_any()).await.map_err(Error::kube("reading MeshInstallation"))?;
    let mut current = latest.status.unwrap_or_default();
    if current.acr_pull_assignment.take().is_none() {
        return Ok(());
    }
    status::write(ctx, mi, &current).await
}

/// Replaces one condition in the stored status (others and the rest of the status kept).
async fn set_condition(ctx: &Context, mi: &MeshInstallation, update: ConditionUpdate) -> Result<()> {
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    // `get`, not `get_status`: the ClusterRole grants no `get` on the status subresource.
    let latest = api.get(&mi.name_any()).await.map_err(Error::kube("reading MeshInstallation"))?;
    let mut current = latest.status.unwrap_or_default();
    let merged = crate::reconcile::conditions::merge(
        &current.conditions,
        std::slice::from_ref(&update),
        &status::jiff_now(),
        mi.metadata.generation,
    );
    let before = current.conditions.clone();
    current.conditions.retain(|c| c.type_ != update.type_);
    current.conditions.extend(merged);
    if before == current.conditions {
        return Ok(());
    }
    status::write(ctx, mi, &current).await
}
