//! Self-hosted Open Service Mesh v1.2.4 control plane, rendered by typed builders.
//!
//! Everything here is pure: the builders take the `MeshSpec` and return
//! [`Desired`](crate::desired::Desired) objects,
//! never calling the API server. They replace `osm install` (the upstream Helm chart) with our own
//! typed objects written from the facts of OSM v1.2 (chart defaults, flags, ports, RBAC), so that a
//! steady installation re-renders byte-identical objects and server-side apply is a no-op.
//!
//! - [`control_plane`]: Namespace, RBAC, `osm-controller`, `osm-injector`, `osm-bootstrap`,
//!   `osm-validator`, the `preset-mesh-config` ConfigMap and the optional add-ons.
//! - [`osm_crds`]: OSM's 10 CRDs.
//! - [`mesh_config`]: the spec-controlled fields of `osm-mesh-config` (self-hosted and AKS add-on).
//! - [`egress_policies`]: OSM `Egress` objects for `egress.policy: Policy`.
//! - [`ca`]: the Tresor root CA and its `osm-ca-bundle` Secret.
//! - [`names`]: the names teardown needs (webhooks, Secret, MeshConfig).
//! - `dashboards`: the Grafana add-on's OSM dashboards (mesh, service, workload).

mod addons;
pub mod ca;
mod common;
mod control_plane;
mod crds;
mod dashboards;
mod error;
mod mesh_config;
pub mod names;
mod rbac;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dashboards;

pub use control_plane::control_plane;
pub use crds::osm_crds;
pub use error::OsmBuildError;
pub use mesh_config::{egress_policies, mesh_config, preset_spec};
