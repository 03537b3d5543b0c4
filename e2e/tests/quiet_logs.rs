//! The operator's log is for people: on a clean run it holds no WARN or ERROR. Run as the
//! operator's ServiceAccount on a cluster that never had Istio (so `security.istio.io` kinds are
//! not served, and the OSM/SMI CRDs appear only when the operator installs them and go when it
//! removes them), the whole bookstore scenario — apply, converge, 50/50 → 0/100, delete, ordered
//! teardown — must log no warning: no watch retrying a kind whose CRD is absent (kube-client's
//! `Unsuccessful data error parse: 404 page not found`), no "failed to remove finalizer".

use std::time::Duration;

use mesh_e2e::TestCluster;
use mesh_e2e::operator::{LogCapture, OperatorHandle, test_settings};
use mesh_e2e::scenario::{self, apply, delete_and_wait_gone, sample, wait_ready};

async fn a_full_bookstore_scenario_without_istio_logs_no_warning() {
    let Some(cluster) = TestCluster::get_without_istio() else { return };
    let admin = cluster.client().await;
    // The test's own requests never touch a kind that is not served, so the process's log is the
    // operator's.
    let log = LogCapture::default();
    assert!(log.install(), "the log capture is the first subscriber of this test binary");
    let operator =
        OperatorHandle::start_as_service_account(cluster, &admin, test_settings(Duration::from_secs(300))).await;

    let mut mi = sample("bookstore.yaml");
    apply(&admin, &mi).await;
    wait_ready(&admin, "bookstore").await;
    scenario::shift_bookstore_to_v2(&admin, &mut mi).await;
    delete_and_wait_gone(&admin, "bookstore").await;
    // The last reconciles (the finalizer's removal, events queued behind it) finish meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    operator.stop().await;

    let lines = log.lines();
    assert!(
        lines.iter().any(|l| l.contains("teardown complete")),
        "the operator's log was captured:\n{}",
        lines.join("\n")
    );
    let warnings = log.warnings();
    assert!(warnings.is_empty(), "the operator logged {} warnings:\n{}", warnings.len(), warnings.join("\n"));
}

mesh_e2e::e2e_main! {
    a_full_bookstore_scenario_without_istio_logs_no_warning: [SimulatedPods, OwnedCluster, InProcessOperator],
}
