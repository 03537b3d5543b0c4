//! Builders of the Kubernetes and SMI objects the translation property tests generate. Names
//! follow one scheme: namespaces [`NAMESPACES`], in each ServiceAccounts `s<k>` (k < [`SAS`]) with
//! a Deployment `w-s<k>` and a Service `svc-s<k>`; HTTPRouteGroups `g<i>` with matches `m<j>`,
//! TCPRoutes `t<i>`, TrafficTargets `tt<i>`, TrafficSplits `split<i>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use mesh_crds::smi::{
    HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TCPMatch, TCPRoute, TCPRouteSpec, TrafficSplit,
    TrafficSplitBackend, TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
};
use mesh_provisioner::translate::TranslationInput;

/// The namespaces of a generated world.
pub const NAMESPACES: [&str; 2] = ["a", "b"];
/// ServiceAccounts (each with its workload and Service) per namespace.
pub const SAS: usize = 3;

pub fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(ns.to_string()), ..Default::default() }
}

/// A Deployment whose pods carry `labels` and run as ServiceAccount `sa`.
pub fn deployment(name: &str, ns: &str, sa: &str, labels: BTreeMap<String, String>) -> Deployment {
    Deployment {
        metadata: meta(name, ns),
        spec: Some(DeploymentSpec {
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(sa.to_string()),
                    containers: vec![Container { name: "app".into(), ..Default::default() }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// ServiceAccount `s<k>`, in `namespace` when given.
pub fn service_account(k: usize, namespace: Option<&str>) -> IdentityBinding {
    IdentityBinding { kind: "ServiceAccount".into(), name: format!("s{k}"), namespace: namespace.map(str::to_string) }
}

/// A rule granting matches `m<j>` of HTTPRouteGroup `g<group>`.
pub fn http_rule(group: usize, matches: &[usize]) -> TrafficTargetRule {
    TrafficTargetRule {
        kind: "HTTPRouteGroup".into(),
        name: format!("g{group}"),
        matches: matches.iter().map(|m| format!("m{m}")).collect(),
    }
}

/// A rule granting TCPRoute `t<route>`.
pub fn tcp_rule(route: usize) -> TrafficTargetRule {
    TrafficTargetRule { kind: "TCPRoute".into(), name: format!("t{route}"), matches: Vec::new() }
}

/// TrafficTarget `tt<i>` in `ns`.
pub fn traffic_target(
    i: usize,
    ns: &str,
    destination: IdentityBinding,
    rules: Vec<TrafficTargetRule>,
    sources: Vec<IdentityBinding>,
) -> TrafficTarget {
    TrafficTarget { metadata: meta(&format!("tt{i}"), ns), spec: TrafficTargetSpec { destination, rules, sources } }
}

/// HTTPRouteGroup `g<i>` in `ns`; its matches are named `m<j>` in order.
pub fn route_group(i: usize, ns: &str, matches: impl IntoIterator<Item = HTTPMatch>) -> HTTPRouteGroup {
    let matches = matches.into_iter().enumerate().map(|(j, m)| HTTPMatch { name: format!("m{j}"), ..m }).collect();
    HTTPRouteGroup { metadata: meta(&format!("g{i}"), ns), spec: HTTPRouteGroupSpec { hosts: Vec::new(), matches } }
}

/// TCPRoute `t<i>` in `ns`.
pub fn tcp_route(i: usize, ns: &str, ports: Vec<i32>) -> TCPRoute {
    TCPRoute { metadata: meta(&format!("t{i}"), ns), spec: TCPRouteSpec { matches: TCPMatch { name: None, ports } } }
}

/// TCPRoutes `t<i>` from `(namespace index, ports)`.
pub fn tcp_routes(routes: &[(usize, Vec<i32>)]) -> impl Iterator<Item = TCPRoute> + '_ {
    routes.iter().enumerate().map(|(i, (ns, ports))| tcp_route(i, NAMESPACES[*ns], ports.clone()))
}

/// A generated TrafficTarget rule.
#[derive(Clone, Debug)]
pub enum RuleD {
    /// Matches `m<j>` of HTTPRouteGroup `g<group>`.
    Http { group: usize, matches: Vec<usize> },
    /// TCPRoute `t<route>`.
    Tcp { route: usize },
    /// A TCPRoute rule named after HTTPRouteGroup `g<group>`, with matches: OSM's
    /// `routesFromRules` does not check the kind, so it grants those HTTP matches as routes
    /// (and, the TCPRoute missing, no L4 access).
    TcpNamedAfterGroup { group: usize, matches: Vec<usize> },
}

impl RuleD {
    pub fn rule(&self) -> TrafficTargetRule {
        match self {
            RuleD::Http { group, matches } => http_rule(*group, matches),
            RuleD::Tcp { route } => tcp_rule(*route),
            RuleD::TcpNamedAfterGroup { group, matches } => {
                TrafficTargetRule { kind: "TCPRoute".into(), ..http_rule(*group, matches) }
            }
        }
    }
}

/// In every namespace, for each ServiceAccount `s<k>`, the Deployment `w-s<k>` (pods `app=s<k>`)
/// and the Service `svc-s<k>` selecting them: `http` 80 → `http_target_port`, `tcp-pg` 5432 (TCP
/// by its name prefix) and, where `tcp_port[n][k]`, 3306 named `tcp_port_name` with
/// `appProtocol: tcp`.
pub fn workloads(input: &mut TranslationInput, http_target_port: i32, tcp_port_name: &str, tcp_port: [[bool; SAS]; 2]) {
    for (ns, tcp_port) in NAMESPACES.iter().zip(tcp_port) {
        for (k, with_tcp_port) in tcp_port.into_iter().enumerate() {
            let sa = format!("s{k}");
            let labels = BTreeMap::from([("app".to_string(), sa.clone())]);
            input.deployments.push(deployment(&format!("w-{sa}"), ns, &sa, labels.clone()));
            let mut ports = vec![
                ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::Int(http_target_port)),
                    ..Default::default()
                },
                ServicePort { name: Some("tcp-pg".into()), port: 5432, ..Default::default() },
            ];
            if with_tcp_port {
                ports.push(ServicePort {
                    name: Some(tcp_port_name.into()),
                    port: 3306,
                    app_protocol: Some("tcp".into()),
                    ..Default::default()
                });
            }
            input.services.push(Service {
                metadata: meta(&format!("svc-{sa}"), ns),
                spec: Some(ServiceSpec { selector: Some(labels), ports: Some(ports), ..Default::default() }),
                ..Default::default()
            });
        }
    }
}

/// TrafficSplit `split<i>` in `ns` of `root` over backends `(svc-s<b>, weight)`.
pub fn traffic_split(i: usize, ns: &str, root: String, backends: &[(usize, i64)]) -> TrafficSplit {
    let backends = backends
        .iter()
        .map(|(b, weight)| TrafficSplitBackend { service: format!("svc-s{b}"), weight: *weight })
        .collect();
    TrafficSplit { metadata: meta(&format!("split{i}"), ns), spec: TrafficSplitSpec { service: root, backends } }
}
