//! Status, the last step, and the only code that writes `MeshInstallation.status`.
//!
//! A reconcile keeps one [`Record`]: the status as last stored. Steps that must put something on
//! record before they go on (the Azure step stores a started ARM operation at once, so a restarted
//! operator polls it instead of writing again; teardown its current step) change the record and
//! [`Record::persist`] it; a converge ends with [`Record::conclude`], which folds in the
//! [`Progress`] the steps returned. A write is a server-side apply of the whole status under the
//! field manager `mesh-operator/status`, sent only when the status differs from the last one
//! written, so a steady installation makes no write. The one exception is
//! [`report_unreadable`]: an object whose stored form this version cannot read gets a merge patch.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams, ResourceExt};
use kube::runtime::events::EventType;
use mesh_crds::{MeshInstallation, MeshInstallationStatus, condition_type as ct};
use mesh_provisioner::labels;
use serde_json::json;

use super::conditions::{self, ConditionUpdate};
use super::events;
use super::progress::{Progress, bounded_notifications};
use crate::context::Context;
use crate::error::{Error, Result};

/// The status of one installation as this reconcile knows it, and what was last written.
#[derive(Debug)]
pub struct Record {
    name: String,
    generation: Option<i64>,
    status: MeshInstallationStatus,
    written: MeshInstallationStatus,
}

impl Record {
    /// The status `mi` carries (from the controller's cache).
    pub fn of(mi: &MeshInstallation) -> Self {
        let status = mi.status.clone().unwrap_or_default();
        Record { name: mi.name_any(), generation: mi.meta().generation, written: status.clone(), status }
    }

    /// The stored status, read anew: the cached copy may not hold yet what an earlier pass wrote
    /// (teardown must not redo what it already took off the record).
    /// `None` when the installation is gone: a teardown pass queued before the previous one removed
    /// the finalizer finds nothing left to record.
    pub async fn latest(ctx: &Context, mi: &MeshInstallation) -> Result<Option<Self>> {
        let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
        // `get`, not `get_status`: the object carries its status, and the ClusterRole grants no
        // `get` on the status subresource (the RBAC suite's audit log showed it Forbidden).
        let latest = api.get_opt(&mi.name_any()).await.map_err(Error::kube("reading MeshInstallation status"))?;
        Ok(latest.as_ref().map(Record::of))
    }

    /// The installation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The status as it stands.
    pub fn status(&self) -> &MeshInstallationStatus {
        &self.status
    }

    /// The status, to change (written by the next [`Record::persist`]).
    pub fn status_mut(&mut self) -> &mut MeshInstallationStatus {
        &mut self.status
    }

    /// Replaces the conditions of the types in `updates`, keeping the others.
    pub fn set_conditions(&mut self, updates: &[ConditionUpdate]) {
        let merged = conditions::merge(&self.status.conditions, updates, &conditions::now(), self.generation);
        self.status.conditions.retain(|c| !merged.iter().any(|m| m.type_ == c.type_));
        self.status.conditions.extend(merged);
    }

    /// Records the teardown step that is not finished yet.
    pub fn set_teardown_step(&mut self, step: &str) {
        if self.status.teardown_step.as_deref() != Some(step) {
            self.status.teardown_step = Some(step.to_string());
        }
    }

    /// Writes the status when it differs from the last one written. Returns whether it wrote.
    pub async fn persist(&mut self, ctx: &Context) -> Result<bool> {
        if self.status == self.written {
            return Ok(false);
        }
        write(ctx, &self.name, &self.status).await?;
        self.written = self.status.clone();
        Ok(true)
    }

    /// The end of a converge: the status `progress` amounts to (fields other steps own, such as
    /// the Azure operations and imported images, kept as recorded), written when it changed.
    pub async fn conclude(&mut self, ctx: &Context, progress: &Progress) -> Result<bool> {
        let (notifications, omitted) = bounded_notifications(&progress.notifications);
        let concluded = MeshInstallationStatus {
            observed_generation: self.generation,
            conditions: conditions::merge(
                &self.status.conditions,
                &progress.conditions(),
                &conditions::now(),
                self.generation,
            ),
            components: progress.component_statuses(),
            notifications,
            notifications_omitted: omitted,
            ingress_address: progress.ingress_address.clone(),
            certificates: progress.certificates.clone(),
            teardown_step: None,
            ..self.status.clone()
        };
        self.status = concluded;
        self.persist(ctx).await
    }
}

/// Server-side applies the whole status with the status field manager.
async fn write(ctx: &Context, name: &str, status: &MeshInstallationStatus) -> Result<()> {
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let body = json!({"apiVersion": "meshoperator.dev/v1alpha1", "kind": "MeshInstallation", "status": status});
    api.patch_status(name, &PatchParams::apply(&labels::field_manager("status")).force(), &Patch::Apply(&body))
        .await
        .map_err(Error::kube(format!("updating status of MeshInstallation {name}")))?;
    Ok(())
}

/// Reports a failure that ended a reconcile without a status of its own (a caught panic): a
/// Warning Event, and Ready=False/Degraded=True naming it. Best effort: errors are logged.
pub async fn report_failure(ctx: &Context, mi: &MeshInstallation, reason: &str, message: String) {
    events::publish(ctx, mi, EventType::Warning, reason, "Reconcile", message.clone()).await;
    let mut record = Record::of(mi);
    record.set_conditions(&[
        ConditionUpdate::not_ok(ct::READY, reason, message.clone()),
        conditions::degraded(reason, message),
    ]);
    if let Err(error) = record.persist(ctx).await {
        tracing::warn!(installation = %mi.name_any(), "could not report {reason}: {error}");
    }
}

/// A MeshInstallation the operator cannot read (its stored form does not match this version's
/// types): a Warning Event and a Ready=False condition saying why, written as a merge patch of the
/// status (the typed status may be what fails to read). Best effort: errors are logged.
pub async fn report_unreadable(ctx: &Context, metadata: &kube::api::ObjectMeta, error: &str) {
    let name = metadata.name.clone().unwrap_or_default();
    let message =
        format!("the operator cannot read this MeshInstallation, so it is left as it is until it changes: {error}");
    let resource = kube::api::ApiResource::erase::<MeshInstallation>(&());
    let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    // Reported already (the status write below is itself a change the controller sees).
    if let Ok(Some(live)) = api.get_opt(&name).await {
        let conditions = live.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions.iter().any(|c| c["reason"] == "Unreadable" && c["message"] == message.as_str()) {
            return;
        }
    }
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(format!("{}/{}", mesh_crds::GROUP, mesh_crds::VERSION)),
        kind: Some("MeshInstallation".into()),
        name: Some(name.clone()),
        uid: metadata.uid.clone(),
        ..Default::default()
    };
    events::publish_to(ctx, &reference, EventType::Warning, "Unreadable", "Read", message.clone()).await;
    let condition = json!({
        "type": ct::READY, "status": "False", "reason": "Unreadable", "message": message,
        "lastTransitionTime": conditions::now(), "observedGeneration": metadata.generation,
    });
    // A JSON merge patch replaces the list: only the reason is known for sure now.
    let body = json!({"status": {"conditions": [condition], "observedGeneration": metadata.generation}});
    let params = PatchParams { field_manager: Some(labels::field_manager("unreadable")), ..Default::default() };
    if let Err(error) = api.patch_status(&name, &params, &Patch::Merge(&body)).await {
        tracing::warn!(installation = %name, "could not report that it is unreadable: {error}");
    }
}
