//! The Gateway API CRDs an installation needs, checked before anything is written.
//!
//! The AKS Istio add-on does not install Gateway API (nor do many clusters), and without its CRDs
//! every HTTPRoute and Gateway would fail to apply one by one, after the mesh was already enabled.
//! So an installation that needs them is refused up front with a condition naming the missing
//! CRDs, the spec field that needs them and the command that installs the upstream standard
//! channel. The operator does not install them itself: they are cluster-wide and shared with every
//! other Gateway API user, so their version is the cluster owner's choice.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use mesh_crds::{MeshInstallationSpec, MeshProvider, TrafficMode};

use super::conditions::Problem;
use crate::context::Context;
use crate::error::{Error, Result};

/// The Gateway API release whose standard channel the operator is built and tested against.
pub const GATEWAY_API_VERSION: &str = "v1.5.1";

/// CRDs that `spec` needs, with the field that needs them.
pub fn needed(spec: &MeshInstallationSpec) -> Vec<(&'static str, &'static str)> {
    let mut needed = Vec::new();
    if spec.traffic.mode == TrafficMode::GatewayApi {
        needed.push(("httproutes.gateway.networking.k8s.io", "spec.traffic.mode GatewayAPI"));
    }
    if spec.mesh.provider == MeshProvider::AksIstioAddon && spec.ingress.is_some() {
        for crd in [
            "gateways.gateway.networking.k8s.io",
            "httproutes.gateway.networking.k8s.io",
            "referencegrants.gateway.networking.k8s.io",
        ] {
            if !needed.iter().any(|(name, _)| *name == crd) {
                needed.push((crd, "spec.ingress (a Gateway with the Istio add-on)"));
            }
        }
    }
    needed
}

/// The refusal when some needed CRDs are not installed (`installed` = names of the cluster's CRDs).
pub fn problem(spec: &MeshInstallationSpec, installed: &[String]) -> Option<Problem> {
    let missing: Vec<(&str, &str)> =
        needed(spec).into_iter().filter(|(name, _)| !installed.iter().any(|i| i == name)).collect();
    if missing.is_empty() {
        return None;
    }
    let mut fields: Vec<&str> = missing.iter().map(|(_, field)| *field).collect();
    fields.dedup();
    let names: Vec<&str> = missing.iter().map(|(name, _)| *name).collect();
    Some(Problem {
        reason: "GatewayApiCrdsMissing",
        message: format!(
            "{} needs the Gateway API CRDs, and {} not installed: install the standard channel with `kubectl apply \
             --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml` \
             (nothing was changed; the installation proceeds once they are Established)",
            fields.join(" and "),
            names.join(", ") + if names.len() == 1 { " is" } else { " are" },
        ),
    })
}

/// Names of the cluster's CRDs, from the API server's watch cache; read only when `spec` needs
/// Gateway API, so other installations make no extra request.
pub async fn installed_crds(ctx: &Context, spec: &MeshInstallationSpec) -> Result<Vec<String>> {
    if needed(spec).is_empty() {
        return Ok(Vec::new());
    }
    let api: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let list = api.list_metadata(&ListParams::default().match_any()).await.map_err(Error::kube("listing CRDs"))?;
    Ok(list.items.into_iter().filter_map(|m: PartialObjectMeta<CustomResourceDefinition>| m.metadata.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MeshInstallationSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    const ISTIO: &str = "mesh: { provider: AksIstioAddon }\nnamespaces: [ { name: shop } ]\ntraffic: { mode: GatewayAPI }\ningress: { gateway: { className: istio }, rules: [] }\n";

    #[test]
    fn missing_crds_are_named_with_the_field_that_needs_them_and_how_to_install_them() {
        let installed = vec!["gateways.gateway.networking.k8s.io".to_string()];
        let problem = problem(&spec(ISTIO), &installed).expect("refused");
        assert_eq!(problem.reason, "GatewayApiCrdsMissing");
        let message = problem.message;
        assert!(message.contains("spec.traffic.mode GatewayAPI"), "{message}");
        assert!(
            message.contains("httproutes.gateway.networking.k8s.io, referencegrants.gateway.networking.k8s.io are"),
            "{message}"
        );
        assert!(!message.contains("gateways.gateway"), "installed ones are not listed: {message}");
        assert!(message.contains("v1.5.1/standard-install.yaml"), "{message}");
    }

    #[test]
    fn nothing_is_needed_or_read_for_an_osm_installation_and_all_present_passes() {
        let osm = spec("mesh: { provider: SelfHosted }\nnamespaces: [ { name: shop } ]\n");
        assert!(needed(&osm).is_empty());
        assert!(problem(&osm, &[]).is_none());
        let all: Vec<String> = needed(&spec(ISTIO)).into_iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(all.len(), 3);
        assert!(problem(&spec(ISTIO), &all).is_none());
    }
}
