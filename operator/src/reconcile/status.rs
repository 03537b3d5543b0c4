//! Update status: what each component did and whether it is ready, as conditions a person can act
//! on. Written only when it changed, so a steady installation makes no write.

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams, ResourceExt};
use mesh_crds::{
    CertificateStatus, ComponentStatus, MeshInstallation, MeshInstallationSpec, MeshInstallationStatus, Notification,
    condition_type as ct,
};
use mesh_provisioner::apply::ApplyError;
use mesh_provisioner::desired::{Component, Desired};
use mesh_provisioner::{ingress, labels};
use serde_json::json;

use super::conditions::{self, ConditionUpdate};
use super::observe;
use super::validate::Problem;
use crate::context::Context;
use crate::error::{Error, Result};

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
    pub azure: super::azure::AzureProgress,
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
                super::degraded(reason, message),
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
            super::degraded("Conflict", first.clone())
        } else if let Some(azure) = &self.azure.degraded {
            azure.clone()
        } else if let Some(error) = self.notifications.iter().find(|n| n.level == mesh_crds::NotificationLevel::Error) {
            super::degraded("TranslationError", format!("{}: {}", error.object, error.message))
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

    fn component_statuses(&self) -> Vec<ComponentStatus> {
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

/// Reads workload readiness and the ingress address from the caches.
pub fn observe_readiness(ctx: &Context, mi: &MeshInstallation, desired: &[Desired], progress: &mut Progress) {
    for d in desired.iter().filter(|d| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet")) {
        let (ready, why) = observe::workload_ready(ctx, &d.resource.kind, d.namespace().unwrap_or_default(), d.name());
        let entry = progress.entry(d.component);
        entry.workloads += 1;
        if !ready {
            entry.not_ready.push(why);
        }
    }
    if let Some(spec) = &mi.spec.ingress {
        progress.ingress_address = ingress_address(ctx, spec);
    }
}

fn ingress_address(ctx: &Context, spec: &mesh_crds::IngressSpec) -> Option<String> {
    let controller = ingress::ControllerRef::for_spec(spec);
    let resource = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let service = ctx.cache.get(&resource, Some(&controller.namespace), &controller.controller_service())?;
    let value = serde_json::to_value(&*service).ok()?;
    let first = value["status"]["loadBalancer"]["ingress"].get(0)?;
    first["ip"].as_str().or(first["hostname"].as_str()).map(str::to_string)
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

/// Writes the status when it differs from the stored one. Returns whether it wrote.
pub async fn update(ctx: &Context, mi: &MeshInstallation, progress: &Progress) -> Result<bool> {
    let old = mi.status.clone().unwrap_or_default();
    let now = jiff_now();
    let (notifications, omitted) = bounded_notifications(&progress.notifications);
    // Fields other steps own (Azure operations, imported images, …) are carried over as they are.
    let new = MeshInstallationStatus {
        observed_generation: mi.meta().generation,
        conditions: conditions::merge(&old.conditions, &progress.conditions(), &now, mi.meta().generation),
        components: progress.component_statuses(),
        notifications,
        notifications_omitted: omitted,
        ingress_address: progress.ingress_address.clone(),
        certificates: progress.certificates.clone(),
        teardown_step: None,
        ..old.clone()
    };
    let mut new = new;
    if let Some(operations) = &progress.azure.operations {
        new.azure_operations = operations.clone();
    }
    if let Some(imported) = &progress.azure.imported_images {
        new.imported_images = imported.clone();
    }
    if let Some(step) = &progress.azure.migration_step {
        new.osm_migration_step = step.clone();
    }
    if let Some(assignment) = &progress.azure.acr_pull_assignment {
        new.acr_pull_assignment = assignment.clone();
    }
    if new == old {
        return Ok(false);
    }
    write(ctx, mi, &new).await?;
    Ok(true)
}

/// Server-side applies the whole status with the status field manager.
pub async fn write(ctx: &Context, mi: &MeshInstallation, status: &MeshInstallationStatus) -> Result<()> {
    let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
    let body = json!({"apiVersion": "meshoperator.dev/v1alpha1", "kind": "MeshInstallation", "status": status});
    api.patch_status(
        &mi.name_any(),
        &PatchParams::apply(&labels::field_manager("status")).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube(format!("updating status of MeshInstallation {}", mi.name_any())))?;
    Ok(())
}

/// Now, RFC 3339 in UTC with second precision (as Kubernetes writes times).
pub fn jiff_now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

/// Names of the CRDs traffic policy needs.
pub fn osm_crd_names(spec: &MeshInstallationSpec) -> Vec<String> {
    if spec.mesh.is_osm() { mesh_crds::generate::osm_crd_names() } else { Vec::new() }
}

/// Ensure step: the ingress webhook's TLS — the stored one while it is good, else a new one (the
/// plan is pure and never generates keys). None when there is no ingress-nginx.
pub async fn ingress_webhook_tls(
    ctx: &Context,
    spec: &MeshInstallationSpec,
) -> Result<Option<ingress::certs::WebhookTls>> {
    let Some(ingress_spec) = &spec.ingress else { return Ok(None) };
    if spec.traffic.mode != mesh_crds::TrafficMode::Smi {
        return Ok(None);
    }
    let controller = ingress::ControllerRef::for_spec(ingress_spec);
    let service = ingress::admission_service_name(ingress_spec);
    let stored = observe::secret(ctx, &controller.namespace, &ingress::webhook_secret_name(ingress_spec))
        .await?
        .and_then(|secret| ingress::certs::WebhookTls::from_secret_data(&secret.data.unwrap_or_default()).ok())
        // A certificate for another Service name (the namespace changed) is replaced, not reused.
        .filter(|tls| tls.covers(&service, &controller.namespace).unwrap_or(false) && !tls.needs_renewal());
    match stored {
        Some(tls) => Ok(Some(tls)),
        None => ingress::certs::WebhookTls::generate(&service, &controller.namespace)
            .map(Some)
            .map_err(|e| Error::Plan(mesh_provisioner::plan::PlanError::Ingress(e))),
    }
}

/// Edge certificates for rules with `tls.generate`: the stored one while it is valid, else a new one.
pub async fn edge_certificates(
    ctx: &Context,
    spec: &MeshInstallationSpec,
) -> Result<BTreeMap<(String, String), ingress::certs::EdgeCert>> {
    let mut certs = BTreeMap::new();
    let Some(ingress_spec) = &spec.ingress else { return Ok(certs) };
    for rule in &ingress_spec.rules {
        let Some(tls) = rule.tls.as_ref().filter(|t| t.generate) else { continue };
        let key = (rule.backend.namespace.clone(), tls.secret_name.clone());
        if certs.contains_key(&key) {
            continue;
        }
        let stored = observe::secret(ctx, &key.0, &key.1)
            .await?
            .and_then(|s| ingress::certs::EdgeCert::from_secret_data(&s.data.unwrap_or_default()).ok())
            .filter(|cert| cert.covers(&rule.host) && !cert.needs_renewal());
        let cert = match stored {
            Some(cert) => cert,
            None => ingress::certs::edge_certificate(&rule.host, ingress::certs::EDGE_VALIDITY)
                .map_err(|e| Error::Plan(mesh_provisioner::plan::PlanError::Ingress(e)))?,
        };
        certs.insert(key, cert);
    }
    Ok(certs)
}

/// Status entries for generated certificates.
pub fn certificate_statuses(certs: &BTreeMap<(String, String), ingress::certs::EdgeCert>) -> Vec<CertificateStatus> {
    certs
        .iter()
        .map(|((ns, name), cert)| CertificateStatus {
            secret: format!("{ns}/{name}"),
            hosts: cert.hosts.clone(),
            not_after: cert.not_after_rfc3339(),
        })
        .collect()
}

/// The installation's name (for logs).
pub fn name_of(mi: &MeshInstallation) -> String {
    mi.name_any()
}

#[cfg(test)]
mod tests;
