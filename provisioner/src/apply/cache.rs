//! Watch-fed caches of every object mesh-operator manages (selected by the managed-by label), so
//! reconciles compare against memory instead of reading the API server, and so changes to managed
//! objects trigger a reconcile of their installation. A kind defined by a CRD is watched only
//! while its CRD exists ([`super::served`]).
//!
//! Every managed object of every installation is held here, so the cache keeps each object's
//! body (all but apiVersion, kind and metadata) as its compact JSON text and rebuilds the whole
//! object when a reconcile reads it ([`ManagedCache::get`], [`ManagedCache::owned`]). A
//! `serde_json::Value` tree takes several times its text (every JSON object is a B-tree whose
//! nodes are allocated whole): with 1,000 enrolled namespaces (2,806 cached objects) the
//! operator's watch caches held 16.6 MiB of heap with trees, 9.4 MiB with text (heaptrack, the
//! `make bench` footprint), and a reconcile reads only its own installation's objects.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::{FutureExt, Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::served::{self, ServedKinds};
use crate::labels;

/// A kind the operator writes.
#[derive(Clone, Debug)]
pub struct ManagedKind {
    /// Its API resource.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

/// Key of a kind in the cache: `group/version/Kind`.
pub fn kind_key(resource: &ApiResource) -> String {
    format!("{}/{}/{}", resource.group, resource.version, resource.kind)
}

type Stores = Arc<RwLock<BTreeMap<String, Store<DynamicObject>>>>;

/// Caches of managed objects, one per kind that is served.
#[derive(Clone, Default)]
pub struct ManagedCache {
    kinds: Arc<Vec<ManagedKind>>,
    stores: Stores,
    served: ServedKinds,
}

/// Name of the installation an object belongs to (from its label).
pub fn installation_of(object: &DynamicObject) -> Option<String> {
    object.metadata.labels.as_ref().and_then(|l| l.get(labels::INSTALLATION)).cloned()
}

impl ManagedCache {
    /// Starts one watch per served kind (a CRD kind's once its CRD is Established). The returned
    /// stream yields the installation names whose objects changed; it also drives the watches,
    /// so it must be polled (the controller does).
    pub fn start(client: &Client, kinds: &[ManagedKind]) -> (Self, impl Stream<Item = String> + Send + 'static) {
        let stores: Stores = Arc::default();
        let config = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE));
        let watch_client = client.clone();
        let started = stores.clone();
        let start = move |resource: &ApiResource| {
            let api: Api<DynamicObject> = Api::all_with(watch_client.clone(), resource);
            let writer = reflector::store::Writer::new(resource.clone());
            if let Ok(mut stores) = started.write() {
                stores.insert(kind_key(resource), writer.as_reader());
            }
            let types = kube::api::TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() };
            let objects = watcher(api, config.clone()).modify(move |object| {
                // managedFields are often the larger part of an object, and nothing compares them.
                object.metadata.managed_fields = None;
                // The items of a list carry no apiVersion and kind (watch events do): without them
                // every object read from a (re)list would differ from what we want and be rewritten.
                if object.types.is_none() {
                    object.types = Some(types.clone());
                }
                compact(object);
            });
            reflector::reflector(writer, objects)
                .default_backoff()
                .touched_objects()
                .filter_map(|event| async move { event.ok().as_ref().and_then(installation_of) })
                .boxed()
        };
        let stopped = stores.clone();
        let stop = move |resource: &ApiResource| {
            if let Ok(mut stores) = stopped.write() {
                stores.remove(&kind_key(resource));
            }
        };
        let resources: Vec<ApiResource> = kinds.iter().map(|k| k.resource.clone()).collect();
        let (served, changes) = served::while_served(client, &resources, start, stop);
        (ManagedCache { kinds: Arc::new(kinds.to_vec()), stores, served }, changes)
    }

    fn store(&self, resource: &ApiResource) -> Option<Store<DynamicObject>> {
        self.stores.read().ok()?.get(&kind_key(resource)).cloned()
    }

    /// Every kind the cache is for (served or not).
    pub fn kinds(&self) -> impl Iterator<Item = &ManagedKind> {
        self.kinds.iter()
    }

    /// Whether the API server serves the kind now (see [`ServedKinds::served`]).
    pub fn served(&self, resource: &ApiResource) -> Option<bool> {
        self.served.served(resource)
    }

    /// Whether the kind's watch has listed at least once (its cache can be trusted).
    pub fn is_ready(&self, resource: &ApiResource) -> bool {
        self.store(resource).is_some_and(|store| store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()))
    }

    /// The cached object, if the kind is cached.
    pub fn get(&self, resource: &ApiResource, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        let store = self.store(resource)?;
        let mut key = ObjectRef::<DynamicObject>::new_with(name, resource.clone());
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        store.get(&key).map(|object| Arc::new(expand(&object)))
    }

    /// Cached objects of `installation` (optionally of one component) of one kind.
    pub fn owned(
        &self,
        resource: &ApiResource,
        installation: &str,
        component: Option<&str>,
    ) -> Vec<Arc<DynamicObject>> {
        let Some(store) = self.store(resource) else {
            return Vec::new();
        };
        store
            .state_filter(|object| {
                let labels = object.metadata.labels.as_ref();
                let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
                label(labels::INSTALLATION) == Some(installation)
                    && component.is_none_or(|c| label(labels::COMPONENT) == Some(c))
            })
            .into_iter()
            .map(|object| Arc::new(expand(&object)))
            .collect()
    }

    /// How many objects of one kind with the managed-by label are cached, across installations.
    pub fn count(&self, resource: &ApiResource) -> usize {
        self.store(resource).map(|store| store.len()).unwrap_or_default()
    }
}

/// Keeps an object's body as compact JSON text (see the module's header).
fn compact(object: &mut DynamicObject) {
    if !object.data.is_string() {
        let text = serde_json::to_string(&object.data).unwrap_or_default();
        object.data = serde_json::Value::String(text);
    }
}

/// The whole object back from its cached form (see [`compact`]).
fn expand(cached: &DynamicObject) -> DynamicObject {
    let data = match &cached.data {
        // The text is serde_json's own rendering of a Value, so it always parses.
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
        other => other.clone(),
    };
    DynamicObject { types: cached.types.clone(), metadata: cached.metadata.clone(), data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_object_reads_back_whole() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "n", "labels": {"k": "v"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"readyReplicas": 1},
        }))
        .expect("object");
        let mut cached = object.clone();
        compact(&mut cached);
        assert!(cached.data.is_string(), "the body is kept as text");
        compact(&mut cached);
        assert_eq!(serde_json::to_value(expand(&cached)).ok(), serde_json::to_value(&object).ok());
    }
}
