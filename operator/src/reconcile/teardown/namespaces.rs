//! Teardown of namespaces: un-enrol the ones the installation enrolled (handing over those
//! another installation still enrols), and delete the ones it created when asked to.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ResourceExt;
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::labels;
use mesh_provisioner::plan::kinds;
use mesh_provisioner::topology::CREATED_BY;
use serde_json::json;

use super::super::observe;
use super::super::shared::Claims;
use crate::context::Context;
use crate::error::Result;

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
        let created = created_by(&ns, installation);
        if created && keep_created {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name_any(), "annotations": {CREATED_BY: installation}}});
            applier.apply_fields(Component::Namespaces, &ns_resource, None, &ns.name_any(), &body).await?;
        } else {
            applier.release(Component::Namespaces, &ns_resource, None, &ns.name_any()).await?;
        }
    }
    Ok(())
}

/// Namespaces carrying our installation and component labels, and (for the enrolled ones) those
/// this installation created.
async fn owned_namespaces(ctx: &Context, installation: &str, component: Component) -> Result<Vec<Namespace>> {
    let wanted = labels::managed_labels(installation, component.as_str());
    let ours = |ns: &Namespace| {
        let labelled = wanted.iter().all(|(key, value)| ns.labels().get(key) == Some(value));
        labelled || (component == Component::Namespaces && created_by(ns, installation))
    };
    Ok(observe::namespaces_now(ctx).await?.into_iter().filter(ours).collect())
}

/// Whether `installation` created the namespace (its annotation).
fn created_by(ns: &Namespace, installation: &str) -> bool {
    ns.annotations().get(CREATED_BY).is_some_and(|v| v == installation)
}

/// Deletes namespaces this installation created (by annotation); true once they are gone.
pub(super) async fn delete_created_namespaces(
    ctx: &Context,
    applier: &Applier,
    installation: &str,
    component: Component,
) -> Result<bool> {
    let mut remaining = 0;
    for ns in observe::namespaces_now(ctx).await? {
        let created = created_by(&ns, installation);
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
