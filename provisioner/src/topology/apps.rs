//! The apps of the topology: a ServiceAccount (the mesh identity), a Deployment or StatefulSet,
//! and the Services in front of it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
    TCPSocketAction, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use mesh_crds::{AppSpec, MeshInstallationSpec, WorkloadKind};

use crate::desired::{Component, Desired, DesiredError};

/// Pod label that selects an app's pods; unique per app and never changed (selectors are immutable).
pub const APP_SELECTOR_LABEL: &str = "meshoperator.dev/app";
/// Pod-template annotation carrying the namespace's enrolment digest: when enrolment changes the
/// template changes and the workload rolls, so sidecars are injected or removed.
pub const ENROLMENT_ANNOTATION: &str = "meshoperator.dev/enrolment";

/// Inputs the app builder needs beyond the spec.
#[derive(Clone, Debug, Default)]
pub struct AppInputs {
    /// Image rewrites: source image → imported registry image, only for imports that succeeded.
    pub image_overrides: BTreeMap<String, String>,
    /// Enrolment digest per namespace.
    pub enrolment_digests: BTreeMap<String, String>,
}

/// Every object of every app.
pub fn apps(installation: &str, spec: &MeshInstallationSpec, inputs: &AppInputs) -> Result<Vec<Desired>, DesiredError> {
    let mut out = Vec::new();
    for app in &spec.apps {
        out.extend(app_objects(installation, app, inputs)?);
    }
    Ok(out)
}

/// The objects of one app.
pub fn app_objects(installation: &str, app: &AppSpec, inputs: &AppInputs) -> Result<Vec<Desired>, DesiredError> {
    let mut out = vec![Desired::new(Component::Apps, installation, &service_account(app))?];
    let template = pod_template(app, inputs);
    match app.kind {
        WorkloadKind::Deployment => out.push(Desired::new(Component::Apps, installation, &deployment(app, template))?),
        WorkloadKind::StatefulSet => {
            out.push(Desired::new(Component::Apps, installation, &stateful_set(app, template))?)
        }
    }
    for service in services(app) {
        out.push(Desired::new(Component::Apps, installation, &service)?);
    }
    Ok(out)
}

fn meta(app: &AppSpec, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(app.namespace.clone()),
        labels: Some(pod_labels(app)),
        ..Default::default()
    }
}

/// Labels of the app's pods: `app`, `version` (when set) and our selector label.
pub fn pod_labels(app: &AppSpec) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app".to_string(), app.app_label_value().to_string()),
        (APP_SELECTOR_LABEL.to_string(), app.name.clone()),
    ]);
    if let Some(version) = &app.version {
        labels.insert("version".to_string(), version.clone());
    }
    labels
}

fn service_account(app: &AppSpec) -> ServiceAccount {
    ServiceAccount { metadata: meta(app, app.service_account_name()), ..Default::default() }
}

fn pod_template(app: &AppSpec, inputs: &AppInputs) -> PodTemplateSpec {
    let image = inputs.image_overrides.get(&app.image).cloned().unwrap_or_else(|| app.image.clone());
    let annotations = inputs
        .enrolment_digests
        .get(&app.namespace)
        .map(|digest| BTreeMap::from([(ENROLMENT_ANNOTATION.to_string(), digest.clone())]));
    let readiness_probe = match (app.tcp_readiness_probe, app.port) {
        (true, Some(port)) => Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), host: None }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            ..Default::default()
        }),
        _ => None,
    };
    let container = Container {
        name: app.name.clone(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: (!app.args.is_empty()).then(|| app.args.clone()),
        env: (!app.env.is_empty()).then(|| {
            app.env
                .iter()
                .map(|(name, value)| EnvVar { name: name.clone(), value: Some(value.clone()), value_from: None })
                .collect()
        }),
        ports: app.port.map(|port| {
            vec![ContainerPort {
                container_port: port,
                name: None,
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]
        }),
        readiness_probe,
        volume_mounts: app.storage.as_ref().filter(|_| app.kind == WorkloadKind::StatefulSet).map(|storage| {
            vec![VolumeMount { name: "data".to_string(), mount_path: storage.mount_path.clone(), ..Default::default() }]
        }),
        security_context: Some(container_security_context(app)),
        ..Default::default()
    };
    let node_selector = app
        .node_selector
        .clone()
        .unwrap_or_else(|| BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())]));
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(pod_labels(app)), annotations, ..Default::default() }),
        spec: Some(PodSpec {
            service_account_name: Some(app.service_account_name().to_string()),
            containers: vec![container],
            node_selector: Some(node_selector),
            ..Default::default()
        }),
    }
}

/// Hardened where the workload allows it: no privilege escalation, no capabilities, the runtime's
/// seccomp profile. Stateful images such as mysql start as root and chown their data directory,
/// so StatefulSets keep the image's defaults.
fn container_security_context(app: &AppSpec) -> SecurityContext {
    match app.kind {
        WorkloadKind::Deployment => SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }),
            ..Default::default()
        },
        WorkloadKind::StatefulSet => SecurityContext {
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }),
            ..Default::default()
        },
    }
}

fn selector(app: &AppSpec) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(APP_SELECTOR_LABEL.to_string(), app.name.clone())])),
        match_expressions: None,
    }
}

fn deployment(app: &AppSpec, template: PodTemplateSpec) -> Deployment {
    Deployment {
        metadata: meta(app, &app.name),
        spec: Some(DeploymentSpec {
            replicas: Some(app.replicas),
            selector: selector(app),
            template,
            ..Default::default()
        }),
        status: None,
    }
}

fn stateful_set(app: &AppSpec, template: PodTemplateSpec) -> StatefulSet {
    let claims = app.storage.as_ref().map(|storage| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some("data".to_string()), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(storage.size.clone()))])),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        }]
    });
    StatefulSet {
        metadata: meta(app, &app.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(app.replicas),
            selector: selector(app),
            service_name: Some(app.name.clone()),
            template,
            volume_claim_templates: claims,
            // The claims go with the app: teardown leaves no volume behind.
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Delete".to_string()),
                when_scaled: Some("Retain".to_string()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The app's Services: the main one (unless skipped) and one per version Service.
pub fn services(app: &AppSpec) -> Vec<Service> {
    let ports = app.service_ports();
    if ports.is_empty() {
        return Vec::new();
    }
    let service_ports: Vec<ServicePort> = ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port: Some(IntOrString::Int(p.target_port.unwrap_or(p.port))),
            protocol: Some("TCP".to_string()),
            app_protocol: p.app_protocol.clone(),
            ..Default::default()
        })
        .collect();
    let service_cfg = app.service.clone().unwrap_or_default();
    let mut out = Vec::new();
    if !service_cfg.skip_main {
        let selector = service_cfg
            .selector
            .clone()
            .unwrap_or_else(|| BTreeMap::from([("app".to_string(), app.app_label_value().to_string())]));
        out.push(Service {
            metadata: meta(app, &app.name),
            spec: Some(ServiceSpec {
                selector: Some(selector),
                ports: Some(service_ports.clone()),
                cluster_ip: service_cfg.headless.then(|| "None".to_string()),
                ..Default::default()
            }),
            status: None,
        });
    }
    for version_service in &service_cfg.version_services {
        let mut selector = BTreeMap::from([("app".to_string(), app.app_label_value().to_string())]);
        if let Some(version) = &app.version {
            selector.insert("version".to_string(), version.clone());
        }
        out.push(Service {
            metadata: meta(app, &version_service.name),
            spec: Some(ServiceSpec {
                selector: Some(selector),
                ports: Some(service_ports.clone()),
                ..Default::default()
            }),
            status: None,
        });
    }
    out
}
