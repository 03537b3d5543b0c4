//! What the Azure step keeps on record as it goes, in the reconcile's status [`Record`]: started
//! ARM operations (persisted at once, so a restarted operator polls instead of writing again),
//! imported images, the AcrPull assignment and the migration step. The status module writes it.

use mesh_crds::{AzureOperation, RoleAssignmentStatus};
use mesh_provisioner::azure::Started;

use super::*;
use crate::reconcile::conditions;
use crate::reconcile::status::Record;

/// Polls in a row without a usable answer after which a stored operation is given up.
pub const MAX_FAILED_POLLS: u32 = 3;
/// Wait before polling again after a poll without a usable answer.
pub const STALE_POLL_RETRY: Duration = Duration::from_secs(2);

impl Record {
    pub(super) fn op(&self, name: &str) -> Option<AzureOperation> {
        self.status().azure_operations.iter().find(|o| o.operation == name).cloned()
    }

    pub(super) fn start(&mut self, name: &str, resource_id: &str, started: &Started) {
        let operations = &mut self.status_mut().azure_operations;
        operations.retain(|o| o.operation != name);
        operations.push(AzureOperation {
            operation: name.to_string(),
            resource_id: resource_id.to_string(),
            polling_url: started.polling_url.clone(),
            polling_kind: started.kind.as_str().to_string(),
            started_at: conditions::now(),
            failed_polls: 0,
        });
    }

    /// A poll answered: the count of failed polls starts again.
    pub(super) fn polled(&mut self, name: &str) {
        if let Some(op) = self.status_mut().azure_operations.iter_mut().find(|o| o.operation == name) {
            op.failed_polls = 0;
        }
    }

    pub(super) fn finish(&mut self, name: &str) {
        self.status_mut().azure_operations.retain(|o| o.operation != name);
    }

    /// Records a poll of `name` that got an answer saying nothing usable (the polling URL is
    /// unknown, refused or unreadable). Returns true when that happened [`MAX_FAILED_POLLS`] times
    /// in a row: the operation is then dropped, and the caller reads the resource again instead.
    pub(super) fn poll_failed(&mut self, name: &str) -> bool {
        let operations = &mut self.status_mut().azure_operations;
        let Some(op) = operations.iter_mut().find(|o| o.operation == name) else { return false };
        op.failed_polls = op.failed_polls.saturating_add(1);
        if op.failed_polls >= MAX_FAILED_POLLS {
            self.finish(name);
            return true;
        }
        false
    }

    pub(super) fn imported(&mut self, reference: &str) {
        let imported = &mut self.status_mut().imported_images;
        if !imported.iter().any(|i| i == reference) {
            imported.push(reference.to_string());
            imported.sort();
        }
    }

    pub(super) fn acr_pull(&self) -> Option<&RoleAssignmentStatus> {
        self.status().acr_pull_assignment.as_ref()
    }

    pub(super) fn set_acr_pull(&mut self, assignment: Option<RoleAssignmentStatus>) {
        self.status_mut().acr_pull_assignment = assignment;
    }

    pub(super) fn step(&self) -> Option<&str> {
        self.status().osm_migration_step.as_deref()
    }

    pub(super) fn set_step(&mut self, step: &str) {
        self.status_mut().osm_migration_step = Some(step.to_string());
    }
}
