use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{bookstore, find, references, spec};
use crate::topology::{APP_SELECTOR_LABEL, AppInputs, ENROLMENT_ANNOTATION, apps, services};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn template(deployment: &Deployment) -> &PodTemplateSpec {
    &deployment.spec.as_ref().expect("spec").template
}

fn container(template: &PodTemplateSpec) -> &Container {
    &template.spec.as_ref().expect("pod spec").containers[0]
}

fn selector(service: &Service) -> BTreeMap<String, String> {
    service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default()
}

#[test]
fn each_app_is_a_service_account_a_workload_and_its_services() {
    let objects = apps("t", &bookstore(), &AppInputs::default()).expect("apps");
    let bookstore_objects: Vec<String> =
        references(&objects).into_iter().filter(|r| r.contains("/bookstore/bookstore")).collect();
    assert_eq!(
        bookstore_objects,
        [
            "ServiceAccount/bookstore/bookstore",
            "Deployment/bookstore/bookstore",
            "Service/bookstore/bookstore",
            "Service/bookstore/bookstore-v1",
            "ServiceAccount/bookstore/bookstore-v2",
            "Deployment/bookstore/bookstore-v2",
            "Service/bookstore/bookstore-v2",
        ],
        "bookstore-v2 skips the main Service: the root Service bookstore is bookstore v1's"
    );
    let mysql: StatefulSet = find(&objects, "StatefulSet", "mysql");
    assert_eq!(mysql.spec.expect("spec").service_name.as_deref(), Some("mysql"));
    // The pods run as the app's ServiceAccount: that is the mesh identity SMI policies name.
    let sa: ServiceAccount = find(&objects, "ServiceAccount", "bookbuyer");
    assert_eq!(sa.metadata.namespace.as_deref(), Some("bookbuyer"));
    let bookbuyer: Deployment = find(&objects, "Deployment", "bookbuyer");
    assert_eq!(template(&bookbuyer).spec.as_ref().and_then(|s| s.service_account_name.as_deref()), Some("bookbuyer"));
}

#[test]
fn two_versions_of_one_app_have_disjoint_selectors_and_share_the_root_service() {
    let objects = apps("t", &bookstore(), &AppInputs::default()).expect("apps");
    let v1: Deployment = find(&objects, "Deployment", "bookstore");
    let v2: Deployment = find(&objects, "Deployment", "bookstore-v2");
    // Selectors are immutable and must not overlap: each selects by the app's own name.
    assert_eq!(v1.spec.as_ref().expect("spec").selector.match_labels, Some(map(&[(APP_SELECTOR_LABEL, "bookstore")])));
    assert_eq!(
        v2.spec.as_ref().expect("spec").selector.match_labels,
        Some(map(&[(APP_SELECTOR_LABEL, "bookstore-v2")]))
    );
    // Both carry app=bookstore (OSM's demo labels) and their version.
    let v2_labels = template(&v2).metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    assert_eq!(v2_labels, map(&[("app", "bookstore"), ("version", "v2"), (APP_SELECTOR_LABEL, "bookstore-v2")]));
    // The root Service selects every version; a version Service selects its version.
    assert_eq!(selector(&find(&objects, "Service", "bookstore")), map(&[("app", "bookstore")]));
    assert_eq!(selector(&find(&objects, "Service", "bookstore-v1")), map(&[("app", "bookstore"), ("version", "v1")]));
    assert_eq!(selector(&find(&objects, "Service", "bookstore-v2")), map(&[("app", "bookstore"), ("version", "v2")]));
}

#[test]
fn imported_images_replace_only_their_source_image() {
    let inputs = AppInputs {
        image_overrides: map(&[("openservicemesh/bookbuyer:v1.2.4", "acr.azurecr.io/bookbuyer:v1.2.4")]),
        ..Default::default()
    };
    let objects = apps("t", &bookstore(), &inputs).expect("apps");
    let bookbuyer: Deployment = find(&objects, "Deployment", "bookbuyer");
    assert_eq!(container(template(&bookbuyer)).image.as_deref(), Some("acr.azurecr.io/bookbuyer:v1.2.4"));
    let bookthief: Deployment = find(&objects, "Deployment", "bookthief");
    assert_eq!(container(template(&bookthief)).image.as_deref(), Some("openservicemesh/bookthief:v1.2.4"));
}

#[test]
fn the_pod_template_carries_its_namespaces_enrolment_digest() {
    let inputs = AppInputs { enrolment_digests: map(&[("bookbuyer", "0123456789abcdef")]), ..Default::default() };
    let objects = apps("t", &bookstore(), &inputs).expect("apps");
    let annotations =
        |d: &Deployment| template(d).metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default();
    let bookbuyer: Deployment = find(&objects, "Deployment", "bookbuyer");
    assert_eq!(annotations(&bookbuyer), map(&[(ENROLMENT_ANNOTATION, "0123456789abcdef")]));
    let bookthief: Deployment = find(&objects, "Deployment", "bookthief");
    assert!(annotations(&bookthief).is_empty(), "no digest known, no annotation (and no roll)");
}

#[test]
fn deployments_are_hardened_and_stateful_sets_keep_the_images_user() {
    let objects = apps("t", &bookstore(), &AppInputs::default()).expect("apps");
    let bookstore_: Deployment = find(&objects, "Deployment", "bookstore");
    let security = container(template(&bookstore_)).security_context.clone().expect("security context");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_string()]));
    assert_eq!(security.seccomp_profile.map(|p| p.type_).as_deref(), Some("RuntimeDefault"));

    // mysql starts as root and chowns its data directory.
    let mysql: StatefulSet = find(&objects, "StatefulSet", "mysql");
    let mysql_spec = mysql.spec.expect("spec");
    let security = container(&mysql_spec.template).security_context.clone().expect("security context");
    assert_eq!(security.allow_privilege_escalation, None);
    assert_eq!(security.capabilities, None);
    assert_eq!(security.seccomp_profile.map(|p| p.type_).as_deref(), Some("RuntimeDefault"));
}

#[test]
fn a_stateful_sets_volumes_go_with_it() {
    let objects = apps("t", &bookstore(), &AppInputs::default()).expect("apps");
    let mysql: StatefulSet = find(&objects, "StatefulSet", "mysql");
    let mysql_spec = mysql.spec.expect("spec");
    let policy = mysql_spec.persistent_volume_claim_retention_policy.expect("retention policy");
    assert_eq!(policy.when_deleted.as_deref(), Some("Delete"), "teardown leaves no volume behind");
    let claims = mysql_spec.volume_claim_templates.expect("claims");
    let requests = claims[0].spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.clone());
    assert_eq!(requests.and_then(|r| r.get("storage").map(|q| q.0.clone())).as_deref(), Some("250M"));
    let mounts = container(&mysql_spec.template).volume_mounts.clone().expect("mounts");
    assert_eq!((mounts[0].name.as_str(), mounts[0].mount_path.as_str()), ("data", "/mnt/mysql"));
    // Its readiness is the TCP port the spec asks for.
    let probe = container(&mysql_spec.template).readiness_probe.clone().expect("probe");
    assert_eq!(probe.tcp_socket.map(|t| t.port), Some(IntOrString::Int(3306)));
}

#[test]
fn pods_land_on_linux_nodes_unless_told_otherwise() {
    let s = spec(
        "  namespaces: [{name: shop}]\n  apps:\n  - {name: web, namespace: shop, image: x}\n  - {name: gpu, namespace: shop, image: x, nodeSelector: {pool: gpu}}\n",
    );
    let objects = apps("t", &s, &AppInputs::default()).expect("apps");
    let node_selector = |name: &str| {
        let d: Deployment = find(&objects, "Deployment", name);
        template(&d).spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default()
    };
    assert_eq!(node_selector("web"), map(&[("kubernetes.io/os", "linux")]));
    assert_eq!(node_selector("gpu"), map(&[("pool", "gpu")]));
}

#[test]
fn services_follow_the_declared_ports() {
    let s = spec(
        "  namespaces: [{name: shop}]\n  apps:\n  - {name: worker, namespace: shop, image: x}\n  - {name: web, namespace: shop, image: x, port: 8080}\n  - name: db\n    namespace: shop\n    image: x\n    port: 5432\n    service: {headless: true, ports: [{name: sql, port: 15432, targetPort: 5432, appProtocol: tcp}]}\n",
    );
    assert!(services(&s.apps[0]).is_empty(), "an app without a port gets no Service");

    let web = services(&s.apps[1]);
    let port = &web[0].spec.as_ref().and_then(|s| s.ports.clone()).expect("ports")[0];
    assert_eq!((port.port, port.target_port.clone()), (8080, Some(IntOrString::Int(8080))));

    let db = services(&s.apps[2]);
    let db_spec = db[0].spec.clone().expect("spec");
    assert_eq!(db_spec.cluster_ip.as_deref(), Some("None"), "headless");
    let port = &db_spec.ports.expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.target_port.clone(), port.app_protocol.as_deref()),
        (Some("sql"), 15432, Some(IntOrString::Int(5432)), Some("tcp"))
    );
}
