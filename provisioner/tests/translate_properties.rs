//! Semantic property tests of the SMI translation, and fuzzing.
//!
//! Over generated topologies (2 namespaces × 3 ServiceAccounts with a Deployment and a Service
//! each, sometimes an overlapping extra workload), SMI policies (HTTPRouteGroups from a pool of
//! regexes plus random ones, TCPRoutes, TrafficTargets including invalid ones, TrafficSplits) and
//! requests, the independent simulators of `translate_support` check that the translation
//! - never allows a request SMI (as OSM enforces it) denies;
//! - denies a request SMI allows only where a WARNING or ERROR names an admitting TrafficTarget;
//! - routes every HTTP request to a split root with the split's weights (or reports an ERROR).
//!
//! `PROPTEST_CASES` overrides the number of cases (default below).

mod translate_support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use mesh_crds::NotificationLevel;
use mesh_crds::smi::{
    HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TCPMatch, TCPRoute, TCPRouteSpec, TrafficSplit,
    TrafficSplitBackend, TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
};
use mesh_provisioner::translate::{Target, Translation, TranslationInput, translate};
use proptest::prelude::*;
use proptest::test_runner::Config;
use translate_support::objects::{
    NAMESPACES, RuleD, SAS, deployment, meta, route_group, service_account, tcp_routes, traffic_split, traffic_target,
    workloads,
};
use translate_support::{Pod, Request, RequestKind, istio_allows, pods, route, same_shares, smi_decide};

const PATH_REGEXES: &[&str] = &[
    "/books-bought",
    ".*a-book.*new",
    "/buy-a-book/new",
    "/api/.*",
    "/api(/.*)?",
    "/api/.+",
    "/api.*",
    ".*",
    ".+",
    ".*\\.json",
    "/items/[0-9]+",
    "/items/[0-9]*",
    "/v[12]/orders",
    "/docs|/static.*",
    "/a.c",
    "(?i)/API",
    "^/api$",
    "[/]api.*",
    "/(a|b)*",
    "/ok|.*a.*b",
    "books",
    "/books(",
    "/a/.*/c",
    "(/x)?/y",
    "/\\w+",
    "\\A/z\\z",
];
const HEADER_REGEXES: &[&str] = &[
    ".*-http-client/*.*",
    "bookbuyer",
    "Go-http-client/.*",
    ".*",
    ".+",
    "ab.*cd",
    "ab.*bc",
    "red|green",
    "v[0-9]",
    ".*-beta",
    "",
    "a\\*",
];
const HEADER_NAMES: &[&str] = &["user-agent", "client-app", "X-V", "host"];
const PATHS: &[&str] = &[
    "/",
    "/api/admin/x",
    "/books-bought",
    "/buy-a-book/new",
    "/a-book/new",
    "/api",
    "/api/",
    "/api/x",
    "/apix",
    "/API",
    "/items/7",
    "/items/12",
    "/items/",
    "/v1/orders",
    "/v3/orders",
    "/docs",
    "/static/x.json",
    "/x.json",
    "/abc",
    "/a/b/c",
    "/y",
    "/x/y",
    "/ok",
    "/ab",
    "/z",
    "/a_1",
];
const HEADER_VALUES: &[&str] =
    &["Go-http-client/1.1", "bookbuyer", "abcd", "abbc", "abc", "red", "green", "v1", "", "x-beta", "a*", "curl"];
const METHODS: &[&str] = &["GET", "POST", "DELETE", "*", "get", "PURGE", "GET|POST", "P.*", "G[A-Z]T", "(", ""];
const PORTS: &[i32] = &[80, 3306, 5432, 9999];

/// A random regex from a small grammar, over the alphabet of the generated requests.
fn random_regex() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "a", "b", "/", "x", ".", ".*", ".+", "[ab]", "[/x]", "a?", "(a|/b)", "[0-9]+", "(/.*)?", "^", "$", "\\.",
        "[^/]*", "/?", "b{1,2}", "(?:ab)*",
    ]);
    prop::collection::vec(atom, 1..6).prop_map(|parts| parts.concat())
}

fn random_path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["/api/x", "/api/admin/x"][..]).prop_map(str::to_string),
        3 => prop::sample::select(PATHS).prop_map(str::to_string),
        2 => "/[abx/.0-9]{0,6}",
    ]
}

#[derive(Clone, Debug)]
struct MatchD {
    path: Option<String>,
    methods: Vec<String>,
    headers: Vec<(usize, String)>,
}

#[derive(Clone, Debug)]
struct GroupD {
    ns: usize,
    matches: Vec<MatchD>,
    multi_key: bool,
}

#[derive(Clone, Debug)]
struct TargetD {
    ns: usize,
    dest: usize,
    dest_elsewhere: bool,
    sources: Vec<(usize, usize, bool)>,
    rules: Vec<RuleD>,
}

#[derive(Clone, Debug)]
struct SplitD {
    ns: usize,
    root: usize,
    backends: Vec<(usize, i64)>,
}

#[derive(Clone, Debug)]
struct World {
    tcp_service: [[bool; SAS]; 2],
    extra: Option<(usize, usize, usize)>,
    groups: Vec<GroupD>,
    tcp_routes: Vec<(usize, Vec<i32>)>,
    targets: Vec<TargetD>,
    splits: Vec<SplitD>,
}

fn match_strategy() -> impl Strategy<Value = MatchD> {
    // A small family of overlapping, translatable paths makes routes of different
    // TrafficTargets meet (first-match conflicts).
    let path = prop_oneof![
        1 => Just(None),
        3 => prop::sample::select(&["/api/.*", "/api/admin/.*", "/api/x", ".*", "/api/admin/x"][..]).prop_map(|s| Some(s.to_string())),
        4 => prop::sample::select(PATH_REGEXES).prop_map(|s| Some(s.to_string())),
        2 => random_regex().prop_map(|r| Some(format!("/{r}"))),
    ];
    let methods = prop_oneof![
        2 => Just(Vec::new()),
        3 => prop::collection::vec(prop::sample::select(METHODS).prop_map(str::to_string), 0..3),
    ];
    let header_regex = prop_oneof![
        3 => prop::sample::select(HEADER_REGEXES).prop_map(str::to_string),
        1 => random_regex(),
    ];
    let headers = prop_oneof![
        2 => Just(Vec::new()),
        3 => prop::collection::vec((0..HEADER_NAMES.len(), header_regex), 0..3),
    ];
    (path, methods, headers).prop_map(|(path, methods, headers)| MatchD { path, methods, headers })
}

fn world_strategy() -> impl Strategy<Value = World> {
    let groups = prop::collection::vec(
        (
            prop_oneof![3 => Just(0usize), 1 => 0..2usize],
            prop::collection::vec(match_strategy(), 1..5),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(ns, matches, multi_key)| GroupD { ns, matches, multi_key }),
        0..4,
    );
    let tcp_routes = prop::collection::vec((0..2usize, prop::collection::vec(prop::sample::select(PORTS), 0..3)), 0..3);
    let rule = prop_oneof![
        3 => (0..5usize, prop::collection::vec(0..4usize, 0..4)).prop_map(|(group, matches)| RuleD::Http { group, matches }),
        1 => (0..4usize).prop_map(|route| RuleD::Tcp { route }),
        3 => (0..2usize, 0..3usize).prop_map(|(group, m)| RuleD::Http { group, matches: vec![m] }),
    ];
    // Most TrafficTargets share one destination (a/s0), so that their routes meet.
    let target = (
        prop_oneof![3 => Just(0usize), 1 => 0..2usize],
        prop_oneof![3 => Just(0usize), 1 => 0..SAS],
        prop::bool::weighted(0.1),
        prop_oneof![
            6 => prop::collection::vec((prop_oneof![3 => Just(0usize), 1 => 0..2usize], prop_oneof![3 => 1..3usize, 1 => 0..SAS + 1], prop::bool::weighted(0.05)), 1..3),
            1 => Just(Vec::new()),
        ],
        prop::collection::vec(rule, 0..4),
    )
        .prop_map(|(ns, dest, dest_elsewhere, sources, rules)| TargetD {
            ns,
            dest,
            dest_elsewhere,
            sources,
            rules,
        });
    let split = (0..2usize, 0..SAS, prop::collection::vec((0..SAS, 0..5i64), 1..4))
        .prop_map(|(ns, root, backends)| SplitD { ns, root, backends });
    (
        prop::array::uniform2(prop::array::uniform3(any::<bool>())),
        prop::option::weighted(0.2, (0..2usize, 0..SAS, 0..SAS)),
        groups,
        tcp_routes,
        prop::collection::vec(target, 0..6),
        prop::collection::vec(split, 0..2),
    )
        .prop_map(|(tcp_service, extra, groups, tcp_routes, targets, splits)| World {
            tcp_service,
            extra,
            groups,
            tcp_routes,
            targets,
            splits,
        })
}

fn request_strategy() -> impl Strategy<Value = (usize, usize, Request)> {
    let http = (
        prop::sample::select(&["GET", "GET", "GET", "POST", "DELETE", "get", "PURGE"][..]),
        random_path(),
        // Each header is present most of the time, so that header conditions get exercised.
        prop::collection::vec(prop::option::weighted(0.85, prop::sample::select(HEADER_VALUES)), HEADER_NAMES.len()),
    )
        .prop_map(|(method, path, values)| RequestKind::Http {
            method: method.to_string(),
            path,
            headers: HEADER_NAMES
                .iter()
                .zip(values)
                .filter_map(|(n, v)| v.map(|v| (n.to_ascii_lowercase(), v.to_string())))
                .collect(),
        });
    let tcp = prop::sample::select(PORTS).prop_map(|port| RequestKind::Tcp { port });
    let kind = prop_oneof![4 => http, 1 => tcp];
    (
        prop_oneof![3 => Just(0usize), 1 => 0..2usize],
        prop_oneof![3 => 1..3usize, 1 => 0..SAS + 1],
        prop_oneof![3 => Just(0usize), 1 => 0..2usize],
        prop_oneof![3 => Just(0usize), 1 => 0..SAS + 1],
        kind,
    )
        .prop_map(|(sns, ssa, dns, dw, kind)| {
            (dns, dw, Request { source_namespace: NAMESPACES[sns].to_string(), source_sa: format!("s{ssa}"), kind })
        })
}

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn build(world: &World) -> TranslationInput {
    let mut input = TranslationInput::default();
    workloads(&mut input, 80, "client", world.tcp_service);
    if let Some((n, owner, looks_like)) = world.extra {
        input.deployments.push(deployment(
            "extra",
            NAMESPACES[n],
            &format!("s{owner}"),
            labels(&[("app", format!("s{looks_like}")), ("tier", "x".into())]),
        ));
    }
    for (i, g) in world.groups.iter().enumerate() {
        let matches = g.matches.iter().enumerate().map(|(j, m)| {
            let mut headers: Vec<BTreeMap<String, String>> =
                m.headers.iter().map(|(h, v)| BTreeMap::from([(HEADER_NAMES[*h].to_string(), v.clone())])).collect();
            if g.multi_key && j == 0 {
                headers.push(BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
            }
            HTTPMatch {
                name: String::new(),
                path_regex: m.path.clone(),
                methods: m.methods.clone(),
                headers: (!headers.is_empty()).then_some(headers),
            }
        });
        input.http_route_groups.push(route_group(i, NAMESPACES[g.ns], matches));
    }
    input.tcp_routes.extend(tcp_routes(&world.tcp_routes));
    for (i, t) in world.targets.iter().enumerate() {
        let ns = NAMESPACES[t.ns];
        let rules = t.rules.iter().map(RuleD::rule).collect();
        let sources =
            t.sources.iter().map(|(n, s, no_ns)| service_account(*s, (!no_ns).then_some(NAMESPACES[*n]))).collect();
        let dest_ns = if t.dest_elsewhere { NAMESPACES[1 - t.ns] } else { ns };
        input.traffic_targets.push(traffic_target(i, ns, service_account(t.dest, Some(dest_ns)), rules, sources));
    }
    for (i, s) in world.splits.iter().enumerate() {
        let ns = NAMESPACES[s.ns];
        input.traffic_splits.push(traffic_split(i, ns, format!("svc-s{}.{ns}", s.root), &s.backends));
    }
    input
}

fn pod_of(input: &TranslationInput, pods: &[Pod], ns: usize, w: usize) -> Option<Pod> {
    let _ = input;
    if w < SAS {
        pods.iter()
            .find(|p| p.namespace == NAMESPACES[ns] && p.labels.len() == 1 && p.labels["app"] == format!("s{w}"))
            .cloned()
    } else {
        pods.iter().find(|p| p.namespace == NAMESPACES[ns] && p.labels.contains_key("tier")).cloned()
    }
}

fn flagged(translation: &Translation, object: &str) -> bool {
    translation
        .notifications
        .iter()
        .any(|n| n.object == object && matches!(n.level, NotificationLevel::Error | NotificationLevel::Warning))
}

fn check_authorization(
    input: &TranslationInput,
    translation: &Translation,
    requests: &[(usize, usize, Request)],
) -> Result<(), TestCaseError> {
    let pods = pods(input);
    for (ns, w, request) in requests {
        let Some(pod) = pod_of(input, &pods, *ns, *w) else { continue };
        let osm = smi_decide(input, &pod, request);
        if std::env::var_os("DEBUG_ORDER").is_some() && osm.allowed_some_order {
            eprintln!("order-dependent={} {request:?}", osm.allowed_some_order != osm.allowed_every_order);
        }
        let allowed = istio_allows(&translation.authorization_policies, &pod, request);
        prop_assert!(
            !allowed || osm.allowed_every_order,
            "WIDER: Istio allows what OSM denies (under some TrafficTarget order): {request:?} to {pod:?}\npolicies: {:#?}",
            translation.authorization_policies
        );
        if osm.allowed_every_order && !allowed {
            prop_assert!(
                osm.admitting.iter().any(|tt| flagged(translation, tt)),
                "narrower without a WARNING/ERROR on {:?}: {request:?} to {pod:?}\nnotifications: {:#?}\npolicies: {:#?}",
                osm.admitting,
                translation.notifications,
                translation.authorization_policies
            );
        }
    }
    Ok(())
}

fn check_routing(
    world: &World,
    input: &TranslationInput,
    translation: &Translation,
    requests: &[(usize, usize, Request)],
) -> Result<(), TestCaseError> {
    for (i, split) in world.splits.iter().enumerate() {
        let ns = NAMESPACES[split.ns];
        let object = format!("TrafficSplit/{ns}/split{i}");
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for (b, w) in &split.backends {
            *expected.entry(format!("svc-s{b}")).or_insert(0) += w;
        }
        let has_error =
            translation.notifications.iter().any(|n| n.object == object && n.level == NotificationLevel::Error);
        if expected.values().all(|w| *w == 0) {
            prop_assert!(has_error, "all-zero split without ERROR");
            continue;
        }
        // Every split root here is an HTTP port 80 Service with backends having port 80.
        let root = format!("svc-s{}", split.root);
        let other_splits_same_root =
            world.splits.iter().filter(|s| s.ns == split.ns && s.root == split.root).count() > 1;
        for (_, _, request) in requests {
            let RequestKind::Http { method, path, headers } = &request.kind else { continue };
            let result = route(&translation.http_routes, ns, &root, 80, method, path, headers);
            let Some(distributions) = result else {
                prop_assert!(has_error, "no route for {object} and no ERROR");
                continue;
            };
            prop_assert!(!distributions.is_empty(), "404 for {request:?} through {object}");
            if other_splits_same_root {
                continue; // OSM's behaviour with two splits on one root is undefined (#2759).
            }
            for d in &distributions {
                prop_assert!(same_shares(d, &expected), "weights {d:?} != {expected:?} for {request:?}");
            }
        }
    }
    let _ = input;
    Ok(())
}

fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(cases(512))]

    /// Never wider; narrower only where a notification names the policy; same weights.
    #[test]
    fn translation_is_never_wider_and_routes_like_smi(
        world in world_strategy(),
        requests in prop::collection::vec(request_strategy(), 40..80),
    ) {
        let input = build(&world);
        let translation = translate(&input, Target::Istio);
        check_authorization(&input, &translation, &requests)?;
        check_routing(&world, &input, &translation, &requests)?;

        // Routes only: the same routes, no policies, an ERROR for every TrafficTarget.
        let routes_only = translate(&input, Target::GatewayApi);
        prop_assert!(routes_only.authorization_policies.is_empty());
        prop_assert_eq!(&routes_only.http_routes, &translation.http_routes);
        for tt in &input.traffic_targets {
            let object = format!("TrafficTarget/{}/{}", tt.metadata.namespace.as_deref().unwrap_or_default(), tt.metadata.name.as_deref().unwrap_or_default());
            prop_assert!(routes_only.notifications.iter().any(|n| n.object == object && n.level == NotificationLevel::Error));
        }
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        2 => random_regex(),
        1 => "[(){}\\[\\]*+?.|^$\\\\a/]{0,40}",
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary SMI input: no panic, bounded time.
    #[test]
    fn arbitrary_input_does_not_panic_or_hang(
        names in prop::collection::vec(any_text(), 1..6),
        regexes in prop::collection::vec(any_text(), 1..40),
        weights in prop::collection::vec(any::<i64>(), 0..24),
        ports in prop::collection::vec(any::<i32>(), 0..8),
    ) {
        let name = |i: usize| names[i % names.len()].clone();
        let mut input = TranslationInput::default();
        input.deployments.push(deployment(&name(0), &name(1), &name(2), labels(&[("app", name(3))])));
        input.services.push(Service {
            metadata: meta(&name(3), &name(1)),
            spec: Some(ServiceSpec {
                selector: Some(labels(&[("app", name(3))])),
                ports: Some(ports.iter().map(|p| ServicePort { port: *p, app_protocol: Some(name(4)), ..Default::default() }).collect()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let matches: Vec<HTTPMatch> = regexes
            .chunks(3)
            .enumerate()
            .map(|(i, chunk)| HTTPMatch {
                name: format!("m{i}"),
                path_regex: chunk.first().cloned(),
                methods: vec![name(i)],
                headers: Some(chunk.iter().skip(1).map(|r| BTreeMap::from([(name(i + 1), r.clone())])).collect()),
            })
            .collect();
        let match_names: Vec<String> = matches.iter().map(|m| m.name.clone()).collect();
        input.http_route_groups.push(HTTPRouteGroup { metadata: meta(&name(4), &name(1)), spec: HTTPRouteGroupSpec { hosts: Vec::new(), matches } });
        input.tcp_routes.push(TCPRoute { metadata: meta(&name(5), &name(1)), spec: TCPRouteSpec { matches: TCPMatch { name: None, ports: ports.clone() } } });
        input.traffic_targets.push(TrafficTarget {
            metadata: meta(&name(0), &name(1)),
            spec: TrafficTargetSpec {
                destination: IdentityBinding { kind: "ServiceAccount".into(), name: name(2), namespace: Some(name(1)) },
                rules: vec![
                    TrafficTargetRule { kind: "HTTPRouteGroup".into(), name: name(4), matches: match_names },
                    TrafficTargetRule { kind: "TCPRoute".into(), name: name(5), matches: Vec::new() },
                ],
                sources: vec![IdentityBinding { kind: "ServiceAccount".into(), name: name(0), namespace: Some(name(5)) }],
            },
        });
        input.traffic_splits.push(TrafficSplit {
            metadata: meta(&name(0), &name(1)),
            spec: TrafficSplitSpec {
                service: name(3),
                backends: weights.iter().enumerate().map(|(i, w)| TrafficSplitBackend { service: if i % 2 == 0 { name(3) } else { name(i) }, weight: *w }).collect(),
            },
        });
        for target in [Target::Istio, Target::GatewayApi] {
            let translation = translate(&input, target);
            prop_assert!(translation.to_yaml().is_ok());
        }
    }
}

/// Huge lists and pathological regexes are answered with an ERROR, not a panic or a hang. How fast
/// is the benchmark's business (`cargo bench -p mesh-provisioner --bench translate`), not a test's:
/// a wall-clock bound here failed on a loaded machine without anything being wrong.
#[test]
fn huge_and_pathological_input_is_bounded() {
    let evil = ["(((a*)*)*)*b", "(a|b|c|d|e|f){0,64}", "((a{50}){50}){50}", "(?:(?:x?){30}){30}", &"(a|b)".repeat(300)];
    let matches: Vec<HTTPMatch> = (0..20_000)
        .map(|i| HTTPMatch {
            name: format!("m{i}"),
            path_regex: Some(evil[i % evil.len()].to_string()),
            methods: vec!["GET".into(), "POST".into()],
            headers: Some(vec![BTreeMap::from([("x".into(), evil[(i + 1) % evil.len()].to_string())])]),
        })
        .collect();
    let names: Vec<String> = matches.iter().map(|m| m.name.clone()).collect();
    let mut input = TranslationInput::default();
    input.deployments.push(deployment("d", "n", "sa", labels(&[("app", "d".into())])));
    input.services.push(Service {
        metadata: meta("root", "n"),
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "d".into())])),
            ports: Some(vec![ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    input
        .http_route_groups
        .push(HTTPRouteGroup { metadata: meta("g", "n"), spec: HTTPRouteGroupSpec { hosts: Vec::new(), matches } });
    input.traffic_targets.push(TrafficTarget {
        metadata: meta("tt", "n"),
        spec: TrafficTargetSpec {
            destination: IdentityBinding {
                kind: "ServiceAccount".into(),
                name: "sa".into(),
                namespace: Some("n".into()),
            },
            rules: vec![TrafficTargetRule { kind: "HTTPRouteGroup".into(), name: "g".into(), matches: names }],
            sources: (0..5000)
                .map(|i| IdentityBinding {
                    kind: "ServiceAccount".into(),
                    name: format!("s{i}"),
                    namespace: Some("n".into()),
                })
                .collect(),
        },
    });
    input.traffic_splits.push(TrafficSplit {
        metadata: meta("split", "n"),
        spec: TrafficSplitSpec {
            service: "root".into(),
            backends: vec![TrafficSplitBackend { service: "root".into(), weight: 1 }],
        },
    });
    let translation = translate(&input, Target::Istio);
    assert!(translation.has_errors());
}

/// The route-order fixture, request by request: OSM's answer depends on the TrafficTarget order
/// for web on /api/admin/x (and admin on /api/x is denied by OSM under every order).
#[test]
fn overlapping_routes_allow_only_what_every_order_allows() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/translate/route-order/input.yaml");
    let (input, _) = TranslationInput::from_yaml_str(&std::fs::read_to_string(path).expect("fixture")).expect("input");
    let translation = translate(&input, Target::Istio);
    let pod = pods(&input).into_iter().find(|p| p.service_account == "api").expect("api pod");
    let request = |sa: &str, method: &str, path: &str| Request {
        source_namespace: "shop".into(),
        source_sa: sa.into(),
        kind: RequestKind::Http { method: method.into(), path: path.into(), headers: Vec::new() },
    };
    for (sa, method, path, every, some) in [
        ("web", "GET", "/api/x", true, true),
        ("web", "GET", "/api/admin/x", false, true),
        ("admin", "GET", "/api/admin/x", false, true),
        ("admin", "GET", "/api/x", false, false),
        ("admin", "GET", "/status", true, true),
        ("batch", "GET", "/a", true, true),
        ("batch", "POST", "/a", false, false),
    ] {
        let r = request(sa, method, path);
        let osm = smi_decide(&input, &pod, &r);
        assert_eq!((osm.allowed_every_order, osm.allowed_some_order), (every, some), "OSM on {r:?}");
        assert_eq!(istio_allows(&translation.authorization_policies, &pod, &r), every, "translation on {r:?}");
    }
}
