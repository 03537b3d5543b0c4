//! YAML rendering, with a comment before each RBAC rule saying why it is there.

use serde::{Deserialize, Serialize};

use super::ManifestError;
use super::rbac::ExplainedRule;

/// One object as a YAML document (without the `---` separator).
pub fn document<T: Serialize>(object: &T) -> Result<String, ManifestError> {
    Ok(serde_yaml::to_string(object)?)
}

/// `# ` + each line of `text`.
pub fn comment(text: &str) -> String {
    text.lines().map(|line| if line.is_empty() { "#\n".to_string() } else { format!("# {line}\n") }).collect()
}

/// A ClusterRole or Role as YAML: the object without its rules, then `rules:` with each rule
/// preceded by its reasons as comments. Parses back to exactly `object`.
pub fn role_document<T: Serialize>(object: &T, rules: &[ExplainedRule]) -> Result<String, ManifestError> {
    let mut value = serde_json::to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        map.remove("rules");
    }
    let mut out = serde_yaml::to_string(&value)?;
    out.push_str("rules:\n");
    for rule in rules {
        for why in &rule.why {
            out.push_str(&comment(why));
        }
        out.push_str(&serde_yaml::to_string(&[&rule.rule])?);
    }
    Ok(out)
}

/// Joins documents into one stream, each after `---`.
pub fn stream(header: &str, documents: &[String]) -> String {
    let mut out = comment(header);
    for document in documents {
        out.push_str("---\n");
        out.push_str(document);
    }
    out
}

/// Splits a YAML stream into its non-empty documents, parsed.
pub fn parse_stream(text: &str) -> Result<Vec<serde_json::Value>, ManifestError> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}
