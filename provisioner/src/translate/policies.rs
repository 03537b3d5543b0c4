//! AuthorizationPolicies: the namespace baselines, and final names for every policy.
//!
//! # No workload fails open
//! Istio allows everything to a workload no ALLOW policy selects; OSM (permissive mode off)
//! denied everything no TrafficTarget granted. So every enrolled namespace gets a baseline
//! `deny-all`: an ALLOW policy **without selector and without rules**, which applies to every pod
//! of the namespace — Deployments, StatefulSets, Jobs, bare pods, whatever created them — and
//! admits nothing by itself. What the TrafficTargets grant is added by the ALLOW policies of
//! [`super::authz`]; a pod no policy selects stays denied.
//!
//! The enrolled namespaces are [`TranslationInput::namespaces`](super::TranslationInput), or,
//! when that is empty, every namespace holding a workload or a TrafficTarget of the input.
//!
//! # "Access it had under OSM"
//! Under OSM a pod's inbound access is decided by its **ServiceAccount** alone: whatever the
//! valid TrafficTargets with that ServiceAccount as destination grant (HTTP routes, L4 ports)
//! reaches every pod running as it, whoever created the pod. A workload *loses* access in the
//! translation when its ServiceAccount is the destination of at least one valid TrafficTarget but
//! no ALLOW policy can select its pods (no pod labels; labels that also select another
//! ServiceAccount's pods): the baseline then denies it everything, and an INFO names the workload
//! (next to the ERROR on the TrafficTarget). Narrower translations of single matches are
//! reported on the TrafficTarget (WARNING/ERROR) instead. A workload that no TrafficTarget names
//! as destination had nothing under OSM and loses nothing.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;
use mesh_crds::istio::{AuthorizationPolicy, AuthorizationPolicySpec, AuthorizationRule, WorkloadSelector};

use super::SOURCE_ANNOTATION;
use super::names::{self, Planned};
use super::notify::Notes;

/// Name of the baseline policy of every enrolled namespace.
pub const BASELINE_NAME: &str = "deny-all";

/// A policy before its final name.
pub(crate) struct Draft {
    pub planned: Planned,
    /// `None`: the whole namespace.
    pub selector: Option<BTreeMap<String, String>>,
    pub action: &'static str,
    pub rules: Vec<AuthorizationRule>,
    /// `Kind/namespace/name` of what it is translated from.
    pub source: String,
}

/// The baseline drafts of `namespaces`.
pub(crate) fn baselines<'n>(namespaces: impl IntoIterator<Item = &'n str>) -> Vec<Draft> {
    let unique: BTreeSet<&str> = namespaces.into_iter().collect();
    unique
        .into_iter()
        .map(|namespace| Draft {
            planned: Planned {
                namespace: namespace.to_string(),
                name: BASELINE_NAME.to_string(),
                identity: format!("baseline|{namespace}"),
            },
            selector: None,
            action: "ALLOW",
            rules: Vec::new(),
            source: format!("Namespace/{namespace}"),
        })
        .collect()
}

/// Names the drafts (collisions get a hash suffix and an INFO) and builds the policies, sorted by
/// namespace and name.
pub(crate) fn finish(drafts: Vec<Draft>, notes: &mut Notes) -> Vec<AuthorizationPolicy> {
    let planned: Vec<&Planned> = drafts.iter().map(|d| &d.planned).collect();
    let (final_names, renamed) = names::resolve(&planned);
    for (identity, name) in renamed {
        let source =
            drafts.iter().find(|d| d.planned.identity == identity).map(|d| d.source.clone()).unwrap_or_default();
        notes.info(&source, format!("generated AuthorizationPolicy names collide; one is named {name}"));
    }
    let mut policies: Vec<AuthorizationPolicy> = drafts
        .into_iter()
        .zip(final_names)
        .map(|(draft, name)| AuthorizationPolicy {
            metadata: ObjectMeta {
                name: Some(name.unwrap_or(draft.planned.name)),
                namespace: Some(draft.planned.namespace),
                annotations: Some(BTreeMap::from([(SOURCE_ANNOTATION.to_string(), draft.source)])),
                ..Default::default()
            },
            spec: AuthorizationPolicySpec {
                selector: draft.selector.map(|match_labels| WorkloadSelector { match_labels }),
                action: Some(draft.action.to_string()),
                rules: draft.rules,
            },
        })
        .collect();
    policies.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    policies
}
