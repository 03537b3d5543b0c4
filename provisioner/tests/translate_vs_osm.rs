//! The translation against OSM v1.2.4's own code (`e2e/osm-oracle`): over generated SMI inputs
//! and requests (see `vs_osm/generate.rs`), the Istio AuthorizationPolicies the translator emits
//! must
//! - never allow a request that OSM denies under SOME order of its TrafficTargets (OSM's order is
//!   a Go map iteration: a request allowed under only some orders is not reliably allowed);
//! - deny a request OSM allows under EVERY order only where a WARNING or ERROR names one of the
//!   destination's TrafficTargets.
//!
//! `OSM_ORACLE_SEED` (printed) replays a run; `OSM_ORACLE_CASES` sets the number of inputs
//! (default 2,000; `make soak` runs more). All inputs go through one oracle process;
//! `OSM_ORACLE_DUMP=FILE` writes its input (`osm-oracle serve < FILE` replays it).

mod translate_support;
mod vs_osm;

use std::collections::BTreeMap;
use std::time::Instant;

use kube::ResourceExt;
use mesh_crds::NotificationLevel;
use mesh_provisioner::translate::{Target, Translation, TranslationInput, translate};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use vs_osm::generate::{Case, HTTP_TARGET_PORT, NAMESPACES, RequestD, build, case_strategy, request_strategy};
use vs_osm::istio::{HttpRequest, IstioPod, IstioRequest, istio_allows};
use vs_osm::oracle::{Job, OracleRequest, OracleResult, build_oracle, run};

const DEFAULT_CASES: usize = 2_000;
const REQUESTS_PER_CASE: usize = 40;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// The authority of a request, and whether it names a split root (routed by the split, so
/// only the never-wider property is checked for it).
fn authority(case: &Case, r: &RequestD) -> (String, bool) {
    let (ns, s) = r.dest;
    let own = format!("svc-s{s}");
    match r.authority_form {
        1 => (own, false),
        2 => (format!("{own}.{}.svc.cluster.local:80", NAMESPACES[ns]), false),
        3 => case
            .splits
            .iter()
            .find(|(split_ns, root, backends)| *split_ns == ns && *root != s && backends.iter().any(|(b, _)| *b == s))
            .map(|(_, root, _)| (format!("svc-s{root}.{}:80", NAMESPACES[ns]), true))
            .unwrap_or_else(|| (format!("{own}.{}:80", NAMESPACES[ns]), false)),
        _ => (format!("{own}.{}:80", NAMESPACES[ns]), false),
    }
}

struct Generated {
    case: Case,
    input: TranslationInput,
    requests: Vec<RequestD>,
    oracle_requests: Vec<OracleRequest>,
    split_host: Vec<bool>,
}

fn generate(seed: u64, count: usize) -> Vec<Generated> {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let cases = case_strategy();
    let requests = proptest::collection::vec(request_strategy(), REQUESTS_PER_CASE);
    (0..count)
        .map(|_| {
            let case = cases.new_tree(&mut runner).expect("case").current();
            let requests: Vec<RequestD> =
                requests.new_tree(&mut runner).expect("requests").current().iter().map(|r| r.resolve(&case)).collect();
            let input = build(&case);
            let mut oracle_requests = Vec::new();
            let mut split_host = Vec::new();
            for r in &requests {
                let (authority, via_split) = authority(&case, r);
                let mut headers = BTreeMap::new();
                if let Some(ua) = r.user_agent {
                    headers.insert("user-agent".to_string(), ua.to_string());
                }
                if let Some(team) = r.team {
                    headers.insert("x-team".to_string(), team.to_string());
                }
                let http = r.tcp_port.is_none();
                oracle_requests.push(OracleRequest {
                    source: format!("{}/s{}", NAMESPACES[r.source.0], r.source.1),
                    workload: format!("{}/w-s{}", NAMESPACES[r.dest.0], r.dest.1),
                    port: r.tcp_port.unwrap_or(HTTP_TARGET_PORT),
                    authority: if http { authority } else { String::new() },
                    method: if http { r.method.to_string() } else { String::new() },
                    path: if http { r.path.to_string() } else { String::new() },
                    headers: if http { headers } else { BTreeMap::new() },
                });
                split_host.push(via_split);
            }
            Generated { case, input, requests, oracle_requests, split_host }
        })
        .collect()
}

fn objects(input: &TranslationInput) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |v: Result<Value, serde_json::Error>| out.push(v.expect("objects serialize"));
    input.traffic_targets.iter().for_each(|o| push(serde_json::to_value(o)));
    input.http_route_groups.iter().for_each(|o| push(serde_json::to_value(o)));
    input.tcp_routes.iter().for_each(|o| push(serde_json::to_value(o)));
    input.traffic_splits.iter().for_each(|o| push(serde_json::to_value(o)));
    input.services.iter().for_each(|o| push(serde_json::to_value(o)));
    input.deployments.iter().for_each(|o| push(serde_json::to_value(o)));
    input.stateful_sets.iter().for_each(|o| push(serde_json::to_value(o)));
    out
}

/// The SMI objects of an input as YAML (the workloads and Services are the fixed topology of
/// `vs_osm::generate`; only which Services have the `mysql` port varies).
fn input_yaml(g: &Generated) -> String {
    let smi = objects(&g.input)
        .into_iter()
        .filter(|o| o.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.contains("smi-spec.io")));
    let mut out = format!("# Services with the mysql port (ns, sa): {:?}\n", g.case.mysql);
    for o in smi {
        out.push_str(&format!("---\n{}", serde_yaml::to_string(&o).unwrap_or_default()));
    }
    out
}

fn istio_request(r: &OracleRequest) -> IstioRequest {
    let (ns, sa) = r.source.split_once('/').expect("ns/sa");
    IstioRequest {
        source_namespace: ns.to_string(),
        source_sa: sa.to_string(),
        port: r.port,
        http: (!r.method.is_empty()).then(|| HttpRequest {
            method: r.method.clone(),
            path: r.path.clone(),
            authority: r.authority.clone(),
            headers: r.headers.clone(),
        }),
    }
}

fn pod(input: &TranslationInput, workload: &str) -> IstioPod {
    let (ns, name) = workload.split_once('/').expect("ns/name");
    let d = input
        .deployments
        .iter()
        .find(|d| d.namespace().as_deref() == Some(ns) && d.name_any() == name)
        .expect("the workload exists");
    let labels = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone());
    IstioPod { namespace: ns.to_string(), labels: labels.unwrap_or_default() }
}

fn flagged(translation: &Translation, targets: &[String]) -> bool {
    translation.notifications.iter().any(|n| {
        matches!(n.level, NotificationLevel::Error | NotificationLevel::Warning)
            && targets.iter().any(|t| n.object == format!("TrafficTarget/{t}"))
    })
}

#[derive(Default, Debug)]
struct Tally {
    requests: usize,
    verdicts: BTreeMap<String, usize>,
    restrictive_flagged: usize,
    history_dependent: usize,
    translation_allowed: usize,
    failures: Vec<String>,
    /// Failures by kind and OSM's reasons.
    kinds: BTreeMap<String, usize>,
}

fn check(index: usize, g: &Generated, translation: &Translation, result: &OracleResult, tally: &mut Tally) {
    let policies: Vec<Value> = translation
        .authorization_policies
        .iter()
        .map(|p| serde_json::to_value(p).expect("policies serialize"))
        .collect();
    for (j, (req, decision)) in g.oracle_requests.iter().zip(&result.decisions).enumerate() {
        tally.requests += 1;
        *tally.verdicts.entry(decision.verdict.clone()).or_default() += 1;
        let allowed = istio_allows(&policies, &pod(&g.input, &req.workload), &istio_request(req));
        tally.translation_allowed += usize::from(allowed);
        let targets: Vec<String> = result
            .destinations
            .iter()
            .find(|d| d.workload == req.workload)
            .map(|d| d.traffic_targets.clone())
            .unwrap_or_default();
        // Envoy refuses a route configuration with a regex RE2 cannot compile, and the sidecar keeps
        // the routes it had: what OSM allows then depends on history. The translation must say so
        // with an ERROR (a controller then keeps that source's previous output, like the sidecar).
        if decision.reasons.keys().any(|r| r.starts_with("route configuration rejected")) {
            let ns = req.workload.split('/').next().unwrap_or_default();
            let error = translation.notifications.iter().any(|n| {
                n.level == NotificationLevel::Error
                    && (targets.iter().any(|t| n.object == format!("TrafficTarget/{t}"))
                        || n.object.starts_with(&format!("HTTPRouteGroup/{ns}/")))
            });
            tally.history_dependent += 1;
            if error {
                continue;
            }
        }
        let problem = if !allowed && decision.reasons.keys().any(|r| r.starts_with("route configuration rejected")) {
            Some(
                "REJECTED by Envoy without an ERROR on the destination's TrafficTargets or HTTPRouteGroups".to_string(),
            )
        } else if allowed && decision.verdict != "all" {
            Some(format!(
                "WIDER: the translation allows what OSM denies under {} of {} orders",
                decision.orders - decision.allowed_orders,
                decision.orders
            ))
        } else if !allowed && decision.verdict == "all" && !g.split_host[j] {
            if flagged(translation, &targets) {
                tally.restrictive_flagged += 1;
                None
            } else {
                Some(format!("NARROWER without a WARNING/ERROR naming any of {targets:?}"))
            }
        } else {
            None
        };
        if let Some(problem) = problem {
            let kind = problem.split(':').next().unwrap_or_default().split(" without").next().unwrap_or_default();
            let reasons: Vec<&String> = decision.reasons.keys().collect();
            let port = if req.method.is_empty() { "TCP" } else { "HTTP" };
            let kind = format!("{kind} ({port}; OSM: {reasons:?})");
            let seen = tally.kinds.entry(kind).or_default();
            *seen += 1;
            if *seen == 1 {
                // The first failure of each kind in full.
                tally.failures.push(format!(
                    "input {index}, request {j}: {problem}\nrequest: {req:?}\n(generated: {:?})\nOSM: {decision:?}\n\
                     notifications:\n  {}\npolicies:\n{}\ninput:\n{}",
                    g.requests[j],
                    translation.notification_lines().join("\n  "),
                    serde_yaml::to_string(&policies).unwrap_or_default(),
                    input_yaml(g)
                ));
            }
        }
    }
}

#[test]
fn translation_is_never_wider_than_osm_and_narrower_only_with_a_notification() {
    let seed = env_number("OSM_ORACLE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let count = env_number("OSM_ORACLE_CASES").map(|n| n as usize).unwrap_or(DEFAULT_CASES);
    eprintln!("translate_vs_osm: OSM_ORACLE_SEED={seed} OSM_ORACLE_CASES={count}");

    let start = Instant::now();
    let oracle = build_oracle();
    let built = start.elapsed();
    let generated = generate(seed, count);
    let translations: Vec<Translation> = generated.iter().map(|g| translate(&g.input, Target::Istio)).collect();
    let jobs: Vec<Job> = generated
        .iter()
        .enumerate()
        .map(|(i, g)| Job {
            id: format!("case-{i}"),
            seed: seed.wrapping_add(i as u64),
            objects: objects(&g.input),
            requests: g.oracle_requests.clone(),
        })
        .collect();
    if let Some(path) = std::env::var_os("OSM_ORACLE_DUMP") {
        let lines: Vec<String> = jobs.iter().map(|j| serde_json::to_string(j).expect("jobs serialize")).collect();
        std::fs::write(&path, lines.join("\n")).expect("writing OSM_ORACLE_DUMP");
    }
    let oracle_start = Instant::now();
    let results = run(&oracle, &jobs);
    let oracle_time = oracle_start.elapsed();

    let mut tally = Tally::default();
    for (i, ((g, translation), result)) in generated.iter().zip(&translations).zip(&results).enumerate() {
        check(i, g, translation, result, &mut tally);
    }
    let order_dependent_destinations: usize =
        results.iter().flat_map(|r| &r.destinations).filter(|d| d.orders > 1).count();
    eprintln!(
        "translate_vs_osm: {count} inputs, {} requests; OSM verdicts {:?}; translation allowed {}; \
         {} restrictive differences all flagged; {} history-dependent (Envoy rejects the routes); {order_dependent_destinations} destinations with >1 order; \
         oracle build {built:.1?}, oracle {oracle_time:.1?}, total {:.1?}",
        tally.requests,
        tally.verdicts,
        tally.translation_allowed,
        tally.restrictive_flagged,
        tally.history_dependent,
        start.elapsed()
    );
    assert!(
        tally.failures.is_empty(),
        "{} failing requests (seed {seed}, replay with OSM_ORACLE_SEED={seed} OSM_ORACLE_CASES={count}); by kind:\n{:#?}\n\
         the first of each kind:\n{}",
        tally.kinds.values().sum::<usize>(),
        tally.kinds,
        tally.failures.join("\n\n")
    );
    // The generators must exercise what the test is about.
    for verdict in ["all", "some", "none"] {
        assert!(
            tally.verdicts.get(verdict).copied().unwrap_or(0) > 0 || count < 200,
            "no {verdict:?} verdict generated"
        );
    }
}
