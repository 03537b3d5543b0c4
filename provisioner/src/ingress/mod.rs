//! North-south traffic (`spec.ingress`), rendered by pure, typed builders. No API calls.
//!
//! Two shapes, chosen by `spec.traffic.mode`:
//!
//! - **SMI (OSM meshes)** — the article's "How to expose services to the outside world?" step:
//!   [`nginx_controller`] renders an ingress-nginx controller (our own objects, written from the
//!   upstream chart's documented behaviour, not copied from it), [`mesh_ingress`] renders one
//!   `networking.k8s.io/v1` Ingress per rule plus one OSM `IngressBackend` per backend namespace,
//!   and [`mesh_config_ingress_gateway`] returns the MeshConfig block OSM needs for HTTPS backends.
//! - **GatewayAPI (Istio add-on)** — [`gateway_ingress`] renders a Gateway, HTTPRoutes,
//!   ReferenceGrants and Istio AuthorizationPolicies admitting the Gateway's identity.
//!
//! TLS material comes from [`certs`]: the admission webhook's CA and serving certificate, and
//! self-signed edge certificates for rules with `tls.generate: true` (stored by
//! [`edge_tls_secret`]). Generating keys is the only impure step; callers do it before building and
//! reuse what is stored, so a steady state re-renders identical objects.
//!
//! Everything is labelled by [`Desired::new`](crate::desired::Desired::new) with `app.kubernetes.io/managed-by=mesh-operator`,
//! `meshoperator.dev/installation=<installation>` and `meshoperator.dev/component=ingress`.

pub mod certs;
mod gateway;
mod mesh;
mod nginx;

use std::collections::BTreeMap;

use mesh_crds::{IngressRule, IngressSpec, MeshInstallationSpec};

use crate::desired::DesiredError;

pub use gateway::*;
pub use mesh::*;
pub use nginx::*;

/// Kind of the installation object, for [`mesh_crds::Notification::object`].
const INSTALLATION_KIND: &str = "MeshInstallation";

/// Errors while rendering the ingress. Messages name the offending field, e.g.
/// `spec.ingress.rules[0].backend: Service bookstore/bookstore-x is not declared by any app in spec.apps`.
#[derive(Debug, thiserror::Error)]
pub enum IngressBuildError {
    /// A rule's backend Service is not created by any app of the installation.
    #[error("{field}: Service {namespace}/{service} is not declared by any app in spec.apps")]
    UndeclaredService {
        /// Field path, e.g. `spec.ingress.rules[0].backend`.
        field: String,
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        service: String,
    },
    /// A rule's backend port is not one of the Service's ports.
    #[error("{field}: Service {namespace}/{service} has no port {port} (its ports: {ports})")]
    UnknownPort {
        /// Field path, e.g. `spec.ingress.rules[0].backend.port`.
        field: String,
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        service: String,
        /// The port asked for.
        port: i32,
        /// The ports the Service has, comma-separated.
        ports: String,
    },
    /// A field holds a value the ingress cannot be built from.
    #[error("{field}: {message}")]
    InvalidField {
        /// Field path.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Generating a certificate failed.
    #[error("generating {what}: {source}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Cause.
        source: rcgen::Error,
    },
    /// Stored certificate material is unusable.
    #[error("{what}: {message}")]
    InvalidCertificate {
        /// Which certificate or Secret.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// An object could not be rendered.
    #[error(transparent)]
    Desired(#[from] DesiredError),
}

impl IngressBuildError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        IngressBuildError::InvalidField { field: field.into(), message: message.into() }
    }
}

/// Field path of rule `index`.
fn rule_field(index: usize) -> String {
    format!("spec.ingress.rules[{index}]")
}

/// Name of the Ingress / HTTPRoute generated for a rule: `rule.name`, else `<backend service>-ingress`.
pub fn rule_object_name(rule: &IngressRule) -> String {
    rule.name.clone().unwrap_or_else(|| format!("{}-ingress", rule.backend.service))
}

/// The backend Service's **target** port for `rule`: the container port the Service forwards
/// `rule.backend.port` to. OSM's IngressBackend and Istio's AuthorizationPolicy match on it.
///
/// The Service must be declared by an app of the installation (its main Service or a version
/// Service) and `rule.backend.port` must be one of that app's Service ports.
pub fn backend_target_port(
    spec: &MeshInstallationSpec,
    index: usize,
    rule: &IngressRule,
) -> Result<i32, IngressBuildError> {
    let backend = &rule.backend;
    let app = spec.app_declaring_service(&backend.namespace, &backend.service).ok_or_else(|| {
        IngressBuildError::UndeclaredService {
            field: format!("{}.backend", rule_field(index)),
            namespace: backend.namespace.clone(),
            service: backend.service.clone(),
        }
    })?;
    let ports = app.service_ports();
    ports.iter().find(|p| p.port == backend.port).map(|p| p.target_port.unwrap_or(p.port)).ok_or_else(|| {
        IngressBuildError::UnknownPort {
            field: format!("{}.backend.port", rule_field(index)),
            namespace: backend.namespace.clone(),
            service: backend.service.clone(),
            port: backend.port,
            ports: ports.iter().map(|p| p.port.to_string()).collect::<Vec<_>>().join(", "),
        }
    })
}

/// Checks what both modes need of the rules: paths ingress-nginx's strict path validation
/// (`strict-validate-path-type`, on by default since v1.12) accepts for `pathType: Prefix` —
/// `^/[A-Za-z0-9/_-]*$` — without `//` (which Gateway API rejects), and object names unique per
/// namespace.
fn validate_rules(ingress: &IngressSpec) -> Result<(), IngressBuildError> {
    let mut names: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        let path = &rule.path;
        let valid_chars =
            path.starts_with('/') && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
        if !valid_chars || path.contains("//") {
            return Err(IngressBuildError::invalid(
                format!("{}.path", rule_field(index)),
                format!(
                    "{path:?} is not a plain path prefix: use only letters, digits, '/', '_' and '-', start with '/' and \
                     do not repeat '/' (ingress-nginx rejects other characters for pathType Prefix)"
                ),
            ));
        }
        let name = rule_object_name(rule);
        if let Some(first) = names.insert((rule.backend.namespace.clone(), name.clone()), index) {
            return Err(IngressBuildError::invalid(
                format!("{}.name", rule_field(index)),
                format!(
                    "{name} is already the name of {} in namespace {}; give the rules distinct names",
                    rule_field(first),
                    rule.backend.namespace
                ),
            ));
        }
    }
    Ok(())
}
