//! `meshctl namespace list`: the namespaces enrolled in a mesh, like `osm namespace list` —
//! namespace, mesh, sidecar injection, metrics — for OSM (label `openservicemesh.io/monitored-by`,
//! annotations `openservicemesh.io/sidecar-injection` and `openservicemesh.io/metrics`) and the
//! Istio add-on (label `istio.io/rev`, or `istio-injection`), plus the MeshInstallation that
//! enrolled it, if any.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mesh_provisioner::labels;
use serde::Serialize;

/// One enrolled namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRow {
    /// Namespace.
    pub namespace: String,
    /// The mesh: an OSM mesh name, or `istio/<revision>`.
    pub mesh: String,
    /// `enabled`, `disabled`, or `-` when not set (OSM then injects only annotated pods).
    pub sidecar_injection: String,
    /// `enabled` or `-`.
    pub metrics: String,
    /// The MeshInstallation that enrolled it (`meshoperator.dev/installation`), or `-`.
    pub installation: String,
}

/// Rows for the enrolled namespaces among `namespaces`, sorted by name (pure).
pub fn rows(namespaces: &[Namespace], mesh: Option<&str>) -> Vec<NamespaceRow> {
    let mut out: Vec<NamespaceRow> = namespaces
        .iter()
        .filter_map(|ns| {
            let labels_ = ns.labels();
            let annotations = ns.annotations();
            let installation = labels_.get(labels::INSTALLATION).cloned().unwrap_or_else(|| "-".into());
            let (mesh_name, injection, metrics) = if let Some(osm) = labels_.get(labels::OSM_MONITORED_BY) {
                (
                    osm.clone(),
                    annotations.get(labels::OSM_SIDECAR_INJECTION).cloned().unwrap_or_else(|| "-".into()),
                    annotations.get(labels::OSM_METRICS).cloned().unwrap_or_else(|| "-".into()),
                )
            } else if let Some(revision) = labels_.get(labels::ISTIO_REV) {
                (format!("istio/{revision}"), "enabled".to_string(), "-".to_string())
            } else if let Some(injection) = labels_.get("istio-injection") {
                ("istio".to_string(), injection.clone(), "-".to_string())
            } else {
                return None;
            };
            Some(NamespaceRow {
                namespace: ns.name_any(),
                mesh: mesh_name,
                sidecar_injection: injection,
                metrics,
                installation,
            })
        })
        .filter(|row| mesh.is_none_or(|m| row.mesh == m || row.mesh.starts_with(&format!("{m}/"))))
        .collect();
    out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    out
}

/// An aligned table with a header (pure).
pub fn render_table(rows: &[NamespaceRow]) -> String {
    let header = ["NAMESPACE", "MESH", "SIDECAR-INJECTION", "METRICS", "INSTALLATION"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.namespace.as_str(),
                r.mesh.as_str(),
                r.sidecar_injection.as_str(),
                r.metrics.as_str(),
                r.installation.as_str(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |row: &[&str; 5]| {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// Reads every namespace and returns the enrolled ones.
pub async fn list(client: &Client, mesh: Option<&str>) -> Result<Vec<NamespaceRow>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let namespaces = api.list(&ListParams::default()).await?.items;
    Ok(rows(&namespaces, mesh))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ns(name: &str, labels_: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        let map = |pairs: &[(&str, &str)]| -> Option<BTreeMap<String, String>> {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                labels: map(labels_),
                annotations: map(annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn lists_osm_and_istio_enrolment_like_osm_namespace_list() {
        let all = vec![
            ns(
                "bookstore",
                &[(labels::OSM_MONITORED_BY, "osm"), (labels::INSTALLATION, "bookstore")],
                &[(labels::OSM_SIDECAR_INJECTION, "enabled"), (labels::OSM_METRICS, "enabled")],
            ),
            ns("curl", &[(labels::OSM_MONITORED_BY, "osm")], &[(labels::OSM_SIDECAR_INJECTION, "disabled")]),
            ns("default", &[], &[]),
            ns("shop", &[(labels::ISTIO_REV, "asm-1-25"), (labels::INSTALLATION, "istio")], &[]),
            ns("legacy", &[("istio-injection", "enabled")], &[]),
        ];
        let table = render_table(&rows(&all, None));
        let expected = "\
NAMESPACE   MESH             SIDECAR-INJECTION   METRICS   INSTALLATION
bookstore   osm              enabled             enabled   bookstore
curl        osm              disabled            -         -
legacy      istio            enabled             -         -
shop        istio/asm-1-25   enabled             -         istio
";
        assert_eq!(table, expected);
        let osm: Vec<String> = rows(&all, Some("osm")).into_iter().map(|r| r.namespace).collect();
        assert_eq!(osm, ["bookstore", "curl"]);
        let istio: Vec<String> = rows(&all, Some("istio")).into_iter().map(|r| r.namespace).collect();
        assert_eq!(istio, ["legacy", "shop"]);
    }

    #[test]
    fn an_empty_list_is_just_the_header() {
        assert_eq!(render_table(&[]), "NAMESPACE   MESH   SIDECAR-INJECTION   METRICS   INSTALLATION\n");
    }
}
