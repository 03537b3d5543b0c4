//! Writes that are not "make this desired object exist": fields the operator sets on objects it
//! does not own (a rolling-restart annotation, the scrape annotations `osm metrics enable` puts on
//! meshed pods, OSM's enrolment removed from a namespace, the finalizers of a stuck CRD), records
//! created once (the MeshConfig seed, the import ledger), and deletes by name
//! that report whether the object is gone. Each names its field manager and is counted in
//! [`Applier::writes`] like every other write, so the reconciler never writes past this layer.

use std::sync::atomic::Ordering;

use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};

use super::{Applier, ApplyError, api_error, reference};
use crate::desired::Component;
use crate::labels;

impl Applier {
    /// The installation this applier writes for.
    pub fn installation(&self) -> &str {
        &self.installation
    }

    /// JSON merge patch of `body` under field manager `mesh-operator/<manager>`. False when the
    /// object does not exist (nothing is patched then).
    pub async fn merge_patch(
        &self,
        manager: &str,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<bool, ApplyError> {
        let params = PatchParams { field_manager: Some(labels::field_manager(manager)), ..Default::default() };
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.api(resource, namespace).patch(name, &params, &Patch::Merge(body)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(source) => Err(api_error("patching", reference(resource, namespace, name))(source)),
        }
    }

    /// Server-side applies exactly `body` (a partial object) under `component`'s field manager,
    /// forcing: fields the manager set before and `body` leaves out are given up.
    pub async fn apply_fields(
        &self,
        component: Component,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), ApplyError> {
        let params = PatchParams::apply(&labels::field_manager(component.as_str())).force();
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.api(resource, namespace)
            .patch(name, &params, &Patch::Apply(body))
            .await
            .map_err(api_error("applying", reference(resource, namespace, name)))?;
        Ok(())
    }

    /// Creates `object` under field manager `mesh-operator/<manager>` (`how` says with which
    /// request). False when it exists already (it is left as it is).
    pub async fn create(
        &self,
        how: Create,
        manager: &str,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: &DynamicObject,
    ) -> Result<bool, ApplyError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let manager = labels::field_manager(manager);
        let api = self.api(resource, namespace);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let written = match how {
            Create::Post => {
                api.create(&PostParams { field_manager: Some(manager), ..Default::default() }, object).await.map(drop)
            }
            Create::ApplyIfAbsent => {
                api.patch(&name, &PatchParams::apply(&manager), &Patch::Apply(object)).await.map(drop)
            }
        };
        match written {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(api_error("creating", reference(resource, namespace, name.as_str()))(source)),
        }
    }

    /// Deletes one object by name, whoever made it (the caller decided it must go). True when it
    /// is gone, false while it is still being deleted (finalizers).
    pub async fn delete_named(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, ApplyError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.api(resource, namespace).delete(name, &DeleteParams::default()).await {
            Ok(deleted) => Ok(deleted.is_right()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
            Err(source) => Err(api_error("deleting", reference(resource, namespace, name))(source)),
        }
    }
}

/// The request [`Applier::create`] creates a record with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// A create (POST): refused (409) when the object exists.
    Post,
    /// A server-side apply that does not force, of an object the caller has just read as absent
    /// (the MeshConfig seed). kube-apiserver holds a POST of a custom resource ~2 s while its CRD
    /// is new (1.34, measured on the local control plane: 2.0 s for the first seconds after
    /// Established, where an apply of the same object takes 20 ms), and the seed is on the mesh's
    /// critical path. Should the object have appeared in between, no value of it changes: a field
    /// another manager set otherwise is a conflict (409), and then it is left as it is; only
    /// fields it lacks are set.
    ApplyIfAbsent,
}
