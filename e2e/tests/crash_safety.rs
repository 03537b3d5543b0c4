//! Crash safety of the self-hosted bookstore: the operator killed at random moments of an apply or
//! a teardown, restarted, converges to the same end state as an uninterrupted run and leaves
//! nothing behind (20 seeded runs; `CRASH_SEED`, `CRASH_RUNS`).
//!
//! OSM's control plane stays simulated here (`Need::SimulatedOsm`): each run installs and removes
//! the whole mesh, and with OSM's real osm-bootstrap, osm-controller and osm-injector (init
//! containers polling osm-bootstrap, the operator waiting for the injector before the apps, the
//! control plane stopped before teardown) a run takes ~1 min instead of ~15 s on the 2-core
//! machine, ~15 min more per `make test`. What is under test is the operator's own writes and
//! their order; the bookstore, rbac and real_osm suites run the same installation on real OSM.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstallation;
use mesh_e2e::TestCluster;
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario::{apply, delete_and_wait_gone, managed_objects, sample, wait_ready};
use mesh_provisioner::labels;

/// Why OSM stays simulated in this suite.
const WHY_SIMULATED_OSM: &str = "CPU cost: 21 installs and teardowns of the whole mesh, ~1 min each with real OSM";

/// What must be identical after any run: every managed object's content, minus what is generated
/// at random (key material, CA bundles, digests of them).
async fn end_state(client: &Client, installation: &str) -> BTreeMap<String, serde_json::Value> {
    let selector = labels::installation_selector(installation);
    let mut out = BTreeMap::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else { continue };
        for object in list.items {
            let key =
                format!("{}/{}/{}", kind.resource.kind, object.namespace().unwrap_or_default(), object.name_any());
            let mut value = mesh_provisioner::apply::compare::comparable(&serde_json::to_value(&object).expect("json"));
            scrub(&mut value);
            out.insert(key, value);
        }
    }
    out
}

/// The annotation osm-bootstrap adds to a MeshConfig without it (OSM's `ensureMeshConfig`).
const OSM_BOOTSTRAP_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn scrub(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("data");
            map.remove("caBundle");
            map.remove(mesh_provisioner::ingress::WEBHOOK_CERT_DIGEST_ANNOTATION);
            map.remove("clusterIP");
            map.remove("nodePort");
            map.remove("healthCheckNodePort");
            map.remove("clusterIPs");
            map.remove("uid");
            // osm-bootstrap (real once `make cluster` built OSM's images) adds kubectl's
            // last-applied annotation to the MeshConfig it finds, with the spec of that moment.
            map.remove(OSM_BOOTSTRAP_LAST_APPLIED);
            map.values_mut().for_each(scrub);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

async fn interrupted_applies_and_teardowns_converge_to_the_same_end_state() {
    let Some(cluster) = TestCluster::get_audited() else { return };
    let client = cluster.client().await;
    let settings = test_settings(Duration::from_secs(300));
    let mi = sample("bookstore.yaml");

    // The reference: one uninterrupted run, after a first one that leaves the (kept) namespaces
    // existing, as every later run finds them.
    let operator = OperatorHandle::start(client.clone(), settings.clone()).await;
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;
    delete_and_wait_gone(&client, "bookstore").await;
    let started = std::time::Instant::now();
    apply(&client, &mi).await;
    wait_ready(&client, "bookstore").await;
    let converge_time = started.elapsed();
    let reference = end_state(&client, "bookstore").await;
    let started = std::time::Instant::now();
    delete_and_wait_gone(&client, "bookstore").await;
    let teardown_time = started.elapsed();
    operator.stop().await;

    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261126);
    let runs: u64 = std::env::var("CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    eprintln!("crash safety: seed {seed}, {runs} runs (reproduce with CRASH_SEED={seed})");
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for run in 0..runs {
        let during_apply = run % 2 == 0;
        let window = if during_apply { converge_time } else { teardown_time };
        let delay = Duration::from_millis(rng.random_range(0..=window.as_millis().max(1) as u64));
        eprintln!(
            "run {run}: killing the operator {delay:?} into the {}",
            if during_apply { "apply" } else { "teardown" }
        );
        let operator = OperatorHandle::start(client.clone(), settings.clone()).await;
        apply(&client, &mi).await;
        if during_apply {
            tokio::time::sleep(delay).await;
            operator.kill().await;
            let operator = OperatorHandle::start(client.clone(), settings.clone()).await;
            wait_ready(&client, "bookstore").await;
            let state = end_state(&client, "bookstore").await;
            let differing: Vec<&String> =
                reference.keys().chain(state.keys()).filter(|k| reference.get(*k) != state.get(*k)).collect();
            assert!(differing.is_empty(), "run {run} (seed {seed}): end state differs in {differing:?}");
            delete_and_wait_gone(&client, "bookstore").await;
            operator.stop().await;
        } else {
            wait_ready(&client, "bookstore").await;
            let api: Api<MeshInstallation> = Api::all(client.clone());
            api.delete("bookstore", &DeleteParams::default()).await.expect("delete");
            tokio::time::sleep(delay).await;
            operator.kill().await;
            let operator = OperatorHandle::start(client.clone(), settings.clone()).await;
            delete_and_wait_gone(&client, "bookstore").await;
            operator.stop().await;
        }
        let left = managed_objects(&client, "bookstore").await;
        assert!(left.is_empty(), "run {run} (seed {seed}): left behind {left:?}");
    }
}

mesh_e2e::e2e_main! {
    interrupted_applies_and_teardowns_converge_to_the_same_end_state: [SimulatedPods, InProcessOperator, SimulatedOsm(WHY_SIMULATED_OSM)],
}
