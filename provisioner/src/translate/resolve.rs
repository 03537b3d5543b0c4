//! What each TrafficTarget grants, as OSM v1.2.4 reads it (`smi/client.go`,
//! `catalog/inbound_traffic_policies.go`, `catalog/traffictarget.go`), with its quirks reported:
//!
//! - a TrafficTarget outside its destination's namespace is ignored (grants nothing);
//! - a TrafficTarget without rules, or with a rule of another kind than HTTPRouteGroup or
//!   TCPRoute, is ignored;
//! - route objects are looked up in the TrafficTarget's namespace; a missing HTTPRouteGroup or
//!   match name grants nothing;
//! - OSM looks up every rule's `matches` in the HTTPRouteGroup of the rule's name whatever the
//!   rule's kind: a TCPRoute rule with matches named after an HTTPRouteGroup grants them as HTTP
//!   routes (WARNING) besides its L4 effect;
//! - an HTTPRouteGroup rule grants only the matches it lists by name: none when `matches` is
//!   empty (the SMI spec says "all", OSM says "none"); of two matches with one name the last
//!   wins (OSM keys them by name);
//! - an HTTPRouteGroup whose `headers` has an element with other than one key is rejected by
//!   OSM's SDK ("incorrect length of keyval"), so it grants nothing; duplicate header names: the
//!   last wins;
//! - principals: one per source, **`sources: []` is any mesh identity** (OSM's RBAC builder turns
//!   an empty principal set into "any"; merging such a route with an identical one of another
//!   TrafficTarget unions the sets, which then is no longer empty — [`OsmPrincipals`] keeps that);
//! - L4 ([`L4`]): the destination ports of the TrafficTarget's TCPRoutes, **every port** when it
//!   has none (or they list no ports), for HTTP and TCP alike; a TCPRoute that does not exist
//!   drops the whole TrafficTarget from L4 (its HTTP routes stay, but its sources cannot connect
//!   unless another TrafficTarget grants them L4).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use mesh_crds::smi::{HTTPMatch, HTTPRouteGroup, TrafficTarget};

use super::index::{Index, name_ref, namespace_ref};
use super::names::{is_dns_label, is_dns_subdomain};
use super::notify::{Notes, object_ref};

/// A match a TrafficTarget grants.
#[derive(Debug)]
pub(crate) struct GrantedMatch<'a> {
    /// `HTTPRouteGroup/ns/name`.
    pub group_ref: Rc<str>,
    /// Namespace and name of the group.
    pub group_key: (&'a str, &'a str),
    /// The match.
    pub http_match: &'a HTTPMatch,
    /// Its position in the group (for ordering).
    pub position: usize,
    /// Headers as OSM reads them: name → regex, the last duplicate winning (borrowed from the
    /// input: the map is built per granted match).
    pub headers: BTreeMap<&'a str, &'a str>,
}

/// OSM's principal set of a TrafficTarget (or of a merged route): empty means **any** mesh
/// identity. Sources that cannot be translated stay in the set as unmatchable markers (starting
/// with [`UNTRANSLATED`]), as OSM keeps them (it then admits whatever identity they name, which
/// the translation denies, with a WARNING): they keep the set from reading as "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OsmPrincipals(pub BTreeSet<String>);

/// Prefix of the marker of an untranslated source in an [`OsmPrincipals`].
pub(crate) const UNTRANSLATED: &str = "!untranslated:";

impl OsmPrincipals {
    /// Any mesh identity.
    pub(crate) fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every identity `self` admits is admitted by `other`.
    pub(crate) fn is_subset(&self, other: &OsmPrincipals) -> bool {
        other.is_any() || (!self.is_any() && self.0.is_subset(&other.0))
    }

    /// Whether the (translatable) principal `p` is admitted.
    pub(crate) fn admits(&self, principal: &str) -> bool {
        self.is_any() || self.0.contains(principal)
    }

    /// The Istio principals: `*` (any authenticated identity) for any, else the translatable ones.
    pub(crate) fn istio(&self) -> Vec<String> {
        if self.is_any() {
            return vec!["*".to_string()];
        }
        self.0.iter().filter(|p| !p.starts_with(UNTRANSLATED)).cloned().collect()
    }

    /// The translatable named principals.
    pub(crate) fn named(&self) -> impl Iterator<Item = &String> {
        self.0.iter().filter(|p| !p.starts_with(UNTRANSLATED))
    }
}

/// The L4 access a TrafficTarget grants its sources (OSM's network RBAC filter, first on HTTP
/// and TCP inbound chains alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum L4 {
    /// A referenced TCPRoute does not exist: the TrafficTarget grants no L4 access.
    Dropped,
    /// No TCPRoute (or none with ports): every port.
    Any,
    /// The union of its TCPRoutes' ports.
    Ports(BTreeSet<i32>),
}

/// A TrafficTarget that OSM would enforce.
#[derive(Debug)]
pub(crate) struct ResolvedTarget<'a> {
    /// `TrafficTarget/ns/name`.
    pub object: String,
    pub name: &'a str,
    pub namespace: &'a str,
    pub destination: &'a str,
    /// OSM's principal set of its sources.
    pub principals: Rc<OsmPrincipals>,
    /// Its HTTP routes, in OSM's order (rules, then listed match names).
    pub http: Vec<GrantedMatch<'a>>,
    /// Its L4 grant.
    pub l4: L4,
}

/// Whether OSM's SDK accepts the group (every `headers` element is a single-key map).
pub(crate) fn group_is_valid(group: &HTTPRouteGroup) -> bool {
    group.spec.matches.iter().all(|m| m.headers.iter().flatten().all(|h| h.len() == 1))
}

/// Headers of a match as OSM reads them.
pub(crate) fn merged_headers(http_match: &HTTPMatch) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    for element in http_match.headers.iter().flatten() {
        for (name, value) in element {
            out.insert(name.as_str(), value.as_str());
        }
    }
    out
}

/// Reports HTTPRouteGroups OSM rejects (once per group).
pub(crate) fn check_groups(index: &Index<'_>, notes: &mut Notes) {
    for ((namespace, name), group) in &index.route_groups {
        if !group_is_valid(group) {
            notes.warning(
                &object_ref("HTTPRouteGroup", namespace, name),
                "OSM rejects this HTTPRouteGroup: every element of a match's `headers` must be a map with exactly one key (\"incorrect length of keyval\"), so it grants nothing and is not translated; split multi-key elements into one element per header",
            );
        }
    }
}

/// Resolves every TrafficTarget, sorted by namespace and name. Invalid ones are reported and
/// left out.
pub(crate) fn resolve<'a>(
    targets: &'a [TrafficTarget],
    index: &Index<'a>,
    trust_domain: &str,
    notes: &mut Notes,
) -> Vec<ResolvedTarget<'a>> {
    let mut sorted: BTreeMap<(&'a str, &'a str), &'a TrafficTarget> = BTreeMap::new();
    for target in targets {
        let key = (namespace_ref(target), name_ref(target));
        if sorted.insert(key, target).is_some() {
            notes.warning(
                &object_ref("TrafficTarget", key.0, key.1),
                "defined more than once in the input; the last definition is used",
            );
        }
    }
    sorted.into_iter().filter_map(|((ns, name), tt)| resolve_one(tt, ns, name, index, trust_domain, notes)).collect()
}

fn resolve_one<'a>(
    tt: &'a TrafficTarget,
    namespace: &'a str,
    name: &'a str,
    index: &Index<'a>,
    trust_domain: &str,
    notes: &mut Notes,
) -> Option<ResolvedTarget<'a>> {
    let object = object_ref("TrafficTarget", namespace, name);
    let destination = &tt.spec.destination;
    if destination.namespace.as_deref() != Some(namespace) {
        notes.warning(
            &object,
            format!(
                "ignored, as OSM ignores it: a TrafficTarget must be in its destination's namespace ({}), it grants nothing; move it to namespace {}",
                destination.namespace.as_deref().unwrap_or("unset"),
                destination.namespace.as_deref().unwrap_or("<destination namespace>"),
            ),
        );
        return None;
    }
    if tt.spec.rules.is_empty() {
        notes.warning(&object, "ignored, as OSM ignores it: it has no rules, so it grants nothing");
        return None;
    }
    if let Some(rule) = tt.spec.rules.iter().find(|r| r.kind != "HTTPRouteGroup" && r.kind != "TCPRoute") {
        notes.warning(
            &object,
            format!(
                "ignored, as OSM ignores it: rule kind {:?} is neither HTTPRouteGroup nor TCPRoute, so the whole TrafficTarget grants nothing",
                rule.kind
            ),
        );
        return None;
    }
    if destination.kind != "ServiceAccount" {
        notes.warning(
            &object,
            format!(
                "destination kind {:?} is not ServiceAccount: not translated, the destination is denied everything (OSM may have read it as a ServiceAccount)",
                destination.kind
            ),
        );
        return None;
    }
    if !is_dns_subdomain(&destination.name) {
        notes.warning(
            &object,
            format!("destination {:?} is not a valid ServiceAccount name: it grants nothing", destination.name),
        );
        return None;
    }

    let mut principals = BTreeSet::new();
    for source in &tt.spec.sources {
        let valid_namespace = source.namespace.as_deref().filter(|ns| is_dns_label(ns));
        match valid_namespace {
            Some(ns) if source.kind == "ServiceAccount" && is_dns_subdomain(&source.name) => {
                principals.insert(format!("{trust_domain}/ns/{ns}/sa/{}", source.name));
                continue;
            }
            _ if source.kind != "ServiceAccount" => notes.warning(
                &object,
                format!(
                    "source {}/{} of kind {:?} is not a ServiceAccount: not translated, it is denied (OSM read it as a ServiceAccount)",
                    source.namespace.as_deref().unwrap_or("-"),
                    source.name,
                    source.kind
                ),
            ),
            _ => notes.warning(
                &object,
                format!(
                    "source {:?} in namespace {:?} is not a valid ServiceAccount reference (a namespace is required): it grants nothing",
                    source.name,
                    source.namespace.as_deref().unwrap_or("")
                ),
            ),
        }
        principals.insert(format!(
            "{UNTRANSLATED}{}/{}/{}",
            source.kind,
            source.namespace.as_deref().unwrap_or_default(),
            source.name
        ));
    }
    let principals = Rc::new(OsmPrincipals(principals));
    if principals.is_any() {
        notes.info(
            &object,
            "sources: [] admits any mesh identity in OSM: translated as principals [\"*\"] (any authenticated identity; plaintext stays denied)",
        );
    } else if principals.named().next().is_none() {
        notes.warning(&object, "it has no valid source ServiceAccount, so it grants nothing");
    }

    let mut http = Vec::new();
    let mut l4 = L4::Any;
    let mut l4_ports: BTreeSet<i32> = BTreeSet::new();
    for rule in &tt.spec.rules {
        if rule.kind == "TCPRoute" {
            match index.tcp_routes.get(&(namespace, rule.name.as_str())) {
                Some(route) => {
                    for &port in &route.spec.matches.ports {
                        if (1..=65535).contains(&port) {
                            l4_ports.insert(port);
                        } else {
                            notes.warning(
                                &object,
                                format!("TCPRoute {namespace}/{} port {port} is not a port number (OSM truncates it to 16 bits): left out (narrower)", rule.name),
                            );
                            // Never "every port" because of a port left out.
                            l4 = L4::Ports(BTreeSet::new());
                        }
                    }
                }
                None => {
                    notes.warning(
                        &object,
                        format!("TCPRoute {namespace}/{} does not exist (it must be in the TrafficTarget's namespace): OSM then drops the whole TrafficTarget from L4, so its sources cannot connect to the destination at all unless another TrafficTarget grants them L4 access; create the TCPRoute or remove the rule", rule.name),
                    );
                    l4 = L4::Dropped;
                }
            }
            // OSM's `routesFromRules` ignores the kind: a TCPRoute rule's `matches` name
            // matches of the HTTPRouteGroup of the rule's name, granted as HTTP routes.
            if rule.matches.is_empty() || !index.route_groups.contains_key(&(namespace, rule.name.as_str())) {
                continue;
            }
            notes.warning(
                &object,
                format!("the TCPRoute rule {:?} lists matches and HTTPRouteGroup {namespace}/{} exists: OSM ignores the rule's kind and grants those matches of the HTTPRouteGroup as HTTP routes (which can shadow other TrafficTargets' routes); translated as OSM enforces it — use kind HTTPRouteGroup if that is meant, or drop the matches", rule.name, rule.name),
            );
        }
        let group_ref: Rc<str> = Rc::from(object_ref("HTTPRouteGroup", namespace, &rule.name));
        let Some(group) = index.route_groups.get(&(namespace, rule.name.as_str())) else {
            notes.warning(
                &object,
                format!("HTTPRouteGroup {namespace}/{} does not exist (it must be in the TrafficTarget's namespace): this rule grants nothing", rule.name),
            );
            continue;
        };
        if !group_is_valid(group) {
            notes.warning(
                &object,
                format!("{group_ref} is rejected by OSM (multi-key headers element): this rule grants nothing"),
            );
            continue;
        }
        if rule.matches.is_empty() {
            notes.warning(
                &object,
                format!("the rule for {group_ref} lists no matches: OSM grants nothing for it (the SMI spec would grant all); list the match names to grant them"),
            );
            continue;
        }
        for wanted in &rule.matches {
            // OSM keys a group's matches by name: of two with one name, the last wins.
            match group.spec.matches.iter().rposition(|m| &m.name == wanted) {
                Some(position) => {
                    let http_match = &group.spec.matches[position];
                    http.push(GrantedMatch {
                        group_ref: Rc::clone(&group_ref),
                        group_key: (namespace, rule.name.as_str()),
                        http_match,
                        position,
                        headers: merged_headers(http_match),
                    });
                }
                None => notes.warning(&object, format!("{group_ref} has no match named {wanted:?}: it grants nothing")),
            }
        }
    }
    if l4 != L4::Dropped && (!l4_ports.is_empty() || l4 != L4::Any) {
        l4 = L4::Ports(l4_ports);
    }
    Some(ResolvedTarget { object, name, namespace, destination: destination.name.as_str(), principals, http, l4 })
}
