//! The ingress-nginx controller the article installs with Helm, as typed objects.
//!
//! Facts modelled on the upstream chart (`kubernetes/ingress-nginx`, chart 4.15.x): object names
//! derived from a release prefix, RBAC without wildcards, the restricted security context, the
//! admission webhook on 8443 and health on 10254. We do not render the chart: the admission
//! webhook's certificate comes from [`super::certs`] instead of the chart's certgen Jobs, and there
//! is no default backend (the controller serves its own 404).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{IngressClass, IngressClassSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use mesh_crds::{IngressServiceType, IngressSpec};

use super::IngressBuildError;
use super::certs::{WEBHOOK_CERT_KEY, WEBHOOK_KEY_KEY, WebhookTls};
use crate::desired::{Component, Desired};
use crate::rbac::rule;
use crate::topology::fnv1a;

/// Version of ingress-nginx the operator installs: the last release of the newest line.
///
/// ingress-nginx is **retired upstream**: best-effort maintenance ended in March 2026 and the
/// final releases (2026-03-19) are controller v1.15.1, v1.14.5 and v1.13.9 (charts 4.15.1,
/// 4.14.5, 4.13.9). There will be no further fixes, security ones included; GatewayAPI mode (a
/// Gateway on the Istio add-on) is the way forward.
pub const INGRESS_NGINX_VERSION: &str = "v1.15.1";
/// The controller image, pinned to [`INGRESS_NGINX_VERSION`].
pub const INGRESS_NGINX_IMAGE: &str = "registry.k8s.io/ingress-nginx/controller:v1.15.1";
/// Default release prefix of the controller's objects (the chart's `fullname` when the release is
/// called `ingress-nginx`). The article's Helm release `osm-nginx-ingess` gave the prefix
/// `osm-nginx-ingess-ingress-nginx` (Service `osm-nginx-ingess-ingress-nginx-controller`); use
/// [`ControllerRef::new`] to reproduce such names.
pub const DEFAULT_RELEASE: &str = "ingress-nginx";
/// The IngressClass the controller serves and the rules' Ingresses use.
pub const INGRESS_CLASS: &str = "nginx";
/// The controller class of [`INGRESS_CLASS`].
pub const CONTROLLER_CLASS: &str = "k8s.io/ingress-nginx";
/// Where the webhook Secret is mounted in the controller container.
pub const WEBHOOK_CERT_DIR: &str = "/usr/local/certificates/";
/// Pod-template annotation carrying a digest of the webhook serving certificate, so a renewed
/// certificate rolls the controller (which reads it at start).
pub const WEBHOOK_CERT_DIGEST_ANNOTATION: &str = "meshoperator.dev/webhook-cert-digest";
/// Annotation making Azure's load balancer probe `/healthz` over HTTP. Without it, AKS (1.24+)
/// probes `/` on the `appProtocol: http` port, which ingress-nginx answers with 404, and the load
/// balancer marks every node down.
pub const AZURE_HEALTH_PROBE_ANNOTATION: &str =
    "service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path";
/// Port of the controller's health and metrics endpoint.
pub const HEALTH_PORT: i32 = 10254;
/// Port of the admission webhook in the container.
pub const WEBHOOK_PORT: i32 = 8443;

/// Names of one ingress-nginx installation: a release prefix and a namespace, from which every
/// object name follows as the upstream chart derives them. Teardown and status find the objects
/// by these names (and by our installation labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerRef {
    /// Release prefix, e.g. `ingress-nginx`.
    pub release: String,
    /// Namespace of the controller.
    pub namespace: String,
}

impl ControllerRef {
    /// An installation named `release` in `namespace`.
    pub fn new(release: impl Into<String>, namespace: impl Into<String>) -> Self {
        ControllerRef { release: release.into(), namespace: namespace.into() }
    }

    /// The default release ([`DEFAULT_RELEASE`]) in `spec.nginx.namespace()`.
    pub fn for_spec(spec: &IngressSpec) -> Self {
        ControllerRef::new(DEFAULT_RELEASE, spec.nginx.namespace())
    }

    /// ServiceAccount of the controller pods (also the name of the ClusterRole(Binding) and Role(Binding)).
    pub fn service_account(&self) -> String {
        self.release.clone()
    }

    /// The controller Deployment (also its ConfigMap): `<release>-controller`.
    pub fn deployment(&self) -> String {
        format!("{}-controller", self.release)
    }

    /// The controller ConfigMap passed as `--configmap`: `<release>-controller`.
    pub fn config_map(&self) -> String {
        self.deployment()
    }

    /// The published Service (LoadBalancer or NodePort) whose address is the ingress address:
    /// `<release>-controller`. OSM IngressBackends name it as their Service source.
    pub fn controller_service(&self) -> String {
        format!("{}-controller", self.release)
    }

    /// The admission Service (443 → 8443): `<release>-controller-admission`.
    pub fn admission_service(&self) -> String {
        format!("{}-controller-admission", self.release)
    }

    /// The ValidatingWebhookConfiguration (cluster-scoped) and the Secret holding its TLS material: `<release>-admission`.
    pub fn webhook(&self) -> String {
        format!("{}-admission", self.release)
    }

    /// The leader-election Lease: `<release>-leader`.
    pub fn election_id(&self) -> String {
        format!("{}-leader", self.release)
    }

    /// The controller's mesh identity as OSM issues it (`<sa>.<ns>.cluster.local`): the SAN of
    /// the client certificate in `certificate.ingressGateway` and the IngressBackend's
    /// `AuthenticatedPrincipal`.
    pub fn osm_principal(&self) -> String {
        format!("{}.{}.cluster.local", self.service_account(), self.namespace)
    }

    /// Labels selecting the controller pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "ingress-nginx".to_string()),
            ("app.kubernetes.io/instance".to_string(), self.release.clone()),
            ("app.kubernetes.io/component".to_string(), "controller".to_string()),
        ])
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels
            .insert("app.kubernetes.io/version".to_string(), INGRESS_NGINX_VERSION.trim_start_matches('v').to_string());
        labels
    }

    fn meta(&self, name: String, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: namespaced.then(|| self.namespace.clone()),
            labels: Some(self.labels()),
            ..Default::default()
        }
    }
}

/// Name of the admission Service of the default release in `spec.nginx.namespace()`: the name the
/// webhook's serving certificate must carry ([`WebhookTls::generate`]).
pub fn admission_service_name(spec: &IngressSpec) -> String {
    ControllerRef::for_spec(spec).admission_service()
}

/// Name of the Secret holding the admission webhook's TLS material (keys `ca`, `cert`, `key`) for
/// the default release in `spec.nginx.namespace()`: read it back with [`WebhookTls::from_secret_data`].
pub fn webhook_secret_name(spec: &IngressSpec) -> String {
    ControllerRef::for_spec(spec).webhook()
}

/// The ingress-nginx controller of the default release ([`DEFAULT_RELEASE`]) in
/// `spec.nginx.namespace()`. See [`nginx_controller_for`].
pub fn nginx_controller(
    installation: &str,
    spec: &IngressSpec,
    webhook_tls: &WebhookTls,
) -> Result<Vec<Desired>, IngressBuildError> {
    nginx_controller_for(installation, spec, &ControllerRef::for_spec(spec), webhook_tls)
}

/// The ingress-nginx controller named by `controller`, pinned to [`INGRESS_NGINX_IMAGE`]:
/// ServiceAccount, ClusterRole + ClusterRoleBinding, Role + RoleBinding, ConfigMap, IngressClass
/// `nginx`, Deployment, the controller Service (`spec.nginx.serviceType`), the admission Service,
/// the webhook Secret and the ValidatingWebhookConfiguration whose `caBundle` is `webhook_tls`'s CA.
///
/// `webhook_tls` must name the admission Service (see [`ControllerRef::admission_service`]).
/// The controller's namespace itself is not rendered here: on OSM it must be monitored with sidecar
/// injection disabled, which the namespaces component does.
pub fn nginx_controller_for(
    installation: &str,
    spec: &IngressSpec,
    controller: &ControllerRef,
    webhook_tls: &WebhookTls,
) -> Result<Vec<Desired>, IngressBuildError> {
    // An empty certificate is a preview's (see `plan::PlanInputs::webhook_tls`): nothing to check.
    let preview = webhook_tls.cert_pem.is_empty();
    if !preview && !webhook_tls.covers(&controller.admission_service(), &controller.namespace)? {
        return Err(IngressBuildError::InvalidCertificate {
            what: format!("Secret {}/{}", controller.namespace, controller.webhook()),
            message: format!(
                "the webhook certificate does not name {}.{}.svc; generate a new one for this Service",
                controller.admission_service(),
                controller.namespace
            ),
        });
    }
    Ok(vec![
        Desired::new(Component::Ingress, installation, &service_account(controller))?,
        Desired::new(Component::Ingress, installation, &cluster_role(controller))?,
        Desired::new(Component::Ingress, installation, &cluster_role_binding(controller))?,
        Desired::new(Component::Ingress, installation, &role(controller))?,
        Desired::new(Component::Ingress, installation, &role_binding(controller))?,
        Desired::new(Component::Ingress, installation, &config_map(controller))?,
        Desired::new(Component::Ingress, installation, &ingress_class(controller))?,
        Desired::new(Component::Ingress, installation, &webhook_secret(controller, webhook_tls))?,
        Desired::new(Component::Ingress, installation, &deployment(controller, spec, webhook_tls))?,
        Desired::new(Component::Ingress, installation, &controller_service(controller, spec))?,
        Desired::new(Component::Ingress, installation, &admission_service(controller))?,
        Desired::new(Component::Ingress, installation, &webhook_configuration(controller, webhook_tls))?,
    ])
}

fn service_account(controller: &ControllerRef) -> ServiceAccount {
    ServiceAccount {
        metadata: controller.meta(controller.service_account(), true),
        automount_service_account_token: Some(true),
        ..Default::default()
    }
}

/// Cluster-wide reads the controller needs to build its configuration from every namespace's
/// Ingresses, plus Ingress status updates and events. No wildcards; no Endpoints (v1.15 reads
/// EndpointSlices).
fn cluster_role(controller: &ControllerRef) -> ClusterRole {
    ClusterRole {
        metadata: controller.meta(controller.service_account(), false),
        rules: Some(vec![
            rule(&[""], &["configmaps", "nodes", "pods", "secrets", "namespaces"], &["list", "watch"]),
            rule(&[""], &["nodes"], &["get"]),
            rule(&[""], &["services"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses"], &["get", "list", "watch"]),
            rule(&["networking.k8s.io"], &["ingresses/status"], &["update"]),
            rule(&["networking.k8s.io"], &["ingressclasses"], &["get", "list", "watch"]),
            rule(&["discovery.k8s.io"], &["endpointslices"], &["get", "list", "watch"]),
            rule(&[""], &["events"], &["create", "patch"]),
        ]),
        aggregation_rule: None,
    }
}

fn cluster_role_binding(controller: &ControllerRef) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: controller.meta(controller.service_account(), false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "ClusterRole".to_string(),
            name: controller.service_account(),
        },
        subjects: Some(vec![subject(controller)]),
    }
}

/// What the controller does in its own namespace: read its namespace, ConfigMap, pods (status
/// publishing) and Secrets, and hold its leader-election Lease.
fn role(controller: &ControllerRef) -> Role {
    let mut lease = rule(&["coordination.k8s.io"], &["leases"], &["get", "update"]);
    lease.resource_names = Some(vec![controller.election_id()]);
    Role {
        metadata: controller.meta(controller.service_account(), true),
        rules: Some(vec![
            rule(&[""], &["namespaces"], &["get"]),
            rule(&[""], &["configmaps", "pods", "secrets"], &["get", "list", "watch"]),
            rule(&[""], &["services"], &["get", "list", "watch"]),
            lease,
            rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        ]),
    }
}

fn role_binding(controller: &ControllerRef) -> RoleBinding {
    RoleBinding {
        metadata: controller.meta(controller.service_account(), true),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: controller.service_account(),
        },
        subjects: Some(vec![subject(controller)]),
    }
}

fn subject(controller: &ControllerRef) -> Subject {
    Subject {
        kind: "ServiceAccount".to_string(),
        name: controller.service_account(),
        namespace: Some(controller.namespace.clone()),
        api_group: None,
    }
}

/// Controller settings. Snippet annotations stay off (upstream's default since v1.9; they allow
/// arbitrary nginx configuration), and paths are validated strictly (upstream's default since v1.12).
fn config_map(controller: &ControllerRef) -> ConfigMap {
    ConfigMap {
        metadata: controller.meta(controller.config_map(), true),
        data: Some(BTreeMap::from([
            ("allow-snippet-annotations".to_string(), "false".to_string()),
            ("strict-validate-path-type".to_string(), "true".to_string()),
        ])),
        ..Default::default()
    }
}

fn ingress_class(controller: &ControllerRef) -> IngressClass {
    IngressClass {
        metadata: controller.meta(INGRESS_CLASS.to_string(), false),
        spec: Some(IngressClassSpec { controller: Some(CONTROLLER_CLASS.to_string()), parameters: None }),
    }
}

fn webhook_secret(controller: &ControllerRef, tls: &WebhookTls) -> Secret {
    Secret {
        metadata: controller.meta(controller.webhook(), true),
        type_: Some("Opaque".to_string()),
        data: Some(tls.secret_data()),
        ..Default::default()
    }
}

/// The controller container's arguments.
pub fn controller_args(controller: &ControllerRef) -> Vec<String> {
    vec![
        "/nginx-ingress-controller".to_string(),
        format!("--publish-service=$(POD_NAMESPACE)/{}", controller.controller_service()),
        format!("--election-id={}", controller.election_id()),
        format!("--controller-class={CONTROLLER_CLASS}"),
        format!("--ingress-class={INGRESS_CLASS}"),
        format!("--configmap=$(POD_NAMESPACE)/{}", controller.config_map()),
        format!("--validating-webhook=:{WEBHOOK_PORT}"),
        format!("--validating-webhook-certificate={WEBHOOK_CERT_DIR}{WEBHOOK_CERT_KEY}"),
        format!("--validating-webhook-key={WEBHOOK_CERT_DIR}{WEBHOOK_KEY_KEY}"),
    ]
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_string(), api_version: None }),
            ..Default::default()
        }),
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: number,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

fn health_probe(failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_string()),
            port: IntOrString::Int(HEALTH_PORT),
            scheme: Some("HTTP".to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// Upstream's restricted container context: non-root (uid 101, gid 82 = www-data in the image),
/// all capabilities dropped except NET_BIND_SERVICE (nginx binds 80 and 443), no privilege
/// escalation (the chart's default since 4.x; only the chroot image needs it), the runtime's
/// seccomp profile. The root filesystem stays writable: nginx writes its configuration and temp files.
fn container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(101),
        run_as_group: Some(82),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: Some(vec!["NET_BIND_SERVICE".to_string()]),
        }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }),
        read_only_root_filesystem: Some(false),
        ..Default::default()
    }
}

/// Node selector of the controller pods: `kubernetes.io/os: linux` plus `spec.nginx.nodeSelector`
/// (which wins on a shared key).
pub fn controller_node_selector(spec: &IngressSpec) -> BTreeMap<String, String> {
    let mut selector = BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())]);
    selector.extend(spec.nginx.node_selector.clone());
    selector
}

fn deployment(controller: &ControllerRef, spec: &IngressSpec, tls: &WebhookTls) -> Deployment {
    let container = Container {
        name: "controller".to_string(),
        image: Some(INGRESS_NGINX_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(controller_args(controller)),
        env: Some(vec![field_env("POD_NAME", "metadata.name"), field_env("POD_NAMESPACE", "metadata.namespace")]),
        ports: Some(vec![
            port("http", 80),
            port("https", 443),
            port("webhook", WEBHOOK_PORT),
            port("metrics", HEALTH_PORT),
        ]),
        liveness_probe: Some(health_probe(5)),
        readiness_probe: Some(health_probe(3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction { command: Some(vec!["/wait-shutdown".to_string()]) }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("100m".to_string())),
                ("memory".to_string(), Quantity("90Mi".to_string())),
            ])),
            ..Default::default()
        }),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: "webhook-cert".to_string(),
            mount_path: WEBHOOK_CERT_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let annotations = BTreeMap::from([(
        WEBHOOK_CERT_DIGEST_ANNOTATION.to_string(),
        format!("{:016x}", fnv1a(tls.cert_pem.as_bytes())),
    )]);
    Deployment {
        metadata: controller.meta(controller.deployment(), true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            revision_history_limit: Some(10),
            selector: LabelSelector { match_labels: Some(controller.selector_labels()), match_expressions: None },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(controller.labels()),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(controller.service_account()),
                    containers: vec![container],
                    node_selector: Some(controller_node_selector(spec)),
                    termination_grace_period_seconds: Some(300),
                    dns_policy: Some("ClusterFirst".to_string()),
                    volumes: Some(vec![Volume {
                        name: "webhook-cert".to_string(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(controller.webhook()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn service_port(name: &str, port: i32, target: &str, app_protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(target.to_string())),
        protocol: Some("TCP".to_string()),
        app_protocol: Some(app_protocol.to_string()),
        ..Default::default()
    }
}

/// The published Service. Node ports are left to the API server (NodePort type), so
/// server-side apply never fights over them.
fn controller_service(controller: &ControllerRef, spec: &IngressSpec) -> Service {
    let mut metadata = controller.meta(controller.controller_service(), true);
    let service_type = match spec.nginx.service_type {
        IngressServiceType::LoadBalancer => {
            metadata.annotations =
                Some(BTreeMap::from([(AZURE_HEALTH_PROBE_ANNOTATION.to_string(), "/healthz".to_string())]));
            "LoadBalancer"
        }
        IngressServiceType::NodePort => "NodePort",
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(service_type.to_string()),
            selector: Some(controller.selector_labels()),
            ports: Some(vec![service_port("http", 80, "http", "http"), service_port("https", 443, "https", "https")]),
            ..Default::default()
        }),
        status: None,
    }
}

fn admission_service(controller: &ControllerRef) -> Service {
    Service {
        metadata: controller.meta(controller.admission_service(), true),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(controller.selector_labels()),
            ports: Some(vec![service_port("https-webhook", 443, "webhook", "https")]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Validates Ingresses before the API server stores them (ingress-nginx renders and tests the
/// resulting nginx configuration). `failurePolicy: Fail`: while the controller is unavailable,
/// Ingress creates and updates are refused — so this object must be deleted no later than the
/// Deployment on teardown.
fn webhook_configuration(controller: &ControllerRef, tls: &WebhookTls) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: controller.meta(controller.webhook(), false),
        webhooks: Some(vec![ValidatingWebhook {
            name: "validate.nginx.ingress.kubernetes.io".to_string(),
            admission_review_versions: vec!["v1".to_string()],
            client_config: WebhookClientConfig {
                ca_bundle: Some(ByteString(tls.ca_pem.clone().into_bytes())),
                service: Some(ServiceReference {
                    name: controller.admission_service(),
                    namespace: controller.namespace.clone(),
                    path: Some("/networking/v1/ingresses".to_string()),
                    port: Some(443),
                }),
                url: None,
            },
            failure_policy: Some("Fail".to_string()),
            match_policy: Some("Equivalent".to_string()),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["networking.k8s.io".to_string()]),
                api_versions: Some(vec!["v1".to_string()]),
                operations: Some(vec!["CREATE".to_string(), "UPDATE".to_string()]),
                resources: Some(vec!["ingresses".to_string()]),
                scope: None,
            }]),
            side_effects: "None".to_string(),
            timeout_seconds: Some(10),
            ..Default::default()
        }]),
    }
}
