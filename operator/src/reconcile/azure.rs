//! The Azure step of a reconcile: the AKS add-on that provides the mesh (OSM or Istio, with the
//! in-place OSM → Istio migration) and the ACR imports of `spec.registry.images`, through Azure
//! Resource Manager.
//!
//! Long-running operations are never waited for inside a reconcile: a write that starts one
//! stores its polling URL in `status.azureOperations` right away (before anything else happens),
//! and later reconciles poll it, so an operator restarted mid-operation resumes polling instead of
//! writing again. Errors are classified as Azure Service Operator does: retryable ones (429, 5xx,
//! a conflicting operation) keep the installation converging with back-off honouring
//! `Retry-After`; fatal ones (400, 401, 403, 404) are reported with the ARM code, message and a
//! hint, and retried only on a spec change or after a long pause. While backing off, the previous
//! result is reused, so the status writes this step makes do not turn into ARM requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, ResourceExt};
use mesh_crds::{
    AzureCredential, AzureOperation, AzureSpec, MeshInstallation, MeshInstallationStatus, MeshProvider, WorkloadKind,
    condition_type as ct,
};
use mesh_provisioner::azure::acr::{self, RegistryRef};
use mesh_provisioner::azure::aks::{self, ClusterRef};
use mesh_provisioner::azure::models::ManagedCluster;
use mesh_provisioner::azure::{
    ArmClient, ArmError, PollOutcome, PollingKind, Started, Target, WriteOutcome, client, credential,
};
use mesh_provisioner::{labels, osm};
use serde_json::json;

use super::conditions::ConditionUpdate;
use super::status::{self, Progress};
use crate::context::Context;
use crate::error::{Error, Result};

/// Images imported at once.
pub const IMPORT_CONCURRENCY: usize = 4;
/// Pause before retrying after a fatal error when the spec does not change.
pub const FATAL_RETRY: Duration = Duration::from_secs(300);
/// Pod-template annotation set by the migration's ordered restart.
pub const MIGRATED_ANNOTATION: &str = "meshoperator.dev/migrated-to";

/// Operation names kept in `status.azureOperations`.
pub mod operation {
    /// Enabling the OSM add-on.
    pub const ENABLE_OSM: &str = "EnableOsmAddon";
    /// Disabling the OSM add-on (teardown, migration).
    pub const DISABLE_OSM: &str = "DisableOsmAddon";
    /// Enabling the Istio add-on.
    pub const ENABLE_ISTIO: &str = "EnableIstioAddon";
    /// Disabling the Istio add-on (teardown).
    pub const DISABLE_ISTIO: &str = "DisableIstioAddon";
    /// Prefix of an image import: `ImportImage/<target>`.
    pub const IMPORT_PREFIX: &str = "ImportImage/";
}

/// Steps of the in-place migration from the OSM add-on to the Istio add-on, in order (the AKS
/// migration guide's), as stored in `status.osmMigrationStep`.
pub const MIGRATION_STEPS: [&str; 7] = [
    "DisableOsmAddon",
    "DeleteOsmWebhooks",
    "EnableIstioAddon",
    "RelabelNamespaces",
    "RestartWorkloads",
    "DeleteOsmCrds",
    "Completed",
];

/// What the rest of the reconcile needs from the Azure step.
#[derive(Clone, Debug, Default)]
pub struct AzureOutcome {
    /// Source image → `<acr>.azurecr.io/<target>` for every image whose import succeeded.
    pub image_overrides: BTreeMap<String, String>,
    /// The Istio revision namespaces are labelled with (once the Istio add-on is enabled).
    pub istio_revision: Option<String>,
    /// Whether the provider's control plane is there, so the mesh objects (MeshConfig) can be applied.
    pub mesh_prerequisites_met: bool,
    /// When to look again, from `Retry-After` or the back-off.
    pub requeue: Option<Duration>,
}

/// The Azure part of the status, filled by this step.
#[derive(Clone, Debug, Default)]
pub struct AzureProgress {
    /// MeshReady while the add-on is not there yet (None: the mesh component decides).
    pub provider: Option<ConditionUpdate>,
    /// ImagesImported.
    pub images: Option<ConditionUpdate>,
    /// A fatal error that needs a person.
    pub degraded: Option<ConditionUpdate>,
    /// `status.azureOperations`, when this step ran.
    pub operations: Option<Vec<AzureOperation>>,
    /// `status.importedImages`, when this step ran.
    pub imported_images: Option<Vec<String>>,
    /// `status.osmMigrationStep`, when this step ran.
    pub migration_step: Option<Option<String>>,
}

/// Per-controller memory: ARM clients (so tokens are cached) and back-off windows.
#[derive(Default)]
pub struct AzureState {
    clients: Mutex<HashMap<String, Arc<ArmClient>>>,
    memo: Mutex<HashMap<String, Memo>>,
    /// Fatal errors per installation and part (`<name>/images`), so one part's fatal error is not
    /// retried while another part's operation keeps the installation polling.
    fatal: Mutex<HashMap<String, FatalMemo>>,
}

#[derive(Clone)]
struct FatalMemo {
    generation: Option<i64>,
    until: Instant,
    condition: ConditionUpdate,
    degraded: ConditionUpdate,
}

#[derive(Clone)]
struct Memo {
    generation: Option<i64>,
    until: Instant,
    attempts: u32,
    outcome: AzureOutcome,
    progress: AzureProgress,
}

impl std::fmt::Debug for AzureState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureState").finish_non_exhaustive()
    }
}

/// A copy of the status that this step updates and persists as it goes.
struct Journal {
    status: MeshInstallationStatus,
    dirty: bool,
}

impl Journal {
    fn new(mi: &MeshInstallation) -> Self {
        Journal { status: mi.status.clone().unwrap_or_default(), dirty: false }
    }

    fn op(&self, name: &str) -> Option<AzureOperation> {
        self.status.azure_operations.iter().find(|o| o.operation == name).cloned()
    }

    fn start(&mut self, name: &str, resource_id: &str, started: &Started) {
        self.status.azure_operations.retain(|o| o.operation != name);
        self.status.azure_operations.push(AzureOperation {
            operation: name.to_string(),
            resource_id: resource_id.to_string(),
            polling_url: started.polling_url.clone(),
            polling_kind: started.kind.as_str().to_string(),
            started_at: status::jiff_now(),
        });
        self.dirty = true;
    }

    fn finish(&mut self, name: &str) {
        let before = self.status.azure_operations.len();
        self.status.azure_operations.retain(|o| o.operation != name);
        self.dirty |= before != self.status.azure_operations.len();
    }

    fn imported(&mut self, reference: &str) {
        if !self.status.imported_images.iter().any(|i| i == reference) {
            self.status.imported_images.push(reference.to_string());
            self.status.imported_images.sort();
            self.dirty = true;
        }
    }

    fn step(&self) -> Option<&str> {
        self.status.osm_migration_step.as_deref()
    }

    fn set_step(&mut self, step: &str) {
        if self.step() != Some(step) {
            self.status.osm_migration_step = Some(step.to_string());
            self.dirty = true;
        }
    }

    /// Writes the status now when it changed: a started operation must be on record before
    /// anything else can fail.
    async fn persist(&mut self, ctx: &Context, mi: &MeshInstallation) -> Result<()> {
        if self.dirty {
            status::write(ctx, mi, &self.status).await?;
            self.dirty = false;
        }
        Ok(())
    }

    fn into_progress(self, progress: &mut AzureProgress) {
        progress.operations = Some(self.status.azure_operations);
        progress.imported_images = Some(self.status.imported_images);
        progress.migration_step = Some(self.status.osm_migration_step);
    }
}

/// Whether the installation talks to Azure at all.
pub fn uses_azure(mi: &MeshInstallation) -> bool {
    mi.spec.azure.is_some() && (mi.spec.mesh.provider != MeshProvider::SelfHosted || mi.spec.registry.is_some())
}

/// The result of making one cluster property what we want.
enum Ensure {
    /// It is.
    Done,
    /// An operation is running; look again after this long.
    InProgress(Duration, String),
}

/// What the step found out, before it becomes conditions.
#[derive(Default)]
struct Findings {
    outcome: AzureOutcome,
    progress: AzureProgress,
    errors: Vec<ArmError>,
    waits: Vec<Duration>,
}

impl Findings {
    fn wait(&mut self, duration: Duration) {
        self.waits.push(duration);
    }

    fn error(&mut self, error: ArmError) -> ConditionUpdate {
        let condition = error_condition(ct::MESH_READY, &error);
        if !error.is_retryable() {
            self.progress.degraded = Some(super::degraded(&error.code(), error.condition_message()));
        }
        self.errors.push(error);
        condition
    }
}

fn error_condition(type_: &'static str, error: &ArmError) -> ConditionUpdate {
    let message = if error.is_retryable() {
        format!("{} (transient; retrying)", error.condition_message())
    } else {
        error.condition_message()
    };
    ConditionUpdate::not_ok(type_, &error.code(), message)
}

/// The Azure step. Fills `progress` with the provider and image conditions and returns what the
/// build needs.
pub async fn converge_azure(mi: &MeshInstallation, ctx: &Context, progress: &mut Progress) -> Result<AzureOutcome> {
    let Some(azure) = mi.spec.azure.as_ref().filter(|_| uses_azure(mi)) else {
        return Ok(AzureOutcome { mesh_prerequisites_met: true, ..Default::default() });
    };
    let name = mi.name_any();
    let generation = mi.metadata.generation;
    if let Some(memo) = ctx.azure.recall(&name, generation) {
        progress.azure = memo.progress.clone();
        let mut outcome = memo.outcome.clone();
        outcome.requeue = Some(memo.until.saturating_duration_since(Instant::now()).max(Duration::from_millis(200)));
        return Ok(outcome);
    }

    let mut journal = Journal::new(mi);
    let mut findings = Findings::default();
    match ctx.azure.client(ctx, azure).await {
        Ok(client) => {
            provider(mi, ctx, &client, azure, &mut journal, &mut findings).await?;
            let no_token = findings.errors.iter().find(|e| matches!(e, ArmError::Credential { .. }));
            match no_token {
                // Without a token every import fails the same way: say so without asking again.
                Some(error) if mi.spec.registry.is_some() => {
                    findings.progress.images =
                        Some(ConditionUpdate { type_: ct::IMAGES_IMPORTED, ..error_condition(ct::MESH_READY, error) });
                }
                _ => images(mi, ctx, &client, azure, &mut journal, &mut findings).await?,
            }
        }
        Err(error) => {
            let condition = error_condition(ct::MESH_READY, &error);
            if mi.spec.mesh.provider != MeshProvider::SelfHosted {
                findings.progress.provider = Some(condition.clone());
            }
            if mi.spec.registry.is_some() {
                findings.progress.images = Some(ConditionUpdate { type_: ct::IMAGES_IMPORTED, ..condition });
            }
            findings.progress.degraded = Some(super::degraded(&error.code(), error.condition_message()));
            findings.errors.push(error);
        }
    }
    journal.persist(ctx, mi).await?;
    journal.into_progress(&mut findings.progress);

    // Back-off: the server's Retry-After or our exponential back-off for retryable errors, a long
    // pause for fatal ones, the operation's Retry-After while one runs.
    let fatal = findings.errors.iter().any(|e| !e.is_retryable());
    let retryable: Vec<&ArmError> = findings.errors.iter().filter(|e| e.is_retryable()).collect();
    let attempts = ctx.azure.attempts(&name, generation, !findings.errors.is_empty());
    let mut wait = findings.waits.iter().copied().min();
    if !retryable.is_empty() {
        let server = retryable.iter().filter_map(|e| e.retry_after()).max().unwrap_or_default();
        let ours = super::backoff(attempts.max(1), ctx.settings.max_backoff);
        let delay = server.max(ours);
        wait = Some(wait.map_or(delay, |w| w.min(delay)));
        for error in &retryable {
            tracing::info!(installation = %name, code = %error.code(), ?delay, "transient Azure error: {error}");
        }
    }
    if fatal && wait.is_none() {
        wait = Some(FATAL_RETRY);
    }
    for error in findings.errors.iter().filter(|e| !e.is_retryable()) {
        tracing::warn!(installation = %name, code = %error.code(), "Azure error needs attention: {error}");
    }
    findings.outcome.requeue = wait;
    if let Some(wait) = wait {
        ctx.azure.remember(&name, generation, wait, attempts, &findings.outcome, &findings.progress);
    } else {
        ctx.azure.forget(&name);
    }
    progress.azure = findings.progress;
    Ok(findings.outcome)
}

impl AzureState {
    fn recall(&self, name: &str, generation: Option<i64>) -> Option<Memo> {
        let memo = self.memo.lock().ok()?;
        memo.get(name).filter(|m| m.generation == generation && Instant::now() < m.until).cloned()
    }

    fn attempts(&self, name: &str, generation: Option<i64>, failed: bool) -> u32 {
        let previous = self
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(name).filter(|m| m.generation == generation).map(|m| m.attempts))
            .unwrap_or(0);
        if failed { previous.saturating_add(1) } else { 0 }
    }

    fn remember(
        &self,
        name: &str,
        generation: Option<i64>,
        wait: Duration,
        attempts: u32,
        outcome: &AzureOutcome,
        progress: &AzureProgress,
    ) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(
                name.to_string(),
                Memo {
                    generation,
                    until: Instant::now() + wait,
                    attempts,
                    outcome: outcome.clone(),
                    progress: progress.clone(),
                },
            );
        }
    }

    fn fatal_recall(&self, key: &str, generation: Option<i64>) -> Option<FatalMemo> {
        let fatal = self.fatal.lock().ok()?;
        fatal.get(key).filter(|m| m.generation == generation && Instant::now() < m.until).cloned()
    }

    fn fatal_remember(
        &self,
        key: &str,
        generation: Option<i64>,
        condition: &ConditionUpdate,
        degraded: &ConditionUpdate,
    ) {
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.insert(
                key.to_string(),
                FatalMemo {
                    generation,
                    until: Instant::now() + FATAL_RETRY,
                    condition: condition.clone(),
                    degraded: degraded.clone(),
                },
            );
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.remove(name);
        }
    }

    /// The ARM client for `spec`, built once per endpoint, credential and secret value.
    async fn client(&self, ctx: &Context, spec: &AzureSpec) -> Result<Arc<ArmClient>, ArmError> {
        if let Some(refused) = super::azure_cli::refusal(&spec.credential, super::azure_cli::running_in_cluster()) {
            return Err(refused);
        }
        let secret = match &spec.credential {
            AzureCredential::ClientSecretRef(sp) => Some(read_client_secret(ctx, sp).await?),
            _ => None,
        };
        let endpoint = spec.arm_endpoint.clone().unwrap_or_else(|| mesh_crds::DEFAULT_ARM_ENDPOINT.to_string());
        // The key holds a hash of the secret, never the secret.
        let key = format!(
            "{endpoint}|{:?}|{:?}|{:x}",
            spec.authority_host,
            spec.credential,
            mesh_provisioner::topology::fnv1a(secret.as_deref().unwrap_or_default().as_bytes())
        );
        if let Some(found) = self.clients.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(found);
        }
        let transport = client::transport()?;
        let credential = credential::credential(spec, secret, transport.clone())?;
        let built = Arc::new(ArmClient::new(&endpoint, credential, transport)?);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, built.clone());
        }
        Ok(built)
    }
}

/// The operator's namespace: where a `clientSecretRef` Secret is looked up by default.
fn operator_namespace() -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "mesh-operator-system".to_string())
}

async fn read_client_secret(ctx: &Context, sp: &mesh_crds::ClientSecretRef) -> Result<String, ArmError> {
    let namespace = sp.secret_namespace.clone().unwrap_or_else(operator_namespace);
    let key = sp.key.clone().unwrap_or_else(|| credential::DEFAULT_SECRET_KEY.to_string());
    let context = format!("spec.azure.credential.clientSecretRef: Secret {namespace}/{}", sp.secret_name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = api
        .get_opt(&sp.secret_name)
        .await
        .map_err(|e| ArmError::Config { context: context.clone(), message: format!("cannot be read: {e}") })?
        .ok_or_else(|| ArmError::Config { context: context.clone(), message: "does not exist".into() })?;
    let value = secret
        .data
        .and_then(|d| d.get(&key).cloned())
        .ok_or_else(|| ArmError::Config { context: context.clone(), message: format!("has no key {key}") })?;
    String::from_utf8(value.0).map_err(|_| ArmError::Config { context, message: format!("key {key} is not UTF-8") })
}

/// Makes one managed-cluster property what we want: resumes a stored operation, else reads,
/// mutates and writes (no write when nothing changes), storing a started operation at once.
#[allow(clippy::too_many_arguments)]
async fn ensure_cluster(
    ctx: &Context,
    mi: &MeshInstallation,
    client: &ArmClient,
    cluster: &ClusterRef,
    journal: &mut Journal,
    op_name: &str,
    what: &str,
    mutate: impl Fn(&mut ManagedCluster) -> bool,
) -> Result<Result<Ensure, ArmError>> {
    if let Some(stored) = journal.op(op_name) {
        let kind = PollingKind::parse(&stored.polling_kind).unwrap_or(PollingKind::AzureAsyncOperation);
        match client
            .poll(&stored.polling_url, kind, &format!("{what} on {}", cluster.id()), Target::ManagedCluster)
            .await
        {
            Ok(PollOutcome::Running(wait)) => {
                return Ok(Ok(Ensure::InProgress(
                    wait,
                    format!("{what} on {}: operation in progress since {}", cluster.id(), stored.started_at),
                )));
            }
            Ok(PollOutcome::Succeeded) => {
                journal.finish(op_name);
                journal.persist(ctx, mi).await?;
            }
            Ok(PollOutcome::Failed(error)) => {
                journal.finish(op_name);
                journal.persist(ctx, mi).await?;
                return Ok(Err(error));
            }
            Err(error) => return Ok(Err(error)),
        }
    }
    match aks::update(client, cluster, what, mutate).await {
        Ok(WriteOutcome::NoChange | WriteOutcome::Done) => Ok(Ok(Ensure::Done)),
        Ok(WriteOutcome::Started(started)) => {
            journal.start(op_name, &cluster.id(), &started);
            journal.persist(ctx, mi).await?;
            tracing::info!(installation = %mi.name_any(), operation = op_name, "started {what} on {}", cluster.id());
            Ok(Ok(Ensure::InProgress(
                started.retry_after.unwrap_or(Duration::from_secs(1)),
                format!("{what} on {}: operation started", cluster.id()),
            )))
        }
        Err(error) => Ok(Err(error)),
    }
}

async fn provider(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    azure: &AzureSpec,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    let cluster = ClusterRef::from_spec(azure);
    match mi.spec.mesh.provider {
        MeshProvider::SelfHosted => {
            findings.outcome.mesh_prerequisites_met = true;
        }
        MeshProvider::AksAddon => {
            let result = ensure_cluster(
                ctx,
                mi,
                client,
                &cluster,
                journal,
                operation::ENABLE_OSM,
                "enabling the AKS OSM add-on",
                |c| c.set_osm_addon(true),
            )
            .await?;
            match result {
                Ok(Ensure::Done) => {
                    let namespace = mesh_crds::AKS_ADDON_NAMESPACE;
                    let api: Api<mesh_crds::osm::MeshConfig> = Api::namespaced(ctx.client.clone(), namespace);
                    let exists = api
                        .get_opt(osm::names::MESH_CONFIG)
                        .await
                        .map_err(Error::kube(format!("reading MeshConfig {namespace}/{}", osm::names::MESH_CONFIG)))?
                        .is_some();
                    if exists {
                        findings.outcome.mesh_prerequisites_met = true;
                    } else {
                        findings.progress.provider = Some(ConditionUpdate::not_ok(
                            ct::MESH_READY,
                            "WaitingForAddon",
                            format!(
                                "the AKS OSM add-on is enabled; waiting for it to create MeshConfig {namespace}/{}",
                                osm::names::MESH_CONFIG
                            ),
                        ));
                        findings.wait(Duration::from_secs(2));
                    }
                }
                Ok(Ensure::InProgress(wait, message)) => {
                    findings.progress.provider =
                        Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
                    findings.wait(wait);
                }
                Err(error) => findings.progress.provider = Some(findings.error(error)),
            }
        }
        MeshProvider::AksIstioAddon => istio(mi, ctx, client, azure, &cluster, journal, findings).await?,
    }
    Ok(())
}

/// The Istio revision to use: the one the cluster already runs, else the spec's, else the newest
/// one compatible with the cluster's Kubernetes version.
async fn istio_revision(
    mi: &MeshInstallation,
    client: &ArmClient,
    azure: &AzureSpec,
    current: &ManagedCluster,
) -> Result<String, ArmError> {
    if let Some(revision) = mi.spec.mesh.istio.as_ref().and_then(|i| i.revision.clone()) {
        return Ok(revision);
    }
    if let Some(revision) = current.istio_revisions().and_then(|r| r.last()) {
        return Ok(revision.clone());
    }
    let version = current.kubernetes_version().unwrap_or_default().to_string();
    let revisions = aks::mesh_revisions(client, &azure.subscription_id, &azure.location).await?;
    aks::pick_revision(&revisions, &version).ok_or_else(|| ArmError::Decode {
        operation: format!("choosing an Istio revision in {}", azure.location),
        message: format!(
            "no revision in meshRevisionProfiles is compatible with Kubernetes {version}; set spec.mesh.istio.revision"
        ),
    })
}

#[allow(clippy::too_many_arguments)]
async fn istio(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    azure: &AzureSpec,
    cluster: &ClusterRef,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    let current = match aks::get(client, cluster).await {
        Ok(current) => current,
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            return Ok(());
        }
    };
    let revision = match istio_revision(mi, client, azure, &current).await {
        Ok(revision) => revision,
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            return Ok(());
        }
    };
    let migrating = journal.step().is_some_and(|s| s != "Completed");
    if current.osm_addon_enabled() && !migrating {
        if !mi.spec.mesh.migrate_from_osm {
            let message = format!(
                "the AKS Open Service Mesh add-on is enabled on cluster {}, and AKS does not run the Istio add-on next to it; nothing was changed. Set spec.mesh.migrateFromOsm: true to migrate in place (disable the OSM add-on, delete its webhooks, enable Istio {revision}, relabel the namespaces with istio.io/rev, restart the workloads in dependency order, delete the OSM/SMI CRDs), or disable the OSM add-on first",
                azure.cluster_name
            );
            findings.progress.provider =
                Some(ConditionUpdate::not_ok(ct::MESH_READY, "OsmAddonEnabled", message.clone()));
            findings.progress.degraded = Some(super::degraded("OsmAddonEnabled", message));
            findings.wait(FATAL_RETRY);
            return Ok(());
        }
        journal.set_step(MIGRATION_STEPS[0]);
        journal.persist(ctx, mi).await?;
    }
    if journal.step().is_some_and(|s| s != "Completed") {
        return migrate(mi, ctx, client, cluster, &revision, journal, findings).await;
    }
    let result = ensure_cluster(
        ctx,
        mi,
        client,
        cluster,
        journal,
        operation::ENABLE_ISTIO,
        &format!("enabling the AKS Istio add-on ({revision})"),
        |c| c.set_istio(&revision),
    )
    .await?;
    match result {
        Ok(Ensure::Done) => {
            findings.outcome.mesh_prerequisites_met = true;
            findings.outcome.istio_revision = Some(revision);
        }
        Ok(Ensure::InProgress(wait, message)) => {
            findings.progress.provider = Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
            findings.wait(wait);
        }
        Err(error) => findings.progress.provider = Some(findings.error(error)),
    }
    Ok(())
}

/// The documented in-place migration, one step at a time, each recorded in status so a restarted
/// operator resumes where it stopped.
#[allow(clippy::too_many_arguments)]
async fn migrate(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    cluster: &ClusterRef,
    revision: &str,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    loop {
        let step = journal.step().unwrap_or(MIGRATION_STEPS[0]).to_string();
        let index = MIGRATION_STEPS.iter().position(|s| *s == step).unwrap_or(0);
        if index >= 3 {
            findings.outcome.istio_revision = Some(revision.to_string());
        }
        let done = match step.as_str() {
            "DisableOsmAddon" => {
                let result = ensure_cluster(
                    ctx,
                    mi,
                    client,
                    cluster,
                    journal,
                    operation::DISABLE_OSM,
                    "disabling the AKS OSM add-on (migration to Istio)",
                    |c| c.set_osm_addon(false),
                )
                .await?;
                cluster_step(result, findings)
            }
            "DeleteOsmWebhooks" => {
                delete_addon_webhooks(ctx).await?;
                true
            }
            "EnableIstioAddon" => {
                let result = ensure_cluster(
                    ctx,
                    mi,
                    client,
                    cluster,
                    journal,
                    operation::ENABLE_ISTIO,
                    &format!("enabling the AKS Istio add-on ({revision}; migration from OSM)"),
                    |c| c.set_istio(revision),
                )
                .await?;
                cluster_step(result, findings)
            }
            "RelabelNamespaces" => {
                strip_osm_enrolment(mi, ctx).await?;
                true
            }
            "RestartWorkloads" => match restart_in_order(mi, ctx, revision).await? {
                None => true,
                Some(waiting) => {
                    findings.progress.provider = Some(ConditionUpdate::not_ok(
                        ct::MESH_READY,
                        "MigratingFromOsm",
                        format!("migration from OSM, step RestartWorkloads: {waiting}"),
                    ));
                    findings.wait(Duration::from_secs(1));
                    false
                }
            },
            "DeleteOsmCrds" => {
                delete_osm_crds(ctx).await?;
                true
            }
            _ => {
                findings.outcome.mesh_prerequisites_met = true;
                return Ok(());
            }
        };
        if !done {
            if findings.progress.provider.is_none() {
                findings.progress.provider = Some(ConditionUpdate::not_ok(
                    ct::MESH_READY,
                    "MigratingFromOsm",
                    format!("migration from OSM to Istio {revision}: step {step}"),
                ));
            } else if let Some(condition) = findings.progress.provider.as_mut()
                && condition.reason == "OperationInProgress"
            {
                condition.reason = "MigratingFromOsm".into();
                condition.message = format!("migration from OSM, step {step}: {}", condition.message);
            }
            return Ok(());
        }
        let next = MIGRATION_STEPS[(index + 1).min(MIGRATION_STEPS.len() - 1)];
        tracing::info!(installation = %mi.name_any(), from = %step, to = next, "OSM → Istio migration advanced");
        journal.set_step(next);
        journal.persist(ctx, mi).await?;
    }
}

fn cluster_step(result: Result<Ensure, ArmError>, findings: &mut Findings) -> bool {
    match result {
        Ok(Ensure::Done) => true,
        Ok(Ensure::InProgress(wait, message)) => {
            findings.progress.provider = Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", message));
            findings.wait(wait);
            false
        }
        Err(error) => {
            findings.progress.provider = Some(findings.error(error));
            false
        }
    }
}

/// Removes OSM's enrolment (label and annotations) from the installation's namespaces, whoever set it.
async fn strip_osm_enrolment(mi: &MeshInstallation, ctx: &Context) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let body = json!({"metadata": {
        "labels": {labels::OSM_MONITORED_BY: null},
        "annotations": {labels::OSM_SIDECAR_INJECTION: null, labels::OSM_METRICS: null},
    }});
    for ns in &mi.spec.namespaces {
        match api.patch(&ns.name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(Error::kube(format!("removing OSM enrolment from Namespace/{}", ns.name))(error)),
        }
    }
    Ok(())
}

/// The apps in dependency order: an app comes after every app it sends traffic to (per
/// `spec.traffic.access`), ties in spec order. Cycles fall back to spec order.
pub fn dependency_order(spec: &mesh_crds::MeshInstallationSpec) -> Vec<&mesh_crds::AppSpec> {
    let apps: Vec<&mesh_crds::AppSpec> = spec.apps.iter().collect();
    let service_app = |namespace: &str, service: &str| {
        apps.iter().position(|a| a.namespace == namespace && a.service_names().contains(&service))
    };
    // depends[i] = apps i calls.
    let mut depends: Vec<Vec<usize>> = vec![Vec::new(); apps.len()];
    for policy in &spec.traffic.access {
        let Some(destination) = service_app(&policy.namespace, &policy.destination) else { continue };
        for source in &policy.sources {
            for (i, app) in apps.iter().enumerate() {
                let account = app.name.as_str();
                if app.namespace == source.namespace && account == source.name && i != destination {
                    depends[i].push(destination);
                }
            }
        }
    }
    let mut placed = vec![false; apps.len()];
    let mut order = Vec::new();
    while order.len() < apps.len() {
        let next = (0..apps.len())
            .find(|&i| !placed[i] && depends[i].iter().all(|&d| placed[d]))
            .or_else(|| (0..apps.len()).find(|&i| !placed[i]));
        let Some(i) = next else { break };
        placed[i] = true;
        order.push(apps[i]);
    }
    order
}

/// Restarts the workloads one at a time in dependency order, each after the previous one has
/// rolled out; then the workloads in the namespaces that mesh-operator does not manage. Returns
/// what it is waiting for, or None when every workload was restarted.
async fn restart_in_order(mi: &MeshInstallation, ctx: &Context, revision: &str) -> Result<Option<String>> {
    let body = json!({"spec": {"template": {"metadata": {"annotations": {MIGRATED_ANNOTATION: revision}}}}});
    let params = PatchParams::default();
    for app in dependency_order(&mi.spec) {
        let (annotated, rolled) = match app.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &app.namespace);
                let Some(live) = api
                    .get_opt(&app.name)
                    .await
                    .map_err(Error::kube(format!("reading Deployment {}/{}", app.namespace, app.name)))?
                else {
                    continue;
                };
                let annotated = template_annotation(live.spec.as_ref().map(|s| &s.template)) == Some(revision);
                if !annotated {
                    api.patch(&app.name, &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting Deployment {}/{}", app.namespace, app.name)))?;
                    return Ok(Some(format!("restarted Deployment {}/{}", app.namespace, app.name)));
                }
                let status = live.status.unwrap_or_default();
                let wanted = live.spec.and_then(|s| s.replicas).unwrap_or(1);
                let rolled = status.observed_generation >= live.metadata.generation
                    && status.updated_replicas.unwrap_or(0) >= wanted
                    && status.available_replicas.unwrap_or(0) >= wanted
                    && status.replicas.unwrap_or(0) == wanted;
                (annotated, rolled)
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &app.namespace);
                let Some(live) = api
                    .get_opt(&app.name)
                    .await
                    .map_err(Error::kube(format!("reading StatefulSet {}/{}", app.namespace, app.name)))?
                else {
                    continue;
                };
                let annotated = template_annotation(live.spec.as_ref().map(|s| &s.template)) == Some(revision);
                if !annotated {
                    api.patch(&app.name, &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting StatefulSet {}/{}", app.namespace, app.name)))?;
                    return Ok(Some(format!("restarted StatefulSet {}/{}", app.namespace, app.name)));
                }
                let status = live.status.unwrap_or_default();
                let wanted = live.spec.and_then(|s| s.replicas).unwrap_or(1);
                let rolled = status.observed_generation >= live.metadata.generation
                    && status.updated_replicas.unwrap_or(0) >= wanted
                    && status.ready_replicas.unwrap_or(0) >= wanted;
                (annotated, rolled)
            }
        };
        if annotated && !rolled {
            return Ok(Some(format!("waiting for {}/{} to roll out", app.namespace, app.name)));
        }
    }
    // Workloads in the enrolled namespaces that are not ours.
    for ns in &mi.spec.namespaces {
        macro_rules! restart_foreign {
            ($kind:ty) => {{
                let api: Api<$kind> = Api::namespaced(ctx.client.clone(), &ns.name);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(Error::kube(format!("listing workloads in {}", ns.name)))?;
                for workload in list.items {
                    let ours = workload.labels().contains_key(labels::INSTALLATION);
                    let annotated = template_annotation(workload.spec.as_ref().map(|s| &s.template)) == Some(revision);
                    if ours || annotated {
                        continue;
                    }
                    api.patch(&workload.name_any(), &params, &Patch::Merge(&body))
                        .await
                        .map_err(Error::kube(format!("restarting {}/{}", ns.name, workload.name_any())))?;
                }
            }};
        }
        restart_foreign!(Deployment);
        restart_foreign!(StatefulSet);
        restart_foreign!(DaemonSet);
    }
    Ok(None)
}

fn template_annotation(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Option<&str> {
    template?.metadata.as_ref()?.annotations.as_ref()?.get(MIGRATED_ANNOTATION).map(String::as_str)
}

/// Deletes the webhooks the AKS OSM add-on leaves behind (they block pod creation once nothing
/// serves them).
pub async fn delete_addon_webhooks(ctx: &Context) -> Result<()> {
    super::teardown::delete_named::<MutatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_WEBHOOK).await?;
    super::teardown::delete_named::<ValidatingWebhookConfiguration>(ctx, osm::names::AKS_ADDON_VALIDATOR).await
}

/// Deletes the 10 OSM/SMI CRDs by their correct names.
pub async fn delete_osm_crds(ctx: &Context) -> Result<()> {
    for name in mesh_crds::generate::osm_crd_names() {
        super::teardown::delete_named::<CustomResourceDefinition>(ctx, &name).await?;
    }
    Ok(())
}

async fn images(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    azure: &AzureSpec,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    let Some(registry) = &mi.spec.registry else { return Ok(()) };
    let fatal_key = format!("{}/images", mi.name_any());
    if let Some(fatal) = ctx.azure.fatal_recall(&fatal_key, mi.metadata.generation) {
        findings.progress.images = Some(fatal.condition);
        findings.progress.degraded = Some(fatal.degraded);
        findings.wait(fatal.until.saturating_duration_since(Instant::now()));
        return Ok(());
    }
    let registry_ref = RegistryRef::from_spec(azure, registry);
    let login = registry.login_server();
    let reference = |target: &str| format!("{login}/{target}");
    let pending: Vec<&mesh_crds::ImageImport> =
        registry.images.iter().filter(|i| !journal.status.imported_images.contains(&reference(&i.target))).collect();

    let shared =
        tokio::sync::Mutex::new(std::mem::replace(journal, Journal { status: Default::default(), dirty: false }));
    type Boxed<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ImportResult>> + Send + 'a>>;
    let futures: Vec<Boxed<'_>> = pending
        .into_iter()
        .map(|image| {
            Box::pin(import_one(
                ctx,
                mi,
                client,
                &registry_ref,
                registry.mode,
                image,
                reference(&image.target),
                &shared,
            )) as Boxed<'_>
        })
        .collect();
    let results: Vec<ImportResult> = futures::stream::iter(futures)
        .buffer_unordered(IMPORT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    *journal = shared.into_inner();

    let mut importing = Vec::new();
    let mut first_error: Option<ArmError> = None;
    for (target, result) in results {
        match result {
            Ok(Some(wait)) => {
                importing.push(target);
                findings.wait(wait);
            }
            Ok(None) => {}
            Err(error) => {
                if first_error.is_none()
                    || (!error.is_retryable() && first_error.as_ref().is_some_and(|e| e.is_retryable()))
                {
                    first_error = Some(error);
                } else {
                    findings.errors.push(error);
                }
            }
        }
    }
    let done: Vec<&mesh_crds::ImageImport> =
        registry.images.iter().filter(|i| journal.status.imported_images.contains(&reference(&i.target))).collect();
    for image in &done {
        findings.outcome.image_overrides.insert(image.source.clone(), reference(&image.target));
    }
    let total = registry.images.len();
    findings.progress.images = Some(if let Some(error) = first_error {
        let fatal = !error.is_retryable();
        let mut condition = findings.error(error);
        condition.type_ = ct::IMAGES_IMPORTED;
        condition.message = format!("{} of {total} image(s) imported; {}", done.len(), condition.message);
        if fatal && let Some(degraded) = &findings.progress.degraded {
            ctx.azure.fatal_remember(&fatal_key, mi.metadata.generation, &condition, degraded);
        }
        condition
    } else if !importing.is_empty() {
        importing.sort();
        ConditionUpdate::not_ok(
            ct::IMAGES_IMPORTED,
            "Importing",
            format!("{} of {total} image(s) imported into {login}; importing {}", done.len(), importing.join(", ")),
        )
    } else if total == 0 {
        ConditionUpdate::ok(ct::IMAGES_IMPORTED, "NothingToImport", "spec.registry lists no images")
    } else {
        ConditionUpdate::ok(ct::IMAGES_IMPORTED, "Imported", format!("{total} image(s) imported into {login}"))
    });
    Ok(())
}

type ImportResult = (String, Result<Option<Duration>, ArmError>);

/// Polls a stored import or starts one; records the outcome in the journal at once.
#[allow(clippy::too_many_arguments)]
async fn import_one(
    ctx: &Context,
    mi: &MeshInstallation,
    client: &ArmClient,
    registry_ref: &RegistryRef,
    mode: mesh_crds::ImportMode,
    image: &mesh_crds::ImageImport,
    target_ref: String,
    shared: &tokio::sync::Mutex<Journal>,
) -> Result<ImportResult> {
    let op_name = format!("{}{}", operation::IMPORT_PREFIX, image.target);
    let what = format!("importing {} as {target_ref}", image.source);
    let stored = shared.lock().await.op(&op_name);
    let result = if let Some(stored) = stored {
        let kind = PollingKind::parse(&stored.polling_kind).unwrap_or(PollingKind::Location);
        match client.poll(&stored.polling_url, kind, &what, Target::Registry).await {
            Ok(PollOutcome::Running(wait)) => Ok(Some(wait)),
            Ok(PollOutcome::Succeeded) => {
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                journal.imported(&target_ref);
                journal.persist(ctx, mi).await?;
                Ok(None)
            }
            Ok(PollOutcome::Failed(error)) => {
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                journal.persist(ctx, mi).await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    } else {
        match acr::import(client, registry_ref, image, mode).await {
            Ok(WriteOutcome::Started(started)) => {
                let mut journal = shared.lock().await;
                journal.start(&op_name, &registry_ref.id(), &started);
                journal.persist(ctx, mi).await?;
                Ok(Some(started.retry_after.unwrap_or(Duration::from_secs(1))))
            }
            Ok(_) => {
                let mut journal = shared.lock().await;
                journal.imported(&target_ref);
                journal.persist(ctx, mi).await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    };
    Ok((image.target.clone(), result))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_restart_after_the_apps_they_call() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore-istio.yaml"))
            .expect("sample");
        let mi = MeshInstallation::from_yaml(&text).expect("sample parses");
        let order: Vec<&str> = dependency_order(&mi.spec).iter().map(|a| a.name.as_str()).collect();
        let at = |name: &str| order.iter().position(|n| *n == name).expect(name);
        assert!(at("mysql") < at("bookwarehouse"), "{order:?}");
        assert!(at("bookwarehouse") < at("bookstore") && at("bookwarehouse") < at("bookstore-v2"), "{order:?}");
        assert!(at("bookstore") < at("bookbuyer") && at("bookstore-v2") < at("bookbuyer"), "{order:?}");
        assert_eq!(order.len(), mi.spec.apps.len());
    }

    #[test]
    fn a_forbidden_cluster_update_names_the_aks_role() {
        let error = ArmError::Response {
            operation: "enabling the AKS OSM add-on".into(),
            target: Target::ManagedCluster,
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "no write permission".into(),
            retry_after: None,
        };
        let condition = error_condition(ct::MESH_READY, &error);
        assert_eq!(condition.reason, "AuthorizationFailed");
        assert!(condition.message.contains("Azure Kubernetes Service Contributor"), "{}", condition.message);
    }
}
