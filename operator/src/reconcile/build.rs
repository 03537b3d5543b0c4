//! Build: every object the installation wants, from the spec and what was observed. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use mesh_crds::{MeshInstallationSpec, MeshProvider, NamespaceSpec, TrafficMode};
use mesh_provisioner::desired::{Component, Desired};
use mesh_provisioner::topology::{self, AppInputs, CREATED_BY, ObservedNamespace};
use mesh_provisioner::{ingress, osm, translate};

/// Errors while building.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An object could not be rendered.
    #[error(transparent)]
    Desired(#[from] mesh_provisioner::desired::DesiredError),
    /// The SMI policies could not be rendered.
    #[error(transparent)]
    Smi(#[from] mesh_provisioner::topology::SmiBuildError),
    /// The OSM control plane could not be rendered.
    #[error(transparent)]
    Osm(#[from] osm::OsmBuildError),
    /// The ingress could not be rendered.
    #[error(transparent)]
    Ingress(#[from] ingress::IngressBuildError),
}

/// What the build needs from the cluster.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    /// Observed namespaces (existence and whether we created them).
    pub namespaces: BTreeMap<String, ObservedNamespace>,
    /// Image rewrites for imported images.
    pub image_overrides: BTreeMap<String, String>,
    /// The AKS Istio add-on's revision (spec'd or chosen), once the add-on is enabled.
    pub istio_revision: Option<String>,
    /// The ingress webhook's TLS material, reused from its Secret when present.
    pub webhook_tls: Option<ingress::certs::WebhookTls>,
    /// SMI objects already in the cluster, translated too with `traffic.translateExisting`.
    pub existing_smi: translate::TranslationInput,
    /// GatewayAPI mode: workloads of enrolled namespaces the installation does not manage
    /// (Deployments, StatefulSets, Jobs, bare Pods).
    pub foreign_workloads: translate::TranslationInput,
    /// Edge certificates for rules with `tls.generate`, by (namespace, Secret name).
    pub edge_certs: BTreeMap<(String, String), ingress::certs::EdgeCert>,
}

/// Everything desired, in apply order, plus notifications from lossy conversions.
#[derive(Debug, Default)]
pub struct Built {
    /// The objects.
    pub objects: Vec<Desired>,
    /// Findings to surface in status.
    pub notifications: Vec<mesh_crds::Notification>,
    /// Translation sources with an ERROR: their previous output is kept, not pruned.
    pub blocked_sources: std::collections::BTreeSet<String>,
}

/// The namespaces that get enrolled: the spec's, plus the ingress controller's (monitored, not injected) on OSM.
pub fn enrolled_namespaces(spec: &MeshInstallationSpec) -> Vec<NamespaceSpec> {
    let mut namespaces = spec.namespaces.clone();
    if spec.mesh.is_osm()
        && spec.traffic.mode == TrafficMode::Smi
        && let Some(ingress) = &spec.ingress
    {
        let name = ingress.nginx.namespace().to_string();
        if !namespaces.iter().any(|n| n.name == name) {
            namespaces.push(topology::ingress_namespace_spec(&name));
        }
    }
    namespaces
}

/// A namespace that is not enrolled (the control plane's), created if missing.
fn plain_namespace(
    installation: &str,
    name: &str,
    observed: &BTreeMap<String, ObservedNamespace>,
) -> Result<Desired, BuildError> {
    let seen = observed.get(name).cloned().unwrap_or_default();
    let annotations = (!seen.exists || seen.created_by_us)
        .then(|| BTreeMap::from([(CREATED_BY.to_string(), installation.to_string())]));
    let object = Namespace {
        metadata: ObjectMeta { name: Some(name.to_string()), annotations, ..Default::default() },
        ..Default::default()
    };
    Ok(Desired::new(Component::Mesh, installation, &object)?)
}

/// Builds the desired state.
pub fn build(installation: &str, spec: &MeshInstallationSpec, inputs: &BuildInputs) -> Result<Built, BuildError> {
    let mut built = Built::default();
    let mut effective = spec.clone();
    effective.namespaces = enrolled_namespaces(spec);
    if spec.mesh.provider == MeshProvider::AksIstioAddon {
        // Namespaces get istio.io/rev only once the add-on runs that revision.
        effective.mesh.istio = Some(mesh_crds::IstioSpec { revision: inputs.istio_revision.clone() });
    }

    if spec.mesh.provider == MeshProvider::SelfHosted {
        let namespace = spec.mesh.control_plane_namespace();
        built.objects.push(plain_namespace(installation, namespace, &inputs.namespaces)?);
        built.objects.extend(osm::osm_crds(installation)?);
        built.objects.extend(
            osm::control_plane(installation, &spec.mesh)?.into_iter().filter(|d| d.resource.kind != "Namespace"),
        );
    }
    if spec.mesh.is_osm() {
        let mut mesh_config = osm::mesh_config(installation, &spec.mesh)?;
        // HTTPS from ingress-nginx to the backends: the mesh issues the controller a client certificate.
        if let Some(ingress_spec) = &spec.ingress {
            let controller = ingress::ControllerRef::for_spec(ingress_spec);
            if let Some(gateway) = ingress::mesh_config_ingress_gateway(spec, &controller) {
                let value = serde_json::to_value(gateway).map_err(|source| {
                    BuildError::Desired(mesh_provisioner::desired::DesiredError::Serialize {
                        kind: "MeshConfig".into(),
                        name: mesh_config.name().to_string(),
                        source,
                    })
                })?;
                mesh_config.object.data["spec"]["certificate"]["ingressGateway"] = value;
            }
        }
        built.objects.push(mesh_config);
        built.objects.extend(osm::egress_policies(installation, &spec.mesh)?);
    }

    built.objects.extend(topology::namespaces(installation, &effective, &inputs.namespaces)?);

    let digests =
        effective.namespaces.iter().map(|ns| (ns.name.clone(), topology::enrolment_digest(&effective, ns))).collect();
    let app_inputs = AppInputs { image_overrides: inputs.image_overrides.clone(), enrolment_digests: digests };
    built.objects.extend(topology::apps(installation, spec, &app_inputs)?);

    if let Some(ingress_spec) = &spec.ingress {
        match spec.traffic.mode {
            TrafficMode::Smi => {
                let tls = match &inputs.webhook_tls {
                    Some(tls) => tls.clone(),
                    None => ingress::certs::WebhookTls::generate(
                        &ingress::admission_service_name(ingress_spec),
                        ingress_spec.nginx.namespace(),
                    )?,
                };
                built.objects.extend(ingress::nginx_controller(installation, ingress_spec, &tls)?);
                for ((namespace, secret), cert) in &inputs.edge_certs {
                    built.objects.push(ingress::edge_tls_secret(installation, namespace, secret, cert)?);
                }
                let controller = ingress::ControllerRef::for_spec(ingress_spec);
                let (objects, notes) = ingress::mesh_ingress(installation, spec, &controller)?;
                built.objects.extend(objects);
                built.notifications.extend(notes);
            }
            TrafficMode::GatewayApi => {
                for ((namespace, secret), cert) in &inputs.edge_certs {
                    built.objects.push(ingress::edge_tls_secret(installation, namespace, secret, cert)?);
                }
                let (objects, notes) = ingress::gateway_ingress(installation, spec)?;
                built.objects.extend(objects);
                built.notifications.extend(notes);
            }
        }
    }

    match spec.traffic.mode {
        TrafficMode::Smi => built.objects.extend(topology::smi_policies(installation, spec)?),
        TrafficMode::GatewayApi => {
            let translation = translate_traffic(installation, spec, &built.objects, inputs)?;
            built.notifications.extend(translation.notifications.iter().cloned());
            built.blocked_sources = translation.blocked_sources();
            // A source with an ERROR gets nothing written: its last good output stays (the
            // reconciler keeps it out of pruning), or it has none yet.
            let unblocked = |annotations: &Option<BTreeMap<String, String>>| {
                annotations
                    .as_ref()
                    .and_then(|a| a.get(translate::SOURCE_ANNOTATION))
                    .is_none_or(|source| !built.blocked_sources.contains(source))
            };
            for route in translation.http_routes.iter().filter(|r| unblocked(&r.metadata.annotations)) {
                built.objects.push(Desired::new(Component::Traffic, installation, route)?);
            }
            for policy in translation.authorization_policies.iter().filter(|p| unblocked(&p.metadata.annotations)) {
                built.objects.push(Desired::new(Component::Traffic, installation, policy)?);
            }
        }
    }
    Ok(built)
}

fn typed<K: serde::de::DeserializeOwned>(desired: &Desired) -> Result<K, BuildError> {
    serde_json::to_value(&desired.object).and_then(serde_json::from_value).map_err(|source| {
        BuildError::Desired(mesh_provisioner::desired::DesiredError::Serialize {
            kind: desired.resource.kind.clone(),
            name: desired.name().to_string(),
            source,
        })
    })
}

/// GatewayAPI mode: the spec's SMI policies, rendered as OSM would serve them (plus, with
/// `translateExisting`, the SMI objects found in enrolled namespaces), translated into
/// GAMMA HTTPRoutes and Istio AuthorizationPolicies against the apps' own Services and workloads.
fn translate_traffic(
    installation: &str,
    spec: &MeshInstallationSpec,
    rendered: &[Desired],
    inputs: &BuildInputs,
) -> Result<translate::Translation, BuildError> {
    let existing = &inputs.existing_smi;
    // Workloads the installation does not manage count too: policies select pods by labels, and
    // every enrolled namespace gets a deny-all baseline.
    let foreign = &inputs.foreign_workloads;
    let mut input = translate::TranslationInput {
        traffic_targets: existing.traffic_targets.clone(),
        http_route_groups: existing.http_route_groups.clone(),
        tcp_routes: existing.tcp_routes.clone(),
        traffic_splits: existing.traffic_splits.clone(),
        deployments: foreign.deployments.clone(),
        stateful_sets: foreign.stateful_sets.clone(),
        jobs: foreign.jobs.clone(),
        pods: foreign.pods.clone(),
        namespaces: spec.namespaces.iter().map(|n| n.name.clone()).collect(),
        ..Default::default()
    };
    for desired in topology::smi_policies(installation, spec)?
        .iter()
        .chain(rendered.iter().filter(|d| d.component == Component::Apps))
    {
        match desired.resource.kind.as_str() {
            "TrafficTarget" => input.traffic_targets.push(typed(desired)?),
            "HTTPRouteGroup" => input.http_route_groups.push(typed(desired)?),
            "TCPRoute" => input.tcp_routes.push(typed(desired)?),
            "TrafficSplit" => input.traffic_splits.push(typed(desired)?),
            "Service" => input.services.push(typed(desired)?),
            "Deployment" => input.deployments.push(typed(desired)?),
            "StatefulSet" => input.stateful_sets.push(typed(desired)?),
            _ => {}
        }
    }
    let options = translate::TranslateOptions {
        target: translate::Target::Istio,
        overrides: spec.traffic.translation.overrides.clone(),
        ..Default::default()
    };
    Ok(translate::translate_with(&input, &options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bookstore() -> mesh_crds::MeshInstallation {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore.yaml");
        mesh_crds::MeshInstallation::from_yaml(&std::fs::read_to_string(path).expect("sample")).expect("parse")
    }

    fn mesh_config(built: &Built) -> &Desired {
        built.objects.iter().find(|d| d.resource.kind == "MeshConfig").expect("a MeshConfig")
    }

    #[test]
    fn https_backends_get_an_ingress_gateway_certificate_in_the_mesh_config() {
        let mut mi = bookstore();
        let http = build("bookstore", &mi.spec, &BuildInputs::default()).expect("build");
        assert!(mesh_config(&http).object.data["spec"]["certificate"]["ingressGateway"].is_null());
        mi.spec.ingress.as_mut().expect("ingress").backend_protocol = mesh_crds::BackendProtocol::Https;
        let https = build("bookstore", &mi.spec, &BuildInputs::default()).expect("build");
        let gateway = &mesh_config(&https).object.data["spec"]["certificate"]["ingressGateway"];
        assert_eq!(gateway["secret"]["namespace"], "osm-system");
        assert!(
            gateway["subjectAltNames"][0]
                .as_str()
                .is_some_and(|san| san.ends_with(".osm-nginx-ingess-ns.cluster.local"))
        );
    }

    #[test]
    fn building_twice_gives_the_same_objects() {
        let mi = bookstore();
        let inputs = BuildInputs {
            webhook_tls: Some(
                ingress::certs::WebhookTls::generate("ingress-nginx-controller-admission", "osm-nginx-ingess-ns")
                    .expect("tls"),
            ),
            ..Default::default()
        };
        let first = build("bookstore", &mi.spec, &inputs).expect("build");
        let second = build("bookstore", &mi.spec, &inputs).expect("build");
        let render =
            |b: &Built| b.objects.iter().map(|d| serde_json::to_string(&d.object).expect("json")).collect::<Vec<_>>();
        assert_eq!(render(&first), render(&second));
    }

    #[test]
    fn gateway_api_mode_translates_the_spec_and_reports_what_it_cannot_express() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore-istio.yaml");
        let mi =
            mesh_crds::MeshInstallation::from_yaml(&std::fs::read_to_string(path).expect("sample")).expect("parse");
        let built = build("bookstore-istio", &mi.spec, &BuildInputs::default()).expect("build");
        let kinds: Vec<&str> = built
            .objects
            .iter()
            .filter(|d| d.component == Component::Traffic)
            .map(|d| d.resource.kind.as_str())
            .collect();
        assert!(kinds.contains(&"HTTPRoute"), "{kinds:?}");
        assert!(kinds.contains(&"AuthorizationPolicy"), "{kinds:?}");
        assert!(
            !kinds.iter().any(|k| k.starts_with("Traffic") || *k == "HTTPRouteGroup"),
            "no SMI objects in GatewayAPI mode: {kinds:?}"
        );
        // The article's regexes are narrowed by the sample's overrides: no ERROR, and bookbuyer
        // and bookthief may buy books.
        let errors: Vec<_> =
            built.notifications.iter().filter(|n| n.level == mesh_crds::NotificationLevel::Error).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let policy = built
            .objects
            .iter()
            .find(|d| d.resource.kind == "AuthorizationPolicy" && d.name() == "bookstore-bookstore")
            .expect("bookstore's policy");
        let text = serde_json::to_string(&policy.object.data).expect("json");
        assert!(
            text.contains("/buy-a-book/new") && text.contains("sa/bookthief") && text.contains("sa/bookbuyer"),
            "{text}"
        );
        assert!(built.objects.iter().any(|d| d.resource.kind == "AuthorizationPolicy" && d.name() == "deny-all"));
    }

    #[test]
    fn a_source_with_an_error_gets_nothing_written() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bookstore-istio.yaml");
        let mut mi =
            mesh_crds::MeshInstallation::from_yaml(&std::fs::read_to_string(path).expect("sample")).expect("parse");
        // Without its buy-a-book override the bookstore TrafficTarget has an ERROR, while its
        // books-bought match still translates: a policy is generated, and must not be written.
        mi.spec
            .traffic
            .translation
            .overrides
            .retain(|o| !(o.traffic_target == "bookstore" && o.match_name == "buy-a-book"));
        let built = build("bookstore-istio", &mi.spec, &BuildInputs::default()).expect("build");
        let translated =
            translate_traffic("bookstore-istio", &mi.spec, &built.objects, &BuildInputs::default()).expect("translate");
        assert!(
            translated.authorization_policies.iter().any(|p| p.metadata.name.as_deref() == Some("bookstore-bookstore"))
        );
        assert!(built.blocked_sources.contains("TrafficTarget/bookstore/bookstore"), "{:?}", built.blocked_sources);
        let sources: Vec<&str> = built
            .objects
            .iter()
            .filter(|d| d.component == Component::Traffic)
            .filter_map(|d| {
                d.object.metadata.annotations.as_ref()?.get(translate::SOURCE_ANNOTATION).map(String::as_str)
            })
            .collect();
        assert!(!sources.contains(&"TrafficTarget/bookstore/bookstore"), "{sources:?}");
        assert!(sources.contains(&"TrafficTarget/bookstore/bookstore-v2"), "other sources are unaffected: {sources:?}");
        assert!(sources.contains(&"Namespace/bookstore"), "the baseline is always written: {sources:?}");
    }
}
