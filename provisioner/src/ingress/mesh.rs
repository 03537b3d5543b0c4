//! OSM meshes: the article's Ingress + IngressBackend, one Ingress per rule and one IngressBackend
//! per backend namespace; and the edge TLS Secrets of rules with `tls.generate: true`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend as K8sIngressBackend, IngressRule as K8sIngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::api::ObjectMeta;
use mesh_crds::osm::{
    IngressBackend, IngressBackendPort, IngressBackendSpec, IngressBackendTarget, IngressBackendTls,
    IngressGatewayCertSpec, IngressSource, SecretReference,
};
use mesh_crds::{BackendProtocol, IngressRule, MeshInstallationSpec, Notification, NotificationLevel};

use super::certs::{EdgeCert, TLS_CERT_KEY, TLS_KEY_KEY};
use super::nginx::{ControllerRef, INGRESS_CLASS};
use super::{INSTALLATION_KIND, IngressBuildError, backend_target_port, rule_field, rule_object_name, validate_rules};
use crate::desired::{Component, Desired};

/// Annotation prefix of ingress-nginx.
pub const NGINX_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// ingress-nginx annotation replacing the request path (see [`mesh_ingress`]).
pub const REWRITE_TARGET_ANNOTATION: &str = "nginx.ingress.kubernetes.io/rewrite-target";
/// Secret (in the OSM control-plane namespace) where OSM writes the client certificate it issues
/// for the ingress controller when `certificate.ingressGateway` is set (keys `ca.crt`, `tls.crt`, `tls.key`).
pub const OSM_NGINX_CLIENT_CERT_SECRET: &str = "osm-nginx-client-cert";
/// Validity of that client certificate.
pub const OSM_INGRESS_GATEWAY_CERT_VALIDITY: &str = "24h";

/// Name of the IngressBackend rendered in each backend namespace: `<installation>-ingress-backend`.
/// OSM's webhook refuses a second IngressBackend for the same backend, so there is one per
/// namespace covering every Service the rules route to there.
pub fn ingress_backend_name(installation: &str) -> String {
    format!("{installation}-ingress-backend")
}

/// The article's ingress for an OSM mesh: one `networking.k8s.io/v1` Ingress per rule (in the
/// backend's namespace, `ingressClassName: nginx`, `pathType: Prefix`, named
/// [`rule_object_name`]) and one OSM `IngressBackend` per backend namespace
/// ([`ingress_backend_name`]) admitting `controller`.
///
/// - **Ports.** An IngressBackend's `port.number` is the backend Service's **targetPort**, looked
///   up from the app that declares the Service ([`backend_target_port`]); the Ingress keeps the
///   Service port.
/// - **`backendProtocol: http`** (the article): `protocol: http`, source `{kind: Service}` = the
///   controller Service; OSM turns it into the controller pods' IPs, which is why the controller
///   namespace must be monitored but not injected.
/// - **`backendProtocol: https`**: nginx presents the client certificate OSM issues into
///   `<osm ns>/osm-nginx-client-cert` (see [`mesh_config_ingress_gateway`]): annotations
///   `backend-protocol: HTTPS`, `proxy-ssl-secret`, `proxy-ssl-verify: "on"` and
///   `proxy-ssl-name: <svc>.<ns>.cluster.local` (the sidecar's certificate name; OSM's own recipe
///   used a `configuration-snippet`, which is off by default now). The IngressBackend uses
///   `protocol: https`, `tls.skipClientCertValidation: false`, and sources Service +
///   `AuthenticatedPrincipal <sa>.<ns>.cluster.local`, as OSM's demo does.
/// - **`rewriteTarget`** becomes `nginx.ingress.kubernetes.io/rewrite-target`. ingress-nginx then
///   renders `rewrite "(?i)<path>" <target> break;`: an nginx `rewrite` replaces the **whole**
///   URI when the regex matches, so with the article's `/store` → `/`, `/store/books` reaches the
///   backend as `/` (query string kept). It also turns every location of that host into a
///   case-insensitive regex prefix (`~* "^<path>"`). Both are reported as INFO notifications.
///
/// `spec.ingress` unset renders nothing. Errors name the offending rule field.
pub fn mesh_ingress(
    installation: &str,
    spec: &MeshInstallationSpec,
    controller: &ControllerRef,
) -> Result<(Vec<Desired>, Vec<Notification>), IngressBuildError> {
    let Some(ingress) = &spec.ingress else { return Ok((Vec::new(), Vec::new())) };
    if !spec.mesh.is_osm() {
        return Err(IngressBuildError::invalid(
            "spec.mesh.provider",
            "IngressBackend is an Open Service Mesh policy; with the Istio add-on use spec.traffic.mode GatewayAPI",
        ));
    }
    validate_rules(ingress)?;
    let https = ingress.backend_protocol == BackendProtocol::Https;
    let osm_namespace = spec.mesh.control_plane_namespace();

    let mut objects = Vec::new();
    let mut notifications = Vec::new();
    let mut backends: BTreeMap<String, BTreeSet<(String, i32)>> = BTreeMap::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        let target_port = backend_target_port(spec, index, rule)?;
        backends.entry(rule.backend.namespace.clone()).or_default().insert((rule.backend.service.clone(), target_port));
        objects.push(Desired::new(Component::Ingress, installation, &rule_ingress(rule, https, osm_namespace))?);
        if let Some(note) = rewrite_note(installation, index, rule) {
            notifications.push(note);
        }
    }
    for (namespace, services) in &backends {
        objects.push(Desired::new(
            Component::Ingress,
            installation,
            &ingress_backend(installation, namespace, services, https, controller),
        )?);
    }
    Ok((objects, notifications))
}

fn rule_ingress(rule: &IngressRule, https: bool, osm_namespace: &str) -> Ingress {
    let backend = &rule.backend;
    let mut annotations = BTreeMap::new();
    if let Some(target) = &rule.rewrite_target {
        annotations.insert(REWRITE_TARGET_ANNOTATION.to_string(), target.clone());
    }
    if https {
        let annotation = |key: &str| format!("{NGINX_ANNOTATION_PREFIX}{key}");
        annotations.insert(annotation("backend-protocol"), "HTTPS".to_string());
        annotations.insert(annotation("proxy-ssl-secret"), format!("{osm_namespace}/{OSM_NGINX_CLIENT_CERT_SECRET}"));
        annotations.insert(annotation("proxy-ssl-verify"), "on".to_string());
        annotations
            .insert(annotation("proxy-ssl-name"), format!("{}.{}.cluster.local", backend.service, backend.namespace));
    }
    Ingress {
        metadata: ObjectMeta {
            name: Some(rule_object_name(rule)),
            namespace: Some(backend.namespace.clone()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(K8sIngressSpec {
            ingress_class_name: Some(INGRESS_CLASS.to_string()),
            rules: Some(vec![K8sIngressRule {
                host: Some(rule.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(rule.path.clone()),
                        path_type: "Prefix".to_string(),
                        backend: K8sIngressBackend {
                            service: Some(IngressServiceBackend {
                                name: backend.service.clone(),
                                port: Some(ServiceBackendPort { number: Some(backend.port), name: None }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: rule.tls.as_ref().map(|tls| {
                vec![IngressTLS { hosts: Some(vec![rule.host.clone()]), secret_name: Some(tls.secret_name.clone()) }]
            }),
            default_backend: None,
        }),
        status: None,
    }
}

fn ingress_backend(
    installation: &str,
    namespace: &str,
    services: &BTreeSet<(String, i32)>,
    https: bool,
    controller: &ControllerRef,
) -> IngressBackend {
    let protocol = if https { "https" } else { "http" };
    let backends = services
        .iter()
        .map(|(service, target_port)| IngressBackendTarget {
            name: service.clone(),
            port: IngressBackendPort { number: *target_port, protocol: protocol.to_string() },
            tls: https.then_some(IngressBackendTls { skip_client_cert_validation: Some(false), sni_hosts: None }),
        })
        .collect();
    let mut sources = vec![IngressSource {
        kind: "Service".to_string(),
        name: controller.controller_service(),
        namespace: Some(controller.namespace.clone()),
    }];
    if https {
        sources.push(IngressSource {
            kind: "AuthenticatedPrincipal".to_string(),
            name: controller.osm_principal(),
            namespace: None,
        });
    }
    let mut object = IngressBackend::new(&ingress_backend_name(installation), IngressBackendSpec { backends, sources });
    object.metadata.namespace = Some(namespace.to_string());
    object
}

fn rewrite_note(installation: &str, index: usize, rule: &IngressRule) -> Option<Notification> {
    let target = rule.rewrite_target.as_ref().filter(|t| **t != rule.path)?;
    let path = &rule.path;
    Some(Notification {
        level: NotificationLevel::Info,
        object: format!("{INSTALLATION_KIND}/{installation}"),
        message: format!(
            "{field}: ingress-nginx rewrites the whole request path to {target:?} (rewrite \"(?i){path}\" {target} break), \
             so {path}/books reaches {svc} as {target:?}, not as \"/books\"; and with a rewrite every path of host {host} \
             is matched as a case-insensitive regular-expression prefix (~* \"^{path}\"), so {path}x and {upper} match too",
            field = rule_field(index),
            svc = rule.backend.service,
            host = rule.host,
            upper = path.to_uppercase(),
        ),
    })
}

/// The MeshConfig `certificate.ingressGateway` block OSM needs for `backendProtocol: https`: OSM
/// issues a client certificate with SAN [`ControllerRef::osm_principal`], valid 24h, into Secret
/// `osm-nginx-client-cert` in the OSM control-plane namespace, which the Ingresses reference as
/// `proxy-ssl-secret`. `None` for http backends or non-OSM meshes. The caller merges it into the
/// MeshConfig.
pub fn mesh_config_ingress_gateway(
    spec: &MeshInstallationSpec,
    controller: &ControllerRef,
) -> Option<IngressGatewayCertSpec> {
    let ingress = spec.ingress.as_ref()?;
    (spec.mesh.is_osm() && ingress.backend_protocol == BackendProtocol::Https).then(|| IngressGatewayCertSpec {
        subject_alt_names: vec![controller.osm_principal()],
        validity_duration: OSM_INGRESS_GATEWAY_CERT_VALIDITY.to_string(),
        secret: SecretReference {
            name: OSM_NGINX_CLIENT_CERT_SECRET.to_string(),
            namespace: spec.mesh.control_plane_namespace().to_string(),
        },
    })
}

/// An edge certificate the installation generates (`tls.generate: true`): Secret `secret_name` in
/// `namespace` (the backend's) for `host`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EdgeCertRequest {
    /// Namespace of the Secret (the rule's backend namespace).
    pub namespace: String,
    /// Name of the Secret.
    pub secret_name: String,
    /// The host the certificate is for.
    pub host: String,
}

/// The edge certificates to generate, one per Secret, sorted. Two rules generating into the same
/// Secret must share the host (a generated certificate names one host).
pub fn edge_certificate_requests(spec: &MeshInstallationSpec) -> Result<Vec<EdgeCertRequest>, IngressBuildError> {
    let Some(ingress) = &spec.ingress else { return Ok(Vec::new()) };
    let mut requests: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        let Some(tls) = rule.tls.as_ref().filter(|tls| tls.generate) else { continue };
        let key = (rule.backend.namespace.clone(), tls.secret_name.clone());
        match requests.get(&key) {
            Some((first, host)) if *host != rule.host => {
                return Err(IngressBuildError::invalid(
                    format!("{}.tls.secretName", rule_field(index)),
                    format!(
                        "Secret {}/{} is generated for host {host} by {}; a generated certificate names one host, so use another Secret for {}",
                        key.0,
                        key.1,
                        rule_field(*first),
                        rule.host
                    ),
                ));
            }
            Some(_) => {}
            None => {
                requests.insert(key, (index, rule.host.clone()));
            }
        }
    }
    Ok(requests
        .into_iter()
        .map(|((namespace, secret_name), (_, host))| EdgeCertRequest { namespace, secret_name, host })
        .collect())
}

/// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) holding a generated edge certificate.
pub fn edge_tls_secret(
    installation: &str,
    namespace: &str,
    secret_name: &str,
    cert: &EdgeCert,
) -> Result<Desired, IngressBuildError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(BTreeMap::from([
            (TLS_CERT_KEY.to_string(), ByteString(cert.cert_pem.clone().into_bytes())),
            (TLS_KEY_KEY.to_string(), ByteString(cert.key_pem.clone().into_bytes())),
        ])),
        ..Default::default()
    };
    Ok(Desired::new(Component::Ingress, installation, &secret)?)
}
