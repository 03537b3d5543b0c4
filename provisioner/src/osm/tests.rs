//! Tests of the OSM builders: they assert the rendered fields (what OSM v1.2 needs), not only that
//! objects exist.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use mesh_crds::MeshSpec;
use mesh_crds::osm::{Egress, MeshConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ca::{self, CA_COMMON_NAME, CA_ORGANIZATION};
use super::{OsmBuildError, control_plane, egress_policies, mesh_config, names, osm_crds};
use crate::desired::{Component, Desired};
use crate::labels;

const INSTALLATION: &str = "demo";

fn spec(yaml: &str) -> MeshSpec {
    serde_yaml::from_str(yaml).expect("mesh spec")
}

fn default_spec() -> MeshSpec {
    spec("provider: SelfHosted")
}

fn all_addons() -> MeshSpec {
    spec("provider: SelfHosted\naddons: {prometheus: true, grafana: true, jaeger: true}")
}

fn find<'a>(objects: &'a [Desired], kind: &str, name: &str) -> &'a Desired {
    objects
        .iter()
        .find(|d| d.resource.kind == kind && d.name() == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered; have {:?}", refs(objects)))
}

fn typed<T: DeserializeOwned>(desired: &Desired) -> T {
    serde_json::from_value(serde_json::to_value(&desired.object).expect("to json")).expect("from json")
}

fn refs(objects: &[Desired]) -> Vec<String> {
    objects.iter().map(Desired::reference).collect()
}

fn pod(deployment: &Deployment) -> &PodSpec {
    deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec")
}

fn main_container(deployment: &Deployment) -> &Container {
    &pod(deployment).containers[0]
}

/// The value following `flag` in `args`.
fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn quantity(container: &Container, section: &str, resource: &str) -> String {
    let requirements = container.resources.as_ref().expect("resources");
    let map = if section == "requests" { &requirements.requests } else { &requirements.limits };
    map.as_ref().and_then(|m| m.get(resource)).map(|q| q.0.clone()).expect("quantity")
}

fn labels_of(desired: &Desired) -> BTreeMap<String, String> {
    desired.object.metadata.labels.clone().unwrap_or_default()
}

fn assert_managed(desired: &Desired) {
    let l = labels_of(desired);
    assert_eq!(
        l.get(labels::MANAGED_BY).map(String::as_str),
        Some(labels::MANAGED_BY_VALUE),
        "{}",
        desired.reference()
    );
    assert_eq!(l.get(labels::INSTALLATION).map(String::as_str), Some(INSTALLATION), "{}", desired.reference());
    assert_eq!(l.get(labels::COMPONENT).map(String::as_str), Some("mesh"), "{}", desired.reference());
}

// ---------------------------------------------------------------- control plane: object set

#[test]
fn default_control_plane_renders_the_core_objects_in_apply_order() {
    let objects = control_plane(INSTALLATION, &default_spec()).expect("render");
    assert_eq!(
        refs(&objects),
        vec![
            "Namespace/osm-system",
            "ServiceAccount/osm-system/osm",
            "ClusterRole/osm",
            "ClusterRoleBinding/osm",
            "ConfigMap/osm-system/preset-mesh-config",
            "Deployment/osm-system/osm-bootstrap",
            "Service/osm-system/osm-bootstrap",
            "Deployment/osm-system/osm-controller",
            "Service/osm-system/osm-controller",
            "Service/osm-system/osm-validator",
            "Deployment/osm-system/osm-injector",
            "Service/osm-system/osm-injector",
        ]
    );
    for d in &objects {
        assert_managed(d);
        assert_eq!(d.component, Component::Mesh);
        if d.namespaced {
            assert_eq!(d.namespace(), Some("osm-system"), "{}", d.reference());
        } else {
            assert_eq!(d.namespace(), None, "{}", d.reference());
        }
    }
}

#[test]
fn everything_namespaced_follows_the_spec_namespace_and_mesh_name() {
    let mesh = spec(
        "provider: SelfHosted\nname: blue\nnamespace: mesh-blue\nversion: v1.2.3\naddons: {prometheus: true, grafana: true, jaeger: true}",
    );
    let objects = control_plane(INSTALLATION, &mesh).expect("render");
    for d in objects.iter().filter(|d| d.namespaced) {
        assert_eq!(d.namespace(), Some("mesh-blue"), "{}", d.reference());
    }
    find(&objects, "Namespace", "mesh-blue");
    find(&objects, "ClusterRole", "blue");
    find(&objects, "ClusterRole", "blue-prometheus");
    let binding: ClusterRoleBinding = typed(find(&objects, "ClusterRoleBinding", "blue"));
    let subject = &binding.subjects.expect("subjects")[0];
    assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("blue", Some("mesh-blue")));

    let controller: Deployment = typed(find(&objects, "Deployment", "osm-controller"));
    let args = main_container(&controller).args.clone().expect("args");
    assert_eq!(main_container(&controller).image.as_deref(), Some("openservicemesh/osm-controller:v1.2.3"));
    assert_eq!(arg(&args, "--mesh-name"), Some("blue"));
    assert_eq!(arg(&args, "--osm-namespace"), Some("mesh-blue"));
    assert_eq!(arg(&args, "--validator-webhook-config"), Some("osm-validator-mesh-blue"));
    let grafana: ConfigMap = typed(find(&objects, "ConfigMap", names::GRAFANA_DATASOURCES));
    assert!(
        grafana.data.expect("data")["prometheus.yaml"]
            .contains("http://osm-prometheus.mesh-blue.svc.cluster.local:7070")
    );
}

#[test]
fn only_self_hosted_v1_2_has_a_control_plane() {
    for yaml in ["provider: AksAddon", "provider: AksIstioAddon"] {
        let err = control_plane(INSTALLATION, &spec(yaml)).expect_err("not self-hosted");
        assert!(matches!(err, OsmBuildError::UnsupportedProvider { .. }), "{err}");
    }
    let err = control_plane(INSTALLATION, &spec("provider: SelfHosted\nversion: v1.1.3")).expect_err("v1.1");
    assert!(matches!(err, OsmBuildError::UnsupportedVersion { ref version, .. } if version == "v1.1.3"), "{err}");
    assert!(err.to_string().contains("v1.1.3"));
}

#[test]
fn rendering_twice_is_byte_identical() {
    let render = || {
        let mut objects = control_plane(INSTALLATION, &all_addons()).expect("render");
        objects.extend(osm_crds(INSTALLATION).expect("crds"));
        objects.push(mesh_config(INSTALLATION, &all_addons()).expect("mesh config"));
        objects.iter().map(|d| serde_json::to_string(&d.object).expect("json")).collect::<Vec<_>>()
    };
    assert_eq!(render(), render());
}

// ---------------------------------------------------------------- namespace and RBAC

#[test]
fn namespace_carries_osm_and_our_labels() {
    let objects = control_plane(INSTALLATION, &default_spec()).expect("render");
    let ns = find(&objects, "Namespace", "osm-system");
    assert_managed(ns);
    let ns: Namespace = typed(ns);
    let l = ns.metadata.labels.expect("labels");
    assert_eq!(l["name"], "osm-system");
    assert_eq!(l[labels::OSM_IGNORE], "true");
    assert_eq!(l["app.kubernetes.io/name"], "openservicemesh.io");
    assert_eq!(l["app.kubernetes.io/instance"], "osm");
    assert!(!l.contains_key(labels::OSM_MONITORED_BY), "the control plane is never meshed");
}

#[test]
fn cluster_roles_list_what_osm_needs_without_wildcards() {
    let objects = control_plane(INSTALLATION, &all_addons()).expect("render");
    for name in ["osm", "osm-prometheus"] {
        let role: ClusterRole = typed(find(&objects, "ClusterRole", name));
        for rule in role.rules.expect("rules") {
            let all = rule
                .verbs
                .iter()
                .chain(rule.api_groups.iter().flatten())
                .chain(rule.resources.iter().flatten())
                .chain(rule.non_resource_urls.iter().flatten());
            for item in all {
                assert!(!item.contains('*'), "{name}: wildcard in {rule:?}");
            }
        }
    }
    let role: ClusterRole = typed(find(&objects, "ClusterRole", "osm"));
    let rules = role.rules.expect("rules");
    let allows = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    assert!(allows("config.openservicemesh.io", "meshconfigs", "create"));
    assert!(allows("config.openservicemesh.io", "meshrootcertificates", "watch"));
    assert!(allows("", "secrets", "create"));
    assert!(allows("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"));
    assert!(allows("admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"));
    assert!(allows("apiextensions.k8s.io", "customresourcedefinitions", "patch"));
    assert!(allows("access.smi-spec.io", "traffictargets", "list"));
    assert!(allows("specs.smi-spec.io", "httproutegroups", "watch"));
    assert!(allows("specs.smi-spec.io", "tcproutes", "get"));
    assert!(allows("split.smi-spec.io", "trafficsplits", "list"));
    assert!(allows("policy.openservicemesh.io", "egresses", "watch"));
    assert!(allows("policy.openservicemesh.io", "ingressbackends/status", "update"));
    assert!(!allows("cert-manager.io", "certificaterequests", "create"), "Tresor needs no cert-manager access");
    // osm-controller and osm-bootstrap watch events before they record any, and exit without it.
    for verb in ["create", "patch", "watch"] {
        assert!(allows("", "events", verb), "events {verb}");
    }

    let binding: ClusterRoleBinding = typed(find(&objects, "ClusterRoleBinding", "osm"));
    assert_eq!((binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()), ("ClusterRole", "osm"));
    let sa: ServiceAccount = typed(find(&objects, "ServiceAccount", "osm"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("osm-system"));
}

// ---------------------------------------------------------------- Deployments

fn assert_restricted(pod: &PodSpec, who: &str) {
    let psc = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true), "{who}");
    assert!(psc.run_as_user.is_some_and(|uid| uid > 0), "{who}: explicit non-root uid");
    assert_eq!(psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()), Some("RuntimeDefault"), "{who}");
    for c in pod.containers.iter().chain(pod.init_containers.iter().flatten()) {
        let sc = c.security_context.as_ref().expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{who}/{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().and_then(|cap| cap.drop.clone()),
            Some(vec!["ALL".to_string()]),
            "{who}/{}",
            c.name
        );
        assert_eq!(sc.run_as_non_root, Some(true), "{who}/{}", c.name);
        assert!(sc.privileged.is_none(), "{who}/{}", c.name);
    }
    assert_eq!(
        pod.node_selector.as_ref().and_then(|n| n.get("kubernetes.io/os")).map(String::as_str),
        Some("linux"),
        "{who}"
    );
}

#[test]
fn controller_deployment_matches_osm_v1_2() {
    let objects = control_plane(INSTALLATION, &default_spec()).expect("render");
    let desired = find(&objects, "Deployment", "osm-controller");
    assert_managed(desired);
    let d: Deployment = typed(desired);

    let l = d.metadata.labels.clone().expect("labels");
    assert_eq!(l["app"], "osm-controller");
    assert_eq!(l["meshName"], "osm");
    assert_eq!(l["enforceSingleMesh"], "true");
    assert_eq!(l["app.kubernetes.io/name"], "openservicemesh.io");
    assert_eq!(l["app.kubernetes.io/instance"], "osm");
    assert_eq!(l["app.kubernetes.io/version"], "v1.2.4");

    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.selector.match_labels, Some(BTreeMap::from([("app".to_string(), "osm-controller".to_string())])));
    let template = spec.template.metadata.as_ref().expect("template metadata");
    assert_eq!(template.labels.as_ref().expect("pod labels")["app"], "osm-controller");
    let annotations = template.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9091");

    let pod = pod(&d);
    assert_eq!(pod.service_account_name.as_deref(), Some("osm"));
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    assert_restricted(pod, "osm-controller");
    let init = &pod.init_containers.as_ref().expect("init")[0];
    assert!(
        init.command
            .as_ref()
            .expect("command")
            .contains(&"http://osm-bootstrap.osm-system.svc.cluster.local:9091/healthz".to_string()),
        "the controller waits for the bootstrap"
    );

    let c = main_container(&d);
    assert_eq!(c.image.as_deref(), Some("openservicemesh/osm-controller:v1.2.4"));
    assert_eq!(c.command, Some(vec!["/osm-controller".to_string()]));
    let args = c.args.clone().expect("args");
    for (flag, value) in [
        ("--verbosity", "info"),
        ("--osm-namespace", "osm-system"),
        ("--osm-version", "v1.2.4"),
        ("--osm-service-account", "osm"),
        ("--mesh-name", "osm"),
        ("--validator-webhook-config", "osm-validator-mesh-osm"),
        ("--ca-bundle-secret-name", "osm-ca-bundle"),
        ("--certificate-manager", "tresor"),
        ("--trust-domain", "cluster.local"),
    ] {
        assert_eq!(arg(&args, flag), Some(value), "{flag}");
    }
    assert!(args.contains(&"--enable-reconciler=false".to_string()), "bool flags need `=`: {args:?}");
    // The chart's other flags, so the binary runs as `osm install` would run it.
    assert!(args.contains(&"--enable-mesh-root-certificate=false".to_string()), "{args:?}");
    assert!(args.contains(&"--validate-traffic-target=true".to_string()), "{args:?}");
    assert!(!args.iter().any(|a| a == "false"), "a bare `false` would be a stray argument: {args:?}");

    let ports: Vec<(String, i32)> =
        c.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.container_port)).collect();
    assert_eq!(
        ports,
        vec![
            ("admin-port".into(), 15000),
            ("osm-port".into(), 15128),
            ("metrics".into(), 9091),
            ("debug".into(), 9092)
        ]
    );

    let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
    assert_eq!(
        (ready.path.as_deref(), &ready.port, ready.scheme.as_deref()),
        (Some("/health/ready"), &IntOrString::Int(9091), Some("HTTP"))
    );
    let alive = c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("liveness");
    assert_eq!((alive.path.as_deref(), &alive.port), (Some("/health/alive"), &IntOrString::Int(9091)));

    assert_eq!(quantity(c, "requests", "cpu"), "500m");
    assert_eq!(quantity(c, "requests", "memory"), "128M");
    assert_eq!(quantity(c, "limits", "cpu"), "1500m");
    assert_eq!(quantity(c, "limits", "memory"), "1G");
    assert_eq!(c.env.as_ref().expect("env")[0].name, "CONTROLLER_POD_NAME");
}

#[test]
fn injector_deployment_matches_osm_v1_2() {
    let objects = control_plane(INSTALLATION, &spec("provider: SelfHosted\nname: blue")).expect("render");
    let d: Deployment = typed(find(&objects, "Deployment", "osm-injector"));
    assert_eq!(d.metadata.labels.as_ref().expect("labels")["meshName"], "blue");
    let pod = pod(&d);
    assert_restricted(pod, "osm-injector");
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    let c = main_container(&d);
    assert_eq!(c.image.as_deref(), Some("openservicemesh/osm-injector:v1.2.4"));
    let args = c.args.clone().expect("args");
    assert_eq!(arg(&args, "--webhook-config-name"), Some("osm-webhook-blue"));
    assert_eq!(arg(&args, "--webhook-timeout"), Some("20"));
    assert_eq!(arg(&args, "--mesh-name"), Some("blue"));
    assert_eq!(arg(&args, "--ca-bundle-secret-name"), Some("osm-ca-bundle"));
    assert!(arg(&args, "--validator-webhook-config").is_none(), "the validator belongs to the controller");

    let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    assert_eq!(ports, vec![9090, 9091]);
    assert!(args.contains(&"--osm-container-pull-policy=IfNotPresent".to_string()), "{args:?}");
    // The real injector serves /healthz only on its HTTP port; its webhook port answers 404 there.
    for probe in [&c.readiness_probe, &c.liveness_probe] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("probe");
        assert_eq!(
            (get.path.as_deref(), &get.port, get.scheme.as_deref()),
            (Some("/healthz"), &IntOrString::Int(9091), Some("HTTP"))
        );
    }

    let env: BTreeMap<String, String> =
        c.env.iter().flatten().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect();
    assert!(env["OSM_DEFAULT_ENVOY_IMAGE"].starts_with("envoyproxy/envoy-distroless:v1.22.2@sha256:"));
    assert_eq!(env["OSM_DEFAULT_INIT_CONTAINER_IMAGE"], "openservicemesh/init:v1.2.4");
    // Injected into pods with TCP probes; unset, those pods get a container without an image.
    assert_eq!(env["OSM_DEFAULT_HEALTHCHECK_CONTAINER_IMAGE"], "openservicemesh/osm-healthcheck:v1.2.4");
    assert!(c.env.iter().flatten().any(|e| e.name == "INJECTOR_POD_NAME" && e.value_from.is_some()));

    assert_eq!(quantity(c, "requests", "cpu"), "300m");
    assert_eq!(quantity(c, "requests", "memory"), "64M");
    assert_eq!(quantity(c, "limits", "cpu"), "500m");
    assert_eq!(quantity(c, "limits", "memory"), "64M");
}

#[test]
fn bootstrap_deployment_matches_osm_v1_2() {
    let objects = control_plane(INSTALLATION, &default_spec()).expect("render");
    let d: Deployment = typed(find(&objects, "Deployment", "osm-bootstrap"));
    assert_restricted(pod(&d), "osm-bootstrap");
    assert!(pod(&d).init_containers.is_none(), "the bootstrap is what the others wait for");
    let c = main_container(&d);
    assert_eq!(c.image.as_deref(), Some("openservicemesh/osm-bootstrap:v1.2.4"));
    let args = c.args.clone().expect("args");
    assert_eq!(arg(&args, "--osm-version"), Some("v1.2.4"));
    assert_eq!(arg(&args, "--osm-namespace"), Some("osm-system"));
    assert_eq!(arg(&args, "--ca-bundle-secret-name"), Some("osm-ca-bundle"));
    let ports: Vec<(String, i32)> =
        c.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.container_port)).collect();
    assert_eq!(ports, vec![("crdconversion".into(), 9443), ("metrics".into(), 9091)]);
    let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
    assert_eq!((ready.path.as_deref(), &ready.port), (Some("/healthz"), &IntOrString::Int(9091)));
    assert_eq!(quantity(c, "requests", "cpu"), "300m");
    assert_eq!(quantity(c, "limits", "memory"), "128M");
}

fn service_ports(service: &Service) -> Vec<(String, i32)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| ports.iter().map(|p| (p.name.clone().unwrap_or_default(), p.port)).collect())
        .unwrap_or_default()
}

fn selector(service: &Service) -> String {
    service.spec.as_ref().and_then(|s| s.selector.as_ref()).map(|s| s["app"].clone()).unwrap_or_default()
}

/// Service name, selected `app`, and `(port name, port)`s.
type ServiceCase = (&'static str, &'static str, &'static [(&'static str, i32)]);

#[test]
fn services_expose_the_osm_ports() {
    let objects = control_plane(INSTALLATION, &all_addons()).expect("render");
    let cases: &[ServiceCase] = &[
        ("osm-controller", "osm-controller", &[("osm-port", 15128), ("debug-port", 9092), ("healthz", 9091)]),
        ("osm-validator", "osm-controller", &[("validator", 9093)]),
        ("osm-injector", "osm-injector", &[("sidecar-inject", 9090)]),
        ("osm-bootstrap", "osm-bootstrap", &[("crdconversion", 9443), ("health", 9091)]),
        ("osm-prometheus", "osm-prometheus", &[("prometheus", 7070)]),
        ("osm-grafana", "osm-grafana", &[("grafana", 3000)]),
        ("jaeger", "jaeger", &[("zipkin", 9411), ("http-query", 16686)]),
    ];
    for (name, app, ports) in cases {
        let service: Service = typed(find(&objects, "Service", name));
        assert_eq!(selector(&service), *app, "{name}");
        let expected: Vec<(String, i32)> = ports.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(service_ports(&service), expected, "{name}");
    }
}

// ---------------------------------------------------------------- preset MeshConfig

fn preset(mesh: &MeshSpec) -> Value {
    let objects = control_plane(INSTALLATION, mesh).expect("render");
    let cm: ConfigMap = typed(find(&objects, "ConfigMap", names::PRESET_MESH_CONFIG));
    serde_json::from_str(&cm.data.expect("data")[names::PRESET_MESH_CONFIG_KEY]).expect("preset json")
}

#[test]
fn preset_mesh_config_has_osm_v1_2_defaults_adjusted_by_the_spec() {
    let p = preset(&default_spec());
    assert_eq!(p["certificate"], json!({"serviceCertValidityDuration": "24h", "certKeyBitSize": 2048}));
    assert_eq!(p["sidecar"]["logLevel"], "error");
    assert_eq!(p["sidecar"]["localProxyMode"], "Localhost");
    assert_eq!(p["sidecar"]["enablePrivilegedInitContainer"], false);
    assert!(p["sidecar"].get("envoyImage").is_none(), "images come from the injector's environment");
    assert_eq!(p["featureFlags"]["enableWASMStats"], true);
    assert_eq!(p["featureFlags"]["enableIngressBackendPolicy"], true);
    assert_eq!(p["observability"]["osmLogLevel"], "info");
    // The spec's defaults: permissive off, egress off, tracing off.
    assert_eq!(p["traffic"]["enablePermissiveTrafficPolicyMode"], false);
    assert_eq!(p["traffic"]["enableEgress"], false);
    assert_eq!(p["featureFlags"]["enableEgressPolicy"], false);
    assert_eq!(p["observability"]["tracing"], json!({"enable": false}));

    let p = preset(&spec(
        "provider: SelfHosted\npermissiveTrafficPolicy: true\negress: {enabled: true, policy: Policy}\ntracing: {enabled: true}",
    ));
    assert_eq!(p["traffic"]["enablePermissiveTrafficPolicyMode"], true);
    assert_eq!(p["traffic"]["enableEgress"], false);
    assert_eq!(p["featureFlags"]["enableEgressPolicy"], true);
    assert_eq!(
        p["observability"]["tracing"],
        json!({"enable": true, "address": "jaeger.osm-system.svc.cluster.local", "port": 9411, "endpoint": "/api/v2/spans"})
    );
}

/// Every leaf path of a JSON object, as `a.b.c`.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                leaf_paths(child, &format!("{prefix}.{key}"), out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_preset_field_is_in_the_meshconfig_crd_schema() {
    // The API server prunes fields its CRD does not declare: a preset field missing from our
    // MeshConfig CRD (as `enableWASMStats` was, spelled `enableWasmStats`) silently becomes OSM's
    // zero value. Both the served versions must keep every field the preset sets.
    let crd = mesh_crds::generate::osm_crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("meshconfigs.config.openservicemesh.io"))
        .expect("MeshConfig CRD");
    let preset = preset(&spec("provider: SelfHosted\ntracing: {enabled: true}"));
    let mut paths = Vec::new();
    leaf_paths(&preset, "", &mut paths);
    assert!(paths.contains(&".featureFlags.enableWASMStats".to_string()), "{paths:?}");
    for version in crd.spec.versions.iter().filter(|v| v.name == "v1alpha2") {
        let root =
            serde_json::to_value(&version.schema.as_ref().expect("schema").open_api_v3_schema).expect("schema json");
        for path in &paths {
            let mut node = &root["properties"]["spec"];
            for key in path.trim_start_matches('.').split('.') {
                node = &node["properties"][key];
                assert!(!node.is_null(), "{}: preset field spec{path} is not in the CRD schema", version.name);
            }
        }
    }
}

// ---------------------------------------------------------------- add-ons

fn names_of(objects: &[Desired]) -> BTreeSet<String> {
    objects.iter().map(Desired::reference).collect()
}

#[test]
fn addons_add_and_remove_exactly_their_objects() {
    let base = names_of(&control_plane(INSTALLATION, &default_spec()).expect("render"));
    let extra = |yaml: &str| -> BTreeSet<String> {
        let all = names_of(&control_plane(INSTALLATION, &spec(yaml)).expect("render"));
        assert!(all.is_superset(&base), "{yaml}: add-ons never drop core objects");
        all.difference(&base).cloned().collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        extra("provider: SelfHosted\naddons: {prometheus: true}"),
        set(&[
            "ServiceAccount/osm-system/osm-prometheus",
            "ClusterRole/osm-prometheus",
            "ClusterRoleBinding/osm-prometheus",
            "ConfigMap/osm-system/osm-prometheus-server-conf",
            "Deployment/osm-system/osm-prometheus",
            "Service/osm-system/osm-prometheus",
        ])
    );
    assert_eq!(
        extra("provider: SelfHosted\naddons: {grafana: true}"),
        set(&[
            "ConfigMap/osm-system/osm-grafana-dashboard-providers",
            "ConfigMap/osm-system/osm-grafana-dashboards",
            "ConfigMap/osm-system/osm-grafana-datasources",
            "Deployment/osm-system/osm-grafana",
            "Service/osm-system/osm-grafana"
        ])
    );
    assert_eq!(
        extra("provider: SelfHosted\naddons: {jaeger: true}"),
        set(&["Deployment/osm-system/jaeger", "Service/osm-system/jaeger"])
    );
    // Grafana off: nothing of it remains while the others stay.
    let without_grafana = extra("provider: SelfHosted\naddons: {prometheus: true, jaeger: true}");
    assert!(without_grafana.iter().all(|r| !r.contains("grafana")), "{without_grafana:?}");
    assert!(without_grafana.contains("Deployment/osm-system/osm-prometheus"));
    assert!(without_grafana.contains("Deployment/osm-system/jaeger"));
}

#[test]
fn prometheus_scrapes_annotated_pods_on_port_7070() {
    let objects = control_plane(INSTALLATION, &all_addons()).expect("render");
    let cm: ConfigMap = typed(find(&objects, "ConfigMap", names::PROMETHEUS_CONFIG));
    let yml: serde_yaml::Value =
        serde_yaml::from_str(&cm.data.expect("data")["prometheus.yml"]).expect("prometheus.yml");
    let job = &yml["scrape_configs"][0];
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
    let keep = &job["relabel_configs"][0];
    assert_eq!(keep["action"], "keep");
    assert_eq!(keep["source_labels"][0], "__meta_kubernetes_pod_annotation_prometheus_io_scrape");

    let d: Deployment = typed(find(&objects, "Deployment", names::PROMETHEUS));
    let pod = pod(&d);
    assert_restricted(pod, "osm-prometheus");
    assert_eq!(pod.service_account_name.as_deref(), Some("osm-prometheus"));
    let c = main_container(&d);
    assert_eq!(c.image.as_deref(), Some("prom/prometheus:v2.34.0"));
    let args = c.args.clone().expect("args");
    assert!(args.contains(&"--storage.tsdb.retention.time=15d".to_string()));
    assert!(args.contains(&"--web.listen-address=:7070".to_string()));
    assert!(args.contains(&"--config.file=/etc/prometheus/prometheus.yml".to_string()));
    assert_eq!(quantity(c, "requests", "cpu"), "500m");
    assert_eq!(quantity(c, "requests", "memory"), "512M");
    assert_eq!(quantity(c, "limits", "cpu"), "1");
    assert_eq!(quantity(c, "limits", "memory"), "2G");
    let volumes = pod.volumes.as_ref().expect("volumes");
    assert_eq!(volumes[0].config_map.as_ref().map(|c| c.name.as_str()), Some(names::PROMETHEUS_CONFIG));

    let binding: ClusterRoleBinding = typed(find(&objects, "ClusterRoleBinding", "osm-prometheus"));
    assert_eq!(binding.subjects.expect("subjects")[0].name, "osm-prometheus");
}

#[test]
fn grafana_and_jaeger_are_restricted_and_wired_to_the_mesh() {
    let objects = control_plane(INSTALLATION, &all_addons()).expect("render");
    let cm: ConfigMap = typed(find(&objects, "ConfigMap", names::GRAFANA_DATASOURCES));
    let ds: serde_yaml::Value = serde_yaml::from_str(&cm.data.expect("data")["prometheus.yaml"]).expect("datasource");
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    assert_eq!(ds["datasources"][0]["url"], "http://osm-prometheus.osm-system.svc.cluster.local:7070");

    let grafana: Deployment = typed(find(&objects, "Deployment", names::GRAFANA));
    assert_restricted(pod(&grafana), "osm-grafana");
    assert_eq!(pod(&grafana).automount_service_account_token, Some(false));
    assert_eq!(main_container(&grafana).image.as_deref(), Some("grafana/grafana:8.2.2"));

    let jaeger: Deployment = typed(find(&objects, "Deployment", names::JAEGER));
    assert_restricted(pod(&jaeger), "jaeger");
    let c = main_container(&jaeger);
    assert!(c.image.as_deref().is_some_and(|i| i.starts_with("jaegertracing/all-in-one:")));
    assert!(
        c.env.iter().flatten().any(|e| e.name == "COLLECTOR_ZIPKIN_HOST_PORT" && e.value.as_deref() == Some(":9411"))
    );
}

// ---------------------------------------------------------------- MeshConfig

fn mesh_config_spec(yaml: &str) -> (Desired, Value) {
    let desired = mesh_config(INSTALLATION, &spec(yaml)).expect("mesh config");
    let typed: MeshConfig = typed(&desired);
    let value = serde_json::to_value(&typed.spec).expect("spec json");
    (desired, value)
}

#[test]
fn mesh_config_holds_only_the_spec_controlled_fields() {
    let (desired, spec) = mesh_config_spec("provider: SelfHosted");
    assert_eq!(desired.resource.api_version, "config.openservicemesh.io/v1alpha2");
    assert_eq!(desired.resource.kind, "MeshConfig");
    assert_eq!((desired.name(), desired.namespace()), ("osm-mesh-config", Some("osm-system")));
    assert_managed(&desired);
    assert_eq!(
        spec,
        json!({
            "traffic": {"enableEgress": false, "enablePermissiveTrafficPolicyMode": false},
            "observability": {"tracing": {"enable": false}},
            "featureFlags": {"enableEgressPolicy": false, "enableIngressBackendPolicy": true}
        })
    );
}

#[test]
fn mesh_config_follows_permissive_mode() {
    let (_, on) = mesh_config_spec("provider: SelfHosted\npermissiveTrafficPolicy: true");
    let (_, off) = mesh_config_spec("provider: SelfHosted\npermissiveTrafficPolicy: false");
    assert_eq!(on["traffic"]["enablePermissiveTrafficPolicyMode"], true);
    assert_eq!(off["traffic"]["enablePermissiveTrafficPolicyMode"], false);
}

#[test]
fn mesh_config_maps_egress_modes() {
    let flags = |yaml: &str| {
        let (_, s) = mesh_config_spec(yaml);
        (s["traffic"]["enableEgress"].clone(), s["featureFlags"]["enableEgressPolicy"].clone())
    };
    assert_eq!(flags("provider: SelfHosted\negress: {enabled: false, policy: Policy}"), (json!(false), json!(false)));
    assert_eq!(
        flags("provider: SelfHosted\negress: {enabled: true, policy: Passthrough}"),
        (json!(true), json!(false))
    );
    assert_eq!(flags("provider: SelfHosted\negress: {enabled: true, policy: Policy}"), (json!(false), json!(true)));
}

#[test]
fn tracing_changes_only_the_tracing_block() {
    let (_, off) = mesh_config_spec("provider: SelfHosted");
    let (_, on) = mesh_config_spec("provider: SelfHosted\ntracing: {enabled: true}");
    assert_eq!(
        on["observability"]["tracing"],
        json!({"enable": true, "address": "jaeger.osm-system.svc.cluster.local", "port": 9411, "endpoint": "/api/v2/spans"})
    );
    let without_tracing = |mut v: Value| {
        v["observability"]["tracing"] = Value::Null;
        v
    };
    assert_eq!(without_tracing(on), without_tracing(off));

    let (_, custom) = mesh_config_spec(
        "provider: SelfHosted\ntracing: {enabled: true, address: otel.tracing.svc.cluster.local, port: 9412, endpoint: /zipkin}",
    );
    assert_eq!(
        custom["observability"]["tracing"],
        json!({"enable": true, "address": "otel.tracing.svc.cluster.local", "port": 9412, "endpoint": "/zipkin"})
    );
}

#[test]
fn mesh_config_works_for_the_aks_addon_but_not_istio() {
    let (desired, value) = mesh_config_spec("provider: AksAddon\ntracing: {enabled: true}");
    assert_eq!(desired.namespace(), Some("kube-system"));
    assert_eq!(value["observability"]["tracing"]["address"], "jaeger.kube-system.svc.cluster.local");
    let err = mesh_config(INSTALLATION, &spec("provider: AksIstioAddon")).expect_err("istio");
    assert!(matches!(err, OsmBuildError::UnsupportedProvider { .. }));
}

// ---------------------------------------------------------------- Egress

const EGRESS_RULES: &str = r#"
provider: SelfHosted
egress:
  enabled: true
  policy: Policy
  rules:
    - name: httpbin-80
      namespace: curl
      sourceServiceAccounts: [curl, curl-2]
      hosts: [httpbin.org]
      ports: [{number: 80, protocol: http}]
    - name: mysql
      namespace: bookwarehouse
      sourceServiceAccounts: [bookwarehouse]
      ipAddresses: [10.0.0.0/24]
      ports: [{number: 3306, protocol: tcp-server-first}]
"#;

#[test]
fn egress_policy_mode_renders_one_egress_per_rule() {
    let objects = egress_policies(INSTALLATION, &spec(EGRESS_RULES)).expect("egress");
    assert_eq!(refs(&objects), vec!["Egress/curl/httpbin-80", "Egress/bookwarehouse/mysql"]);
    assert_eq!(objects[0].resource.api_version, "policy.openservicemesh.io/v1alpha1");
    assert_eq!(objects[0].component, Component::Traffic);
    let http: Egress = typed(&objects[0]);
    let sources: Vec<(&str, &str, &str)> =
        http.spec.sources.iter().map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_str())).collect();
    assert_eq!(sources, vec![("ServiceAccount", "curl", "curl"), ("ServiceAccount", "curl-2", "curl")]);
    assert_eq!(http.spec.hosts, vec!["httpbin.org"]);
    assert_eq!((http.spec.ports[0].number, http.spec.ports[0].protocol.as_str()), (80, "http"));
    let tcp: Egress = typed(&objects[1]);
    assert_eq!(tcp.spec.ip_addresses, vec!["10.0.0.0/24"]);
    assert_eq!(tcp.spec.ports[0].protocol, "tcp-server-first");
}

#[test]
fn egress_objects_only_exist_in_policy_mode() {
    let passthrough = EGRESS_RULES.replace("policy: Policy", "policy: Passthrough");
    assert!(egress_policies(INSTALLATION, &spec(&passthrough)).expect("egress").is_empty());
    let disabled = EGRESS_RULES.replace("enabled: true", "enabled: false");
    assert!(egress_policies(INSTALLATION, &spec(&disabled)).expect("egress").is_empty());
    let addon = EGRESS_RULES.replace("provider: SelfHosted", "provider: AksAddon");
    assert_eq!(egress_policies(INSTALLATION, &spec(&addon)).expect("egress").len(), 2);
}

// ---------------------------------------------------------------- CRDs and names

#[test]
fn osm_crds_are_the_ten_with_correct_names() {
    let crds = osm_crds(INSTALLATION).expect("crds");
    let names: BTreeSet<&str> = crds.iter().map(Desired::name).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "meshconfigs.config.openservicemesh.io",
            "meshrootcertificates.config.openservicemesh.io",
            "egresses.policy.openservicemesh.io",
            "ingressbackends.policy.openservicemesh.io",
            "retries.policy.openservicemesh.io",
            "upstreamtrafficsettings.policy.openservicemesh.io",
            "httproutegroups.specs.smi-spec.io",
            "tcproutes.specs.smi-spec.io",
            "traffictargets.access.smi-spec.io",
            "trafficsplits.split.smi-spec.io",
        ])
    );
    for crd in &crds {
        assert_eq!(crd.resource.kind, "CustomResourceDefinition");
        assert!(!crd.namespaced);
        assert_eq!(crd.component, Component::Mesh);
        assert_managed(crd);
        assert_eq!(labels_of(crd)["app.kubernetes.io/name"], "openservicemesh.io");
    }
}

#[test]
fn teardown_names() {
    assert_eq!(names::webhook_name("osm"), "osm-webhook-osm");
    assert_eq!(names::validator_name("blue"), "osm-validator-mesh-blue");
    assert_eq!(names::CA_BUNDLE_SECRET, "osm-ca-bundle");
    assert_eq!(names::MESH_CONFIG, "osm-mesh-config");
    assert_eq!(names::AKS_ADDON_WEBHOOK, "aks-osm-webhook-osm");
    assert_eq!(names::AKS_ADDON_VALIDATOR, "aks-osm-validator-mesh-osm");
}

// ---------------------------------------------------------------- root CA

fn bundle(ca: &ca::RootCa) -> BTreeMap<String, k8s_openapi::ByteString> {
    let secret: Secret = typed(&ca::ca_bundle_secret(INSTALLATION, "osm-system", ca).expect("secret"));
    secret.data.expect("data")
}

#[test]
fn root_ca_is_an_rsa_2048_ca_like_tresors() {
    let before = Timestamp::now();
    let root = ca::generate_root_ca().expect("root CA");
    assert!(root.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(root.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8, what OSM decodes");
    assert!(!format!("{root:?}").contains(&root.key_pem), "Debug must not print the key");

    let (_, pem) = x509_parser::pem::parse_x509_pem(root.cert_pem.as_bytes()).expect("pem");
    let cert = pem.parse_x509().expect("x509");
    assert!(cert.is_ca());
    let cn: Vec<&str> = cert.subject().iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    let org: Vec<&str> = cert.subject().iter_organization().filter_map(|a| a.as_str().ok()).collect();
    assert_eq!(cn, vec![CA_COMMON_NAME]);
    assert_eq!(org, vec![CA_ORGANIZATION]);
    assert_eq!(cert.subject(), cert.issuer(), "self-signed");
    let key_usage = cert.key_usage().expect("key usage").expect("present").value;
    assert!(key_usage.key_cert_sign() && key_usage.crl_sign());

    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(lifetime, 87_600 * 3600, "87600h");
    assert!(validity.not_before.timestamp() >= before.as_second() - 1);
    assert_eq!(validity.not_after.timestamp(), root.not_after.as_second());
    assert!(root.not_after.duration_since(before) >= SignedDuration::from_hours(87_599));

    // rsaEncryption with a 2048-bit modulus.
    let spki = cert.public_key();
    assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.113549.1.1.1");
    match spki.parsed().expect("public key") {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        other => panic!("not RSA: {other:?}"),
    }
    assert_eq!(cert.signature_algorithm.algorithm.to_id_string(), "1.2.840.113549.1.1.11", "sha256WithRSAEncryption");
}

#[test]
fn ca_bundle_secret_has_the_keys_osm_loads() {
    let root = ca::generate_root_ca().expect("root CA");
    let desired = ca::ca_bundle_secret(INSTALLATION, "kube-system", &root).expect("secret");
    assert_eq!((desired.name(), desired.namespace()), ("osm-ca-bundle", Some("kube-system")));
    assert_managed(&desired);
    let secret: Secret = typed(&desired);
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let data = secret.data.expect("data");
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["ca.crt", "private.key"]);
    assert_eq!(data["ca.crt"].0, root.cert_pem.as_bytes());
    assert_eq!(data["private.key"].0, root.key_pem.as_bytes());
    ca::parse_ca_bundle(&data).expect("our own bundle parses");
}

#[test]
fn parse_ca_bundle_rejects_what_osm_cannot_load() {
    let root = ca::generate_root_ca().expect("root CA");
    let good = bundle(&root);

    let mut missing = good.clone();
    missing.remove("private.key");
    let err = ca::parse_ca_bundle(&missing).expect_err("missing key");
    assert!(matches!(err, OsmBuildError::CaBundleMissingKey { ref key, .. } if key == "private.key"), "{err}");

    let mut garbage = good.clone();
    garbage.insert("ca.crt".to_string(), k8s_openapi::ByteString(b"not a certificate".to_vec()));
    let err = ca::parse_ca_bundle(&garbage).expect_err("garbage");
    assert!(matches!(err, OsmBuildError::CaBundleInvalid { ref key, .. } if key == "ca.crt"), "{err}");

    // Another CA's key: parseable, but not the certificate's.
    let other = ca::generate_root_ca().expect("other CA");
    let mut mismatched = good.clone();
    mismatched.insert("private.key".to_string(), k8s_openapi::ByteString(other.key_pem.into_bytes()));
    let err = ca::parse_ca_bundle(&mismatched).expect_err("mismatch");
    assert!(err.to_string().contains("does not belong"), "{err}");

    // An ECDSA key: OSM type-asserts RSA and would fail.
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let mut ecdsa = good.clone();
    ecdsa.insert("private.key".to_string(), k8s_openapi::ByteString(ec.serialize_pem().into_bytes()));
    let err = ca::parse_ca_bundle(&ecdsa).expect_err("ecdsa");
    assert!(matches!(err, OsmBuildError::CaBundleInvalid { ref key, .. } if key == "private.key"), "{err}");

    // A leaf certificate is not a CA.
    let leaf_key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["leaf.example".to_string()])
        .expect("params")
        .self_signed(&leaf_key)
        .expect("leaf");
    let not_ca = BTreeMap::from([
        ("ca.crt".to_string(), k8s_openapi::ByteString(leaf.pem().into_bytes())),
        ("private.key".to_string(), k8s_openapi::ByteString(leaf_key.serialize_pem().into_bytes())),
    ]);
    let err = ca::parse_ca_bundle(&not_ca).expect_err("leaf");
    assert!(err.to_string().contains("not a CA"), "{err}");
}
