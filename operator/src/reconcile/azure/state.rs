//! Per-controller memory of the Azure step: ARM clients (one per endpoint, credential and secret,
//! so tokens are cached) and back-off windows, and reading the client secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use mesh_crds::{AzureCredential, AzureSpec};
use mesh_provisioner::azure::aks::ClusterRef;
use mesh_provisioner::azure::{ArmClient, ArmError, Endpoints, client, credential};

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::conditions::ConditionUpdate;

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
pub(super) struct FatalMemo {
    pub(super) generation: Option<i64>,
    pub(super) until: Instant,
    pub(super) condition: ConditionUpdate,
    pub(super) degraded: ConditionUpdate,
}

#[derive(Clone)]
pub(super) struct Memo {
    pub(super) generation: Option<i64>,
    pub(super) until: Instant,
    pub(super) attempts: u32,
    pub(super) outcome: AzureOutcome,
    pub(super) progress: AzureProgress,
}

/// Longest wait remembered, whatever a computation produced.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// `now + wait`, never overflowing: `Instant` arithmetic panics on overflow, and a wait can come
/// from a server's header.
pub(super) fn deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}

impl std::fmt::Debug for AzureState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureState").finish_non_exhaustive()
    }
}

impl AzureState {
    pub(super) fn recall(&self, name: &str, generation: Option<i64>) -> Option<Memo> {
        let memo = self.memo.lock().ok()?;
        memo.get(name).filter(|m| m.generation == generation && Instant::now() < m.until).cloned()
    }

    pub(super) fn attempts(&self, name: &str, generation: Option<i64>, failed: bool) -> u32 {
        let previous = self
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(name).filter(|m| m.generation == generation).map(|m| m.attempts))
            .unwrap_or(0);
        if failed { previous.saturating_add(1) } else { 0 }
    }

    pub(super) fn remember(
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
                    until: deadline(wait),
                    attempts,
                    outcome: outcome.clone(),
                    progress: progress.clone(),
                },
            );
        }
    }

    pub(super) fn fatal_recall(&self, key: &str, generation: Option<i64>) -> Option<FatalMemo> {
        let fatal = self.fatal.lock().ok()?;
        fatal.get(key).filter(|m| m.generation == generation && Instant::now() < m.until).cloned()
    }

    pub(super) fn fatal_remember(
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
                    until: deadline(FATAL_RETRY),
                    condition: condition.clone(),
                    degraded: degraded.clone(),
                },
            );
        }
    }

    pub(super) fn forget(&self, name: &str) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.remove(name);
        }
    }

    /// The ARM client for `spec`, built once per cloud, credential and secret value. Its endpoints
    /// are the cloud's, or the operator's own overrides: never anything from the spec.
    pub(super) async fn client(&self, ctx: &Context, spec: &AzureSpec) -> Result<Arc<ArmClient>, ArmError> {
        if let Some(refused) =
            crate::reconcile::azure_cli::refusal(&spec.credential, crate::reconcile::azure_cli::running_in_cluster())
        {
            return Err(refused);
        }
        if let Some(managed) = &ctx.settings.azure.cluster_id {
            let cluster = ClusterRef::from_spec(spec).id();
            if !cluster.eq_ignore_ascii_case(managed.trim_end_matches('/')) {
                return Err(ArmError::ClusterNotManaged { cluster, managed: managed.clone() });
            }
        }
        let overrides = &ctx.settings.azure.overrides;
        overrides.validate()?;
        let endpoints = Endpoints::resolve(spec.cloud, overrides);
        let secret = match &spec.credential {
            AzureCredential::ClientSecretRef(sp) => Some(read_client_secret(ctx, sp).await?),
            _ => None,
        };
        // The key holds a hash of the secret, never the secret.
        let key = format!(
            "{endpoints:?}|{:?}|{:x}",
            spec.credential,
            mesh_provisioner::topology::fnv1a(secret.as_deref().unwrap_or_default().as_bytes())
        );
        if let Some(found) = self.clients.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(found);
        }
        let transport = client::transport()?;
        let credential = credential::credential(spec, &endpoints, secret, transport.clone())?;
        let built = Arc::new(ArmClient::new(&endpoints, credential, transport)?);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, built.clone());
        }
        Ok(built)
    }
}

/// Reads the client secret from Secret `<operator namespace>/<secretName>`: only there, whatever
/// the spec says (it can name no other namespace), so an installation's author cannot make the
/// operator read a Secret elsewhere.
pub(super) async fn read_client_secret(ctx: &Context, sp: &mesh_crds::ClientSecretRef) -> Result<String, ArmError> {
    let namespace = ctx.settings.operator_namespace.as_str();
    let key = sp.key.clone().unwrap_or_else(|| credential::DEFAULT_SECRET_KEY.to_string());
    let context = format!("spec.azure.credential.clientSecretRef: Secret {namespace}/{}", sp.secret_name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api
        .get_opt(&sp.secret_name)
        .await
        .map_err(|e| ArmError::Config { context: context.clone(), message: format!("cannot be read: {e}") })?
        .ok_or_else(|| ArmError::Config {
            context: context.clone(),
            message: format!("does not exist (credential Secrets are read from the operator's namespace {namespace})"),
        })?;
    let value = secret
        .data
        .and_then(|d| d.get(&key).cloned())
        .ok_or_else(|| ArmError::Config { context: context.clone(), message: format!("has no key {key}") })?;
    String::from_utf8(value.0).map_err(|_| ArmError::Config { context, message: format!("key {key} is not UTF-8") })
}
