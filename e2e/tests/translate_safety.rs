//! The translation's two safety promises on a live installation (GatewayAPI mode, the AKS Istio
//! add-on on the ARM emulator; Istio's own CRDs admit the AuthorizationPolicies):
//!
//! - **No workload fails open**: a Deployment the installation does not manage, in an enrolled
//!   namespace, is covered by the namespace-wide deny-all baseline and by no ALLOW policy; a
//!   foreign workload that loses the access OSM gave it is reported (INFO naming it).
//! - **An ERROR keeps the previous output**: when a TrafficTarget gains an ERROR, every translated
//!   object stays exactly as it was (same resourceVersions) over several resyncs while the
//!   installation shows Degraded/TranslationError; once fixed, the output follows again.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mesh_crds::istio::AuthorizationPolicy;
use mesh_crds::{ConditionStatus, MeshInstallation, NotificationLevel, smi};
use mesh_e2e::operator::test_settings;
use mesh_e2e::scenario::{CONVERGE, condition, delete_and_wait_gone, start_on_emulator, translating_on_istio};
use mesh_e2e::{TestCluster, wait};

/// Short, so that the "nothing changes" window below spans several resyncs.
const RESYNC: Duration = Duration::from_secs(2);
const NS: &str = "ts-shop";
const SOURCE: &str = "TrafficTarget/ts-shop/web-readers";

const APPS: &str = "[ { name: web, namespace: ts-shop, image: example.invalid/web:1, port: 8080 } ]";

fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("test object")
}

/// A Deployment the installation does not manage.
fn foreign_deployment(name: &str) -> Deployment {
    object(serde_json::json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": name, "containers": [{"name": name, "image": "example.invalid/foreign:1"}]}
            }
        }
    }))
}

/// The group: match `read` with `methods`, and match `other` with `other_methods` if given (the
/// TrafficTargets grant both; a missing match grants nothing, with a WARNING).
/// `other`: the path regex and methods of a second match, "other".
fn routes(methods: &[&str], other: Option<(&str, &[&str])>) -> smi::HTTPRouteGroup {
    let mut matches = vec![serde_json::json!({"name": "read", "pathRegex": "/items/.*", "methods": methods})];
    if let Some((path, other_methods)) = other {
        matches.push(serde_json::json!({"name": "other", "pathRegex": path, "methods": other_methods}));
    }
    object(serde_json::json!({
        "apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup",
        "metadata": {"name": "web-routes", "namespace": NS},
        "spec": {"matches": matches}
    }))
}

fn target(name: &str, destination: &str, source: &str) -> smi::TrafficTarget {
    object(serde_json::json!({
        "apiVersion": "access.smi-spec.io/v1alpha3", "kind": "TrafficTarget",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": destination, "namespace": NS},
            "rules": [{"kind": "HTTPRouteGroup", "name": "web-routes", "matches": ["read", "other"]}],
            "sources": [{"kind": "ServiceAccount", "name": source, "namespace": NS}]
        }
    }))
}

/// Every translated object of the namespace: `Kind/name` → resourceVersion.
async fn translated(client: &Client) -> Result<BTreeMap<String, String>, String> {
    let annotated = |meta: &kube::api::ObjectMeta| {
        meta.annotations.as_ref().is_some_and(|a| a.contains_key(mesh_provisioner::translate::SOURCE_ANNOTATION))
    };
    let mut out = BTreeMap::new();
    let policies: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), NS);
    for p in policies.list(&ListParams::default()).await.map_err(|e| e.to_string())? {
        if annotated(&p.metadata) {
            out.insert(format!("AuthorizationPolicy/{}", p.name_any()), p.resource_version().unwrap_or_default());
        }
    }
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), NS);
    for r in routes.list(&ListParams::default()).await.map_err(|e| e.to_string())? {
        if annotated(&r.metadata) {
            out.insert(format!("HTTPRoute/{}", r.name_any()), r.resource_version().unwrap_or_default());
        }
    }
    Ok(out)
}

async fn installation(api: &Api<MeshInstallation>) -> Result<MeshInstallation, String> {
    api.get("translate-safety").await.map_err(|e| e.to_string())
}

fn translation_error(mi: &MeshInstallation) -> Option<String> {
    match condition(mi, "Degraded") {
        Some((ConditionStatus::True, reason, message)) if reason == "TranslationError" => Some(message),
        _ => None,
    }
}

async fn foreign_workloads_are_denied_and_an_error_keeps_the_previous_output() {
    let Some(cluster) = TestCluster::get() else { return };
    let client: Client = cluster.client().await;
    let mi = translating_on_istio("translate-safety", NS, APPS);
    let (_emulator, operator) = start_on_emulator(&client, mi, test_settings(RESYNC)).await;
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait::until("the operator to create namespace ts-shop", CONVERGE, || async {
        namespaces.get_opt(NS).await.map_err(|e| e.to_string())?.map(|_| ()).ok_or("not yet".to_string())
    })
    .await;

    // Foreign workloads: a Deployment nobody grants anything, and a bare pod without labels that
    // OSM let web call (no policy can select it).
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    for name in ["intruder", "legacy"] {
        let account: ServiceAccount = object(serde_json::json!({"metadata": {"name": name, "namespace": NS}}));
        accounts.create(&PostParams::default(), &account).await.expect("ServiceAccount");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments.create(&PostParams::default(), &foreign_deployment("intruder")).await.expect("foreign Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let legacy: Pod = object(serde_json::json!({
        "metadata": {"name": "legacy", "namespace": NS},
        "spec": {"serviceAccountName": "legacy", "containers": [{"name": "legacy", "image": "example.invalid/legacy:1"}]}
    }));
    pods.create(&PostParams::default(), &legacy).await.expect("bare pod");
    // SMI objects as OSM left them (each change triggers a reconcile).
    let groups: Api<smi::HTTPRouteGroup> = Api::namespaced(client.clone(), NS);
    let targets: Api<smi::TrafficTarget> = Api::namespaced(client.clone(), NS);
    let ssa = PatchParams::apply("someone").force();
    groups.patch("web-routes", &ssa, &Patch::Apply(&routes(&["GET"], None))).await.expect("HTTPRouteGroup");
    targets.patch("to-legacy", &ssa, &Patch::Apply(&target("to-legacy", "legacy", "web"))).await.expect("to-legacy");
    targets
        .patch("web-readers", &ssa, &Patch::Apply(&target("web-readers", "web", "client")))
        .await
        .expect("web-readers");

    let policies: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), NS);
    let web_policy = wait::until("web-readers to be translated", CONVERGE, || async {
        policies.get_opt("web-readers-web").await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
    })
    .await;
    assert!(serde_json::to_string(&web_policy.spec).expect("json").contains("\"GET\""), "{:?}", web_policy.spec);

    // (a) The baseline covers the foreign Deployment; no ALLOW policy selects its pods.
    let baseline = policies.get("deny-all").await.expect("namespace-wide deny-all");
    assert_eq!(baseline.spec.action.as_deref(), Some("ALLOW"));
    assert!(baseline.spec.selector.is_none(), "the baseline selects every pod of the namespace");
    assert!(baseline.spec.rules.is_empty(), "the baseline admits nothing");
    let intruder_labels = BTreeMap::from([("app".to_string(), "intruder".to_string())]);
    for policy in policies.list(&ListParams::default()).await.expect("list") {
        let selects_intruder = policy
            .spec
            .selector
            .as_ref()
            .is_none_or(|s| s.match_labels.iter().all(|(k, v)| intruder_labels.get(k) == Some(v)));
        if selects_intruder && policy.spec.action.as_deref() == Some("ALLOW") {
            assert!(
                policy.spec.rules.is_empty(),
                "{} admits the foreign Deployment: {:?}",
                policy.name_any(),
                policy.spec
            );
        }
    }
    // The foreign pod that loses OSM's access is named.
    let reported = wait::until("the lost access of Pod/ts-shop/legacy to be reported", CONVERGE, || async {
        let mi = installation(&api).await?;
        let notes = mi.status.map(|s| s.notifications).unwrap_or_default();
        notes
            .into_iter()
            .find(|n| n.level == NotificationLevel::Info && n.object == "Pod/ts-shop/legacy")
            .ok_or("not yet".to_string())
    })
    .await;
    assert!(reported.message.contains("loses the access OSM gave it"), "{}", reported.message);
    // That TrafficTarget's ERROR goes with it.
    targets.delete("to-legacy", &DeleteParams::default()).await.expect("delete to-legacy");
    wait::until("no TranslationError once to-legacy is gone", CONVERGE, || async {
        match translation_error(&installation(&api).await?) {
            Some(message) => Err(message),
            None => Ok(()),
        }
    })
    .await;

    // (b) web-readers gains an ERROR (match "other": a path that is not a regular expression;
    // OSM's own CRD admits any string there, while its methods are an enum) in the same edit that
    // widens "read" to PUT: its new output differs and must not be written.
    let before = translated(&client).await.expect("translated objects");
    assert!(before.contains_key("AuthorizationPolicy/web-readers-web"), "{before:?}");
    groups
        .patch("web-routes", &ssa, &Patch::Apply(&routes(&["GET", "PUT"], Some(("(", &["GET"])))))
        .await
        .expect("break");
    let message = wait::until("Degraded/TranslationError naming web-readers", CONVERGE, || async {
        let mi = installation(&api).await?;
        translation_error(&mi).filter(|m| m.contains(SOURCE)).ok_or(format!("{:?}", condition(&mi, "Degraded")))
    })
    .await;
    eprintln!("degraded: {message}");
    // Several resyncs (and a reconcile triggered by an SMI change) write nothing of it.
    for round in 0..4 {
        tokio::time::sleep(RESYNC * 2).await;
        if round == 1 {
            let touch = serde_json::json!({"metadata": {"annotations": {"e2e/touched": "1"}}});
            groups.patch("web-routes", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
        }
        let now = translated(&client).await.expect("translated objects");
        assert_eq!(now, before, "round {round}: translated objects changed while {SOURCE} has an ERROR");
        let mi = installation(&api).await.expect("installation");
        assert!(
            translation_error(&mi).is_some_and(|m| m.contains(SOURCE)),
            "round {round}: {:?}",
            condition(&mi, "Degraded")
        );
    }

    let policy = policies.get("web-readers-web").await.expect("web-readers-web is kept");
    assert!(!serde_json::to_string(&policy.spec).expect("json").contains("\"PUT\""), "{:?}", policy.spec);

    // Fixed: the output follows again (POST added) and the condition clears.
    groups
        .patch("web-routes", &ssa, &Patch::Apply(&routes(&["GET", "POST"], Some(("/other", &["DELETE"])))))
        .await
        .expect("fix");
    wait::until("web-readers-web to follow the fix", CONVERGE, || async {
        let policy = policies.get("web-readers-web").await.map_err(|e| e.to_string())?;
        let text = serde_json::to_string(&policy.spec).map_err(|e| e.to_string())?;
        if text.contains("\"POST\"") { Ok(()) } else { Err(text) }
    })
    .await;
    wait::until("the TranslationError to clear", CONVERGE, || async {
        let mi = installation(&api).await?;
        match translation_error(&mi) {
            Some(message) if message.contains(SOURCE) => Err(message),
            _ => Ok(()),
        }
    })
    .await;
    let after = translated(&client).await.expect("translated objects");
    assert_ne!(after.get("AuthorizationPolicy/web-readers-web"), before.get("AuthorizationPolicy/web-readers-web"));

    delete_and_wait_gone(&client, "translate-safety").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    foreign_workloads_are_denied_and_an_error_keeps_the_previous_output: [ArmEmulator, InProcessOperator, IstioCrds, GatewayApiCrds],
}
