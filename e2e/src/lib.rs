//! End-to-end harness for mesh-operator.
//!
//! Every suite runs against a real kube-apiserver: by default a local control plane built from
//! the upstream Kubernetes Go modules (`e2e/cluster/`), or, chosen with `E2E_PROVIDER`, a kind
//! cluster (`kind`) or any existing cluster (`kubeconfig`, e.g. AKS, from `E2E_KUBECONFIG`).

pub mod apiserver_metrics;
pub mod arm_emulator;
pub mod audit;
pub mod azure_suite;
pub mod client_hook;
pub mod cluster;
pub mod dockerfile;
pub mod harness;
pub mod image;
pub mod local_images;
pub mod namespace;
pub mod operator;
pub mod scenario;
pub mod wait;

pub use cluster::TestCluster;
pub use namespace::TempNamespace;
