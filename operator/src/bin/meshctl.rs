//! meshctl: the mesh-operator command line.

use clap::{Parser, Subcommand};

/// mimalloc (see `mesh_operator::allocator`).
#[global_allocator]
static GLOBAL: mesh_operator::allocator::Allocator = mimalloc::MiMalloc;

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
    /// Show installations as a tree: mesh, images, namespaces, apps, ingress, traffic and Azure
    /// operations, each condition, and what is not ready and why.
    #[command(after_help = STATUS_HELP)]
    Status(StatusArgs),
    /// Namespaces enrolled in a mesh (like `osm namespace list`).
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Open the mesh's Grafana: port-forward to osm-grafana through the API server and print the URL.
    #[command(after_help = DASHBOARD_HELP)]
    Dashboard(DashboardArgs),
    /// Translate SMI objects to Gateway API HTTPRoutes and Istio AuthorizationPolicies.
    Translate(mesh_operator::meshctl::translate::TranslateArgs),
}

const STATUS_HELP: &str = "Examples:
  meshctl status                       every installation
  meshctl status bookstore -o json     one, for scripts (jq '.ready')
  meshctl status bookstore --wait      follow conditions until Ready (or --timeout)

Colour is used only when stdout is a terminal and NO_COLOR is unset.
Exit codes: 0 Ready; 1 cluster unreachable or request refused; 2 usage (several installations
and --wait without a name); 3 not Ready, or --wait timed out; 4 not found.";

const DASHBOARD_HELP: &str =
    "Self-hosted meshes with spec.mesh.addons.grafana: true only; the AKS add-ons deploy no Grafana.
Exit codes: 0 stopped with Ctrl-C; 1 cluster unreachable, request refused or port in use;
2 usage; 3 no Grafana to open (add-on, grafana off, no ready pod); 4 installation not found.";

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The MeshInstallation; all of them when omitted.
    name: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Wait until the installation is Ready, printing each condition as it changes.
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(clap::Subcommand)]
enum NamespaceCommand {
    /// List enrolled namespaces: namespace, mesh, sidecar injection, metrics, installation.
    #[command(after_help = "Exit codes: 0 listed (an empty list too); 1 cluster unreachable or request refused.")]
    List {
        /// Only namespaces of this mesh (an OSM mesh name, or istio).
        #[arg(long)]
        mesh: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(clap::Args)]
struct DashboardArgs {
    /// The MeshInstallation; may be omitted when there is only one.
    name: Option<String>,
    /// Local port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: std::net::IpAddr,
}

async fn client() -> Result<kube::Client, i32> {
    kube::Client::try_default().await.map_err(|error| {
        eprintln!("meshctl: cannot reach the cluster: {error}");
        mesh_operator::meshctl::exit::ERROR
    })
}

async fn status(args: StatusArgs) -> i32 {
    use mesh_operator::meshctl::{exit, status as st};
    let client = match client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let style = st::Style::detect();
    if args.wait {
        let Some(name) = args.name.as_deref() else {
            eprintln!("meshctl: --wait needs the name of one installation");
            return exit::USAGE;
        };
        let timeout = std::time::Duration::from_secs(args.timeout);
        // Progress goes to stderr with -o json, so stdout stays one JSON document.
        let mut progress: Box<dyn std::io::Write + Send> = match args.output {
            OutputFormat::Text => Box::new(std::io::stdout()),
            OutputFormat::Json => Box::new(std::io::stderr()),
        };
        return match st::wait_ready(&client, name, timeout, std::time::Duration::from_secs(1), &mut progress).await {
            Ok((view, ready)) => {
                print_views(&[view], args.output, style);
                if !ready {
                    eprintln!("meshctl: {name} is not Ready after {}s", args.timeout);
                }
                if ready { exit::OK } else { exit::NOT_READY }
            }
            Err(error) => {
                eprintln!("meshctl: {error}");
                error.exit_code()
            }
        };
    }
    match st::fetch(&client, args.name.as_deref()).await {
        Ok(installations) => {
            let views: Vec<st::StatusView> = installations.iter().map(st::StatusView::of).collect();
            print_views(&views, args.output, style);
            st::exit_code(&views)
        }
        Err(error) => {
            eprintln!("meshctl: {error}");
            error.exit_code()
        }
    }
}

fn print_views(
    views: &[mesh_operator::meshctl::status::StatusView],
    output: OutputFormat,
    style: mesh_operator::meshctl::status::Style,
) {
    use mesh_operator::meshctl::status::render_text;
    match output {
        OutputFormat::Text => {
            let texts: Vec<String> = views.iter().map(|v| render_text(v, style)).collect();
            print!("{}", texts.join("\n"));
        }
        OutputFormat::Json => {
            let value = if views.len() == 1 { serde_json::to_value(&views[0]) } else { serde_json::to_value(views) };
            match value.and_then(|v| serde_json::to_string_pretty(&v)) {
                Ok(text) => println!("{text}"),
                Err(error) => eprintln!("meshctl: {error}"),
            }
        }
    }
}

async fn namespace_list(mesh: Option<String>, output: OutputFormat) -> i32 {
    use mesh_operator::meshctl::{exit, namespaces};
    let client = match client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match namespaces::list(&client, mesh.as_deref()).await {
        Ok(rows) => {
            match output {
                OutputFormat::Text => {
                    if rows.is_empty() {
                        eprintln!("no namespace is enrolled in a mesh");
                    }
                    print!("{}", namespaces::render_table(&rows));
                }
                OutputFormat::Json => match serde_json::to_string_pretty(&rows) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("meshctl: {error}"),
                },
            }
            exit::OK
        }
        Err(error) => {
            eprintln!("meshctl: listing namespaces: {error}");
            exit::ERROR
        }
    }
}

async fn dashboard(args: DashboardArgs) -> i32 {
    use mesh_operator::meshctl::{dashboard, exit, status as st};
    let client = match client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mi = match st::fetch_one(&client, args.name.as_deref()).await {
        Ok(mi) => mi,
        Err(error) => {
            eprintln!("meshctl: {error}");
            return error.exit_code();
        }
    };
    let (target, pod) = match dashboard::find_pod(&client, &mi).await {
        Ok(Ok(found)) => found,
        Ok(Err(none)) => {
            eprintln!("meshctl: {none}");
            return exit::NOT_READY;
        }
        Err(error) => {
            eprintln!("meshctl: listing Grafana pods: {error}");
            return exit::ERROR;
        }
    };
    let listener = match tokio::net::TcpListener::bind((args.address, args.port)).await {
        Ok(l) => l,
        Err(error) => {
            eprintln!("meshctl: cannot listen on {}:{}: {error} (try --port 0)", args.address, args.port);
            return exit::ERROR;
        }
    };
    match dashboard::forward(&client, &target, &pod, listener, &mut std::io::stdout()).await {
        Ok(()) => exit::OK,
        Err(error) => {
            eprintln!("meshctl: {error:#}");
            exit::ERROR
        }
    }
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
    /// Azure workload identity: client ID of the managed identity with a federated credential for
    /// system:serviceaccount:mesh-operator-system:mesh-operator (annotates the ServiceAccount, labels
    /// the pod, projects the token).
    #[arg(long, value_name = "CLIENT_ID")]
    azure_client_id: Option<String>,
    /// Tenant of that identity (default: the cluster's, as the AKS webhook injects it).
    #[arg(long, value_name = "TENANT_ID", requires = "azure_client_id")]
    azure_tenant_id: Option<String>,
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
    use mesh_operator::manifests::workload_identity::WorkloadIdentity;
    use mesh_operator::meshctl::install::{InstallOptions, install};
    let client = kube::Client::try_default().await?;
    let options = InstallOptions {
        image: args.image,
        wait: !args.no_wait,
        timeout: std::time::Duration::from_secs(args.timeout),
        workload_identity: args
            .azure_client_id
            .map(|client_id| WorkloadIdentity { client_id, tenant_id: args.azure_tenant_id }),
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
        Command::Status(args) => std::process::exit(status(args).await),
        Command::Namespace(NamespaceCommand::List { mesh, output }) => {
            std::process::exit(namespace_list(mesh, output).await)
        }
        Command::Dashboard(args) => std::process::exit(dashboard(args).await),
        Command::Translate(args) => std::process::exit(mesh_operator::meshctl::translate::run(args).await),
    }
}
