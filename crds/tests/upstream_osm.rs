//! OSM's CRDs are OSM's own: `crds/osm-v1.2.4/` must be byte for byte the files osm-bootstrap
//! applies, `cmd/osm-bootstrap/crds/*.yaml` of the Go module `github.com/openservicemesh/osm@v1.2.4`
//! (read from the Go module proxy or cache with `go mod download`, as the local control plane reads
//! the Gateway API and Istio CRDs). osm-bootstrap replaces the spec of every OSM CRD with its own at
//! start: any difference would make it and the operator overwrite each other forever.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mesh_crds::generate::{OSM_CRD_FILES, osm_crds};

const MODULE: &str = "github.com/openservicemesh/osm@v1.2.4";

/// `cmd/osm-bootstrap/crds` of the module, downloaded if needed.
fn upstream_dir() -> PathBuf {
    let output = Command::new("go")
        .args(["mod", "download", "-json", MODULE])
        .env("GOFLAGS", "")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("running `go mod download {MODULE}` (Go is needed to read OSM's module): {e}"));
    assert!(output.status.success(), "go mod download {MODULE}: {}", String::from_utf8_lossy(&output.stderr));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("go mod download -json output");
    PathBuf::from(info["Dir"].as_str().expect("Dir")).join("cmd/osm-bootstrap/crds")
}

#[test]
fn osm_crd_files_are_osm_v1_2_4s_own() {
    let dir = upstream_dir();
    let mut upstream = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("name").to_string_lossy().to_string();
            upstream.insert(name, std::fs::read_to_string(&path).expect("read upstream CRD"));
        }
    }
    let ours: BTreeMap<String, String> =
        OSM_CRD_FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        upstream.keys().collect::<Vec<_>>(),
        "crds/osm-v1.2.4/ must hold exactly the files of {MODULE} cmd/osm-bootstrap/crds"
    );
    for (name, text) in &upstream {
        assert!(ours[name] == *text, "crds/osm-v1.2.4/{name} differs from {}/{name}: copy it again", dir.display());
    }
}

#[test]
fn the_operator_applies_what_osm_bootstrap_writes() {
    // osm-bootstrap (v1.2.4, `applyOrUpdateCRDs`) sets the spec of its file and conversion None.
    for (crd, (file, text)) in osm_crds().iter().zip(OSM_CRD_FILES) {
        let document = text.split("\n---\n").nth(1).expect("one document after the licence header");
        let upstream: serde_yaml::Value = serde_yaml::from_str(document).expect("upstream YAML");
        let mut spec = serde_json::to_value(&upstream["spec"]).expect("spec");
        spec["conversion"] = serde_json::json!({"strategy": "None"});
        // Go's YAML 1.1 reads the plain `off` of the MeshConfig's `sidecar.logLevel` enum as false.
        for version in spec["versions"].as_array_mut().into_iter().flatten() {
            let path = "/schema/openAPIV3Schema/properties/spec/properties/sidecar/properties/logLevel/enum";
            if let Some(values) = version.pointer_mut(path).and_then(|v| v.as_array_mut()) {
                for value in values.iter_mut().filter(|v| *v == "off") {
                    *value = serde_json::Value::Bool(false);
                }
            }
        }
        let ours = numbers_as_floats(serde_json::to_value(&crd.spec).expect("ours"));
        assert!(ours == numbers_as_floats(spec), "{file}: the operator's spec differs from osm-bootstrap's");
        assert_eq!(crd.metadata.name.as_deref(), upstream["metadata"]["name"].as_str(), "{file}");
    }
}

/// The schema's numbers are `f64` in k8s-openapi (`65535` becomes `65535.0`), as in the API server
/// (Go `float64`); both are the same number, which is how the operator compares them too.
fn numbers_as_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect()),
        other => other,
    }
}
