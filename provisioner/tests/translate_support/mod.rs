//! Request simulators for the translation's property tests, written independently of it:
//! - [`smi_decide`]: SMI as OSM v1.2.4 enforces it, from its source, independently of the
//!   translator: L4 per TrafficTarget first, then every TrafficTarget order (≤ 6) builds OSM's
//!   route table (rules → matches, identical routes merged) and the first matching route decides;
//! - [`istio_allows`]: Istio AuthorizationPolicy (DENY first; then, if any ALLOW policy selects
//!   the workload, some ALLOW rule must match; strings exact, `abc*`, `*abc`, `*`; HTTP-only
//!   fields never match TCP);
//! - [`route`]: GAMMA HTTPRoutes attached to a Service (a request reaches backends only through a
//!   matching rule; 404 otherwise).

#![allow(dead_code)]

pub mod objects;

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::apis::standard::httproutes::{
    HttpRoute, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mesh_crds::istio::{AuthorizationPolicy, AuthorizationRule};
use mesh_provisioner::translate::TranslationInput;
use regex::Regex;

/// A request to a workload.
#[derive(Clone, Debug)]
pub struct Request {
    pub source_namespace: String,
    pub source_sa: String,
    pub kind: RequestKind,
}

#[derive(Clone, Debug)]
pub enum RequestKind {
    Http { method: String, path: String, headers: Vec<(String, String)> },
    Tcp { port: i32 },
}

/// A destination workload: namespace, ServiceAccount, pod labels.
#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
}

/// Every pod kind of the input.
pub fn pods(input: &TranslationInput) -> Vec<Pod> {
    input
        .deployments
        .iter()
        .filter_map(|d| {
            let template = &d.spec.as_ref()?.template;
            Some(Pod {
                namespace: d.namespace().unwrap_or_default(),
                service_account: template
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default(),
            })
        })
        .collect()
}

thread_local! {
    static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Option<Regex>>> = Default::default();
}

/// RE2-style full match (`^(?:…)$`); an invalid regex matches nothing.
pub fn full_match(regex: &str, value: &str) -> bool {
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let compiled = cache.entry(regex.to_string()).or_insert_with(|| Regex::new(&format!("^(?:{regex})$")).ok());
        compiled.as_ref().is_some_and(|r| r.is_match(value))
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Container ports of `pod` that a Service declares TCP (`appProtocol: tcp`, or a `tcp-` name).
fn tcp_ports(input: &TranslationInput, pod: &Pod) -> Vec<i32> {
    let mut out = Vec::new();
    for service in &input.services {
        if service.namespace().unwrap_or_default() != pod.namespace {
            continue;
        }
        let Some(spec) = &service.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        if !selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
            continue;
        }
        for port in spec.ports.iter().flatten() {
            let tcp = match port.app_protocol.as_deref() {
                Some(p) => p == "tcp" || p == "tcp-server-first",
                None => port.name.as_deref().is_some_and(|n| n.starts_with("tcp-")),
            };
            if tcp {
                out.push(match &port.target_port {
                    Some(IntOrString::Int(p)) => *p,
                    _ => port.port,
                });
            }
        }
    }
    out
}

/// OSM's decision on a request: allowed under every TrafficTarget order, under some, and the
/// TrafficTargets whose own grant admits it (one of them must be named by a notification where
/// the translation is narrower).
#[derive(Debug, Default)]
pub struct SmiDecision {
    pub allowed_every_order: bool,
    pub allowed_some_order: bool,
    pub admitting: Vec<String>,
}

struct OsmRoute {
    path: String,
    methods: Vec<String>,
    headers: BTreeMap<String, String>,
    principals: BTreeSet<String>,
}

fn osm_route_matches(route: &OsmRoute, method: &str, path: &str, headers: &[(String, String)]) -> bool {
    let method_ok =
        route.methods.iter().any(|m| m == "*") || route.methods.iter().any(|m| !m.is_empty() && full_match(m, method));
    let headers_ok = route.headers.iter().all(|(name, regex)| {
        let value = if name == "host" {
            header(headers, "host")
        } else if name.eq_ignore_ascii_case("host") {
            None // OSM's Envoy reads the authority only under the key `host`.
        } else {
            header(headers, name)
        };
        value.is_some_and(|v| full_match(regex, v))
    });
    method_ok && headers_ok && full_match(&route.path, path)
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for i in 0..=rest.len() {
            let mut next = rest.clone();
            next.insert(i, n - 1);
            out.push(next);
        }
    }
    out
}

/// OSM v1.2.4 on `request` to `pod`: L4 first (per-TrafficTarget ports, a missing TCPRoute = no
/// L4), then (HTTP) the first matching route under every TrafficTarget order, identical routes
/// merged.
pub fn smi_decide(input: &TranslationInput, pod: &Pod, request: &Request) -> SmiDecision {
    let principal = (request.source_namespace.as_str(), request.source_sa.as_str());
    let mut valid = Vec::new();
    for tt in &input.traffic_targets {
        let ns = tt.namespace().unwrap_or_default();
        let spec = &tt.spec;
        if ns != pod.namespace
            || spec.destination.namespace.as_deref() != Some(ns.as_str())
            || spec.destination.name != pod.service_account
            || spec.rules.is_empty()
            || spec.rules.iter().any(|r| r.kind != "HTTPRouteGroup" && r.kind != "TCPRoute")
        {
            continue;
        }
        valid.push(tt);
    }
    valid.sort_by_key(|t| t.name_any());
    valid.dedup_by_key(|t| t.name_any());
    let admits = |tt: &mesh_crds::smi::TrafficTarget| {
        tt.spec.sources.is_empty()
            || tt.spec.sources.iter().any(|s| s.namespace.as_deref() == Some(principal.0) && s.name == principal.1)
    };
    let reference = |tt: &mesh_crds::smi::TrafficTarget| format!("TrafficTarget/{}/{}", pod.namespace, tt.name_any());
    let port = match &request.kind {
        RequestKind::Http { .. } => 80,
        RequestKind::Tcp { port } => *port,
    };
    let mut l4_ok = false;
    for tt in &valid {
        let mut ports: Vec<i32> = Vec::new();
        let mut missing = false;
        for rule in tt.spec.rules.iter().filter(|r| r.kind == "TCPRoute") {
            let route = input
                .tcp_routes
                .iter()
                .rev()
                .find(|r| r.namespace().unwrap_or_default() == pod.namespace && r.name_any() == rule.name);
            match route {
                Some(route) => ports.extend(route.spec.matches.ports.iter().copied()),
                None => missing = true,
            }
        }
        if !missing && admits(tt) && (ports.is_empty() || ports.contains(&port)) {
            l4_ok = true;
        }
    }
    let mut decision = SmiDecision::default();
    let RequestKind::Http { method, path, headers } = &request.kind else {
        decision.allowed_every_order = l4_ok && tcp_ports(input, pod).contains(&port);
        decision.allowed_some_order = decision.allowed_every_order;
        if decision.allowed_every_order {
            decision.admitting = valid.iter().filter(|t| admits(t)).map(|t| reference(t)).collect();
        }
        return decision;
    };
    let mut per_target: Vec<Vec<OsmRoute>> = Vec::new();
    for tt in &valid {
        let mut routes = Vec::new();
        let principals: BTreeSet<String> =
            tt.spec.sources.iter().map(|s| format!("{}/{}", s.namespace.clone().unwrap_or_default(), s.name)).collect();
        for rule in tt.spec.rules.iter().filter(|r| r.kind == "HTTPRouteGroup") {
            let group = input
                .http_route_groups
                .iter()
                .rev()
                .find(|g| g.namespace().unwrap_or_default() == pod.namespace && g.name_any() == rule.name);
            let Some(group) = group else { continue };
            if group.spec.matches.iter().any(|m| m.headers.iter().flatten().any(|h| h.len() != 1)) {
                continue;
            }
            for wanted in &rule.matches {
                let Some(m) = group.spec.matches.iter().rev().find(|m| &m.name == wanted) else { continue };
                let mut merged = BTreeMap::new();
                for element in m.headers.iter().flatten() {
                    for (k, v) in element {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                routes.push(OsmRoute {
                    path: m.path_regex.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| ".*".into()),
                    methods: if m.methods.is_empty() { vec!["*".into()] } else { m.methods.clone() },
                    headers: merged,
                    principals: principals.clone(),
                });
            }
        }
        per_target.push(routes);
    }
    let me = format!("{}/{}", principal.0, principal.1);
    let permuted = valid.len().min(6);
    let mut every = true;
    let mut some = false;
    for order in permutations(permuted) {
        let mut table: Vec<OsmRoute> = Vec::new();
        for t in order.into_iter().chain(permuted..valid.len()) {
            for route in &per_target[t] {
                let same = table
                    .iter_mut()
                    .find(|r| r.path == route.path && r.methods == route.methods && r.headers == route.headers);
                match same {
                    Some(existing) => existing.principals.extend(route.principals.iter().cloned()),
                    None => table.push(OsmRoute {
                        path: route.path.clone(),
                        methods: route.methods.clone(),
                        headers: route.headers.clone(),
                        principals: route.principals.clone(),
                    }),
                }
            }
        }
        let first = table.iter().find(|r| osm_route_matches(r, method, path, headers));
        let ok = l4_ok && first.is_some_and(|r| r.principals.is_empty() || r.principals.contains(&me));
        every &= ok;
        some |= ok;
    }
    decision.allowed_every_order = every && !valid.is_empty();
    decision.allowed_some_order = some;
    for (t, tt) in valid.iter().enumerate() {
        if admits(tt) && per_target[t].iter().any(|r| osm_route_matches(r, method, path, headers)) {
            decision.admitting.push(reference(tt));
        }
    }
    decision
}

/// Istio string matching: exact, `abc*`, `*abc`, `*` (presence).
pub fn istio_str(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else {
        pattern == value
    }
}

/// Whether `rule` matches; a DENY rule on TCP is matched with its HTTP-only fields ignored, as
/// Istio does (the deny then covers the whole connection).
fn rule_matches(rule: &AuthorizationRule, request: &Request, deny: bool) -> bool {
    let principal = format!("cluster.local/ns/{}/sa/{}", request.source_namespace, request.source_sa);
    let from_ok = rule.from.is_empty()
        || rule.from.iter().any(|f| {
            let s = &f.source;
            (s.principals.is_empty() || s.principals.iter().any(|p| istio_str(p, &principal)))
                && !s.not_principals.iter().any(|p| istio_str(p, &principal))
                && (s.namespaces.is_empty() || s.namespaces.iter().any(|n| istio_str(n, &request.source_namespace)))
                && s.ip_blocks.is_empty()
        });
    let port = match &request.kind {
        RequestKind::Tcp { port } => *port,
        RequestKind::Http { .. } => 80,
    }
    .to_string();
    let to_ok = rule.to.is_empty()
        || rule.to.iter().any(|t| {
            let op = &t.operation;
            let http_only = !op.methods.is_empty() || !op.paths.is_empty() || !op.hosts.is_empty();
            let ports_ok = (op.ports.is_empty() || op.ports.iter().any(|p| istio_str(p, &port)))
                && !op.not_ports.iter().any(|p| istio_str(p, &port));
            match &request.kind {
                RequestKind::Tcp { .. } => ports_ok && (deny || !http_only),
                RequestKind::Http { method, path, headers } => {
                    let host = header(headers, "host").map(str::to_ascii_lowercase);
                    ports_ok
                        && (op.hosts.is_empty()
                            || host.is_some_and(|h| op.hosts.iter().any(|x| istio_str(&x.to_ascii_lowercase(), &h))))
                        && (op.methods.is_empty() || op.methods.iter().any(|m| istio_str(m, method)))
                        && (op.paths.is_empty() || op.paths.iter().any(|p| istio_str(p, path)))
                }
            }
        });
    let when_ok = rule.when.iter().all(|c| {
        let Some(name) = c.key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) else {
            return false;
        };
        let RequestKind::Http { headers, .. } = &request.kind else { return deny };
        let name = if name == ":authority" { "host" } else { name };
        match header(headers, name) {
            None => false,
            Some(value) => {
                (c.values.is_empty() || c.values.iter().any(|v| istio_str(v, value)))
                    && !c.not_values.iter().any(|v| istio_str(v, value))
            }
        }
    });
    from_ok && to_ok && when_ok
}

/// Whether Istio admits `request` to `pod` under `policies` (every request carries a mesh
/// identity here).
pub fn istio_allows(policies: &[AuthorizationPolicy], pod: &Pod, request: &Request) -> bool {
    let selecting: Vec<&AuthorizationPolicy> = policies
        .iter()
        .filter(|p| p.namespace().unwrap_or_default() == pod.namespace)
        .filter(|p| {
            p.spec.selector.as_ref().is_none_or(|s| s.match_labels.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
        })
        .collect();
    let action = |p: &AuthorizationPolicy| p.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
    let denied = selecting
        .iter()
        .filter(|p| action(p) == "DENY")
        .any(|p| p.spec.rules.iter().any(|r| rule_matches(r, request, true)));
    if denied {
        return false;
    }
    let allow: Vec<&&AuthorizationPolicy> = selecting.iter().filter(|p| action(p) == "ALLOW").collect();
    allow.is_empty() || allow.iter().any(|p| p.spec.rules.iter().any(|r| rule_matches(r, request, false)))
}

fn path_prefix(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/"))
}

fn route_match(m: &HttpRouteRulesMatches, method: &str, path: &str, headers: &[(String, String)]) -> bool {
    let path_ok = match &m.path {
        None => true,
        Some(p) => {
            let value = p.value.as_deref().unwrap_or("/");
            match p.r#type {
                Some(HttpRouteRulesMatchesPathType::Exact) => path == value,
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => full_match(value, path),
                _ => path_prefix(value, path),
            }
        }
    };
    let method_ok = m.method.as_ref().is_none_or(|x| {
        let name = serde_json::to_value(x).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        name == method
    });
    let headers_ok = m.headers.iter().flatten().all(|h| match header(headers, &h.name) {
        None => false,
        Some(value) => match h.r#type {
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => full_match(&h.value, value),
            _ => h.value == value,
        },
    });
    path_ok && method_ok && headers_ok
}

/// Backend weight distributions of the rules matching an HTTP request to `root:port`:
/// `None` when no route is attached; `Some(vec![])` for a 404.
pub fn route(
    routes: &[HttpRoute],
    namespace: &str,
    root: &str,
    port: i32,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> Option<Vec<BTreeMap<String, i64>>> {
    let attached: Vec<&HttpRoute> = routes
        .iter()
        .filter(|r| r.namespace().unwrap_or_default() == namespace)
        .filter(|r| {
            r.spec.parent_refs.iter().flatten().any(|p| {
                p.group.as_deref() == Some("")
                    && p.kind.as_deref() == Some("Service")
                    && p.name == root
                    && p.port.is_none_or(|x| x == port)
            })
        })
        .collect();
    if attached.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in attached {
        for rule in r.spec.rules.iter().flatten() {
            let matches = rule.matches.clone().unwrap_or_default();
            let hit = matches.is_empty() || matches.iter().any(|m| route_match(m, method, path, headers));
            if hit {
                let mut weights = BTreeMap::new();
                for b in rule.backend_refs.iter().flatten() {
                    assert_eq!(b.port, Some(port), "backendRef port must be the root port");
                    *weights.entry(b.name.clone()).or_insert(0) += i64::from(b.weight.unwrap_or(1));
                }
                out.push(weights);
            }
        }
    }
    Some(out)
}

/// Whether two weight maps give every backend the same share.
pub fn same_shares(a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>) -> bool {
    let (sa, sb): (i128, i128) = (a.values().map(|v| i128::from(*v)).sum(), b.values().map(|v| i128::from(*v)).sum());
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().all(|k| {
        let (x, y) = (i128::from(*a.get(k).unwrap_or(&0)), i128::from(*b.get(k).unwrap_or(&0)));
        x * sb == y * sa
    })
}
