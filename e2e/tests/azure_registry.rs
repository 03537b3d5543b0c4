//! `spec.registry` across an installation's life, on the ARM emulator: the AcrPull role
//! assignment of `attach: true` (made once, never again on resync, removed on teardown only when
//! this installation made it) and imports that survive a delete + re-apply (an image already
//! imported from the same source counts as imported; another image under the same tag is a
//! conflict naming both). Every scenario prints the emulator's request counts.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_e2e::arm_emulator::{self, ArmEmulator};
use mesh_e2e::azure_suite::*;
use mesh_e2e::operator::OperatorHandle;
use mesh_e2e::scenario::{SECRET_NAMESPACE, apply, condition, delete_and_wait_gone, sample, with_client_secret};
use mesh_e2e::{TestCluster, wait};
use mesh_operator::reconcile::azure::{ACR_PULL_FORBIDDEN, IMPORT_LEDGER};
use mesh_provisioner::azure::roles::{ACR_PULL_ROLE, assignment_name};

/// Scenarios share cluster-scoped names and the import ledger; one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn registry_scope() -> String {
    arm_emulator::registry_id(SUB, RG, ACR)
}

/// The ID our AcrPull assignment for the emulator's kubelet identity has.
fn our_assignment_id() -> String {
    let scope = registry_scope();
    let name = assignment_name(&scope, arm_emulator::KUBELET_OBJECT_ID, ACR_PULL_ROLE);
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}").to_ascii_lowercase()
}

/// An empty import ledger, then a clean cluster, the emulator and an operator pointed at it.
async fn start(client: &Client) -> (ArmEmulator, OperatorHandle) {
    let ledgers: Api<ConfigMap> = Api::namespaced(client.clone(), SECRET_NAMESPACE);
    let _ = ledgers.delete(IMPORT_LEDGER, &DeleteParams::default()).await;
    mesh_e2e::azure_suite::start(client).await
}

fn installation(name: &str) -> MeshInstallation {
    let mut mi = lean_aks(name);
    with_client_secret(&mut mi, "azure-sp");
    mi
}

async fn stored(client: &Client, name: &str) -> MeshInstallation {
    Api::<MeshInstallation>::all(client.clone()).get(name).await.expect("MeshInstallation")
}

async fn acr_pull_is_granted_once_and_a_reinstall_of_the_sample_imports_nothing_again() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let (emulator, operator) = start(&client).await;
    let mut mi = sample("bookstore-aks-addon.yaml");
    with_client_secret(&mut mi, "azure-sp");
    assert!(
        mi.spec.registry.as_ref().is_some_and(|r| r.attach),
        "the sample attaches the registry, as the article does"
    );

    // Converge: one GET of the (absent) assignment, one PUT.
    apply(&client, &mi).await;
    let ready = wait_converged(&client, "bookstore-aks", &mut BTreeSet::new()).await;
    print_counts("converge", &emulator);
    assert_eq!(emulator.count("PUT", "roleAssignment", false), 1, "{:?}", emulator.counts());
    assert_eq!(emulator.count("POST", "importImage", true), 4, "{:?}", emulator.counts());
    let assignments = emulator.role_assignments();
    let (principal, role) = assignments.get(&our_assignment_id()).expect("our AcrPull assignment");
    assert_eq!(principal, arm_emulator::KUBELET_OBJECT_ID);
    assert!(role.ends_with(&format!("/roleDefinitions/{ACR_PULL_ROLE}")), "{role}");
    assert_eq!(assignments.len(), 1, "{assignments:?}");
    let recorded = ready.status.as_ref().and_then(|s| s.acr_pull_assignment.clone()).expect("status.acrPullAssignment");
    assert!(recorded.created, "{recorded:?}");
    assert_eq!(recorded.id.to_ascii_lowercase(), our_assignment_id());
    assert_eq!(recorded.principal_id, arm_emulator::KUBELET_OBJECT_ID);
    let (_, _, images) = condition(&ready, "ImagesImported").expect("ImagesImported");
    assert!(images.contains("AcrPull for the kubelet identity"), "{images}");

    // Resync: nothing about the assignment is asked again, nothing is written.
    emulator.reset_counts();
    resync(&client, &emulator, "bookstore-aks").await;
    print_counts("resync", &emulator);
    assert_eq!(emulator.count("GET", "roleAssignment", false), 0, "{:?}", emulator.counts());
    assert_eq!(emulator.writes(), 0, "a steady installation makes no ARM write: {:?}", emulator.counts());

    // Teardown: the assignment this installation made goes; the images stay in the registry.
    emulator.reset_counts();
    delete_and_wait_gone(&client, "bookstore-aks").await;
    print_counts("teardown", &emulator);
    assert_eq!(emulator.count("DELETE", "roleAssignment", true), 1, "{:?}", emulator.counts());
    assert!(emulator.role_assignments().is_empty(), "{:?}", emulator.role_assignments());
    assert_eq!(emulator.registry_tags(SUB, RG, ACR).len(), 4);

    // Reinstall: ACR refuses every NoForce import (the tags exist), the ledger knows they came from
    // the same sources: imported, nothing copied, and the installation converges.
    emulator.reset_counts();
    apply(&client, &mi).await;
    let ready = wait_converged(&client, "bookstore-aks", &mut BTreeSet::new()).await;
    print_counts("reinstall", &emulator);
    assert_eq!(emulator.count("POST", "importImage", true), 0, "no new import: {:?}", emulator.counts());
    assert_eq!(emulator.count("GET", "importOperation", false), 0, "no import operation: {:?}", emulator.counts());
    let status = ready.status.clone().expect("status");
    assert_eq!(status.imported_images.len(), 4, "{:?}", status.imported_images);
    assert!(matches!(condition(&ready, "ImagesImported"), Some((ConditionStatus::True, _, _))));
    assert_eq!(image_of(&client, "bookbuyer", "bookbuyer").await, "srvmeshacr.azurecr.io/bookbuyer:v0.11.1");
    assert_eq!(emulator.count("PUT", "roleAssignment", true), 1, "granted again: {:?}", emulator.counts());

    emulator.reset_counts();
    delete_and_wait_gone(&client, "bookstore-aks").await;
    print_counts("teardown after reinstall", &emulator);
    assert!(emulator.role_assignments().is_empty());
    operator.stop().await;
}

async fn an_equal_assignment_made_by_someone_else_is_adopted_and_never_deleted() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let (emulator, operator) = start(&client).await;
    // `az aks update --attach-acr` made it before, under a random name.
    let theirs = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
    emulator.add_role_assignment(&registry_scope(), theirs, arm_emulator::KUBELET_OBJECT_ID, ACR_PULL_ROLE);

    apply(&client, &installation("adopt")).await;
    let ready = wait_converged(&client, "adopt", &mut BTreeSet::new()).await;
    print_counts("adopt: converge", &emulator);
    let recorded = ready.status.as_ref().and_then(|s| s.acr_pull_assignment.clone()).expect("status.acrPullAssignment");
    assert!(!recorded.created, "{recorded:?}");
    assert!(recorded.id.ends_with(theirs), "the existing assignment is named: {recorded:?}");
    assert_eq!(emulator.role_assignments().len(), 1, "no second assignment: {:?}", emulator.role_assignments());

    emulator.reset_counts();
    delete_and_wait_gone(&client, "adopt").await;
    print_counts("adopt: teardown", &emulator);
    assert_eq!(emulator.count("DELETE", "roleAssignment", false), 0, "{:?}", emulator.counts());
    assert!(emulator.role_assignments().keys().any(|id| id.ends_with(theirs)), "theirs stays");
    operator.stop().await;
}

async fn a_forbidden_role_assignment_is_named_with_the_permission_it_needs() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let (emulator, operator) = start(&client).await;
    emulator.forbid_role_assignments(true);

    apply(&client, &installation("forbidden-attach")).await;
    let (status, message) = wait_reason(&client, "forbidden-attach", "ImagesImported", ACR_PULL_FORBIDDEN).await;
    print_counts("forbidden attach", &emulator);
    assert_eq!(status, ConditionStatus::False);
    for part in ["Microsoft.Authorization/roleAssignments/write", "Role Based Access Control Administrator", "AcrPull"]
    {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let (degraded, _) = wait_reason(&client, "forbidden-attach", "Degraded", ACR_PULL_FORBIDDEN).await;
    assert_eq!(degraded, ConditionStatus::True);
    assert!(stored(&client, "forbidden-attach").await.status.and_then(|s| s.acr_pull_assignment).is_none());
    assert_eq!(emulator.count("PUT", "roleAssignment", false), 1, "not retried at once: {:?}", emulator.counts());
    force_delete(&client, "forbidden-attach").await;
    operator.stop().await;
}

async fn another_image_under_an_existing_tag_is_a_conflict_naming_the_tag_and_both_images() {
    let Some(cluster) = TestCluster::get() else { return };
    let _serial = SERIAL.lock().await;
    let client = cluster.client().await;
    let (emulator, operator) = start(&client).await;

    // First, a tag someone pushed by hand: nothing says what it holds.
    emulator.push_tag(SUB, RG, ACR, "bookthief:v0.11.1");
    let mut mi = installation("pushed");
    mi.spec.registry.as_mut().expect("registry").attach = false;
    apply(&client, &mi).await;
    let (status, message) = wait_reason(&client, "pushed", "ImagesImported", "ImageTagConflict").await;
    print_counts("conflict with a pushed tag", &emulator);
    assert_eq!(status, ConditionStatus::False);
    for part in [
        "srvmeshacr.azurecr.io/bookthief:v0.11.1",
        "not imported by mesh-operator",
        "docker.io/openservicemesh/bookthief:v0.11.1",
        "Force",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let (degraded, _) = wait_reason(&client, "pushed", "Degraded", "ImageTagConflict").await;
    assert_eq!(degraded, ConditionStatus::True);
    // The other three imports are still followed to their end.
    wait::until("the three other imports to be recorded", Duration::from_secs(60), || async {
        let imported = stored(&client, "pushed").await.status.map(|s| s.imported_images).unwrap_or_default();
        if imported.len() == 3 { Ok(()) } else { Err(format!("{imported:?}")) }
    })
    .await;
    force_delete(&client, "pushed").await;

    // Then an installation asking for another image under a tag mesh-operator imported.
    let mut mi = installation("other-source");
    mi.spec.registry.as_mut().expect("registry").attach = false;
    let image =
        mi.spec.registry.as_mut().expect("registry").images.iter_mut().find(|i| i.target == "bookbuyer:v0.11.1");
    image.expect("bookbuyer image").source = "docker.io/someone-else/bookbuyer:v0.11.1".into();
    apply(&client, &mi).await;
    let (_, message) = wait_reason(&client, "other-source", "ImagesImported", "ImageTagConflict").await;
    print_counts("conflict with another source", &emulator);
    for part in [
        "srvmeshacr.azurecr.io/bookbuyer:v0.11.1",
        "holds docker.io/openservicemesh/bookbuyer:v0.11.1",
        "MeshInstallation pushed",
        "asks for docker.io/someone-else/bookbuyer:v0.11.1",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    force_delete(&client, "other-source").await;
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    acr_pull_is_granted_once_and_a_reinstall_of_the_sample_imports_nothing_again: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    an_equal_assignment_made_by_someone_else_is_adopted_and_never_deleted: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    a_forbidden_role_assignment_is_named_with_the_permission_it_needs: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
    another_image_under_an_existing_tag_is_a_conflict_naming_the_tag_and_both_images: [ArmEmulator, AdmissionWebhooksOff, SimulatedPods, InProcessOperator],
}
