//! `meshctl` subcommands.
