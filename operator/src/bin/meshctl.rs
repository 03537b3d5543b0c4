//! meshctl: the mesh-operator command line.

use clap::{Parser, Subcommand};

/// Command line for mesh-operator installations.
#[derive(Parser)]
#[command(name = "meshctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    mesh_operator::init_crypto();
    match cli.command {
        Command::Version => println!("meshctl {}", env!("CARGO_PKG_VERSION")),
    }
}
