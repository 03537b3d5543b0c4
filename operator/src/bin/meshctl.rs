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
    /// Install mesh-operator on the current cluster (the embedded deploy/install.yaml) and wait until it is ready.
    Install(InstallArgs),
    /// Remove mesh-operator (the objects of deploy/install.yaml) from the current cluster.
    Uninstall(UninstallArgs),
}

#[derive(clap::Args)]
struct InstallArgs {
    /// Operator image to run instead of the release image (e.g. one loaded into kind).
    #[arg(long)]
    image: Option<String>,
    /// Return once applied, without waiting for the operator to be ready.
    #[arg(long)]
    no_wait: bool,
    /// Seconds to wait for the operator to be ready.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(clap::Args)]
struct UninstallArgs {
    /// Delete every MeshInstallation first and wait for the operator to tear them down.
    #[arg(long)]
    delete_installations: bool,
    /// Keep the MeshInstallation CRD.
    #[arg(long)]
    keep_crd: bool,
    /// Seconds to wait for teardowns and deletions.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

async fn install(args: InstallArgs) -> anyhow::Result<()> {
    use mesh_operator::meshctl::install::{InstallOptions, install};
    let client = kube::Client::try_default().await?;
    let options = InstallOptions {
        image: args.image,
        wait: !args.no_wait,
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    install(&client, &options, &mut std::io::stdout()).await?;
    Ok(())
}

async fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    use mesh_operator::meshctl::install::{UninstallOptions, uninstall};
    let client = kube::Client::try_default().await?;
    let options = UninstallOptions {
        delete_installations: args.delete_installations,
        keep_crd: args.keep_crd,
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    uninstall(&client, &options, &mut std::io::stdout()).await?;
    Ok(())
}

fn exit_on_error(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("meshctl: {error:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    mesh_operator::init_crypto();
    match cli.command {
        Command::Version => println!("meshctl {}", env!("CARGO_PKG_VERSION")),
        Command::Install(args) => exit_on_error(install(args).await),
        Command::Uninstall(args) => exit_on_error(uninstall(args).await),
    }
}
