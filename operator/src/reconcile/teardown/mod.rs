//! Teardown on delete, in the article's order: traffic policies → ingress → un-enrol namespaces →
//! restart the workloads left in them → apps → control plane (webhooks, MeshConfig, CA, CRDs) →
//! namespaces we created, if asked. Every step is idempotent and re-checked on each pass, so a
//! restarted operator simply resumes. Nothing the operator did not create is deleted. Each pass
//! starts from the stored status (not the cache's copy), and every status change of the pass goes
//! through that one [`Record`].

mod control_plane;
mod namespaces;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use kube::api::ResourceExt;
use kube::runtime::controller::Action;
use mesh_crds::MeshInstallation;
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::labels;
use mesh_provisioner::osm;
use mesh_provisioner::plan::{enrolled_namespaces, kinds};

use super::shared::Claims;
use super::status::Record;
use super::{apply, azure};
use crate::context::Context;
use crate::error::{Error, Result};
use control_plane::{control_plane_stopped, delete_webhook_if_ours, release_stuck_crds};
use namespaces::{delete_created_namespaces, unenrol};

/// Annotation value set on pod templates of workloads left in un-enrolled namespaces: constant,
/// so a resumed teardown does not restart them twice.
pub const UNENROLLED: &str = "unenrolled";

/// The steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Delete SMI/Gateway API policies.
    TrafficPolicies,
    /// Delete the ingress.
    Ingress,
    /// Remove enrolment labels and annotations.
    Unenrol,
    /// Restart workloads so sidecars go away.
    RestartWorkloads,
    /// Delete the apps.
    Apps,
    /// Delete the control plane.
    ControlPlane,
    /// Delete namespaces we created.
    Namespaces,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::TrafficPolicies => "TrafficPolicies",
            Step::Ingress => "Ingress",
            Step::Unenrol => "Unenrol",
            Step::RestartWorkloads => "RestartWorkloads",
            Step::Apps => "Apps",
            Step::ControlPlane => "ControlPlane",
            Step::Namespaces => "Namespaces",
        }
    }
}

/// Runs the teardown; returns `await_change` when done (the finalizer is then removed).
pub async fn run(mi: &MeshInstallation, ctx: &Context, applier: &Applier) -> Result<Action> {
    let steps = [
        Step::TrafficPolicies,
        Step::Ingress,
        Step::Unenrol,
        Step::RestartWorkloads,
        Step::Apps,
        Step::ControlPlane,
        Step::Namespaces,
    ];
    // Read anew on every pass: an installation created or deleted meanwhile counts as it is now.
    let claims = Claims::of_others(ctx, &mi.name_any()).await?;
    let Some(mut record) = Record::latest(ctx, mi).await? else {
        // Gone with its finalizer: an earlier pass finished the teardown.
        tracing::debug!(installation = %mi.name_any(), "installation already gone; teardown was complete");
        return Ok(Action::await_change());
    };
    for step in steps {
        let done = run_step(step, mi, ctx, applier, &claims, &mut record).await?;
        if !done {
            record.set_teardown_step(step.as_str());
            record.persist(ctx).await?;
            // Not Ok: kube-runtime's finalizer() removes the finalizer after any successful
            // cleanup, which would let the object go with the teardown unfinished.
            return Err(Error::TeardownInProgress { step: step.as_str() });
        }
    }
    tracing::info!(installation = %mi.name_any(), "teardown complete");
    Ok(Action::await_change())
}

/// Deletes every object of `component`, but first hands over to another installation what it still
/// declares; true once none of ours remains.
async fn delete_component(
    applier: &Applier,
    claims: &Claims,
    installation: &str,
    component: Component,
) -> Result<bool> {
    claims.hand_over(applier, installation, component).await?;
    let mut remaining = 0;
    for kind in kinds::kinds_of(component) {
        if kind.resource.kind == "Namespace" {
            continue;
        }
        remaining += applier.delete_all(component, &kind.resource).await?;
    }
    Ok(remaining == 0)
}

async fn run_step(
    step: Step,
    mi: &MeshInstallation,
    ctx: &Context,
    applier: &Applier,
    claims: &Claims,
    record: &mut Record,
) -> Result<bool> {
    let spec = &mi.spec;
    let name = mi.name_any();
    match step {
        Step::TrafficPolicies => delete_component(applier, claims, &name, Component::Traffic).await,
        Step::Ingress => delete_component(applier, claims, &name, Component::Ingress).await,
        Step::Unenrol => {
            unenrol(ctx, applier, claims, &name, spec.teardown.delete_namespaces).await?;
            Ok(true)
        }
        Step::RestartWorkloads => {
            if spec.teardown.restart_workloads {
                // Where another installation still enrols the namespace, sidecars stay: no restart.
                for ns in enrolled_namespaces(spec).iter().filter(|ns| claims.namespace_claimant(&ns.name).is_none()) {
                    apply::restart_foreign_workloads(
                        ctx,
                        applier,
                        "teardown",
                        &ns.name,
                        labels::RESTARTED_AT,
                        UNENROLLED,
                    )
                    .await?;
                }
            }
            Ok(true)
        }
        Step::Apps => delete_component(applier, claims, &name, Component::Apps).await,
        Step::ControlPlane => {
            if !spec.teardown.uninstall_mesh {
                return Ok(true);
            }
            // OSM's components write what is deleted next (osm-bootstrap creates `osm-mesh-config`
            // from its preset when it starts and replaces the CRDs' specs; the injector and the
            // controller register their webhooks): stop them first, and delete the rest only once
            // their pods are gone. Not when another installation runs the same mesh (it takes them over).
            let self_hosted = spec.mesh.provider == mesh_crds::MeshProvider::SelfHosted;
            if self_hosted && !claims.shares_mesh(spec) && !control_plane_stopped(ctx, applier, spec).await? {
                return Ok(false);
            }
            // Webhooks the OSM control plane registers itself at run time (so they carry OSM's
            // labels, not ours): deleted only when they call our control plane, and no other
            // installation runs the same mesh.
            if !claims.shares_mesh(spec) {
                let mesh = &spec.mesh.name;
                let namespace = spec.mesh.control_plane_namespace();
                delete_webhook_if_ours::<MutatingWebhookConfiguration>(
                    ctx,
                    applier,
                    &osm::names::webhook_name(mesh),
                    namespace,
                )
                .await?;
                delete_webhook_if_ours::<ValidatingWebhookConfiguration>(
                    ctx,
                    applier,
                    &osm::names::validator_name(mesh),
                    namespace,
                )
                .await?;
            }
            // AKS add-ons: disable through ARM, then remove what AKS leaves behind.
            if !azure::teardown_addon(mi, ctx, applier, record).await? {
                return Ok(false);
            }
            let done = delete_component(applier, claims, &name, Component::Mesh).await?;
            if !done {
                release_stuck_crds(ctx, applier, &name).await?;
                return Ok(false);
            }
            if !azure::teardown_leftovers(mi, applier).await? {
                return Ok(false);
            }
            delete_created_namespaces(ctx, applier, &name, Component::Mesh).await
        }
        Step::Namespaces => {
            // Pull rights go once nothing of ours pulls any more, and after the add-on step, whose
            // status writes would otherwise put back the record of a removed assignment.
            if !azure::teardown_acr_pull(mi, ctx, record).await? {
                return Ok(false);
            }
            if spec.teardown.delete_namespaces {
                delete_created_namespaces(ctx, applier, &name, Component::Namespaces).await
            } else {
                Ok(true)
            }
        }
    }
}
