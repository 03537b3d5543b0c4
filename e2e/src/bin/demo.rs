//! The bookstore demo on the local control plane: what the OSM-on-AKS article does in ~60
//! commands, as one MeshInstallation. Starts a local control plane and mesh-operator, applies
//! `samples/bookstore.yaml`, shows it converge, moves all traffic to bookstore-v2, then deletes it
//! and shows the teardown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use mesh_crds::{MeshInstallation, smi};
use mesh_e2e::TestCluster;
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_provisioner::labels;

fn conditions_line(mi: &MeshInstallation) -> String {
    let conditions = mi.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    conditions.iter().map(|c| format!("{}={:?}", c.type_, c.status)).collect::<Vec<_>>().join(" ")
}

async fn watch_until_ready(api: &Api<MeshInstallation>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let mi = api.get(name).await?;
        let line = conditions_line(&mi);
        if line != last && !line.is_empty() {
            println!("  [{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        let ready = mi.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == mesh_crds::ConditionStatus::True)
        });
        if ready {
            return Ok(());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("not Ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Only warnings from the operator: the demo prints its own progress (RUST_LOG overrides).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    println!(
        "== Starting a local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes)"
    );
    let cluster = TestCluster::get().ok_or_else(|| anyhow::anyhow!("no cluster"))?;
    let client = cluster.client().await;
    println!("   kubeconfig: {}", cluster.kubeconfig.display());
    println!("== Starting mesh-operator");
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(300))).await;

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore.yaml");
    let mut mi = MeshInstallation::from_yaml(&std::fs::read_to_string(path)?)?;
    let name = mi.name_any();
    let api: Api<MeshInstallation> = Api::all(client.clone());
    println!(
        "== kubectl apply -f samples/bookstore.yaml  (mesh, 5 namespaces, 7 apps, ingress, SMI policies, 50/50 split)"
    );
    api.patch(&name, &PatchParams::apply("demo").force(), &Patch::Apply(&mi)).await?;
    watch_until_ready(&api, &name, Duration::from_secs(180)).await?;

    let selector = labels::installation_selector(&name);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await
            && !list.items.is_empty()
        {
            counts.insert(kind.resource.kind.clone(), list.items.len());
        }
    }
    println!("== Converged. Objects managed by the installation:");
    for (kind, count) in &counts {
        println!("   {count:>3} {kind}");
    }

    println!("== Shift all traffic to bookstore-v2 (the article's traffic-split-v2.yaml): weights 0/100");
    for split in &mut mi.spec.traffic.splits {
        for backend in &mut split.backends {
            backend.weight = if backend.service == "bookstore-v2" { 100 } else { 0 };
        }
    }
    mi.metadata.managed_fields = None;
    api.patch(&name, &PatchParams::apply("demo").force(), &Patch::Apply(&mi)).await?;
    let splits: Api<smi::TrafficSplit> = Api::namespaced(client.clone(), "bookstore");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let split = splits.get("bookstore-split").await?;
        let weights: Vec<String> = split.spec.backends.iter().map(|b| format!("{}={}", b.service, b.weight)).collect();
        if split.spec.backends.iter().any(|b| b.service == "bookstore-v2" && b.weight == 100) {
            println!("   TrafficSplit bookstore/bookstore-split: {}", weights.join(" "));
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the split did not change: {}", weights.join(" "));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    println!("== kubectl delete meshinstallation {name}  (teardown in the article's order)");
    api.delete(&name, &DeleteParams::default()).await?;
    let started = Instant::now();
    let mut last_step = String::new();
    loop {
        match api.get_opt(&name).await? {
            None => break,
            Some(mi) => {
                let step = mi.status.and_then(|s| s.teardown_step).unwrap_or_default();
                if step != last_step && !step.is_empty() {
                    println!("  [{:>5.1}s] teardown step: {step}", started.elapsed().as_secs_f64());
                    last_step = step;
                }
            }
        }
        if started.elapsed() > Duration::from_secs(180) {
            anyhow::bail!("teardown did not finish");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut left = 0;
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            left += list.items.len();
        }
    }
    println!("== Torn down in {:.1}s; objects left with our labels: {left}", started.elapsed().as_secs_f64());
    operator.stop().await;
    cluster.stop();
    if left > 0 {
        anyhow::bail!("{left} objects were left behind");
    }
    Ok(())
}
