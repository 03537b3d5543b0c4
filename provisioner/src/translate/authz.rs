//! TrafficTarget → Istio `security.istio.io/v1` AuthorizationPolicies, following OSM v1.2.4's
//! enforcement ([`super::enforcement`]).
//!
//! Per destination workload (a workload of the destination ServiceAccount in the TrafficTarget's
//! namespace, selected by its pod-template labels):
//! - `<tt>-<workload>` (ALLOW), one per TrafficTarget: a rule per (route it grants, L4 port
//!   set) — `from` the principals, `to` the route's paths/methods (and `ports` when the callers'
//!   L4 grant is not every port), `when` its headers — plus a `ports` rule for the TCP ports its
//!   L4 grant covers;
//! - `first-match-<workload>` (DENY), when routes conflict ([`super::enforcement::Conflict`]): per
//!   route that another route overlaps with callers it does not admit, a rule denying requests
//!   of that route's match (widened where inexpressible) from everyone but its principals
//!   (`notPrincipals`), on every port but the workload's TCP ports (Istio ignores HTTP fields of a
//!   DENY rule on TCP and would deny the whole port). With the ALLOWs this admits a request iff
//!   every matching route admits the caller: what OSM does under every route order.
//!
//! L4 (OSM's network RBAC, first on HTTP and TCP chains): a caller reaches port `p` only if some
//! TrafficTarget with a [`L4`] grant covering `p` lists it; `sources: []` is any mesh identity
//! (`principals: ["*"]`, authenticated only). An HTTP rule therefore carries `ports` unless every
//! caller it names may reach every port. TCP rules (`ports` only) are emitted for ports a Service
//! declares TCP (`appProtocol: tcp` or a `tcp-` port name, for OSM and Istio alike); on an HTTP
//! port a ports-only rule would admit every HTTP request.
//!
//! Never wider than OSM:
//! - a rule always names its principals (a rule without `from` would admit every source);
//! - a match that cannot be expressed exactly is translated narrower (WARNING) or not at all
//!   (ERROR) ([`super::operations`]); DENY rules are only ever widened;
//! - no policy is emitted for a workload whose labels also select pods of another ServiceAccount
//!   (it would grant that ServiceAccount too): ERROR, and the namespace baseline denies it;
//! - an HTTP rule always carries an HTTP-only field (`paths: ["*"]` if nothing else).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use mesh_crds::TranslationOverride;
use mesh_crds::istio::{AuthorizationRule, Operation, RuleFrom, RuleTo, Source};

use super::enforcement::{self, Destination};
use super::index::Index;
use super::l4::{L4Table, Ports};
use super::names::{self, Planned};
use super::notify::{Notes, object_ref};
use super::operations::{self, Allowed};
use super::overrides::{self, MatchOverride};
use super::policies::Draft;
use super::regex_analysis::Analyzer;
use super::regex_sets::Languages;
use super::resolve::{L4, OsmPrincipals, ResolvedTarget};

fn rule(principals: Vec<String>, operation: Operation, when: Vec<mesh_crds::istio::Condition>) -> AuthorizationRule {
    let to = if operation == Operation::default() { Vec::new() } else { vec![RuleTo { operation }] };
    AuthorizationRule { from: vec![RuleFrom { source: Source { principals, ..Default::default() } }], to, when }
}

fn port_strings(ports: &BTreeSet<i32>) -> Vec<String> {
    ports.iter().map(ToString::to_string).collect()
}

/// Shared state of one translation's authorization part.
pub(crate) struct Authz<'s, 'a> {
    pub targets: &'a [ResolvedTarget<'a>],
    pub index: &'s Index<'a>,
    pub analyzer: &'s mut Analyzer,
    pub languages: &'s mut Languages,
    pub overrides: &'s [TranslationOverride],
    pub notes: &'s mut Notes,
}

impl<'a> Authz<'_, 'a> {
    /// The ALLOW and DENY drafts of every destination.
    pub(crate) fn drafts(&mut self) -> Vec<Draft> {
        let destinations = enforcement::destinations(self.targets, self.languages);
        let mut used = vec![false; self.overrides.len()];
        let mut drafts = Vec::new();
        for destination in &destinations {
            self.report_conflicts(destination);
            let mut shapes: Vec<Option<Allowed>> =
                destination.routes.iter().map(|route| self.allowed(destination, route, &mut used)).collect();
            self.destination_drafts(destination, &mut shapes, &mut drafts);
        }
        overrides::report_unused(self.overrides, &used, self.notes);
        drafts
    }

    /// The TrafficTargets granting `routes`, sorted and unique.
    fn target_refs(&self, destination: &Destination<'_>, routes: &[usize]) -> Vec<&'a str> {
        let targets = self.targets;
        let refs: BTreeSet<&'a str> = routes
            .iter()
            .flat_map(|&r| destination.routes[r].origins.iter().map(|o| targets[o.target].object.as_str()))
            .collect();
        refs.into_iter().collect()
    }

    fn report_conflicts(&mut self, destination: &Destination<'_>) {
        let mut seen = BTreeSet::new();
        for conflict in &destination.conflicts {
            let pair = (conflict.admitting.min(conflict.denying), conflict.admitting.max(conflict.denying));
            if !seen.insert(pair) {
                continue;
            }
            let describe = |r: usize| {
                let route = &destination.routes[r];
                let labels: BTreeSet<String> = route.origins.iter().map(|o| o.label().to_string()).collect();
                let matches: Vec<&str> = labels.iter().map(String::as_str).collect();
                format!(
                    "{} (granted by {}, admitting {:?})",
                    matches.join(" and "),
                    self.target_refs(destination, &[r]).join(", "),
                    route.principals.istio()
                )
            };
            let message = format!(
                "route order: {} and {} can match the same request; OSM does not fix which comes first (it follows TrafficTarget order) and admits only the first one's callers, so where both match only callers both admit are allowed (DENY policy first-match-<workload>), the others are denied there",
                describe(pair.0),
                describe(pair.1),
            );
            for object in self.target_refs(destination, &[pair.0, pair.1]) {
                self.notes.warning(object, message.clone());
            }
        }
    }

    /// The ALLOW shapes of a route (`None` after an ERROR), overrides applied.
    fn allowed(
        &mut self,
        destination: &Destination<'_>,
        route: &enforcement::Route<'_>,
        used: &mut [bool],
    ) -> Option<Allowed> {
        let mut accepted = MatchOverride::default();
        for origin in &route.origins {
            let target = &self.targets[origin.target];
            for (i, o) in self.overrides.iter().enumerate() {
                let names_it = o.namespace == target.namespace
                    && o.traffic_target == target.name
                    && o.match_name == origin.match_name
                    && o.route_group
                        .as_deref()
                        .is_none_or(|g| *origin.group_ref == *object_ref("HTTPRouteGroup", target.namespace, g));
                if !names_it {
                    continue;
                }
                used[i] = true;
                match overrides::check(o, route.key.path, route.key.headers, self.languages) {
                    Ok(found) => {
                        if let Some(paths) = found.paths {
                            accepted.paths.get_or_insert_with(Vec::new).extend(paths);
                        }
                        for (name, values) in found.headers {
                            match accepted.headers.iter_mut().find(|(n, _)| *n == name) {
                                Some((_, list)) => list.extend(values),
                                None => accepted.headers.push((name, values)),
                            }
                        }
                    }
                    Err(reason) => self.notes.error(
                        &target.object,
                        format!(
                            "{} is refused: {reason}; the match is translated without it",
                            overrides::describe(i, o)
                        ),
                    ),
                }
            }
        }
        let result =
            operations::allow_shapes(&route.key, route.origins[0].label(), &accepted, self.analyzer, self.languages);
        // Who to notify is looked up only when there is something to say.
        let objects = match &result {
            Ok(allowed) if allowed.messages.is_empty() => Vec::new(),
            _ => self.target_refs(destination, &[route_index(destination, route)]),
        };
        match result {
            Ok(allowed) => {
                for object in objects {
                    for (level, message) in &allowed.messages {
                        self.notes.push(*level, object, message.clone());
                    }
                }
                Some(allowed)
            }
            Err(message) => {
                for object in objects {
                    self.notes.error(object, message.clone());
                }
                None
            }
        }
    }

    /// The drafts of one destination; `shapes` (per route) are moved into the rules of their
    /// last use.
    fn destination_drafts(
        &mut self,
        destination: &Destination<'_>,
        shapes: &mut [Option<Allowed>],
        out: &mut Vec<Draft>,
    ) {
        let index = self.index;
        let (namespace, service_account) = (destination.namespace, destination.service_account);
        let workloads = index.workloads_of(namespace, service_account);
        let targets = self.targets;
        let all_targets: Vec<&str> = destination.targets.iter().map(|&t| targets[t].object.as_str()).collect();
        if workloads.is_empty() {
            for object in &all_targets {
                self.notes.error(
                    object,
                    format!(
                        "no workload in the input runs as ServiceAccount {namespace}/{service_account}, so no policy can select the destination pods; if such pods exist, the namespace baseline denies them everything: add their workload to the input"
                    ),
                );
            }
            return;
        }
        let table = L4Table::new(destination, self.targets);
        let mut classes: BTreeMap<*const OsmPrincipals, BTreeMap<Ports, Vec<String>>> = BTreeMap::new();
        let denying = destination.denying_routes();
        let problems: Vec<Option<String>> = workloads.iter().map(|&w| index.unselectable(w)).collect();
        let selectable = problems.iter().filter(|p| p.is_none()).count();
        // Uses of each route's shapes: per selectable workload, per TrafficTarget granting it.
        let mut remaining: Vec<usize> = (destination.routes.iter())
            .map(|route| selectable * destination.targets.iter().filter(|&&t| route.grants(t)).count())
            .collect();
        for (&w, problem) in workloads.iter().zip(problems) {
            let workload = &index.workloads[w];
            if let Some(problem) = problem {
                for object in &all_targets {
                    self.notes.error(
                        object,
                        format!(
                            "{problem}; no policy is generated for {}, the namespace baseline denies it everything",
                            workload.reference()
                        ),
                    );
                }
                self.notes.info(
                    &workload.reference(),
                    format!("loses the access OSM gave it (as ServiceAccount {namespace}/{service_account}, through {}): the namespace baseline denies it everything", all_targets.join(", ")),
                );
                continue;
            }
            let tcp_ports = index.tcp_ports(w);
            for &t in &destination.targets {
                let target = &self.targets[t];
                let mut rules: Vec<AuthorizationRule> = Vec::new();
                for (r, route) in destination.routes.iter().enumerate() {
                    if !route.grants(t) || shapes[r].is_none() {
                        continue;
                    }
                    remaining[r] -= 1;
                    // A TrafficTarget admitting any identity carries the merged route's set, which
                    // another TrafficTarget's sources may have narrowed (OSM unites the sets).
                    let principals = if target.principals.is_any() { &route.principals } else { &target.principals };
                    let callers_by_ports =
                        classes.entry(Rc::as_ptr(principals)).or_insert_with(|| table.classes(principals));
                    let count = callers_by_ports.len();
                    for (i, (ports, callers)) in callers_by_ports.iter().enumerate() {
                        let last_use = remaining[r] == 0 && i + 1 == count;
                        let list = if last_use { shapes[r].take() } else { shapes[r].clone() };
                        for shape in list.map(|allowed| allowed.shapes).unwrap_or_default() {
                            let mut operation = shape.operation;
                            if let Ports::Some(reachable) = ports {
                                operation.ports = port_strings(reachable);
                            }
                            rules.push(rule(callers.clone(), operation, shape.when));
                        }
                    }
                }
                rules.extend(tcp_rule(target, &tcp_ports));
                let mut unique: Vec<AuthorizationRule> = Vec::with_capacity(rules.len());
                for rule in rules {
                    if !unique.contains(&rule) {
                        unique.push(rule);
                    }
                }
                // Defense in depth: a rule without principals would admit every source.
                unique.retain(|r| !r.from.is_empty() && r.from.iter().all(|f| !f.source.principals.is_empty()));
                if unique.is_empty() {
                    continue;
                }
                out.push(Draft {
                    planned: Planned {
                        namespace: namespace.to_string(),
                        name: names::fit(format!("{}-{}", target.name, workload.name)),
                        identity: format!(
                            "{}|{}/{}/{}",
                            target.object, workload.kind, workload.namespace, workload.name
                        ),
                    },
                    selector: Some(workload.labels.clone()),
                    action: "ALLOW",
                    rules: unique,
                    source: target.object.clone(),
                });
            }
            if !denying.is_empty() {
                let rules = denying.iter().map(|&j| self.deny_rule(&destination.routes[j], &tcp_ports)).collect();
                out.push(Draft {
                    planned: Planned {
                        namespace: namespace.to_string(),
                        name: names::fit(format!("first-match-{}", workload.name)),
                        identity: format!("first-match|{}/{}/{}", workload.kind, workload.namespace, workload.name),
                    },
                    selector: Some(workload.labels.clone()),
                    action: "DENY",
                    rules,
                    source: object_ref("ServiceAccount", namespace, service_account),
                });
            }
        }
    }

    fn deny_rule(&mut self, route: &enforcement::Route<'_>, tcp_ports: &[i32]) -> AuthorizationRule {
        let (shape, _widened) = operations::deny_shape(&route.key, self.analyzer);
        let mut operation = shape.operation;
        operation.not_ports = tcp_ports.iter().map(ToString::to_string).collect();
        let not_principals = route.principals.istio();
        let from = if not_principals.is_empty() {
            Vec::new() // It admits no translatable identity: deny everyone.
        } else {
            vec![RuleFrom { source: Source { not_principals, ..Default::default() } }]
        };
        let to = if operation == Operation::default() { Vec::new() } else { vec![RuleTo { operation }] };
        AuthorizationRule { from, to, when: shape.when }
    }
}

fn route_index(destination: &Destination<'_>, route: &enforcement::Route<'_>) -> usize {
    destination.routes.iter().position(|r| std::ptr::eq(r, route)).unwrap_or_default()
}

/// The `ports` rule of a TrafficTarget's L4 grant on a workload's TCP ports.
fn tcp_rule(target: &ResolvedTarget<'_>, tcp_ports: &[i32]) -> Option<AuthorizationRule> {
    let ports: BTreeSet<i32> = match &target.l4 {
        L4::Dropped => return None,
        L4::Any => tcp_ports.iter().copied().collect(),
        L4::Ports(listed) => listed.iter().copied().filter(|p| tcp_ports.contains(p)).collect(),
    };
    let principals = target.principals.istio();
    if ports.is_empty() || principals.is_empty() {
        return None;
    }
    Some(rule(principals, Operation { ports: port_strings(&ports), ..Default::default() }, Vec::new()))
}

/// The ERROR every TrafficTarget gets when only Gateway API is emitted.
pub(crate) fn gateway_api_only(all: &[(String, String)], notes: &mut Notes) {
    for (namespace, name) in all {
        notes.error(
            &object_ref("TrafficTarget", namespace, name),
            "not translated: Gateway API (Standard channel) has no authorization, so this access control has no equivalent in the output; translate with target istio (AuthorizationPolicy) or keep OSM enforcing it until a mesh authorization policy is in place",
        );
    }
}
