//! Generated SMI inputs and requests for the translator-vs-OSM property test. Two namespaces,
//! three ServiceAccounts each with a Deployment `w-sK` and a Service `svc-sK` (HTTP 80 → 8080,
//! `tcp-pg` 5432 — TCP by its name prefix — and sometimes `appProtocol: tcp` 3306). Policies are
//! drawn from small pools so that they collide: overlapping path regexes granted to different
//! sources, the same match in several TrafficTargets, `sources: []`, method regexes and case,
//! missing TCPRoutes, header and `host` matches, TCPRoute ports, TrafficSplits.

use std::collections::BTreeMap;

use mesh_crds::smi::HTTPMatch;
use mesh_provisioner::translate::TranslationInput;
use proptest::prelude::*;

pub use crate::translate_support::objects::{NAMESPACES, RuleD, SAS};
use crate::translate_support::objects::{
    route_group, service_account, tcp_routes, traffic_split, traffic_target, workloads,
};

pub const HTTP_TARGET_PORT: i32 = 8080;

const PATHS: &[&str] = &[
    "/api/.*",
    "/api/admin",
    "/api/[a-z]+",
    ".*",
    "/books",
    "/books.*",
    "/books/[0-9]+",
    "/api(/.*)?",
    "/(books|api)/x",
    "/books-bought",
    ".*a-book.*new",
    "/buy-a-book/new",
    "(",
    "/API",
];
const METHODS: &[&[&str]] = &[
    &[],
    &["GET"],
    &["GET|POST"],
    &["*"],
    &["POST"],
    &["GET", "POST"],
    &["get"],
    &["DELETE", "*"],
    &["G.*"],
    &["(GET|PUT)"],
    &["PU."],
];
const HEADERS: &[(&str, &str)] = &[
    ("user-agent", "curl/.*"),
    ("user-agent", "bookbuyer"),
    ("user-agent", ".*-http-client/*.*"),
    ("x-team", "red|blue"),
    ("x-team", "red"),
    ("host", "svc-s0\\.a(:80)?"),
    ("host", "svc-s1.b:80"),
    ("host", ".*"),
];
const TCP_PORTS: &[i32] = &[8080, 80, 5432, 3306, 9999];
pub const REQUEST_PATHS: &[&str] =
    &["/api/admin", "/api/x", "/api", "/books", "/books/1", "/books-bought", "/buy-a-book/new", "/", "/x", "/API"];
pub const REQUEST_METHODS: &[&str] = &["GET", "GET", "GET", "POST", "POST", "DELETE", "get", "PUT", "PATCH"];
pub const USER_AGENTS: &[&str] = &["curl/8.0", "bookbuyer", "Go-http-client/1.1", "other"];
pub const TEAMS: &[&str] = &["red", "blue", "green"];

#[derive(Clone, Debug)]
pub struct MatchD {
    pub path: Option<&'static str>,
    pub methods: &'static [&'static str],
    /// `None`: no `headers`; `Some(vec![])`: `headers: []` (OSM keeps the two apart).
    pub headers: Option<Vec<(&'static str, &'static str)>>,
}

#[derive(Clone, Debug)]
pub struct TargetD {
    pub ns: usize,
    pub dest: usize,
    /// `None`: `sources: []`.
    pub sources: Option<Vec<(usize, usize)>>,
    pub rules: Vec<RuleD>,
}

/// A TrafficSplit: namespace, root `svc-s<root>`, backends `(svc-s<b>, weight)`.
pub type SplitD = (usize, usize, Vec<(usize, i64)>);

#[derive(Clone, Debug)]
pub struct Case {
    pub mysql: [[bool; SAS]; 2],
    pub groups: Vec<(usize, Vec<MatchD>)>,
    pub tcp_routes: Vec<(usize, Vec<i32>)>,
    pub targets: Vec<TargetD>,
    pub splits: Vec<SplitD>,
}

fn match_strategy() -> impl Strategy<Value = MatchD> {
    (
        // The first paths and methods overlap most: weight them up so that grants shadow each other.
        prop::option::weighted(
            0.85,
            prop_oneof![2 => prop::sample::select(&PATHS[..6]), 1 => prop::sample::select(PATHS)],
        ),
        prop_oneof![2 => prop::sample::select(&METHODS[..4]), 1 => prop::sample::select(METHODS)],
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Vec::new())),
            2 => prop::collection::vec(prop::sample::select(HEADERS), 1..3).prop_map(Some),
        ],
    )
        .prop_map(|(path, methods, mut headers)| {
            if let Some(headers) = &mut headers {
                headers.dedup_by_key(|(k, _)| *k);
            }
            MatchD { path, methods, headers }
        })
}

pub fn case_strategy() -> impl Strategy<Value = Case> {
    let group_ns = prop_oneof![4 => Just(0usize), 1 => Just(1usize)];
    let groups = prop::collection::vec((group_ns, prop::collection::vec(match_strategy(), 1..4)), 1..3);
    let tcp_routes =
        prop::collection::vec((0..2usize, prop::collection::vec(prop::sample::select(TCP_PORTS), 0..3)), 0..3);
    let rule = prop_oneof![
        6 => (0..3usize, prop::collection::vec(0..4usize, 1..3)).prop_map(|(group, matches)| RuleD::Http { group, matches }),
        1 => (0..3usize).prop_map(|route| RuleD::Tcp { route }),
        1 => (0..3usize, prop::collection::vec(0..4usize, 1..3))
            .prop_map(|(group, matches)| RuleD::TcpNamedAfterGroup { group, matches }),
    ];
    // Destinations are mostly a/s0 so that several TrafficTargets compete for one workload.
    let dest = prop_oneof![5 => Just((0usize, 0usize)), 1 => (0..2usize, 0..SAS)];
    let sources = prop_oneof![
        9 => prop::collection::vec(source_strategy(), 1..3).prop_map(Some),
        1 => Just(None),
    ];
    let target = (dest, sources, prop::collection::vec(rule, 1..3)).prop_map(|((ns, dest), sources, rules)| TargetD {
        ns,
        dest,
        sources,
        rules,
    });
    let split = (0..2usize, 0..SAS, prop::collection::vec((0..SAS, 0..3i64), 1..3));
    (
        prop::array::uniform2(prop::array::uniform3(prop::bool::weighted(0.3))),
        groups,
        tcp_routes,
        prop::collection::vec(target, 1..8),
        prop::collection::vec(split, 0..2),
    )
        .prop_map(|(mysql, groups, tcp_routes, targets, splits)| Case {
            mysql,
            groups,
            tcp_routes,
            targets,
            splits,
        })
}

/// One generated request: to workload `w-s<dest_sa>` of `dest_ns`.
#[derive(Clone, Debug)]
pub struct RequestD {
    pub source: (usize, usize),
    pub dest: (usize, usize),
    /// `None`: a TCP connection to this port.
    pub tcp_port: Option<i32>,
    pub method: &'static str,
    pub path: &'static str,
    /// 0: `svc.ns:80`, 1: `svc`, 2: `svc.ns.svc.cluster.local:80`, 3: a split root's name.
    pub authority_form: usize,
    pub user_agent: Option<&'static str>,
    pub team: Option<&'static str>,
    /// Take the source and destination from a TrafficTarget of the case (indexes taken modulo),
    /// so that most requests exercise a grant.
    pub follow: Option<(usize, usize)>,
}

impl RequestD {
    /// The request with `follow` applied.
    pub fn resolve(&self, case: &Case) -> RequestD {
        let mut out = self.clone();
        if let Some((t, s)) = self.follow
            && !case.targets.is_empty()
        {
            let target = &case.targets[t % case.targets.len()];
            out.dest = (target.ns, target.dest);
            if let Some(sources) = target.sources.as_ref().filter(|s| !s.is_empty()) {
                out.source = sources[s % sources.len()];
            }
        }
        out.follow = None;
        out
    }
}

/// Callers: mostly a few ServiceAccounts of namespace a, so that grants collide; `s3` has no
/// workload and is never a destination.
fn source_strategy() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![6 => (Just(0usize), 0..SAS), 1 => (Just(1usize), 0..SAS), 1 => Just((0usize, SAS))]
}

pub fn request_strategy() -> impl Strategy<Value = RequestD> {
    let dest = prop_oneof![4 => Just((0usize, 0usize)), 1 => (0..2usize, 0..SAS)];
    let tcp = prop_oneof![6 => Just(None), 1 => Just(Some(5432)), 1 => Just(Some(3306))];
    (
        source_strategy(),
        dest,
        tcp,
        prop::sample::select(REQUEST_METHODS),
        prop_oneof![3 => prop::sample::select(&REQUEST_PATHS[..5]), 1 => prop::sample::select(REQUEST_PATHS)],
        prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
        prop::option::weighted(0.7, prop::sample::select(USER_AGENTS)),
        prop::option::weighted(0.5, prop::sample::select(TEAMS)),
        prop::option::weighted(0.8, (0..8usize, 0..3usize)),
    )
        .prop_map(|(source, dest, tcp_port, method, path, authority_form, user_agent, team, follow)| RequestD {
            source,
            dest,
            tcp_port,
            method,
            path,
            authority_form,
            user_agent,
            team,
            follow,
        })
}

/// The translation input of a case.
pub fn build(case: &Case) -> TranslationInput {
    let mut input = TranslationInput::default();
    workloads(&mut input, HTTP_TARGET_PORT, "mysql", case.mysql);
    for (i, (ns, matches)) in case.groups.iter().enumerate() {
        let matches = matches.iter().map(|m| HTTPMatch {
            name: String::new(),
            path_regex: m.path.map(str::to_string),
            methods: m.methods.iter().map(|s| s.to_string()).collect(),
            headers: m
                .headers
                .as_ref()
                .map(|headers| headers.iter().map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())])).collect()),
        });
        input.http_route_groups.push(route_group(i, NAMESPACES[*ns], matches));
    }
    input.tcp_routes.extend(tcp_routes(&case.tcp_routes));
    for (i, t) in case.targets.iter().enumerate() {
        let ns = NAMESPACES[t.ns];
        let rules = t.rules.iter().map(RuleD::rule).collect();
        let sources = t.sources.iter().flatten().map(|(n, s)| service_account(*s, Some(NAMESPACES[*n]))).collect();
        input.traffic_targets.push(traffic_target(i, ns, service_account(t.dest, Some(ns)), rules, sources));
    }
    for (i, (ns, root, backends)) in case.splits.iter().enumerate() {
        input.traffic_splits.push(traffic_split(i, NAMESPACES[*ns], format!("svc-s{root}"), backends));
    }
    input
}
