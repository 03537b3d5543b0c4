//! CustomResourceDefinitions as the operator installs and documents them.
//!
//! The YAML is committed under `crds/yaml/`; a test fails when it differs from what this module
//! generates, so a change to a field's doc or schema is always regenerated (`UPDATE_CRDS=1 cargo test -p mesh-crds`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::{MeshInstallation, osm, smi};

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

/// The 10 CRDs OSM v1.2.4 serves, with OSM's names, versions and short names.
pub fn osm_crds() -> Vec<CustomResourceDefinition> {
    let mut meshconfig = osm::MeshConfig::crd();
    add_served_copy_of_version(&mut meshconfig, "v1alpha1");
    let mut crds = vec![
        meshconfig,
        with_status_subresource(osm::MeshRootCertificate::crd()),
        osm::Egress::crd(),
        with_status_subresource(osm::IngressBackend::crd()),
        osm::Retry::crd(),
        with_status_subresource(osm::UpstreamTrafficSetting::crd()),
        smi::HTTPRouteGroup::crd(),
        smi::TCPRoute::crd(),
        smi::TrafficTarget::crd(),
        smi::TrafficSplit::crd(),
    ];
    for crd in &mut crds {
        crd.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(OSM_CRD_LABEL.0.to_string(), OSM_CRD_LABEL.1.to_string());
    }
    crds
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

/// OSM v1.1+ serves MeshConfig at v1alpha1 too (no conversion): add it as a served, non-storage copy.
fn add_served_copy_of_version(crd: &mut CustomResourceDefinition, version: &str) {
    if let Some(storage) = crd.spec.versions.first().cloned() {
        let mut copy = storage;
        copy.name = version.to_string();
        copy.storage = false;
        copy.served = true;
        crd.spec.versions.push(copy);
    }
}

/// OSM writes status on these kinds; give them a status subresource with a free-form status.
fn with_status_subresource(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        version.subresources = Some(CustomResourceSubresources {
            status: Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceSubresourceStatus(
                    serde_json::Value::Object(Default::default()),
                ),
            ),
            ..Default::default()
        });
        if let Some(CustomResourceValidation { open_api_v3_schema: Some(schema) }) = version.schema.as_mut() {
            schema.properties.get_or_insert_with(Default::default).insert(
                "status".to_string(),
                JSONSchemaProps {
                    type_: Some("object".to_string()),
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    ..Default::default()
                },
            );
        }
    }
    crd
}
