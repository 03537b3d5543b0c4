//! Teardown of namespaces: un-enrol the ones the installation enrolled (handing over those
//! another installation still enrols), and delete the ones it created when asked to.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, ResourceExt};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::labels;
use mesh_provisioner::plan::kinds;
use mesh_provisioner::topology::CREATED_BY;
use serde_json::json;

use super::super::shared::Claims;
use crate::context::Context;
use crate::error::{Error, Result};

/// Removes our enrolment from the namespaces we enrolled; one another installation still enrols
/// stays enrolled and becomes theirs. A namespace we created and will delete keeps only its
/// created-by mark, so the last step can still find it after a restart.
pub(super) async fn unenrol(
    ctx: &Context,
    applier: &Applier,
    claims: &Claims,
    installation: &str,
    keep_created: bool,
) -> Result<()> {
    let ns_resource = kinds::namespace();
    for ns in owned_namespaces(ctx, installation, Component::Namespaces).await? {
        if let Some(to) = claims.namespace_claimant(&ns.name_any()) {
            applier.hand_over(Component::Namespaces, &ns_resource, None, &ns.name_any(), to).await?;
            continue;
        }
        let created = ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation);
        if created && keep_created {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name_any(), "annotations": {CREATED_BY: installation}}});
            applier.apply_fields(Component::Namespaces, &ns_resource, None, &ns.name_any(), &body).await?;
        } else {
            applier.release(Component::Namespaces, &ns_resource, None, &ns.name_any()).await?;
        }
    }
    Ok(())
}

/// Namespaces carrying our installation and component labels (listed from the API, not the cache).
async fn owned_namespaces(ctx: &Context, installation: &str, component: Component) -> Result<Vec<Namespace>> {
    let selector =
        format!("{},{}={}", labels::installation_selector(installation), labels::COMPONENT, component.as_str());
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let listed =
        api.list(&ListParams::default().labels(&selector)).await.map_err(Error::kube("listing our namespaces"))?;
    let created =
        api.list(&ListParams::default()).await.map_err(Error::kube("listing namespaces"))?.items.into_iter().filter(
            |ns| {
                ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation)
                    && component == Component::Namespaces
            },
        );
    let mut all: Vec<Namespace> = listed.items;
    for ns in created {
        if !all.iter().any(|n| n.name_any() == ns.name_any()) {
            all.push(ns);
        }
    }
    Ok(all)
}

/// Deletes namespaces this installation created (by annotation); true once they are gone.
pub(super) async fn delete_created_namespaces(
    ctx: &Context,
    applier: &Applier,
    installation: &str,
    component: Component,
) -> Result<bool> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let all = api.list(&ListParams::default()).await.map_err(Error::kube("listing namespaces"))?;
    let mut remaining = 0;
    for ns in all.items {
        let created = ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation);
        let of_component = ns.labels().get(labels::COMPONENT).map(String::as_str) == Some(component.as_str())
            || (component == Component::Namespaces && !ns.labels().contains_key(labels::COMPONENT));
        if created && of_component {
            remaining += 1;
            if ns.metadata.deletion_timestamp.is_none() {
                applier.delete(&kinds::namespace(), None, &ns.name_any()).await?;
            }
        } else if !created && ns.labels().get(labels::INSTALLATION).is_some_and(|v| v == installation) && of_component {
            // A namespace that existed before us: give back what we set on it.
            applier.release(component, &kinds::namespace(), None, &ns.name_any()).await?;
        }
    }
    Ok(remaining == 0)
}
