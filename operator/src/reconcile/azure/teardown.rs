//! The Azure part of the teardown: disable the add-on, delete what AKS leaves behind.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ResourceExt;
use mesh_crds::{MeshInstallation, MeshProvider};
use mesh_provisioner::azure::aks::ClusterRef;
use mesh_provisioner::osm;

use super::*;
use crate::context::Context;
use crate::error::{Error, Result};

/// Deletes the webhooks the AKS OSM add-on leaves behind (they block pod creation once nothing
/// serves them).
pub async fn delete_addon_webhooks(ctx: &Context) -> Result<()> {
    crate::reconcile::teardown::delete_named::<MutatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_WEBHOOK)
        .await?;
    crate::reconcile::teardown::delete_named::<ValidatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_VALIDATOR)
        .await
}

/// Deletes the 10 OSM/SMI CRDs by their correct names.
pub async fn delete_osm_crds(ctx: &Context) -> Result<()> {
    for name in mesh_crds::generate::osm_crd_names() {
        crate::reconcile::teardown::delete_named::<CustomResourceDefinition>(ctx, &name).await?;
    }
    Ok(())
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
    let client = ctx.azure.client(ctx, azure).await.map_err(|e| Error::Azure(Box::new(e)))?;
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
        Err(error) => return Err(Error::Azure(Box::new(error))),
    }
    if provider == MeshProvider::AksAddon {
        delete_addon_webhooks(ctx).await?;
    }
    Ok(true)
}

/// Teardown, after the control plane's objects are deleted: the 10 OSM/SMI CRDs the AKS OSM
/// add-on leaves behind.
pub async fn teardown_leftovers(mi: &MeshInstallation, ctx: &Context) -> Result<()> {
    if mi.spec.mesh.provider == MeshProvider::AksAddon {
        delete_osm_crds(ctx).await?;
    }
    Ok(())
}
