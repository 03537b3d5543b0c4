//! GatewayAPI mode's traffic: the spec's SMI policies, rendered as OSM would serve them,
//! translated into Gateway API routes and Istio authorization.

use mesh_crds::MeshInstallationSpec;

use super::{PlanError, PlanInputs};
use crate::desired::{Component, Desired};
use crate::{topology, translate};

fn typed<K: serde::de::DeserializeOwned>(desired: &Desired) -> Result<K, PlanError> {
    serde_json::to_value(&desired.object).and_then(serde_json::from_value).map_err(|source| {
        PlanError::Desired(crate::desired::DesiredError::Serialize {
            kind: desired.resource.kind.clone(),
            name: desired.name().to_string(),
            source,
        })
    })
}

/// GatewayAPI mode: the spec's SMI policies, rendered as OSM would serve them (plus, with
/// `translateExisting`, the SMI objects found in enrolled namespaces), translated into
/// GAMMA HTTPRoutes and Istio AuthorizationPolicies against the apps' own Services and workloads.
pub(super) fn translate_traffic(
    installation: &str,
    spec: &MeshInstallationSpec,
    rendered: &[Desired],
    inputs: &PlanInputs,
) -> Result<translate::Translation, PlanError> {
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
