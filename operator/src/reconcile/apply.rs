//! The operator's side of apply; every write goes through the `Applier`. One component's objects;
//! the apps' objects (a workload only next to a ServiceAccount and Services that are the
//! installation's own); the scrape annotations `osm metrics enable` puts on meshed pods; and the
//! rolling restart (`kubectl rollout restart`) of workloads leaving or changing mesh.

use kube::api::{ApiResource, ResourceExt};
use mesh_provisioner::apply::{Applier, ApplyError, ApplyOutcome};
use mesh_provisioner::desired::{Component, Desired};

use super::observe;
use super::progress::Progress;
use crate::context::Context;
use crate::error::Result;

/// Applies one phase's objects (concurrently, see [`Applier::apply_many`]); returns the number
/// written, or the errors.
pub async fn apply_all(applier: &Applier, objects: &[&Desired]) -> (usize, Vec<ApplyError>) {
    let mut written = 0;
    let mut errors = Vec::new();
    for result in applier.apply_many(objects).await {
        match result {
            Ok(ApplyOutcome::Applied) => written += 1,
            Ok(_) => {}
            Err(error) => errors.push(error),
        }
    }
    (written, errors)
}

/// Applies the apps: each app's ServiceAccount and Services first, its workload only when none of
/// them conflicted. A workload applied next to a ServiceAccount that is not ours would run with
/// someone else's identity (and that ServiceAccount's token).
pub async fn apply_apps(
    applier: &Applier,
    spec: &mesh_crds::MeshInstallationSpec,
    objects: &[&Desired],
    progress: &mut Progress,
) {
    use mesh_provisioner::topology::APP_SELECTOR_LABEL;
    let app_of = |d: &Desired| {
        let label = d.object.metadata.labels.as_ref().and_then(|l| l.get(APP_SELECTOR_LABEL)).cloned();
        (d.namespace().unwrap_or_default().to_string(), label.unwrap_or_default())
    };
    let is_workload = |d: &&Desired| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet");
    let (workloads, supporting): (Vec<&Desired>, Vec<&Desired>) = objects.iter().copied().partition(is_workload);
    let mut blocked = std::collections::BTreeSet::new();
    let mut written = 0;
    let mut errors = Vec::new();
    for (desired, result) in supporting.iter().copied().zip(applier.apply_many(&supporting).await) {
        match result {
            Ok(ApplyOutcome::Applied) => written += 1,
            Ok(_) => {}
            Err(error) => {
                if error.is_conflict() {
                    blocked.insert(app_of(desired));
                }
                errors.push(error);
            }
        }
    }
    progress.record(Component::Apps, written, &errors);
    let allowed: Vec<&Desired> = workloads.into_iter().filter(|d| !blocked.contains(&app_of(d))).collect();
    let (written, errors) = apply_all(applier, &allowed).await;
    progress.record(Component::Apps, written, &errors);
    for (namespace, app) in blocked {
        let index = spec.apps.iter().position(|a| a.namespace == namespace && a.name == app).unwrap_or_default();
        progress.fail(
            Component::Apps,
            format!("spec.apps[{index}] ({namespace}/{app}): its workload is not applied while an object it needs belongs to someone else (see the conflict above)"),
        );
    }
}

/// Why the apps must wait for a self-hosted OSM's sidecar injector, if they must. The injector
/// creates its MutatingWebhookConfiguration when it starts, so a pod created before it is Available
/// runs without a sidecar (and outside the mesh) until someone restarts it: `osm install` users
/// deploy their apps after the control plane is up; the operator waits the same way.
pub fn injector_pending(ctx: &Context, spec: &mesh_crds::MeshInstallationSpec) -> Option<String> {
    if spec.mesh.provider != mesh_crds::MeshProvider::SelfHosted || spec.apps.is_empty() {
        return None;
    }
    let namespace = spec.mesh.control_plane_namespace();
    let (ready, why) = observe::workload_ready(ctx, "Deployment", namespace, mesh_provisioner::osm::names::INJECTOR);
    (!ready)
        .then(|| format!("waiting for OSM's sidecar injector (pods started before it run without a sidecar): {why}"))
}

/// Prometheus scrape annotations `osm metrics enable` puts on pods that already run a sidecar
/// (new pods get them from the injector, which reads the namespace annotation).
const SCRAPE_ANNOTATIONS: [(&str, &str); 3] =
    [("prometheus.io/scrape", "true"), ("prometheus.io/port", "15010"), ("prometheus.io/path", "/stats/prometheus")];

/// Annotates the existing meshed pods (label `osm-proxy-uuid`) of namespaces with metrics on, as
/// `osm metrics enable` does; pods that have the annotations already are not touched. Returns the
/// number of pods patched.
pub async fn annotate_meshed_pods(
    ctx: &Context,
    applier: &Applier,
    spec: &mesh_crds::MeshInstallationSpec,
) -> Result<usize> {
    let mut patched = 0;
    let body = serde_json::json!({"metadata": {"annotations": SCRAPE_ANNOTATIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()}});
    let pods = ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&());
    for ns in spec.namespaces.iter().filter(|n| n.metrics) {
        for pod in observe::meshed_pods(ctx, &ns.name).await? {
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            if SCRAPE_ANNOTATIONS.iter().all(|(k, v)| annotations.get(*k).is_some_and(|have| have == v)) {
                continue;
            }
            if applier.merge_patch("metrics", &pods, Some(&ns.name), &pod.name_any(), &body).await? {
                patched += 1;
            }
        }
    }
    Ok(patched)
}

/// Rolls the workloads (Deployments, StatefulSets, DaemonSets) in `namespace` that no
/// installation manages, as `kubectl rollout restart` does, by setting the pod-template
/// annotation `annotation: value`; one that carries it already is left alone, so repeating this
/// is a no-op. Used when a namespace leaves the mesh (teardown) or changes mesh (migration).
pub async fn restart_foreign_workloads(
    ctx: &Context,
    applier: &Applier,
    manager: &str,
    namespace: &str,
    annotation: &str,
    value: &str,
) -> Result<()> {
    let body = restart_patch(annotation, value);
    for (resource, name) in observe::foreign_workloads_without(ctx, namespace, annotation, value).await? {
        applier.merge_patch(manager, &resource, Some(namespace), &name, &body).await?;
    }
    Ok(())
}

/// The merge patch that sets one pod-template annotation (and so rolls the workload).
pub fn restart_patch(annotation: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {annotation: value}}}}})
}
