//! ServiceAccounts, ClusterRoles and ClusterRoleBindings of the control plane and the Prometheus
//! add-on. Rules list exactly what OSM v1.2 reads and writes: no wildcards, so the blast radius of
//! the control plane's token is what OSM needs and nothing more.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::common::Ctx;
use super::names;
use crate::rbac::{rule, strings};

const READ: &[&str] = &["get", "list", "watch"];

/// What osm-controller, osm-injector and osm-bootstrap (which share the `<mesh>` ServiceAccount) need.
pub(crate) fn mesh_rules() -> Vec<PolicyRule> {
    vec![
        // Workloads and Services whose proxies the controller configures; Nodes are not read.
        rule(&["apps"], &["daemonsets", "deployments", "replicasets", "statefulsets"], READ),
        rule(&["batch"], &["jobs"], READ),
        rule(&[""], &["endpoints", "namespaces", "pods", "serviceaccounts", "services"], READ),
        // Not granted: `pods/portforward` and `pods/log`, which OSM's chart gives the controller
        // for its debug server. The operator keeps the debug server off (`enableDebugServer:
        // false`, not in the spec), and granting them would make the operator hold both.
        // The root CA (`osm-ca-bundle`), webhook and workload certificates live in Secrets.
        rule(&[""], &["secrets"], &["create", "delete", "get", "list", "patch", "update", "watch"]),
        // The bootstrap reads `preset-mesh-config`.
        rule(&[""], &["configmaps"], &["create", "get", "list", "update", "watch"]),
        // Each binary records events on its own pod and, before that, opens a watch on events in its
        // namespace: without `watch` osm-controller and osm-bootstrap exit at start ("Error
        // initializing generic event recorder"). `patch` merges repeated events.
        rule(&[""], &["events"], &["create", "patch", "watch"]),
        // IngressBackend sources and the ingress monitor.
        rule(&["networking.k8s.io"], &["ingresses"], READ),
        // The injector and controller create and patch their own webhook configurations.
        rule(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            &["create", "get", "list", "patch", "update", "watch"],
        ),
        // The bootstrap patches the CRDs' conversion settings (and applies them with the reconciler).
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["create", "get", "list", "patch", "update", "watch"],
        ),
        // The bootstrap creates `osm-mesh-config`; everything reads it.
        rule(
            &["config.openservicemesh.io"],
            &["meshconfigs", "meshrootcertificates"],
            &["create", "get", "list", "patch", "update", "watch"],
        ),
        rule(&["config.openservicemesh.io"], &["meshrootcertificates/status"], &["patch", "update"]),
        rule(
            &["policy.openservicemesh.io"],
            &["egresses", "ingressbackends", "retries", "upstreamtrafficsettings"],
            READ,
        ),
        // The controller reports IngressBackend and UpstreamTrafficSetting validity in their status.
        rule(
            &["policy.openservicemesh.io"],
            &["ingressbackends/status", "upstreamtrafficsettings/status"],
            &["patch", "update"],
        ),
        rule(&["access.smi-spec.io"], &["traffictargets"], READ),
        rule(&["specs.smi-spec.io"], &["httproutegroups", "tcproutes"], READ),
        rule(&["split.smi-spec.io"], &["trafficsplits"], READ),
        // No cert-manager.io rule: the certificate manager is Tresor.
    ]
}

/// What the Prometheus add-on needs for Kubernetes service discovery of pods.
pub(crate) fn prometheus_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["endpoints", "nodes", "pods", "services"], READ),
        PolicyRule { non_resource_urls: Some(strings(&["/metrics"])), verbs: strings(&["get"]), ..Default::default() },
    ]
}

/// ServiceAccount `name` in the control-plane namespace.
pub(crate) fn service_account(ctx: &Ctx<'_>, name: &str) -> ServiceAccount {
    ServiceAccount { metadata: ctx.meta(name, ctx.osm_labels()), ..Default::default() }
}

/// ClusterRole `name` with `rules`.
pub(crate) fn cluster_role(ctx: &Ctx<'_>, name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(ctx.osm_labels()), ..Default::default() },
        rules: Some(rules),
        ..Default::default()
    }
}

/// ClusterRoleBinding `name` of ClusterRole `name` to ServiceAccount `service_account`.
pub(crate) fn cluster_role_binding(ctx: &Ctx<'_>, name: &str, service_account: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(ctx.osm_labels()), ..Default::default() },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "ClusterRole".to_string(),
            name: name.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: service_account.to_string(),
            namespace: Some(ctx.namespace.to_string()),
            ..Default::default()
        }]),
    }
}

/// The control plane's ServiceAccount, ClusterRole and ClusterRoleBinding, all named `<mesh>`.
pub(crate) fn mesh_rbac(ctx: &Ctx<'_>) -> (ServiceAccount, ClusterRole, ClusterRoleBinding) {
    let name = names::mesh_rbac_name(ctx.mesh);
    (service_account(ctx, &name), cluster_role(ctx, &name, mesh_rules()), cluster_role_binding(ctx, &name, &name))
}
