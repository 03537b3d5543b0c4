//! The committed CRD YAML, the CEL rules in it, and the samples checked against it — without an
//! API server (the e2e suite repeats the sample checks against a real one).

use std::path::{Path, PathBuf};

use mesh_crds::{MeshInstallation, generate, samples};
use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate has a parent").to_path_buf()
}

/// The openAPIV3Schema of the MeshInstallation CRD as JSON.
fn mesh_installation_schema() -> Value {
    let crd = generate::mesh_installation_crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
    serde_json::to_value(schema).expect("schema as JSON")
}

#[test]
fn committed_crd_yaml_matches_the_code() {
    let dir = workspace_root().join("crds/yaml");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for set in generate::all_sets() {
        let generated = generate::to_yaml(&set.crds).expect("render");
        let path = dir.join(set.file);
        if update {
            std::fs::create_dir_all(&dir).expect("create crds/yaml");
            std::fs::write(&path, &generated).expect("write CRD yaml");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(set.file);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/yaml/{stale:?} differ from the code: run `UPDATE_CRDS=1 cargo test -p mesh-crds` and commit the result"
    );
}

/// Every cross-field rule the API promises is in the CRD, word for word.
#[test]
fn crd_carries_every_cel_rule() {
    let yaml = generate::to_yaml(&[generate::mesh_installation_crd()]).expect("render");
    let expected_rules = [
        "self.mesh.provider == 'SelfHosted' || has(self.azure)",
        "self.mesh.provider != 'AksIstioAddon' || (has(self.traffic) && self.traffic.mode == 'GatewayAPI')",
        "self.mesh.provider == 'AksIstioAddon' || !has(self.traffic) || self.traffic.mode != 'GatewayAPI'",
        "self.apps.all(a, self.apps.exists_one(b, b.name == a.name && b.__namespace__ == a.__namespace__))",
        "self.apps.all(a, has(self.namespaces) && self.namespaces.exists(n, n.name == a.__namespace__))",
        "self.traffic.splits.all(s, has(self.namespaces) && self.namespaces.exists(n, n.name == s.__namespace__))",
        "self.traffic.access.all(p, has(self.namespaces) && self.namespaces.exists(n, n.name == p.__namespace__) && p.sources.all(s, self.namespaces.exists(n, n.name == s.__namespace__)))",
        "s.backends.all(b, has(self.apps) && self.apps.exists(a, a.__namespace__ == s.__namespace__ && (a.name == b.service",
        "self.backends.exists(b, b.weight > 0)",
        "self.registry.images.all(i, self.registry.images.exists_one(j, j.target == i.target))",
    ];
    for rule in expected_rules {
        assert!(yaml.contains(rule), "CEL rule missing from the CRD: {rule}");
    }
    // Ports 1-65535, weights >= 0 and the mesh name as a label value are schema constraints.
    let schema = mesh_installation_schema();
    let port = &schema["properties"]["spec"]["properties"]["apps"]["items"]["properties"]["port"];
    assert_eq!((port["minimum"].as_f64(), port["maximum"].as_f64()), (Some(1.0), Some(65535.0)));
    let weight = &schema["properties"]["spec"]["properties"]["traffic"]["properties"]["splits"]["items"]["properties"]
        ["backends"]["items"]["properties"]["weight"];
    assert_eq!(weight["minimum"].as_f64(), Some(0.0));
    let namespaces = &schema["properties"]["spec"]["properties"]["namespaces"];
    assert_eq!(namespaces["x-kubernetes-list-type"], "map", "namespace names are unique through a list-map");
    assert_eq!(namespaces["x-kubernetes-list-map-keys"], serde_json::json!(["name"]));
    let mesh_name = &schema["properties"]["spec"]["properties"]["mesh"]["properties"]["name"];
    assert_eq!(mesh_name["maxLength"].as_u64(), Some(63));
    assert!(mesh_name["pattern"].is_string());
}

/// Every field of the API is documented (it becomes `kubectl explain`).
#[test]
fn every_field_has_a_description() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                let is_meta = path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
                if child.get("description").is_none() && !is_meta {
                    missing.push(child_path.clone());
                }
                walk(&child_path, child, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    walk("", &mesh_installation_schema(), &mut missing);
    assert!(missing.is_empty(), "fields without a doc comment: {missing:?}");
}

/// Keys in `input` that did not survive deserialising into the typed API (typos, unknown fields).
fn unknown_keys(path: &str, input: &Value, typed: &Value) -> Vec<String> {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .flat_map(|(k, v)| match b.get(k) {
                Some(tv) => unknown_keys(&format!("{path}.{k}"), v, tv),
                None => vec![format!("{path}.{k}")],
            })
            .collect(),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().flat_map(|(i, (v, tv))| unknown_keys(&format!("{path}[{i}]"), v, tv)).collect()
        }
        _ => vec![],
    }
}

fn read_yaml(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, value)
}

/// `x-kubernetes-list-type: map` keys must be unique (the API server answers `Duplicate value`).
fn list_map_errors(path: &str, schema: &Value, object: &Value, errors: &mut Vec<String>) {
    match object {
        Value::Object(map) => {
            for (key, child) in map {
                if let Some(child_schema) = schema.get("properties").and_then(|p| p.get(key)) {
                    let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    list_map_errors(&child_path, child_schema, child, errors);
                }
            }
        }
        Value::Array(items) => {
            if schema["x-kubernetes-list-type"] == "map" {
                let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for (i, item) in items.iter().enumerate() {
                    let key_of = |v: &Value| keys.iter().map(|k| v[*k].to_string()).collect::<Vec<_>>();
                    if items[..i].iter().any(|earlier| key_of(earlier) == key_of(item)) {
                        errors.push(format!("{path}[{i}]: Duplicate value"));
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                list_map_errors(&format!("{path}[{i}]"), &schema["items"], item, errors);
            }
        }
        _ => {}
    }
}

/// Errors of the structural schema (OpenAPI constraints) and of the CEL rules, as `path: message`.
fn admission_errors(object: &Value) -> Vec<String> {
    let schema = mesh_installation_schema();
    let mut errors: Vec<String> = Vec::new();
    let validator = jsonschema::draft4::new(&schema).expect("CRD schema compiles as JSON schema");
    for error in validator.iter_errors(object) {
        let pointer = error.instance_path().to_string();
        let path = pointer.trim_start_matches('/').split('/').fold(String::new(), |mut acc, seg| {
            if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                acc.push_str(&format!("[{seg}]"));
            } else {
                if !acc.is_empty() {
                    acc.push('.');
                }
                acc.push_str(seg);
            }
            acc
        });
        errors.push(format!("{path}: {error}"));
    }
    list_map_errors("", &schema, object, &mut errors);
    let cel = kube::core::cel::Validator::new().validate_with_defaults(&schema, object, None);
    if let Err(cel) = cel {
        errors.extend(cel.as_slice().iter().map(|e| format!("{}: {}", e.field_path, e.message)));
    }
    errors
}

#[test]
fn samples_deserialize_and_pass_admission() {
    let files = samples::yaml_files(&samples::dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(files.len() >= 3, "expected the three samples, found {files:?}");
    for path in files {
        let (_, value) = read_yaml(&path);
        let typed: MeshInstallation =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let unknown = unknown_keys("", &value, &serde_json::to_value(&typed).expect("serialize"));
        assert!(unknown.is_empty(), "{}: fields the API does not have: {unknown:?}", path.display());
        let errors = admission_errors(&value);
        assert!(errors.is_empty(), "{} is rejected: {errors:?}", path.display());
    }
}

#[test]
fn invalid_samples_are_rejected_with_their_message() {
    let samples = samples::invalid().unwrap_or_else(|e| panic!("{e}"));
    assert!(samples.len() >= 10, "expected invalid samples, found {}", samples.len());
    for sample in samples {
        let path = sample.path.display();
        let value: Value = serde_yaml::from_str(&sample.text).unwrap_or_else(|e| panic!("{path}: {e}"));
        // Semantic-only samples pass admission; the operator rejects them (see the e2e suite).
        if sample.passes_admission {
            assert!(admission_errors(&value).is_empty(), "{path} should pass admission");
            continue;
        }
        let errors = admission_errors(&value);
        let expected = &sample.expected_error;
        assert!(
            errors.iter().any(|e| e.contains(expected.as_str())),
            "{path}: expected an error containing {expected:?}, got {errors:?}"
        );
    }
}
