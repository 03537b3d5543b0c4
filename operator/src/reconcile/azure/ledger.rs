//! The ACR import ledger: which source each registry tag was imported from by this operator, kept
//! in ConfigMap `mesh-operator-acr-imports` in the operator's namespace, so it outlives the
//! MeshInstallation that imported (a delete + re-apply finds it).
//!
//! Why a ledger: with the default mode `NoForce`, ACR's `importImage` fails whenever the target
//! tag exists ("any existing target tags will fail the operation before any copying begins"),
//! whatever the tag holds, and ARM has no way to read what a tag holds (digests live in the
//! registry's data plane only, and the source's digest in the source registry). So a refused
//! import alone cannot tell a reinstall from a clash. The ledger can: a 409 on a tag the ledger
//! says came from the same source counts as imported (nothing is copied again); any other 409 is a
//! conflict naming the tag, what the ledger knows of it, and the source the spec asks for.
//!
//! Limits, said in the README too: a tag overwritten outside mesh-operator after our import
//! (`docker push`, `az acr import --force`) is not noticed; a tag imported by hand from the same
//! source (as the article does) is reported as a conflict, since nothing proves it holds that
//! image — `mode: Force` re-imports it (idempotent for the same image).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject};
use mesh_provisioner::apply::{Applier, Create};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{Error, Result};

/// The ledger ConfigMap's name.
pub const LEDGER: &str = "mesh-operator-acr-imports";
/// Its label (not `managed-by`: no installation owns or prunes it).
pub const LEDGER_LABEL: &str = "meshoperator.dev/ledger";

/// One import on record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Registry ARM ID.
    pub registry: String,
    /// `repo:tag` in the registry.
    pub target: String,
    /// The source reference it was imported from (`docker.io/…:tag`).
    pub source: String,
    /// The installation that imported it.
    pub installation: String,
}

/// ConfigMap key of a registry tag: hashed (keys allow only `[-._a-zA-Z0-9]`), the entry itself
/// carries the registry and tag, so a hash collision is seen as "not on record".
pub fn key(registry: &str, target: &str) -> String {
    format!(
        "import-{:016x}",
        mesh_provisioner::topology::fnv1a(format!("{}|{target}", registry.to_ascii_lowercase()).as_bytes())
    )
}

/// What the ledger says about an existing tag, for the spec's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Imported by mesh-operator from this very source: counts as imported.
    SameSource,
    /// Imported by mesh-operator from another source.
    OtherSource(Entry),
    /// Not imported by mesh-operator (or not on record).
    Unknown,
}

/// Classifies an existing tag by the ledger's entry.
pub fn classify(entry: Option<&Entry>, registry: &str, target: &str, source: &str) -> Existing {
    match entry.filter(|e| e.registry.eq_ignore_ascii_case(registry) && e.target == target) {
        Some(e) if e.source == source => Existing::SameSource,
        Some(e) => Existing::OtherSource(e.clone()),
        None => Existing::Unknown,
    }
}

/// The conflict message: which tag, what it holds as far as we know, what the spec asks for.
pub fn conflict_message(existing: &Existing, login_server: &str, target: &str, source: &str) -> String {
    let holds = match existing {
        Existing::OtherSource(e) => {
            format!("holds {} (imported by mesh-operator for MeshInstallation {})", e.source, e.installation)
        }
        _ => "exists and was not imported by mesh-operator, so it may hold another image".to_string(),
    };
    format!(
        "image tag {login_server}/{target} {holds}; spec.registry.images asks for {source} under that tag. Set spec.registry.mode to Force to overwrite the tag, or choose another target"
    )
}

/// The ledger's entry for a registry tag.
pub async fn lookup(ctx: &Context, registry: &str, target: &str) -> Result<Option<Entry>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.settings.operator_namespace);
    let found = api.get_opt(LEDGER).await.map_err(Error::kube(format!("reading ConfigMap {LEDGER}")))?;
    let value = found.and_then(|c| c.data).and_then(|mut d| d.remove(&key(registry, target)));
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

/// Records an import (a JSON merge patch of one key, so concurrent imports do not overwrite each
/// other's entries); creates the ledger on first use.
pub async fn record(ctx: &Context, applier: &Applier, entry: &Entry) -> Result<()> {
    let namespace = Some(ctx.settings.operator_namespace.as_str());
    let resource = ApiResource::erase::<ConfigMap>(&());
    // A struct of strings always serialises.
    let value = serde_json::to_string(entry).unwrap_or_default();
    let data = BTreeMap::from([(key(&entry.registry, &entry.target), value)]);
    let patch = serde_json::json!({"data": data});
    if applier.merge_patch(LEDGER_MANAGER, &resource, namespace, LEDGER, &patch).await? {
        return Ok(());
    }
    let ledger = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": LEDGER, "labels": {LEDGER_LABEL: "acr-imports"}},
        "data": data,
    });
    let context = format!("recording the import of {} in ConfigMap {LEDGER}", entry.target);
    let ledger: DynamicObject =
        serde_json::from_value(ledger).map_err(|e| Error::kube(context)(kube::Error::SerdeError(e)))?;
    // Created meanwhile by a concurrent import: patch it.
    if !applier.create(Create::Post, LEDGER_MANAGER, &resource, namespace, &ledger).await? {
        applier.merge_patch(LEDGER_MANAGER, &resource, namespace, LEDGER, &patch).await?;
    }
    Ok(())
}

/// Field manager of the ledger's writes.
const LEDGER_MANAGER: &str = "import-ledger";

#[cfg(test)]
mod tests {
    use super::*;

    const ACR: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acr";

    fn entry(source: &str) -> Entry {
        Entry { registry: ACR.into(), target: "bookbuyer:v1".into(), source: source.into(), installation: "a".into() }
    }

    #[test]
    fn only_the_same_source_on_record_counts_as_imported() {
        let same = entry("docker.io/osm/bookbuyer:v1");
        assert_eq!(
            classify(Some(&same), &ACR.to_uppercase(), "bookbuyer:v1", "docker.io/osm/bookbuyer:v1"),
            Existing::SameSource
        );
        assert_eq!(
            classify(Some(&same), ACR, "bookbuyer:v1", "docker.io/evil/bookbuyer:v1"),
            Existing::OtherSource(same.clone())
        );
        assert_eq!(classify(None, ACR, "bookbuyer:v1", "docker.io/osm/bookbuyer:v1"), Existing::Unknown);
        // An entry for another tag or registry (a key collision) is not evidence.
        assert_eq!(classify(Some(&same), ACR, "bookbuyer:v2", "docker.io/osm/bookbuyer:v1"), Existing::Unknown);
        assert_eq!(classify(Some(&same), "/other", "bookbuyer:v1", "docker.io/osm/bookbuyer:v1"), Existing::Unknown);
    }

    #[test]
    fn the_conflict_names_the_tag_what_it_holds_and_the_source_asked_for() {
        let other = Existing::OtherSource(entry("docker.io/osm/bookbuyer:v1"));
        let message = conflict_message(&other, "acr.azurecr.io", "bookbuyer:v1", "docker.io/evil/bookbuyer:v1");
        for part in [
            "acr.azurecr.io/bookbuyer:v1",
            "holds docker.io/osm/bookbuyer:v1",
            "MeshInstallation a",
            "asks for docker.io/evil/bookbuyer:v1",
            "Force",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        let message =
            conflict_message(&Existing::Unknown, "acr.azurecr.io", "bookbuyer:v1", "docker.io/osm/bookbuyer:v1");
        assert!(message.contains("not imported by mesh-operator"), "{message}");
    }

    #[test]
    fn keys_are_valid_configmap_keys_and_differ_per_registry_and_tag() {
        let k = key(ACR, "bookbuyer:v1");
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)), "{k}");
        assert_eq!(k, key(&ACR.to_uppercase(), "bookbuyer:v1"));
        assert_ne!(k, key(ACR, "bookbuyer:v2"));
    }
}
