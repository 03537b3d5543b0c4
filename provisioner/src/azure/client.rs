//! The ARM client: an `azure_core` pipeline (bearer token for the cloud's scope, retries of
//! 408/5xx and dropped connections honouring `Retry-After`, at most [`PIPELINE_RETRIES`] times per
//! call; 429 goes straight back to the reconciler, which requeues after `Retry-After` — see
//! [`ArmRetryPolicy`]), plain requests, and
//! long-running operations: the start of a write returns the polling URL, which the caller keeps
//! (in the CR status) and polls on later reconciles, so a restarted operator resumes instead of
//! writing again. azure_core's own `Poller` keeps its state in memory only, hence our polling.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{RetryHeaders, RetryPolicy};
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions, StatusCode, Transport, Url,
};

use super::error::{ArmError, Target};
use super::models::{CloudError, OperationStatus};

/// Retries the pipeline makes itself before an error reaches the reconciler.
pub const PIPELINE_RETRIES: u32 = 2;
/// Longest `Retry-After` honoured inside one call; longer ones become a requeue.
pub const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest `Retry-After` (or operation poll interval) taken from any answer: a server asking for
/// more is asked again after this long. Every wait the reconciler derives from ARM is at most this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest time one request may take, all reads included (no answer dripping forever).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An answer from ARM (any status).
#[derive(Clone, Debug)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

impl ArmResponse {
    /// A header by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// `Retry-After` (seconds or HTTP date), or `retry-after-ms`, at most [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        let parsed = if let Some(ms) = self.header("retry-after-ms").or(self.header("x-ms-retry-after-ms")) {
            ms.trim().parse::<u64>().ok().map(Duration::from_millis)
        } else {
            let value = self.header("retry-after")?.trim();
            match value.parse::<u64>() {
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                // A number too large for u64 is still a number: the cap applies.
                Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => Some(MAX_RETRY_AFTER),
                Err(_) => {
                    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
                    let delta = when.duration_since(jiff::Timestamp::now());
                    Some(Duration::try_from(delta).unwrap_or_default())
                }
            }
        };
        parsed.map(|d| d.min(MAX_RETRY_AFTER))
    }

    /// The error this answer amounts to.
    pub fn error(&self, operation: &str, target: Target) -> ArmError {
        let parsed: Option<CloudError> = serde_json::from_slice(&self.body).ok();
        let (code, message) = match parsed {
            Some(e) if !e.error.code.is_empty() => (e.error.code, e.error.message),
            _ => (
                status_code_name(self.status).to_string(),
                String::from_utf8_lossy(&self.body).chars().take(300).collect(),
            ),
        };
        ArmError::Response {
            operation: operation.to_string(),
            target,
            status: self.status,
            code,
            message,
            retry_after: self.retry_after(),
        }
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn status_code_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "HttpError",
    }
}

/// An azure_core error with its causes and, for a token endpoint's refusal, its
/// `error_description` (Microsoft Entra's AADSTS text; it never carries the secret).
fn error_text(error: &azure_core::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if let ErrorKind::HttpResponse { status, raw_response: Some(raw), .. } = error.kind() {
        let body: serde_json::Value = serde_json::from_slice(raw.body().as_ref()).unwrap_or_default();
        let description = body["error_description"]
            .as_str()
            .or(body["error"]["message"].as_str())
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        parts.push(format!("HTTP {}: {description}", u16::from(*status)));
    }
    parts.join(": ")
}

/// Told about every ARM request [`ArmClient::send`] makes, for metrics. The operator installs one
/// around each reconcile with [`observed`]; the provisioner itself keeps no counters.
pub trait ArmObserver: Send + Sync {
    /// One request: `operation` is the method and ARM resource type (e.g. `PUT managedClusters`,
    /// `GET operations`), `status` the HTTP status, or `None` when no answer came (no token, no
    /// connection). Pipeline retries inside one call count once, with the final answer.
    fn request(&self, operation: &str, status: Option<u16>);
}

tokio::task_local! {
    static OBSERVER: Arc<dyn ArmObserver>;
}

/// Runs `future` with `observer` told about every ARM request made inside it (on this task).
pub async fn observed<F: std::future::Future>(observer: Arc<dyn ArmObserver>, future: F) -> F::Output {
    OBSERVER.scope(observer, future).await
}

fn observe_request(operation: &str, status: Option<u16>) {
    let _ = OBSERVER.try_with(|observer| observer.request(operation, status));
}

/// `METHOD resourceType` of an ARM URL: the last resource type in its path (a provider action such
/// as `importImage` counts as its own type), so the label has few values whatever the names.
pub fn request_label(method: &Method, url: &Url) -> String {
    let segments: Vec<&str> = url.path_segments().map(|s| s.filter(|p| !p.is_empty()).collect()).unwrap_or_default();
    // After `providers/<Namespace>` the path alternates type/name; an odd tail is an action.
    let kind = match segments.iter().rposition(|s| s.eq_ignore_ascii_case("providers")) {
        Some(at) if at + 2 <= segments.len() => {
            let rest = &segments[at + 2..];
            if rest.is_empty() {
                segments[at + 1]
            } else if rest.len() % 2 == 1 {
                rest[rest.len() - 1]
            } else {
                rest[rest.len() - 2]
            }
        }
        _ => segments.last().copied().unwrap_or("root"),
    };
    format!("{} {kind}", method.as_str())
}

#[cfg(test)]
mod observer_tests {
    use super::*;

    fn label(method: Method, url: &str) -> String {
        request_label(&method, &Url::parse(url).expect("url"))
    }

    #[test]
    fn request_labels_name_the_resource_type_not_the_resource() {
        let base = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers";
        assert_eq!(
            label(Method::Put, &format!("{base}/Microsoft.ContainerService/managedClusters/c?api-version=1")),
            "PUT managedClusters"
        );
        assert_eq!(
            label(Method::Post, &format!("{base}/Microsoft.ContainerRegistry/registries/acr/importImage")),
            "POST importImage"
        );
        assert_eq!(
            label(
                Method::Get,
                "https://x/subscriptions/s/providers/Microsoft.ContainerService/locations/eastus/meshRevisionProfiles"
            ),
            "GET meshRevisionProfiles"
        );
        assert_eq!(
            label(
                Method::Get,
                "https://x/subscriptions/s/providers/Microsoft.ContainerService/locations/eastus/operations/123"
            ),
            "GET operations"
        );
        assert_eq!(label(Method::Get, "https://x/somewhere/else"), "GET else");
    }
}

/// Where the status of a long-running operation is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollingKind {
    /// `Azure-AsyncOperation`: a status body `{status: InProgress|Succeeded|Failed|Canceled}`.
    AzureAsyncOperation,
    /// `Location`: 202 while running, 200/204 when done.
    Location,
}

impl PollingKind {
    /// As stored in status (`AzureAsyncOperation` or `Location`).
    pub fn as_str(self) -> &'static str {
        match self {
            PollingKind::AzureAsyncOperation => "AzureAsyncOperation",
            PollingKind::Location => "Location",
        }
    }

    /// From the stored string.
    pub fn parse(value: &str) -> Option<PollingKind> {
        match value {
            "AzureAsyncOperation" => Some(PollingKind::AzureAsyncOperation),
            "Location" => Some(PollingKind::Location),
            _ => None,
        }
    }
}

/// A long-running operation that was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// URL to poll.
    pub polling_url: String,
    /// Which header it came from.
    pub kind: PollingKind,
    /// The server's suggested wait before the first poll.
    pub retry_after: Option<Duration>,
}

/// The result of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Nothing had to change; no write was made.
    NoChange,
    /// The resource already says what we want, but an operation is still running on it (e.g. one
    /// whose polling URL was lost): not done until that operation ends. No write was made.
    InFlight(String),
    /// The write completed synchronously.
    Done,
    /// The write started a long-running operation.
    Started(Started),
}

/// The state of a polled operation.
#[derive(Debug)]
pub enum PollOutcome {
    /// Still running; poll again after this long.
    Running(Duration),
    /// Done.
    Succeeded,
    /// Ended Failed or Canceled.
    Failed(ArmError),
}

/// A client of one ARM endpoint with one credential.
#[derive(Debug)]
pub struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
}

/// An ARM resource path as its segments (`subscriptions`, `<id>`, `resourceGroups`, `<name>`, …):
/// names are never joined into a string path, so none can add a segment, a query or a fragment.
pub type Segments<'a> = &'a [&'a str];

/// The HTTP transport: reqwest with the system roots plus the extra CAs of [`super::tls`].
pub fn transport() -> Result<Transport, ArmError> {
    let config = |message: String| ArmError::Config { context: "building the Azure HTTP client".into(), message };
    let mut certs = Vec::new();
    for pem in super::tls::extra_pems().map_err(|e| config(format!("reading extra CA file: {e}")))? {
        certs.extend(
            reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| config(format!("extra CA is not PEM: {e}")))?,
        );
    }
    let client = reqwest::ClientBuilder::new()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| config(e.to_string()))?;
    Ok(Transport::new(Arc::new(client)))
}

/// `endpoint/<segments>?api-version=…`; see [`ArmClient::url`].
pub fn resource_url(endpoint: &Url, segments: Segments<'_>, api_version: &str) -> Result<Url, ArmError> {
    let mut url = endpoint.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|()| ArmError::Config {
            context: format!("the Azure Resource Manager endpoint {endpoint}"),
            message: "cannot carry a path".into(),
        })?;
        path.pop_if_empty();
        for segment in segments {
            if segment.is_empty() || *segment == "." || *segment == ".." {
                return Err(ArmError::Config {
                    context: format!("ARM resource path {}", segments.join("/")),
                    message: format!("{segment:?} is not a resource name"),
                });
            }
            path.push(segment);
        }
    }
    url.query_pairs_mut().append_pair("api-version", api_version);
    Ok(url)
}

/// The pipeline's retry policy: a few quick retries of 408/500/502/503/504 and dropped
/// connections, each waiting at least the server's `Retry-After` (capped at
/// [`MAX_INLINE_RETRY_AFTER`]). 429 is not retried inside a call: as Azure Service Operator does,
/// throttling goes back to the reconciler, which requeues after `Retry-After` instead of holding
/// a worker asleep (azure_core's stock policies would wait any `Retry-After`, however long).
#[derive(Debug)]
pub struct ArmRetryPolicy {
    headers: RetryHeaders,
    max_wait: Duration,
}

impl ArmRetryPolicy {
    /// The policy with inline waits capped at `max_wait` (at most [`MAX_INLINE_RETRY_AFTER`]).
    pub fn with_max_wait(max_wait: Duration) -> Self {
        ArmRetryPolicy { max_wait: max_wait.min(MAX_INLINE_RETRY_AFTER), ..Default::default() }
    }
}

/// Statuses retried inside one call.
const INLINE_RETRY_STATUSES: &[StatusCode] = &[
    StatusCode::RequestTimeout,
    StatusCode::InternalServerError,
    StatusCode::BadGateway,
    StatusCode::ServiceUnavailable,
    StatusCode::GatewayTimeout,
];

impl Default for ArmRetryPolicy {
    fn default() -> Self {
        ArmRetryPolicy {
            headers: RetryHeaders { retry_headers: vec![RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS, RETRY_AFTER] },
            max_wait: MAX_INLINE_RETRY_AFTER,
        }
    }
}

#[async_trait::async_trait]
impl RetryPolicy for ArmRetryPolicy {
    fn is_expired(&self, duration_since_start: azure_core::time::Duration, retry_count: u32) -> bool {
        retry_count >= PIPELINE_RETRIES || duration_since_start >= azure_core::time::Duration::seconds(15)
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        Some(&self.headers)
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        INLINE_RETRY_STATUSES
    }

    fn sleep_duration(&self, retry_count: u32) -> azure_core::time::Duration {
        let ms = 200u64.saturating_mul(2u64.saturating_pow(retry_count)).min(2_000) + u64::from(rand_jitter());
        azure_core::time::Duration::milliseconds(ms as i64)
    }

    async fn wait(&self, retry_count: u32, retry_after: Option<azure_core::time::Duration>) {
        tokio::time::sleep(inline_wait(self.sleep_duration(retry_count), retry_after).min(self.max_wait)).await;
    }
}

/// The wait before an inline retry: our back-off, or the server's `Retry-After` when longer, but
/// never more than [`MAX_INLINE_RETRY_AFTER`] (whatever the server sent, negative or huge).
pub fn inline_wait(ours: azure_core::time::Duration, server: Option<azure_core::time::Duration>) -> Duration {
    let millis = |d: azure_core::time::Duration| u64::try_from(d.whole_milliseconds().max(0)).unwrap_or(u64::MAX);
    let ours = Duration::from_millis(millis(ours));
    let server = server.map(|d| Duration::from_millis(millis(d))).unwrap_or_default();
    ours.max(server).min(MAX_INLINE_RETRY_AFTER)
}

/// Up to 100 ms of jitter, from the clock (no RNG dependency for this).
fn rand_jitter() -> u8 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 100)
        as u8
}

/// Client options shared by the ARM pipeline and the credentials: our transport and retry policy.
pub fn client_options(transport: Transport) -> ClientOptions {
    client_options_capped(transport, MAX_INLINE_RETRY_AFTER)
}

/// [`client_options`] with inline retry waits capped at `max_wait` (tests that send many
/// throttled answers).
pub fn client_options_capped(transport: Transport, max_wait: Duration) -> ClientOptions {
    ClientOptions {
        transport: Some(transport),
        retry: RetryOptions::custom(Arc::new(ArmRetryPolicy::with_max_wait(max_wait))),
        ..Default::default()
    }
}

impl ArmClient {
    /// A client of the Resource Manager endpoint of `endpoints`, authenticating with `credential`
    /// for tokens of the endpoints' scope (the cloud's).
    pub fn new(
        endpoints: &super::cloud::Endpoints,
        credential: Arc<dyn TokenCredential>,
        transport: Transport,
    ) -> Result<Self, ArmError> {
        Self::with_options(endpoints, credential, client_options(transport))
    }

    /// As [`ArmClient::new`], with other client options (tests: a shorter retry wait).
    pub fn with_options(
        endpoints: &super::cloud::Endpoints,
        credential: Arc<dyn TokenCredential>,
        options: ClientOptions,
    ) -> Result<Self, ArmError> {
        let endpoint = Url::parse(&endpoints.arm).map_err(|e| ArmError::Config {
            context: format!("the Azure Resource Manager endpoint {:?}", endpoints.arm),
            message: e.to_string(),
        })?;
        let scope = endpoints.scope.clone();
        let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope.as_str()]));
        let pipeline = Pipeline::new(
            Some("mesh-operator"),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(ArmClient { pipeline, endpoint })
    }

    /// The ARM endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `endpoint/<segment>/<segment>…?api-version=…`, each segment percent-encoded (a `/`, `?`,
    /// `#` or `%` in a name stays inside its segment); empty, `.` and `..` segments are refused.
    pub fn url(&self, segments: Segments<'_>, api_version: &str) -> Result<Url, ArmError> {
        resource_url(&self.endpoint, segments, api_version)
    }

    /// Sends one request and returns ARM's answer whatever its status. Only errors without an
    /// answer (no token, no connection) are errors here.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Vec<u8>>,
        operation: &str,
    ) -> Result<ArmResponse, ArmError> {
        if url.host_str() != self.endpoint.host_str()
            || url.port_or_known_default() != self.endpoint.port_or_known_default()
        {
            // A polling URL pointing elsewhere would receive our bearer token.
            return Err(ArmError::Decode {
                operation: operation.to_string(),
                message: format!("refusing to send a token to {url}, which is not the ARM endpoint {}", self.endpoint),
            });
        }
        let label = request_label(&method, &url);
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        for (name, value) in headers {
            request.insert_header(*name, value.clone());
        }
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(body);
        }
        let ctx = Context::new();
        let options = PipelineSendOptions { skip_checks: true, ..Default::default() };
        let sent = self.pipeline.send(&ctx, &mut request, Some(options)).await;
        observe_request(&label, sent.as_ref().ok().map(|r| u16::from(r.status())));
        let response = sent.map_err(|e| {
            let message = error_text(&e);
            match e.kind() {
                ErrorKind::Credential => ArmError::Credential { operation: operation.to_string(), message },
                ErrorKind::Io | ErrorKind::Connection => {
                    ArmError::Transport { operation: operation.to_string(), message }
                }
                _ if message.contains("token") || message.contains("credential") || message.contains("AADSTS") => {
                    ArmError::Credential { operation: operation.to_string(), message }
                }
                _ => ArmError::Transport { operation: operation.to_string(), message },
            }
        })?;
        let (status, headers, body) = response.deconstruct();
        let headers = headers.iter().map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_string())).collect();
        Ok(ArmResponse { status: u16::from(status), headers, body: body.to_vec() })
    }

    /// The long-running operation a write answer announces, if any.
    pub fn started(response: &ArmResponse) -> Option<Started> {
        let retry_after = response.retry_after();
        if let Some(url) = response.header("azure-asyncoperation") {
            return Some(Started { polling_url: url.to_string(), kind: PollingKind::AzureAsyncOperation, retry_after });
        }
        if response.status == 202
            && let Some(url) = response.header("location")
        {
            return Some(Started { polling_url: url.to_string(), kind: PollingKind::Location, retry_after });
        }
        None
    }

    /// Polls a stored operation once.
    pub async fn poll(
        &self,
        polling_url: &str,
        kind: PollingKind,
        operation: &str,
        target: Target,
    ) -> Result<PollOutcome, ArmError> {
        let url = Url::parse(polling_url).map_err(|e| ArmError::Decode {
            operation: operation.to_string(),
            message: format!("stored polling URL is not a URL: {e}"),
        })?;
        let response = self.send(Method::Get, url, &[], None, operation).await?;
        let wait = response.retry_after().unwrap_or(Duration::from_secs(5)).max(Duration::from_millis(100));
        match kind {
            PollingKind::Location => match response.status {
                202 => Ok(PollOutcome::Running(wait)),
                200..=299 => Ok(PollOutcome::Succeeded),
                // Throttled polling: poll again. Any other status is the operation's final error.
                429 => Err(response.error(operation, target)),
                _ => Ok(PollOutcome::Failed(response.error(operation, target))),
            },
            PollingKind::AzureAsyncOperation => {
                if !response.is_success() {
                    return Err(response.error(operation, target));
                }
                let status: OperationStatus = serde_json::from_slice(&response.body).map_err(|e| ArmError::Decode {
                    operation: operation.to_string(),
                    message: format!("operation status: {e}"),
                })?;
                match status.status.as_str() {
                    "Succeeded" => Ok(PollOutcome::Succeeded),
                    "Failed" | "Canceled" | "Cancelled" => {
                        let detail = status.error.unwrap_or_default();
                        Ok(PollOutcome::Failed(ArmError::OperationFailed {
                            operation: operation.to_string(),
                            target,
                            status: status.status,
                            code: if detail.code.is_empty() { "OperationFailed".into() } else { detail.code },
                            message: detail.message,
                        }))
                    }
                    _ => Ok(PollOutcome::Running(wait)),
                }
            }
        }
    }
}

#[cfg(test)]
mod hostile_answer_tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> ArmResponse {
        ArmResponse {
            status: 429,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn names_stay_inside_their_path_segment() {
        let endpoint = Url::parse("https://management.azure.com").expect("url");
        let segments = ["subscriptions", "s", "resourceGroups", "rg/../x?y#z%41", "providers", "P", "t", "n"];
        let url = resource_url(&endpoint, &segments, "2024-09-01").expect("url");
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/s/resourceGroups/rg%2F..%2Fx%3Fy%23z%2541/providers/P/t/n?api-version=2024-09-01"
        );
        assert_eq!(url.path_segments().map(|s| s.count()), Some(8));
        assert_eq!(url.query_pairs().count(), 1, "no query smuggled in: {url}");
        for bad in ["", ".", ".."] {
            assert!(resource_url(&endpoint, &["subscriptions", bad], "1").is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn retry_after_from_an_answer_is_capped() {
        for headers in [
            vec![("retry-after", "1000000000000")],
            vec![("retry-after", "99999999999999999999999999")],
            vec![("retry-after-ms", "18446744073709551615")],
            vec![("retry-after", "Wed, 01 Jan 2200 00:00:00 GMT")],
        ] {
            assert_eq!(response(&headers).retry_after(), Some(MAX_RETRY_AFTER), "{headers:?}");
        }
        assert_eq!(response(&[("retry-after", "7")]).retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(response(&[("retry-after", "-5")]).retry_after(), None);
        assert_eq!(response(&[("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")]).retry_after(), Some(Duration::ZERO));
    }

    #[test]
    fn an_inline_wait_never_exceeds_its_cap() {
        use azure_core::time::Duration as Span;
        assert_eq!(
            inline_wait(Span::milliseconds(200), Some(Span::seconds(1_000_000_000_000))),
            MAX_INLINE_RETRY_AFTER
        );
        assert_eq!(inline_wait(Span::milliseconds(200), Some(Span::seconds(i64::MAX))), MAX_INLINE_RETRY_AFTER);
        assert_eq!(inline_wait(Span::milliseconds(200), Some(Span::seconds(-40))), Duration::from_millis(200));
        assert_eq!(inline_wait(Span::milliseconds(200), None), Duration::from_millis(200));
    }
}
