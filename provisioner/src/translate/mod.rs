//! SMI → Gateway API (GAMMA) + Istio authorization translation. Pure: no API calls.
//!
//! OSM and SMI are archived; their policies move to Gateway API HTTPRoutes (routing) and, since
//! Gateway API has no authorization, to Istio AuthorizationPolicies (access control). The one
//! promise of this module: **the translation never allows a request OSM would deny**. Where SMI
//! cannot be expressed exactly, the output is narrower and a WARNING says so, or the piece is
//! left out and an ERROR says so. Nothing is dropped silently.
//!
//! ```
//! use mesh_provisioner::translate::{translate, Target, TranslationInput};
//! let translation = translate(&TranslationInput::default(), Target::Istio);
//! assert!(translation.http_routes.is_empty() && !translation.has_errors());
//! ```
//!
//! # Input and output
//! [`TranslationInput`] holds TrafficTargets (access.smi-spec.io/v1alpha3), HTTPRouteGroups and
//! TCPRoutes (specs.smi-spec.io/v1alpha4), TrafficSplits (split.smi-spec.io/v1alpha2) as OSM
//! v1.2 serves them, plus the Services and workloads (Deployments, StatefulSets, Jobs, bare Pods)
//! they refer to. Every workload is taken as **enrolled** in the mesh. [`translate`] returns a
//! [`Translation`]: HTTPRoutes, AuthorizationPolicies (with [`Target::Istio`]) and
//! notifications, ERROR first. Every object carries the annotation [`SOURCE_ANNOTATION`] naming
//! the SMI object (or workload) it comes from, as `Kind/namespace/name`.
//!
//! An ERROR names the object whose translation is incomplete. What is emitted for it is still
//! never wider than OSM (the CLI prints it), but a controller should keep that object's previous
//! output instead (match ERROR `object`s against [`SOURCE_ANNOTATION`]; see
//! [`Translation::blocked_sources`]); everything else is unaffected.
//!
//! # Routing: TrafficSplit → HTTPRoute ([`routes`])
//! - Producer route in the root Service's namespace; `spec.service` may be `name`, `name.<ns>`,
//!   `name.<ns>.svc[.cluster.local]`. parentRef `{group: "", kind: Service, name: <root>,
//!   port: <p>}` (group `""` = core; unset would mean a Gateway).
//! - Backends get `port: <p>` (OSM sends root port `p` to port `p` of every backend) and their
//!   weight. Weights above 1,000,000 are divided by their GCD, else scaled (WARNING). More than
//!   16 backends: weight-0 ones are left out (INFO), still more is an ERROR.
//! - A root Service with several ports gets one route per port, `<split>-p<port>`.
//! - OSM routed every request to a root by the weights; HTTPRouteGroups only constrained the
//!   destination side. So every rule of a route has the same weighted backends, and the last rule
//!   is a catch-all `PathPrefix /`: a Service with routes attached rejects (404) whatever no rule
//!   matches, and routing must not drop what SMI routed.
//! - The HTTPRouteGroup matches granted (by valid TrafficTargets) to the split's backend
//!   workloads become rules, one per group: one HTTPRouteMatch per method (`*` = no method); path
//!   regex literal → `Exact`; literal + `.*` at a segment boundary (`/api/.*`, `/api(/.*)?`) →
//!   `PathPrefix /api`; no path → `PathPrefix /`; anything else → `RegularExpression` with a
//!   WARNING (implementation-specific). Header literal → `Exact`, else `RegularExpression`.
//! - Limits (≤16 rules, ≤64 matches per rule, ≤128 per route): rules are packed in order into
//!   `<base>`, `<base>-2`, …; the catch-all stays in `<base>`. The CRD's CEL rules (path values,
//!   header names and values, ports on Service backendRefs, weights) are checked client-side;
//!   a violating match is left out with an ERROR on its HTTPRouteGroup.
//!
//! # Authorization: TrafficTarget → AuthorizationPolicy ([`authz`])
//! SMI as OSM v1.2.4 enforces it (permissive mode off; read from OSM's source) is deny-by-default, and decides a request in two steps:
//! 1. **L4** ([`resolve::L4`]): the caller must be a source of a TrafficTarget of the
//!    destination whose TCPRoute ports cover the port — every port when it has no TCPRoute, for
//!    HTTP and TCP alike; a TrafficTarget whose TCPRoute is missing grants no L4 (WARNING);
//! 2. **HTTP** ([`enforcement`]): the **first** route that matches decides, and admits only its
//!    own principals; identical routes of several TrafficTargets are merged (principals united);
//!    the TrafficTarget order is not fixed by OSM. The translation allows a request only if OSM
//!    allows it under **every** order: ALLOW per route, DENY where routes overlap with
//!    different callers (WARNING naming the TrafficTargets and matches).
//!
//! Matching: path regex full match; each method string a case-sensitive full-match regex, `*`
//! in the list = any (`GET|POST` → `[GET, POST]`); headers full match, key `host` =
//! `:authority`. `sources: []` = any mesh identity (`principals: ["*"]`, never plaintext).
//! Regexes are translated by [`regex_analysis`] ([`operations`]): exact when provably
//! equivalent; else narrower with a WARNING; else an ERROR and the match is left out.
//! [`overrides`] may narrow an inexpressible match to proven Istio strings (INFO). The article's
//! `.*a-book.*new` and `.*-http-client/*.*` are ERRORs without overrides.
//!
//! Every enrolled namespace gets a namespace-wide `deny-all` ([`policies`]): no pod of it fails
//! open, whoever created it. OSM quirks are reproduced and reported ([`resolve`]).
//! [`Target::GatewayApi`] emits routes only; every TrafficTarget then gets an ERROR (fail closed).
//!
//! # Names ([`names`])
//! Deterministic and stable across runs: `<split>`, `<split>-p<port>`, `<base>-<n>`,
//! `<tt>-<workload>`, `first-match-<workload>`, `deny-all` (per namespace); over 253 characters →
//! cut + hash; collisions → hash suffix + INFO.

pub mod authz;
pub mod enforcement;
pub mod index;
pub mod input;
pub mod l4;
pub mod limits;
pub mod listed;
pub mod names;
pub mod notify;
pub mod operations;
pub mod overrides;
pub mod policies;
pub mod regex_analysis;
pub mod regex_sets;
pub mod resolve;
pub mod routes;

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::apis::standard::httproutes::HttpRoute;
use kube::ResourceExt;
use mesh_crds::istio::AuthorizationPolicy;
use mesh_crds::{Notification, NotificationLevel};
use serde::Serialize;

pub use input::{InputError, TranslationInput};
pub use notify::object_ref;

/// Annotation on every generated object: the source, as `Kind/namespace/name`.
pub const SOURCE_ANNOTATION: &str = "meshoperator.dev/translated-from";

/// The Istio trust domain of the AKS add-on and of a default Istio install.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What to emit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Target {
    /// HTTPRoutes only: authorization cannot be expressed, every TrafficTarget is an ERROR.
    GatewayApi,
    /// HTTPRoutes and Istio AuthorizationPolicies (the AKS Istio add-on).
    #[default]
    Istio,
}

/// Options of [`translate_with`].
#[derive(Clone, Debug)]
pub struct TranslateOptions {
    /// What to emit.
    pub target: Target,
    /// Trust domain of the principals (`<trust domain>/ns/<ns>/sa/<sa>`).
    pub trust_domain: String,
    /// Narrowing overrides ([`overrides`]).
    pub overrides: Vec<mesh_crds::TranslationOverride>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            target: Target::Istio,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            overrides: Vec::new(),
        }
    }
}

/// The result of a translation.
#[derive(Clone, Debug, Default)]
pub struct Translation {
    /// GAMMA HTTPRoutes, sorted by namespace and name.
    pub http_routes: Vec<HttpRoute>,
    /// Istio AuthorizationPolicies, sorted by namespace and name (empty for [`Target::GatewayApi`]).
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Findings, ERROR first, then WARNING, then INFO.
    pub notifications: Vec<Notification>,
}

/// Errors rendering a translation.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// YAML serialization failed.
    #[error("rendering {object} as YAML: {source}")]
    Yaml {
        /// The object.
        object: String,
        /// Cause.
        source: serde_yaml::Error,
    },
    /// JSON serialization failed.
    #[error("rendering {object} as JSON: {source}")]
    Json {
        /// The object.
        object: String,
        /// Cause.
        source: serde_json::Error,
    },
}

fn reference<K: ResourceExt>(kind: &str, object: &K) -> String {
    object_ref(kind, &object.namespace().unwrap_or_default(), &object.name_any())
}

impl Translation {
    /// Whether any notification is an ERROR.
    pub fn has_errors(&self) -> bool {
        self.notifications.iter().any(|n| n.level == NotificationLevel::Error)
    }

    /// The source objects (`Kind/namespace/name`) named by an ERROR: a controller keeps their
    /// previous output rather than applying what was generated for them.
    pub fn blocked_sources(&self) -> BTreeSet<String> {
        self.notifications.iter().filter(|n| n.level == NotificationLevel::Error).map(|n| n.object.clone()).collect()
    }

    /// The generated objects as JSON values (routes first), in output order.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, RenderError> {
        fn value<K: Serialize + ResourceExt>(kind: &str, object: &K) -> Result<serde_json::Value, RenderError> {
            serde_json::to_value(object).map_err(|source| RenderError::Json { object: reference(kind, object), source })
        }
        let mut out = Vec::with_capacity(self.http_routes.len() + self.authorization_policies.len());
        for route in &self.http_routes {
            out.push(value("HTTPRoute", route)?);
        }
        for policy in &self.authorization_policies {
            out.push(value("AuthorizationPolicy", policy)?);
        }
        Ok(out)
    }

    /// The objects as a YAML multi-document stream (`---` before each document).
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut out = String::new();
        for object in self.objects()? {
            let text = serde_yaml::to_string(&object)
                .map_err(|source| RenderError::Yaml { object: object_name(&object), source })?;
            out.push_str("---\n");
            out.push_str(&text);
        }
        Ok(out)
    }

    /// The objects as a JSON `List`.
    pub fn to_json(&self) -> Result<String, RenderError> {
        let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": self.objects()? });
        serde_json::to_string_pretty(&list).map_err(|source| RenderError::Json { object: "List".to_string(), source })
    }

    /// Notifications as the CLI prints them: `LEVEL Kind/namespace/name: message`, one per line.
    pub fn notification_lines(&self) -> Vec<String> {
        self.notifications.iter().map(notification_line).collect()
    }
}

fn object_name(object: &serde_json::Value) -> String {
    let get = |path: &[&str]| {
        path.iter().try_fold(object, |v, k| v.get(k)).and_then(serde_json::Value::as_str).unwrap_or("-").to_string()
    };
    object_ref(&get(&["kind"]), &get(&["metadata", "namespace"]), &get(&["metadata", "name"]))
}

/// `LEVEL Kind/namespace/name: message`.
pub fn notification_line(notification: &Notification) -> String {
    let level = match notification.level {
        NotificationLevel::Error => "ERROR",
        NotificationLevel::Warning => "WARNING",
        NotificationLevel::Info => "INFO",
    };
    format!("{level} {}: {}", notification.object, notification.message)
}

/// Translates `input` for `target` with the default trust domain.
pub fn translate(input: &TranslationInput, target: Target) -> Translation {
    translate_with(input, &TranslateOptions { target, ..TranslateOptions::default() })
}

/// Translates `input`.
pub fn translate_with(input: &TranslationInput, options: &TranslateOptions) -> Translation {
    let mut notes = notify::Notes::default();
    let mut analyzer = regex_analysis::Analyzer::default();
    let mut languages = regex_sets::Languages::default();
    let empty = BTreeMap::new();
    let index = index::Index::build(input, &empty);
    resolve::check_groups(&index, &mut notes);
    let targets = resolve::resolve(&input.traffic_targets, &index, &options.trust_domain, &mut notes);
    let mut http_routes = routes::translate_splits(&input.traffic_splits, &index, &targets, &mut analyzer, &mut notes);
    http_routes
        .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    let authorization_policies = match options.target {
        Target::Istio => {
            let mut drafts = authz::Authz {
                targets: &targets,
                index: &index,
                analyzer: &mut analyzer,
                languages: &mut languages,
                overrides: &options.overrides,
                notes: &mut notes,
            }
            .drafts();
            let enrolled: Vec<&str> = if input.namespaces.is_empty() {
                index.workload_namespaces().chain(input.traffic_targets.iter().map(index::namespace_ref)).collect()
            } else {
                input.namespaces.iter().map(String::as_str).collect()
            };
            drafts.extend(policies::baselines(enrolled));
            policies::finish(drafts, &mut notes)
        }
        Target::GatewayApi => {
            let all: BTreeSet<(String, String)> =
                input.traffic_targets.iter().map(|t| (index::namespace_of(t), t.name_any())).collect();
            authz::gateway_api_only(&all.into_iter().collect::<Vec<_>>(), &mut notes);
            Vec::new()
        }
    };
    Translation { http_routes, authorization_policies, notifications: notes.into_vec() }
}
