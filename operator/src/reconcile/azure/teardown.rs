//! The Azure part of the teardown: disable the add-on, delete what AKS leaves behind.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, ResourceExt};
use mesh_crds::{MeshInstallation, MeshProvider};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::osm;

use super::*;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::reconcile::status::Record;

/// Deletes the webhooks the AKS OSM add-on leaves behind (they block pod creation once nothing
/// serves them).
pub async fn delete_addon_webhooks(applier: &Applier) -> Result<()> {
    let mutating = ApiResource::erase::<MutatingWebhookConfiguration>(&());
    applier.delete_named(&mutating, None, osm::names::AKS_ADDON_WEBHOOK).await?;
    let validating = ApiResource::erase::<ValidatingWebhookConfiguration>(&());
    applier.delete_named(&validating, None, osm::names::AKS_ADDON_VALIDATOR).await?;
    Ok(())
}

/// Deletes the 10 OSM/SMI CRDs by their correct names. True once all of them are gone: a CRD
/// deletes its instances first, and an installation applied meanwhile (or the add-on's manager)
/// would otherwise write CRDs that are about to vanish.
pub async fn delete_osm_crds(applier: &Applier) -> Result<bool> {
    let crd = ApiResource::erase::<CustomResourceDefinition>(&());
    let mut all_gone = true;
    for name in mesh_crds::generate::osm_crd_names() {
        all_gone &= applier.delete_named(&crd, None, &name).await?;
    }
    Ok(all_gone)
}

/// Teardown, before the control plane's objects are deleted: disables the add-on (resuming a
/// stored operation) and deletes the webhooks AKS leaves behind. True when done.
pub async fn teardown_addon(
    mi: &MeshInstallation,
    ctx: &Context,
    applier: &Applier,
    record: &mut Record,
) -> Result<bool> {
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
        Err(error) => return Err(blocked(ctx, record, what, error).await),
    };
    let arm = Arm { mi, ctx, applier, client: &client, azure };
    let provider = mi.spec.mesh.provider;
    let result = ensure_cluster(&arm, record, op_name, what, |c| match provider {
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
        Err(error) => return Err(blocked(ctx, record, what, error).await),
    }
    if provider == MeshProvider::AksAddon {
        delete_addon_webhooks(applier).await?;
    }
    Ok(true)
}

/// Teardown, after the control plane's objects are deleted: the 10 OSM/SMI CRDs the AKS OSM
/// add-on leaves behind. True once they are gone.
pub async fn teardown_leftovers(mi: &MeshInstallation, applier: &Applier) -> Result<bool> {
    // With the Azure step skipped the add-on still runs, and these CRDs are its own.
    if mi.spec.mesh.provider == MeshProvider::AksAddon && !skips_azure_teardown(mi) {
        return delete_osm_crds(applier).await;
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
pub(super) async fn blocked(ctx: &Context, record: &mut Record, what: &str, error: ArmError) -> Error {
    let message = format!(
        "teardown is blocked {what}: {}; fix that, or annotate this MeshInstallation with {SKIP_AZURE_TEARDOWN}=true to finish the teardown without the Azure step (what it would remove then stays in Azure)",
        error.condition_message()
    );
    record.set_conditions(&[conditions::degraded("AzureTeardownBlocked", message)]);
    if let Err(write) = record.persist(ctx).await {
        tracing::warn!(installation = %record.name(), "could not report the blocked teardown: {write}");
    }
    Error::Azure(Box::new(error))
}
