//! CustomResourceDefinitions as the operator installs and documents them.
//!
//! The YAML is committed under `crds/yaml/`; a test fails when it differs from what this module
//! generates, so a change to a field's doc or schema is always regenerated (`UPDATE_CRDS=1 cargo test -p mesh-crds`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};
use kube::CustomResourceExt;

use crate::MeshInstallation;

/// Label OSM puts on its CRDs.
const OSM_CRD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "openservicemesh.io");

/// Errors while rendering CRDs.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A CRD could not be serialized to YAML.
    #[error("serializing CRD {name} to YAML: {source}")]
    Yaml {
        /// CRD name.
        name: String,
        /// Cause.
        source: serde_yaml::Error,
    },
}

/// A named set of CRDs, written to one file.
pub struct CrdSet {
    /// File name under `crds/yaml/`.
    pub file: &'static str,
    /// The CRDs.
    pub crds: Vec<CustomResourceDefinition>,
}

/// The `MeshInstallation` CRD.
pub fn mesh_installation_crd() -> CustomResourceDefinition {
    MeshInstallation::crd()
}

/// OSM v1.2.4's own CRD files, byte for byte as `cmd/osm-bootstrap/crds/` of the Go module
/// `github.com/openservicemesh/osm@v1.2.4` holds them (`crds/tests/upstream_osm.rs` fails when they
/// drift): osm-bootstrap replaces the spec of each CRD with these at every start, so anything else
/// the operator applied would be overwritten and re-applied forever.
pub const OSM_CRD_FILES: [(&str, &str); 10] = [
    ("config_meshconfig.yaml", include_str!("../osm-v1.2.4/config_meshconfig.yaml")),
    ("config_mesh_root_certificate.yaml", include_str!("../osm-v1.2.4/config_mesh_root_certificate.yaml")),
    ("policy_egress.yaml", include_str!("../osm-v1.2.4/policy_egress.yaml")),
    ("policy_ingress_backend.yaml", include_str!("../osm-v1.2.4/policy_ingress_backend.yaml")),
    ("policy_retry.yaml", include_str!("../osm-v1.2.4/policy_retry.yaml")),
    ("policy_upstream_traffic_setting.yaml", include_str!("../osm-v1.2.4/policy_upstream_traffic_setting.yaml")),
    ("smi_http_route_group.yaml", include_str!("../osm-v1.2.4/smi_http_route_group.yaml")),
    ("smi_tcp_route.yaml", include_str!("../osm-v1.2.4/smi_tcp_route.yaml")),
    ("smi_traffic_access.yaml", include_str!("../osm-v1.2.4/smi_traffic_access.yaml")),
    ("smi_traffic_split.yaml", include_str!("../osm-v1.2.4/smi_traffic_split.yaml")),
];

/// The 10 CRDs OSM v1.2.4 serves, exactly as osm-bootstrap writes them: the spec of its own files
/// read as Go reads YAML ([`as_yaml_1_1`]), with conversion `None` (osm-bootstrap sets it on every
/// update; the files say so too). The label osm-bootstrap adds (`openservicemesh.io/reconcile`) is
/// left to it.
pub fn osm_crds() -> Vec<CustomResourceDefinition> {
    OSM_CRD_FILES
        .iter()
        .map(|(file, text)| {
            let document = as_yaml_1_1(text.split("\n---\n").nth(1).unwrap_or(text));
            // The files are part of this crate and checked by tests: a parse failure is a build defect.
            let mut crd: CustomResourceDefinition =
                serde_yaml::from_str(&document).unwrap_or_else(|e| panic!("crds/osm-v1.2.4/{file}: {e}"));
            crd.spec.conversion = Some(CustomResourceConversion { strategy: "None".to_string(), webhook: None });
            crd.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(OSM_CRD_LABEL.0.to_string(), OSM_CRD_LABEL.1.to_string());
            crd
        })
        .collect()
}

/// OSM reads its CRD files with Go's YAML library (YAML 1.1), where a plain `off`, `on`, `yes`,
/// `no`, `y` or `n` is a boolean; serde_yaml (YAML 1.2) reads a string. The MeshConfig CRD's
/// `sidecar.logLevel` enum ends with a plain `off`, so on every OSM cluster that enum holds `false`
/// (and `logLevel: "off"` is refused): write what osm-bootstrap writes, or the two fight over it.
/// Only plain list items and plain mapping values are rewritten (what the files use).
fn as_yaml_1_1(document: &str) -> String {
    let boolean = |word: &str| match word {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some("true"),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some("false"),
        _ => None,
    };
    let rewrite = |line: &str| -> Option<String> {
        let content = line.trim_end();
        let indent = content.len() - content.trim_start().len();
        let rest = &content[indent..];
        let (prefix, word) = if let Some(item) = rest.strip_prefix("- ") {
            match item.split_once(": ") {
                Some((key, value)) if !key.contains(' ') => (format!("- {key}: "), value),
                Some(_) => return None,
                None => ("- ".to_string(), item),
            }
        } else {
            let (key, value) = rest.split_once(": ")?;
            if key.contains(' ') {
                return None;
            }
            (format!("{key}: "), value)
        };
        Some(format!("{}{prefix}{}", &content[..indent], boolean(word.trim())?))
    };
    document.lines().map(|line| rewrite(line).unwrap_or_else(|| line.to_string()) + "\n").collect()
}

/// Names of OSM's CRDs — all ten, including `meshrootcertificates.config.openservicemesh.io`, which
/// upstream's own uninstall misnames and leaves behind.
pub fn osm_crd_names() -> Vec<String> {
    osm_crds().into_iter().filter_map(|crd| crd.metadata.name).collect()
}

/// Every CRD set, in the order files are written.
pub fn all_sets() -> Vec<CrdSet> {
    vec![
        CrdSet { file: "meshinstallations.meshoperator.dev.yaml", crds: vec![mesh_installation_crd()] },
        CrdSet { file: "osm-v1.2.4.yaml", crds: osm_crds() },
    ]
}

/// Renders CRDs as a multi-document YAML stream.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> Result<String, GenerateError> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        let yaml = serde_yaml::to_string(crd)
            .map_err(|source| GenerateError::Yaml { name: crd.metadata.name.clone().unwrap_or_default(), source })?;
        out.push_str(&yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::as_yaml_1_1;

    #[test]
    fn plain_yaml_1_1_booleans_become_booleans_and_nothing_else_changes() {
        let input = "enum:\n  - off\n  - 'off'\n  - offset\nflag: on\n- name: No\ndescription: turn it on or - no\nkey: \"yes\"\n";
        let expected = "enum:\n  - false\n  - 'off'\n  - offset\nflag: true\n- name: false\ndescription: turn it on or - no\nkey: \"yes\"\n";
        assert_eq!(as_yaml_1_1(input), expected);
    }
}
