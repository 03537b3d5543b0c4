//! The translation input, and reading it from a YAML stream (what `kubectl get -o yaml` or a
//! manifest file holds): documents are told apart by `kind`; `List` documents are flattened.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use mesh_crds::Notification;
use mesh_crds::smi::{HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget};
use serde::de::DeserializeOwned;

use super::notify::{Notes, object_ref};

/// Everything the translation reads: SMI objects and the Services and workloads they refer to.
///
/// Every workload (Deployment, StatefulSet, Job, bare Pod) is taken as **enrolled in the mesh**.
/// Pass only workloads of mesh namespaces, including those the installation does not manage:
/// policies select pods by labels, so the translation must see every pod a selector could reach.
#[derive(Clone, Debug, Default)]
pub struct TranslationInput {
    /// `access.smi-spec.io/v1alpha3` TrafficTargets.
    pub traffic_targets: Vec<TrafficTarget>,
    /// `specs.smi-spec.io/v1alpha4` HTTPRouteGroups.
    pub http_route_groups: Vec<HTTPRouteGroup>,
    /// `specs.smi-spec.io/v1alpha4` TCPRoutes.
    pub tcp_routes: Vec<TCPRoute>,
    /// `split.smi-spec.io/v1alpha2` TrafficSplits.
    pub traffic_splits: Vec<TrafficSplit>,
    /// `v1` Services (ports, selectors).
    pub services: Vec<Service>,
    /// `apps/v1` Deployments (ServiceAccount and pod labels of the destinations).
    pub deployments: Vec<Deployment>,
    /// `apps/v1` StatefulSets, like Deployments (the bookstore's mysql is one).
    pub stateful_sets: Vec<StatefulSet>,
    /// `batch/v1` Jobs, like Deployments.
    pub jobs: Vec<Job>,
    /// `v1` Pods that no controller owns (pods with an owner are covered by their workload).
    pub pods: Vec<Pod>,
    /// The enrolled namespaces: each gets a deny-all baseline. Empty: every namespace holding a
    /// workload or a TrafficTarget of the input.
    pub namespaces: Vec<String>,
}

impl TranslationInput {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.traffic_targets.len()
            + self.http_route_groups.len()
            + self.tcp_routes.len()
            + self.traffic_splits.len()
            + self.services.len()
            + self.deployments.len()
            + self.stateful_sets.len()
            + self.jobs.len()
            + self.pods.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a YAML stream. Objects of other kinds are skipped with an INFO notification.
    pub fn from_yaml_str(text: &str) -> Result<(TranslationInput, Vec<Notification>), InputError> {
        let mut input = TranslationInput::default();
        let mut notes = Notes::default();
        for (number, (line, chunk)) in split_documents(text).into_iter().enumerate() {
            let document = number + 1;
            let value: serde_yaml::Value =
                serde_yaml::from_str(chunk).map_err(|e| InputError::yaml(document, line, &e))?;
            if value.is_null() {
                continue;
            }
            let kind = value.get("kind").and_then(serde_yaml::Value::as_str).unwrap_or_default();
            if kind == "List" {
                let items = value.get("items").and_then(serde_yaml::Value::as_sequence).cloned().unwrap_or_default();
                for (i, item) in items.into_iter().enumerate() {
                    input.push(Source::Value(item), document, line, Some(i), &mut notes)?;
                }
            } else {
                input.push(Source::Text(chunk, value), document, line, None, &mut notes)?;
            }
        }
        Ok((input, notes.into_vec()))
    }

    fn push(
        &mut self,
        source: Source<'_>,
        document: usize,
        line: usize,
        item: Option<usize>,
        notes: &mut Notes,
    ) -> Result<(), InputError> {
        let value = source.value();
        let kind = value.get("kind").and_then(serde_yaml::Value::as_str).unwrap_or_default().to_string();
        let api_version = value.get("apiVersion").and_then(serde_yaml::Value::as_str).unwrap_or_default().to_string();
        let at = Position { document, line, item };
        let expected = match kind.as_str() {
            "TrafficTarget" => "access.smi-spec.io/v1alpha3",
            "HTTPRouteGroup" | "TCPRoute" => "specs.smi-spec.io/v1alpha4",
            "TrafficSplit" => "split.smi-spec.io/v1alpha2",
            "Service" => "v1",
            "Deployment" | "StatefulSet" => "apps/v1",
            "Job" => "batch/v1",
            "Pod" => "v1",
            "" => return Err(at.error("the object has no kind")),
            _ => {
                let name = value.get("metadata").and_then(|m| m.get("name")).and_then(serde_yaml::Value::as_str);
                let namespace =
                    value.get("metadata").and_then(|m| m.get("namespace")).and_then(serde_yaml::Value::as_str);
                notes.info(
                    &object_ref(&kind, namespace.unwrap_or("-"), name.unwrap_or("-")),
                    format!("ignored: {kind} is not translated (only SMI objects, Services, Deployments, StatefulSets, Jobs and Pods are read)"),
                );
                return Ok(());
            }
        };
        if api_version != expected {
            return Err(at.error(&format!(
                "{kind} {api_version:?} is not supported: OSM v1.2 serves {expected}; convert the object to that version"
            )));
        }
        match kind.as_str() {
            "TrafficTarget" => self.traffic_targets.push(at.parse(&source, notes)?),
            "HTTPRouteGroup" => self.http_route_groups.push(at.parse(&source, notes)?),
            "TCPRoute" => self.tcp_routes.push(at.parse(&source, notes)?),
            "TrafficSplit" => self.traffic_splits.push(at.parse(&source, notes)?),
            "Service" => self.services.push(at.parse(&source, notes)?),
            "Deployment" => self.deployments.push(at.parse(&source, notes)?),
            "Job" => self.jobs.push(at.parse(&source, notes)?),
            "Pod" => {
                let pod: Pod = at.parse(&source, notes)?;
                if pod.metadata.owner_references.as_ref().is_none_or(Vec::is_empty) {
                    self.pods.push(pod);
                }
            }
            _ => self.stateful_sets.push(at.parse(&source, notes)?),
        }
        Ok(())
    }
}

/// A document: its text (for errors with line and column) or a List item.
enum Source<'a> {
    Text(&'a str, serde_yaml::Value),
    Value(serde_yaml::Value),
}

impl Source<'_> {
    fn value(&self) -> &serde_yaml::Value {
        match self {
            Source::Text(_, value) | Source::Value(value) => value,
        }
    }
}

#[derive(Clone, Copy)]
struct Position {
    document: usize,
    line: usize,
    item: Option<usize>,
}

impl Position {
    fn error(&self, message: &str) -> InputError {
        InputError {
            document: self.document,
            line: self.line,
            column: None,
            item: self.item,
            message: message.to_string(),
        }
    }

    fn parse<K: DeserializeOwned + ResourceExt>(
        &self,
        source: &Source<'_>,
        notes: &mut Notes,
    ) -> Result<K, InputError> {
        let mut object: K = match source {
            Source::Text(text, _) => {
                serde_yaml::from_str(text).map_err(|e| InputError::yaml(self.document, self.line, &e))?
            }
            Source::Value(value) => serde_yaml::from_value(value.clone()).map_err(|e| self.error(&e.to_string()))?,
        };
        if object.meta().name.as_deref().is_none_or(str::is_empty) {
            return Err(self.error("metadata.name is missing"));
        }
        if object.meta().namespace.as_deref().is_none_or(str::is_empty) {
            object.meta_mut().namespace = Some(super::index::DEFAULT_NAMESPACE.to_string());
            let kind = source.value().get("kind").and_then(serde_yaml::Value::as_str).unwrap_or_default();
            notes.info(
                &object_ref(kind, super::index::DEFAULT_NAMESPACE, &object.name_any()),
                "metadata.namespace is missing: namespace default is assumed",
            );
        }
        Ok(object)
    }
}

/// The input could not be read: where and why.
#[derive(Debug, thiserror::Error)]
#[error("document {document} (line {line}{}{}): {message}", .column.map(|c| format!(", column {c}")).unwrap_or_default(), .item.map(|i| format!(", items[{i}]")).unwrap_or_default())]
pub struct InputError {
    /// 1-based number of the YAML document.
    pub document: usize,
    /// 1-based line (of the file) where the error is, or where the document starts.
    pub line: usize,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Index in a `List` document's `items`.
    pub item: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl InputError {
    fn yaml(document: usize, first_line: usize, error: &serde_yaml::Error) -> Self {
        let (line, column) = match error.location() {
            Some(location) => (first_line + location.line() - 1, Some(location.column())),
            None => (first_line, None),
        };
        let message = error.to_string();
        // serde_yaml appends " at line L column C" relative to the document: drop it.
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_string(),
            None => message,
        };
        InputError { document, line, column, item: None, message }
    }
}

/// Splits a YAML stream at `---` lines: (first line number, text) per document. The `---` line
/// stays in its document so that line numbers within it stay right.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        if is_marker && offset > start {
            out.push((start_line, &text[start..offset]));
            start = offset;
            start_line = number + 1;
        }
        offset += line.len();
    }
    if start < text.len() {
        out.push((start_line, &text[start..]));
    }
    out.retain(|(_, chunk)| {
        chunk.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---" && l != "..."
        })
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lines() {
        let text = "# head\n---\nkind: Service\n---\n\n---\nkind: X\n";
        let docs = split_documents(text);
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2, 6]);
    }

    #[test]
    fn errors_name_document_line_and_column() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: b}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n";
        let error = TranslationInput::from_yaml_str(text).unwrap_err();
        assert_eq!(error.document, 2);
        assert!(error.line >= 8, "{error}");
        assert!(error.to_string().starts_with("document 2 (line"), "{error}");
    }

    #[test]
    fn unknown_kinds_are_reported_and_versions_checked() {
        let (input, notes) =
            TranslationInput::from_yaml_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\n")
                .unwrap();
        assert!(input.is_empty());
        assert_eq!(notes.len(), 1);
        let error = TranslationInput::from_yaml_str(
            "apiVersion: access.smi-spec.io/v1alpha2\nkind: TrafficTarget\nmetadata: {name: a}\nspec: {}\n",
        )
        .unwrap_err();
        assert!(error.message.contains("v1alpha3"));
    }
}
