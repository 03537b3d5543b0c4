//! The operator's own objects: its namespace, ServiceAccount, roles and bindings, and the Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::rbac::ExplainedRule;
use super::{METRICS_PORT, NAME, NAMESPACE, RUN_AS};

/// Labels on every object of the operator's own install. Deliberately not
/// `app.kubernetes.io/managed-by: mesh-operator`: that label marks what the operator manages.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        ("app.kubernetes.io/part-of".to_string(), NAME.to_string()),
        ("app.kubernetes.io/version".to_string(), super::VERSION.to_string()),
    ])
}

/// Labels selecting the operator's pods.
pub fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        ("app.kubernetes.io/component".to_string(), "controller".to_string()),
    ])
}

fn meta(name: &str, namespaced: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespaced.then(|| NAMESPACE.to_string()),
        labels: Some(labels()),
        ..Default::default()
    }
}

/// The operator's namespace.
pub fn namespace() -> Namespace {
    Namespace { metadata: meta(NAMESPACE, false), ..Default::default() }
}

/// The operator's ServiceAccount.
pub fn service_account() -> ServiceAccount {
    ServiceAccount { metadata: meta(NAME, true), ..Default::default() }
}

/// The ClusterRole, with the rules' reasons kept aside (the YAML prints them as comments).
pub fn cluster_role(rules: &[ExplainedRule]) -> ClusterRole {
    ClusterRole {
        metadata: meta(NAME, false),
        rules: Some(rules.iter().map(|r| r.rule.clone()).collect()),
        aggregation_rule: None,
    }
}

/// The Role for the leader Lease in the operator's namespace.
pub fn role(rules: &[ExplainedRule]) -> Role {
    Role { metadata: meta(NAME, true), rules: Some(rules.iter().map(|r| r.rule.clone()).collect()) }
}

fn subject() -> Subject {
    Subject {
        kind: "ServiceAccount".to_string(),
        name: NAME.to_string(),
        namespace: Some(NAMESPACE.to_string()),
        api_group: None,
    }
}

/// Binds the ClusterRole to the ServiceAccount.
pub fn cluster_role_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(NAME, false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "ClusterRole".to_string(),
            name: NAME.to_string(),
        },
        subjects: Some(vec![subject()]),
    }
}

/// Binds the Role to the ServiceAccount.
pub fn role_binding() -> RoleBinding {
    RoleBinding {
        metadata: meta(NAME, true),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: NAME.to_string(),
        },
        subjects: Some(vec![subject()]),
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_string(), api_version: None }),
            ..Default::default()
        }),
        value: None,
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("metrics".to_string()),
            scheme: Some("HTTP".to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The operator container's CPU limit. Within it, `std::thread::available_parallelism` (and so
/// tokio's worker count) is 1; the footprint bench runs the binary the same way.
pub const CPU_LIMIT: &str = "500m";

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(memory.to_string())),
    ])
}

/// The controller Deployment's spec: one replica that elects itself leader on a Lease (a second
/// replica during a rolling update waits instead of writing), non-root, read-only root filesystem,
/// no capabilities, RuntimeDefault seccomp, probes on `/healthz` and `/readyz`, metrics on 8080.
pub fn deployment_spec(image: &str) -> DeploymentSpec {
    let selector = selector_labels();
    let mut pod_labels = labels();
    pod_labels.extend(selector.clone());
    // Inert without the AKS workload identity webhook; with it, an annotated ServiceAccount is all
    // `workloadIdentity` needs (see `workload_identity`).
    pod_labels.insert(super::workload_identity::USE_LABEL.to_string(), "true".to_string());
    let container = Container {
        name: "operator".to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![
            "run".to_string(),
            "--leader-elect".to_string(),
            format!("--metrics-addr=0.0.0.0:{METRICS_PORT}"),
        ]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar { name: "LOG_FORMAT".to_string(), value: Some("json".to_string()), value_from: None },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_string()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        liveness_probe: Some(probe("/healthz", 20, 3)),
        readiness_probe: Some(probe("/readyz", 10, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("50m", "64Mi")),
            limits: Some(quantities(CPU_LIMIT, "256Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    };
    DeploymentSpec {
        replicas: Some(1),
        selector: LabelSelector { match_labels: Some(selector), match_expressions: None },
        strategy: Some(DeploymentStrategy { type_: Some("RollingUpdate".to_string()), rolling_update: None }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                annotations: Some(BTreeMap::from([(
                    "kubectl.kubernetes.io/default-container".to_string(),
                    "operator".to_string(),
                )])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(NAME.to_string()),
                automount_service_account_token: Some(true),
                containers: vec![container],
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(RUN_AS),
                    run_as_group: Some(RUN_AS),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_string(),
                        localhost_profile: None,
                    }),
                    ..Default::default()
                }),
                node_selector: Some(BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())])),
                termination_grace_period_seconds: Some(30),
                ..Default::default()
            }),
        },
        ..Default::default()
    }
}

/// The controller Deployment.
pub fn deployment(image: &str) -> Deployment {
    Deployment { metadata: meta(NAME, true), spec: Some(deployment_spec(image)), status: None }
}
