//! OSM v1.2.4's inbound HTTP enforcement for one destination identity, as a model the policies
//! are built from (`catalog/inbound_traffic_policies.go`, `trafficpolicy.MergeRules`,
//! `envoy/rds/route/route_config.go`, `rds/route/rbac.go`).
//!
//! OSM turns every granted match into a route carrying its TrafficTarget's principals, in
//! TrafficTarget → rule → match order, and merges a route into an earlier **identical** one
//! (same path regex, same method list in the same order, same headers — `headers: []` is not a
//! missing `headers`) by uniting the
//! principals. Envoy takes the **first** matching route and admits only its principals. The
//! order of TrafficTargets is a Go map iteration: OSM does not fix it, and it may differ between
//! proxies and config generations.
//!
//! # The promise
//! A request may be allowed by the translation only if OSM allows it under **every** order. The
//! merged routes and their principal sets do not depend on the order (union is commutative);
//! only their positions do. So this module computes the merged [`Route`]s and, for every pair
//! whose matches can both fit one request while the first admits someone the second does not,
//! a [`Conflict`]: under some order the second comes first and denies that someone. The policies
//! then allow a request iff some matching route admits the caller **and no matching route fails
//! to** (an ALLOW per route plus a DENY per conflicting route, [`super::authz`]): the
//! intersection of the principals of all matching routes, which is never wider than every order
//! (and narrower only where a route can never come first; the conflict WARNING names both).
//!
//! Overlap is decided on the languages of the regexes ([`super::regex_sets`]): paths, method
//! regexes, and headers both routes constrain (names compared case-insensitively, `host` as
//! `:authority`). When it cannot be decided the routes are taken to overlap (the safe side).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::names::{FastMap, Fnv};
use super::regex_sets::Languages;
use super::resolve::{GrantedMatch, OsmPrincipals, ResolvedTarget};

/// OSM's route key: what `reflect.DeepEqual` compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RouteKey<'a> {
    /// Path regex, `.*` when empty.
    pub path: &'a str,
    /// Methods as written, `["*"]` when empty.
    pub methods: Vec<&'a str>,
    /// Headers, name → regex.
    pub headers: &'a BTreeMap<&'a str, &'a str>,
    /// Whether `headers` was written (`headers: []` is an empty map to OSM, a missing one a nil
    /// map: not equal, so not merged). Matching ignores it.
    pub headers_listed: bool,
}

impl<'a> RouteKey<'a> {
    fn of(grant: &'a GrantedMatch<'a>) -> RouteKey<'a> {
        let m = grant.http_match;
        let path = m.path_regex.as_deref().filter(|p| !p.is_empty()).unwrap_or(".*");
        let methods = if m.methods.is_empty() { vec!["*"] } else { m.methods.iter().map(String::as_str).collect() };
        RouteKey { path, methods, headers: &grant.headers, headers_listed: m.headers.is_some() }
    }

    /// Whether any method matches (a `*` anywhere, as OSM's `sanitizeHTTPMethods` reads it).
    pub(crate) fn any_method(&self) -> bool {
        self.methods.contains(&"*")
    }
}

/// A grant of a route: the TrafficTarget (index into the resolved targets) and the match.
#[derive(Clone, Debug)]
pub(crate) struct Origin<'a> {
    pub target: usize,
    /// The match's group (`HTTPRouteGroup/ns/name`) and name.
    pub group_ref: Rc<str>,
    pub match_name: &'a str,
}

impl Origin<'_> {
    /// `match "<name>" of HTTPRouteGroup/ns/name`, for messages (built only when one is written).
    pub(crate) fn label(&self) -> MatchLabel<'_> {
        MatchLabel { match_name: self.match_name, group_ref: &self.group_ref }
    }
}

/// The name of a granted match in messages: `match "<name>" of HTTPRouteGroup/ns/name`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatchLabel<'l> {
    pub match_name: &'l str,
    pub group_ref: &'l str,
}

impl std::fmt::Display for MatchLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "match {:?} of {}", self.match_name, self.group_ref)
    }
}

/// A merged OSM route.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    pub key: RouteKey<'a>,
    /// The union of the principals of every TrafficTarget granting it (shared while unmerged:
    /// TrafficTargets with thousands of sources and matches stay cheap).
    pub principals: Rc<OsmPrincipals>,
    /// Every grant, in input order.
    pub origins: Vec<Origin<'a>>,
}

impl Route<'_> {
    /// Whether TrafficTarget `t` grants it.
    pub(crate) fn grants(&self, t: usize) -> bool {
        self.origins.iter().any(|o| o.target == t)
    }
}

/// Route `shadowing` may come first for a request route `shadowed` also matches, and admits
/// callers `shadowed` does not (or the other way round): order-dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub admitting: usize,
    pub denying: usize,
}

/// One destination identity's merged routes and conflicts.
#[derive(Debug)]
pub(crate) struct Destination<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// Indexes of its TrafficTargets (sorted by name).
    pub targets: Vec<usize>,
    pub routes: Vec<Route<'a>>,
    pub conflicts: Vec<Conflict>,
}

impl Destination<'_> {
    /// Routes that need a DENY (some conflict denies through them).
    pub(crate) fn denying_routes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.conflicts.iter().map(|c| c.denying).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Groups the resolved targets by destination identity, merges their routes as OSM does and
/// finds the conflicts.
pub(crate) fn destinations<'a>(targets: &'a [ResolvedTarget<'a>], languages: &mut Languages) -> Vec<Destination<'a>> {
    let mut by_identity: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        by_identity.entry((target.namespace, target.destination)).or_default().push(i);
    }
    by_identity
        .into_iter()
        .map(|((namespace, service_account), indexes)| {
            let routes = merge(targets, &indexes);
            let conflicts = conflicts(&routes, languages);
            Destination { namespace, service_account, targets: indexes, routes, conflicts }
        })
        .collect()
}

fn merge<'a>(targets: &'a [ResolvedTarget<'a>], indexes: &[usize]) -> Vec<Route<'a>> {
    let mut routes: Vec<Route<'a>> = Vec::new();
    // Route key hash → the last route with that hash; `same_hash[r]`: the route before `r` with
    // its hash (a chain; the key itself is compared on a hit).
    let mut by_hash: FastMap<u64, usize> = FastMap::default();
    let mut same_hash: Vec<Option<usize>> = Vec::new();
    for &t in indexes {
        let target = &targets[t];
        for grant in &target.http {
            let key = RouteKey::of(grant);
            let origin = Origin {
                target: t,
                group_ref: Rc::clone(&grant.group_ref),
                match_name: grant.http_match.name.as_str(),
            };
            let hash = hash_of(&key);
            let mut candidate = by_hash.get(&hash).copied();
            while let Some(r) = candidate.filter(|&r| routes[r].key != key) {
                candidate = same_hash[r];
            }
            match candidate {
                Some(r) => {
                    let route = &mut routes[r];
                    if !Rc::ptr_eq(&route.principals, &target.principals) {
                        Rc::make_mut(&mut route.principals).0.extend(target.principals.0.iter().cloned());
                    }
                    route.origins.push(origin);
                }
                None => {
                    same_hash.push(by_hash.insert(hash, routes.len()));
                    routes.push(Route { key, principals: Rc::clone(&target.principals), origins: vec![origin] });
                }
            }
        }
    }
    routes
}

fn hash_of(key: &RouteKey<'_>) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<Fnv>::default().hash_one(key)
}

fn conflicts(routes: &[Route<'_>], languages: &mut Languages) -> Vec<Conflict> {
    // Routes with equal principal sets never conflict: compare classes of equal sets first.
    let mut classes: Vec<(&OsmPrincipals, Vec<usize>)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        match classes.iter_mut().find(|(set, _)| std::ptr::eq(*set, &*route.principals) || **set == *route.principals) {
            Some((_, members)) => members.push(i),
            None => classes.push((&route.principals, vec![i])),
        }
    }
    let mut out = Vec::new();
    for (admitting_set, admitting) in &classes {
        for (denying_set, denying) in &classes {
            if admitting_set.is_subset(denying_set) {
                continue;
            }
            for &i in admitting {
                for &j in denying {
                    if overlap(&routes[i].key, &routes[j].key, languages) {
                        out.push(Conflict { admitting: i, denying: j });
                    }
                }
            }
        }
    }
    out.sort_by_key(|c| (c.admitting, c.denying));
    out
}

/// Whether one request can match both routes (unknown counts as yes).
pub(crate) fn overlap(a: &RouteKey<'_>, b: &RouteKey<'_>, languages: &mut Languages) -> bool {
    let mut may = |x: &str, y: &str| languages.intersects(x, y).unwrap_or(true);
    if !may(a.path, b.path) {
        return false;
    }
    if !a.any_method() && !b.any_method() {
        let methods_meet =
            a.methods.iter().any(|x| b.methods.iter().any(|y| !x.is_empty() && !y.is_empty() && may(x, y)));
        if !methods_meet {
            return false;
        }
    }
    for (name, x) in a.headers {
        for (other, y) in b.headers {
            if header_key(name) == header_key(other) && !may(x, y) {
                return false;
            }
        }
    }
    true
}

/// The header a match key reads: `host` is the `:authority` pseudo-header.
pub(crate) fn header_key(name: &str) -> String {
    if name == "host" { ":authority".to_string() } else { name.to_ascii_lowercase() }
}
