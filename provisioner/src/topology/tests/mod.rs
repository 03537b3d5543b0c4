//! The topology builders render what `osm namespace add`, the bookstore manifests and the SMI
//! objects of the walkthrough would: these tests pin what users and OSM read from them.

mod apps;
mod namespaces;
mod smi;

use mesh_crds::{MeshInstallation, MeshInstallationSpec};
use serde::de::DeserializeOwned;

use crate::desired::Desired;

fn spec(yaml: &str) -> MeshInstallationSpec {
    let text =
        format!("apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {{name: t}}\nspec:\n{yaml}");
    MeshInstallation::from_yaml(&text).expect("spec").spec
}

fn bookstore() -> MeshInstallationSpec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore.yaml");
    MeshInstallation::from_yaml(&std::fs::read_to_string(path).expect("sample")).expect("parse").spec
}

/// The object of `kind` named `name`, as its typed form.
fn find<K: DeserializeOwned>(objects: &[Desired], kind: &str, name: &str) -> K {
    let desired = objects
        .iter()
        .find(|d| d.resource.kind == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", references(objects)));
    serde_json::from_value(serde_json::to_value(&desired.object).expect("json")).expect("typed")
}

fn references(objects: &[Desired]) -> Vec<String> {
    objects.iter().map(Desired::reference).collect()
}
