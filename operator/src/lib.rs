//! mesh-operator: reconciles `MeshInstallation` objects into a running service mesh, and the
//! `meshctl` command line.

pub mod allocator;
pub mod context;
pub mod controller;
pub mod error;
pub mod manifests;
pub mod meshctl;
pub mod metrics;
pub mod reconcile;
pub mod runtime;
pub mod server;

/// Picks rustls' crypto provider for the process. Two providers are linked (ring through kube,
/// aws-lc-rs through rcgen's RSA support), so rustls cannot choose one by itself. Call once at
/// start, before the first client is built; later calls are no-ops.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
