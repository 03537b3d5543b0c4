//! What a person sees when the operator refuses a spec: every problem names the field (or the
//! object) and says what to do, and a spec that is fine, or a cluster state that is ours, is never
//! refused.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use mesh_crds::{MeshInstallation, MeshInstallationSpec};
use mesh_provisioner::labels;

use super::{ClusterFacts, Problem, validate};

const OPERATOR_NAMESPACE: &str = "mesh-operator-system";

fn spec(yaml: &str) -> MeshInstallationSpec {
    let text =
        format!("apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {{name: t}}\nspec:\n{yaml}");
    MeshInstallation::from_yaml(&text).expect("spec").spec
}

fn sample(file: &str) -> MeshInstallation {
    let path = format!("{}/../samples/{file}", env!("CARGO_MANIFEST_DIR"));
    MeshInstallation::from_yaml(&std::fs::read_to_string(&path).expect("sample")).expect("parse sample")
}

fn facts() -> ClusterFacts {
    ClusterFacts { operator_namespace: OPERATOR_NAMESPACE.to_string(), ..Default::default() }
}

/// `facts` with a live namespace carrying `labels`.
fn with_namespace(mut facts: ClusterFacts, name: &str, labels: &[(&str, &str)]) -> ClusterFacts {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(labels), ..Default::default() },
        ..Default::default()
    };
    facts.namespaces.insert(name.to_string(), namespace);
    facts
}

fn with_control_plane(mut facts: ClusterFacts, namespace: &str, mesh: &str) -> ClusterFacts {
    facts.control_planes.insert(namespace.to_string(), mesh.to_string());
    facts
}

/// The one problem found, or a panic listing what was found.
fn only(problems: Vec<Problem>) -> Problem {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems.into_iter().next().expect("one problem")
}

const TWO_NAMESPACES: &str = "  namespaces: [{name: shop}, {name: bank}]\n";

#[test]
fn a_namespace_the_mesh_must_ignore_is_refused_naming_its_entry() {
    let facts = with_namespace(facts(), "bank", &[(labels::OSM_IGNORE, "true")]);
    let problem = only(validate("t", &spec(TWO_NAMESPACES), &facts));
    assert_eq!(problem.reason, "NamespaceIgnored");
    assert!(
        problem
            .message
            .starts_with(&format!("spec.namespaces[1].name: namespace bank is labelled {}=true", labels::OSM_IGNORE)),
        "{problem:?}"
    );
    assert!(problem.message.contains("remove the label or drop the namespace from the spec"), "{problem:?}");
}

#[test]
fn an_ignore_label_that_is_not_true_is_no_problem() {
    let facts = with_namespace(facts(), "bank", &[(labels::OSM_IGNORE, "false")]);
    assert_eq!(validate("t", &spec(TWO_NAMESPACES), &facts), Vec::new());
}

#[test]
fn a_namespace_of_another_mesh_is_refused_naming_that_mesh() {
    let facts = with_namespace(facts(), "shop", &[(labels::OSM_MONITORED_BY, "blue")]);
    let problem = only(validate("t", &spec(TWO_NAMESPACES), &facts));
    assert_eq!(problem.reason, "NamespaceInAnotherMesh");
    assert!(
        problem.message.starts_with("spec.namespaces[0].name: namespace shop is already monitored by mesh blue;"),
        "{problem:?}"
    );
}

#[test]
fn a_namespace_already_in_this_mesh_is_ours() {
    // The spec's mesh is named osm by default: a namespace we enrolled before is not "another mesh".
    let facts = with_namespace(facts(), "shop", &[(labels::OSM_MONITORED_BY, "osm")]);
    assert_eq!(validate("t", &spec(TWO_NAMESPACES), &facts), Vec::new());
}

#[test]
fn the_osm_to_istio_migration_takes_over_only_the_osm_add_ons_namespaces() {
    // The mesh is not named osm, the name of the OSM add-on's mesh.
    let istio = "  mesh: {provider: AksIstioAddon, name: shop-mesh, migrateFromOsm: true, istio: {revision: asm-1-25}}\n  azure: {subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, clusterName: aks, location: eastus}\n";
    let migrating = spec(&format!("{istio}{TWO_NAMESPACES}"));
    let from_the_add_on = with_namespace(facts(), "shop", &[(labels::OSM_MONITORED_BY, "osm")]);
    assert_eq!(validate("t", &migrating, &from_the_add_on), Vec::new());

    let from_another_mesh = with_namespace(facts(), "shop", &[(labels::OSM_MONITORED_BY, "blue")]);
    assert_eq!(only(validate("t", &migrating, &from_another_mesh)).reason, "NamespaceInAnotherMesh");

    // Without migrateFromOsm the add-on's namespaces belong to another mesh.
    let staying = spec(&format!("{}{TWO_NAMESPACES}", istio.replace("migrateFromOsm: true", "migrateFromOsm: false")));
    let problem = only(validate("t", &staying, &from_the_add_on));
    assert_eq!(problem.reason, "NamespaceInAnotherMesh");
    assert!(problem.message.contains("already monitored by mesh osm"), "{problem:?}");
}

#[test]
fn a_namespace_holding_a_control_plane_cannot_be_enrolled() {
    // A namespace running a control plane exists.
    let facts = with_control_plane(with_namespace(facts(), "bank", &[]), "bank", "blue");
    let problem = only(validate("t", &spec(TWO_NAMESPACES), &facts));
    assert_eq!(problem.reason, "NamespaceHoldsControlPlane");
    assert!(
        problem.message.starts_with("spec.namespaces[1].name: namespace bank holds the control plane of mesh blue;"),
        "{problem:?}"
    );
}

#[test]
fn a_mesh_namespace_running_another_meshs_control_plane_is_a_conflict() {
    let facts = with_control_plane(facts(), "osm-system", "blue");
    let problem = only(validate("t", &spec(TWO_NAMESPACES), &facts));
    assert_eq!(problem.reason, "Conflict");
    assert!(
        problem.message.starts_with(
            "spec.mesh.namespace: namespace osm-system already runs the control plane of another mesh (blue)"
        ),
        "{problem:?}"
    );
}

#[test]
fn our_own_running_control_plane_is_no_conflict() {
    let facts = with_control_plane(facts(), "osm-system", "osm");
    assert_eq!(validate("t", &spec(TWO_NAMESPACES), &facts), Vec::new());
}

#[test]
fn every_problem_is_reported_at_once() {
    let facts = with_namespace(facts(), "shop", &[(labels::OSM_IGNORE, "true"), (labels::OSM_MONITORED_BY, "blue")]);
    let facts = with_namespace(facts, "bank", &[]);
    let facts = with_control_plane(with_control_plane(facts, "bank", "red"), "osm-system", "red");
    let reasons: Vec<&str> = validate("t", &spec(TWO_NAMESPACES), &facts).iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["NamespaceIgnored", "NamespaceInAnotherMesh", "NamespaceHoldsControlPlane", "Conflict"]);
}

#[test]
fn conflicting_route_groups_name_both_policies_and_the_field() {
    let s = spec(
        "  namespaces: [{name: shop}]\n  traffic:\n    access:\n    - {name: reads, namespace: shop, destination: api, routeGroup: shared, sources: [{name: web, namespace: shop}], httpRoutes: [{name: all, pathRegex: /a}]}\n    - {name: tcp, namespace: shop, destination: db, sources: [{name: api, namespace: shop}], tcpPorts: [3306]}\n    - {name: writes, namespace: shop, destination: api, routeGroup: shared, sources: [{name: web, namespace: shop}], httpRoutes: [{name: all, pathRegex: /b}]}\n",
    );
    let problem = only(validate("t", &s, &facts()));
    assert_eq!(problem.reason, "InvalidSpec");
    assert!(
        problem.message.starts_with(
            "spec.traffic.access[2].httpRoutes: policies reads (spec.traffic.access[0]) and writes both define HTTPRouteGroup shop/shared but with different httpRoutes"
        ),
        "{problem:?}"
    );
}

#[test]
fn policies_may_share_a_route_group_they_define_identically() {
    // The article's bookstore and bookstore-v2 targets share one HTTPRouteGroup.
    let s = spec(
        "  namespaces: [{name: shop}]\n  traffic:\n    access:\n    - {name: v1, namespace: shop, destination: api, routeGroup: shared, sources: [{name: web, namespace: shop}], httpRoutes: [{name: all, pathRegex: /a}]}\n    - {name: v2, namespace: shop, destination: api-v2, routeGroup: shared, sources: [{name: web, namespace: shop}], httpRoutes: [{name: all, pathRegex: /a}]}\n",
    );
    assert_eq!(validate("t", &s, &facts()), Vec::new());
}

const SPLIT: &str = "  namespaces: [{name: shop}]\n  apps:\n  - {name: api, namespace: shop, image: x, port: 8080, service: {versionServices: [{name: api-v1}]}}\n  - {name: api-v2, namespace: shop, image: x, port: PORT, service: {skipMain: true, versionServices: [{name: api-v2}]}}\n  traffic:\n    splits:\n    - {name: api, namespace: shop, service: api, backends: [{service: api-v1, weight: 50}, {service: api-v2, weight: 50}]}\n";

#[test]
fn a_split_backend_without_the_roots_ports_is_refused_naming_the_backend() {
    let problem = only(validate("t", &spec(&SPLIT.replace("PORT", "9090")), &facts()));
    assert_eq!(problem.reason, "InvalidSpec");
    assert!(
        problem.message.starts_with(
            "spec.traffic.splits[0].backends[1].service: backend api-v2 exposes ports [9090] but the root service api exposes [8080]"
        ),
        "{problem:?}"
    );
}

#[test]
fn a_split_backend_serving_the_roots_ports_is_fine() {
    assert_eq!(validate("t", &spec(&SPLIT.replace("PORT", "8080")), &facts()), Vec::new());
}

const INGRESS: &str = "  namespaces: [{name: shop}]\n  apps:\n  - {name: web, namespace: shop, image: x, port: 8080}\n  ingress:\n    rules:\n    - {name: web, host: shop.example.com, path: /, backend: BACKEND}\n";

#[test]
fn an_ingress_rule_to_an_undeclared_service_is_refused_naming_the_rule() {
    let s = spec(&INGRESS.replace("BACKEND", "{service: webb, namespace: shop, port: 8080}"));
    let problem = only(validate("t", &s, &facts()));
    assert_eq!(problem.reason, "InvalidSpec");
    assert_eq!(
        problem.message,
        "spec.ingress.rules[0].backend: Service shop/webb is not declared by any app in spec.apps"
    );
}

#[test]
fn an_ingress_rule_to_a_port_the_service_lacks_is_refused_naming_the_port() {
    let s = spec(&INGRESS.replace("BACKEND", "{service: web, namespace: shop, port: 80}"));
    let problem = only(validate("t", &s, &facts()));
    assert_eq!(problem.reason, "InvalidSpec");
    assert_eq!(problem.message, "spec.ingress.rules[0].backend.port: Service shop/web has no port 80");
}

#[test]
fn an_ingress_rule_to_a_declared_port_is_fine() {
    let s = spec(&INGRESS.replace("BACKEND", "{service: web, namespace: shop, port: 8080}"));
    assert_eq!(validate("t", &s, &facts()), Vec::new());
}

#[test]
fn the_samples_are_valid_on_an_empty_cluster() {
    for file in ["bookstore.yaml", "bookstore-istio.yaml", "bookstore-aks-addon.yaml"] {
        let mi = sample(file);
        assert_eq!(validate("t", &mi.spec, &facts()), Vec::new(), "{file}");
    }
}

/// Every sample that passes admission but must be refused is refused by validation (or, for
/// objects two parts of the spec would both render, by the collision check that runs before any
/// write) with the message it promises.
#[test]
fn the_semantic_invalid_samples_are_refused_with_the_message_they_promise() {
    let samples = mesh_crds::samples::invalid().unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for sample in samples.iter().filter(|sample| sample.passes_admission) {
        let (path, expected) = (sample.path.display(), sample.expected_error.as_str());
        let mi = MeshInstallation::from_yaml(&sample.text).expect("parse");
        let mut problems = validate("t", &mi.spec, &facts());
        if problems.is_empty()
            && let Ok(preview) = mesh_provisioner::plan::plan("t", &mi.spec, &Default::default())
        {
            problems = super::super::placement::collisions(&mi.spec, &preview.objects);
        }
        assert!(problems.iter().any(|p| p.message.contains(expected)), "{path}: {expected:?} not in {problems:#?}");
        checked += 1;
    }
    assert!(checked >= 7, "semantic invalid samples checked: {checked}");
}
