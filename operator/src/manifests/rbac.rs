//! The operator's own permissions, derived from code rather than kept by hand:
//!
//! 1. every kind a component writes ([`mesh_provisioner::plan::kinds`]): server-side apply (`create`, `patch`), the
//!    watch caches and teardown listings (`get`, `list`, `watch`), pruning and teardown (`delete`);
//! 2. what the controller itself reads and writes (MeshInstallations and their status, Events,
//!    cluster facts, Secrets, workload restarts on teardown), listed in [`controller_needs`];
//! 3. every permission granted by a ClusterRole or Role the operator creates for OSM, its add-ons
//!    and ingress-nginx: the API server lets a user create a role, or bind one, only when the user
//!    holds every permission in it (or has `escalate`/`bind`, which would be far broader). These
//!    are read from the objects the operator really builds for the samples.
//!
//! Each rule carries the reasons it exists; `deploy/install.yaml` prints them as comments. There
//! are no wildcards. The operator's leader Lease gets a namespaced Role ([`lease_rules`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::PolicyRule;
use mesh_crds::{MeshInstallation, MeshProvider};
use mesh_provisioner::desired::{Component, Desired};

use super::ManifestError;
use mesh_provisioner::plan::kinds;
use mesh_provisioner::plan::{self, PlanInputs};

/// A rule and why the operator needs it (one line each).
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainedRule {
    /// The rule.
    pub rule: PolicyRule,
    /// Why it is there.
    pub why: Vec<String>,
}

/// Name of the operator's leader-election Lease (in the operator's namespace).
pub const LEASE_NAME: &str = "mesh-operator-leader";

/// The samples whose builds supply the roles the operator creates, embedded so the generator needs no files.
pub const SAMPLES: &[(&str, &str)] = &[
    ("samples/bookstore.yaml", include_str!("../../../samples/bookstore.yaml")),
    ("samples/bookstore-aks-addon.yaml", include_str!("../../../samples/bookstore-aks-addon.yaml")),
    ("samples/bookstore-istio.yaml", include_str!("../../../samples/bookstore-istio.yaml")),
];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Resource { group: String, resource: String },
    Url(String),
}

#[derive(Default)]
struct Needs {
    map: BTreeMap<Key, (BTreeSet<String>, Vec<String>)>,
}

impl Needs {
    fn add(&mut self, key: Key, verbs: &[&str], why: &str) {
        let (have, reasons) = self.map.entry(key).or_default();
        have.extend(verbs.iter().map(|v| v.to_string()));
        if !reasons.iter().any(|r| r == why) {
            reasons.push(why.to_string());
        }
    }

    fn resource(&mut self, group: &str, resource: &str, verbs: &[&str], why: &str) {
        self.add(Key::Resource { group: group.into(), resource: resource.into() }, verbs, why);
    }

    fn rules(self) -> Vec<ExplainedRule> {
        self.map
            .into_iter()
            .map(|(key, (verbs, why))| {
                let verbs: Vec<String> = verbs.into_iter().collect();
                let rule = match key {
                    Key::Resource { group, resource } => PolicyRule {
                        api_groups: Some(vec![group]),
                        resources: Some(vec![resource]),
                        verbs,
                        ..Default::default()
                    },
                    Key::Url(url) => PolicyRule { non_resource_urls: Some(vec![url]), verbs, ..Default::default() },
                };
                ExplainedRule { rule, why }
            })
            .collect()
    }
}

/// What the controller reads and writes itself, beyond the kinds its components write.
fn controller_needs(needs: &mut Needs) {
    let group = "meshoperator.dev";
    needs.resource(
        group,
        "meshinstallations",
        &["get", "list", "watch"],
        "the controller watches every MeshInstallation (cluster-scoped)",
    );
    needs.resource(
        group,
        "meshinstallations",
        &["patch"],
        "adds and removes its finalizer meshoperator.dev/teardown (no ownerReferences point at a MeshInstallation, so the finalizers subresource is not needed)",
    );
    needs.resource(
        group,
        "meshinstallations/status",
        &["patch"],
        "server-side applies the status (conditions, components, teardown step)",
    );
    needs.resource(
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "kube-runtime's Recorder publishes Events about MeshInstallations (in namespace default: the object is cluster-scoped) and patches repeats into a series",
    );
    needs.resource(
        "",
        "namespaces",
        &["list"],
        "observes which namespaces exist and which it created (validation, enrolment, teardown)",
    );
    needs.resource(
        "apps",
        "deployments",
        &["list"],
        "discovers OSM control planes (Deployments labelled app=osm-controller) in every namespace",
    );
    needs.resource(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["get", "create", "patch"],
        "checks at start that the MeshInstallation CRD is served (installs it with --install-crds) and that the OSM and SMI CRDs are Established",
    );
    needs.resource(
        "",
        "secrets",
        &["list"],
        "reads the mesh root CA (osm-ca-bundle), the ingress webhook TLS and edge certificates before deciding to generate new ones: by name and only with its own label (managed-by=mesh-operator), so it never reads a Secret it did not create",
    );
    needs.resource(
        "",
        "pods",
        &["list", "patch"],
        "metrics enrolment annotates the meshed pods (label osm-proxy-uuid) already running in namespaces with metrics on, as `osm metrics enable` does: lists their metadata and merge-patches three prometheus.io annotations",
    );
    needs.resource(
        "batch",
        "jobs",
        &["list"],
        "GatewayAPI mode: the SMI translation checks that no policy's labels also select pods of Jobs the installation does not manage",
    );
    for workload in ["daemonsets", "deployments", "statefulsets"] {
        needs.resource(
            "apps",
            workload,
            &["list", "patch"],
            "on teardown, restarts the workloads left in namespaces leaving the mesh (as kubectl rollout restart) so their sidecars go away",
        );
    }
}

fn component_list(components: &[Component]) -> String {
    components.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// Every kind the components write.
fn managed_needs(needs: &mut Needs) {
    let mut writers: BTreeMap<(String, String), Vec<Component>> = BTreeMap::new();
    for component in Component::ALL {
        for kind in kinds::kinds_of(component) {
            let key = (kind.resource.group.clone(), kind.resource.plural.clone());
            let entry = writers.entry(key).or_default();
            if !entry.contains(&component) {
                entry.push(component);
            }
        }
    }
    for ((group, plural), components) in writers {
        needs.resource(
            &group,
            &plural,
            &["create", "delete", "get", "list", "patch", "watch"],
            &format!(
                "component(s) {} write it: server-side apply (create, patch), watch caches and teardown (get, list, watch), pruning and teardown (delete)",
                component_list(&components)
            ),
        );
    }
    // Namespaces are also written directly (un-enrolment) and are part of the mesh and namespaces components above.
}

/// The built samples: `(sample file, objects)`, with every optional RBAC-bearing feature switched on.
pub fn built_samples() -> Result<Vec<(&'static str, Vec<Desired>)>, ManifestError> {
    let mut out = Vec::new();
    for (file, text) in SAMPLES {
        let mut mi = MeshInstallation::from_yaml(text)
            .map_err(|e| ManifestError::Sample { file: file.to_string(), message: e.to_string() })?;
        // Whatever a sample leaves off, the operator must still be able to create its roles.
        if mi.spec.mesh.provider == MeshProvider::SelfHosted {
            mi.spec.mesh.addons.prometheus = true;
            mi.spec.mesh.addons.grafana = true;
            mi.spec.mesh.addons.jaeger = true;
        }
        let name = mi.metadata.name.clone().unwrap_or_else(|| "sample".to_string());
        let built = plan::plan(&name, &mi.spec, &PlanInputs::default())
            .map_err(|e| ManifestError::Sample { file: file.to_string(), message: e.to_string() })?;
        out.push((*file, built.objects));
    }
    Ok(out)
}

/// The ClusterRoles and Roles the operator creates, as `(Kind name, rules)`, from [`built_samples`].
pub fn created_roles() -> Result<Vec<(String, Vec<PolicyRule>)>, ManifestError> {
    let mut roles: Vec<(String, Vec<PolicyRule>)> = Vec::new();
    for (file, objects) in built_samples()? {
        for desired in objects {
            if !matches!(desired.resource.kind.as_str(), "ClusterRole" | "Role") {
                continue;
            }
            let rules: Vec<PolicyRule> = serde_json::from_value(desired.object.data["rules"].clone())
                .map_err(|e| ManifestError::Sample { file: file.to_string(), message: e.to_string() })?;
            let label = format!("{} {}", desired.resource.kind, desired.name());
            if !roles.iter().any(|(l, _)| *l == label) {
                roles.push((label, rules));
            }
        }
    }
    Ok(roles)
}

/// Permissions the operator must hold because a role it creates grants them.
fn escalation_needs(needs: &mut Needs) -> Result<(), ManifestError> {
    let mut grants: BTreeMap<Key, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
    let mut grant = |key: Key, role: &str, verbs: &[String]| {
        let roles = grants.entry(key).or_default();
        match roles.iter_mut().find(|(r, _)| r == role) {
            Some((_, have)) => have.extend(verbs.iter().cloned()),
            None => roles.push((role.to_string(), verbs.iter().cloned().collect())),
        }
    };
    for (role, rules) in created_roles()? {
        for rule in rules {
            for url in rule.non_resource_urls.iter().flatten() {
                grant(Key::Url(url.clone()), &role, &rule.verbs);
            }
            // A rule limited to resourceNames is covered by one without: the names are per installation.
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    grant(Key::Resource { group: group.clone(), resource: resource.clone() }, &role, &rule.verbs);
                }
            }
        }
    }
    for (key, roles) in grants {
        let all: BTreeSet<String> = roles.iter().flat_map(|(_, verbs)| verbs.iter().cloned()).collect();
        let verbs: Vec<&str> = all.iter().map(String::as_str).collect();
        let list = roles
            .iter()
            .map(|(role, verbs)| format!("{role} ({})", verbs.iter().cloned().collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        needs.add(key, &verbs, &format!("granted by roles the operator creates, so it must hold it: {list}"));
    }
    Ok(())
}

/// The ClusterRole's rules, one per API group and resource, sorted.
pub fn cluster_rules() -> Result<Vec<ExplainedRule>, ManifestError> {
    let mut needs = Needs::default();
    controller_needs(&mut needs);
    managed_needs(&mut needs);
    escalation_needs(&mut needs)?;
    Ok(needs.rules())
}

/// The Role in the operator's namespace: its leader Lease.
pub fn lease_rules() -> Vec<ExplainedRule> {
    vec![
        ExplainedRule {
            rule: PolicyRule {
                api_groups: Some(vec!["coordination.k8s.io".into()]),
                resources: Some(vec!["leases".into()]),
                verbs: vec!["create".into()],
                ..Default::default()
            },
            why: vec![format!(
                "with --leader-elect, creates the Lease {LEASE_NAME} on first start (create cannot be limited to a name)"
            )],
        },
        ExplainedRule {
            rule: PolicyRule {
                api_groups: Some(vec!["coordination.k8s.io".into()]),
                resources: Some(vec!["leases".into()]),
                resource_names: Some(vec![LEASE_NAME.into()]),
                verbs: vec!["get".into(), "patch".into()],
                ..Default::default()
            },
            why: vec![format!("reads, acquires and renews the Lease {LEASE_NAME}; only the holder writes")],
        },
    ]
}

/// Whether `rules` allow `verb` on `group`/`resource` (named `name`, if given), as RBAC evaluates them.
pub fn allows(rules: &[PolicyRule], group: &str, resource: &str, name: Option<&str>, verb: &str) -> bool {
    rules.iter().any(|rule| {
        let has = |list: &Option<Vec<String>>, value: &str| {
            list.as_ref().is_some_and(|l| l.iter().any(|v| v == value || v == "*"))
        };
        let verb_ok = rule.verbs.iter().any(|v| v == verb || v == "*");
        let names_ok = match (&rule.resource_names, name) {
            (None, _) => true,
            (Some(names), _) if names.is_empty() => true,
            (Some(names), Some(name)) => names.iter().any(|n| n == name),
            (Some(_), None) => false,
        };
        verb_ok && has(&rule.api_groups, group) && has(&rule.resources, resource) && names_ok
    })
}

/// Whether `rules` allow `verb` on the non-resource URL `url`.
pub fn allows_url(rules: &[PolicyRule], url: &str, verb: &str) -> bool {
    rules.iter().any(|rule| {
        rule.verbs.iter().any(|v| v == verb || v == "*")
            && rule.non_resource_urls.as_ref().is_some_and(|urls| urls.iter().any(|u| u == url))
    })
}

/// What of `granted` is not covered by `held` (RBAC's escalation check), as readable lines.
pub fn uncovered(held: &[PolicyRule], granted: &[PolicyRule]) -> Vec<String> {
    let mut missing = Vec::new();
    for rule in granted {
        for verb in &rule.verbs {
            for url in rule.non_resource_urls.iter().flatten() {
                if !allows_url(held, url, verb) {
                    missing.push(format!("{verb} {url}"));
                }
            }
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    let names: Vec<Option<&str>> = match &rule.resource_names {
                        Some(names) if !names.is_empty() => names.iter().map(|n| Some(n.as_str())).collect(),
                        _ => vec![None],
                    };
                    for name in names {
                        if !allows(held, group, resource, name, verb) {
                            let group = if group.is_empty() { "core" } else { group.as_str() };
                            missing.push(format!(
                                "{verb} {group}/{resource}{}",
                                name.map(|n| format!(" {n}")).unwrap_or_default()
                            ));
                        }
                    }
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<PolicyRule> {
        cluster_rules().expect("rules").into_iter().map(|r| r.rule).collect()
    }

    #[test]
    fn every_managed_kind_is_fully_writable() {
        let rules = rules();
        for kind in kinds::all_managed_kinds() {
            for verb in ["create", "delete", "get", "list", "patch", "watch"] {
                assert!(
                    allows(&rules, &kind.resource.group, &kind.resource.plural, None, verb),
                    "{verb} {}",
                    kind.resource.plural
                );
            }
        }
    }

    #[test]
    fn roles_the_operator_creates_are_covered() {
        let rules = rules();
        for (role, granted) in created_roles().expect("roles") {
            let missing = uncovered(&rules, &granted);
            assert!(missing.is_empty(), "{role}: not held: {missing:?}");
        }
    }

    #[test]
    fn the_samples_create_the_osm_and_nginx_roles() {
        let roles: Vec<String> = created_roles().expect("roles").into_iter().map(|(r, _)| r).collect();
        for expected in
            ["ClusterRole osm", "ClusterRole osm-prometheus", "Role ingress-nginx", "ClusterRole ingress-nginx"]
        {
            assert!(roles.iter().any(|r| r == expected), "{expected} not in {roles:?}");
        }
    }

    #[test]
    fn rules_name_one_resource_each_and_say_why() {
        for rule in cluster_rules().expect("rules") {
            assert!(!rule.why.is_empty());
            let count = rule.rule.resources.as_ref().map_or(0, Vec::len)
                + rule.rule.non_resource_urls.as_ref().map_or(0, Vec::len);
            assert_eq!(count, 1, "{:?}", rule.rule);
        }
    }
}
