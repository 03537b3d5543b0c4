//! The only part of the provisioner that writes to the API server: server-side apply with a field
//! manager per component, pruning of objects no longer desired, and deletion for teardown.

pub mod cache;
pub mod compare;
mod direct;
mod keep;
pub mod served;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

pub use cache::{ManagedCache, ManagedKind};
pub use direct::Create;
pub use keep::KeepSet;

use crate::desired::{Component, Desired, ExistingPolicy};
use crate::labels;

/// Most requests [`Applier::apply_many`] has in flight at once: enough to hide the round trips
/// of a plan's ~100 objects, few enough not to crowd out other clients of the API server (its
/// default max-in-flight is 400 mutating requests).
pub const CONCURRENT_APPLIES: usize = 8;

/// What applying one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// It already matched: nothing was sent.
    Unchanged,
    /// It was created or changed.
    Applied,
    /// A same-named object made by someone else is used as it is.
    UsedExisting,
}

/// Errors of the apply layer; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The object exists and belongs to someone else.
    #[error(
        "{object} already exists and was not created by this installation{owner}; it is left untouched — delete or rename it, or remove it from the spec"
    )]
    Conflict {
        /// `Kind/namespace/name`.
        object: String,
        /// `" (it belongs to installation X)"` when another installation owns it.
        owner: String,
    },
    /// An API call failed.
    #[error("{action} {object}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// `Kind/namespace/name`.
        object: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
}

impl ApplyError {
    /// Whether retrying may help (API unavailable, conflicts on write), as opposed to a problem a person must fix.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApplyError::Conflict { .. })
    }
}

fn api_error(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> ApplyError {
    move |source| ApplyError::Api { action, object, source: Box::new(source) }
}

fn reference(resource: &ApiResource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{}/{}/{}", resource.kind, ns, name),
        None => format!("{}/{}", resource.kind, name),
    }
}

/// `object` without what says who owns it (the installation label, the created-by annotation).
fn without_ownership(object: &serde_json::Value) -> serde_json::Value {
    let mut object = object.clone();
    if let Some(labels) = object.pointer_mut("/metadata/labels").and_then(|l| l.as_object_mut()) {
        labels.remove(labels::INSTALLATION);
    }
    if let Some(annotations) = object.pointer_mut("/metadata/annotations").and_then(|a| a.as_object_mut()) {
        annotations.remove(crate::topology::CREATED_BY);
    }
    object
}

/// Applies, prunes and deletes the objects of one installation.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    cache: ManagedCache,
    installation: String,
    writes: Arc<AtomicU64>,
}

impl Applier {
    /// An applier for `installation`.
    pub fn new(client: Client, cache: ManagedCache, installation: &str) -> Self {
        Applier { client, cache, installation: installation.to_string(), writes: Arc::new(AtomicU64::new(0)) }
    }

    /// Write requests this applier sent.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    fn owner_of(object: &DynamicObject) -> Option<&str> {
        object.metadata.labels.as_ref().and_then(|l| l.get(labels::INSTALLATION)).map(String::as_str)
    }

    /// Makes `desired` exist with our fields, writing only when something differs.
    pub async fn apply(&self, desired: &Desired) -> Result<ApplyOutcome, ApplyError> {
        let object_ref = desired.reference();
        let wanted = compare::comparable(&serde_json::to_value(&desired.object).unwrap_or_default());
        let live = match self.cache.get(&desired.resource, desired.namespace(), desired.name()) {
            Some(cached) => Some((*cached).clone()),
            None => self.read_live(desired, &object_ref).await?,
        };
        if let Some(live) = &live {
            let ours = Self::owner_of(live) == Some(self.installation.as_str());
            if !ours {
                match desired.existing {
                    ExistingPolicy::UseAsIs => return Ok(ApplyOutcome::UsedExisting),
                    ExistingPolicy::Merge if Self::owner_of(live).is_none() => {}
                    // Another installation owns it and it already is exactly what we want (a mesh
                    // or a namespace enrolment two installations share): use it, write nothing.
                    // Its owner hands it over to us when it is deleted (see `hand_over`).
                    _ if Self::owner_of(live).is_some()
                        && compare::is_subset(
                            &without_ownership(&wanted),
                            &serde_json::to_value(live).unwrap_or_default(),
                        ) =>
                    {
                        return Ok(ApplyOutcome::UsedExisting);
                    }
                    _ => {
                        return Err(ApplyError::Conflict {
                            object: object_ref,
                            owner: Self::owner_of(live)
                                .map(|o| format!(" (it belongs to installation {o})"))
                                .unwrap_or_default(),
                        });
                    }
                }
            }
            let have = serde_json::to_value(live).unwrap_or_default();
            if compare::is_subset(&wanted, &have) {
                return Ok(ApplyOutcome::Unchanged);
            }
            if let Some(difference) = compare::first_difference(&wanted, &have) {
                tracing::info!(object = %object_ref, "updating: {difference}");
            }
        }
        let params = PatchParams::apply(&labels::field_manager(desired.component.as_str())).force();
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.api(&desired.resource, desired.namespace())
            .patch(desired.name(), &params, &Patch::Apply(&desired.object))
            .await
            .map_err(api_error("applying", object_ref))?;
        Ok(ApplyOutcome::Applied)
    }

    /// Applies `objects` (one phase of a plan: none depends on another of the same phase) with at
    /// most [`CONCURRENT_APPLIES`] requests in flight, kind by kind in the order each kind first
    /// appears (so a kind that must come first, a webhook configuration before what it admits,
    /// still does). The results are in the order of `objects`.
    pub async fn apply_many(&self, objects: &[&Desired]) -> Vec<Result<ApplyOutcome, ApplyError>> {
        use futures::{FutureExt, StreamExt};
        let mut kinds: Vec<(&str, &str)> = Vec::new();
        for desired in objects {
            let kind = (desired.resource.group.as_str(), desired.resource.kind.as_str());
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let mut results: Vec<Option<Result<ApplyOutcome, ApplyError>>> = objects.iter().map(|_| None).collect();
        for kind in kinds {
            // Boxed (`BoxFuture` is `Send`): a stream of futures that borrow `self` is otherwise
            // not `Send` for every lifetime, which the controller's task requires.
            let pending: Vec<futures::future::BoxFuture<'_, (usize, Result<ApplyOutcome, ApplyError>)>> = objects
                .iter()
                .enumerate()
                .filter(|(_, d)| (d.resource.group.as_str(), d.resource.kind.as_str()) == kind)
                .map(|(index, desired)| {
                    let desired: &Desired = desired;
                    async move { (index, self.apply(desired).await) }.boxed()
                })
                .collect();
            let applied: Vec<(usize, Result<ApplyOutcome, ApplyError>)> =
                futures::stream::iter(pending).buffer_unordered(CONCURRENT_APPLIES).collect().await;
            for (index, result) in applied {
                results[index] = Some(result);
            }
        }
        results.into_iter().flatten().collect()
    }

    /// Reads the live object of `desired` from the API server. A Secret is read as metadata first,
    /// and in full only when it is ours: the operator never fetches the data of a Secret it did
    /// not create (a spec names Secrets; its author may not be able to read them).
    async fn read_live(&self, desired: &Desired, object_ref: &str) -> Result<Option<DynamicObject>, ApplyError> {
        let api = self.api(&desired.resource, desired.namespace());
        if desired.resource.kind != "Secret" {
            return api.get_opt(desired.name()).await.map_err(api_error("reading", object_ref.to_string()));
        }
        let meta = api.get_metadata_opt(desired.name()).await.map_err(api_error("reading", object_ref.to_string()))?;
        let Some(meta) = meta else { return Ok(None) };
        let live = DynamicObject { types: None, metadata: meta.metadata, data: serde_json::Value::Null };
        if Self::owner_of(&live) != Some(self.installation.as_str()) {
            return Ok(Some(live));
        }
        api.get_opt(desired.name()).await.map_err(api_error("reading", object_ref.to_string()))
    }

    /// Gives up every field our component manager owns on an object (e.g. a namespace leaving the
    /// mesh: its enrolment labels and annotations disappear; the namespace stays).
    pub async fn release(
        &self,
        component: Component,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, ApplyError> {
        let object_ref = reference(resource, namespace, name);
        let api = self.api(resource, namespace);
        if api.get_opt(name).await.map_err(api_error("reading", object_ref.clone()))?.is_none() {
            return Ok(false);
        }
        let empty = json!({"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": name}});
        let params = PatchParams::apply(&labels::field_manager(component.as_str())).force();
        self.writes.fetch_add(1, Ordering::Relaxed);
        api.patch(name, &params, &Patch::Apply(&empty)).await.map_err(api_error("releasing", object_ref))?;
        Ok(true)
    }

    /// Gives an object of ours to installation `to`, which also declares it: it becomes that
    /// installation's (its label), and no longer counts as created by us (so our teardown does
    /// not delete it). Used on teardown instead of deleting what another installation still needs.
    /// A merge patch (an apply would drop every field it leaves out) under `component`'s field
    /// manager, the one both installations apply the object with.
    pub async fn hand_over(
        &self,
        component: Component,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        to: &str,
    ) -> Result<(), ApplyError> {
        let body = json!({"metadata": {
            "labels": {labels::INSTALLATION: to},
            "annotations": {crate::topology::CREATED_BY: null},
        }});
        if self.merge_patch(component.as_str(), resource, namespace, name, &body).await? {
            tracing::info!(object = %reference(resource, namespace, name), to, "handed over to the installation that still needs it");
        }
        Ok(())
    }

    /// Deletes cached objects of `component` of one kind that `desired` no longer contains and
    /// `keep` does not hold. Returns what was deleted. Kinds whose cache is not ready yet are left
    /// for a later pass.
    pub async fn prune(
        &self,
        component: Component,
        kind: &ManagedKind,
        desired: &[Desired],
        keep: &KeepSet,
    ) -> Result<Vec<String>, ApplyError> {
        if !self.cache.is_ready(&kind.resource) {
            return Ok(Vec::new());
        }
        let mut pruned = Vec::new();
        for live in self.cache.owned(&kind.resource, &self.installation, Some(component.as_str())) {
            let name = live.metadata.name.clone().unwrap_or_default();
            let namespace = live.metadata.namespace.clone();
            let still_wanted = desired.iter().any(|d| {
                d.component == component
                    && d.resource.kind == kind.resource.kind
                    && d.resource.group == kind.resource.group
                    && d.name() == name
                    && d.namespace() == namespace.as_deref()
            });
            let kept = keep.contains(&kind.resource, namespace.as_deref(), &name);
            if !still_wanted && !kept && live.metadata.deletion_timestamp.is_none() {
                pruned.push(self.delete(&kind.resource, namespace.as_deref(), &name).await?);
            }
        }
        Ok(pruned.into_iter().flatten().collect())
    }

    /// Deletes one object if it exists; returns its reference when a delete was sent.
    pub async fn delete(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, ApplyError> {
        let object_ref = reference(resource, namespace, name);
        // Its CRD is gone: nothing of the kind exists, and asking would only log a WARN.
        if self.cache.served(resource) == Some(false) {
            return Ok(None);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.api(resource, namespace).delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(Some(object_ref)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(source) => Err(api_error("deleting", object_ref)(source)),
        }
    }

    /// Teardown: deletes every object of this installation's `component` of one kind, listing the
    /// API server (not the cache) so nothing is missed. Returns how many are still present
    /// (being deleted), so the caller can wait.
    pub async fn delete_all(&self, component: Component, resource: &ApiResource) -> Result<usize, ApplyError> {
        let selector = format!(
            "{},{}={}",
            labels::installation_selector(&self.installation),
            labels::COMPONENT,
            component.as_str()
        );
        // The kind is not served (its CRD is gone): nothing of it can remain.
        if self.cache.served(resource) == Some(false) {
            return Ok(0);
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            // The kind is not served (its CRD is gone): nothing of it can remain.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(0),
            Err(source) => return Err(api_error("listing", format!("{} with {selector}", resource.kind))(source)),
        };
        let remaining = listed.len();
        if remaining > 0 {
            let names: Vec<String> = listed.iter().map(|o| o.metadata.name.clone().unwrap_or_default()).collect();
            tracing::info!(kind = %resource.kind, "teardown: waiting for {} to go: {names:?}", remaining);
        }
        for object in listed.iter().filter(|o| o.metadata.deletion_timestamp.is_none()) {
            let name = object.metadata.name.clone().unwrap_or_default();
            self.delete(resource, object.metadata.namespace.as_deref(), &name).await?;
        }
        Ok(remaining)
    }

    /// The client, for reads the reconciler makes itself.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The cache of managed objects.
    pub fn cache(&self) -> &ManagedCache {
        &self.cache
    }
}
