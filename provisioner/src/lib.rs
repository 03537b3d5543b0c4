//! How the things a `MeshInstallation` asks for are made to exist.
//!
//! Builders are pure: they take the spec (and what was read from the cluster) and return
//! [`desired::Desired`] objects. Only [`apply`] talks to the API server.

pub mod apply;
pub mod azure;
pub mod desired;
pub mod ingress;
pub mod labels;
pub mod osm;
pub mod plan;
pub mod rbac;
pub mod topology;
pub mod translate;
