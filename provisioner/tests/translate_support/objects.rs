//! Builders of the Kubernetes and SMI objects the translation property tests generate. Names
//! follow one scheme: HTTPRouteGroups `g<i>` with matches `m<j>`, TCPRoutes `t<i>`,
//! TrafficTargets `tt<i>`, ServiceAccounts `s<k>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use mesh_crds::smi::{
    HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TCPMatch, TCPRoute, TCPRouteSpec, TrafficTarget,
    TrafficTargetRule, TrafficTargetSpec,
};

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
