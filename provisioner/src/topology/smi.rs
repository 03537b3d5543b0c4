//! SMI traffic policy as OSM v1.2 enforces it: a TrafficTarget lives in its destination's
//! namespace with its HTTPRouteGroup and TCPRoute beside it, rules always list their match names,
//! HTTPRouteGroup headers are lists of single-key maps, and TrafficSplit is v1alpha2.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use mesh_crds::smi::{
    HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TCPMatch, TCPRoute, TCPRouteSpec, TrafficSplit,
    TrafficSplitBackend, TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
};
use mesh_crds::{AccessPolicy, HttpMethod, MeshInstallationSpec};

use crate::desired::{Component, Desired, DesiredError};

/// Errors of the SMI builder.
#[derive(Debug, thiserror::Error)]
pub enum SmiBuildError {
    /// Two access policies define one HTTPRouteGroup with different matches.
    #[error(
        "spec.traffic.access[{second_index}].httpRoutes: policies {first} (spec.traffic.access[{first_index}]) and {second} both define HTTPRouteGroup {namespace}/{group} but with different httpRoutes; give one of them another routeGroup or make the routes identical"
    )]
    ConflictingRouteGroup {
        /// Namespace of the group.
        namespace: String,
        /// Group name.
        group: String,
        /// First policy.
        first: String,
        /// Its index in `spec.traffic.access`.
        first_index: usize,
        /// Second policy.
        second: String,
        /// Its index in `spec.traffic.access` (the field the message names).
        second_index: usize,
    },
    /// An object could not be rendered.
    #[error(transparent)]
    Desired(#[from] DesiredError),
}

/// HTTP matches of a policy in SMI's wire form.
fn http_matches(policy: &AccessPolicy) -> Vec<HTTPMatch> {
    policy
        .http_routes
        .iter()
        .map(|route| HTTPMatch {
            name: route.name.clone(),
            path_regex: route.path_regex.clone(),
            methods: if route.methods.is_empty() {
                vec![HttpMethod::Any.as_str().to_string()]
            } else {
                route.methods.iter().map(|m| m.as_str().to_string()).collect()
            },
            headers: (!route.headers.is_empty())
                .then(|| route.headers.iter().map(|(k, v)| BTreeMap::from([(k.clone(), v.clone())])).collect()),
        })
        .collect()
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(namespace.to_string()), ..Default::default() }
}

fn service_account(name: &str, namespace: &str) -> IdentityBinding {
    IdentityBinding {
        kind: "ServiceAccount".to_string(),
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
    }
}

/// HTTPRouteGroups by (namespace, name), with the policy that first defined each (its index in
/// `spec.traffic.access` and name) and its matches.
type RouteGroups = BTreeMap<(String, String), (usize, String, Vec<HTTPMatch>)>;

/// The HTTPRouteGroups, one per distinct (namespace, routeGroup); policies may share a group only
/// if they define it identically (the article's bookstore and bookstore-v2 targets do).
fn route_groups(spec: &MeshInstallationSpec) -> Result<RouteGroups, SmiBuildError> {
    let mut groups = RouteGroups::new();
    for (index, policy) in spec.traffic.access.iter().enumerate().filter(|(_, p)| !p.http_routes.is_empty()) {
        let key = (policy.namespace.clone(), policy.route_group_name());
        let matches = http_matches(policy);
        match groups.get(&key) {
            Some((first_index, first, existing)) if *existing != matches => {
                return Err(SmiBuildError::ConflictingRouteGroup {
                    namespace: key.0,
                    group: key.1,
                    first: first.clone(),
                    first_index: *first_index,
                    second: policy.name.clone(),
                    second_index: index,
                });
            }
            Some(_) => {}
            None => {
                groups.insert(key, (index, policy.name.clone(), matches));
            }
        }
    }
    Ok(groups)
}

/// Every SMI object of the spec's traffic section.
pub fn smi_policies(installation: &str, spec: &MeshInstallationSpec) -> Result<Vec<Desired>, SmiBuildError> {
    let mut out = Vec::new();
    for ((namespace, name), (_, _, matches)) in route_groups(spec)? {
        let group = HTTPRouteGroup {
            metadata: meta(&name, &namespace),
            spec: HTTPRouteGroupSpec { hosts: Vec::new(), matches },
        };
        out.push(Desired::new(Component::Traffic, installation, &group)?);
    }
    for policy in &spec.traffic.access {
        let mut rules = Vec::new();
        if !policy.http_routes.is_empty() {
            rules.push(TrafficTargetRule {
                kind: "HTTPRouteGroup".to_string(),
                name: policy.route_group_name(),
                // OSM grants nothing for a rule without match names: always list them.
                matches: policy.http_routes.iter().map(|r| r.name.clone()).collect(),
            });
        }
        if !policy.tcp_ports.is_empty() {
            let route = TCPRoute {
                metadata: meta(&policy.tcp_route_name(), &policy.namespace),
                spec: TCPRouteSpec {
                    matches: TCPMatch { name: None, ports: policy.tcp_ports.iter().map(|p| p.0).collect() },
                },
            };
            out.push(Desired::new(Component::Traffic, installation, &route)?);
            rules.push(TrafficTargetRule {
                kind: "TCPRoute".to_string(),
                name: policy.tcp_route_name(),
                matches: Vec::new(),
            });
        }
        let target = TrafficTarget {
            metadata: meta(&policy.name, &policy.namespace),
            spec: TrafficTargetSpec {
                destination: service_account(&policy.destination, &policy.namespace),
                rules,
                sources: policy.sources.iter().map(|s| service_account(&s.name, &s.namespace)).collect(),
            },
        };
        out.push(Desired::new(Component::Traffic, installation, &target)?);
    }
    for split in &spec.traffic.splits {
        let object = TrafficSplit {
            metadata: meta(&split.name, &split.namespace),
            spec: TrafficSplitSpec {
                service: format!("{}.{}", split.service, split.namespace),
                backends: split
                    .backends
                    .iter()
                    .map(|b| TrafficSplitBackend { service: b.service.clone(), weight: i64::from(b.weight) })
                    .collect(),
            },
        };
        out.push(Desired::new(Component::Traffic, installation, &object)?);
    }
    Ok(out)
}
