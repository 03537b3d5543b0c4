//! What pruning must leave although this reconcile did not render it: the stored root CA (created
//! once, never re-rendered) and what a translation source produced before it failed. Pruning is
//! steered by this explicit set of live objects, never by stand-in desired objects.

use std::collections::BTreeSet;

use kube::api::ApiResource;

use super::cache::kind_key;

/// Live objects pruning keeps, by kind, namespace and name.
#[derive(Clone, Debug, Default)]
pub struct KeepSet(BTreeSet<(String, Option<String>, String)>);

impl KeepSet {
    /// Keeps one live object.
    pub fn keep(&mut self, resource: &ApiResource, namespace: Option<&str>, name: &str) {
        self.0.insert((kind_key(resource), namespace.map(str::to_string), name.to_string()));
    }

    /// Whether the object is kept.
    pub fn contains(&self, resource: &ApiResource, namespace: Option<&str>, name: &str) -> bool {
        self.0.contains(&(kind_key(resource), namespace.map(str::to_string), name.to_string()))
    }

    /// How many objects are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
