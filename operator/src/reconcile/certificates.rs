//! Keys the operator generates, kept while they are good: the ingress admission webhook's TLS,
//! edge certificates for rules with `tls.generate`, and the self-hosted mesh's root CA. Stored
//! ones are read through [`observe`]; the plan is pure and never generates keys, so they are
//! ensured here and passed in.

use std::collections::BTreeMap;

use kube::api::ResourceExt;
use mesh_crds::{CertificateStatus, MeshInstallation, MeshInstallationSpec};
use mesh_provisioner::apply::{Applier, KeepSet};
use mesh_provisioner::desired::Component;
use mesh_provisioner::{ingress, osm, plan};

use super::observe;
use super::progress::Progress;
use crate::context::Context;
use crate::error::{Error, Result};

/// Ensure step: the ingress webhook's TLS — the stored one while it is good, else a new one (the
/// plan is pure and never generates keys). None when there is no ingress-nginx.
pub async fn ingress_webhook_tls(
    ctx: &Context,
    spec: &MeshInstallationSpec,
) -> Result<Option<ingress::certs::WebhookTls>> {
    let Some(ingress_spec) = &spec.ingress else { return Ok(None) };
    if spec.traffic.mode != mesh_crds::TrafficMode::Smi {
        return Ok(None);
    }
    let controller = ingress::ControllerRef::for_spec(ingress_spec);
    let service = ingress::admission_service_name(ingress_spec);
    let stored = observe::secret(ctx, &controller.namespace, &ingress::webhook_secret_name(ingress_spec))
        .await?
        .and_then(|secret| ingress::certs::WebhookTls::from_secret_data(&secret.data.unwrap_or_default()).ok())
        // A certificate for another Service name (the namespace changed) is replaced, not reused.
        .filter(|tls| tls.covers(&service, &controller.namespace).unwrap_or(false) && !tls.needs_renewal());
    match stored {
        Some(tls) => Ok(Some(tls)),
        None => ingress::certs::WebhookTls::generate(&service, &controller.namespace)
            .map(Some)
            .map_err(|e| Error::Plan(plan::PlanError::Ingress(e))),
    }
}

/// Edge certificates for rules with `tls.generate`: the stored one while it is valid, else a new one.
pub async fn edge_certificates(
    ctx: &Context,
    spec: &MeshInstallationSpec,
) -> Result<BTreeMap<(String, String), ingress::certs::EdgeCert>> {
    let mut certs = BTreeMap::new();
    let Some(ingress_spec) = &spec.ingress else { return Ok(certs) };
    for rule in &ingress_spec.rules {
        let Some(tls) = rule.tls.as_ref().filter(|t| t.generate) else { continue };
        let key = (rule.backend.namespace.clone(), tls.secret_name.clone());
        if certs.contains_key(&key) {
            continue;
        }
        let stored = observe::secret(ctx, &key.0, &key.1)
            .await?
            .and_then(|s| ingress::certs::EdgeCert::from_secret_data(&s.data.unwrap_or_default()).ok())
            .filter(|cert| cert.covers(&rule.host) && !cert.needs_renewal());
        let cert = match stored {
            Some(cert) => cert,
            None => ingress::certs::edge_certificate(&rule.host, ingress::certs::EDGE_VALIDITY)
                .map_err(|e| Error::Plan(plan::PlanError::Ingress(e)))?,
        };
        certs.insert(key, cert);
    }
    Ok(certs)
}

/// Status entries for generated certificates.
pub fn certificate_statuses(certs: &BTreeMap<(String, String), ingress::certs::EdgeCert>) -> Vec<CertificateStatus> {
    certs
        .iter()
        .map(|((ns, name), cert)| CertificateStatus {
            secret: format!("{ns}/{name}"),
            hosts: cert.hosts.clone(),
            not_after: cert.not_after_rfc3339(),
        })
        .collect()
}

/// The mesh's root CA: generated and stored once, never silently replaced. An unreadable stored
/// CA is reported, not overwritten: workload certificates chain to it. Either way the Secret is
/// kept out of pruning (it is not re-rendered).
pub async fn ensure_root_ca(
    ctx: &Context,
    applier: &Applier,
    mi: &MeshInstallation,
    progress: &mut Progress,
    keep: &mut KeepSet,
) -> Result<()> {
    let namespace = mi.spec.mesh.control_plane_namespace();
    let secret_name = osm::names::CA_BUNDLE_SECRET;
    let secret = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
    keep.keep(&secret, Some(namespace), secret_name);
    match observe::secret(ctx, namespace, secret_name).await? {
        Some(existing) => {
            let data = existing.data.clone().unwrap_or_default();
            if let Err(problem) = osm::ca::parse_ca_bundle(&data) {
                progress.fail(
                    Component::Mesh,
                    format!("Secret {namespace}/{secret_name} holds no usable root CA ({problem}); it is left as it is — delete it to have a new CA generated"),
                );
            }
        }
        None => {
            let ca = osm::ca::generate_root_ca().map_err(plan::PlanError::from)?;
            let desired = osm::ca::ca_bundle_secret(&mi.name_any(), namespace, &ca).map_err(plan::PlanError::from)?;
            match applier.apply(&desired).await {
                Ok(_) => progress.record(Component::Mesh, 1, &[]),
                Err(error) => progress.record(Component::Mesh, 0, &[error]),
            }
        }
    }
    Ok(())
}
