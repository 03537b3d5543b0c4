//! `meshctl translate`: SMI → Gateway API (GAMMA) HTTPRoutes + Istio AuthorizationPolicies.
//!
//! Contract:
//! - objects go to stdout, as a YAML multi-document stream (`-o yaml`, the default) or a JSON
//!   `List` (`-o json`);
//! - notifications go to stderr, one per line: `LEVEL Kind/namespace/name: message`;
//! - exit 0 without ERROR; 3 when any ERROR (the translatable part is still printed; an object
//!   named by an ERROR is incomplete and must be reviewed before it is applied); 2 when the input
//!   cannot be read or parsed (the message names the document, line and column).
//!
//! The input is a YAML stream of SMI objects (TrafficTarget v1alpha3, HTTPRouteGroup and TCPRoute
//! v1alpha4, TrafficSplit v1alpha2) plus the Services and workloads (Deployments, StatefulSets,
//! Jobs, bare Pods) they refer to; `kind` tells them apart, `List` documents (`kubectl get -o
//! yaml`) are flattened. Every namespace holding a workload or TrafficTarget of the input counts
//! as enrolled in the mesh (it gets a namespace-wide deny-all baseline).
//! `--from-cluster` reads the same kinds from all namespaces of the current kubeconfig cluster;
//! workloads count only in namespaces enrolled in a mesh (label `openservicemesh.io/monitored-by`,
//! `istio.io/rev` or `istio-injection=enabled`), and those namespaces get the baseline.
//! `--overrides FILE` reads narrowing overrides (`overrides:` followed by the list
//! `spec.traffic.translation.overrides` takes).

use std::collections::BTreeSet;
use std::io::{Read, Write};

use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use mesh_crds::smi::{HTTPRouteGroup, TCPRoute, TrafficSplit, TrafficTarget};
use mesh_crds::{Notification, NotificationLevel};
use mesh_provisioner::translate::{
    Target, TranslateOptions, TranslationInput, notification_line, object_ref, translate_with,
};
use serde::de::DeserializeOwned;

/// Exit code: translated without ERROR.
pub const EXIT_OK: i32 = 0;
/// Exit code: the output could not be written.
pub const EXIT_OUTPUT: i32 = 1;
/// Exit code: the input could not be read or parsed.
pub const EXIT_INPUT: i32 = 2;
/// Exit code: translated, but with ERROR notifications.
pub const EXIT_ERRORS: i32 = 3;

/// Arguments of `meshctl translate`.
#[derive(Args, Debug, Clone)]
pub struct TranslateArgs {
    /// YAML stream of SMI objects, Services, Deployments and StatefulSets; `-` reads stdin.
    #[arg(
        long,
        short = 'i',
        value_name = "FILE|-",
        required_unless_present = "from_cluster",
        conflicts_with = "from_cluster"
    )]
    pub input: Option<String>,
    /// What to emit: `istio` (HTTPRoutes + AuthorizationPolicies, for the AKS Istio add-on) or
    /// `gateway-api` (HTTPRoutes only; every TrafficTarget is then an ERROR).
    #[arg(long, value_enum, default_value_t = TargetArg::Istio)]
    pub target: TargetArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Read the objects from all namespaces of the current kubeconfig cluster instead of a file.
    #[arg(long)]
    pub from_cluster: bool,
    /// YAML file of narrowing overrides: `overrides:` and a list as in
    /// `spec.traffic.translation.overrides`. Each is used only if proven inside its SMI match.
    #[arg(long, value_name = "FILE")]
    pub overrides: Option<String>,
}

/// `--target`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetArg {
    /// HTTPRoutes only.
    #[value(name = "gateway-api")]
    GatewayApi,
    /// HTTPRoutes and Istio AuthorizationPolicies.
    Istio,
}

/// `-o`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// YAML multi-document stream.
    Yaml,
    /// JSON `List`.
    Json,
}

/// Errors reading the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("connecting to the cluster of the current kubeconfig: {0}")]
    Connect(#[source] kube::Error),
    /// A list call failed.
    #[error("listing {kind} in all namespaces: {source}")]
    List {
        /// The kind listed.
        kind: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Runs `meshctl translate` on the process's stdin, stdout and stderr; returns the exit code.
pub async fn run(args: TranslateArgs) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(args, &mut std::io::stdin().lock(), &mut stdout.lock(), &mut stderr.lock()).await
}

/// Runs `meshctl translate` on the given streams; returns the exit code.
pub async fn run_with(
    args: TranslateArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let loaded = if args.from_cluster {
        read_cluster().await.map_err(|e| e.to_string())
    } else {
        read_input(args.input.as_deref().unwrap_or("-"), stdin)
    };
    let (input, mut notifications) = match loaded {
        Ok(loaded) => loaded,
        Err(message) => {
            // Nothing sensible can be done if stderr is gone; the exit code still tells.
            let _ = writeln!(stderr, "error: {message}");
            return EXIT_INPUT;
        }
    };
    let target = match args.target {
        TargetArg::GatewayApi => Target::GatewayApi,
        TargetArg::Istio => Target::Istio,
    };
    let overrides = match args.overrides.as_deref().map(read_overrides).transpose() {
        Ok(overrides) => overrides.unwrap_or_default(),
        Err(message) => {
            let _ = writeln!(stderr, "error: {message}");
            return EXIT_INPUT;
        }
    };
    let translation = translate_with(&input, &TranslateOptions { target, overrides, ..TranslateOptions::default() });
    let rendered = match args.output {
        OutputFormat::Yaml => translation.to_yaml(),
        OutputFormat::Json => translation.to_json().map(|json| json + "\n"),
    };
    let rendered = match rendered {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return EXIT_OUTPUT;
        }
    };
    if let Err(e) = stdout.write_all(rendered.as_bytes()).and_then(|()| stdout.flush()) {
        let _ = writeln!(stderr, "error: writing the output: {e}");
        return EXIT_OUTPUT;
    }
    notifications.extend(translation.notifications.iter().cloned());
    notifications.sort();
    notifications.dedup();
    for notification in &notifications {
        let _ = writeln!(stderr, "{}", notification_line(notification));
    }
    if notifications.iter().any(|n| n.level == NotificationLevel::Error) { EXIT_ERRORS } else { EXIT_OK }
}

/// Reads and parses `--input`.
fn read_input(path: &str, stdin: &mut dyn Read) -> Result<(TranslationInput, Vec<Notification>), String> {
    let (name, text) = if path == "-" {
        let mut text = String::new();
        stdin.read_to_string(&mut text).map_err(|e| format!("reading stdin: {e}"))?;
        ("<stdin>".to_string(), text)
    } else {
        (path.to_string(), std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?)
    };
    TranslationInput::from_yaml_str(&text).map_err(|e| format!("{name}: {e}"))
}

/// Reads `--overrides`.
fn read_overrides(path: &str) -> Result<Vec<mesh_crds::TranslationOverride>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let spec: mesh_crds::TranslationSpec = serde_yaml::from_str(&text)
        .map_err(|e| format!("{path}: not a list of overrides (`overrides: [...]`): {e}"))?;
    Ok(spec.overrides)
}

fn is_enrolled(namespace: &Namespace) -> bool {
    let labels = namespace.labels();
    let ignored = labels.get("openservicemesh.io/ignore").is_some_and(|v| v == "true");
    !ignored
        && (labels.contains_key("openservicemesh.io/monitored-by")
            || labels.contains_key("istio.io/rev")
            || labels.get("istio-injection").is_some_and(|v| v == "enabled"))
}

async fn list_all<K>(client: &Client, notes: &mut Vec<Notification>) -> Result<Vec<K>, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).to_string();
    match Api::<K>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            notes.push(Notification {
                level: NotificationLevel::Info,
                object: format!("CustomResourceDefinition/-/{}", K::plural(&())),
                message: format!("{kind} is not served by the cluster (CRD absent): none read"),
            });
            Ok(Vec::new())
        }
        Err(source) => Err(ClusterError::List { kind, source }),
    }
}

/// Reads the SMI objects, Services and (enrolled) workloads of the current cluster.
async fn read_cluster() -> Result<(TranslationInput, Vec<Notification>), ClusterError> {
    let client = Client::try_default().await.map_err(ClusterError::Connect)?;
    let mut notes = Vec::new();
    let namespaces: Vec<Namespace> = list_all(&client, &mut notes).await?;
    let enrolled: BTreeSet<String> = namespaces.iter().filter(|n| is_enrolled(n)).map(ResourceExt::name_any).collect();
    if enrolled.is_empty() {
        notes.push(Notification {
            level: NotificationLevel::Warning,
            object: object_ref("Namespace", "-", "-"),
            message: "no namespace is enrolled in a mesh (labels openservicemesh.io/monitored-by, istio.io/rev, istio-injection=enabled): no workload gets a policy".to_string(),
        });
    }
    let in_mesh = |ns: Option<String>| ns.is_some_and(|ns| enrolled.contains(&ns));
    let input = TranslationInput {
        traffic_targets: list_all::<TrafficTarget>(&client, &mut notes).await?,
        http_route_groups: list_all::<HTTPRouteGroup>(&client, &mut notes).await?,
        tcp_routes: list_all::<TCPRoute>(&client, &mut notes).await?,
        traffic_splits: list_all::<TrafficSplit>(&client, &mut notes).await?,
        services: list_all::<Service>(&client, &mut notes).await?,
        deployments: list_all::<Deployment>(&client, &mut notes)
            .await?
            .into_iter()
            .filter(|d| in_mesh(d.namespace()))
            .collect(),
        stateful_sets: list_all::<StatefulSet>(&client, &mut notes)
            .await?
            .into_iter()
            .filter(|s| in_mesh(s.namespace()))
            .collect(),
        jobs: list_all::<Job>(&client, &mut notes).await?.into_iter().filter(|j| in_mesh(j.namespace())).collect(),
        pods: list_all::<Pod>(&client, &mut notes)
            .await?
            .into_iter()
            .filter(|p| in_mesh(p.namespace()) && p.owner_references().is_empty())
            .collect(),
        namespaces: enrolled.iter().cloned().collect(),
    };
    Ok((input, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWAREHOUSE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: mysql, namespace: bookwarehouse}
spec:
  clusterIP: None
  selector: {app: mysql}
  ports: [{name: client, port: 3306, appProtocol: tcp}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: mysql, namespace: bookwarehouse}
spec:
  selector: {matchLabels: {app: mysql}}
  serviceName: mysql
  template:
    metadata: {labels: {app: mysql}}
    spec:
      serviceAccountName: mysql
      containers: [{name: mysql, image: mysql:5.6}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: mysql, namespace: bookwarehouse}
spec: {matches: {ports: [3306]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: mysql, namespace: bookwarehouse}
spec:
  destination: {kind: ServiceAccount, name: mysql, namespace: bookwarehouse}
  rules: [{kind: TCPRoute, name: mysql}]
  sources: [{kind: ServiceAccount, name: bookwarehouse, namespace: bookwarehouse}]
";

    async fn run_text(input: &str, extra: &[&str]) -> (i32, String, String) {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: TranslateArgs,
        }
        let mut argv = vec!["meshctl", "--input", "-"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).expect("arguments");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(cli.args, &mut input.as_bytes(), &mut out, &mut err).await;
        (code, String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"))
    }

    #[tokio::test]
    async fn translates_to_yaml_and_json() {
        let (code, out, err) = run_text(BOOKWAREHOUSE, &[]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(out.starts_with("---\napiVersion: security.istio.io/v1\n"), "{out}");
        assert!(out.contains("- '3306'"));
        let (code, out, _) = run_text(BOOKWAREHOUSE, &["-o", "json"]).await;
        assert_eq!(code, EXIT_OK);
        let list: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(list["kind"], "List");
        // The mysql policy and the namespace baseline.
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn errors_exit_3_and_still_print() {
        let (code, out, err) = run_text(BOOKWAREHOUSE, &["--target", "gateway-api"]).await;
        assert_eq!(code, EXIT_ERRORS);
        assert_eq!(out, "");
        assert!(err.lines().any(|l| l.starts_with("ERROR TrafficTarget/bookwarehouse/mysql: ")), "{err}");
    }

    #[tokio::test]
    async fn overrides_file_narrows_the_article_regexes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../provisioner/tests/fixtures/translate/overrides");
        let input = std::fs::read_to_string(format!("{dir}/input.yaml")).expect("fixture");
        let overrides = format!("{dir}/overrides.yaml");
        let (code, out, err) = run_text(&input, &[]).await;
        assert_eq!(code, EXIT_ERRORS, "{err}");
        let (code, with, err) = run_text(&input, &["--overrides", &overrides]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert!(with.contains("/buy-a-book/new") && !out.contains("/buy-a-book/new"), "{with}");
        let (code, _, err) = run_text(&input, &["--overrides", "/nonexistent.yaml"]).await;
        assert_eq!(code, EXIT_INPUT);
        assert!(err.contains("/nonexistent.yaml"), "{err}");
    }

    #[tokio::test]
    async fn unreadable_input_exits_2_with_position() {
        let (code, _, err) = run_text("kind: Service\nmetadata: {name: [\n", &[]).await;
        assert_eq!(code, EXIT_INPUT);
        assert!(err.starts_with("error: <stdin>: document 1 (line "), "{err}");
        let (code, _, err) = run_text("---\napiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n", &[]).await;
        assert_eq!(code, EXIT_INPUT);
        assert!(err.contains("metadata.name"), "{err}");
    }
}
