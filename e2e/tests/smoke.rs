//! Smoke tests of the test cluster itself: real CRD schema and CEL validation, Deployments that
//! become Available, EndpointSlices, garbage collection, namespace deletion, and the upstream
//! Gateway API CRDs' validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use mesh_crds::{MeshInstallation, samples};
use mesh_e2e::{TempNamespace, TestCluster, wait};
use serde_json::json;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    samples::yaml_files(dir).unwrap_or_else(|e| panic!("{e}"))
}

const TIMEOUT: Duration = Duration::from_secs(60);

async fn samples_are_admitted_and_invalid_samples_rejected_with_their_message() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    mesh_operator::controller::ensure_crd(&client, true).await.expect("CRD installs");
    let api: Api<MeshInstallation> = Api::all(client);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    for path in yaml_files(&samples::dir()) {
        let object = MeshInstallation::from_yaml(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        api.create(&dry_run, &object).await.unwrap_or_else(|e| panic!("{} was rejected: {e}", path.display()));
    }
    let mut checked = 0;
    let invalid = samples::invalid().unwrap_or_else(|e| panic!("{e}"));
    for sample in invalid.iter().filter(|sample| !sample.passes_admission) {
        let (path, expected) = (&sample.path, sample.expected_error.as_str());
        let object: serde_json::Value = serde_yaml::from_str(&sample.text).expect("parse");
        let object: MeshInstallation = match serde_json::from_value(object.clone()) {
            Ok(object) => object,
            // Values our types cannot even hold (e.g. an unknown enum value) are sent as they are.
            Err(_) => {
                let raw: Api<kube::api::DynamicObject> =
                    Api::all_with(cluster.client().await, &kube::api::ApiResource::erase::<MeshInstallation>(&()));
                let dynamic: kube::api::DynamicObject = serde_json::from_value(object).expect("dynamic");
                let error = raw.create(&dry_run, &dynamic).await.expect_err("must be rejected");
                assert!(error.to_string().contains(expected), "{}: expected {expected:?} in {error}", path.display());
                checked += 1;
                continue;
            }
        };
        let error = api.create(&dry_run, &object).await.expect_err(&format!("{} must be rejected", path.display()));
        assert!(
            error.to_string().contains(expected),
            "{}: expected {expected:?} in the API server's answer: {error}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} invalid samples were checked");
}

/// The installations `meshctl status` is tested on (operator/src/meshctl/testdata) are ones the
/// API server admits: a display test of an installation nobody can create proves little.
async fn meshctl_status_fixtures_are_admitted() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    mesh_operator::controller::ensure_crd(&client, true).await.expect("CRD installs");
    let api: Api<MeshInstallation> = Api::all(client);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let fixtures = yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../operator/src/meshctl/testdata"));
    assert!(fixtures.len() >= 2, "fixtures: {fixtures:?}");
    for path in fixtures {
        let mut object = MeshInstallation::from_yaml(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        object.metadata.generation = None;
        object.status = None;
        api.create(&dry_run, &object).await.unwrap_or_else(|e| panic!("{} was rejected: {e}", path.display()));
    }
}

async fn a_deployment_becomes_available_and_its_service_gets_endpoints() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "smoke-deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1", "ports": [{"containerPort": 8080}]}]}
            }
        }
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &deployment).await.expect("create deployment");
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("service");
    services.create(&PostParams::default(), &service).await.expect("create service");

    wait::until("Deployment web to be Available with 2 replicas", TIMEOUT, || async {
        let d = deployments.get("web").await.map_err(|e| e.to_string())?;
        let status = d.status.unwrap_or_default();
        let available =
            status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Available" && c.status == "True");
        if available && status.available_replicas == Some(2) {
            Ok(())
        } else {
            Err(format!("availableReplicas={:?}, available={available}", status.available_replicas))
        }
    })
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client, &ns.name);
    wait::until("EndpointSlices of Service web to hold 2 ready endpoints", TIMEOUT, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .count();
        if ready == 2 { Ok(()) } else { Err(format!("{ready} ready endpoints in {} slices", list.items.len())) }
    })
    .await;
}

async fn owned_objects_are_garbage_collected_and_deleted_namespaces_disappear() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "smoke-gc").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let owner = config_maps
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm"))
        .await
        .expect("create owner");
    let child: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "child", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().expect("uid")}]}
    }))
    .expect("child");
    config_maps.create(&PostParams::default(), &child).await.expect("create child");
    config_maps.delete("owner", &DeleteParams::background()).await.expect("delete owner");
    wait::until("the child ConfigMap to be garbage-collected", TIMEOUT, || async {
        match config_maps.get_opt("child").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("child still exists".into()),
        }
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(client);
    let name = ns.name.clone();
    namespaces.delete(&name, &DeleteParams::background()).await.expect("delete namespace");
    wait::until("the deleted namespace to disappear", TIMEOUT, || async {
        match namespaces.get_opt(&name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(n) => Err(format!("phase {:?}", n.status.and_then(|s| s.phase))),
        }
    })
    .await;
}

async fn gateway_api_crds_validate_routes() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "smoke-gw").await;
    let routes: Api<HttpRoute> = Api::namespaced(client, &ns.name);
    let route = |path: &str| -> HttpRoute {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "bookstore"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "bookstore", "port": 14001}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [{"name": "bookstore-v1", "port": 14001, "weight": 50}, {"name": "bookstore-v2", "port": 14001, "weight": 50}]
                }]
            }
        }))
        .expect("route")
    };
    let error = routes
        .create(&PostParams::default(), &route("books-bought"))
        .await
        .expect_err("a path without a leading / is invalid");
    assert!(error.to_string().contains("must be an absolute path"), "unexpected rejection: {error}");
    let created = routes
        .create(&PostParams::default(), &route("/books-bought"))
        .await
        .expect("a GAMMA route with a Service parent is accepted");
    let parent = &created.spec.parent_refs.as_ref().expect("parentRefs")[0];
    assert_eq!(parent.group.as_deref(), Some(""));
    assert_eq!(parent.kind.as_deref(), Some("Service"));
}

mesh_e2e::e2e_main! {
    meshctl_status_fixtures_are_admitted: [],
    samples_are_admitted_and_invalid_samples_rejected_with_their_message: [],
    a_deployment_becomes_available_and_its_service_gets_endpoints: [SimulatedPods],
    owned_objects_are_garbage_collected_and_deleted_namespaces_disappear: [],
    gateway_api_crds_validate_routes: [GatewayApiCrds],
}
