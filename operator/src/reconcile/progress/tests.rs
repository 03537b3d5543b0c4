//! The conditions a person reads (`kubectl get meshinstallation`, `kubectl wait --for=condition=Ready`,
//! `meshctl status`): Ready says whether everything converged and, when not, names the first thing
//! in the way; each component's condition says what it waits for; Degraded is True only for what
//! needs a person (a conflict, a fatal Azure error, a policy that could not be translated).

use mesh_crds::{ConditionStatus, Notification, NotificationLevel, condition_type as ct};
use mesh_provisioner::apply::ApplyError;
use mesh_provisioner::desired::Component;

use super::super::conditions::ConditionUpdate;
use super::super::conditions::Problem;
use super::{MAX_STATUS_NOTIFICATIONS, Progress, bounded_notifications};

fn spec(yaml: &str) -> mesh_crds::MeshInstallationSpec {
    let text =
        format!("apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {{name: t}}\nspec:\n{yaml}");
    mesh_crds::MeshInstallation::from_yaml(&text).expect("spec").spec
}

fn plain() -> Progress {
    Progress::new(&spec("  namespaces: [{name: shop}]\n"))
}

fn condition(progress: &Progress, type_: &str) -> ConditionUpdate {
    progress.conditions().into_iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition"))
}

/// (status, reason, message) of one condition.
fn state(progress: &Progress, type_: &str) -> (ConditionStatus, String, String) {
    let c = condition(progress, type_);
    (c.status, c.reason, c.message)
}

fn not_ready(progress: &mut Progress, component: Component, why: &str) {
    let entry = progress.entry(component);
    entry.workloads += 1;
    entry.not_ready.push(why.to_string());
}

fn conflict(object: &str) -> ApplyError {
    ApplyError::Conflict { object: object.to_string(), owner: String::new() }
}

fn api_error(object: &str) -> ApplyError {
    ApplyError::Api {
        action: "applying",
        object: object.to_string(),
        source: Box::new(kube::Error::Service("connection refused".into())),
    }
}

fn notification(level: NotificationLevel, object: &str, message: &str) -> Notification {
    Notification { level, object: object.to_string(), message: message.to_string() }
}

#[test]
fn a_converged_installation_is_ready_and_not_degraded() {
    let progress = plain();
    let conditions = progress.conditions();
    let types: Vec<&str> = conditions.iter().map(|c| c.type_).collect();
    assert_eq!(
        types,
        [
            ct::READY,
            ct::MESH_READY,
            ct::IMAGES_IMPORTED,
            ct::NAMESPACES_READY,
            ct::APPS_READY,
            ct::INGRESS_READY,
            ct::TRAFFIC_READY,
            ct::DEGRADED
        ],
        "Ready first, Degraded last: the order kubectl and meshctl show"
    );
    assert_eq!(
        state(&progress, ct::READY),
        (ConditionStatus::True, "Converged".into(), "the installation has converged".into())
    );
    assert_eq!(
        state(&progress, ct::DEGRADED),
        (ConditionStatus::False, "AsExpected".into(), "nothing needs attention".into())
    );
    assert!(progress.ready());
}

#[test]
fn what_the_spec_does_not_ask_for_is_not_waited_for() {
    let progress = plain();
    assert_eq!(
        state(&progress, ct::IMAGES_IMPORTED),
        (ConditionStatus::True, "NothingToImport".into(), "spec.registry lists no images".into())
    );
    assert_eq!(
        state(&progress, ct::INGRESS_READY),
        (ConditionStatus::True, "NotRequested".into(), "spec.ingress is not set".into())
    );
}

#[test]
fn a_workload_not_ready_yet_is_progressing_not_degraded() {
    let mut progress = plain();
    not_ready(&mut progress, Component::Apps, "Deployment shop/web: 0/2 replicas ready");
    assert_eq!(
        state(&progress, ct::APPS_READY),
        (ConditionStatus::False, "Progressing".into(), "Deployment shop/web: 0/2 replicas ready".into())
    );
    assert_eq!(
        state(&progress, ct::READY),
        (ConditionStatus::False, "Progressing".into(), "AppsReady: Deployment shop/web: 0/2 replicas ready".into())
    );
    assert_eq!(state(&progress, ct::DEGRADED).0, ConditionStatus::False);
    assert!(!progress.ready());
}

#[test]
fn ready_names_the_first_component_in_apply_order_that_is_not_ready() {
    let mut progress = plain();
    not_ready(&mut progress, Component::Traffic, "TrafficSplit pending");
    progress.waiting(Component::Mesh, "waiting for the OSM CRDs to be established");
    assert_eq!(
        state(&progress, ct::READY),
        (ConditionStatus::False, "Waiting".into(), "MeshReady: waiting for the OSM CRDs to be established".into())
    );
    assert!(progress.blocked(Component::Mesh), "components after a waiting mesh wait too");
    assert!(!progress.blocked(Component::Traffic), "a workload not ready yet blocks nothing");
}

#[test]
fn a_conflict_degrades_the_installation_and_names_the_object() {
    let mut progress = plain();
    progress.record(Component::Apps, 3, &[conflict("Service/shop/web")]);
    let (status, reason, message) = state(&progress, ct::APPS_READY);
    assert_eq!((status, reason.as_str()), (ConditionStatus::False, "Conflict"));
    assert!(
        message.starts_with("Service/shop/web already exists and was not created by this installation"),
        "{message}"
    );
    let (status, reason, degraded) = state(&progress, ct::DEGRADED);
    assert_eq!((status, reason.as_str(), degraded.as_str()), (ConditionStatus::True, "Conflict", message.as_str()));
    assert_eq!(state(&progress, ct::READY).1, "Conflict");
    assert_eq!(progress.errors(), [message]);
}

#[test]
fn a_failed_write_is_reported_without_claiming_degraded() {
    let mut with_ingress = Progress::new(&spec(
        "  namespaces: [{name: shop}]\n  apps: [{name: web, namespace: shop, image: x, port: 80}]\n  ingress: {rules: [{name: web, host: a.example.com, path: /, backend: {service: web, namespace: shop, port: 80}}]}\n",
    ));
    with_ingress.record(Component::Ingress, 0, &[api_error("Ingress/shop/web")]);
    assert_eq!(
        state(&with_ingress, ct::INGRESS_READY),
        (
            ConditionStatus::False,
            "ApplyFailed".into(),
            "applying Ingress/shop/web: ServiceError: connection refused".into()
        )
    );
    assert_eq!(state(&with_ingress, ct::READY).1, "ApplyFailed");
    assert_eq!(state(&with_ingress, ct::DEGRADED).0, ConditionStatus::False, "a retried API error is not Degraded");
    assert!(with_ingress.failed(Component::Ingress));
}

#[test]
fn a_components_worst_problem_is_the_one_shown() {
    let mut progress = plain();
    not_ready(&mut progress, Component::Apps, "Deployment shop/web: 0/1 replicas ready");
    assert_eq!(state(&progress, ct::APPS_READY).1, "Progressing");
    progress.waiting(Component::Apps, "waiting for osm-injector");
    assert_eq!(state(&progress, ct::APPS_READY).1, "Waiting");
    progress.record(Component::Apps, 0, &[api_error("Deployment/shop/web")]);
    assert_eq!(state(&progress, ct::APPS_READY).1, "ApplyFailed");
    progress.fail(Component::Apps, "Deployment/shop/web is owned by someone else".into());
    assert_eq!(
        state(&progress, ct::APPS_READY),
        (ConditionStatus::False, "Conflict".into(), "Deployment/shop/web is owned by someone else".into())
    );
}

#[test]
fn an_invalid_spec_names_every_problem_and_says_nothing_was_changed() {
    let problems = [
        Problem {
            reason: "InvalidSpec",
            message: "spec.ingress.rules[0].backend.port: Service shop/web has no port 80".into(),
        },
        Problem {
            reason: "InvalidSpec",
            message: "spec.traffic.splits[0].backends[1].service: backend v2 exposes ports [9090]".into(),
        },
    ];
    let progress = Progress::invalid(&problems);
    let joined = "spec.ingress.rules[0].backend.port: Service shop/web has no port 80; spec.traffic.splits[0].backends[1].service: backend v2 exposes ports [9090]";
    let conditions = progress.conditions();
    let summary: Vec<(&str, ConditionStatus, &str, &str)> =
        conditions.iter().map(|c| (c.type_, c.status, c.reason.as_str(), c.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            (ct::READY, ConditionStatus::False, "InvalidSpec", joined),
            (ct::NAMESPACES_READY, ConditionStatus::False, "NotApplied", "the spec is invalid; nothing was changed"),
            (ct::DEGRADED, ConditionStatus::True, "InvalidSpec", joined),
        ]
    );
    assert!(!progress.ready());
    assert_eq!(progress.writes(), 0);
}

#[test]
fn a_refused_namespace_shows_on_namespaces_ready() {
    let problems = [Problem {
        reason: "NamespaceInAnotherMesh",
        message: "spec.namespaces[0].name: namespace shop is already monitored by mesh blue".into(),
    }];
    let progress = Progress::invalid(&problems);
    assert_eq!(
        state(&progress, ct::NAMESPACES_READY),
        (
            ConditionStatus::False,
            "NamespaceInAnotherMesh".into(),
            "spec.namespaces[0].name: namespace shop is already monitored by mesh blue".into()
        )
    );
    assert_eq!(state(&progress, ct::READY).1, "NamespaceInAnotherMesh");
}

#[test]
fn images_not_imported_yet_keep_the_installation_pending() {
    let progress = Progress::new(&spec(
        "  azure: {subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, clusterName: aks, location: eastus}\n  registry: {acr: acr, images: [{source: docker.io/library/nginx:1.27, target: \"nginx:1.27\"}]}\n",
    ));
    assert_eq!(
        state(&progress, ct::IMAGES_IMPORTED),
        (ConditionStatus::False, "Pending".into(), "the images have not been imported yet".into())
    );
    assert_eq!(
        state(&progress, ct::READY),
        (ConditionStatus::False, "Pending".into(), "ImagesImported: the images have not been imported yet".into())
    );
}

#[test]
fn the_ingress_condition_gives_its_address_once_ready() {
    let mut progress = Progress::new(&spec(
        "  namespaces: [{name: shop}]\n  apps: [{name: web, namespace: shop, image: x, port: 80}]\n  ingress: {rules: [{name: web, host: a.example.com, path: /, backend: {service: web, namespace: shop, port: 80}}]}\n",
    ));
    assert_eq!(state(&progress, ct::INGRESS_READY).2, "the ingress is in place");
    progress.ingress_address = Some("203.0.113.7".into());
    assert_eq!(
        state(&progress, ct::INGRESS_READY),
        (ConditionStatus::True, "Available".into(), "the ingress is in place at 203.0.113.7".into())
    );
    not_ready(&mut progress, Component::Ingress, "Deployment ingress-nginx/controller: 0/1 replicas ready");
    assert_eq!(
        state(&progress, ct::INGRESS_READY).2,
        "Deployment ingress-nginx/controller: 0/1 replicas ready",
        "no address is claimed while the controller is not ready"
    );
}

#[test]
fn a_policy_that_could_not_be_translated_degrades_a_ready_installation() {
    let mut progress = plain();
    progress.notifications.push(notification(NotificationLevel::Warning, "TrafficTarget/shop/a", "narrower"));
    assert!(progress.ready(), "a warning needs no action");
    progress.notifications.push(notification(NotificationLevel::Error, "HTTPRouteGroup/shop/g", "path is not a regex"));
    assert_eq!(
        state(&progress, ct::DEGRADED),
        (ConditionStatus::True, "TranslationError".into(), "HTTPRouteGroup/shop/g: path is not a regex".into())
    );
    assert_eq!(
        state(&progress, ct::READY),
        (ConditionStatus::False, "TranslationError".into(), "HTTPRouteGroup/shop/g: path is not a regex".into()),
        "every component is ready, yet Ready says what needs attention"
    );
}

#[test]
fn degraded_shows_the_most_urgent_cause() {
    let mut progress = plain();
    progress.notifications.push(notification(NotificationLevel::Error, "HTTPRouteGroup/shop/g", "bad"));
    progress.azure.degraded = Some(super::super::conditions::degraded(
        "AuthorizationFailed",
        "the identity may not write to the cluster".into(),
    ));
    assert_eq!(
        state(&progress, ct::DEGRADED).1,
        "AuthorizationFailed",
        "a fatal Azure error before translation findings"
    );
    progress.record(Component::Traffic, 0, &[conflict("TrafficSplit/shop/s")]);
    assert_eq!(state(&progress, ct::DEGRADED).1, "Conflict", "a conflict first");
}

#[test]
fn the_azure_step_decides_mesh_ready_and_images_imported() {
    let mut progress = Progress::new(&spec(
        "  azure: {subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, clusterName: aks, location: eastus}\n  registry: {acr: acr, images: [{source: docker.io/library/nginx:1.27, target: \"nginx:1.27\"}]}\n",
    ));
    progress.azure.provider =
        Some(ConditionUpdate::not_ok(ct::MESH_READY, "OperationInProgress", "enabling the OSM add-on"));
    progress.azure.images =
        Some(ConditionUpdate::ok(ct::IMAGES_IMPORTED, "Imported", "1 image(s) imported into acr.azurecr.io"));
    assert_eq!(state(&progress, ct::MESH_READY).1, "OperationInProgress");
    assert_eq!(state(&progress, ct::IMAGES_IMPORTED).1, "Imported");
    assert_eq!(state(&progress, ct::READY).2, "MeshReady: enabling the OSM add-on");
}

#[test]
fn component_statuses_count_ready_workloads() {
    let mut progress = plain();
    progress.entry(Component::Apps).workloads = 2;
    not_ready(&mut progress, Component::Apps, "Deployment shop/web: 0/1 replicas ready");
    let apps = progress.component_statuses().into_iter().find(|c| c.name == "apps").expect("apps");
    assert_eq!((apps.ready, apps.ready_count, apps.total), (false, 2, 3));
    assert_eq!(apps.message, "Deployment shop/web: 0/1 replicas ready");
}

#[test]
fn notifications_shown_are_bounded_deduplicated_and_most_severe_first() {
    let mut all = vec![notification(NotificationLevel::Info, "A/x", "info"); 2];
    all.extend(
        (0..MAX_STATUS_NOTIFICATIONS + 5).map(|i| notification(NotificationLevel::Warning, &format!("W/{i:03}"), "w")),
    );
    all.push(notification(NotificationLevel::Error, "E/z", "error"));
    let (shown, omitted) = bounded_notifications(&all);
    assert_eq!(shown.len(), MAX_STATUS_NOTIFICATIONS);
    assert_eq!(shown[0].level, NotificationLevel::Error);
    assert!(shown.iter().all(|n| n.level != NotificationLevel::Info), "infos are the first left out");
    // 1 error + 105 warnings + 1 distinct info = 107 distinct findings, 100 shown.
    assert_eq!(omitted, Some(7));
    assert_eq!(bounded_notifications(&all[..3]).1, None, "nothing omitted, nothing said");
}
