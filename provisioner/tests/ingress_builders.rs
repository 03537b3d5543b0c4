//! The ingress builders: ingress-nginx controller, OSM Ingress/IngressBackend, certificates and
//! the GatewayAPI (Istio) variant, checked field by field on the samples.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_api::gateways::Gateway;
use gateway_api::httproutes::{
    HttpRoute, HttpRouteRulesFiltersType, HttpRouteRulesFiltersUrlRewritePathType, HttpRouteRulesMatchesPathType,
};
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use mesh_crds::istio::AuthorizationPolicy;
use mesh_crds::osm::IngressBackend;
use mesh_crds::{
    AppService, BackendProtocol, IngressBackendRef, IngressRule, IngressServiceType, IngressTls, MeshInstallation,
    MeshInstallationSpec, NotificationLevel, ServicePortSpec,
};
use mesh_provisioner::desired::Desired;
use mesh_provisioner::ingress::certs::{self, EdgeCert, WebhookTls};
use mesh_provisioner::ingress::{
    self, ControllerRef, GatewayRef, IngressBuildError, edge_certificate_requests, edge_tls_secret, gateway_ingress,
    mesh_config_ingress_gateway, mesh_ingress, nginx_controller,
};
use serde::de::DeserializeOwned;

fn sample(file: &str) -> MeshInstallation {
    let path = format!("{}/../samples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn bookstore() -> MeshInstallationSpec {
    sample("bookstore.yaml").spec
}

fn bookstore_istio() -> MeshInstallationSpec {
    sample("bookstore-istio.yaml").spec
}

fn typed<K: DeserializeOwned>(desired: &Desired) -> K {
    serde_json::from_value(serde_json::to_value(&desired.object).unwrap()).unwrap()
}

fn find<'a>(objects: &'a [Desired], kind: &str, name: &str) -> &'a Desired {
    objects.iter().find(|d| d.resource.kind == kind && d.name() == name).unwrap_or_else(|| {
        panic!("no {kind} {name} in {:?}", objects.iter().map(Desired::reference).collect::<Vec<_>>())
    })
}

fn all_of<K: DeserializeOwned>(objects: &[Desired], kind: &str) -> Vec<K> {
    objects.iter().filter(|d| d.resource.kind == kind).map(typed).collect()
}

fn as_json(objects: &[Desired]) -> Vec<serde_json::Value> {
    objects.iter().map(|d| serde_json::to_value(&d.object).unwrap()).collect()
}

fn controller_objects(spec: &MeshInstallationSpec) -> (Vec<Desired>, WebhookTls) {
    let ingress_spec = spec.ingress.as_ref().unwrap();
    let tls =
        WebhookTls::generate(&ingress::admission_service_name(ingress_spec), ingress_spec.nginx.namespace()).unwrap();
    (nginx_controller("bookstore", ingress_spec, &tls).unwrap(), tls)
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

const NOW: u64 = 1_780_000_000; // 2026-05-28

#[test]
fn controller_deployment_runs_the_pinned_release_like_upstream() {
    let spec = bookstore();
    let (objects, _) = controller_objects(&spec);
    let deployment: Deployment = typed(find(&objects, "Deployment", "ingress-nginx-controller"));
    assert_eq!(deployment.metadata.namespace.as_deref(), Some("osm-nginx-ingess-ns"));
    let labels = deployment.metadata.labels.clone().unwrap();
    assert_eq!(labels["meshoperator.dev/installation"], "bookstore");
    assert_eq!(labels["meshoperator.dev/component"], "ingress");

    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("ingress-nginx"));
    assert_eq!(
        pod.node_selector.unwrap(),
        BTreeMap::from([
            ("agentpool".to_string(), "agentpool".to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
        ])
    );
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("registry.k8s.io/ingress-nginx/controller:v1.15.1"));
    assert_eq!(ingress::INGRESS_NGINX_VERSION, "v1.15.1");
    assert_eq!(
        container.args.clone().unwrap(),
        vec![
            "/nginx-ingress-controller",
            "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--election-id=ingress-nginx-leader",
            "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx",
            "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--validating-webhook=:8443",
            "--validating-webhook-certificate=/usr/local/certificates/cert",
            "--validating-webhook-key=/usr/local/certificates/key",
        ]
    );
    let env: Vec<(String, String)> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value_from.unwrap().field_ref.unwrap().field_path))
        .collect();
    assert_eq!(
        env,
        vec![
            ("POD_NAME".to_string(), "metadata.name".to_string()),
            ("POD_NAMESPACE".to_string(), "metadata.namespace".to_string()),
        ]
    );
    let ports: Vec<(String, i32)> =
        container.ports.clone().unwrap().into_iter().map(|p| (p.name.unwrap(), p.container_port)).collect();
    assert_eq!(
        ports,
        vec![
            ("http".to_string(), 80),
            ("https".to_string(), 443),
            ("webhook".to_string(), 8443),
            ("metrics".to_string(), 10254)
        ]
    );
    for probe in [container.liveness_probe.clone().unwrap(), container.readiness_probe.clone().unwrap()] {
        let get = probe.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(10254));
    }
    let requests = container.resources.clone().unwrap().requests.unwrap();
    assert_eq!(requests["cpu"].0, "100m");
    assert_eq!(requests["memory"].0, "90Mi");

    let security = container.security_context.clone().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(101));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let capabilities = security.capabilities.unwrap();
    assert_eq!(capabilities.drop.unwrap(), vec!["ALL"]);
    assert_eq!(capabilities.add.unwrap(), vec!["NET_BIND_SERVICE"]);
    assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");

    let mount = &container.volume_mounts.clone().unwrap()[0];
    assert_eq!(mount.mount_path, "/usr/local/certificates/");
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.secret.clone().unwrap().secret_name.as_deref(), Some("ingress-nginx-admission"));
}

#[test]
fn controller_service_type_follows_the_spec() {
    let mut spec = bookstore();
    let (objects, _) = controller_objects(&spec);
    let service: Service = typed(find(&objects, "Service", "ingress-nginx-controller"));
    assert_eq!(service.spec.as_ref().unwrap().type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(service.metadata.annotations.unwrap()[ingress::AZURE_HEALTH_PROBE_ANNOTATION], "/healthz");
    let ports: Vec<(i32, String)> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.port, serde_json::to_string(&p.target_port.unwrap()).unwrap()))
        .collect();
    assert_eq!(ports, vec![(80, "\"http\"".to_string()), (443, "\"https\"".to_string())]);

    spec.ingress.as_mut().unwrap().nginx.service_type = IngressServiceType::NodePort;
    let (objects, _) = controller_objects(&spec);
    let service: Service = typed(find(&objects, "Service", "ingress-nginx-controller"));
    assert_eq!(service.spec.unwrap().type_.as_deref(), Some("NodePort"));

    let admission: Service = typed(find(&objects, "Service", "ingress-nginx-controller-admission"));
    let port = &admission.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 443);
    assert_eq!(serde_json::to_string(port.target_port.as_ref().unwrap()).unwrap(), "\"webhook\"");
}

#[test]
fn ingress_class_and_rbac_without_wildcards() {
    let (objects, _) = controller_objects(&bookstore());
    let class: IngressClass = typed(find(&objects, "IngressClass", "nginx"));
    assert_eq!(class.spec.unwrap().controller.as_deref(), Some("k8s.io/ingress-nginx"));

    let cluster_role: ClusterRole = typed(find(&objects, "ClusterRole", "ingress-nginx"));
    let role: Role = typed(find(&objects, "Role", "ingress-nginx"));
    let rules: Vec<_> = cluster_role.rules.unwrap().into_iter().chain(role.rules.clone().unwrap()).collect();
    for rule in &rules {
        for value in rule.api_groups.iter().flatten().chain(rule.resources.iter().flatten()).chain(rule.verbs.iter()) {
            assert_ne!(value, "*", "wildcard in {rule:?}");
        }
    }
    let grants = |resource: &str, verb: &str| {
        rules.iter().any(|r| r.resources.iter().flatten().any(|x| x == resource) && r.verbs.iter().any(|v| v == verb))
    };
    for resource in [
        "ingresses",
        "ingressclasses",
        "endpointslices",
        "services",
        "secrets",
        "configmaps",
        "pods",
        "nodes",
        "namespaces",
    ] {
        assert!(grants(resource, "list") || grants(resource, "get"), "{resource} not readable");
    }
    assert!(grants("ingresses/status", "update"));
    assert!(grants("events", "create") && grants("events", "patch"));
    let lease = role.rules.unwrap().into_iter().find(|r| r.resource_names.is_some()).unwrap();
    assert_eq!(lease.resources.unwrap(), vec!["leases"]);
    assert_eq!(lease.resource_names.unwrap(), vec!["ingress-nginx-leader"]);
    assert!(
        objects.iter().filter(|d| d.resource.kind == "ClusterRoleBinding" || d.resource.kind == "RoleBinding").count()
            == 2
    );
    let config: k8s_openapi::api::core::v1::ConfigMap = typed(find(&objects, "ConfigMap", "ingress-nginx-controller"));
    assert_eq!(config.data.unwrap()["allow-snippet-annotations"], "false");
}

#[test]
fn webhook_ca_bundle_verifies_the_serving_certificate() {
    let (objects, tls) = controller_objects(&bookstore());
    let config: ValidatingWebhookConfiguration =
        typed(find(&objects, "ValidatingWebhookConfiguration", "ingress-nginx-admission"));
    let webhook = &config.webhooks.unwrap()[0];
    assert_eq!(webhook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(webhook.side_effects, "None");
    let rule = &webhook.rules.as_ref().unwrap()[0];
    assert_eq!(rule.operations.clone().unwrap(), vec!["CREATE", "UPDATE"]);
    assert_eq!(rule.resources.clone().unwrap(), vec!["ingresses"]);
    let service = webhook.client_config.service.clone().unwrap();
    assert_eq!(service.name, "ingress-nginx-controller-admission");
    assert_eq!(service.namespace, "osm-nginx-ingess-ns");
    assert_eq!(service.path.as_deref(), Some("/networking/v1/ingresses"));

    let secret: Secret = typed(find(&objects, "Secret", "ingress-nginx-admission"));
    let data = secret.data.unwrap();
    let serving_pem = data["cert"].0.clone();
    let ca_pem = webhook.client_config.ca_bundle.clone().unwrap().0;
    assert_eq!(ca_pem, tls.ca_pem.as_bytes());

    let (_, ca) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
    let ca = ca.parse_x509().unwrap();
    let (_, serving) = x509_parser::pem::parse_x509_pem(&serving_pem).unwrap();
    let serving = serving.parse_x509().unwrap();
    serving.verify_signature(Some(ca.public_key())).unwrap();
    let names = certs::dns_names(std::str::from_utf8(&serving_pem).unwrap()).unwrap();
    assert_eq!(
        names,
        vec![
            "ingress-nginx-controller-admission.osm-nginx-ingess-ns.svc",
            "ingress-nginx-controller-admission.osm-nginx-ingess-ns.svc.cluster.local",
        ]
    );

    // A certificate from another CA does not verify.
    let other = WebhookTls::generate("ingress-nginx-controller-admission", "osm-nginx-ingess-ns").unwrap();
    assert!(certs::verify_signed_by(&other.cert_pem, &tls.ca_pem).is_err());
}

#[test]
fn webhook_tls_is_reused_until_it_nears_expiry() {
    let now = at(NOW);
    let fresh = WebhookTls::generate_at("svc", "ns", now).unwrap();
    let data = fresh.secret_data();
    assert_eq!(WebhookTls::from_secret_data(&data).unwrap(), fresh);
    assert_eq!(WebhookTls::reuse_or_generate(Some(&data), "svc", "ns", now).unwrap(), fresh);
    // 340 days later it expires within 30 days: replaced.
    let later = now + Duration::from_secs(340 * 24 * 3600);
    assert!(!fresh.needs_renewal_at(now));
    assert!(fresh.needs_renewal_at(later));
    assert_ne!(WebhookTls::reuse_or_generate(Some(&data), "svc", "ns", later).unwrap(), fresh);
    // Another Service name: replaced.
    assert_ne!(WebhookTls::reuse_or_generate(Some(&data), "other", "ns", now).unwrap(), fresh);
    // Tampered data: refused.
    let mut broken = data.clone();
    broken.insert("ca".to_string(), WebhookTls::generate_at("svc", "ns", now).unwrap().secret_data()["ca"].clone());
    assert!(WebhookTls::from_secret_data(&broken).is_err());
    // A certificate for another Service is refused by the builder.
    let spec = bookstore();
    let err = nginx_controller("bookstore", spec.ingress.as_ref().unwrap(), &fresh).unwrap_err();
    assert!(matches!(err, IngressBuildError::InvalidCertificate { .. }), "{err}");
}

#[test]
fn mesh_ingress_renders_the_articles_ingress_and_ingress_backend() {
    let spec = bookstore();
    let controller = ControllerRef::for_spec(spec.ingress.as_ref().unwrap());
    let (objects, notes) = mesh_ingress("bookstore", &spec, &controller).unwrap();

    let ingress: Ingress = typed(find(&objects, "Ingress", "osm-ingress"));
    assert_eq!(ingress.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(ingress.metadata.annotations.clone().unwrap()["nginx.ingress.kubernetes.io/rewrite-target"], "/");
    let ingress_spec = ingress.spec.unwrap();
    assert_eq!(ingress_spec.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &ingress_spec.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("store.example.com"));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/store"));
    assert_eq!(path.path_type, "Prefix");
    let backend = path.backend.service.clone().unwrap();
    assert_eq!(backend.name, "bookstore");
    assert_eq!(backend.port.unwrap().number, Some(14001));
    let tls = &ingress_spec.tls.unwrap()[0];
    assert_eq!(tls.secret_name.as_deref(), Some("osm-tls-secret"));
    assert_eq!(tls.hosts.clone().unwrap(), vec!["store.example.com"]);

    let backend: IngressBackend = typed(find(&objects, "IngressBackend", "bookstore-ingress-backend"));
    assert_eq!(backend.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(backend.spec.backends.len(), 1);
    assert_eq!(backend.spec.backends[0].name, "bookstore");
    assert_eq!(backend.spec.backends[0].port.number, 14001);
    assert_eq!(backend.spec.backends[0].port.protocol, "http");
    assert_eq!(backend.spec.sources.len(), 1);
    assert_eq!(backend.spec.sources[0].kind, "Service");
    assert_eq!(backend.spec.sources[0].name, "ingress-nginx-controller");
    assert_eq!(backend.spec.sources[0].namespace.as_deref(), Some("osm-nginx-ingess-ns"));

    assert!(
        notes
            .iter()
            .any(|n| n.level == NotificationLevel::Info && n.message.contains("rewrites the whole request path"))
    );
    assert!(mesh_config_ingress_gateway(&spec, &controller).is_none());

    // The article's names: Helm release osm-nginx-ingess → Service osm-nginx-ingess-ingress-nginx-controller.
    let article = ControllerRef::new("osm-nginx-ingess-ingress-nginx", "osm-nginx-ingess-ns");
    assert_eq!(article.controller_service(), "osm-nginx-ingess-ingress-nginx-controller");
    let (objects, _) = mesh_ingress("bookstore", &spec, &article).unwrap();
    let backend: IngressBackend = typed(find(&objects, "IngressBackend", "bookstore-ingress-backend"));
    assert_eq!(backend.spec.sources[0].name, "osm-nginx-ingess-ingress-nginx-controller");
}

/// A spec whose backend Service listens on 80 and forwards to container port 8080.
fn spec_with_target_port() -> MeshInstallationSpec {
    let mut spec = bookstore();
    let app = spec.apps.iter_mut().find(|a| a.name == "bookstore").unwrap();
    app.service = Some(AppService {
        ports: vec![ServicePortSpec {
            name: Some("http".to_string()),
            port: 80,
            target_port: Some(8080),
            app_protocol: None,
        }],
        version_services: app.service.as_ref().unwrap().version_services.clone(),
        ..Default::default()
    });
    let ingress = spec.ingress.as_mut().unwrap();
    ingress.rules = vec![IngressRule {
        name: None,
        host: "store.example.com".to_string(),
        path: "/".to_string(),
        rewrite_target: None,
        backend: IngressBackendRef { service: "bookstore".to_string(), namespace: "bookstore".to_string(), port: 80 },
        tls: None,
    }];
    spec
}

#[test]
fn ingress_backend_port_is_the_services_target_port() {
    let spec = spec_with_target_port();
    let controller = ControllerRef::for_spec(spec.ingress.as_ref().unwrap());
    let (objects, notes) = mesh_ingress("bookstore", &spec, &controller).unwrap();
    assert!(notes.is_empty());
    let ingress: Ingress = typed(find(&objects, "Ingress", "bookstore-ingress"));
    let path = &ingress.spec.unwrap().rules.unwrap()[0].http.clone().unwrap().paths[0];
    assert_eq!(path.backend.service.clone().unwrap().port.unwrap().number, Some(80));
    assert!(ingress.metadata.annotations.is_none());
    let backend: IngressBackend = typed(find(&objects, "IngressBackend", "bookstore-ingress-backend"));
    assert_eq!(backend.spec.backends[0].port.number, 8080);
}

#[test]
fn https_backends_use_the_mesh_client_certificate() {
    let mut spec = spec_with_target_port();
    spec.ingress.as_mut().unwrap().backend_protocol = BackendProtocol::Https;
    let controller = ControllerRef::for_spec(spec.ingress.as_ref().unwrap());
    let (objects, _) = mesh_ingress("bookstore", &spec, &controller).unwrap();
    let ingress: Ingress = typed(find(&objects, "Ingress", "bookstore-ingress"));
    let annotations = ingress.metadata.annotations.unwrap();
    assert_eq!(annotations["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-ssl-secret"], "osm-system/osm-nginx-client-cert");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-ssl-verify"], "on");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-ssl-name"], "bookstore.bookstore.cluster.local");
    assert!(!annotations.contains_key("nginx.ingress.kubernetes.io/configuration-snippet"));

    let backend: IngressBackend = typed(find(&objects, "IngressBackend", "bookstore-ingress-backend"));
    assert_eq!(backend.spec.backends[0].port.protocol, "https");
    assert_eq!(backend.spec.backends[0].tls.as_ref().unwrap().skip_client_cert_validation, Some(false));
    let principal = backend.spec.sources.iter().find(|s| s.kind == "AuthenticatedPrincipal").unwrap();
    assert_eq!(principal.name, "ingress-nginx.osm-nginx-ingess-ns.cluster.local");

    let block = mesh_config_ingress_gateway(&spec, &controller).unwrap();
    assert_eq!(block.subject_alt_names, vec!["ingress-nginx.osm-nginx-ingess-ns.cluster.local"]);
    assert_eq!(block.validity_duration, "24h");
    assert_eq!(block.secret.name, "osm-nginx-client-cert");
    assert_eq!(block.secret.namespace, "osm-system");
}

#[test]
fn errors_name_the_rule() {
    let mut spec = bookstore();
    spec.ingress.as_mut().unwrap().rules[0].backend.service = "bookstore-x".to_string();
    let controller = ControllerRef::for_spec(spec.ingress.as_ref().unwrap());
    let err = mesh_ingress("bookstore", &spec, &controller).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.ingress.rules[0].backend: Service bookstore/bookstore-x is not declared by any app in spec.apps"
    );

    let mut spec = bookstore();
    spec.ingress.as_mut().unwrap().rules[0].backend.port = 8080;
    let err = mesh_ingress("bookstore", &spec, &controller).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.ingress.rules[0].backend.port: Service bookstore/bookstore has no port 8080 (its ports: 14001)"
    );

    let mut spec = bookstore();
    spec.ingress.as_mut().unwrap().rules[0].path = "/store(/|$)(.*)".to_string();
    let err = mesh_ingress("bookstore", &spec, &controller).unwrap_err();
    assert!(err.to_string().starts_with("spec.ingress.rules[0].path: "), "{err}");

    let mut spec = bookstore_istio();
    spec.ingress.as_mut().unwrap().rules[0].rewrite_target = Some("/$2".to_string());
    let err = gateway_ingress("bookstore-istio", &spec).unwrap_err();
    assert!(err.to_string().starts_with("spec.ingress.rules[0].rewriteTarget: "), "{err}");
}

#[test]
fn edge_certificate_names_the_host_and_expires_when_asked() {
    let now = at(NOW);
    let validity = Duration::from_secs(90 * 24 * 3600);
    let cert = certs::edge_certificate_at("store.example.com", now, validity).unwrap();
    assert_eq!(certs::dns_names(&cert.cert_pem).unwrap(), vec!["store.example.com"]);
    assert_eq!(certs::not_after(&cert.cert_pem).unwrap(), now + validity);
    assert_eq!(cert.not_after, now + validity);
    assert_eq!(cert.not_after_rfc3339(), "2026-08-26T20:26:40Z");
    assert_eq!(cert.hosts, vec!["store.example.com"]);
    assert!(cert.covers("store.example.com") && !cert.covers("shop.example.com"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes()).unwrap();
    let x509 = pem.parse_x509().unwrap();
    x509.verify_signature(None).unwrap(); // self-signed

    assert!(!certs::needs_renewal(&cert.cert_pem, now, Duration::from_secs(30 * 24 * 3600)).unwrap());
    assert!(
        certs::needs_renewal(
            &cert.cert_pem,
            now + Duration::from_secs(61 * 24 * 3600),
            Duration::from_secs(30 * 24 * 3600)
        )
        .unwrap()
    );
    let expired =
        certs::edge_certificate_at("store.example.com", at(NOW - 10 * 24 * 3600), Duration::from_secs(24 * 3600))
            .unwrap();
    assert!(certs::needs_renewal(&expired.cert_pem, now, Duration::ZERO).unwrap());

    let secret: Secret = typed(&edge_tls_secret("bookstore", "bookstore", "osm-tls-secret", &cert).unwrap());
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    assert_eq!(data["tls.crt"].0, cert.cert_pem.as_bytes());
    assert_eq!(data["tls.key"].0, cert.key_pem.as_bytes());
    assert_eq!(EdgeCert::from_secret_data(&data).unwrap(), cert);
    let reused =
        EdgeCert::reuse_or_generate(Some(&data), "store.example.com", now, validity, certs::EDGE_RENEW_BEFORE).unwrap();
    assert_eq!(reused, cert);
    let renewed =
        EdgeCert::reuse_or_generate(Some(&data), "shop.example.com", now, validity, certs::EDGE_RENEW_BEFORE).unwrap();
    assert_eq!(certs::dns_names(&renewed.cert_pem).unwrap(), vec!["shop.example.com"]);

    let requests = edge_certificate_requests(&bookstore()).unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].namespace.as_str(), requests[0].secret_name.as_str(), requests[0].host.as_str()),
        ("bookstore", "osm-tls-secret", "store.example.com")
    );
}

#[test]
fn gateway_mode_keeps_host_path_and_rewrite() {
    let spec = bookstore_istio();
    let (objects, notes) = gateway_ingress("bookstore-istio", &spec).unwrap();
    let gateway_ref = GatewayRef::for_installation("bookstore-istio", spec.ingress.as_ref().unwrap());
    assert_eq!(gateway_ref.name, "bookstore-istio-gateway");

    let gateway: Gateway = typed(find(&objects, "Gateway", "bookstore-istio-gateway"));
    assert_eq!(gateway.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(gateway.metadata.labels.clone().unwrap()["istio.io/rev"], "asm-1-25");
    assert_eq!(gateway.spec.gateway_class_name, "istio");
    let listeners: Vec<(String, i32, String, Option<String>)> = gateway
        .spec
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.port, l.protocol.clone(), l.hostname.clone()))
        .collect();
    assert_eq!(
        listeners,
        vec![
            ("http-store-example-com".to_string(), 80, "HTTP".to_string(), Some("store.example.com".to_string())),
            ("https-store-example-com".to_string(), 443, "HTTPS".to_string(), Some("store.example.com".to_string())),
        ]
    );
    let cert_ref = &gateway.spec.listeners[1].tls.as_ref().unwrap().certificate_refs.as_ref().unwrap()[0];
    assert_eq!(cert_ref.name, "osm-tls-secret");
    assert_eq!(cert_ref.namespace, None);

    let route: HttpRoute = typed(find(&objects, "HTTPRoute", "osm-ingress"));
    assert_eq!(route.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(route.spec.hostnames.clone().unwrap(), vec!["store.example.com"]);
    let parent = &route.spec.parent_refs.clone().unwrap()[0];
    assert_eq!(parent.name, "bookstore-istio-gateway");
    assert_eq!(parent.section_name.as_deref(), Some("https-store-example-com"));
    let rule = &route.spec.rules.clone().unwrap()[0];
    let path = rule.matches.clone().unwrap()[0].path.clone().unwrap();
    assert_eq!(path.r#type, Some(HttpRouteRulesMatchesPathType::PathPrefix));
    assert_eq!(path.value.as_deref(), Some("/store"));
    let filter = &rule.filters.clone().unwrap()[0];
    assert_eq!(filter.r#type, HttpRouteRulesFiltersType::UrlRewrite);
    let rewrite = filter.url_rewrite.clone().unwrap().path.unwrap();
    assert_eq!(rewrite.r#type, HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath);
    assert_eq!(rewrite.replace_full_path.as_deref(), Some("/"));
    let backend = &rule.backend_refs.clone().unwrap()[0];
    assert_eq!((backend.name.as_str(), backend.port, backend.namespace.as_deref()), ("bookstore", Some(14001), None));

    let redirect: HttpRoute = typed(find(&objects, "HTTPRoute", "osm-ingress-https-redirect"));
    assert_eq!(redirect.spec.parent_refs.unwrap()[0].section_name.as_deref(), Some("http-store-example-com"));
    let redirect_rule = &redirect.spec.rules.unwrap()[0];
    assert!(redirect_rule.backend_refs.is_none());
    assert_eq!(redirect_rule.filters.clone().unwrap()[0].request_redirect.clone().unwrap().status_code, Some(308));

    let policy: AuthorizationPolicy = typed(find(&objects, "AuthorizationPolicy", "bookstore-ingress-gateway"));
    assert_eq!(policy.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!(
        policy.spec.selector.unwrap().match_labels,
        BTreeMap::from([("app".to_string(), "bookstore".to_string())])
    );
    let rule = &policy.spec.rules[0];
    assert_eq!(rule.from[0].source.principals, vec!["cluster.local/ns/bookstore/sa/bookstore-istio-gateway-istio"]);
    assert_eq!(rule.to[0].operation.ports, vec!["14001"]);

    assert!(all_of::<ReferenceGrant>(&objects, "ReferenceGrant").is_empty());
    assert!(notes.iter().any(|n| n.level == NotificationLevel::Info && n.message.contains("ReplaceFullPath")));
    assert!(notes.iter().all(|n| n.level != NotificationLevel::Warning), "{notes:?}");
}

#[test]
fn gateway_in_another_namespace_gets_reference_grants() {
    let mut spec = bookstore_istio();
    spec.ingress.as_mut().unwrap().gateway.namespace = Some("edge".to_string());
    let (objects, notes) = gateway_ingress("bookstore-istio", &spec).unwrap();
    let gateway: Gateway = typed(find(&objects, "Gateway", "bookstore-istio-gateway"));
    let cert_ref = &gateway.spec.listeners[1].tls.as_ref().unwrap().certificate_refs.as_ref().unwrap()[0];
    assert_eq!(cert_ref.namespace.as_deref(), Some("bookstore"));
    let route: HttpRoute = typed(find(&objects, "HTTPRoute", "osm-ingress"));
    assert_eq!(route.metadata.namespace.as_deref(), Some("edge"));
    assert_eq!(route.spec.rules.unwrap()[0].backend_refs.clone().unwrap()[0].namespace.as_deref(), Some("bookstore"));

    let backends: ReferenceGrant = typed(find(&objects, "ReferenceGrant", "bookstore-istio-gateway-backends"));
    assert_eq!(backends.metadata.namespace.as_deref(), Some("bookstore"));
    assert_eq!((backends.spec.from[0].kind.as_str(), backends.spec.from[0].namespace.as_str()), ("HTTPRoute", "edge"));
    assert_eq!(
        (backends.spec.to[0].kind.as_str(), backends.spec.to[0].name.as_deref()),
        ("Service", Some("bookstore"))
    );
    let secrets: ReferenceGrant = typed(find(&objects, "ReferenceGrant", "bookstore-istio-gateway-secrets"));
    assert_eq!((secrets.spec.from[0].kind.as_str(), secrets.spec.from[0].namespace.as_str()), ("Gateway", "edge"));
    assert_eq!(
        (secrets.spec.to[0].kind.as_str(), secrets.spec.to[0].name.as_deref()),
        ("Secret", Some("osm-tls-secret"))
    );

    let policy: AuthorizationPolicy = typed(find(&objects, "AuthorizationPolicy", "bookstore-ingress-gateway"));
    assert_eq!(
        policy.spec.rules[0].from[0].source.principals,
        vec!["cluster.local/ns/edge/sa/bookstore-istio-gateway-istio"]
    );
    // "edge" is not in spec.namespaces.
    assert!(notes.iter().any(|n| n.level == NotificationLevel::Warning && n.message.contains("edge")));
}

#[test]
fn rendering_twice_gives_identical_objects() {
    let spec = bookstore();
    let ingress_spec = spec.ingress.as_ref().unwrap();
    let tls =
        WebhookTls::generate(&ingress::admission_service_name(ingress_spec), ingress_spec.nginx.namespace()).unwrap();
    let reused = WebhookTls::from_secret_data(&tls.secret_data()).unwrap();
    assert_eq!(
        as_json(&nginx_controller("bookstore", ingress_spec, &tls).unwrap()),
        as_json(&nginx_controller("bookstore", ingress_spec, &reused).unwrap())
    );
    let controller = ControllerRef::for_spec(ingress_spec);
    let (first, first_notes) = mesh_ingress("bookstore", &spec, &controller).unwrap();
    let (second, second_notes) = mesh_ingress("bookstore", &spec, &controller).unwrap();
    assert_eq!(as_json(&first), as_json(&second));
    assert_eq!(first_notes, second_notes);

    let spec = bookstore_istio();
    let (first, first_notes) = gateway_ingress("bookstore-istio", &spec).unwrap();
    let (second, second_notes) = gateway_ingress("bookstore-istio", &spec).unwrap();
    assert_eq!(as_json(&first), as_json(&second));
    assert_eq!(first_notes, second_notes);
}

#[test]
fn modes_refuse_the_wrong_mesh_and_conflicting_tls() {
    // The OSM sample cannot use the Istio ingress, nor the reverse.
    assert!(gateway_ingress("bookstore", &bookstore()).is_err());
    let istio = bookstore_istio();
    let controller = ControllerRef::for_spec(istio.ingress.as_ref().unwrap());
    assert!(mesh_ingress("bookstore-istio", &istio, &controller).is_err());

    // Two rules for one host with different Secrets cannot share a Gateway listener.
    let mut spec = bookstore_istio();
    let mut second = spec.ingress.as_ref().unwrap().rules[0].clone();
    second.name = Some("second".to_string());
    second.path = "/other".to_string();
    second.tls = Some(IngressTls { secret_name: "other-secret".to_string(), generate: false });
    spec.ingress.as_mut().unwrap().rules.push(second);
    let err = gateway_ingress("bookstore-istio", &spec).unwrap_err();
    assert!(err.to_string().starts_with("spec.ingress.rules[1].tls.secretName: "), "{err}");

    // Two rules rendering the same Ingress name.
    let mut spec = bookstore();
    let duplicate = spec.ingress.as_ref().unwrap().rules[0].clone();
    spec.ingress.as_mut().unwrap().rules.push(duplicate);
    let controller = ControllerRef::for_spec(spec.ingress.as_ref().unwrap());
    let err = mesh_ingress("bookstore", &spec, &controller).unwrap_err();
    assert!(err.to_string().starts_with("spec.ingress.rules[1].name: "), "{err}");
}
