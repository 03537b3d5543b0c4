//! The apps' objects and the pods they run: an app's workload is applied only next to a
//! ServiceAccount and Services that are the installation's own, and meshed pods of namespaces with
//! metrics on get the scrape annotations `osm metrics enable` puts on them.

use kube::api::{Api, ResourceExt};
use mesh_provisioner::apply::{Applier, ApplyOutcome};
use mesh_provisioner::desired::{Component, Desired};

use super::apply_all;
use super::status::Progress;
use crate::context::Context;
use crate::error::{Error, Result};

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
    for desired in supporting {
        match applier.apply(desired).await {
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
    let (ready, why) =
        super::observe::workload_ready(ctx, "Deployment", namespace, mesh_provisioner::osm::names::INJECTOR);
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
pub async fn annotate_meshed_pods(ctx: &Context, spec: &mesh_crds::MeshInstallationSpec) -> Result<usize> {
    let mut patched = 0;
    let body = serde_json::json!({"metadata": {"annotations": SCRAPE_ANNOTATIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()}});
    for ns in spec.namespaces.iter().filter(|n| n.metrics) {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), &ns.name);
        let listed = pods
            .list_metadata(&kube::api::ListParams::default().labels("osm-proxy-uuid").match_any())
            .await
            .map_err(Error::kube(format!("listing meshed pods in {}", ns.name)))?;
        for pod in listed.items {
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            if SCRAPE_ANNOTATIONS.iter().all(|(k, v)| annotations.get(*k).is_some_and(|have| have == v)) {
                continue;
            }
            pods.patch_metadata(&pod.name_any(), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&body))
                .await
                .map_err(Error::kube(format!("annotating pod {}/{}", ns.name, pod.name_any())))?;
            patched += 1;
        }
    }
    Ok(patched)
}
