//! `meshctl` subcommands.
pub mod install;
pub mod translate;
