//! Where an installation may put things. A MeshInstallation runs images with ServiceAccounts the
//! operator creates; read as an attacker would, a spec must not be able to place a workload, an
//! enrolment or an ingress controller where it would gain what its author does not hold:
//!
//! - **Reserved namespaces** (Kubernetes' own `kube-system`, `kube-public`, `kube-node-lease`, the
//!   operator's namespace, the mesh control plane's namespace) are refused for `spec.namespaces`,
//!   `spec.apps` and the ingress. The `kube-*` names are refused at admission already (CEL on the
//!   CRD); the other two are known only at run time, so they are checked here.
//! - **Collisions**: an object one component renders must not be one another renders (an app whose
//!   ServiceAccount is the ingress controller's, say): two field managers would rewrite it forever.
//!
//! Pure: the reconciler calls [`problems`] before it writes anything.

use std::collections::BTreeMap;

use mesh_crds::{MeshInstallationSpec, TrafficMode};
use mesh_provisioner::desired::{Component, Desired};

use super::conditions::Problem;

/// Namespaces Kubernetes itself owns (also refused by the CRD's CEL rules).
pub const KUBERNETES_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Why `namespace` is reserved, if it is.
fn reserved(spec: &MeshInstallationSpec, operator_namespace: &str, namespace: &str) -> Option<&'static str> {
    if KUBERNETES_NAMESPACES.contains(&namespace) {
        Some("it belongs to Kubernetes itself")
    } else if namespace == operator_namespace {
        Some("it is mesh-operator's own namespace (its ServiceAccount can do all the operator can)")
    } else if namespace == spec.mesh.control_plane_namespace() {
        Some("it holds the mesh control plane (spec.mesh.namespace), whose ServiceAccounts hold the mesh's credentials")
    } else {
        None
    }
}

/// Every placement problem of `spec`: reserved namespaces used for enrolment, apps or ingress.
pub fn problems(spec: &MeshInstallationSpec, operator_namespace: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut refuse = |field: String, namespace: &str| {
        if let Some(why) = reserved(spec, operator_namespace, namespace) {
            problems.push(Problem {
                reason: "ReservedNamespace",
                message: format!("{field}: namespace {namespace} is reserved ({why}); use a namespace of your own"),
            });
        }
    };
    for (index, ns) in spec.namespaces.iter().enumerate() {
        refuse(format!("spec.namespaces[{index}].name"), &ns.name);
    }
    for (index, app) in spec.apps.iter().enumerate() {
        refuse(format!("spec.apps[{index}].namespace"), &app.namespace);
    }
    if let Some(ingress) = &spec.ingress {
        if spec.traffic.mode == TrafficMode::GatewayApi {
            if let Some(namespace) = &ingress.gateway.namespace {
                refuse("spec.ingress.gateway.namespace".to_string(), namespace);
            }
        } else {
            refuse("spec.ingress.nginx.namespace".to_string(), ingress.nginx.namespace());
        }
    }
    problems
}

/// Objects rendered by two different components (or twice by one outside the apps, where apps may
/// share a ServiceAccount): each is refused, naming the spec field that produced the app's copy.
pub fn collisions(spec: &MeshInstallationSpec, objects: &[Desired]) -> Vec<Problem> {
    let mut by_identity: BTreeMap<(String, String, Option<String>, String), Vec<Component>> = BTreeMap::new();
    for desired in objects {
        let key = (
            desired.resource.group.clone(),
            desired.resource.kind.clone(),
            desired.namespace().map(str::to_string),
            desired.name().to_string(),
        );
        by_identity.entry(key).or_default().push(desired.component);
    }
    let mut problems = Vec::new();
    for ((_, kind, namespace, name), components) in by_identity {
        let mut distinct = components.clone();
        distinct.sort();
        distinct.dedup();
        // Namespaces are enrolled by one component and created by another on purpose.
        if distinct.len() < 2 || kind == "Namespace" {
            continue;
        }
        let others: Vec<&str> = distinct.iter().filter(|c| **c != Component::Apps).map(|c| c.as_str()).collect();
        let object = match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let field =
            namespace.as_deref().and_then(|ns| app_field(spec, &kind, ns, &name)).unwrap_or_else(|| "spec".to_string());
        problems.push(Problem {
            reason: "NameCollision",
            message: format!(
                "{field}: {object} is also rendered by the {} component; two owners would rewrite it forever — choose another name",
                others.join(", ")
            ),
        });
    }
    problems
}

/// The spec field of the app that renders `kind` `namespace/name`.
fn app_field(spec: &MeshInstallationSpec, kind: &str, namespace: &str, name: &str) -> Option<String> {
    spec.apps.iter().enumerate().filter(|(_, app)| app.namespace == namespace).find_map(|(index, app)| match kind {
        "ServiceAccount" if app.service_account_name() == name => Some(if app.service_account.is_some() {
            format!("spec.apps[{index}].serviceAccount")
        } else {
            format!("spec.apps[{index}].name")
        }),
        "Deployment" | "StatefulSet" if app.name == name => Some(format!("spec.apps[{index}].name")),
        "Service" if app.service_names().contains(&name) => Some(format!("spec.apps[{index}].service")),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_crds::MeshInstallation;

    fn spec(yaml: &str) -> MeshInstallationSpec {
        let text = format!(
            "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {{name: t}}\nspec:\n{yaml}"
        );
        MeshInstallation::from_yaml(&text).expect("spec").spec
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.message.clone()).collect()
    }

    #[test]
    fn reserved_namespaces_are_refused_naming_the_field() {
        let s = spec(
            "  namespaces: [{name: osm-system}, {name: mesh-operator-system}, {name: kube-system}, {name: shop}]\n  apps:\n  - {name: evil, namespace: mesh-operator-system, image: x}\n  ingress: {nginx: {namespace: osm-system}}\n",
        );
        let found = messages(&problems(&s, "mesh-operator-system"));
        for expected in [
            "spec.namespaces[0].name: namespace osm-system is reserved (it holds the mesh control plane",
            "spec.namespaces[1].name: namespace mesh-operator-system is reserved (it is mesh-operator's own namespace",
            "spec.namespaces[2].name: namespace kube-system is reserved (it belongs to Kubernetes",
            "spec.apps[0].namespace: namespace mesh-operator-system is reserved",
            "spec.ingress.nginx.namespace: namespace osm-system is reserved",
        ] {
            assert!(found.iter().any(|m| m.starts_with(expected)), "{expected} not in {found:#?}");
        }
        assert_eq!(found.len(), 5, "{found:#?}");
    }

    #[test]
    fn the_mesh_namespace_follows_the_spec() {
        let s = spec("  mesh: {namespace: mesh-blue}\n  namespaces: [{name: osm-system}, {name: mesh-blue}]\n");
        let found = messages(&problems(&s, "mesh-operator-system"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("spec.namespaces[1].name: namespace mesh-blue"), "{found:#?}");
    }

    #[test]
    fn an_app_reusing_the_ingress_controllers_service_account_is_a_collision() {
        let s = spec(
            "  namespaces: [{name: ingress-nginx}, {name: shop}]\n  apps:\n  - {name: web, namespace: shop, image: x}\n  - {name: evil, namespace: ingress-nginx, image: x, serviceAccount: ingress-nginx}\n  ingress: {nginx: {namespace: ingress-nginx}}\n",
        );
        let built = mesh_provisioner::plan::plan("t", &s, &Default::default()).expect("build");
        let found = messages(&collisions(&s, &built.objects));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("spec.apps[1].serviceAccount: ServiceAccount ingress-nginx/ingress-nginx is also rendered by the ingress component"),
            "{found:#?}"
        );
    }

    #[test]
    fn the_samples_have_no_collisions() {
        for (file, text) in crate::manifests::rbac::SAMPLES {
            let mi = MeshInstallation::from_yaml(text).expect("sample");
            let built = mesh_provisioner::plan::plan("t", &mi.spec, &Default::default()).expect("build");
            assert!(collisions(&mi.spec, &built.objects).is_empty(), "{file}");
        }
    }

    #[test]
    fn the_samples_place_nothing_in_reserved_namespaces() {
        for (file, text) in crate::manifests::rbac::SAMPLES {
            let mi = MeshInstallation::from_yaml(text).expect("sample");
            assert!(problems(&mi.spec, "mesh-operator-system").is_empty(), "{file}");
        }
    }
}
