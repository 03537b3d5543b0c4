//! GatewayAPI mode (the Istio add-on): a Gateway instead of ingress-nginx, one HTTPRoute per rule,
//! ReferenceGrants for cross-namespace references, and Istio AuthorizationPolicies admitting the
//! Gateway's identity into the backends (the IngressBackend equivalent).

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::gateways::{
    Gateway, GatewayListeners, GatewayListenersTls, GatewayListenersTlsCertificateRefs, GatewayListenersTlsMode,
    GatewaySpec,
};
use gateway_api::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestRedirect, HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewrite, HttpRouteRulesFiltersUrlRewritePath, HttpRouteRulesFiltersUrlRewritePathType,
    HttpRouteRulesMatches, HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType, HttpRouteSpec,
};
use gateway_api::referencegrants::{ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo};
use kube::api::ObjectMeta;
use mesh_crds::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, AuthorizationRule, Operation, RuleFrom, RuleTo, Source,
    WorkloadSelector,
};
use mesh_crds::{AppSpec, IngressRule, MeshInstallationSpec, MeshProvider, Notification, NotificationLevel};

use super::{INSTALLATION_KIND, IngressBuildError, backend_target_port, rule_field, rule_object_name, validate_rules};
use crate::desired::{Component, Desired};
use crate::labels;

/// GatewayClass used when `spec.ingress.gateway.className` is unset.
pub const DEFAULT_GATEWAY_CLASS: &str = "istio";
/// API group of Gateway API.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// Status code of the HTTP → HTTPS redirect for TLS rules: ingress-nginx's `http-redirect-code` default.
pub const HTTPS_REDIRECT_STATUS: i64 = 308;
/// Istio's trust domain on AKS (the default, `cluster.local`).
pub const ISTIO_TRUST_DOMAIN: &str = "cluster.local";

/// The Gateway of an installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRef {
    /// Gateway name: `<installation>-gateway`.
    pub name: String,
    /// Its namespace: `spec.ingress.gateway.namespace`, else the ingress namespace (`spec.ingress.nginx.namespace()`).
    pub namespace: String,
    /// GatewayClass: `spec.ingress.gateway.className`, else `istio`.
    pub class: String,
}

impl GatewayRef {
    /// The Gateway `installation` renders for `spec`.
    pub fn for_installation(installation: &str, ingress: &mesh_crds::IngressSpec) -> Self {
        GatewayRef {
            name: format!("{installation}-gateway"),
            namespace: ingress.gateway.namespace.clone().unwrap_or_else(|| ingress.nginx.namespace().to_string()),
            class: ingress.gateway.class_name.clone().unwrap_or_else(|| DEFAULT_GATEWAY_CLASS.to_string()),
        }
    }

    /// Name Istio's automated deployment gives the Deployment, Service and ServiceAccount it
    /// creates for the Gateway: `<gateway name>-<gateway class>`. The Service's address is also in
    /// the Gateway's `status.addresses`.
    pub fn deployment_name(&self) -> String {
        format!("{}-{}", self.name, self.class)
    }

    /// The Gateway pods' identity: `cluster.local/ns/<gateway ns>/sa/<gateway>-<class>` (the
    /// ServiceAccount Istio's automated deployment creates; trust domain `cluster.local`).
    pub fn principal(&self) -> String {
        format!("{ISTIO_TRUST_DOMAIN}/ns/{}/sa/{}", self.namespace, self.deployment_name())
    }

    /// Name of the ReferenceGrant letting the Gateway read TLS Secrets in another namespace: `<gateway>-secrets`.
    pub fn secrets_grant(&self) -> String {
        format!("{}-secrets", self.name)
    }

    /// Name of the ReferenceGrant letting its HTTPRoutes reach Services in another namespace: `<gateway>-backends`.
    pub fn backends_grant(&self) -> String {
        format!("{}-backends", self.name)
    }
}

/// Name of the AuthorizationPolicy admitting the Gateway into backend Service `service`: `<service>-ingress-gateway`.
pub fn gateway_authorization_name(service: &str) -> String {
    format!("{service}-ingress-gateway")
}

/// Name of the HTTP → HTTPS redirect route of a TLS rule: `<rule object name>-https-redirect`.
pub fn redirect_route_name(rule: &IngressRule) -> String {
    format!("{}-https-redirect", rule_object_name(rule))
}

/// GatewayAPI mode on the Istio add-on ([`GatewayRef`] names everything):
///
/// - **Gateway** in the gateway namespace with one HTTP listener (port 80) per host and one HTTPS
///   listener (443, `Terminate`) per host that has TLS, its `certificateRefs` naming the rule's
///   Secret. A host has one certificate, so rules sharing a host must share the Secret. The
///   Gateway carries `istio.io/rev` when a revision is set, so the right istiod deploys it.
/// - **HTTPRoute** per rule ([`rule_object_name`]) in the gateway namespace: `hostnames [host]`,
///   `PathPrefix` match on the path, attached (`sectionName`) to the host's HTTPS listener when the
///   rule has TLS, else to its HTTP listener; `backendRefs` the Service and its port. A TLS rule
///   also gets a redirect route ([`redirect_route_name`]) on the HTTP listener (308 to https), as
///   ingress-nginx redirects TLS hosts by default.
/// - **Rewrite.** ingress-nginx's `rewrite-target` without capture groups becomes
///   `rewrite "(?i)<path>" <target> break;`, and an nginx `rewrite` replaces the whole URI: with
///   the article's `/store` → `/`, `/store/books` reaches the backend as `/`. The Gateway API
///   filter with that behaviour is `URLRewrite` **`ReplaceFullPath`** (whereas
///   `ReplacePrefixMatch` would forward `/books`), so that is what is emitted, with an INFO
///   notification. Not carried over: nginx matched case-insensitively and as a string prefix
///   (`/storefront`), `PathPrefix` is case-sensitive and element-wise. Targets with capture-group
///   references (`$1`) are refused.
/// - **ReferenceGrants** in a backend namespace other than the gateway's: [`GatewayRef::backends_grant`]
///   (HTTPRoutes → the Services) and [`GatewayRef::secrets_grant`] (the Gateway → the TLS Secrets,
///   which live in the backend's namespace).
/// - **AuthorizationPolicy** per backend Service ([`gateway_authorization_name`], in its namespace)
///   selecting the pods the Service selects and allowing [`GatewayRef::principal`] on the target
///   ports. Istio denies whatever no ALLOW policy matches once one applies, so a WARNING is
///   emitted for selected apps that no `spec.traffic.access` entry admits callers to.
///
/// `spec.ingress` unset renders nothing.
pub fn gateway_ingress(
    installation: &str,
    spec: &MeshInstallationSpec,
) -> Result<(Vec<Desired>, Vec<Notification>), IngressBuildError> {
    let Some(ingress) = &spec.ingress else { return Ok((Vec::new(), Vec::new())) };
    if spec.mesh.provider != MeshProvider::AksIstioAddon {
        return Err(IngressBuildError::invalid(
            "spec.traffic.mode",
            "the GatewayAPI ingress is a Gateway plus Istio AuthorizationPolicies and needs spec.mesh.provider AksIstioAddon; \
             on Open Service Mesh use traffic.mode SMI (ingress-nginx with an IngressBackend)",
        ));
    }
    validate_rules(ingress)?;
    let gateway = GatewayRef::for_installation(installation, ingress);
    if gateway.deployment_name().len() > 63 {
        return Err(IngressBuildError::invalid(
            "metadata.name",
            format!(
                "Istio would name the Gateway's Deployment and Service {:?}, longer than 63 characters; use a shorter installation name or gateway class",
                gateway.deployment_name()
            ),
        ));
    }
    let source = format!("{INSTALLATION_KIND}/{installation}");
    let mut notifications = Vec::new();

    // Route names must be unique in the gateway namespace, where every route lives.
    let mut route_names: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: String, field: String| -> Result<(), IngressBuildError> {
        match route_names.insert(name.clone(), field.clone()) {
            Some(first) => Err(IngressBuildError::invalid(
                format!("{field}.name"),
                format!(
                    "HTTPRoute {}/{name} is already rendered for {first}; give the rules distinct names",
                    gateway.namespace
                ),
            )),
            None => Ok(()),
        }
    };

    // Hosts, their certificates and listener names.
    let mut hosts: BTreeSet<String> = BTreeSet::new();
    let mut tls_hosts: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        hosts.insert(rule.host.clone());
        if let Some(tls) = &rule.tls {
            let secret = (rule.backend.namespace.clone(), tls.secret_name.clone());
            match tls_hosts.get(&rule.host) {
                Some((first, ns, name)) if (ns, name) != (&secret.0, &secret.1) => {
                    return Err(IngressBuildError::invalid(
                        format!("{}.tls.secretName", rule_field(index)),
                        format!(
                            "host {} already uses Secret {ns}/{name} ({}); a Gateway listener has one certificate per host, so rules for one host must share the Secret",
                            rule.host,
                            rule_field(*first)
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    tls_hosts.insert(rule.host.clone(), (index, secret.0, secret.1));
                }
            }
        }
    }
    let http_listeners = listener_names("http", hosts.iter());
    let https_listeners = listener_names("https", tls_hosts.keys());

    let mut objects = Vec::new();
    objects.push(Desired::new(
        Component::Ingress,
        installation,
        &gateway_object(spec, &gateway, &http_listeners, &https_listeners, &tls_hosts),
    )?);
    objects.push(Desired::new(Component::Ingress, installation, &gateway_open_policy(&gateway))?);

    let mut backend_services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut authorizations: BTreeMap<(String, String), BTreeSet<i32>> = BTreeMap::new();
    for (index, rule) in ingress.rules.iter().enumerate() {
        let field = rule_field(index);
        let target_port = backend_target_port(spec, index, rule)?;
        authorizations
            .entry((rule.backend.namespace.clone(), rule.backend.service.clone()))
            .or_default()
            .insert(target_port);
        if rule.backend.namespace != gateway.namespace {
            backend_services.entry(rule.backend.namespace.clone()).or_default().insert(rule.backend.service.clone());
        }
        if let Some(tls) = &rule.tls
            && rule.backend.namespace != gateway.namespace
        {
            secrets.entry(rule.backend.namespace.clone()).or_default().insert(tls.secret_name.clone());
        }

        let filter = rewrite_filter(index, rule)?;
        if filter.is_some() {
            notifications.push(rewrite_note(&source, index, rule, &gateway));
        }
        let listener = match rule.tls {
            Some(_) => https_listeners.get(&rule.host),
            None => http_listeners.get(&rule.host),
        };
        let name = rule_object_name(rule);
        claim(name.clone(), field.clone())?;
        objects.push(Desired::new(
            Component::Ingress,
            installation,
            &route(&gateway, &name, listener, rule, filter.into_iter().collect(), true),
        )?);
        if rule.tls.is_some() {
            let name = redirect_route_name(rule);
            claim(name.clone(), field.clone())?;
            objects.push(Desired::new(
                Component::Ingress,
                installation,
                &route(&gateway, &name, http_listeners.get(&rule.host), rule, vec![https_redirect()], false),
            )?);
        }
    }

    for (namespace, services) in &backend_services {
        let to = services.iter().map(|name| grant_to("Service", name)).collect();
        objects.push(Desired::new(
            Component::Ingress,
            installation,
            &reference_grant(&gateway.backends_grant(), namespace, "HTTPRoute", &gateway.namespace, to),
        )?);
        notifications.push(Notification {
            level: NotificationLevel::Info,
            object: source.clone(),
            message: format!(
                "spec.ingress: the HTTPRoutes live with Gateway {}/{} and route to Services in namespace {namespace}; ReferenceGrant {namespace}/{} allows exactly those Services",
                gateway.namespace,
                gateway.name,
                gateway.backends_grant()
            ),
        });
    }
    for (namespace, names) in &secrets {
        let to = names.iter().map(|name| grant_to("Secret", name)).collect();
        objects.push(Desired::new(
            Component::Ingress,
            installation,
            &reference_grant(&gateway.secrets_grant(), namespace, "Gateway", &gateway.namespace, to),
        )?);
        notifications.push(Notification {
            level: NotificationLevel::Info,
            object: source.clone(),
            message: format!(
                "spec.ingress: Gateway {}/{} terminates TLS with Secrets from namespace {namespace}; ReferenceGrant {namespace}/{} allows exactly those Secrets (set spec.ingress.gateway.namespace to {namespace} to avoid it)",
                gateway.namespace,
                gateway.name,
                gateway.secrets_grant()
            ),
        });
    }

    for ((namespace, service), ports) in &authorizations {
        let (selector, selected) = service_selector(spec, namespace, service).ok_or_else(|| {
            IngressBuildError::invalid(
                "spec.ingress.rules",
                format!("Service {namespace}/{service} is not declared by any app in spec.apps"),
            )
        })?;
        objects.push(Desired::new(
            Component::Ingress,
            installation,
            &authorization(&gateway, namespace, service, selector, ports),
        )?);
        let unguarded: Vec<&str> = selected
            .iter()
            .filter(|app| {
                !spec
                    .traffic
                    .access
                    .iter()
                    .any(|p| p.namespace == app.namespace && p.destination == app.service_account_name())
            })
            .map(|app| app.name.as_str())
            .collect();
        if !unguarded.is_empty() {
            notifications.push(Notification {
                level: NotificationLevel::Warning,
                object: source.clone(),
                message: format!(
                    "spec.ingress: AuthorizationPolicy {namespace}/{} allows only the Gateway into the pods of Service {service}; \
                     Istio then denies every other caller of app(s) {} unless an ALLOW policy admits it — list their callers in spec.traffic.access",
                    gateway_authorization_name(service),
                    unguarded.join(", ")
                ),
            });
        }
    }

    if !spec.namespaces.iter().any(|n| n.name == gateway.namespace) {
        notifications.push(Notification {
            level: NotificationLevel::Warning,
            object: source.clone(),
            message: format!(
                "spec.ingress.gateway.namespace: the Gateway's namespace {} is not listed in spec.namespaces, so the installation does not create it; it must exist",
                gateway.namespace
            ),
        });
    }
    Ok((objects, notifications))
}

/// Listener names per host: `<prefix>-<host with '.' → '-' and '*' → 'wildcard'>`, made unique
/// with a numeric suffix when two hosts map to the same name.
fn listener_names<'a>(prefix: &str, hosts: impl Iterator<Item = &'a String>) -> BTreeMap<String, String> {
    let mut used = BTreeSet::new();
    let mut names = BTreeMap::new();
    for host in hosts {
        let slug = host.replace('*', "wildcard").replace('.', "-");
        let base = format!("{prefix}-{slug}");
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        names.insert(host.clone(), name);
    }
    names
}

fn gateway_object(
    spec: &MeshInstallationSpec,
    gateway: &GatewayRef,
    http_listeners: &BTreeMap<String, String>,
    https_listeners: &BTreeMap<String, String>,
    tls_hosts: &BTreeMap<String, (usize, String, String)>,
) -> Gateway {
    let mut listeners: Vec<GatewayListeners> = http_listeners
        .iter()
        .map(|(host, name)| GatewayListeners {
            name: name.clone(),
            hostname: Some(host.clone()),
            port: 80,
            protocol: "HTTP".to_string(),
            ..Default::default()
        })
        .collect();
    listeners.extend(https_listeners.iter().map(|(host, name)| {
        let certificate_refs = tls_hosts.get(host).map(|(_, namespace, secret)| {
            vec![GatewayListenersTlsCertificateRefs {
                group: Some(String::new()),
                kind: Some("Secret".to_string()),
                name: secret.clone(),
                namespace: (*namespace != gateway.namespace).then(|| namespace.clone()),
            }]
        });
        GatewayListeners {
            name: name.clone(),
            hostname: Some(host.clone()),
            port: 443,
            protocol: "HTTPS".to_string(),
            tls: Some(GatewayListenersTls {
                certificate_refs,
                mode: Some(GatewayListenersTlsMode::Terminate),
                options: None,
            }),
            ..Default::default()
        }
    }));
    let revision = spec.mesh.istio.as_ref().and_then(|istio| istio.revision.clone());
    Gateway {
        metadata: ObjectMeta {
            name: Some(gateway.name.clone()),
            namespace: Some(gateway.namespace.clone()),
            labels: revision.map(|rev| BTreeMap::from([(labels::ISTIO_REV.to_string(), rev)])),
            ..Default::default()
        },
        spec: GatewaySpec { gateway_class_name: gateway.class.clone(), listeners, ..Default::default() },
        status: None,
    }
}

fn rewrite_filter(index: usize, rule: &IngressRule) -> Result<Option<HttpRouteRulesFilters>, IngressBuildError> {
    let Some(target) = rule.rewrite_target.as_ref().filter(|t| **t != rule.path) else { return Ok(None) };
    if target.contains('$') {
        return Err(IngressBuildError::invalid(
            format!("{}.rewriteTarget", rule_field(index)),
            format!(
                "{target:?} refers to regular-expression capture groups, which Gateway API URLRewrite cannot express; use a plain path"
            ),
        ));
    }
    Ok(Some(HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::UrlRewrite,
        url_rewrite: Some(HttpRouteRulesFiltersUrlRewrite {
            hostname: None,
            path: Some(HttpRouteRulesFiltersUrlRewritePath {
                r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath,
                replace_full_path: Some(target.clone()),
                replace_prefix_match: None,
            }),
        }),
        ..Default::default()
    }))
}

fn rewrite_note(source: &str, index: usize, rule: &IngressRule, gateway: &GatewayRef) -> Notification {
    let path = &rule.path;
    let target = rule.rewrite_target.as_deref().unwrap_or_default();
    Notification {
        level: NotificationLevel::Info,
        object: source.to_string(),
        message: format!(
            "{field}: rewriteTarget {target:?} became URLRewrite ReplaceFullPath {target:?} on HTTPRoute {ns}/{route}, because \
             ingress-nginx replaces the whole path (rewrite \"(?i){path}\" {target} break): {path}/books reaches {svc} as {target:?} \
             either way (ReplacePrefixMatch would have sent \"/books\"). Not carried over: ingress-nginx also matched {path} \
             case-insensitively and as a plain string prefix ({path}x); PathPrefix is case-sensitive and matches whole segments",
            field = rule_field(index),
            ns = gateway.namespace,
            route = rule_object_name(rule),
            svc = rule.backend.service,
        ),
    }
}

fn https_redirect() -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::RequestRedirect,
        request_redirect: Some(HttpRouteRulesFiltersRequestRedirect {
            scheme: Some(HttpRouteRulesFiltersRequestRedirectScheme::Https),
            status_code: Some(HTTPS_REDIRECT_STATUS),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn route(
    gateway: &GatewayRef,
    name: &str,
    listener: Option<&String>,
    rule: &IngressRule,
    filters: Vec<HttpRouteRulesFilters>,
    with_backend: bool,
) -> HttpRoute {
    let backend_refs = with_backend.then(|| {
        vec![HttpRouteRulesBackendRefs {
            group: Some(String::new()),
            kind: Some("Service".to_string()),
            name: rule.backend.service.clone(),
            namespace: (rule.backend.namespace != gateway.namespace).then(|| rule.backend.namespace.clone()),
            port: Some(rule.backend.port),
            ..Default::default()
        }]
    });
    HttpRoute {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(gateway.namespace.clone()),
            ..Default::default()
        },
        spec: HttpRouteSpec {
            parent_refs: Some(vec![HttpRouteParentRefs {
                group: Some(GATEWAY_API_GROUP.to_string()),
                kind: Some("Gateway".to_string()),
                name: gateway.name.clone(),
                namespace: None,
                section_name: listener.cloned(),
                port: None,
            }]),
            hostnames: Some(vec![rule.host.clone()]),
            rules: Some(vec![HttpRouteRules {
                matches: Some(vec![HttpRouteRulesMatches {
                    path: Some(HttpRouteRulesMatchesPath {
                        r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
                        value: Some(rule.path.clone()),
                    }),
                    ..Default::default()
                }]),
                filters: (!filters.is_empty()).then_some(filters),
                backend_refs,
                ..Default::default()
            }]),
        },
        status: None,
    }
}

fn grant_to(kind: &str, name: &str) -> ReferenceGrantTo {
    ReferenceGrantTo { group: String::new(), kind: kind.to_string(), name: Some(name.to_string()) }
}

fn reference_grant(
    name: &str,
    namespace: &str,
    from_kind: &str,
    from_namespace: &str,
    to: Vec<ReferenceGrantTo>,
) -> ReferenceGrant {
    let mut grant = ReferenceGrant::new(
        name,
        ReferenceGrantSpec {
            from: vec![ReferenceGrantFrom {
                group: GATEWAY_API_GROUP.to_string(),
                kind: from_kind.to_string(),
                namespace: from_namespace.to_string(),
            }],
            to,
        },
    );
    grant.metadata.namespace = Some(namespace.to_string());
    grant
}

/// The labels Service `service` in `namespace` selects, as the apps component renders it (main
/// Service: `spec.apps[].service.selector` or `app: <appLabel>`; version Service: `app` and
/// `version`), and the apps whose pods carry them. `None` when no app declares the Service (an
/// empty selector would select every pod of the namespace).
fn service_selector<'a>(
    spec: &'a MeshInstallationSpec,
    namespace: &str,
    service: &str,
) -> Option<(BTreeMap<String, String>, Vec<&'a AppSpec>)> {
    let app = spec.app_declaring_service(namespace, service)?;
    let main = app.name == service && !app.service.as_ref().is_some_and(|s| s.skip_main);
    let selector = if main {
        app.service
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_else(|| BTreeMap::from([("app".to_string(), app.app_label_value().to_string())]))
    } else {
        let mut selector = BTreeMap::from([("app".to_string(), app.app_label_value().to_string())]);
        if let Some(version) = &app.version {
            selector.insert("version".to_string(), version.clone());
        }
        selector
    };
    let selected = spec
        .apps
        .iter()
        .filter(|candidate| candidate.namespace == namespace)
        .filter(|candidate| {
            selector.iter().all(|(key, value)| match key.as_str() {
                "app" => candidate.app_label_value() == value,
                "version" => candidate.version.as_deref() == Some(value.as_str()),
                "meshoperator.dev/app" => candidate.name == *value,
                _ => false,
            })
        })
        .collect();
    Some((selector, selected))
}

/// Label Istio puts on the pods of the Deployment it runs for a Gateway.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// `<gateway>-open`: the Gateway's own pods admit every caller (they face clients outside the
/// mesh). Needed because the SMI translation puts a namespace-wide deny-all in every enrolled
/// namespace, which would otherwise also close the Gateway when it runs in one.
fn gateway_open_policy(gateway: &GatewayRef) -> AuthorizationPolicy {
    let mut policy = AuthorizationPolicy::new(
        &format!("{}-open", gateway.name),
        AuthorizationPolicySpec {
            selector: Some(WorkloadSelector {
                match_labels: BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), gateway.name.clone())]),
            }),
            action: Some("ALLOW".to_string()),
            rules: vec![AuthorizationRule::default()],
        },
    );
    policy.metadata.namespace = Some(gateway.namespace.clone());
    policy
}

fn authorization(
    gateway: &GatewayRef,
    namespace: &str,
    service: &str,
    selector: BTreeMap<String, String>,
    ports: &BTreeSet<i32>,
) -> AuthorizationPolicy {
    let mut policy = AuthorizationPolicy::new(
        &gateway_authorization_name(service),
        AuthorizationPolicySpec {
            selector: Some(WorkloadSelector { match_labels: selector }),
            action: Some("ALLOW".to_string()),
            rules: vec![AuthorizationRule {
                from: vec![RuleFrom { source: Source { principals: vec![gateway.principal()], ..Default::default() } }],
                to: vec![RuleTo {
                    operation: Operation { ports: ports.iter().map(|p| p.to_string()).collect(), ..Default::default() },
                }],
                when: Vec::new(),
            }],
        },
    );
    policy.metadata.namespace = Some(namespace.to_string());
    policy
}
