use std::collections::BTreeMap;

use mesh_crds::smi::{HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget};

use super::{bookstore, find, references, spec};
use crate::topology::{SmiBuildError, smi_policies};

const ACCESS: &str = "  namespaces: [{name: shop}, {name: web}]\n  traffic:\n    access:\n    - name: reads\n      namespace: shop\n      destination: api\n      sources: [{name: frontend, namespace: web}, {name: admin, namespace: shop}]\n      httpRoutes:\n      - {name: books, pathRegex: /books.*, methods: [GET]}\n      - {name: any, pathRegex: /health}\n      - {name: tagged, pathRegex: /t, headers: {x-tenant: a, user-agent: curl}}\n      tcpPorts: [3306]\n";

#[test]
fn a_traffic_target_lives_beside_its_destination_and_lists_its_matches() {
    let objects = smi_policies("t", &spec(ACCESS)).expect("smi");
    assert_eq!(
        references(&objects),
        ["HTTPRouteGroup/shop/reads-routes", "TCPRoute/shop/reads-tcp", "TrafficTarget/shop/reads"]
    );
    let target: TrafficTarget = find(&objects, "TrafficTarget", "reads");
    let destination = &target.spec.destination;
    assert_eq!(
        (destination.kind.as_str(), destination.name.as_str(), destination.namespace.as_deref()),
        ("ServiceAccount", "api", Some("shop"))
    );
    let sources: Vec<(String, Option<String>)> =
        target.spec.sources.iter().map(|s| (s.name.clone(), s.namespace.clone())).collect();
    assert_eq!(sources, [("frontend".into(), Some("web".into())), ("admin".into(), Some("shop".into()))]);
    let rules: Vec<(&str, &str, Vec<String>)> =
        target.spec.rules.iter().map(|r| (r.kind.as_str(), r.name.as_str(), r.matches.clone())).collect();
    // OSM v1.2 grants nothing for an HTTPRouteGroup rule without match names.
    assert_eq!(
        rules,
        [
            ("HTTPRouteGroup", "reads-routes", vec!["books".to_string(), "any".to_string(), "tagged".to_string()]),
            ("TCPRoute", "reads-tcp", Vec::new()),
        ]
    );
}

#[test]
fn http_matches_are_in_smis_wire_form() {
    let objects = smi_policies("t", &spec(ACCESS)).expect("smi");
    let group: HTTPRouteGroup = find(&objects, "HTTPRouteGroup", "reads-routes");
    let matches = &group.spec.matches;
    assert_eq!(matches[0].methods, ["GET"]);
    assert_eq!(matches[0].path_regex.as_deref(), Some("/books.*"));
    assert_eq!(matches[1].methods, ["*"], "no methods means every method");
    assert_eq!(matches[1].headers, None);
    // Headers are a list of single-key maps, as OSM reads them.
    assert_eq!(
        matches[2].headers,
        Some(vec![
            BTreeMap::from([("user-agent".to_string(), "curl".to_string())]),
            BTreeMap::from([("x-tenant".to_string(), "a".to_string())]),
        ])
    );
    let tcp: TCPRoute = find(&objects, "TCPRoute", "reads-tcp");
    assert_eq!(tcp.spec.matches.ports, [3306]);
}

#[test]
fn a_split_names_its_root_service_with_its_namespace_and_keeps_the_weights() {
    let objects = smi_policies("t", &bookstore()).expect("smi");
    let split: TrafficSplit = find(&objects, "TrafficSplit", "bookstore-split");
    assert_eq!(split.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(split.spec.service, "bookstore.bookstore");
    let backends: Vec<(String, i64)> = split.spec.backends.iter().map(|b| (b.service.clone(), b.weight)).collect();
    assert_eq!(backends, [("bookstore-v1".to_string(), 50), ("bookstore-v2".to_string(), 50)]);
}

#[test]
fn a_route_group_shared_by_identical_policies_is_rendered_once() {
    let s = spec(&format!(
        "{ACCESS}    - {{name: reads-v2, namespace: shop, destination: api-v2, routeGroup: reads-routes, sources: [{{name: frontend, namespace: web}}], httpRoutes: [{{name: books, pathRegex: /books.*, methods: [GET]}}, {{name: any, pathRegex: /health}}, {{name: tagged, pathRegex: /t, headers: {{x-tenant: a, user-agent: curl}}}}]}}\n"
    ));
    let objects = smi_policies("t", &s).expect("smi");
    let groups = objects.iter().filter(|d| d.resource.kind == "HTTPRouteGroup").count();
    assert_eq!(groups, 1, "{:?}", references(&objects));
    let v2: TrafficTarget = find(&objects, "TrafficTarget", "reads-v2");
    assert_eq!(v2.spec.rules[0].name, "reads-routes");
}

#[test]
fn a_route_group_defined_twice_differently_is_refused_naming_both_policies() {
    let s = spec(&format!(
        "{ACCESS}    - {{name: writes, namespace: shop, destination: api, routeGroup: reads-routes, sources: [{{name: frontend, namespace: web}}], httpRoutes: [{{name: books, pathRegex: /books.*, methods: [POST]}}]}}\n"
    ));
    let error = smi_policies("t", &s).expect_err("conflict");
    assert!(
        matches!(&error, SmiBuildError::ConflictingRouteGroup { first_index: 0, second_index: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "spec.traffic.access[1].httpRoutes: policies reads (spec.traffic.access[0]) and writes both define HTTPRouteGroup shop/reads-routes but with different httpRoutes; give one of them another routeGroup or make the routes identical"
    );
}

#[test]
fn a_policy_without_routes_grants_no_http_and_renders_no_group() {
    let s = spec(
        "  namespaces: [{name: shop}]\n  traffic:\n    access:\n    - {name: db, namespace: shop, destination: mysql, sources: [{name: api, namespace: shop}], tcpPorts: [3306]}\n",
    );
    let objects = smi_policies("t", &s).expect("smi");
    assert_eq!(references(&objects), ["TCPRoute/shop/db-tcp", "TrafficTarget/shop/db"]);
    let target: TrafficTarget = find(&objects, "TrafficTarget", "db");
    assert!(target.spec.rules.iter().all(|r| r.kind == "TCPRoute"));
}
