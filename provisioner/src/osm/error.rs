//! Errors of the OSM builders. Every variant names the object (or Secret key) it is about, so a
//! status condition built from it tells the user what to look at.

use mesh_crds::MeshProvider;

use crate::desired::DesiredError;

/// Why an OSM object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OsmBuildError {
    /// A typed object did not serialize into a Kubernetes object (names kind and name).
    #[error(transparent)]
    Render(#[from] DesiredError),
    /// The builder only applies to some providers (e.g. the control plane only to SelfHosted).
    #[error("{object}: not built for mesh provider {provider:?}")]
    UnsupportedProvider {
        /// What was being built.
        object: String,
        /// The provider in the spec.
        provider: MeshProvider,
    },
    /// The flags, ports and RBAC encoded here are OSM v1.2's; another minor would not start.
    #[error("{object}: OSM version {version} is not supported (these builders render OSM v1.2.x)")]
    UnsupportedVersion {
        /// What was being built.
        object: String,
        /// The version in the spec.
        version: String,
    },
    /// A JSON document embedded in an object (e.g. `preset-mesh-config.json`) did not serialize.
    #[error("{object}: serializing {key}: {source}")]
    Json {
        /// The object holding the document.
        object: String,
        /// The key of the document.
        key: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// The root CA could not be generated.
    #[error("generating the OSM root CA ({step}): {reason}")]
    CaGeneration {
        /// Which step failed.
        step: &'static str,
        /// Cause (from rcgen or the time arithmetic).
        reason: String,
    },
    /// An existing CA bundle Secret lacks a key OSM reads.
    #[error("Secret {secret}: key {key} is missing")]
    CaBundleMissingKey {
        /// The Secret.
        secret: String,
        /// The missing key.
        key: String,
    },
    /// An existing CA bundle Secret has a key OSM cannot use.
    #[error("Secret {secret}: key {key}: {reason}")]
    CaBundleInvalid {
        /// The Secret.
        secret: String,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}
