//! Live translation with `traffic.translateExisting`: SMI objects someone else put in an enrolled
//! namespace (here: left by OSM, as before a migration) are translated into GAMMA HTTPRoutes,
//! follow their edits, and their output goes away with them. The mesh is the AKS Istio add-on on the
//! ARM emulator (GatewayAPI mode needs Istio); the HTTPRoutes are admitted by the upstream Gateway
//! API CRDs and the AuthorizationPolicies by Istio's own CRDs, both installed by the local control
//! plane.

use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::smi;
use mesh_e2e::operator::test_settings;
use mesh_e2e::scenario::{CONVERGE, delete_and_wait_gone, start_on_emulator, translating_on_istio};
use mesh_e2e::{TestCluster, wait};

/// Two versions of web; the root Service web selects both, web-v1 and web-v2 one each (the
/// split's backends).
const APPS: &str = "[
    { name: web, namespace: tl-shop, image: example.invalid/web:1, version: v1, port: 8080,
      service: { versionServices: [ { name: web-v1 } ] } },
    { name: web-v2, namespace: tl-shop, appLabel: web, image: example.invalid/web:2, version: v2, port: 8080,
      service: { skipMain: true, versionServices: [ { name: web-v2 } ] } } ]";

fn split(v1: i64, v2: i64) -> smi::TrafficSplit {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "web-split", "namespace": "tl-shop"},
        "spec": {"service": "web.tl-shop", "backends": [{"service": "web-v1", "weight": v1}, {"service": "web-v2", "weight": v2}]}
    }))
    .expect("split")
}

async fn route_weights(routes: &Api<HttpRoute>) -> Result<Vec<(String, i32)>, String> {
    let route = routes.get_opt("web-split").await.map_err(|e| e.to_string())?.ok_or("no HTTPRoute web-split yet")?;
    let rules = route.spec.rules.unwrap_or_default();
    let last = rules.last().ok_or("no rules")?;
    Ok(last.backend_refs.clone().unwrap_or_default().into_iter().map(|b| (b.name, b.weight.unwrap_or(1))).collect())
}

async fn existing_smi_objects_are_translated_and_followed() {
    let Some(cluster) = TestCluster::get() else { return };
    let client: Client = cluster.client().await;
    // The SMI CRDs as the OSM add-on leaves them before a migration.
    let mi = translating_on_istio("translate-live", "tl-shop", APPS);
    let (_emulator, operator) = start_on_emulator(&client, mi, test_settings(Duration::from_secs(300))).await;

    // Someone adds a TrafficSplit of their own.
    let splits: Api<smi::TrafficSplit> = Api::namespaced(client.clone(), "tl-shop");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    wait::until("the operator to create namespace tl-shop", CONVERGE, || async {
        splits.list(&Default::default()).await.map_err(|e| e.to_string())?;
        namespaces.get_opt("tl-shop").await.map_err(|e| e.to_string())?.map(|_| ()).ok_or("not yet".to_string())
    })
    .await;
    splits.create(&Default::default(), &split(50, 50)).await.expect("create a foreign TrafficSplit");
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), "tl-shop");
    wait::until("the TrafficSplit to be translated 50/50", CONVERGE, || async {
        let weights = route_weights(&routes).await?;
        if weights == vec![("web-v1".to_string(), 50), ("web-v2".to_string(), 50)] {
            Ok(())
        } else {
            Err(format!("{weights:?}"))
        }
    })
    .await;
    let route = routes.get("web-split").await.expect("route");
    assert_eq!(
        route.annotations().get("meshoperator.dev/translated-from").map(String::as_str),
        Some("TrafficSplit/tl-shop/web-split")
    );

    // Editing the SMI object moves the route with it, without touching the MeshInstallation.
    splits
        .patch("web-split", &PatchParams::apply("someone").force(), &Patch::Apply(&split(0, 100)))
        .await
        .expect("edit split");
    wait::until("the translation to follow the edit to 0/100", CONVERGE, || async {
        let weights = route_weights(&routes).await?;
        if weights == vec![("web-v1".to_string(), 0), ("web-v2".to_string(), 100)] {
            Ok(())
        } else {
            Err(format!("{weights:?}"))
        }
    })
    .await;

    // Deleting it removes its translation.
    splits.delete("web-split", &DeleteParams::default()).await.expect("delete split");
    wait::until("the translated route to be pruned", CONVERGE, || async {
        match routes.get_opt("web-split").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("route still there".into()),
        }
    })
    .await;

    delete_and_wait_gone(&client, "translate-live").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    existing_smi_objects_are_translated_and_followed: [ArmEmulator, InProcessOperator, IstioCrds, GatewayApiCrds],
}
