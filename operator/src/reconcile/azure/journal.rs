//! The status this step updates as it goes, persisted at once when an operation starts.

use mesh_crds::{AzureOperation, MeshInstallation, MeshInstallationStatus, RoleAssignmentStatus};
use mesh_provisioner::azure::Started;

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::status::{self};

/// A copy of the status that this step updates and persists as it goes.
/// Polls in a row without a usable answer after which a stored operation is given up.
pub const MAX_FAILED_POLLS: u32 = 3;
/// Wait before polling again after a poll without a usable answer.
pub const STALE_POLL_RETRY: Duration = Duration::from_secs(2);

pub(super) struct Journal {
    pub(super) status: MeshInstallationStatus,
    pub(super) dirty: bool,
}

impl Journal {
    pub(super) fn new(mi: &MeshInstallation) -> Self {
        Journal { status: mi.status.clone().unwrap_or_default(), dirty: false }
    }

    pub(super) fn op(&self, name: &str) -> Option<AzureOperation> {
        self.status.azure_operations.iter().find(|o| o.operation == name).cloned()
    }

    pub(super) fn start(&mut self, name: &str, resource_id: &str, started: &Started) {
        self.status.azure_operations.retain(|o| o.operation != name);
        self.status.azure_operations.push(AzureOperation {
            operation: name.to_string(),
            resource_id: resource_id.to_string(),
            polling_url: started.polling_url.clone(),
            polling_kind: started.kind.as_str().to_string(),
            started_at: status::jiff_now(),
            failed_polls: 0,
        });
        self.dirty = true;
    }

    /// A poll answered: the count of failed polls starts again.
    pub(super) fn polled(&mut self, name: &str) {
        if let Some(op) = self.status.azure_operations.iter_mut().find(|o| o.operation == name && o.failed_polls > 0) {
            op.failed_polls = 0;
            self.dirty = true;
        }
    }

    pub(super) fn finish(&mut self, name: &str) {
        let before = self.status.azure_operations.len();
        self.status.azure_operations.retain(|o| o.operation != name);
        self.dirty |= before != self.status.azure_operations.len();
    }

    /// Records a poll of `name` that got an answer saying nothing usable (the polling URL is
    /// unknown, refused or unreadable). Returns true when that happened [`MAX_FAILED_POLLS`] times
    /// in a row: the operation is then dropped, and the caller reads the resource again instead.
    pub(super) fn poll_failed(&mut self, name: &str) -> bool {
        let Some(op) = self.status.azure_operations.iter_mut().find(|o| o.operation == name) else { return false };
        op.failed_polls = op.failed_polls.saturating_add(1);
        self.dirty = true;
        if op.failed_polls >= MAX_FAILED_POLLS {
            self.finish(name);
            return true;
        }
        false
    }

    pub(super) fn imported(&mut self, reference: &str) {
        if !self.status.imported_images.iter().any(|i| i == reference) {
            self.status.imported_images.push(reference.to_string());
            self.status.imported_images.sort();
            self.dirty = true;
        }
    }

    pub(super) fn set_acr_pull(&mut self, assignment: Option<RoleAssignmentStatus>) {
        if self.status.acr_pull_assignment != assignment {
            self.status.acr_pull_assignment = assignment;
            self.dirty = true;
        }
    }

    pub(super) fn step(&self) -> Option<&str> {
        self.status.osm_migration_step.as_deref()
    }

    pub(super) fn set_step(&mut self, step: &str) {
        if self.step() != Some(step) {
            self.status.osm_migration_step = Some(step.to_string());
            self.dirty = true;
        }
    }

    /// Writes the status now when it changed: a started operation must be on record before
    /// anything else can fail.
    pub(super) async fn persist(&mut self, ctx: &Context, mi: &MeshInstallation) -> Result<()> {
        if self.dirty {
            status::write(ctx, mi, &self.status).await?;
            self.dirty = false;
        }
        Ok(())
    }

    pub(super) fn into_progress(self, progress: &mut AzureProgress) {
        progress.operations = Some(self.status.azure_operations);
        progress.imported_images = Some(self.status.imported_images);
        progress.migration_step = Some(self.status.osm_migration_step);
        progress.acr_pull_assignment = Some(self.status.acr_pull_assignment);
    }
}
