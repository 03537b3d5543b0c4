//! API types of mesh-operator.
//!
//! - [`mesh_installation`]: the `MeshInstallation` custom resource, the operator's user interface.
//! - [`osm`], [`smi`], [`istio`]: typed models of the objects the operator writes, as their owners serve them.
//! - [`generate`]: the CRDs (ours, and OSM's for self-hosted installs) as YAML.
//! - [`samples`]: the source tree's samples and the error each invalid one promises, for tests.

pub mod generate;
pub mod istio;
pub mod mesh_installation;
pub mod osm;
pub mod samples;
pub mod smi;

pub use mesh_installation::*;
