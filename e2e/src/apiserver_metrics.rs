//! The API server's own request counters (`apiserver_request_total`), so tests can assert how
//! many writes something made, as the server saw them.

use std::collections::BTreeMap;

use kube::Client;

/// Verbs that change state.
pub const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// One counter series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// verb label.
    pub verb: String,
    /// group label.
    pub group: String,
    /// resource label.
    pub resource: String,
    /// subresource label.
    pub subresource: String,
}

/// Reads `apiserver_request_total`, summed over codes and scopes.
pub async fn request_totals(client: &Client) -> BTreeMap<Series, u64> {
    let request = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(request).await.expect("GET /metrics");
    parse(&text)
}

/// Parses the Prometheus text format for `apiserver_request_total`.
pub fn parse(text: &str) -> BTreeMap<Series, u64> {
    let mut totals = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\"")[..])
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let series = Series {
            verb: label("verb"),
            group: label("group"),
            resource: label("resource"),
            subresource: label("subresource"),
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *totals.entry(series).or_insert(0) += value as u64;
    }
    totals
}

/// Write requests between two readings to the given resources (any subresource unless listed),
/// e.g. the kinds an operator manages.
pub fn writes_between(
    before: &BTreeMap<Series, u64>,
    after: &BTreeMap<Series, u64>,
    resources: &[&str],
) -> BTreeMap<Series, u64> {
    after
        .iter()
        .filter(|(s, _)| WRITE_VERBS.contains(&s.verb.as_str()) && resources.contains(&s.resource.as_str()))
        .filter_map(|(s, v)| {
            let delta = v.saturating_sub(*before.get(s).unwrap_or(&0));
            (delta > 0).then(|| (s.clone(), delta))
        })
        .collect()
}
