//! TrafficSplit → GAMMA HTTPRoutes.
//!
//! A TrafficSplit becomes a *producer* route in the root Service's namespace, attached to the
//! root Service (`parentRefs: [{group: "", kind: Service, name: <root>, port: <p>}]`), sending
//! to the backends with their weights. OSM shared ports between root and backends (a request to
//! root port `p` goes to backend port `p`), so each root port gets its own route when the root
//! has several, with backendRefs on that port.
//!
//! OSM routed **every** request to a split root by the weights (its outbound routes were
//! wildcards; HTTPRouteGroups only constrained the destination's inbound side). The routes keep
//! that: the HTTPRouteGroup matches granted on the split's backends appear as rules (one per
//! group, split in chunks of 64 matches), every rule has the same weighted backends, and a final
//! catch-all rule (`PathPrefix /`) routes what no match names, because a route attached to a
//! Service rejects unmatched requests with 404.

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::apis::standard::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeaders, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesMethod,
    HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType, HttpRouteSpec,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use mesh_crds::smi::TrafficSplit;

use super::SOURCE_ANNOTATION;
use super::index::{Index, PortInfo, namespace_of};
use super::limits::{self, MAX_BACKEND_REFS, MAX_HEADERS, MAX_WEIGHT};
use super::names::{self, FastMap, is_dns_label};
use super::notify::{Notes, object_ref, quote};
use super::regex_analysis::{self, Analyzer, Domain, RoutePath, Unexpressible};
use super::resolve::{GrantedMatch, ResolvedTarget};

/// The name a split's `spec.service` (or a backend) refers to, in namespace `namespace`.
pub(crate) fn local_service_name(service: &str, namespace: &str) -> Result<String, String> {
    let service = service.trim();
    // `name`, `name.<ns>`, `name.<ns>.svc`, `name.<ns>.svc.cluster.local` (longest first).
    let name = [".svc.cluster.local", ".svc", ""]
        .iter()
        .find_map(|suffix| service.strip_suffix(suffix)?.strip_suffix(namespace)?.strip_suffix('.'))
        .unwrap_or(service);
    if name.contains('.') {
        return Err(format!(
            "{service:?} names a Service outside namespace {namespace}: OSM looks root and backend Services up in the TrafficSplit's namespace"
        ));
    }
    if !is_dns_label(name) {
        return Err(format!("{service:?} is not a valid Service name"));
    }
    Ok(name.to_string())
}

/// Weights as Gateway API takes them (0..=1,000,000). Kept as written when they fit; otherwise
/// divided by their greatest common divisor; otherwise scaled (approximately, `true`).
pub(crate) fn gateway_weights(weights: &[i64]) -> (Vec<i32>, bool) {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let max = weights.iter().copied().max().unwrap_or(0);
    let to_i32 = |w: i64| i32::try_from(w).unwrap_or(i32::MAX);
    if max <= MAX_WEIGHT {
        return (weights.iter().map(|w| to_i32(*w)).collect(), false);
    }
    let divisor = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd).max(1);
    if max / divisor <= MAX_WEIGHT {
        return (weights.iter().map(|w| to_i32(w / divisor)).collect(), false);
    }
    let scaled = weights
        .iter()
        .map(|&w| {
            if w == 0 {
                0
            } else {
                let value = (i128::from(w) * i128::from(MAX_WEIGHT) + i128::from(max) / 2) / i128::from(max);
                i32::try_from(value.max(1)).unwrap_or(i32::MAX)
            }
        })
        .collect();
    (scaled, true)
}

/// What one granted match becomes in a route, with the notifications it caused.
struct Converted {
    matches: Vec<HttpRouteRulesMatches>,
}

fn method(value: &str) -> Option<HttpRouteRulesMatchesMethod> {
    Some(match value {
        "GET" => HttpRouteRulesMatchesMethod::Get,
        "HEAD" => HttpRouteRulesMatchesMethod::Head,
        "POST" => HttpRouteRulesMatchesMethod::Post,
        "PUT" => HttpRouteRulesMatchesMethod::Put,
        "DELETE" => HttpRouteRulesMatchesMethod::Delete,
        "CONNECT" => HttpRouteRulesMatchesMethod::Connect,
        "OPTIONS" => HttpRouteRulesMatchesMethod::Options,
        "TRACE" => HttpRouteRulesMatchesMethod::Trace,
        "PATCH" => HttpRouteRulesMatchesMethod::Patch,
        _ => return None,
    })
}

fn path_match(kind: HttpRouteRulesMatchesPathType, value: String) -> Option<HttpRouteRulesMatchesPath> {
    Some(HttpRouteRulesMatchesPath { r#type: Some(kind), value: Some(value) })
}

/// `match "<name>"` in messages, formatted only when a message is written.
struct MatchName<'n>(&'n str);

impl std::fmt::Display for MatchName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "match {:?}", self.0)
    }
}

fn convert(grant: &GrantedMatch<'_>, analyzer: &mut Analyzer, notes: &mut Notes) -> Converted {
    let none = Converted { matches: Vec::new() };
    let m = grant.http_match;
    let object = &grant.group_ref;
    let label = MatchName(&m.name);
    let path = match m.path_regex.as_deref().filter(|p| !p.is_empty()) {
        None => path_match(HttpRouteRulesMatchesPathType::PathPrefix, "/".to_string()),
        Some(regex) => {
            let analysis = analyzer.analyze(regex, Domain::Path);
            let route_path = match analysis.as_ref() {
                Ok(form) => regex_analysis::route_path(form),
                Err(Unexpressible::Invalid(e)) => {
                    notes.error(object, format!("{label}: path regex {} is not a valid RE2 regular expression ({e}); OSM's Envoy rejects it too; left out of the routes", quote(regex)));
                    return none;
                }
                Err(Unexpressible::TooLong(_)) => {
                    notes.error(object, format!("{label}: path regex is longer than {} characters, the HTTPRoute limit; left out of the routes", limits::MAX_PATH));
                    return none;
                }
                Err(_) => RoutePath::Regex,
            };
            match route_path {
                RoutePath::Exact(value) | RoutePath::Prefix(value) if limits::check_path_value(&value).is_err() => {
                    let problem = limits::check_path_value(&value).err().unwrap_or_default();
                    notes.error(
                        object,
                        format!("{label}: path {value:?} breaks the HTTPRoute CRD validation ({problem}); the API server would reject the route, so this match is left out of it"),
                    );
                    return none;
                }
                RoutePath::Exact(value) => path_match(HttpRouteRulesMatchesPathType::Exact, value),
                RoutePath::Prefix(value) => path_match(HttpRouteRulesMatchesPathType::PathPrefix, value),
                RoutePath::Nothing => {
                    notes.info(
                        object,
                        format!(
                            "{label}: path regex {} matches no path (paths start with '/'): left out of the routes",
                            quote(regex)
                        ),
                    );
                    return none;
                }
                RoutePath::Regex => {
                    if regex.len() > limits::MAX_PATH {
                        notes.error(object, format!("{label}: path regex is longer than {} characters, the HTTPRoute limit; left out of the routes", limits::MAX_PATH));
                        return none;
                    }
                    notes.warning(
                        object,
                        format!("{label}: path regex {} is not a literal or a literal prefix, so the route uses a RegularExpression path match: implementation-specific in Gateway API and not portable (Istio evaluates it with RE2, as OSM did)", quote(regex)),
                    );
                    path_match(HttpRouteRulesMatchesPathType::RegularExpression, regex.to_string())
                }
            }
        }
    };

    if grant.headers.len() > MAX_HEADERS {
        notes.error(
            object,
            format!(
                "{label}: {} headers, an HTTPRoute match holds at most {MAX_HEADERS}; left out of the routes",
                grant.headers.len()
            ),
        );
        return none;
    }
    let mut headers = Vec::new();
    for (name, regex) in &grant.headers {
        if let Err(e) = limits::check_header_name(name) {
            notes.error(object, format!("{label}: {e}; left out of the routes"));
            return none;
        }
        if regex.is_empty() {
            notes.error(object, format!("{label}: header {name} has an empty regex (only an empty value matches); HTTPRoute header values must not be empty, so the match is left out of the routes"));
            return none;
        }
        let analysis = analyzer.analyze(regex, Domain::HeaderValue);
        match analysis.as_ref() {
            Err(Unexpressible::Invalid(e)) => {
                notes.error(object, format!("{label}: header {name} regex {} is not a valid RE2 regular expression ({e}); left out of the routes", quote(regex)));
                return none;
            }
            Err(Unexpressible::TooLong(_)) => {
                notes.error(object, format!("{label}: header {name} regex is too long; left out of the routes"));
                return none;
            }
            _ => {}
        }
        let literal = analysis.as_ref().as_ref().ok().and_then(regex_analysis::route_header_literal);
        let (kind, value) = match literal {
            Some(value) => (HttpRouteRulesMatchesHeadersType::Exact, value),
            None => {
                notes.warning(
                    object,
                    format!("{label}: header {name} regex {} is not a literal, so the route uses a RegularExpression header match: implementation-specific in Gateway API and not portable (Istio evaluates it with RE2, as OSM did)", quote(regex)),
                );
                (HttpRouteRulesMatchesHeadersType::RegularExpression, regex.to_string())
            }
        };
        if value.len() > limits::MAX_HEADER_VALUE {
            notes.error(
                object,
                format!(
                    "{label}: header {name} value is longer than {} characters; left out of the routes",
                    limits::MAX_HEADER_VALUE
                ),
            );
            return none;
        }
        headers.push(HttpRouteRulesMatchesHeaders { name: name.to_string(), r#type: Some(kind), value });
    }

    // Methods are full-match regexes (`GET|POST`), `*` anywhere in the list means any.
    let mut methods: Vec<Option<HttpRouteRulesMatchesMethod>> = Vec::new();
    if m.methods.is_empty() || m.methods.iter().any(|x| x == "*") {
        methods.push(None);
    } else {
        let mut seen = BTreeSet::new();
        for regex in m.methods.iter().filter(|x| !x.is_empty()) {
            let Some(literals) = super::operations::exact_methods(regex, analyzer) else {
                notes.warning(
                    object,
                    format!("{label}: method regex {} is not a list of literal methods; left out of the routes (the catch-all rule still routes it)", quote(regex)),
                );
                continue;
            };
            for value in literals {
                if !seen.insert(value.clone()) {
                    continue;
                }
                match method(&value) {
                    Some(known) => methods.push(Some(known)),
                    None => notes.warning(
                        object,
                        format!("{label}: method {value:?} is not one Gateway API matches (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH; case-sensitive); left out of the routes (the catch-all rule still routes it)"),
                    ),
                }
            }
        }
    }
    let headers = (!headers.is_empty()).then_some(headers);
    let matches = methods
        .into_iter()
        .map(|method| HttpRouteRulesMatches {
            headers: headers.clone(),
            method,
            path: path.clone(),
            query_params: None,
        })
        .collect();
    Converted { matches }
}

/// Translates every TrafficSplit.
pub(crate) fn translate_splits(
    splits: &[TrafficSplit],
    index: &Index<'_>,
    targets: &[ResolvedTarget<'_>],
    analyzer: &mut Analyzer,
    notes: &mut Notes,
) -> Vec<HttpRoute> {
    let mut targets_by_destination: FastMap<(&str, &str), Vec<usize>> = FastMap::default();
    for (i, target) in targets.iter().enumerate() {
        targets_by_destination.entry((target.namespace, target.destination)).or_default().push(i);
    }
    let mut sorted: BTreeMap<(String, String), &TrafficSplit> = BTreeMap::new();
    for split in splits {
        let key = (namespace_of(split), split.name_any());
        if sorted.insert(key.clone(), split).is_some() {
            notes.warning(
                &object_ref("TrafficSplit", &key.0, &key.1),
                "defined more than once in the input; the last definition is used",
            );
        }
    }
    let mut converted: FastMap<(std::rc::Rc<str>, usize), Converted> = FastMap::default();
    let mut routes = Vec::new();
    for ((namespace, name), split) in sorted {
        let context = SplitContext {
            namespace: &namespace,
            name: &name,
            index,
            targets,
            targets_by_destination: &targets_by_destination,
        };
        routes.extend(translate_split(split, &context, &mut converted, analyzer, notes));
    }
    routes
}

struct SplitContext<'s, 'a> {
    namespace: &'s str,
    name: &'s str,
    index: &'s Index<'a>,
    targets: &'s [ResolvedTarget<'a>],
    targets_by_destination: &'s FastMap<(&'s str, &'s str), Vec<usize>>,
}

fn translate_split(
    split: &TrafficSplit,
    context: &SplitContext<'_, '_>,
    converted: &mut FastMap<(std::rc::Rc<str>, usize), Converted>,
    analyzer: &mut Analyzer,
    notes: &mut Notes,
) -> Vec<HttpRoute> {
    let (namespace, name, index) = (context.namespace, context.name, context.index);
    let object = object_ref("TrafficSplit", namespace, name);
    let root = match local_service_name(&split.spec.service, namespace) {
        Ok(root) => root,
        Err(e) => {
            notes.error(&object, format!("spec.service {e}; no route is generated"));
            return Vec::new();
        }
    };
    let Some(root_service) = index.service(namespace, &root) else {
        notes.error(&object, format!("root Service {namespace}/{root} is not in the input: its ports are needed for the route's parentRefs; no route is generated"));
        return Vec::new();
    };
    if root_service.external_name || root_service.headless {
        notes.error(&object, format!("root Service {namespace}/{root} is {}: only ClusterIP Services can be GAMMA parents; no route is generated", if root_service.headless { "headless" } else { "an ExternalName Service" }));
        return Vec::new();
    }
    if root_service.ports.is_empty() {
        notes.error(&object, format!("root Service {namespace}/{root} has no ports; no route is generated"));
        return Vec::new();
    }

    // Backends: merged by name (weights add up), in order of first appearance.
    let mut backends: Vec<(String, i64)> = Vec::new();
    for backend in &split.spec.backends {
        let backend_name = match local_service_name(&backend.service, namespace) {
            Ok(n) => n,
            Err(e) => {
                notes.error(&object, format!("backend {e}; no route is generated"));
                return Vec::new();
            }
        };
        if backend.weight < 0 {
            notes.error(
                &object,
                format!("backend {backend_name} has a negative weight ({}); no route is generated", backend.weight),
            );
            return Vec::new();
        }
        match backends.iter_mut().find(|(n, _)| *n == backend_name) {
            Some((_, weight)) => {
                *weight = weight.saturating_add(backend.weight);
                notes.info(
                    &object,
                    format!("backend {backend_name} is listed more than once; its weights are added up"),
                );
            }
            None => backends.push((backend_name, backend.weight)),
        }
    }
    if backends.is_empty() {
        notes.error(&object, "it has no backends; no route is generated");
        return Vec::new();
    }
    if backends.iter().all(|(_, w)| *w == 0) {
        notes.error(
            &object,
            "every backend weight is 0 (OSM requires a total weight of at least 1); no route is generated",
        );
        return Vec::new();
    }
    if backends.len() > MAX_BACKEND_REFS {
        let before = backends.len();
        backends.retain(|(_, w)| *w > 0);
        notes.info(&object, format!("{} backends with weight 0 left out (they receive no traffic) to fit Gateway API's {MAX_BACKEND_REFS} backendRefs per rule", before - backends.len()));
        if backends.len() > MAX_BACKEND_REFS {
            notes.error(&object, format!("{} backends with traffic, but an HTTPRoute rule holds at most {MAX_BACKEND_REFS} backendRefs and weights cannot be split across routes; no route is generated", backends.len()));
            return Vec::new();
        }
    }
    let mut missing = Vec::new();
    for (backend_name, _) in &backends {
        if index.service(namespace, backend_name).is_none() {
            missing.push(backend_name.as_str());
        }
    }
    if !missing.is_empty() {
        notes.error(
            &object,
            format!(
                "backend Service(s) {} not in the input (backendRefs need their ports); no route is generated",
                missing.join(", ")
            ),
        );
        return Vec::new();
    }
    let weights: Vec<i64> = backends.iter().map(|(_, w)| *w).collect();
    let (weights, approximated) = gateway_weights(&weights);
    if approximated {
        notes.warning(&object, format!("weights exceed Gateway API's maximum of {MAX_WEIGHT} and were scaled down; the traffic shares are approximate"));
    }

    let mut group_rules = match_rules(split, context, converted, analyzer, notes);

    let mut routes = Vec::new();
    let mut ports: Vec<&PortInfo> = root_service.ports.iter().collect();
    ports.sort_by_key(|p| p.port);
    ports.dedup_by_key(|p| p.port);
    let several = ports.len() > 1;
    for (p, port) in ports.iter().enumerate() {
        if port.is_non_http() {
            notes.error(&object, format!("root Service port {} is not HTTP (appProtocol or name says TCP): a TCP split needs TCPRoute, which is not in Gateway API's Standard channel; this port is not split", port.port));
            continue;
        }
        let lacking: Vec<&str> = backends
            .iter()
            .filter(|(b, _)| index.service(namespace, b).is_some_and(|s| !s.ports.iter().any(|p| p.port == port.port)))
            .map(|(b, _)| b.as_str())
            .collect();
        if !lacking.is_empty() {
            notes.error(&object, format!("backend Service(s) {} have no port {} (OSM sends a root port to the same port of each backend); this port is not split", lacking.join(", "), port.port));
            continue;
        }
        let backend_refs: Vec<HttpRouteRulesBackendRefs> = backends
            .iter()
            .zip(&weights)
            .map(|((backend_name, _), weight)| HttpRouteRulesBackendRefs {
                name: backend_name.clone(),
                port: Some(port.port),
                weight: Some(*weight),
                ..Default::default()
            })
            .collect();
        // The last port takes the match lists, the others copy them.
        let matches = if p + 1 == ports.len() { std::mem::take(&mut group_rules) } else { group_rules.clone() };
        let rules: Vec<HttpRouteRules> = matches
            .into_iter()
            .map(|matches| HttpRouteRules {
                matches: Some(matches),
                backend_refs: Some(backend_refs.clone()),
                ..Default::default()
            })
            .collect();
        let catch_all = HttpRouteRules {
            matches: Some(vec![HttpRouteRulesMatches {
                path: path_match(HttpRouteRulesMatchesPathType::PathPrefix, "/".to_string()),
                ..Default::default()
            }]),
            backend_refs: Some(backend_refs),
            ..Default::default()
        };
        let base = if several { format!("{name}-p{}", port.port) } else { name.to_string() };
        for (i, rules) in limits::pack(rules, catch_all).into_iter().enumerate() {
            let route_name = if i == 0 { names::fit(base.clone()) } else { names::fit(format!("{base}-{}", i + 1)) };
            if i == 1 {
                notes.info(&object, format!("the matches exceed one HTTPRoute's limits ({} rules, {} matches): continued in {route_name} and following", limits::MAX_RULES, limits::MAX_MATCHES_PER_ROUTE));
            }
            let route = HttpRoute {
                metadata: ObjectMeta {
                    name: Some(route_name),
                    namespace: Some(namespace.to_string()),
                    annotations: Some(BTreeMap::from([(SOURCE_ANNOTATION.to_string(), object.clone())])),
                    ..Default::default()
                },
                spec: HttpRouteSpec {
                    parent_refs: Some(vec![HttpRouteParentRefs {
                        group: Some(String::new()),
                        kind: Some("Service".to_string()),
                        name: root.clone(),
                        port: Some(port.port),
                        ..Default::default()
                    }]),
                    rules: Some(rules),
                    ..Default::default()
                },
                status: None,
            };
            for problem in limits::validate_route(&route) {
                notes.error(
                    &object,
                    format!(
                        "generated HTTPRoute {} fails validation: {problem}",
                        route.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
            }
            routes.push(route);
        }
    }
    routes
}

/// The HTTPRouteGroup matches granted on the split's backends, as rule match lists (one per
/// group, in chunks of 64), in group order.
fn match_rules(
    split: &TrafficSplit,
    context: &SplitContext<'_, '_>,
    converted: &mut FastMap<(std::rc::Rc<str>, usize), Converted>,
    analyzer: &mut Analyzer,
    notes: &mut Notes,
) -> Vec<Vec<HttpRouteRulesMatches>> {
    let (namespace, index) = (context.namespace, context.index);
    let mut service_accounts: BTreeSet<&str> = BTreeSet::new();
    for backend in &split.spec.backends {
        let Ok(backend_name) = local_service_name(&backend.service, namespace) else { continue };
        let Some(service) = index.service(namespace, &backend_name) else { continue };
        if let Some(selector) = service.selector.filter(|s| !s.is_empty()) {
            for w in index.select(namespace, selector) {
                service_accounts.insert(index.workloads[w].service_account);
            }
        }
    }
    let mut grants: BTreeMap<(&(&str, &str), usize), &GrantedMatch<'_>> = BTreeMap::new();
    for sa in service_accounts {
        for &t in context.targets_by_destination.get(&(namespace, sa)).map(Vec::as_slice).unwrap_or_default() {
            for grant in &context.targets[t].http {
                grants.insert((&grant.group_key, grant.position), grant);
            }
        }
    }
    let mut per_group: BTreeMap<&(&str, &str), Vec<HttpRouteRulesMatches>> = BTreeMap::new();
    let mut groups_used: BTreeSet<std::rc::Rc<str>> = BTreeSet::new();
    for ((group, _), grant) in grants {
        groups_used.insert(grant.group_ref.clone());
        let key = (grant.group_ref.clone(), grant.position);
        if !converted.contains_key(&key) {
            let value = convert(grant, analyzer, notes);
            converted.insert(key.clone(), value);
        }
        let list = per_group.entry(group).or_default();
        list.extend(converted.get(&key).map(|c| c.matches.as_slice()).unwrap_or_default().iter().cloned());
    }
    // A match left out of the routes is an ERROR on its group; the split's routes are then
    // incomplete too, so the ERROR names the split as well (a controller keeps its last routes).
    let split_object = object_ref("TrafficSplit", namespace, context.name);
    for group in groups_used {
        for message in notes.errors_of(&group) {
            notes.error(&split_object, format!("{group}: {message}"));
        }
    }
    per_group.into_values().filter(|m| !m.is_empty()).flat_map(limits::chunk_matches).collect()
}
