//! The mesh-operator binary: `run` the controller, print the `crd`s, or generate the install `manifests`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mesh_operator::context::{AzureSettings, Settings};
use mesh_operator::controller::{self, LeaderElection};
use mesh_operator::metrics::Metrics;
use mesh_provisioner::azure::EndpointOverrides;
use tokio::sync::watch;

/// mimalloc (see `mesh_operator::allocator`).
#[global_allocator]
static GLOBAL: mesh_operator::allocator::Allocator = mimalloc::MiMalloc;

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
        /// Which CRDs: ours, OSM's ten (installed by the operator for self-hosted OSM), or both. Istio's
        /// come from Istio (the AKS add-on, or `kubernetes/customresourcedefinitions.gen.yaml` of the istio.io/api module).
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
    /// The operator's own namespace (defaults to the pod's): the leader Lease lives there, and no
    /// installation may enrol it or run apps in it.
    #[arg(long, env = "POD_NAMESPACE", default_value = "mesh-operator-system")]
    lease_namespace: String,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Seconds between checks of a converged installation.
    #[arg(long, default_value_t = 300)]
    resync_seconds: u64,
    /// Log format: text for people, json (one object per line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
    log_format: LogFormat,
    /// Azure Resource Manager endpoint replacing every cloud's (an ARM emulator in tests, a private
    /// cloud). Only the operator's installer sets this: a MeshInstallation can only name a cloud.
    #[arg(long, env = "MESH_OPERATOR_AZURE_ARM_ENDPOINT")]
    azure_arm_endpoint: Option<String>,
    /// Microsoft Entra authority host replacing every cloud's (with --azure-arm-endpoint).
    #[arg(long, env = "MESH_OPERATOR_AZURE_AUTHORITY_HOST")]
    azure_authority_host: Option<String>,
    /// The only AKS cluster installations may act on, as its ARM resource ID
    /// (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.ContainerService/managedClusters/<name>);
    /// an installation naming another cluster is refused with a condition saying so.
    #[arg(long, env = "MESH_OPERATOR_AZURE_CLUSTER_ID")]
    azure_cluster_id: Option<String>,
    /// OpenTelemetry collector to send traces to over OTLP/HTTP, e.g. http://otel-collector:4318
    /// (only in builds with the `otel` feature; each reconcile is a span named `reconcile` with
    /// the installation's name).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

/// Logs to stderr as text or JSON lines; with the `otel` feature, spans (each reconcile is one,
/// carrying the installation's name) also go to an OpenTelemetry collector over OTLP/HTTP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `--otlp-endpoint`) is set.
fn init_logging(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,kube_lease_manager=warn"))
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let mut layers: Vec<BoxedLayer> = vec![match format {
        LogFormat::Text => fmt.with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter()).boxed(),
    }];
    let (otel, telemetry) = otel_layer(otlp_endpoint)?;
    layers.extend(otel.map(|layer| layer.with_filter(filter()).boxed()));
    tracing_subscriber::registry().with(layers).try_init()?;
    Ok(telemetry)
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// What must be flushed at exit.
#[derive(Default)]
struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing traces: {error}");
        }
    }
}

#[cfg(feature = "otel")]
type OtelLayer = Option<
    tracing_opentelemetry::OpenTelemetryLayer<tracing_subscriber::Registry, opentelemetry_sdk::trace::SdkTracer>,
>;
#[cfg(not(feature = "otel"))]
type OtelLayer = Option<tracing_subscriber::layer::Identity>;

#[cfg(feature = "otel")]
fn otel_layer(endpoint: Option<&str>) -> anyhow::Result<(OtelLayer, Telemetry)> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        return Ok((None, Telemetry::default()));
    };
    let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(endpoint).build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("mesh-operator").build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("mesh-operator");
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok((Some(tracing_opentelemetry::layer().with_tracer(tracer)), Telemetry { provider: Some(provider) }))
}

#[cfg(not(feature = "otel"))]
fn otel_layer(endpoint: Option<&str>) -> anyhow::Result<(OtelLayer, Telemetry)> {
    if endpoint.is_some_and(|e| !e.is_empty()) {
        eprintln!("mesh-operator was built without the `otel` feature: traces are not exported");
    }
    Ok((None, Telemetry::default()))
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

fn main() -> anyhow::Result<()> {
    // One thread on one CPU, so the allocator's collect reaches all memory (`mesh_operator::runtime`).
    let runtime = anyhow::Context::context(mesh_operator::runtime::for_this_process(), "starting the async runtime")?;
    runtime.block_on(run_command())
}

async fn run_command() -> anyhow::Result<()> {
    let cli = Cli::parse();
    mesh_operator::init_crypto();
    match cli.command {
        Command::Crd { set } => {
            let sets = mesh_crds::generate::all_sets();
            let selected = match set {
                CrdSet::All => sets.into_iter().flat_map(|s| s.crds).collect(),
                CrdSet::MeshInstallation => vec![mesh_crds::generate::mesh_installation_crd()],
                CrdSet::Osm => mesh_crds::generate::osm_crds(),
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
            let telemetry = init_logging(args.log_format, args.otlp_endpoint.as_deref())?;
            // What a reconcile frees goes back to the OS while the operator idles.
            let _collector = mesh_operator::allocator::spawn_periodic_collect();
            let client = kube::Client::try_default().await?;
            controller::ensure_crd(&client, args.install_crds).await?;
            let election = args.leader_elect.then(|| LeaderElection {
                namespace: args.lease_namespace.clone(),
                lease_name: mesh_operator::manifests::LEASE_NAME.to_string(),
                identity: std::env::var("POD_NAME").unwrap_or_else(|_| format!("mesh-operator-{}", std::process::id())),
            });
            let azure = AzureSettings {
                overrides: EndpointOverrides {
                    arm_endpoint: args.azure_arm_endpoint.filter(|v| !v.is_empty()),
                    authority_host: args.azure_authority_host.filter(|v| !v.is_empty()),
                },
                cluster_id: args.azure_cluster_id.filter(|v| !v.is_empty()),
            };
            azure.overrides.validate()?;
            if !azure.overrides.is_empty() {
                tracing::warn!(overrides = ?azure.overrides, "Azure endpoints overridden by the operator's flags: every installation's Azure requests go there");
            }
            let settings = Settings {
                resync: Duration::from_secs(args.resync_seconds),
                operator_namespace: args.lease_namespace.clone(),
                azure,
                ..Settings::default()
            };
            let metrics = Arc::new(Metrics::default());
            let (ready_tx, ready_rx) = watch::channel(false);
            let server = tokio::spawn(mesh_operator::server::serve(args.metrics_addr, ready_rx, metrics.clone()));
            tracing::info!(metrics = %args.metrics_addr, "mesh-operator starting");
            let result = controller::run(client, settings, election, shutdown_signal(), Some(ready_tx), metrics).await;
            server.abort();
            telemetry.shutdown();
            Ok(result?)
        }
    }
}
