use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;

use super::{bookstore, find, spec};
use crate::labels;
use crate::topology::{
    CREATED_BY, ObservedNamespace, enrolment, enrolment_digest, fnv1a, ingress_namespace_spec, namespaces,
};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const OSM: &str = "  mesh: {name: blue}\n  namespaces: [{name: shop, metrics: true}, {name: batch, sidecarInjection: false}, {name: web}]\n";
const ISTIO: &str = "  mesh: {provider: AksIstioAddon, istio: {revision: asm-1-25}}\n  azure: {subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, clusterName: aks, location: eastus}\n  namespaces: [{name: shop, metrics: true}, {name: batch, sidecarInjection: false}]\n";

#[test]
fn osm_enrolment_is_what_osm_namespace_add_and_osm_metrics_enable_write() {
    let s = spec(OSM);
    assert_eq!(
        enrolment(&s, &s.namespaces[0]),
        (
            map(&[(labels::OSM_MONITORED_BY, "blue")]),
            map(&[(labels::OSM_SIDECAR_INJECTION, "enabled"), (labels::OSM_METRICS, "enabled")])
        )
    );
    // `osm namespace add --disable-sidecar-injection`: monitored, injection disabled, no metrics.
    assert_eq!(
        enrolment(&s, &s.namespaces[1]),
        (map(&[(labels::OSM_MONITORED_BY, "blue")]), map(&[(labels::OSM_SIDECAR_INJECTION, "disabled")]))
    );
    // Metrics are off unless asked for.
    assert_eq!(
        enrolment(&s, &s.namespaces[2]),
        (map(&[(labels::OSM_MONITORED_BY, "blue")]), map(&[(labels::OSM_SIDECAR_INJECTION, "enabled")]))
    );
}

#[test]
fn istio_enrolment_is_the_revision_label_only_where_sidecars_are_wanted() {
    let s = spec(ISTIO);
    assert_eq!(enrolment(&s, &s.namespaces[0]), (map(&[(labels::ISTIO_REV, "asm-1-25")]), map(&[])));
    assert_eq!(enrolment(&s, &s.namespaces[1]), (map(&[]), map(&[])));
    let no_revision = spec(&ISTIO.replace("istio: {revision: asm-1-25}", "istio: {}"));
    assert_eq!(enrolment(&no_revision, &no_revision.namespaces[0]), (map(&[]), map(&[])));
}

#[test]
fn the_enrolment_digest_changes_with_the_enrolment_and_nothing_else() {
    let s = spec(OSM);
    let shop = enrolment_digest(&s, &s.namespaces[0]);
    assert_eq!(shop.len(), 16);
    assert_ne!(shop, enrolment_digest(&s, &s.namespaces[1]), "metrics and injection differ");
    // Another spec with the same enrolment for shop (other apps, other namespaces) keeps the digest,
    // so its workloads do not roll.
    let more = spec(&format!("{OSM}  apps: [{{name: web, namespace: shop, image: x}}]\n"));
    assert_eq!(enrolment_digest(&more, &more.namespaces[0]), shop);
    let renamed_mesh = spec(&OSM.replace("name: blue", "name: green"));
    assert_ne!(enrolment_digest(&renamed_mesh, &renamed_mesh.namespaces[0]), shop);
}

#[test]
fn the_enrolment_digest_is_stable_across_releases() {
    // Workloads carry the digest in their pod template: if it changed between operator versions,
    // every meshed workload would roll on upgrade. These values must never change.
    assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
    assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    // bookstore's namespace: monitored by osm, sidecar injection and metrics enabled.
    let s = bookstore();
    assert_eq!(enrolment_digest(&s, &s.namespaces[0]), "6b08e6864d629dea");
}

#[test]
fn a_namespace_we_create_is_marked_and_one_that_was_there_is_not() {
    let s = spec(OSM);
    let observed = BTreeMap::from([
        ("shop".to_string(), ObservedNamespace { exists: true, created_by_us: false }),
        ("batch".to_string(), ObservedNamespace { exists: true, created_by_us: true }),
    ]);
    let objects = namespaces("mine", &s, &observed).expect("namespaces");
    // shop was there before us: teardown must never delete it, so it carries no created-by mark.
    let shop: Namespace = find(&objects, "Namespace", "shop");
    assert!(!shop.metadata.annotations.unwrap_or_default().contains_key(CREATED_BY));
    let batch: Namespace = find(&objects, "Namespace", "batch");
    assert_eq!(batch.metadata.annotations.unwrap_or_default().get(CREATED_BY).map(String::as_str), Some("mine"));

    let fresh = namespaces("mine", &s, &BTreeMap::new()).expect("namespaces");
    let shop: Namespace = find(&fresh, "Namespace", "shop");
    let annotations = shop.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(CREATED_BY).map(String::as_str), Some("mine"));
    assert_eq!(annotations.get(labels::OSM_METRICS).map(String::as_str), Some("enabled"));
    assert_eq!(
        shop.metadata.labels.unwrap_or_default().get(labels::OSM_MONITORED_BY).map(String::as_str),
        Some("blue")
    );
}

#[test]
fn the_ingress_namespace_is_monitored_without_sidecars() {
    // OSM requires this for IngressBackend sources of kind Service.
    let s = spec(OSM);
    let (labels_, annotations) = enrolment(&s, &ingress_namespace_spec("ingress-nginx"));
    assert_eq!(labels_, map(&[(labels::OSM_MONITORED_BY, "blue")]));
    assert_eq!(annotations, map(&[(labels::OSM_SIDECAR_INJECTION, "disabled")]));
}
