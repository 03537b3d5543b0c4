//! What the steps of one reconcile did, and the conditions that amounts to: pure data the status
//! step turns into `MeshInstallation.status`. Every step returns into a [`Progress`]; none writes
//! status itself.

use std::collections::BTreeMap;

use mesh_crds::{CertificateStatus, ComponentStatus, MeshInstallationSpec, Notification, condition_type as ct};
use mesh_provisioner::apply::ApplyError;
use mesh_provisioner::desired::Component;

use super::conditions::{self, ConditionUpdate, Problem};
use super::observe::Readiness;

/// What one component did in this reconcile.
#[derive(Clone, Debug, Default)]
pub struct ComponentProgress {
    /// Objects written.
    pub written: usize,
    /// Conflicts with objects we did not create.
    pub conflicts: Vec<String>,
    /// Other failures.
    pub errors: Vec<String>,
    /// Why it was not applied yet.
    pub waiting: Option<String>,
    /// Workloads of the component that are not ready, with why.
    pub not_ready: Vec<String>,
    /// Workloads of the component.
    pub workloads: usize,
}

/// The outcome of one reconcile, from which status is computed.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    components: BTreeMap<Component, ComponentProgress>,
    invalid: Vec<Problem>,
    has_registry: bool,
    has_ingress: bool,
    /// Objects pruned.
    pub pruned: Vec<String>,
    /// Findings of lossy conversions.
    pub notifications: Vec<Notification>,
    /// Generated certificates.
    pub certificates: Vec<CertificateStatus>,
    /// External address of the ingress.
    pub ingress_address: Option<String>,
    /// What the Azure step found (AKS add-on, ACR imports).
    pub azure: AzureProgress,
}

impl Progress {
    /// Progress for a valid spec.
    pub fn new(spec: &MeshInstallationSpec) -> Self {
        Progress { has_registry: spec.registry.is_some(), has_ingress: spec.ingress.is_some(), ..Default::default() }
    }

    /// Progress for a spec that failed validation: nothing was applied.
    pub fn invalid(problems: &[Problem]) -> Self {
        Progress { invalid: problems.to_vec(), ..Default::default() }
    }

    fn entry(&mut self, component: Component) -> &mut ComponentProgress {
        self.components.entry(component).or_default()
    }

    /// Records an apply pass.
    pub fn record(&mut self, component: Component, written: usize, errors: &[ApplyError]) {
        let entry = self.entry(component);
        entry.written += written;
        for error in errors {
            if error.is_conflict() {
                entry.conflicts.push(error.to_string());
            } else {
                entry.errors.push(error.to_string());
            }
        }
    }

    /// Records a failure that is not an apply error.
    pub fn fail(&mut self, component: Component, message: String) {
        self.entry(component).conflicts.push(message);
    }

    /// Records workload readiness and the ingress address read from the caches.
    pub fn record_readiness(&mut self, readiness: Readiness) {
        for (component, not_ready) in readiness.workloads {
            let entry = self.entry(component);
            entry.workloads += 1;
            entry.not_ready.extend(not_ready);
        }
        self.ingress_address = readiness.ingress_address;
    }

    /// Records that a component waits for something.
    pub fn waiting(&mut self, component: Component, why: &str) {
        self.entry(component).waiting = Some(why.to_string());
    }

    /// Whether a component had errors or conflicts.
    pub fn failed(&self, component: Component) -> bool {
        self.components
            .get(&component)
            .is_some_and(|c| !c.errors.is_empty() || !c.conflicts.is_empty() || c.waiting.is_some())
    }

    /// Whether a component blocks the ones after it.
    pub fn blocked(&self, component: Component) -> bool {
        self.failed(component)
    }

    /// Writes made.
    pub fn writes(&self) -> usize {
        self.components.values().map(|c| c.written).sum::<usize>() + self.pruned.len()
    }

    /// Every error and conflict message.
    pub fn errors(&self) -> Vec<String> {
        self.components.values().flat_map(|c| c.errors.iter().chain(c.conflicts.iter()).cloned()).collect()
    }

    /// One line of what was done.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .components
            .iter()
            .filter(|(_, c)| c.written > 0)
            .map(|(component, c)| format!("{} {} object(s)", component.as_str(), c.written))
            .collect();
        if !self.pruned.is_empty() {
            parts.push(format!("pruned {}", self.pruned.join(", ")));
        }
        format!("applied: {}", parts.join("; "))
    }

    fn component_condition(
        &self,
        component: Component,
        type_: &'static str,
        ready_reason: &str,
        ready_message: &str,
    ) -> ConditionUpdate {
        let Some(c) = self.components.get(&component) else {
            return ConditionUpdate::ok(type_, ready_reason, ready_message);
        };
        if let Some(conflict) = c.conflicts.first() {
            return ConditionUpdate::not_ok(type_, "Conflict", conflict.clone());
        }
        if let Some(error) = c.errors.first() {
            return ConditionUpdate::not_ok(type_, "ApplyFailed", error.clone());
        }
        if let Some(why) = &c.waiting {
            return ConditionUpdate::not_ok(type_, "Waiting", why.clone());
        }
        if !c.not_ready.is_empty() {
            return ConditionUpdate::not_ok(type_, "Progressing", c.not_ready.join("; "));
        }
        ConditionUpdate::ok(type_, ready_reason, ready_message)
    }

    /// The conditions this progress amounts to.
    pub fn conditions(&self) -> Vec<ConditionUpdate> {
        if !self.invalid.is_empty() {
            let message = self.invalid.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
            let reason = self.invalid[0].reason;
            let namespaces = if self.invalid.iter().any(|p| p.reason.starts_with("Namespace")) {
                ConditionUpdate::not_ok(ct::NAMESPACES_READY, reason, message.clone())
            } else {
                ConditionUpdate::not_ok(ct::NAMESPACES_READY, "NotApplied", "the spec is invalid; nothing was changed")
            };
            return vec![
                ConditionUpdate::not_ok(ct::READY, reason, message.clone()),
                namespaces,
                conditions::degraded(reason, message),
            ];
        }
        let mesh = match &self.azure.provider {
            Some(azure) => azure.clone(),
            None => self.component_condition(
                Component::Mesh,
                ct::MESH_READY,
                "Available",
                "the mesh control plane is available",
            ),
        };
        let images = if self.has_registry {
            self.azure.images.clone().unwrap_or_else(|| {
                ConditionUpdate::not_ok(ct::IMAGES_IMPORTED, "Pending", "the images have not been imported yet")
            })
        } else {
            ConditionUpdate::ok(ct::IMAGES_IMPORTED, "NothingToImport", "spec.registry lists no images")
        };
        let ingress = if self.has_ingress {
            let mut c =
                self.component_condition(Component::Ingress, ct::INGRESS_READY, "Available", "the ingress is in place");
            if c.is_true()
                && let Some(address) = &self.ingress_address
            {
                c.message = format!("the ingress is in place at {address}");
            }
            c
        } else {
            ConditionUpdate::ok(ct::INGRESS_READY, "NotRequested", "spec.ingress is not set")
        };
        let mut updates = vec![
            mesh,
            images,
            self.component_condition(
                Component::Namespaces,
                ct::NAMESPACES_READY,
                "Enrolled",
                "every namespace exists and is enrolled",
            ),
            self.component_condition(Component::Apps, ct::APPS_READY, "Available", "every app is available"),
            ingress,
            self.component_condition(Component::Traffic, ct::TRAFFIC_READY, "Applied", "traffic policies are applied"),
        ];
        let conflicts: Vec<String> = self.components.values().flat_map(|c| c.conflicts.iter().cloned()).collect();
        let degraded = if let Some(first) = conflicts.first() {
            conditions::degraded("Conflict", first.clone())
        } else if let Some(azure) = &self.azure.degraded {
            azure.clone()
        } else if let Some(error) = self.notifications.iter().find(|n| n.level == mesh_crds::NotificationLevel::Error) {
            conditions::degraded("TranslationError", format!("{}: {}", error.object, error.message))
        } else {
            ConditionUpdate::not_ok(ct::DEGRADED, "AsExpected", "nothing needs attention")
        };
        let not_ready: Vec<&ConditionUpdate> = updates.iter().filter(|c| !c.is_true()).collect();
        let ready = match not_ready.first() {
            None if !degraded.is_true() => {
                ConditionUpdate::ok(ct::READY, "Converged", "the installation has converged")
            }
            None => ConditionUpdate::not_ok(ct::READY, &degraded.reason, degraded.message.clone()),
            Some(first) => {
                ConditionUpdate::not_ok(ct::READY, &first.reason, format!("{}: {}", first.type_, first.message))
            }
        };
        updates.insert(0, ready);
        updates.push(degraded);
        updates
    }

    /// Whether the installation converged.
    pub fn ready(&self) -> bool {
        self.conditions().first().is_some_and(ConditionUpdate::is_true)
    }

    pub(super) fn component_statuses(&self) -> Vec<ComponentStatus> {
        self.components
            .iter()
            .map(|(component, c)| {
                let problems: Vec<String> = c
                    .conflicts
                    .iter()
                    .chain(c.errors.iter())
                    .chain(c.waiting.iter())
                    .chain(c.not_ready.iter())
                    .cloned()
                    .collect();
                ComponentStatus {
                    name: component.as_str().to_string(),
                    ready: problems.is_empty(),
                    ready_count: (c.workloads - c.not_ready.len().min(c.workloads)) as i32,
                    total: c.workloads as i32,
                    message: problems.join("; "),
                }
            })
            .collect()
    }
}

/// The Azure part of the progress, filled by the Azure step. What it must keep on record
/// (operations, imported images, the migration step, the AcrPull assignment) it writes through
/// the status record as it goes.
#[derive(Clone, Debug, Default)]
pub struct AzureProgress {
    /// MeshReady while the add-on is not there yet (None: the mesh component decides).
    pub provider: Option<ConditionUpdate>,
    /// ImagesImported.
    pub images: Option<ConditionUpdate>,
    /// A fatal error that needs a person.
    pub degraded: Option<ConditionUpdate>,
}

/// Most notifications the status holds.
pub const MAX_STATUS_NOTIFICATIONS: usize = 100;

/// The notifications status shows (most severe first, at most [`MAX_STATUS_NOTIFICATIONS`]) and
/// how many were left out.
pub fn bounded_notifications(all: &[mesh_crds::Notification]) -> (Vec<mesh_crds::Notification>, Option<u32>) {
    let mut sorted = all.to_vec();
    sorted.sort();
    sorted.dedup();
    let omitted = sorted.len().saturating_sub(MAX_STATUS_NOTIFICATIONS);
    sorted.truncate(MAX_STATUS_NOTIFICATIONS);
    (sorted, (omitted > 0).then(|| u32::try_from(omitted).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests;
