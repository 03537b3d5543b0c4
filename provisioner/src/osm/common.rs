//! Pieces shared by the control-plane and add-on builders: OSM's labels, images, the restricted
//! security context, probes, resources and the Deployment/Service skeletons.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mesh_crds::{MeshProvider, MeshSpec};

use super::OsmBuildError;

/// Registry of the upstream OSM images (`osm.image.registry`).
pub(crate) const OSM_REGISTRY: &str = "openservicemesh";
/// Envoy image OSM v1.2 injects (`osm.sidecarImage`, pinned by digest as the chart pins it).
pub(crate) const ENVOY_IMAGE: &str =
    "envoyproxy/envoy-distroless:v1.22.2@sha256:541d31419b95e3c62d8cc0967db9cdb4ad2782cc08faa6f15f04c081200e324a";
/// Envoy image for Windows nodes (`osm.sidecarWindowsImage`).
pub(crate) const ENVOY_WINDOWS_IMAGE: &str =
    "envoyproxy/envoy-windows:v1.22.1@sha256:92733f8e5beae5c45df204a0e13edbd29e99adf962d1b1c7869b197d85c64bd0";
/// Image of the init containers that wait for `osm-bootstrap` (`osm.curlImage`; the chart leaves it untagged).
pub(crate) const CURL_IMAGE: &str = "curlimages/curl";
/// Control-plane log level (`osm.controllerLogLevel`).
pub(crate) const CONTROLLER_LOG_LEVEL: &str = "info";
/// OSM's trust domain (`osm.trustDomain`), the suffix of every workload identity.
pub(crate) const TRUST_DOMAIN: &str = "cluster.local";
/// Certificate provider (`osm.certificateProvider.kind`): Tresor, backed by `osm-ca-bundle`.
pub(crate) const CERTIFICATE_MANAGER: &str = "tresor";
/// Port of the controller, injector and bootstrap HTTP servers (metrics, health).
pub(crate) const HTTP_PORT: i32 = 9091;

/// Label keys OSM's chart puts on its objects (`osm.labels`); upstream cleanup selects webhooks by them.
pub(crate) const LABEL_NAME: &str = "app.kubernetes.io/name";
pub(crate) const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub(crate) const LABEL_VERSION: &str = "app.kubernetes.io/version";
/// Value of [`LABEL_NAME`].
pub(crate) const LABEL_NAME_VALUE: &str = "openservicemesh.io";

/// What every builder needs from the spec, resolved once.
pub(crate) struct Ctx<'a> {
    /// Mesh name (`--mesh-name`, Helm release name).
    pub mesh: &'a str,
    /// Control-plane namespace.
    pub namespace: &'a str,
    /// OSM version, e.g. `v1.2.4` (image tag, `--osm-version`).
    pub version: &'a str,
}

impl<'a> Ctx<'a> {
    /// Resolves the spec; only a self-hosted OSM v1.2.x has a control plane to render.
    pub(crate) fn self_hosted(object: &str, mesh: &'a MeshSpec) -> Result<Self, OsmBuildError> {
        if mesh.provider != MeshProvider::SelfHosted {
            return Err(OsmBuildError::UnsupportedProvider { object: object.to_string(), provider: mesh.provider });
        }
        let version = mesh.osm_version();
        // The flags below are OSM v1.2's: an unknown flag makes the Go binaries exit, so refuse
        // other minors instead of rendering a control plane that crash-loops.
        if !version.starts_with("v1.2.") {
            return Err(OsmBuildError::UnsupportedVersion { object: object.to_string(), version: version.to_string() });
        }
        Ok(Ctx { mesh: &mesh.name, namespace: mesh.control_plane_namespace(), version })
    }

    /// `openservicemesh/<name>:<version>`.
    pub(crate) fn image(&self, name: &str) -> String {
        format!("{OSM_REGISTRY}/{name}:{}", self.version)
    }

    /// OSM's chart labels: name, instance (mesh) and version.
    pub(crate) fn osm_labels(&self) -> BTreeMap<String, String> {
        labels(&[(LABEL_NAME, LABEL_NAME_VALUE), (LABEL_INSTANCE, self.mesh), (LABEL_VERSION, self.version)])
    }

    /// OSM's labels plus `app: <app>`, as on the chart's pod templates.
    pub(crate) fn app_labels(&self, app: &str) -> BTreeMap<String, String> {
        let mut out = self.osm_labels();
        out.insert("app".to_string(), app.to_string());
        out
    }

    /// Metadata of a namespaced object in the control-plane namespace.
    pub(crate) fn meta(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        }
    }
}

/// A label (or annotation) map from pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Requests and limits from `(cpu, memory)` strings in the canonical form the API server stores
/// (`"500m"`, not the chart's `"0.5"`): anything else reads back differently and would be
/// re-applied on every reconcile.
pub(crate) fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let pair = |(cpu, memory): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    ResourceRequirements { requests: Some(pair(requests)), limits: Some(pair(limits)), ..Default::default() }
}

/// Pod security context of the Pod Security Standard "restricted" profile.
///
/// The user is explicit because `runAsNonRoot` alone cannot be verified by the kubelet for images
/// whose USER is a name (or root). `fsGroup` = `gid` so mounted volumes (Prometheus' TSDB) are writable.
pub(crate) fn pod_security_context(uid: i64, gid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(gid),
        fs_group: Some(gid),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), ..Default::default() }),
        ..Default::default()
    }
}

/// Container security context of the "restricted" profile: no privilege escalation, no capabilities.
pub(crate) fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), ..Default::default() }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), ..Default::default() }),
        ..Default::default()
    }
}

/// An HTTP(S) GET probe.
pub(crate) fn http_probe(path: &str, port: i32, scheme: &str, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(port),
            scheme: Some(scheme.to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

/// `name` = the pod's own name, which OSM binaries read to attach Kubernetes events to their pod.
pub(crate) fn pod_name_env(name: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".to_string(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plain `name=value` environment variable.
pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value.to_string()), ..Default::default() }
}

/// Linux nodes only: every image here is linux/amd64 + linux/arm64.
pub(crate) fn linux_node_selector() -> BTreeMap<String, String> {
    labels(&[("kubernetes.io/os", "linux")])
}

/// Init container that blocks until `osm-bootstrap` answers, as the chart does: bootstrap creates
/// `osm-mesh-config`, which the controller and injector need when they start.
pub(crate) fn wait_for_bootstrap(ctx: &Ctx<'_>, container: &str) -> Container {
    let url = format!("http://{}.{}.svc.cluster.local:{HTTP_PORT}/healthz", super::names::BOOTSTRAP, ctx.namespace);
    Container {
        name: container.to_string(),
        image: Some(CURL_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(
            ["curl", &url, "--connect-timeout", "2", "--retry", "50", "--retry-connrefused", "--retry-delay", "5"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        // Not in the chart; small limits so a namespace with a ResourceQuota still admits the pod.
        resources: Some(resources(("10m", "16M"), ("100m", "32M"))),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

/// One-replica Deployment selecting `app: <app>`.
///
/// `metadata_labels` go on the Deployment, `pod_labels` on the pod template (they must include
/// `app: <app>`); the selector is only `app`, as upstream's, because a selector is immutable and
/// must not change when the version label does.
pub(crate) fn deployment(
    ctx: &Ctx<'_>,
    app: &str,
    metadata_labels: BTreeMap<String, String>,
    pod_labels: BTreeMap<String, String>,
    pod_annotations: BTreeMap<String, String>,
    pod: PodSpec,
) -> Deployment {
    Deployment {
        metadata: ctx.meta(app, metadata_labels),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels(&[("app", app)])), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: if pod_annotations.is_empty() { None } else { Some(pod_annotations) },
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// ClusterIP Service selecting `app: <app>` with `(name, port)` pairs (targetPort = port).
pub(crate) fn service(
    ctx: &Ctx<'_>,
    name: &str,
    app: &str,
    labels: BTreeMap<String, String>,
    ports: &[(&str, i32)],
) -> Service {
    Service {
        metadata: ctx.meta(name, labels),
        spec: Some(ServiceSpec {
            selector: Some(self::labels(&[("app", app)])),
            ports: Some(
                ports
                    .iter()
                    .map(|(port_name, port)| ServicePort {
                        name: Some(port_name.to_string()),
                        port: *port,
                        target_port: Some(IntOrString::Int(*port)),
                        protocol: Some("TCP".to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Strings from string slices, for args and lists.
pub(crate) use crate::rbac::strings;
