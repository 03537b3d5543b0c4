//! Request simulators for the translation's property tests, written independently of it:
//! - [`smi_allows`]: SMI as OSM v1.2 enforces it (deny by default; a TrafficTarget in its
//!   destination's namespace; only listed matches; full-path RE2 regexes; methods; headers full
//!   match, AND'ed; TCPRoute ports on ports a Service declares `appProtocol: tcp`);
//! - [`istio_allows`]: Istio AuthorizationPolicy (DENY first; then, if any ALLOW policy selects
//!   the workload, some ALLOW rule must match; strings exact, `abc*`, `*abc`, `*`; HTTP-only
//!   fields never match TCP);
//! - [`route`]: GAMMA HTTPRoutes attached to a Service (a request reaches backends only through a
//!   matching rule; 404 otherwise).

#![allow(dead_code)]

use std::collections::BTreeMap;

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

/// RE2-style full match (`^(?:…)$`); an invalid regex matches nothing.
pub fn full_match(regex: &str, value: &str) -> bool {
    Regex::new(&format!("^(?:{regex})$")).map(|r| r.is_match(value)).unwrap_or(false)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Container ports of `pod` that a Service declares `appProtocol: tcp`.
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
            let tcp = port.app_protocol.as_deref().is_some_and(|p| p == "tcp" || p == "tcp-server-first");
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

/// The TrafficTargets (`TrafficTarget/ns/name`) that admit `request` to `pod` under OSM; empty
/// means denied.
pub fn smi_allows(input: &TranslationInput, pod: &Pod, request: &Request) -> Vec<String> {
    let mut admitting = Vec::new();
    for tt in &input.traffic_targets {
        let ns = tt.namespace().unwrap_or_default();
        let spec = &tt.spec;
        if ns != pod.namespace
            || spec.destination.namespace.as_deref() != Some(ns.as_str())
            || spec.destination.name != pod.service_account
        {
            continue;
        }
        if spec.rules.is_empty() || spec.rules.iter().any(|r| r.kind != "HTTPRouteGroup" && r.kind != "TCPRoute") {
            continue;
        }
        let source_ok = spec
            .sources
            .iter()
            .any(|s| s.namespace.as_deref() == Some(request.source_namespace.as_str()) && s.name == request.source_sa);
        if !source_ok {
            continue;
        }
        let mut allowed = false;
        for rule in &spec.rules {
            match (&request.kind, rule.kind.as_str()) {
                (RequestKind::Http { method, path, headers }, "HTTPRouteGroup") => {
                    let Some(group) = input
                        .http_route_groups
                        .iter()
                        .rev()
                        .find(|g| g.namespace().unwrap_or_default() == ns && g.name_any() == rule.name)
                    else {
                        continue;
                    };
                    if group.spec.matches.iter().any(|m| m.headers.iter().any(|h| h.len() != 1)) {
                        continue;
                    }
                    for wanted in &rule.matches {
                        for m in group.spec.matches.iter().filter(|m| &m.name == wanted) {
                            let path_regex = m.path_regex.as_deref().filter(|p| !p.is_empty()).unwrap_or(".*");
                            let method_ok = m.methods.is_empty() || m.methods.iter().any(|x| x == "*" || x == method);
                            let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
                            for element in &m.headers {
                                for (k, v) in element {
                                    merged.insert(k, v);
                                }
                            }
                            let headers_ok = merged
                                .iter()
                                .all(|(name, regex)| header(headers, name).is_some_and(|v| full_match(regex, v)));
                            if method_ok && headers_ok && full_match(path_regex, path) {
                                allowed = true;
                            }
                        }
                    }
                }
                (RequestKind::Tcp { port }, "TCPRoute") => {
                    let Some(route) = input
                        .tcp_routes
                        .iter()
                        .rev()
                        .find(|r| r.namespace().unwrap_or_default() == ns && r.name_any() == rule.name)
                    else {
                        continue;
                    };
                    let ports = &route.spec.matches.ports;
                    if tcp_ports(input, pod).contains(port) && (ports.is_empty() || ports.contains(port)) {
                        allowed = true;
                    }
                }
                _ => {}
            }
        }
        if allowed {
            admitting.push(format!("TrafficTarget/{ns}/{}", tt.name_any()));
        }
    }
    admitting
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

fn rule_matches(rule: &AuthorizationRule, request: &Request) -> bool {
    let principal = format!("cluster.local/ns/{}/sa/{}", request.source_namespace, request.source_sa);
    let from_ok = rule.from.is_empty()
        || rule.from.iter().any(|f| {
            let s = &f.source;
            (s.principals.is_empty() || s.principals.iter().any(|p| istio_str(p, &principal)))
                && (s.namespaces.is_empty() || s.namespaces.iter().any(|n| istio_str(n, &request.source_namespace)))
                && s.ip_blocks.is_empty()
        });
    let to_ok = rule.to.is_empty()
        || rule.to.iter().any(|t| {
            let op = &t.operation;
            let http_only = !op.methods.is_empty() || !op.paths.is_empty() || !op.hosts.is_empty();
            match &request.kind {
                RequestKind::Tcp { port } => {
                    !http_only && (op.ports.is_empty() || op.ports.iter().any(|p| istio_str(p, &port.to_string())))
                }
                RequestKind::Http { method, path, .. } => {
                    op.hosts.is_empty()
                        && (op.ports.is_empty() || op.ports.iter().any(|p| p == "80"))
                        && (op.methods.is_empty() || op.methods.iter().any(|m| istio_str(m, method)))
                        && (op.paths.is_empty() || op.paths.iter().any(|p| istio_str(p, path)))
                }
            }
        });
    let when_ok = rule.when.iter().all(|c| {
        let Some(name) = c.key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) else {
            return false;
        };
        let RequestKind::Http { headers, .. } = &request.kind else { return false };
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

/// Whether Istio admits `request` to `pod` under `policies`.
pub fn istio_allows(policies: &[AuthorizationPolicy], pod: &Pod, request: &Request) -> bool {
    let selecting: Vec<&AuthorizationPolicy> = policies
        .iter()
        .filter(|p| p.namespace().unwrap_or_default() == pod.namespace)
        .filter(|p| {
            p.spec.selector.as_ref().is_none_or(|s| s.match_labels.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
        })
        .collect();
    let action = |p: &AuthorizationPolicy| p.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
    if selecting.iter().filter(|p| action(p) == "DENY").any(|p| p.spec.rules.iter().any(|r| rule_matches(r, request))) {
        return false;
    }
    let allow: Vec<&&AuthorizationPolicy> = selecting.iter().filter(|p| action(p) == "ALLOW").collect();
    allow.is_empty() || allow.iter().any(|p| p.spec.rules.iter().any(|r| rule_matches(r, request)))
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
