//! The workload topology of an installation: namespaces and their enrolment, the apps, and SMI
//! traffic policy. Pure builders over the spec and what was read from the cluster.

pub mod apps;
pub mod namespaces;
pub mod smi;

pub use apps::*;
pub use namespaces::*;
pub use smi::*;

#[cfg(test)]
mod tests;
