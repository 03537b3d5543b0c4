//! What the Azure suites (`e2e/tests/azure.rs`, `e2e/tests/azure_registry.rs`) share: the
//! article's AKS names, an emulator holding its cluster and registry, waiting for conditions, and
//! cleaning up what an AKS add-on scenario leaves in the cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation};
use mesh_provisioner::labels;
use serde_json::json;

use crate::arm_emulator::ArmEmulator;
use crate::operator::OperatorHandle;
use crate::scenario::{CONVERGE, condition, operator_on_emulator, put_secret, sample, with_client_secret};
use crate::wait;

pub const SUB: &str = "00000000-0000-0000-0000-000000000000";
pub const RG: &str = "aks-train-rg";
pub const CLUSTER: &str = "aks-train-mesh-cluster";
pub const ACR: &str = "srvmeshacr";
pub const LOCATION: &str = "eastus";

pub fn conditions_text(mi: &MeshInstallation) -> String {
    mi.status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| format!("{}={:?} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// Waits until `type_` is True; records every (type, reason) seen meanwhile into `seen`.
pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    timeout: Duration,
    seen: &mut BTreeSet<(String, String)>,
) -> MeshInstallation {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let mi = api.get(name).await.expect("MeshInstallation");
        if let Some(status) = &mi.status {
            for c in &status.conditions {
                if c.status != ConditionStatus::True {
                    seen.insert((c.type_.clone(), c.reason.clone()));
                }
            }
        }
        let current = mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation;
        if current && matches!(condition(&mi, type_), Some((ConditionStatus::True, _, _))) {
            return mi;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {type_}=True on {name}; conditions: {}", conditions_text(&mi));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_reason(client: &Client, name: &str, type_: &str, reason: &str) -> (ConditionStatus, String) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until(&format!("{type_} reason {reason} on {name}"), Duration::from_secs(60), || async {
        let mi = api.get(name).await.map_err(|e| e.to_string())?;
        match condition(&mi, type_) {
            Some((status, r, message)) if r == reason => Ok((status, message)),
            _ => Err(conditions_text(&mi)),
        }
    })
    .await
}

/// Removes an installation without its teardown (for scenarios that end in a fatal error).
pub async fn force_delete(client: &Client, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}}))).await;
    let _ = api.delete(name, &DeleteParams::default()).await;
    let _ = wait::until("installation gone", Duration::from_secs(30), || async {
        match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
}

/// Removes what an earlier scenario's AKS add-on left in the cluster.
pub async fn reset_cluster(client: &Client) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    if let Ok(list) = api.list(&Default::default()).await {
        for mi in list.items {
            force_delete(client, &mi.name_any()).await;
        }
    }
    // Namespaces an earlier installation left (force-deleted ones skip their teardown).
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let selector = kube::api::ListParams::default().labels(labels::INSTALLATION);
    for ns in namespaces.list(&selector).await.map(|l| l.items).unwrap_or_default() {
        let _ = namespaces.delete(&ns.name_any(), &DeleteParams::default()).await;
    }
    // Only after a failed scenario; bounded, as a namespace with a bound volume can take long.
    for _ in 0..120 {
        if namespaces.list(&selector).await.map(|l| l.items.is_empty()).unwrap_or(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = mutating.delete("aks-osm-webhook-osm", &DeleteParams::default()).await;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let _ = validating.delete("aks-osm-validator-mesh-osm", &DeleteParams::default()).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let _ = deployments.delete("osm-controller", &DeleteParams::default()).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        let _ = crds.delete(&name, &DeleteParams::default()).await;
    }
    // Bounded and without failing: on a loaded machine the CRD cleanup can lag; the emulator
    // retries creating them until they are gone.
    for _ in 0..240 {
        let mut left = 0;
        for name in mesh_crds::generate::osm_crd_names() {
            if crds.get_opt(&name).await.ok().flatten().is_some() {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A clean cluster (see [`reset_cluster`]) and a new [`emulator`] whose client secret is in Secret
/// `azure-sp`; start the operator with [`operator_on_emulator`] once the emulator is set up.
pub async fn prepare(client: &Client) -> ArmEmulator {
    reset_cluster(client).await;
    let emulator = emulator(client).await;
    put_secret(client, "azure-sp", crate::arm_emulator::CLIENT_SECRET).await;
    emulator
}

/// [`prepare`], then the operator on the emulator.
pub async fn start(client: &Client) -> (ArmEmulator, OperatorHandle) {
    let emulator = prepare(client).await;
    let operator = operator_on_emulator(client, &emulator).await;
    (emulator, operator)
}

/// Only the AKS add-on: [`lean_aks`] without namespaces and apps, authenticating with `azure-sp`.
pub fn add_on_only(name: &str) -> MeshInstallation {
    let mut mi = lean_aks(name);
    mi.spec.apps.clear();
    mi.spec.namespaces.clear();
    with_client_secret(&mut mi, "azure-sp");
    mi
}

/// Every OSM CRD is gone (or going): what a teardown of the OSM add-on must leave.
pub async fn assert_osm_crds_gone(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        let crd = crds.get_opt(&name).await.expect("read");
        assert!(crd.is_none_or(|c| c.metadata.deletion_timestamp.is_some()), "CRD {name} is left");
    }
}

/// An emulator with the article's cluster (Kubernetes 1.30.4) and registry.
pub async fn emulator(client: &Client) -> ArmEmulator {
    let emulator = ArmEmulator::start(Some(client.clone())).await;
    emulator.add_cluster(SUB, RG, CLUSTER, LOCATION, "1.30.4");
    emulator.add_registry(SUB, RG, ACR, LOCATION);
    emulator
}

/// The AKS sample without ingress, traffic policy and mysql (whose volume is not what these
/// scenarios are about): mesh, registry, namespaces and apps.
pub fn lean_aks(name: &str) -> MeshInstallation {
    let mut mi = sample("bookstore-aks-addon.yaml");
    mi.metadata.name = Some(name.into());
    mi.spec.ingress = None;
    mi.spec.traffic = Default::default();
    mi.spec.apps.retain(|a| a.name != "mysql");
    mi
}

/// Ready; or, where the cluster cannot bind mysql's volume, every condition but AppsReady true and
/// AppsReady waiting only for mysql (reported).
pub async fn wait_converged(client: &Client, name: &str, seen: &mut BTreeSet<(String, String)>) -> MeshInstallation {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let mi = api.get(name).await.expect("MeshInstallation");
        let conditions = mi.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        for c in &conditions {
            if c.status != ConditionStatus::True {
                seen.insert((c.type_.clone(), c.reason.clone()));
            }
        }
        let current = mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation;
        let only_mysql = conditions.iter().filter(|c| c.type_ != "Ready" && c.type_ != "Degraded").all(|c| {
            c.status == ConditionStatus::True
                || (c.type_ == "AppsReady" && c.message.split("; ").all(|m| m.contains("bookwarehouse/mysql")))
        });
        if current && matches!(condition(&mi, "Ready"), Some((ConditionStatus::True, _, _))) {
            return mi;
        }
        if current && only_mysql && !conditions.is_empty() {
            eprintln!("converged except mysql's volume: {}", conditions_text(&mi));
            return mi;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {name} to converge; conditions: {}", conditions_text(&mi));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn image_of(client: &Client, namespace: &str, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let d = api.get(name).await.unwrap_or_else(|e| panic!("Deployment {namespace}/{name}: {e}"));
    d.spec.and_then(|s| s.template.spec).map(|s| s.containers[0].image.clone().unwrap_or_default()).unwrap_or_default()
}

pub fn print_counts(scenario: &str, emulator: &ArmEmulator) {
    eprintln!("ARM requests [{scenario}]: {:?}", emulator.counts());
}

/// Pokes the installation and waits for the reconcile that follows (it reads the cluster).
pub async fn resync(client: &Client, emulator: &ArmEmulator, name: &str) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"annotations": {"e2e/poke": "1"}}})))
        .await
        .expect("poke");
    wait::until("a reconcile after the poke", Duration::from_secs(30), || async {
        if emulator.count("GET", "managedCluster", false) >= 1 {
            Ok(())
        } else {
            Err(format!("{:?}", emulator.counts()))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
}
