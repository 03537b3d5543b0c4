//! The emulator's HTTPS server and its routes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{Cluster, FaultKind, OpKind, Operation, Seen, State, lower, merge};

/// Returned to hyper to drop a connection without an answer.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: Arc<Mutex<State>>,
    endpoint: String,
) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = service_fn(move |request| {
                let state = state.clone();
                let endpoint = endpoint.clone();
                async move { handle(request, state, endpoint).await }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

pub(crate) enum Reply {
    Drop,
    Answer(u16, Vec<(String, String)>, Value),
    /// Exactly these status, headers and body bytes (fault injection of arbitrary answers).
    Raw(u16, Vec<(String, String)>, Vec<u8>),
}

pub(crate) fn answer(status: u16, body: Value) -> Reply {
    Reply::Answer(status, Vec::new(), body)
}

pub(crate) fn arm_error(status: u16, code: &str, message: &str) -> Reply {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    endpoint: String,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let headers = request.headers().clone();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let reply = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let reply = route(&mut s, &endpoint, &method, &path, &query, &headers, &body);
        let status = match &reply {
            Reply::Drop => 0,
            Reply::Answer(status, _, _) | Reply::Raw(status, _, _) => *status,
        };
        s.seen.push(Seen { method: method.clone(), path: path.clone(), status });
        reply
    };
    match reply {
        Reply::Drop => Err(Dropped),
        Reply::Raw(status, headers, body) => {
            let mut response =
                Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
            for (k, v) in headers {
                response = response.header(k, v);
            }
            Ok(response.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
        }
        Reply::Answer(status, extra, body) => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", "application/json; charset=utf-8")
                .header("x-ms-request-id", uuidish(&path, status));
            for (k, v) in extra {
                response = response.header(k, v);
            }
            let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap_or_default() };
            Ok(response.body(Full::new(Bytes::from(bytes))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
        }
    }
}

fn uuidish(seed: &str, n: u16) -> String {
    format!("{:016x}-{n:04}", mesh_provisioner::topology::fnv1a(seed.as_bytes()) ^ rand::random::<u64>())
}

/// Consumes the first matching fault of the kinds `pick` accepts.
fn take_fault(s: &mut State, method: &str, path: &str, pick: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
    let path = path.to_ascii_lowercase();
    let fault = s.faults.iter_mut().find(|f| {
        f.remaining > 0 && (f.method == "*" || f.method == method) && path.contains(&f.path_contains) && pick(&f.kind)
    })?;
    fault.remaining -= 1;
    Some(fault.kind.clone())
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(
    s: &mut State,
    endpoint: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    match take_fault(s, method, path, |k| {
        matches!(k, FaultKind::Status { .. } | FaultKind::Drop | FaultKind::Raw { .. })
    }) {
        Some(FaultKind::Drop) => return Reply::Drop,
        Some(FaultKind::Raw { status, headers, body }) => return Reply::Raw(status, headers, body),
        Some(FaultKind::Status { status, code, retry_after }) => {
            let mut extra = Vec::new();
            if let Some(seconds) = retry_after {
                extra.push(("retry-after".to_string(), seconds.to_string()));
            }
            let message = match status {
                429 => {
                    "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00."
                }
                _ => "An internal server error occurred; please retry.",
            };
            return Reply::Answer(status, extra, json!({"error": {"code": code, "message": message}}));
        }
        _ => {}
    }

    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let lowered: Vec<String> = segments.iter().map(|p| p.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lowered.iter().map(String::as_str).collect();

    // Microsoft Entra token endpoint: client credentials.
    if method == "POST" && l.len() == 4 && l[1..] == ["oauth2", "v2.0", "token"] {
        let client_id = form_value(body, "client_id").unwrap_or_default();
        let secret = form_value(body, "client_secret").unwrap_or_default();
        let scope = form_value(body, "scope").unwrap_or_default();
        if s.principals.get(&client_id).is_none_or(|expected| *expected != secret) {
            return answer(
                401,
                json!({
                    "error": "invalid_client",
                    "error_description": format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
                    "error_codes": [7000215],
                }),
            );
        }
        if scope != "https://management.azure.com/.default" {
            return answer(
                400,
                json!({"error": "invalid_scope", "error_description": format!("AADSTS70011: The provided value for scope {scope} is not valid."), "error_codes": [70011]}),
            );
        }
        s.next_id += 1;
        let token = format!("emulator-token-{}-{}", s.next_id, rand::random::<u32>());
        s.tokens.insert(token.clone());
        return answer(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
        );
    }

    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.tokens.contains(t));
    if !authorized {
        return arm_error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid or missing: authenticate with a token from the token endpoint.",
        );
    }
    if !query.split('&').any(|p| p.starts_with("api-version=")) {
        return arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }

    match (method, l.as_slice()) {
        (
            "GET" | "PUT",
            ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.containerservice", "managedclusters", _],
        ) => {
            let id = lower(path);
            if method == "GET" {
                get_cluster(s, method, path, &id)
            } else {
                put_cluster(s, endpoint, path, &id, headers, body)
            }
        }
        (
            "GET",
            ["subscriptions", _, "providers", "microsoft.containerservice", "locations", _, "meshrevisionprofiles"],
        ) => answer(200, s.revisions.clone()),
        ("GET", ["subscriptions", _, "providers", "microsoft.containerservice", "locations", _, "operations", id]) => {
            match s.operations.get(*id) {
                None => arm_error(404, "NotFound", "The operation was not found."),
                Some(op) => {
                    let status = op.finished.clone().unwrap_or_else(|| "InProgress".to_string());
                    let mut body = json!({"name": id, "status": status, "startTime": "2025-01-01T00:00:00Z"});
                    if status == "Failed" {
                        body["error"] = json!({"code": op.fail.clone().unwrap_or_default(), "message": "The operation failed in the emulated control plane; retry it."});
                    }
                    Reply::Answer(200, vec![("retry-after".into(), "1".into())], body)
                }
            }
        }
        (
            "POST",
            [
                "subscriptions",
                sub,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                name,
                "importimage",
            ],
        ) => {
            let registry_path = &path[..path.len() - "/importImage".len()];
            import_image(s, endpoint, path, &lower(registry_path), sub, name, body)
        }
        (
            "GET",
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerregistry",
                "locations",
                _,
                "operationresults",
                "operationstatuses",
                id,
            ],
        ) => match s.operations.get(*id) {
            None => arm_error(404, "NotFound", "The operation was not found."),
            Some(op) => match op.finished.as_deref() {
                None => Reply::Answer(
                    202,
                    vec![("location".into(), format!("{endpoint}{path}?{query}")), ("retry-after".into(), "1".into())],
                    Value::Null,
                ),
                Some("Succeeded") => answer(200, json!({"status": "Succeeded"})),
                Some(_) => arm_error(
                    500,
                    &op.fail.clone().unwrap_or_else(|| "InternalServerError".into()),
                    "The image import failed in the emulated registry; retry it.",
                ),
            },
        },
        (
            "GET" | "PUT" | "DELETE",
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                _,
                "providers",
                "microsoft.authorization",
                "roleassignments",
                name,
            ],
        ) => {
            let scope_len = path.len() - "/providers/Microsoft.Authorization/roleAssignments/".len() - name.len();
            super::roles::role_assignment(s, method, &path[..scope_len], name, body)
        }
        _ => {
            arm_error(404, "InvalidResourceType", &format!("The resource type could not be found for {method} {path}."))
        }
    }
}

fn cluster_body(cluster: &Cluster) -> Value {
    let mut value = cluster.value.clone();
    value["etag"] = json!(format!("\"{}\"", cluster.etag));
    value
}

fn not_found_cluster(path: &str) -> Reply {
    let name = path.rsplit('/').next().unwrap_or_default();
    arm_error(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.ContainerService/managedClusters/{name}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn get_cluster(s: &mut State, method: &str, path: &str, id: &str) -> Reply {
    let Some(cluster) = s.clusters.get(id) else { return not_found_cluster(path) };
    let body = cluster_body(cluster);
    let etag = format!("\"{}\"", cluster.etag);
    // Someone else changes the cluster right after our read.
    if let Some(FaultKind::ExternalChange(patch)) =
        take_fault(s, method, path, |k| matches!(k, FaultKind::ExternalChange(_)))
        && let Some(cluster) = s.clusters.get_mut(id)
    {
        merge(&mut cluster.value, &patch);
        cluster.etag += 1;
    }
    Reply::Answer(200, vec![("etag".into(), etag)], body)
}

fn put_cluster(s: &mut State, endpoint: &str, path: &str, id: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
    let Some(cluster) = s.clusters.get(id) else { return not_found_cluster(path) };
    if let Some(if_match) = headers.get("if-match").and_then(|v| v.to_str().ok())
        && if_match != "*"
        && if_match.trim_matches('"') != cluster.etag.to_string()
    {
        return arm_error(
            412,
            "PreconditionFailed",
            "Operation failed because the precondition 'If-Match' is not satisfied: the managed cluster changed since it was read.",
        );
    }
    if cluster.busy.is_some() {
        return arm_error(
            409,
            "OperationNotAllowed",
            "Operation is not allowed because there's an in progress update managed cluster operation. Please wait for it to finish before starting a new operation.",
        );
    }
    let Ok(wanted) = serde_json::from_slice::<Value>(body) else {
        return arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    let osm = wanted["properties"]["addonProfiles"]["openServiceMesh"]["enabled"].as_bool() == Some(true);
    let istio = wanted["properties"]["serviceMeshProfile"]["mode"].as_str() == Some("Istio");
    if osm && istio {
        return arm_error(
            400,
            "BadRequest",
            "Istio-based service mesh add-on cannot be enabled on a cluster with the Open Service Mesh add-on enabled. Disable the Open Service Mesh add-on first.",
        );
    }
    let cluster_path = path.to_string();
    let fail = match take_fault(s, "PUT", &cluster_path, |k| matches!(k, FaultKind::FailOperation { .. })) {
        Some(FaultKind::FailOperation { code }) => Some(code),
        _ => None,
    };
    let duration = match take_fault(s, "PUT", &cluster_path, |k| matches!(k, FaultKind::SlowOperation(_))) {
        Some(FaultKind::SlowOperation(d)) => d,
        _ => s.operation_duration,
    };
    s.next_id += 1;
    let op_id = format!("{:08x}-0000-4000-8000-{:012x}", rand::random::<u32>(), s.next_id);
    let Some(cluster) = s.clusters.get_mut(id) else { return not_found_cluster(path) };
    let before = cluster.value.clone();
    for field in ["addonProfiles", "serviceMeshProfile"] {
        match wanted["properties"].get(field) {
            Some(v) if !v.is_null() => cluster.value["properties"][field] = v.clone(),
            _ => {
                if let Some(props) = cluster.value["properties"].as_object_mut() {
                    props.remove(field);
                }
            }
        }
    }
    if let Some(tags) = wanted.get("tags") {
        cluster.value["tags"] = tags.clone();
    }
    cluster.value["properties"]["provisioningState"] = json!("Updating");
    cluster.etag += 1;
    cluster.busy = Some(op_id.clone());
    let subscription = cluster.subscription.clone();
    let location = cluster.location.clone();
    let body = cluster_body(cluster);
    s.operations.insert(
        op_id.clone(),
        Operation {
            kind: OpKind::Cluster { cluster_id: id.to_string(), before },
            done_at: Instant::now() + duration,
            fail,
            finished: None,
        },
    );
    let async_url = format!(
        "{endpoint}/subscriptions/{subscription}/providers/Microsoft.ContainerService/locations/{location}/operations/{op_id}?api-version=2024-09-01"
    );
    Reply::Answer(200, vec![("azure-asyncoperation".into(), async_url), ("retry-after".into(), "1".into())], body)
}

fn import_image(
    s: &mut State,
    endpoint: &str,
    path: &str,
    registry_id: &str,
    subscription: &str,
    name: &str,
    body: &[u8],
) -> Reply {
    let Some(registry) = s.registries.get(registry_id) else {
        return arm_error(
            404,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.ContainerRegistry/registries/{name}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        );
    };
    if registry.forbidden {
        return arm_error(
            403,
            "AuthorizationFailed",
            &format!(
                "The client '{}' with object id '00000000-0000-0000-0000-0000000000bb' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/importImage/action' over scope '{registry_id}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                super::CLIENT_ID
            ),
        );
    }
    let Ok(parameters) = serde_json::from_slice::<Value>(body) else {
        return arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    if parameters["source"]["sourceImage"].as_str().is_none_or(str::is_empty) {
        return arm_error(400, "InvalidParameter", "source.sourceImage is required.");
    }
    let tags: Vec<String> = parameters["targetTags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let force = parameters["mode"].as_str() == Some("Force");
    if !force && let Some(existing) = tags.iter().find(|t| registry.tags.contains(*t)) {
        return arm_error(
            409,
            "Conflict",
            &format!("Tag {existing} already exists in the target registry; use mode Force to overwrite it."),
        );
    }
    let location = registry.location.clone();
    let fail = match take_fault(s, "POST", path, |k| matches!(k, FaultKind::FailOperation { .. })) {
        Some(FaultKind::FailOperation { code }) => Some(code),
        _ => None,
    };
    let duration = match take_fault(s, "POST", path, |k| matches!(k, FaultKind::SlowOperation(_))) {
        Some(FaultKind::SlowOperation(d)) => d,
        _ => s.operation_duration,
    };
    s.next_id += 1;
    let op_id = format!("registries-{:08x}-0000-4000-8000-{:012x}", rand::random::<u32>(), s.next_id);
    s.operations.insert(
        op_id.clone(),
        Operation {
            kind: OpKind::Import { registry_id: registry_id.to_string(), tags },
            done_at: Instant::now() + duration,
            fail,
            finished: None,
        },
    );
    let location_url = format!(
        "{endpoint}/subscriptions/{subscription}/providers/Microsoft.ContainerRegistry/locations/{location}/operationResults/operationStatuses/{op_id}?api-version=2023-07-01"
    );
    Reply::Answer(202, vec![("location".into(), location_url), ("retry-after".into(), "1".into())], Value::Null)
}
