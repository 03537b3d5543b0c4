//! Every object of the translation's golden fixtures is accepted by a real API server with the
//! upstream Gateway API v1.5.1 CRDs (real CEL) and Istio's own CRDs (istio.io/api v1.32.0), both
//! installed by the local control plane (on other targets, the test needs them installed).

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use mesh_e2e::TestCluster;

async fn every_translated_fixture_object_is_accepted_by_the_api_server() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/translate");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let mut accepted = 0;
    // Namespaces this test creates (dry runs need them), deleted at the end: on a cluster the
    // harness does not own it leaves nothing and removes nothing it did not create.
    let mut created = Vec::new();
    let mut cases: Vec<_> =
        std::fs::read_dir(&fixtures).expect("fixtures").filter_map(Result::ok).map(|e| e.path()).collect();
    cases.sort();
    for case in cases.into_iter().filter(|p| p.join("expected.yaml").exists()) {
        let text = std::fs::read_to_string(case.join("expected.yaml")).expect("read");
        for document in text.split("\n---").map(str::trim).filter(|d| !d.is_empty() && *d != "---") {
            let document = document.trim_start_matches("---").trim();
            if document.is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_yaml::from_str(document).expect("yaml");
            let object: DynamicObject = serde_json::from_value(value).expect("object");
            let types = object.types.clone().expect("apiVersion/kind");
            let gvk = GroupVersionKind::try_from(&types).expect("gvk");
            let plural = match gvk.kind.as_str() {
                "HTTPRoute" => "httproutes",
                "AuthorizationPolicy" => "authorizationpolicies",
                other => panic!("{}: unexpected kind {other}", case.display()),
            };
            let namespace = object.metadata.namespace.clone().expect("namespaced");
            if namespaces.get_opt(&namespace).await.expect("get ns").is_none() {
                let ns: Namespace =
                    serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).expect("ns");
                namespaces.create(&PostParams::default(), &ns).await.expect("create ns");
                created.push(namespace.clone());
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &ApiResource::from_gvk_with_plural(&gvk, plural));
            api.create(&dry_run, &object).await.unwrap_or_else(|e| {
                panic!(
                    "{}: {} {namespace}/{} rejected: {e}",
                    case.display(),
                    gvk.kind,
                    object.metadata.name.clone().unwrap_or_default()
                )
            });
            accepted += 1;
        }
    }
    for namespace in created {
        namespaces.delete(&namespace, &Default::default()).await.expect("delete the namespace this test created");
    }
    assert!(accepted >= 20, "only {accepted} translated objects were checked");
    eprintln!("{accepted} translated objects accepted by the API server");
}

mesh_e2e::e2e_main! {
    every_translated_fixture_object_is_accepted_by_the_api_server: [IstioCrds, GatewayApiCrds],
}
