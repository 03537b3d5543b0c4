//! The self-hosted OSM v1.2 control plane: what `osm install` creates, as typed objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ContainerPort, Namespace, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mesh_crds::MeshSpec;

use super::common::{
    CERTIFICATE_MANAGER, CONTROLLER_LOG_LEVEL, Ctx, ENVOY_IMAGE, ENVOY_WINDOWS_IMAGE, HTTP_PORT, TRUST_DOMAIN,
    container_security_context, deployment, env, http_probe, labels, linux_node_selector, pod_name_env,
    pod_security_context, resources, service, strings, wait_for_bootstrap,
};
use super::{OsmBuildError, addons, mesh_config, names, rbac};
use crate::desired::{Component, Desired};
use crate::labels::OSM_IGNORE;

/// ADS (xDS over gRPC) port the sidecars connect to.
const ADS_PORT: i32 = 15128;
/// Envoy-style admin port of the controller.
const ADMIN_PORT: i32 = 15000;
/// Debug server of the controller (off unless `observability.enableDebugServer`).
const DEBUG_PORT: i32 = 9092;
/// Validating webhook served by the controller.
const VALIDATOR_PORT: i32 = 9093;
/// Mutating (sidecar injection) webhook served by the injector.
const INJECTOR_PORT: i32 = 9090;
/// CRD conversion webhook served by the bootstrap.
const CRD_CONVERSION_PORT: i32 = 9443;
/// `osm.injector.webhookTimeoutSeconds`.
const INJECTOR_WEBHOOK_TIMEOUT_SECONDS: &str = "20";
/// The control plane runs as this non-root user and group (all OSM images are distroless static binaries).
const CONTROL_PLANE_UID: i64 = 1000;
const CONTROL_PLANE_GID: i64 = 3000;
/// Built-in PriorityClass the chart gives the control plane, so it is the last to be evicted: the
/// injector's webhook fails closed, and without it no meshed pod can be created.
///
/// It exists in every cluster (the API server creates it) and, since Kubernetes 1.17, may be used
/// outside kube-system. Only a cluster whose admins limit it with a ResourceQuota admission
/// configuration (`limitedResources` on `PriorityClass`, as GKE does) rejects these pods without a
/// matching quota in the namespace.
const PRIORITY_CLASS: &str = "system-node-critical";

/// Every object of a self-hosted OSM v1.2 control plane, in apply order: Namespace, RBAC, the
/// preset MeshConfig, bootstrap, controller, validator, injector, then the enabled add-ons.
///
/// Only `MeshProvider::SelfHosted` with an OSM `v1.2.x` version has one; the AKS add-on's control
/// plane belongs to AKS. Not included (OSM's components create them at run time, and
/// [`names`] lists them for teardown): the `osm-ca-bundle` Secret (see [`super::ca`]), the
/// `osm-mesh-config` MeshConfig (created by osm-bootstrap from `preset-mesh-config`; see
/// [`super::mesh_config()`]), and the two webhook configurations.
pub fn control_plane(installation: &str, mesh: &MeshSpec) -> Result<Vec<Desired>, OsmBuildError> {
    let ctx = Ctx::self_hosted("OSM control plane", mesh)?;
    let wrap = |d: Result<Desired, crate::desired::DesiredError>| d.map_err(OsmBuildError::from);
    let (sa, role, binding) = rbac::mesh_rbac(&ctx);
    let mut out = vec![
        wrap(Desired::new(Component::Mesh, installation, &namespace(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &sa))?,
        wrap(Desired::new(Component::Mesh, installation, &role))?,
        wrap(Desired::new(Component::Mesh, installation, &binding))?,
        wrap(Desired::new(Component::Mesh, installation, &preset_mesh_config(&ctx, mesh)?))?,
        wrap(Desired::new(Component::Mesh, installation, &bootstrap_deployment(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &bootstrap_service(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &controller_deployment(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &controller_service(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &validator_service(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &injector_deployment(&ctx)))?,
        wrap(Desired::new(Component::Mesh, installation, &injector_service(&ctx)))?,
    ];
    out.extend(addons::addons(installation, &ctx, &mesh.addons)?);
    Ok(out)
}

/// The control-plane namespace.
///
/// `name: <ns>` is the label Helm's `--create-namespace` (which `osm install` uses) puts on it, and
/// the injector's webhook excludes the control plane by that label. `openservicemesh.io/ignore`
/// keeps OSM (and our own namespace enrolment) from ever meshing the control plane.
fn namespace(ctx: &Ctx<'_>) -> Namespace {
    let mut ns_labels = ctx.osm_labels();
    ns_labels.insert("name".to_string(), ctx.namespace.to_string());
    ns_labels.insert(OSM_IGNORE.to_string(), "true".to_string());
    Namespace {
        metadata: ObjectMeta { name: Some(ctx.namespace.to_string()), labels: Some(ns_labels), ..Default::default() },
        ..Default::default()
    }
}

/// `preset-mesh-config`: what osm-bootstrap turns into `osm-mesh-config` when that does not exist.
fn preset_mesh_config(ctx: &Ctx<'_>, mesh: &MeshSpec) -> Result<ConfigMap, OsmBuildError> {
    let json =
        mesh_config::preset_spec(mesh).and_then(|spec| serde_json::to_string_pretty(&spec)).map_err(|source| {
            OsmBuildError::Json {
                object: format!("ConfigMap/{}/{}", ctx.namespace, names::PRESET_MESH_CONFIG),
                key: names::PRESET_MESH_CONFIG_KEY.to_string(),
                source,
            }
        })?;
    Ok(ConfigMap {
        metadata: ctx.meta(names::PRESET_MESH_CONFIG, ctx.osm_labels()),
        data: Some(BTreeMap::from([(names::PRESET_MESH_CONFIG_KEY.to_string(), json)])),
        ..Default::default()
    })
}

/// Labels of a control-plane Deployment: OSM's, `app` and `meshName` (what `osm namespace add`
/// looks for to find the mesh).
fn deployment_labels(ctx: &Ctx<'_>, app: &str) -> BTreeMap<String, String> {
    let mut out = ctx.app_labels(app);
    out.insert("meshName".to_string(), ctx.mesh.to_string());
    out
}

/// Pod annotations that let the Prometheus add-on scrape the control plane's metrics.
fn scrape_annotations() -> BTreeMap<String, String> {
    labels(&[("prometheus.io/scrape", "true"), ("prometheus.io/port", "9091")])
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name.to_string()), container_port: port, ..Default::default() }
}

/// Control-plane Deployment `app` running `container` (after `init`): the pod spec and scrape
/// annotations the three share.
fn control_plane_deployment(
    ctx: &Ctx<'_>,
    app: &str,
    metadata_labels: BTreeMap<String, String>,
    init: Option<Container>,
    container: Container,
) -> Deployment {
    let pod = PodSpec {
        service_account_name: Some(names::mesh_rbac_name(ctx.mesh)),
        priority_class_name: Some(PRIORITY_CLASS.to_string()),
        security_context: Some(pod_security_context(CONTROL_PLANE_UID, CONTROL_PLANE_GID)),
        node_selector: Some(linux_node_selector()),
        init_containers: init.map(|c| vec![c]),
        containers: vec![container],
        ..Default::default()
    };
    deployment(ctx, app, metadata_labels, ctx.app_labels(app), scrape_annotations(), pod)
}

/// The container `name` of OSM control-plane binary `binary` (image and `/<binary>`), non-root,
/// with its flags: the common ones, `args`, then the certificate provider's.
fn binary_container(ctx: &Ctx<'_>, name: &str, binary: &str, args: &[&str]) -> Container {
    let mut all_args = common_args(ctx);
    all_args.extend(strings(args));
    all_args.extend(certificate_args());
    Container {
        name: name.to_string(),
        image: Some(ctx.image(binary)),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(vec![format!("/{binary}")]),
        args: Some(all_args),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

/// Flags of the certificate provider, shared by the three binaries. The cert-manager flags are
/// passed with the chart's defaults even though Tresor ignores them, as the chart does.
fn certificate_args() -> Vec<String> {
    strings(&[
        "--ca-bundle-secret-name",
        names::CA_BUNDLE_SECRET,
        "--certificate-manager",
        CERTIFICATE_MANAGER,
        // Bool flags must be `--flag=value`: Go's flag parser reads `--flag false` as `--flag` plus a
        // stray argument `false`.
        "--enable-mesh-root-certificate=false",
        "--enable-reconciler=false",
        "--cert-manager-issuer-name",
        "osm-ca",
        "--cert-manager-issuer-kind",
        "Issuer",
        "--cert-manager-issuer-group",
        "cert-manager.io",
        "--trust-domain",
        TRUST_DOMAIN,
    ])
}

/// `osm-controller`: the xDS server, the validating webhook and the debug server.
fn controller_deployment(ctx: &Ctx<'_>) -> Deployment {
    let args = [
        "--osm-service-account",
        &names::mesh_rbac_name(ctx.mesh),
        "--mesh-name",
        ctx.mesh,
        "--validator-webhook-config",
        &names::validator_name(ctx.mesh),
        "--validate-traffic-target=true",
    ];
    let container = Container {
        ports: Some(vec![
            container_port("admin-port", ADMIN_PORT),
            container_port("osm-port", ADS_PORT),
            container_port("metrics", HTTP_PORT),
            // Served only while MeshConfig `observability.enableDebugServer` is on; declared so
            // the Service's `debug-port` and `kubectl port-forward` users can name it.
            container_port("debug", DEBUG_PORT),
        ]),
        env: Some(vec![pod_name_env("CONTROLLER_POD_NAME")]),
        resources: Some(resources(("500m", "128M"), ("1500m", "1G"))),
        readiness_probe: Some(http_probe("/health/ready", HTTP_PORT, "HTTP", 1)),
        liveness_probe: Some(http_probe("/health/alive", HTTP_PORT, "HTTP", 1)),
        ..binary_container(ctx, names::CONTROLLER, "osm-controller", &args)
    };
    let mut metadata_labels = deployment_labels(ctx, names::CONTROLLER);
    // `osm install` enforces a single mesh by default; other installers' preinstall checks read this.
    metadata_labels.insert("enforceSingleMesh".to_string(), "true".to_string());
    let init = wait_for_bootstrap(ctx, "init-osm-controller");
    control_plane_deployment(ctx, names::CONTROLLER, metadata_labels, Some(init), container)
}

/// `osm-controller` Service: ADS for the sidecars, the debug server and health/metrics.
fn controller_service(ctx: &Ctx<'_>) -> Service {
    service(
        ctx,
        names::CONTROLLER,
        names::CONTROLLER,
        ctx.app_labels(names::CONTROLLER),
        &[("osm-port", ADS_PORT), ("debug-port", DEBUG_PORT), ("healthz", HTTP_PORT)],
    )
}

/// Flags every OSM control-plane binary takes first: log level, its namespace and version.
fn common_args(ctx: &Ctx<'_>) -> Vec<String> {
    strings(&["--verbosity", CONTROLLER_LOG_LEVEL, "--osm-namespace", ctx.namespace, "--osm-version", ctx.version])
}

/// `osm-validator` Service: the controller's validating webhook (`osm-validator-mesh-<mesh>` points here).
fn validator_service(ctx: &Ctx<'_>) -> Service {
    service(
        ctx,
        names::VALIDATOR,
        names::CONTROLLER,
        ctx.app_labels(names::VALIDATOR),
        &[("validator", VALIDATOR_PORT)],
    )
}

/// `osm-injector`: the sidecar-injection webhook.
fn injector_deployment(ctx: &Ctx<'_>) -> Deployment {
    let args = [
        "--mesh-name",
        ctx.mesh,
        "--webhook-config-name",
        &names::webhook_name(ctx.mesh),
        "--webhook-timeout",
        INJECTOR_WEBHOOK_TIMEOUT_SECONDS,
        // Pull policy of the init and healthcheck containers it injects (upstream leaves it empty).
        "--osm-container-pull-policy=IfNotPresent",
    ];
    let init_image = ctx.image("init");
    let container = Container {
        ports: Some(vec![container_port("sidecar-inject", INJECTOR_PORT), container_port("metrics", HTTP_PORT)]),
        env: Some(vec![
            pod_name_env("INJECTOR_POD_NAME"),
            // The sidecar images come from here while MeshConfig's `sidecar.*Image` are empty (the
            // preset leaves them empty), so changing the version moves the sidecars along with it.
            env("OSM_DEFAULT_ENVOY_IMAGE", ENVOY_IMAGE),
            env("OSM_DEFAULT_ENVOY_WINDOWS_IMAGE", ENVOY_WINDOWS_IMAGE),
            env("OSM_DEFAULT_INIT_CONTAINER_IMAGE", &init_image),
            // The container the injector adds to pods with TCP probes; without it such pods get a
            // container without an image, which the API server rejects.
            env("OSM_DEFAULT_HEALTHCHECK_CONTAINER_IMAGE", &ctx.image("osm-healthcheck")),
        ]),
        resources: Some(resources(("300m", "64M"), ("500m", "64M"))),
        // `/healthz` is served by the HTTP server on 9091; the webhook server on 9090 answers 404.
        readiness_probe: Some(http_probe("/healthz", HTTP_PORT, "HTTP", 5)),
        liveness_probe: Some(http_probe("/healthz", HTTP_PORT, "HTTP", 5)),
        ..binary_container(ctx, names::INJECTOR, "osm-injector", &args)
    };
    // Like the controller, the injector reads osm-mesh-config at start-up: wait for the bootstrap.
    let init = wait_for_bootstrap(ctx, "init-osm-injector");
    control_plane_deployment(ctx, names::INJECTOR, deployment_labels(ctx, names::INJECTOR), Some(init), container)
}

/// `osm-injector` Service: the target of `osm-webhook-<mesh>`.
fn injector_service(ctx: &Ctx<'_>) -> Service {
    service(
        ctx,
        names::INJECTOR,
        names::INJECTOR,
        ctx.app_labels(names::INJECTOR),
        &[("sidecar-inject", INJECTOR_PORT)],
    )
}

/// `osm-bootstrap`: creates `osm-mesh-config` from the preset and serves CRD conversion.
fn bootstrap_deployment(ctx: &Ctx<'_>) -> Deployment {
    let container = Container {
        ports: Some(vec![container_port("crdconversion", CRD_CONVERSION_PORT), container_port("metrics", HTTP_PORT)]),
        env: Some(vec![pod_name_env("BOOTSTRAP_POD_NAME")]),
        resources: Some(resources(("300m", "128M"), ("500m", "128M"))),
        readiness_probe: Some(http_probe("/healthz", HTTP_PORT, "HTTP", 5)),
        liveness_probe: Some(http_probe("/healthz", HTTP_PORT, "HTTP", 5)),
        ..binary_container(ctx, names::BOOTSTRAP, "osm-bootstrap", &["--mesh-name", ctx.mesh])
    };
    control_plane_deployment(ctx, names::BOOTSTRAP, deployment_labels(ctx, names::BOOTSTRAP), None, container)
}

/// `osm-bootstrap` Service: CRD conversion and the health endpoint the init containers poll.
fn bootstrap_service(ctx: &Ctx<'_>) -> Service {
    service(
        ctx,
        names::BOOTSTRAP,
        names::BOOTSTRAP,
        ctx.app_labels(names::BOOTSTRAP),
        &[("crdconversion", CRD_CONVERSION_PORT), ("health", HTTP_PORT)],
    )
}
