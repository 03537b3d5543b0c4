//! The convergence section: the bookstore sample from apply to Ready through the operator against
//! two baselines that apply the same rendered objects and wait for the same workloads: a plain
//! client (server-side apply, one object after the other, in the operator's phase order) and
//! kubectl ([`super::kubectl`]). Each starts from the same empty cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstallation;
use mesh_e2e::TestCluster;
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::scenario;
use mesh_provisioner::desired::{Component, Desired};

use super::steady::{Counts, counted_client};
use super::{TIMEOUT, kubectl, line, secs, wait_conditions};

/// Every object the operator writes for `mi`, rendered as it renders them, with the key material
/// its ensure steps would generate (the ingress webhook certificate, the mesh's root CA).
fn rendered(mi: &MeshInstallation) -> anyhow::Result<Vec<Desired>> {
    let name = mi.name_any();
    let ingress_spec = mi.spec.ingress.as_ref().ok_or_else(|| anyhow!("the sample has an ingress"))?;
    let webhook_tls = mesh_provisioner::ingress::certs::WebhookTls::generate(
        &mesh_provisioner::ingress::admission_service_name(ingress_spec),
        ingress_spec.nginx.namespace(),
    )?;
    let inputs = mesh_provisioner::plan::PlanInputs { webhook_tls: Some(webhook_tls), ..Default::default() };
    let mut objects = mesh_provisioner::plan::plan(&name, &mi.spec, &inputs)?.objects;
    // osm-bootstrap refuses a partial MeshConfig: the operator seeds OSM's full preset before its
    // own fields, and `osm install` creates the full preset too. The baselines apply the preset
    // with the plan's fields over it.
    let preset = mesh_provisioner::osm::preset_spec(&mi.spec.mesh)?;
    for mesh_config in objects.iter_mut().filter(|d| d.resource.kind == "MeshConfig") {
        let mut spec = preset.clone();
        overlay(&mut spec, &mesh_config.object.data["spec"]);
        mesh_config.object.data["spec"] = spec;
    }
    let ca = mesh_provisioner::osm::ca::generate_root_ca()?;
    // Before the control plane (after the namespaces, see `phases`), as the operator ensures it.
    objects.insert(0, mesh_provisioner::osm::ca::ca_bundle_secret(&name, mi.spec.mesh.control_plane_namespace(), &ca)?);
    Ok(objects)
}

/// Sets every field of `top` in `base`, recursing into objects (lists are replaced whole).
fn overlay(base: &mut serde_json::Value, top: &serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(base), serde_json::Value::Object(top)) => {
            for (key, value) in top {
                overlay(base.entry(key.clone()).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, top) => *base = top.clone(),
    }
}

/// The objects in the order a client must apply them, as the article does by hand: the CRDs
/// (then wait until Established); the namespaces, then the rest of the mesh, the ingress and the
/// policies; and the apps only once OSM's sidecar injector is available (pods started before it
/// run without a sidecar, unmeshed; the operator waits for it too).
pub struct Phases<'a> {
    pub crds: Vec<&'a Desired>,
    pub before_apps: Vec<&'a Desired>,
    /// The injector Deployment to wait for: `(namespace, name)`; `None` when the mesh is not ours.
    pub injector: Option<(String, String)>,
    pub apps: Vec<&'a Desired>,
}

pub fn phases<'a>(objects: &'a [Desired], mi: &MeshInstallation) -> Phases<'a> {
    let is_crd = |d: &&Desired| d.resource.kind == "CustomResourceDefinition";
    let is_namespace = |d: &&Desired| d.resource.kind == "Namespace";
    let is_app = |d: &&Desired| d.component == Component::Apps;
    let self_hosted = mi.spec.mesh.provider == mesh_crds::MeshProvider::SelfHosted;
    Phases {
        crds: objects.iter().filter(is_crd).collect(),
        before_apps: objects
            .iter()
            .filter(is_namespace)
            .chain(objects.iter().filter(|d| !is_crd(d) && !is_namespace(d) && !is_app(d)))
            .collect(),
        injector: self_hosted.then(|| {
            (mi.spec.mesh.control_plane_namespace().to_string(), mesh_provisioner::osm::names::INJECTOR.to_string())
        }),
        apps: objects.iter().filter(is_app).collect(),
    }
}

/// Server-side applies `objects` with field manager `bench`.
async fn ssa(client: &Client, objects: &[&Desired]) -> (usize, Vec<String>) {
    let mut errors = Vec::new();
    let mut applied = 0;
    for d in objects {
        let api: Api<DynamicObject> = match d.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &d.resource),
            None => Api::all_with(client.clone(), &d.resource),
        };
        match api.patch(d.name(), &PatchParams::apply("bench").force(), &Patch::Apply(&d.object)).await {
            Ok(_) => applied += 1,
            Err(e) => errors.push(format!("{}/{}: {e}", d.resource.kind, d.name())),
        }
    }
    (applied, errors)
}

async fn crds_established(client: &Client, crds: &[&Desired]) -> anyhow::Result<bool> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for d in crds {
        let established = api
            .get_opt(d.name())
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if !established {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn workloads_available(client: &Client, objects: impl IntoIterator<Item = &Desired>) -> anyhow::Result<bool> {
    for d in objects {
        let ns = d.namespace().unwrap_or_default();
        let ready = match d.resource.kind.as_str() {
            "Deployment" => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                api.get_opt(d.name()).await?.is_some_and(|o| {
                    let want = o.spec.and_then(|s| s.replicas).unwrap_or(1);
                    o.status.and_then(|s| s.available_replicas).unwrap_or(0) >= want
                })
            }
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
                api.get_opt(d.name()).await?.is_some_and(|o| {
                    let want = o.spec.and_then(|s| s.replicas).unwrap_or(1);
                    o.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= want
                })
            }
            _ => true,
        };
        if !ready {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes every object labelled for `installation` (namespaces too) and the OSM CRDs, and waits
/// until they are gone.
async fn clean(client: &Client, installation: &str) -> anyhow::Result<()> {
    let selector = mesh_provisioner::labels::installation_selector(installation);
    let mut namespaces = Vec::new();
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds().into_iter().rev() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else { continue };
        for o in list.items {
            if kind.resource.kind == "Namespace" {
                namespaces.push(o.name_any());
            }
            let api: Api<DynamicObject> = match o.namespace() {
                Some(ns) => Api::namespaced_with(client.clone(), &ns, &kind.resource),
                None => Api::all_with(client.clone(), &kind.resource),
            };
            let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in mesh_crds::generate::osm_crd_names() {
        let _ = crds.delete(&name, &DeleteParams::default()).await;
    }
    // A CRD being deleted still answers GET; re-creating it before it is gone would fail later.
    let namespaces_api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    for name in mesh_crds::generate::osm_crd_names() {
        let gone = || async { Ok(crds.get_opt(&name).await?.is_none()) };
        poll_until(started, Duration::from_millis(200), || format!("CRD {name} was not deleted"), gone).await?;
    }
    for name in &namespaces {
        let gone = || async { Ok(namespaces_api.get_opt(name).await?.is_none()) };
        poll_until(started, Duration::from_millis(200), || format!("namespace {name} was not deleted"), gone).await?;
    }
    Ok(())
}

/// Polls `done` every `every` until it holds; an error saying `what` was not reached once
/// [`TIMEOUT`] has passed since `started` (the clock of the step being measured).
async fn poll_until<Fut>(
    started: Instant,
    every: Duration,
    what: impl FnOnce() -> String,
    mut done: impl FnMut() -> Fut,
) -> anyhow::Result<()>
where
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    while !done().await? {
        if started.elapsed() > TIMEOUT {
            return Err(anyhow!("{} in {TIMEOUT:?}", what()));
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// The plain client: `(apply -> every workload available, all applied after, write requests, refusals)`.
async fn plain_client(
    client: &Client,
    mi: &MeshInstallation,
    objects: &[Desired],
) -> anyhow::Result<(Duration, Duration, usize, Vec<String>)> {
    let phases = phases(objects, mi);
    let started = Instant::now();
    let (mut applied, mut errors) = ssa(client, &phases.crds).await;
    let established = || crds_established(client, &phases.crds);
    poll_until(started, Duration::from_millis(50), || "plain apply: CRDs not Established".into(), established).await?;
    let (a, e) = ssa(client, &phases.before_apps).await;
    applied += a;
    errors.extend(e);
    if let Some((namespace, name)) = &phases.injector {
        let injector = objects.iter().filter(|d| d.namespace() == Some(namespace) && d.name() == name);
        let available = || workloads_available(client, injector.clone());
        let what = || format!("plain apply: {namespace}/{name} not available");
        poll_until(started, Duration::from_millis(100), what, available).await?;
    }
    let (a, e) = ssa(client, &phases.apps).await;
    applied += a;
    errors.extend(e);
    let applied_in = started.elapsed();
    let available = || workloads_available(client, objects);
    poll_until(started, Duration::from_millis(100), || "plain apply: workloads not available".into(), available)
        .await?;
    Ok((started.elapsed(), applied_in, applied + errors.len(), errors))
}

fn ratio(operator: Duration, baseline: Duration) -> String {
    format!("{:.2}", operator.as_secs_f64() / baseline.as_secs_f64().max(0.001))
}

/// The convergence section.
pub async fn run(cluster: &TestCluster, client: &Client) -> anyhow::Result<()> {
    println!("\n## convergence: bookstore sample, apply -> Ready");
    let mut mi = scenario::sample("bookstore.yaml");
    mi.spec.teardown.delete_namespaces = true;
    let name = mi.name_any();
    let objects = rendered(&mi)?;
    let workloads = objects.iter().filter(|d| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet")).count();

    // The MeshInstallation CRD exists before the operator starts, as on a cluster it was installed
    // on: the API server serves a CRD's watch only once its watch cache has listed, and a
    // watch the operator starts on a CRD seconds old is retried after a back-off (~0.6 s).
    mesh_operator::controller::ensure_crd(client, true).await?;
    let (plain, applied_in, plain_writes, errors) = plain_client(client, &mi, &objects).await?;
    clean(client, &name).await?;

    let with_kubectl = match kubectl::find() {
        Ok(kubectl) => {
            let run = kubectl::apply_and_wait(&kubectl, &cluster.kubeconfig, &mi, &objects).await;
            clean(client, &name).await?;
            Ok(run?)
        }
        Err(why) => Err(why),
    };

    // The operator, from the same empty start, on a client that counts its requests.
    let counts = Arc::new(Counts::default());
    let operator =
        OperatorHandle::start(counted_client(cluster, counts.clone()).await, test_settings(Duration::from_secs(300)))
            .await;
    // A deployed operator is ready before anyone applies an installation: its start is not counted.
    operator.wait_ready().await;
    let writes_before = counts.writes_by_path();
    let started = Instant::now();
    scenario::apply(client, &mi).await;
    let through_operator = wait_conditions(client, &name, &["Ready"], started).await?;
    let reconciles = operator.metrics.reconciles("success");
    let operator_writes: Vec<(String, u64)> = counts
        .writes_by_path()
        .into_iter()
        .map(|(path, n)| (n - writes_before.get(&path).copied().unwrap_or(0), path))
        .filter(|(n, _)| *n > 0)
        .map(|(n, path)| (path, n))
        .collect();
    scenario::delete_and_wait_gone(client, &name).await;
    operator.stop().await;

    line("objects rendered", objects.len());
    line("workloads waited for", workloads);
    line("plain client: write requests (server-side applies)", format!("{plain_writes} ({} refused)", errors.len()));
    for error in errors.iter().take(3) {
        line("  refused", error);
    }
    line("plain client: all applied after", secs(applied_in));
    line("plain client: apply -> every workload available", secs(plain));
    match &with_kubectl {
        Ok(run) => {
            line("kubectl apply --server-side + kubectl wait: -> every workload available", secs(run.ready_after));
            line("  kubectl invocations", run.invocations);
        }
        Err(why) => line("kubectl apply --server-side + kubectl wait", format!("skipped: {why}")),
    }
    line("operator: apply -> Ready", format!("{} ({reconciles} reconciles)", secs(through_operator)));
    line("operator: write requests on the way to Ready", operator_writes.iter().map(|(_, n)| n).sum::<u64>());
    for (path, n) in &operator_writes {
        line("  write", format!("{n} x {path}"));
    }
    line("ratio operator / plain client", ratio(through_operator, plain));
    match &with_kubectl {
        Ok(run) => line("ratio operator / kubectl", ratio(through_operator, run.ready_after)),
        Err(_) => line("ratio operator / kubectl", "skipped (no kubectl)"),
    }
    Ok(())
}
