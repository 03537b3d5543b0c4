//! Installations are independent: what one tears down must not break another. Some objects are
//! declared by several installations at once — the ten OSM/SMI CRDs, a mesh control plane two
//! installations describe identically, a namespace both enrol. Exactly one installation owns such
//! an object (its label); the others use it as it is (the apply layer's shared case). On
//! teardown, an object another live installation still declares is **handed over** to it instead
//! of being deleted, so the last installation that declares an object is the one that removes it:
//! reference counting by what the other installations' specs declare, read anew on every pass.
//!
//! Installations being deleted themselves do not count (two deleted at once each delete what
//! only they declare; nothing is handed back and forth).

use std::collections::BTreeMap;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, ResourceExt};
use mesh_crds::{MeshInstallation, MeshInstallationSpec, MeshProvider};
use mesh_provisioner::apply::Applier;
use mesh_provisioner::desired::Component;
use mesh_provisioner::{labels, osm};

use crate::context::Context;
use crate::error::{Error, Result};
use mesh_provisioner::plan::kinds;
use mesh_provisioner::plan::{self, PlanInputs};

type Identity = (String, String, Option<String>, String);

fn identity(resource: &ApiResource, namespace: Option<&str>, name: &str) -> Identity {
    (resource.group.clone(), resource.kind.clone(), namespace.map(str::to_string), name.to_string())
}

/// What the other live installations declare, and which of them declares it.
#[derive(Debug, Default)]
pub struct Claims {
    objects: BTreeMap<Identity, String>,
    meshes: Vec<(String, String)>,
}

impl Claims {
    /// The claims of every installation but `me` that is not being deleted.
    pub async fn of_others(ctx: &Context, me: &str) -> Result<Claims> {
        let api: Api<MeshInstallation> = Api::all(ctx.client.clone());
        let listed = api.list(&ListParams::default()).await.map_err(Error::kube("listing MeshInstallations"))?;
        let mut claims = Claims::default();
        for other in listed.items {
            let name = other.name_any();
            if name == me || other.metadata.deletion_timestamp.is_some() {
                continue;
            }
            claims.add(&name, &other.spec);
        }
        Ok(claims)
    }

    /// Adds what `installation` declares: its built objects (which objects exist does not depend
    /// on observed inputs) and, for a self-hosted mesh, the root CA Secret created beside them.
    pub fn add(&mut self, installation: &str, spec: &MeshInstallationSpec) {
        let Ok(built) = plan::plan(installation, spec, &PlanInputs::default()) else {
            // A spec that does not build declares nothing it could still use.
            return;
        };
        for desired in &built.objects {
            self.objects
                .entry(identity(&desired.resource, desired.namespace(), desired.name()))
                .or_insert_with(|| installation.to_string());
        }
        if spec.mesh.provider == MeshProvider::SelfHosted {
            let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
            let namespace = spec.mesh.control_plane_namespace();
            self.objects
                .entry(identity(&secret, Some(namespace), osm::names::CA_BUNDLE_SECRET))
                .or_insert_with(|| installation.to_string());
        }
        self.meshes.push((spec.mesh.name.clone(), spec.mesh.control_plane_namespace().to_string()));
    }

    /// The other installation that declares this object, if any.
    pub fn claimant(&self, resource: &ApiResource, namespace: Option<&str>, name: &str) -> Option<&str> {
        self.objects.get(&identity(resource, namespace, name)).map(String::as_str)
    }

    /// Whether another installation declares namespace `name` (enrolled or created).
    pub fn namespace_claimant(&self, name: &str) -> Option<&str> {
        self.claimant(&kinds::namespace(), None, name)
    }

    /// Whether another installation runs the same mesh (name and control-plane namespace), whose
    /// run-time objects (the webhooks OSM registers) must then stay.
    pub fn shares_mesh(&self, spec: &MeshInstallationSpec) -> bool {
        let mine = (spec.mesh.name.clone(), spec.mesh.control_plane_namespace().to_string());
        self.meshes.contains(&mine)
    }

    /// Hands every object of our `component` that another installation declares over to it;
    /// returns how many. Listed from the API server, as teardown does.
    pub async fn hand_over(&self, applier: &Applier, installation: &str, component: Component) -> Result<usize> {
        if self.objects.is_empty() {
            return Ok(0);
        }
        let selector =
            format!("{},{}={}", labels::installation_selector(installation), labels::COMPONENT, component.as_str());
        let mut handed = 0;
        for kind in kinds::kinds_of(component) {
            let api: Api<DynamicObject> = Api::all_with(applier.client().clone(), &kind.resource);
            let listed = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list.items,
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(error) => return Err(Error::kube(format!("listing our {}s", kind.resource.kind))(error)),
            };
            for object in listed.iter().filter(|o| o.metadata.deletion_timestamp.is_none()) {
                let namespace = object.namespace();
                if let Some(to) = self.claimant(&kind.resource, namespace.as_deref(), &object.name_any()) {
                    applier.hand_over(component, &kind.resource, namespace.as_deref(), &object.name_any(), to).await?;
                    handed += 1;
                }
            }
        }
        Ok(handed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> MeshInstallation {
        MeshInstallation::from_yaml(text).expect("sample")
    }

    #[test]
    fn another_bookstore_claims_the_crds_the_mesh_and_its_namespaces() {
        let bookstore = sample(crate::manifests::rbac::SAMPLES[0].1);
        let mut claims = Claims::default();
        claims.add("other", &bookstore.spec);
        let crd = ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&());
        for name in mesh_crds::generate::osm_crd_names() {
            assert_eq!(claims.claimant(&crd, None, &name), Some("other"), "{name}");
        }
        assert_eq!(claims.namespace_claimant("bookstore"), Some("other"));
        assert_eq!(claims.namespace_claimant("osm-system"), Some("other"));
        let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        assert_eq!(claims.claimant(&secret, Some("osm-system"), osm::names::CA_BUNDLE_SECRET), Some("other"));
        assert!(claims.shares_mesh(&bookstore.spec));
        assert_eq!(claims.namespace_claimant("default"), None);
    }

    #[test]
    fn an_istio_installation_does_not_share_the_osm_mesh() {
        let istio = sample(crate::manifests::rbac::SAMPLES[2].1);
        let bookstore = sample(crate::manifests::rbac::SAMPLES[0].1);
        let mut claims = Claims::default();
        claims.add("istio", &istio.spec);
        assert!(!claims.shares_mesh(&bookstore.spec));
    }
}
