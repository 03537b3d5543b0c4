//! `meshctl` subcommands.
pub mod dashboard;
pub mod exit;
pub mod install;
pub mod namespaces;
pub mod status;
pub mod translate;
