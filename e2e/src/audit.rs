//! The API server's audit log, as the tests read it: every request the operator really made (its
//! verb, resource, namespace, name and answer), to compare with its ClusterRole and to prove what
//! it did not do (read a Secret it has no business with).
//!
//! The local control plane is started with `--apiserver-args` (no change to `e2e/cluster`): a
//! policy logging request metadata of everyone but the control plane's own components and nodes.
//! Impersonated requests (the suites authenticate as the operator's ServiceAccount that way) carry
//! the ServiceAccount in `impersonatedUser`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Metadata of requests from everyone but the control plane's components, once each (at
/// ResponseComplete, or Panic).
const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver", "system:kube-proxy"]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
- level: Metadata
"#;

/// Writes the policy into `workdir`; returns the log path and the `--apiserver-args` value.
pub fn apiserver_args(workdir: &Path) -> Result<(PathBuf, String), String> {
    let policy = workdir.join("audit-policy.yaml");
    std::fs::write(&policy, POLICY).map_err(|e| format!("writing {}: {e}", policy.display()))?;
    let log = workdir.join("audit.log");
    let args = format!(
        "--audit-policy-file={} --audit-log-path={} --audit-log-format=json --audit-log-mode=blocking",
        policy.display(),
        log.display()
    );
    Ok((log, args))
}

/// One request, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    /// API group (`""` for core).
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
    /// Verb as RBAC sees it (`get`, `list`, `watch`, `create`, `patch`, …).
    pub verb: String,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// HTTP status of the answer.
    pub code: u16,
    /// The request URI (with its query: label selectors, dry run…).
    pub uri: String,
}

impl Request {
    /// `verb group/resource`, as RBAC rules are read.
    pub fn rule(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        format!("{} {group}/{}", self.verb, self.resource)
    }
}

/// Where the log ends now: pass it to [`requests_of`] to read only what comes after.
pub fn mark(log: &Path) -> usize {
    std::fs::metadata(log).map(|m| m.len() as usize).unwrap_or_default()
}

/// The resource requests made as `user` (directly or impersonated) after `since` (a [`mark`]), in
/// log order.
pub fn requests_of(log: &Path, user: &str, since: usize) -> Vec<Request> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(since..).unwrap_or_default());
    let mut requests = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let acting =
            event["impersonatedUser"]["username"].as_str().or(event["user"]["username"].as_str()).unwrap_or_default();
        if acting != user {
            continue;
        }
        let object = &event["objectRef"];
        let Some(resource) = object["resource"].as_str() else { continue };
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        requests.push(Request {
            group: object["apiGroup"].as_str().unwrap_or_default().to_string(),
            resource,
            verb: event["verb"].as_str().unwrap_or_default().to_string(),
            namespace: object["namespace"].as_str().map(str::to_string),
            name: object["name"].as_str().map(str::to_string),
            code: event["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
            uri: event["requestURI"].as_str().unwrap_or_default().to_string(),
        });
    }
    requests
}

/// Requests refused with 403 Forbidden, as `verb group/resource namespace/name`.
pub fn forbidden(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.code == 403)
        .map(|r| {
            format!("{} {}/{}", r.rule(), r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default())
        })
        .collect()
}

/// Verbs that change state, as the audit log names them.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The writes among `requests`, as `verb group/resource namespace/name (code)`: what a steady
/// installation must not make. Only the requests of the user read count, so the writes of other
/// controllers (OSM's real control plane, the cluster's own) never do.
pub fn writes(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| WRITE_VERBS.contains(&r.verb.as_str()))
        .map(|r| {
            let namespace = r.namespace.clone().unwrap_or_default();
            format!("{} {namespace}/{} ({})", r.rule(), r.name.clone().unwrap_or_default(), r.code)
        })
        .collect()
}

/// Every `verb group/resource` used. A server-side apply is a `patch` that may create the object
/// (RBAC then checks `create` too), so a patch counts as a use of `create` as well.
pub fn used_rules(requests: &[Request]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for request in requests {
        used.insert(request.rule());
        if request.verb == "patch" && request.uri.contains("fieldManager=") {
            let create = Request { verb: "create".into(), ..request.clone() };
            used.insert(create.rule());
        }
    }
    used
}
