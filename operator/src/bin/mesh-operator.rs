//! The mesh-operator binary: `run` the controller, print the `crd`s, or generate the install `manifests`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mesh_operator::context::Settings;
use mesh_operator::controller::{self, LeaderElection};
use mesh_operator::metrics::Metrics;
use tokio::sync::watch;

/// Kubernetes operator that installs a service mesh, its namespaces, apps, ingress and traffic
/// policy from one MeshInstallation object.
#[derive(Parser)]
#[command(name = "mesh-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the current cluster (kubeconfig or in-cluster).
    Run(RunArgs),
    /// Print CustomResourceDefinitions as YAML.
    Crd {
        /// Which CRDs: ours, OSM's ten (installed by the operator for self-hosted OSM), Istio's AuthorizationPolicy schema, or all.
        #[arg(long, value_enum, default_value_t = CrdSet::All)]
        set: CrdSet,
    },
    /// Generate the install manifests: `deploy/install.yaml` and the OLM bundle. Without
    /// `--out`/`--bundle`, prints install.yaml.
    Manifests {
        /// Directory to write install.yaml to (e.g. `deploy`).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Directory to write the OLM bundle to (e.g. `bundle`).
        #[arg(long)]
        bundle: Option<std::path::PathBuf>,
        /// Operator image to put in the printed install.yaml (files always use the release image).
        #[arg(long)]
        image: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CrdSet {
    All,
    MeshInstallation,
    Osm,
    Istio,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Install or update the MeshInstallation CRD at start instead of requiring it.
    #[arg(long)]
    install_crds: bool,
    /// Elect a leader on a Lease so only one replica writes.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease (defaults to the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-operator-system")]
    lease_namespace: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Seconds between checks of a converged installation.
    #[arg(long, default_value_t = 300)]
    resync_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,kube_lease_manager=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    mesh_operator::init_crypto();
    match cli.command {
        Command::Crd { set } => {
            let sets = mesh_crds::generate::all_sets();
            let selected = match set {
                CrdSet::All => sets.into_iter().flat_map(|s| s.crds).collect(),
                CrdSet::MeshInstallation => vec![mesh_crds::generate::mesh_installation_crd()],
                CrdSet::Osm => mesh_crds::generate::osm_crds(),
                CrdSet::Istio => mesh_crds::generate::istio_crds(),
            };
            print!("{}", mesh_crds::generate::to_yaml(&selected)?);
            Ok(())
        }
        Command::Manifests { out, bundle, image } => {
            use mesh_operator::manifests;
            if out.is_none() && bundle.is_none() {
                print!("{}", manifests::install_yaml(&image.unwrap_or_else(manifests::image))?);
                return Ok(());
            }
            if let Some(dir) = out {
                manifests::write(&dir, &manifests::install_files()?)?;
                eprintln!("wrote {}", dir.join("install.yaml").display());
            }
            if let Some(dir) = bundle {
                manifests::write(&dir, &manifests::bundle_files()?)?;
                eprintln!("wrote the OLM bundle to {}", dir.display());
            }
            Ok(())
        }
        Command::Run(args) => {
            init_logging(args.log_format);
            let client = kube::Client::try_default().await?;
            controller::ensure_crd(&client, args.install_crds).await?;
            let election = args.leader_elect.then(|| LeaderElection {
                namespace: args.lease_namespace.clone(),
                lease_name: mesh_operator::manifests::LEASE_NAME.to_string(),
                identity: std::env::var("POD_NAME").unwrap_or_else(|_| format!("mesh-operator-{}", std::process::id())),
            });
            let settings = Settings { resync: Duration::from_secs(args.resync_seconds), ..Settings::default() };
            let metrics = Arc::new(Metrics::default());
            let (ready_tx, ready_rx) = watch::channel(false);
            let server = tokio::spawn(mesh_operator::server::serve(args.metrics_addr, ready_rx, metrics.clone()));
            tracing::info!(metrics = %args.metrics_addr, "mesh-operator starting");
            controller::run(client, settings, election, shutdown_signal(), Some(ready_tx), metrics).await?;
            server.abort();
            Ok(())
        }
    }
}
