//! `meshctl` subcommands.
pub mod translate;
