//! Istio AuthorizationPolicy as the sidecar enforces it, over the policies' JSON (so that every
//! field is seen; a field this model does not know makes it panic rather than misjudge):
//! DENY policies first (any matching rule denies); then, if any ALLOW policy selects the
//! workload, some ALLOW rule must match; else allowed. Strings: exact, `abc*`, `*abc`, `*`.
//! Rules with HTTP-only fields (methods, paths, hosts, request headers) never match a TCP
//! connection in an ALLOW policy, and have those fields ignored in a DENY policy (Istio's
//! documented behaviour for TCP).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::translate_support::istio_str;

/// What a request looks like to the destination sidecar.
#[derive(Clone, Debug)]
pub struct IstioRequest {
    pub source_namespace: String,
    pub source_sa: String,
    /// Destination port at the pod.
    pub port: i32,
    /// `None` for a TCP connection.
    pub http: Option<HttpRequest>,
}

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: BTreeMap<String, String>,
}

/// The destination pod.
#[derive(Clone, Debug)]
pub struct IstioPod {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// `field` (a list) absent, or some entry matches; `not_field` absent, or none matches.
fn field_ok(object: &Value, field: &str, not_field: &str, value: Option<&str>, fold_case: bool) -> bool {
    let m =
        |p: &str, v: &str| if fold_case { istio_str(&p.to_lowercase(), &v.to_lowercase()) } else { istio_str(p, v) };
    let positive = object.get(field).map(strings);
    let negative = object.get(not_field).map(strings);
    let pos_ok = match (&positive, value) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(list), Some(v)) => list.iter().any(|p| m(p, v)),
    };
    let neg_ok = match (&negative, value) {
        (None, _) => true,
        (Some(_), None) => true,
        (Some(list), Some(v)) => !list.iter().any(|p| m(p, v)),
    };
    pos_ok && neg_ok
}

fn check_keys(object: &Value, known: &[&str], what: &str) {
    if let Some(map) = object.as_object() {
        for key in map.keys() {
            assert!(known.contains(&key.as_str()), "the Istio model does not know {what}.{key}: {object}");
        }
    }
}

fn source_ok(source: &Value, req: &IstioRequest) -> bool {
    check_keys(
        source,
        &["principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks"],
        "source",
    );
    let principal = format!("cluster.local/ns/{}/sa/{}", req.source_namespace, req.source_sa);
    field_ok(source, "principals", "notPrincipals", Some(&principal), false)
        && field_ok(source, "namespaces", "notNamespaces", Some(&req.source_namespace), false)
        && field_ok(source, "ipBlocks", "notIpBlocks", None, false)
}

const HTTP_ONLY: [&str; 6] = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"];

fn operation_ok(op: &Value, req: &IstioRequest, deny: bool) -> bool {
    check_keys(
        op,
        &["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"],
        "operation",
    );
    let port = req.port.to_string();
    let ports_ok = field_ok(op, "ports", "notPorts", Some(&port), false);
    match &req.http {
        None => {
            let http_only = HTTP_ONLY.iter().any(|f| op.get(*f).is_some());
            ports_ok && (deny || !http_only)
        }
        Some(h) => {
            let host_ok = field_ok(op, "hosts", "notHosts", Some(&h.authority), true)
                || h.authority
                    .rsplit_once(':')
                    .is_some_and(|(host, _)| field_ok(op, "hosts", "notHosts", Some(host), true));
            let path = h.path.split('?').next().unwrap_or_default();
            ports_ok
                && host_ok
                && field_ok(op, "methods", "notMethods", Some(&h.method), false)
                && field_ok(op, "paths", "notPaths", Some(path), false)
        }
    }
}

fn condition_ok(c: &Value, req: &IstioRequest, deny: bool) -> bool {
    check_keys(c, &["key", "values", "notValues"], "condition");
    let key = c.get("key").and_then(Value::as_str).unwrap_or_default();
    let value: Option<String> =
        if let Some(name) = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) {
            match &req.http {
                None => return deny, // HTTP-only: never matches TCP in ALLOW, ignored in DENY
                Some(h) if name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host") => {
                    Some(h.authority.clone())
                }
                Some(h) => h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()),
            }
        } else {
            match key {
                "source.principal" => Some(format!("cluster.local/ns/{}/sa/{}", req.source_namespace, req.source_sa)),
                "source.namespace" => Some(req.source_namespace.clone()),
                "destination.port" => Some(req.port.to_string()),
                other => panic!("the Istio model does not know the condition key {other}"),
            }
        };
    field_ok(c, "values", "notValues", value.as_deref(), false) && value.is_some()
}

fn rule_ok(rule: &Value, req: &IstioRequest, deny: bool) -> bool {
    check_keys(rule, &["from", "to", "when"], "rule");
    let list = |f: &str| rule.get(f).and_then(Value::as_array).cloned().unwrap_or_default();
    let (from, to, when) = (list("from"), list("to"), list("when"));
    let from_ok = from.is_empty()
        || from.iter().any(|f| {
            check_keys(f, &["source"], "from");
            source_ok(f.get("source").unwrap_or(&Value::Null), req)
        });
    let to_ok = to.is_empty()
        || to.iter().any(|t| {
            check_keys(t, &["operation"], "to");
            operation_ok(t.get("operation").unwrap_or(&Value::Null), req, deny)
        });
    from_ok && to_ok && when.iter().all(|c| condition_ok(c, req, deny))
}

/// Whether the sidecar of `pod` admits `req` under `policies` (AuthorizationPolicies as JSON).
pub fn istio_allows(policies: &[Value], pod: &IstioPod, req: &IstioRequest) -> bool {
    let mut allow_policies = Vec::new();
    for p in policies {
        if p.pointer("/metadata/namespace").and_then(Value::as_str) != Some(pod.namespace.as_str()) {
            continue;
        }
        let spec = p.get("spec").cloned().unwrap_or(Value::Null);
        check_keys(&spec, &["selector", "action", "rules"], "spec");
        let selected = spec
            .pointer("/selector/matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|labels| labels.iter().all(|(k, v)| pod.labels.get(k).map(String::as_str) == v.as_str()));
        if !selected {
            continue;
        }
        let rules = spec.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        match spec.get("action").and_then(Value::as_str).unwrap_or("ALLOW") {
            "DENY" => {
                if rules.iter().any(|r| rule_ok(r, req, true)) {
                    return false;
                }
            }
            "ALLOW" => allow_policies.push(rules),
            other => panic!("the Istio model does not know action {other}"),
        }
    }
    allow_policies.is_empty() || allow_policies.iter().any(|rules| rules.iter().any(|r| rule_ok(r, req, false)))
}
