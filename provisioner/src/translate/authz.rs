//! TrafficTarget → Istio `security.istio.io/v1` AuthorizationPolicy (ALLOW).
//!
//! Per TrafficTarget and destination workload (a Deployment or StatefulSet of the destination
//! ServiceAccount in the TrafficTarget's namespace) one ALLOW policy selects the workload's pods
//! by their pod-template labels. Each granted HTTPRouteGroup match becomes one rule (more when a
//! header needs a prefix-and-suffix pair): `from` the source principals, `to` its paths and
//! methods, `when` its headers. Each TCPRoute becomes a rule on `ports`.
//!
//! Istio allows everything to a workload that no ALLOW policy selects, SMI denies. So every
//! enrolled workload also gets a baseline `deny-all-<workload>` (an ALLOW policy without rules):
//! deny-by-default then holds whether or not any of its TrafficTargets could be translated.
//!
//! Never wider than OSM:
//! - a rule always names its principals (a rule without `from` would admit every source);
//! - a match that cannot be expressed exactly is translated narrower (WARNING) or not at all
//!   (ERROR); a header condition is never dropped, only alternatives of it;
//! - a policy is not emitted for a workload whose labels also select pods of another
//!   ServiceAccount (it would grant that ServiceAccount too): ERROR;
//! - an HTTP rule always carries an HTTP-only field (`paths: ["*"]` if nothing else), so Istio
//!   does not apply it to TCP connections (OSM granted TCP only through TCPRoutes);
//! - TCPRoute ports become `ports` only where a Service declares the workload's port
//!   `appProtocol: tcp` (both meshes then treat it as opaque TCP); on an HTTP port Istio would
//!   admit every HTTP request, OSM only the HTTPRouteGroup matches.

use std::collections::{BTreeMap, HashMap};

use kube::api::ObjectMeta;
use mesh_crds::NotificationLevel;
use mesh_crds::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, AuthorizationRule, Condition, Operation, RuleFrom, RuleTo, Source,
    WorkloadSelector,
};

use super::SOURCE_ANNOTATION;
use super::index::Index;
use super::names::{self, Planned};
use super::notify::{Notes, quote};
use super::regex_analysis::{Alternative, Analyzer, Domain, IstioForm, IstioMatch};
use super::resolve::{GrantedMatch, ResolvedTarget};

/// Rules one match may expand to (combinations of header alternatives).
const MAX_RULES_PER_MATCH: usize = 16;

/// A policy before its final name.
struct Draft {
    planned: Planned,
    labels: BTreeMap<String, String>,
    rules: Vec<AuthorizationRule>,
    source: String,
}

/// The policies for every resolved TrafficTarget plus the deny-all baselines.
pub(crate) fn translate_targets(
    targets: &[ResolvedTarget<'_>],
    index: &Index<'_>,
    analyzer: &mut Analyzer,
    notes: &mut Notes,
) -> Vec<AuthorizationPolicy> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut overlap_cache: HashMap<usize, Vec<usize>> = HashMap::new();
    for target in targets {
        let from = vec![RuleFrom { source: Source { principals: target.principals.clone(), ..Default::default() } }];
        let mut http_rules: Vec<AuthorizationRule> = Vec::new();
        for grant in &target.http {
            match http_rules_of(grant, &from, analyzer) {
                Ok(outcome) => {
                    for (level, message) in outcome.messages {
                        notes.push(level, &target.object, message);
                    }
                    http_rules.extend(outcome.rules);
                }
                Err(message) => notes.error(&target.object, message),
            }
        }
        let workloads = index.workloads_of(target.namespace, target.destination);
        if workloads.is_empty() {
            notes.error(
                &target.object,
                format!(
                    "no Deployment or StatefulSet in the input runs as ServiceAccount {}/{}, so no policy can select the destination pods; if such pods exist (another controller, a bare Pod), Istio allows all traffic to them: add their workload to the input",
                    target.namespace, target.destination
                ),
            );
            continue;
        }
        for &w in workloads {
            let workload = &index.workloads[w];
            if workload.labels.is_empty() {
                notes.error(
                    &target.object,
                    format!(
                        "{} has no pod-template labels to select its pods by; no policy is generated for it",
                        workload.reference()
                    ),
                );
                continue;
            }
            let overlapping = overlap_cache.entry(w).or_insert_with(|| {
                index
                    .select(workload.namespace, workload.labels)
                    .into_iter()
                    .filter(|&o| index.workloads[o].service_account != workload.service_account)
                    .collect()
            });
            if let Some(&other) = overlapping.first() {
                let other = &index.workloads[other];
                notes.error(
                    &target.object,
                    format!(
                        "the pod labels of {} ({}) also select the pods of {}, which runs as ServiceAccount {}: a policy selecting them would grant that ServiceAccount this access too, so none is generated for {} (it is denied everything); give its pod template a label the other workload lacks",
                        workload.reference(),
                        labels_text(workload.labels),
                        other.reference(),
                        other.service_account,
                        workload.name
                    ),
                );
                continue;
            }
            let last = workloads.last() == Some(&w);
            let mut rules = if last { std::mem::take(&mut http_rules) } else { http_rules.clone() };
            rules.extend(tcp_rules(target, w, index, &from, notes));
            let mut unique: Vec<AuthorizationRule> = Vec::with_capacity(rules.len());
            for rule in rules {
                if !unique.contains(&rule) {
                    unique.push(rule);
                }
            }
            let mut rules = unique;
            // Defense in depth: a rule without principals would admit every source.
            rules.retain(|r| !r.from.is_empty() && r.from.iter().all(|f| !f.source.principals.is_empty()));
            if rules.is_empty() {
                continue;
            }
            drafts.push(Draft {
                planned: Planned {
                    namespace: target.namespace.to_string(),
                    name: names::fit(&format!("{}-{}", target.name, workload.name)),
                    identity: format!("{}|{}/{}/{}", target.object, workload.kind, workload.namespace, workload.name),
                },
                labels: workload.labels.clone(),
                rules,
                source: target.object.clone(),
            });
        }
    }
    for workload in &index.workloads {
        if workload.labels.is_empty() {
            notes.warning(
                &workload.reference(),
                "no pod-template labels: no deny-all baseline can select its pods, so Istio allows all traffic to them unless another policy selects them",
            );
            continue;
        }
        let reference = workload.reference();
        drafts.push(Draft {
            planned: Planned {
                namespace: workload.namespace.to_string(),
                name: names::fit(&format!("deny-all-{}", workload.name)),
                identity: format!("deny-all|{reference}"),
            },
            labels: workload.labels.clone(),
            rules: Vec::new(),
            source: reference,
        });
    }
    let planned: Vec<&Planned> = drafts.iter().map(|d| &d.planned).collect();
    let (final_names, renamed) = names::resolve(&planned);
    for (identity, name) in renamed {
        let object = identity.split('|').next().unwrap_or_default().to_string();
        let object =
            if object == "deny-all" { identity.split('|').nth(1).unwrap_or_default().to_string() } else { object };
        notes.info(&object, format!("generated AuthorizationPolicy names collide; one is named {name}"));
    }
    let mut policies: Vec<AuthorizationPolicy> = drafts
        .into_iter()
        .zip(final_names)
        .map(|(draft, name)| AuthorizationPolicy {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(draft.planned.namespace),
                annotations: Some(BTreeMap::from([(SOURCE_ANNOTATION.to_string(), draft.source)])),
                ..Default::default()
            },
            spec: AuthorizationPolicySpec {
                selector: Some(WorkloadSelector { match_labels: draft.labels }),
                action: Some("ALLOW".to_string()),
                rules: draft.rules,
            },
        })
        .collect();
    policies.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    policies
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

struct HttpOutcome {
    rules: Vec<AuthorizationRule>,
    messages: Vec<(NotificationLevel, String)>,
}

fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn strings(form: &IstioForm) -> Vec<String> {
    form.alternatives
        .iter()
        .filter_map(|a| match a {
            Alternative::One(m) => Some(m.to_istio()),
            Alternative::PrefixAndSuffix(..) => None,
        })
        .collect()
}

fn describe(form: &IstioForm) -> String {
    form.alternatives
        .iter()
        .map(|a| match a {
            Alternative::One(m) => format!("{:?}", m.to_istio()),
            Alternative::PrefixAndSuffix(p, s) => format!("{:?} and {:?}", format!("{p}*"), format!("*{s}")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const REWRITE_HINT: &str = "rewrite the regex as a literal, a literal followed by `.*`, or `.*` followed by a literal (or list the alternatives with `|`)";

/// `match "<name>" of HTTPRouteGroup/ns/name`, formatted only when a message needs it.
struct Label<'l>(&'l str, &'l str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "match {:?} of {}", self.0, self.1)
    }
}

/// The rules for one granted match, or an ERROR message.
fn http_rules_of(grant: &GrantedMatch<'_>, from: &[RuleFrom], analyzer: &mut Analyzer) -> Result<HttpOutcome, String> {
    let m = grant.http_match;
    let label = Label(&m.name, &grant.group_ref);
    let not_translated = "this match is not translated, so the requests it allowed are denied";
    let mut messages = Vec::new();

    // Paths.
    let mut paths: Option<Vec<String>> = None;
    if let Some(regex) = m.path_regex.as_deref().filter(|p| !p.is_empty()) {
        let analysis = analyzer.analyze(regex, Domain::Path);
        let form = analysis.as_ref().as_ref().map_err(|reason| {
            format!("{label}: path regex {} cannot be expressed with Istio's exact/prefix/suffix path matching: {reason}; {not_translated}; {REWRITE_HINT}", quote(regex))
        })?;
        if form.alternatives.is_empty() {
            messages.push((NotificationLevel::Info, format!("{label}: path regex {} matches no path (paths start with '/'), so it never allowed anything; nothing to translate", quote(regex))));
            return Ok(HttpOutcome { rules: Vec::new(), messages });
        }
        if !form.is_exact() {
            messages.push((
                NotificationLevel::Warning,
                format!("{label}: path regex {} is translated to the narrower {}: {}; requests it allowed outside those are denied", quote(regex), describe(form), form.narrowing()),
            ));
        }
        if !form.matches_anything() {
            paths = Some(strings(form));
        }
    }

    // Methods.
    let mut methods: Option<Vec<String>> = None;
    if !m.methods.is_empty() && !m.methods.iter().any(|x| x == "*") {
        let mut list = Vec::new();
        for method in &m.methods {
            if !is_token(method) {
                continue; // No request carries such a method: leaving it out changes nothing.
            }
            if method.contains('*') {
                messages.push((NotificationLevel::Warning, format!("{label}: method {method:?} contains '*', which Istio would read as a wildcard; it is left out (narrower)")));
                continue;
            }
            if !list.contains(method) {
                list.push(method.clone());
            }
        }
        if list.is_empty() {
            messages.push((
                NotificationLevel::Info,
                format!("{label}: no usable method, so it never allowed anything; nothing to translate"),
            ));
            return Ok(HttpOutcome { rules: Vec::new(), messages });
        }
        methods = Some(list);
    }

    // Headers: each is AND'ed; a header's alternatives are OR'ed.
    let mut combinations: Vec<Vec<Condition>> = vec![Vec::new()];
    for (name, regex) in &grant.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || lower.starts_with(':') {
            return Err(format!(
                "{label}: header {name} cannot be matched exactly in Istio (the authority is compared case-insensitively there); {not_translated}"
            ));
        }
        if !is_token(&lower) || lower.contains(['[', ']']) {
            return Err(format!("{label}: {name:?} is not a valid header name; {not_translated}"));
        }
        let analysis = analyzer.analyze(regex, Domain::HeaderValue);
        let form = analysis.as_ref().as_ref().map_err(|reason| {
            format!("{label}: header {name} regex {} cannot be expressed with Istio's exact/prefix/suffix/presence matching: {reason}; {not_translated}; {REWRITE_HINT}", quote(regex))
        })?;
        if form.alternatives.is_empty() {
            messages.push((NotificationLevel::Info, format!("{label}: header {name} regex {} matches no value, so it never allowed anything; nothing to translate", quote(regex))));
            return Ok(HttpOutcome { rules: Vec::new(), messages });
        }
        if !form.is_exact() {
            messages.push((
                NotificationLevel::Warning,
                format!("{label}: header {name} regex {} is translated to the narrower {}: {}; requests it allowed outside those are denied", quote(regex), describe(form), form.narrowing()),
            ));
        }
        let key = format!("request.headers[{lower}]");
        let mut options: Vec<Vec<Condition>> = Vec::new();
        let singles = strings(form);
        if !singles.is_empty() {
            options.push(vec![Condition { key: key.clone(), values: singles, not_values: Vec::new() }]);
        }
        for alternative in &form.alternatives {
            if let Alternative::PrefixAndSuffix(prefix, suffix) = alternative {
                options.push(vec![
                    Condition {
                        key: key.clone(),
                        values: vec![IstioMatch::Prefix(prefix.clone()).to_istio()],
                        not_values: Vec::new(),
                    },
                    Condition {
                        key: key.clone(),
                        values: vec![IstioMatch::Suffix(suffix.clone()).to_istio()],
                        not_values: Vec::new(),
                    },
                ]);
            }
        }
        if combinations.len().saturating_mul(options.len()) > MAX_RULES_PER_MATCH {
            return Err(format!(
                "{label}: its header alternatives need more than {MAX_RULES_PER_MATCH} rules; {not_translated}; simplify the header regexes"
            ));
        }
        combinations = combinations
            .iter()
            .flat_map(|base| {
                options.iter().map(move |option| {
                    let mut next = base.clone();
                    next.extend(option.iter().cloned());
                    next
                })
            })
            .collect();
    }

    let rules = combinations
        .into_iter()
        .map(|when| {
            let mut operation = Operation {
                methods: methods.clone().unwrap_or_default(),
                paths: paths.clone().unwrap_or_default(),
                ..Default::default()
            };
            if operation.methods.is_empty() && operation.paths.is_empty() && when.is_empty() {
                // Keep the rule HTTP-only: without any HTTP field Istio would also admit TCP.
                operation.paths = vec![IstioMatch::Presence.to_istio()];
            }
            let to = if operation == Operation::default() { Vec::new() } else { vec![RuleTo { operation }] };
            AuthorizationRule { from: from.to_vec(), to, when }
        })
        .collect();
    Ok(HttpOutcome { rules, messages })
}

/// The `ports` rules of a target's TCPRoutes for workload `w`.
fn tcp_rules(
    target: &ResolvedTarget<'_>,
    w: usize,
    index: &Index<'_>,
    from: &[RuleFrom],
    notes: &mut Notes,
) -> Vec<AuthorizationRule> {
    if target.tcp.is_empty() {
        return Vec::new();
    }
    let workload = &index.workloads[w];
    let tcp_ports = index.tcp_ports(w);
    let mut rules = Vec::new();
    for (route, route_ref) in &target.tcp {
        let wanted = &route.spec.matches.ports;
        let ports: Vec<i32> = if wanted.is_empty() {
            notes.info(
                &target.object,
                format!(
                    "{route_ref} lists no ports: OSM grants every port, translated as the TCP ports (appProtocol: tcp) of {}: {}",
                    workload.reference(),
                    if tcp_ports.is_empty() { "none".to_string() } else { format!("{tcp_ports:?}") }
                ),
            );
            tcp_ports.clone()
        } else {
            let mut kept = Vec::new();
            for port in wanted {
                if tcp_ports.contains(port) {
                    if !kept.contains(port) {
                        kept.push(*port);
                    }
                } else {
                    notes.warning(
                        &target.object,
                        format!(
                            "{route_ref} port {port}: no Service declares container port {port} of {} with appProtocol: tcp; OSM applies TCPRoutes to TCP ports only and Istio would admit all HTTP requests on an HTTP port, so it is not translated (narrower); declare the Service port with appProtocol: tcp",
                            workload.reference()
                        ),
                    );
                }
            }
            kept
        };
        if ports.is_empty() {
            continue;
        }
        rules.push(AuthorizationRule {
            from: from.to_vec(),
            to: vec![RuleTo {
                operation: Operation { ports: ports.iter().map(ToString::to_string).collect(), ..Default::default() },
            }],
            when: Vec::new(),
        });
    }
    rules
}

/// The ERROR every TrafficTarget gets when only Gateway API is emitted.
pub(crate) fn gateway_api_only(all: &[(String, String)], notes: &mut Notes) {
    for (namespace, name) in all {
        notes.error(
            &super::notify::object_ref("TrafficTarget", namespace, name),
            "not translated: Gateway API (Standard channel) has no authorization, so this access control has no equivalent in the output; translate with target istio (AuthorizationPolicy) or keep OSM enforcing it until a mesh authorization policy is in place",
        );
    }
}
