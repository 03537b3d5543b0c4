//! `meshctl install` and `meshctl uninstall`: apply or remove the `deploy/install.yaml` embedded
//! in this binary on the current cluster, waiting for the operator to be ready (or gone), with
//! progress output.

use std::fmt::Display;
use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Api, Client, ResourceExt};
use mesh_crds::MeshInstallation;

use crate::manifests::workload_identity::WorkloadIdentity;
use crate::manifests::{self, NAME, NAMESPACE};

/// The `deploy/install.yaml` this binary was built with.
pub const INSTALL_YAML: &str = include_str!("../../../deploy/install.yaml");

/// Field manager of `meshctl install`'s server-side apply.
pub const FIELD_MANAGER: &str = "meshctl";

/// How often readiness is polled.
const POLL: Duration = Duration::from_secs(1);

/// Errors of install and uninstall.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The embedded manifests could not be read.
    #[error("reading the embedded install.yaml: {0}")]
    Manifest(#[from] manifests::ManifestError),
    /// An object in the manifests is not a Kubernetes object.
    #[error("the embedded install.yaml holds an object without apiVersion, kind or name: {0}")]
    Invalid(String),
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Waiting took too long.
    #[error("timed out after {timeout:?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The timeout.
        timeout: Duration,
        /// The state last seen.
        last: String,
    },
    /// Uninstalling would orphan MeshInstallations.
    #[error(
        "{names} still exist: delete them first (kubectl delete meshinstallations --all) so the operator tears them down, or pass --delete-installations"
    )]
    InstallationsExist {
        /// Their names.
        names: String,
    },
    /// Writing progress failed.
    #[error("writing progress: {0}")]
    Output(#[from] std::io::Error),
}

fn kube_error(what: impl Display) -> impl FnOnce(kube::Error) -> InstallError {
    let what = what.to_string();
    move |source| InstallError::Kube { what, source: Box::new(source) }
}

/// Options of `meshctl install`.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Operator image instead of the release image (e.g. one loaded into kind).
    pub image: Option<String>,
    /// Wait for the CRD to be Established and the operator Deployment to be Available.
    pub wait: bool,
    /// How long to wait.
    pub timeout: Duration,
    /// The Azure workload identity the operator authenticates as (ServiceAccount annotations, pod
    /// label, projected token and environment).
    pub workload_identity: Option<WorkloadIdentity>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions { image: None, wait: true, timeout: Duration::from_secs(300), workload_identity: None }
    }
}

/// Options of `meshctl uninstall`.
#[derive(Clone, Debug)]
pub struct UninstallOptions {
    /// Delete every MeshInstallation first and wait for their teardown (the operator must be running).
    pub delete_installations: bool,
    /// Leave the MeshInstallation CRD in place.
    pub keep_crd: bool,
    /// How long to wait for teardowns and deletions.
    pub timeout: Duration,
}

impl Default for UninstallOptions {
    fn default() -> Self {
        UninstallOptions { delete_installations: false, keep_crd: false, timeout: Duration::from_secs(300) }
    }
}

/// The objects of an install.yaml stream, in file order.
pub fn objects(yaml: &str) -> Result<Vec<DynamicObject>, InstallError> {
    manifests::yaml::parse_stream(yaml)?
        .into_iter()
        .map(|value| {
            let object: DynamicObject = serde_json::from_value(value).map_err(manifests::ManifestError::from)?;
            if object.types.is_none() || object.metadata.name.is_none() {
                return Err(InstallError::Invalid(format!("{:?}", object.metadata.name)));
            }
            Ok(object)
        })
        .collect()
}

/// Replaces the operator container's image in the Deployment.
pub fn set_image(objects: &mut [DynamicObject], image: &str) {
    for object in objects.iter_mut().filter(|o| kind_of(o) == "Deployment") {
        if let Some(containers) = object.data["spec"]["template"]["spec"]["containers"].as_array_mut() {
            for container in containers.iter_mut().filter(|c| c["name"] == "operator") {
                container["image"] = serde_json::Value::String(image.to_string());
            }
        }
    }
}

fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map(|t| t.kind.as_str()).unwrap_or_default()
}

/// `Kind/namespace/name` or `Kind/name`.
pub fn reference(object: &DynamicObject) -> String {
    match object.namespace() {
        Some(ns) => format!("{}/{ns}/{}", kind_of(object), object.name_any()),
        None => format!("{}/{}", kind_of(object), object.name_any()),
    }
}

/// The API of `object`'s kind (namespaced in its namespace, or cluster-wide), from discovery.
pub async fn api_for(client: &Client, object: &DynamicObject) -> Result<Api<DynamicObject>, InstallError> {
    let types = object.types.as_ref().ok_or_else(|| InstallError::Invalid(object.name_any()))?;
    let gvk = GroupVersionKind::try_from(types).map_err(|e| InstallError::Invalid(e.to_string()))?;
    let (resource, capabilities): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(kube_error(format!("discovering {}/{}", types.api_version, types.kind)))?;
    Ok(match (capabilities.scope, object.namespace()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    })
}

/// Server-side applies `objects` in order (`dry_run`: the API server validates and admits but stores nothing).
pub async fn apply_objects<W: Write>(
    client: &Client,
    objects: &[DynamicObject],
    dry_run: bool,
    out: &mut W,
) -> Result<(), InstallError> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    for object in objects {
        let api = api_for(client, object).await?;
        let mut body = object.clone();
        body.metadata.managed_fields = None;
        body.metadata.resource_version = None;
        api.patch(&object.name_any(), &params, &Patch::Apply(&body))
            .await
            .map_err(kube_error(format!("applying {}", reference(object))))?;
        writeln!(out, "{} {}", reference(object), if dry_run { "validated (server dry run)" } else { "applied" })?;
    }
    Ok(())
}

/// Polls `check` every second until it returns `Ok(true)`; prints each new state it reports.
async fn wait_for<W, F, Fut>(what: &str, timeout: Duration, out: &mut W, mut check: F) -> Result<(), InstallError>
where
    W: Write,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(bool, String), InstallError>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let (done, state) = check().await?;
        if done {
            return Ok(());
        }
        if state != last {
            writeln!(out, "waiting for {what}: {state}")?;
            last = state;
        }
        if Instant::now() >= deadline {
            return Err(InstallError::Timeout { what: what.to_string(), timeout, last });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why the operator's pods are not ready, from their container states (image pull errors, crashes).
async fn pod_problems(client: &Client) -> Result<Vec<String>, InstallError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = format!("app.kubernetes.io/name={NAME}");
    let list =
        pods.list(&ListParams::default().labels(&selector)).await.map_err(kube_error("listing the operator's pods"))?;
    let mut problems = Vec::new();
    for pod in list.items {
        let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
        for status in statuses {
            if let Some(waiting) = status.state.and_then(|s| s.waiting) {
                let reason = waiting.reason.unwrap_or_default();
                if reason != "ContainerCreating" && !reason.is_empty() {
                    problems.push(format!(
                        "pod {}: {reason} {}",
                        pod.metadata.name.clone().unwrap_or_default(),
                        waiting.message.unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Whether the operator Deployment has rolled out and is Available: `(ready, state)`.
pub async fn operator_ready(client: &Client) -> Result<(bool, String), InstallError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let Some(deployment) = deployments.get_opt(NAME).await.map_err(kube_error("reading the operator Deployment"))?
    else {
        return Ok((false, "the Deployment does not exist".to_string()));
    };
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Ok((false, "the rollout has not been observed yet".to_string()));
    }
    if updated >= wanted && available >= wanted && status.replicas.unwrap_or(0) == wanted {
        return Ok((true, format!("{available}/{wanted} available")));
    }
    let mut state = format!("{updated}/{wanted} updated, {available}/{wanted} available");
    for problem in pod_problems(client).await? {
        state.push_str("; ");
        state.push_str(&problem);
    }
    Ok((false, state))
}

async fn crd_established(client: &Client, name: &str) -> Result<(bool, String), InstallError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get_opt(name).await.map_err(kube_error(format!("reading CRD {name}")))?;
    let established = crd
        .and_then(|c| c.status)
        .and_then(|s| s.conditions)
        .is_some_and(|conds| conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    Ok((established, if established { "Established" } else { "not Established yet" }.to_string()))
}

fn crd_name(objects: &[DynamicObject]) -> Option<String> {
    objects.iter().find(|o| kind_of(o) == "CustomResourceDefinition").map(|o| o.name_any())
}

/// `meshctl install`: applies the embedded install.yaml and waits for the operator.
pub async fn install<W: Write>(client: &Client, options: &InstallOptions, out: &mut W) -> Result<(), InstallError> {
    let mut objects = objects(INSTALL_YAML)?;
    if let Some(image) = &options.image {
        set_image(&mut objects, image);
    }
    if let Some(identity) = &options.workload_identity {
        identity.add_to(&mut objects)?;
        writeln!(out, "Azure workload identity: client ID {}", identity.client_id)?;
    }
    writeln!(out, "installing mesh-operator v{} into namespace {NAMESPACE}", manifests::VERSION)?;
    apply_objects(client, &objects, false, out).await?;
    if !options.wait {
        return Ok(());
    }
    if let Some(name) = crd_name(&objects) {
        wait_for(&format!("CRD {name}"), options.timeout, out, || crd_established(client, &name)).await?;
    }
    wait_for(&format!("Deployment {NAMESPACE}/{NAME}"), options.timeout, out, || operator_ready(client)).await?;
    writeln!(out, "mesh-operator is ready: kubectl apply -f samples/bookstore.yaml")?;
    Ok(())
}

async fn installations(client: &Client) -> Result<Vec<MeshInstallation>, InstallError> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        // The CRD is not installed: nothing to tear down.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(error) => Err(kube_error("listing MeshInstallations")(error)),
    }
}

/// `meshctl uninstall`: refuses while MeshInstallations exist (or deletes them and waits for their
/// teardown), then deletes the objects of the embedded install.yaml in reverse order and waits until
/// they are gone.
pub async fn uninstall<W: Write>(client: &Client, options: &UninstallOptions, out: &mut W) -> Result<(), InstallError> {
    let existing = installations(client).await?;
    if !existing.is_empty() {
        let names =
            existing.iter().map(|mi| format!("MeshInstallation {}", mi.name_any())).collect::<Vec<_>>().join(", ");
        if !options.delete_installations {
            return Err(InstallError::InstallationsExist { names });
        }
        let api: Api<MeshInstallation> = Api::all(client.clone());
        for mi in &existing {
            match api.delete(&mi.name_any(), &DeleteParams::default()).await {
                Ok(_) => writeln!(out, "MeshInstallation/{} deleted; the operator tears it down", mi.name_any())?,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(kube_error(format!("deleting MeshInstallation {}", mi.name_any()))(error)),
            }
        }
        wait_for("the MeshInstallations' teardown", options.timeout, out, || async {
            let left = installations(client).await?;
            let state = left
                .iter()
                .map(|mi| {
                    let step =
                        mi.status.as_ref().and_then(|s| s.teardown_step.clone()).unwrap_or_else(|| "starting".into());
                    format!("{} ({step})", mi.name_any())
                })
                .collect::<Vec<_>>()
                .join(", ");
            Ok((left.is_empty(), state))
        })
        .await?;
    }

    let objects = objects(INSTALL_YAML)?;
    let mut deleted = Vec::new();
    for object in objects.iter().rev() {
        if options.keep_crd && kind_of(object) == "CustomResourceDefinition" {
            writeln!(out, "{} kept (--keep-crd)", reference(object))?;
            continue;
        }
        let api = api_for(client, object).await?;
        match api.delete(&object.name_any(), &DeleteParams::background()).await {
            Ok(_) => {
                writeln!(out, "{} deleted", reference(object))?;
                deleted.push((object, api));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => writeln!(out, "{} not found", reference(object))?,
            Err(error) => return Err(kube_error(format!("deleting {}", reference(object)))(error)),
        }
    }
    wait_for("the deleted objects to be gone", options.timeout, out, || async {
        let mut left = Vec::new();
        for (object, api) in &deleted {
            if api
                .get_opt(&object.name_any())
                .await
                .map_err(kube_error(format!("reading {}", reference(object))))?
                .is_some()
            {
                left.push(reference(object));
            }
        }
        Ok((left.is_empty(), format!("{} still there", left.join(", "))))
    })
    .await?;
    writeln!(out, "mesh-operator is uninstalled")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_manifests_parse_in_apply_order() {
        let objects = objects(INSTALL_YAML).expect("parse");
        let kinds: Vec<&str> = objects.iter().map(kind_of).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Deployment"
            ]
        );
    }

    #[test]
    fn the_image_can_be_replaced() {
        let mut objects = objects(INSTALL_YAML).expect("parse");
        set_image(&mut objects, "mesh-operator:dev");
        let deployment = objects.iter().find(|o| kind_of(o) == "Deployment").expect("deployment");
        assert_eq!(deployment.data["spec"]["template"]["spec"]["containers"][0]["image"], "mesh-operator:dev");
    }
}
