//! mesh-operator: reconciles `MeshInstallation` objects into a running service mesh, and the
//! `meshctl` command line.

pub mod context;
pub mod controller;
pub mod error;
pub mod kinds;
pub mod meshctl;
pub mod metrics;
pub mod reconcile;
pub mod server;
