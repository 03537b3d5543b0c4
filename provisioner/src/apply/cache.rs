//! Watch-fed caches of every object mesh-operator manages (selected by the managed-by label), so
//! reconciles compare against memory instead of reading the API server, and so changes to managed
//! objects trigger a reconcile of their installation.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

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

/// Caches of managed objects, one per kind.
#[derive(Clone, Default)]
pub struct ManagedCache {
    stores: BTreeMap<String, (ManagedKind, Store<DynamicObject>)>,
}

/// Name of the installation an object belongs to (from its label).
pub fn installation_of(object: &DynamicObject) -> Option<String> {
    object.metadata.labels.as_ref().and_then(|l| l.get(labels::INSTALLATION)).cloned()
}

impl ManagedCache {
    /// Starts one watch per kind. The returned stream yields the installation names whose objects
    /// changed; it also drives the watches, so it must be polled (the controller does).
    pub fn start(client: &Client, kinds: &[ManagedKind]) -> (Self, impl Stream<Item = String> + Send + 'static) {
        let mut stores = BTreeMap::new();
        let mut streams = Vec::new();
        let config = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE));
        for kind in kinds {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
            let writer = reflector::store::Writer::new(kind.resource.clone());
            let store = writer.as_reader();
            let stream = reflector::reflector(writer, watcher(api, config.clone()))
                .default_backoff()
                .touched_objects()
                .filter_map(|event| async move { event.ok().as_ref().and_then(installation_of) })
                .boxed();
            streams.push(stream);
            stores.insert(kind_key(&kind.resource), (kind.clone(), store));
        }
        (ManagedCache { stores }, futures::stream::select_all(streams))
    }

    /// Every cached kind.
    pub fn kinds(&self) -> impl Iterator<Item = &ManagedKind> {
        self.stores.values().map(|(kind, _)| kind)
    }

    /// Whether the kind's watch has listed at least once (its cache can be trusted).
    pub fn is_ready(&self, resource: &ApiResource) -> bool {
        self.stores
            .get(&kind_key(resource))
            .is_some_and(|(_, store)| store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok()))
    }

    /// The cached object, if the kind is cached.
    pub fn get(&self, resource: &ApiResource, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        let (_, store) = self.stores.get(&kind_key(resource))?;
        let mut key = ObjectRef::<DynamicObject>::new_with(name, resource.clone());
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        store.get(&key)
    }

    /// Cached objects of `installation` (optionally of one component) of one kind.
    pub fn owned(
        &self,
        resource: &ApiResource,
        installation: &str,
        component: Option<&str>,
    ) -> Vec<Arc<DynamicObject>> {
        let Some((_, store)) = self.stores.get(&kind_key(resource)) else {
            return Vec::new();
        };
        store.state_filter(|object| {
            let labels = object.metadata.labels.as_ref();
            let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
            label(labels::INSTALLATION) == Some(installation)
                && component.is_none_or(|c| label(labels::COMPONENT) == Some(c))
        })
    }

    /// Every cached object of one kind with the managed-by label, across installations.
    pub fn all(&self, resource: &ApiResource) -> Vec<Arc<DynamicObject>> {
        self.stores.get(&kind_key(resource)).map(|(_, store)| store.state()).unwrap_or_default()
    }
}
