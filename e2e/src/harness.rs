//! One suite, three targets: every end-to-end test states what it needs from the target, and on a
//! target without it the test is reported **ignored, with the reason** — never passed.
//!
//! Rust's built-in test harness cannot skip at run time, so the cluster suites are built with
//! `harness = false` (`e2e/Cargo.toml`) and end with one [`e2e_main!`](crate::e2e_main) listing
//! their tests and needs:
//!
//! ```ignore
//! async fn bookstore_converges() { /* the test, as with #[tokio::test] */ }
//!
//! mesh_e2e::e2e_main! {
//!     bookstore_converges: [SimulatedPods, InProcessOperator],
//! }
//! ```
//!
//! Each test runs on a current-thread Tokio runtime, as `#[tokio::test]` did, through
//! `libtest-mimic`, which takes the usual arguments (filters, `--exact`, `--test-threads`,
//! `--list`, `--nocapture`) and prints `test NAME ... ignored (needs X: why)` and
//! `N passed; M failed; K ignored` like libtest. A test whose cluster cannot be reached at all
//! (`E2E_PROVIDER=kind` without kind, `kubeconfig` without a kubeconfig) is ignored the same way.
//!
//! What each target has: the local control plane the harness starts has every need but
//! [`Need::LiveAzure`] (and [`Need::RealPods`] only with `runc` installed). On `kind` and
//! `kubeconfig` the harness did not start the cluster and assumes nothing about it: no simulated
//! pods, no runner, no audit log, webhooks called, nothing it may change that it did not create;
//! the CRDs and whether an operator is already deployed are read from the cluster.
//!
//! Operator logs (`tracing`) go to a file per test binary ([`init_logs`]; `--nocapture` sends them
//! to stderr instead): libtest-mimic does not capture output as libtest does.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::cluster::{Provider, TestCluster};

/// Something a test needs from its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Pods become Ready whatever their image (kwok's simulated nodes): workloads with images that
    /// cannot run (`example.invalid/…`). OSM's control plane is not among them: once `make cluster`
    /// built its images into the local image store it runs for real in every suite.
    SimulatedPods,
    /// Pods whose images are in the local image store run for real under runc (the local control
    /// plane's runner, with its runc state dir and kubelet endpoint).
    RealPods,
    /// The harness started the cluster, so the test may change what it did not create: the
    /// operator's own install (ClusterRole, CRD), the API server's flags.
    OwnedCluster,
    /// The API server's audit log.
    AuditLog,
    /// The ARM emulator plays the AKS add-ons in the cluster: it writes and deletes
    /// `kube-system/osm-controller`, the OSM CRDs, `aks-osm-*` webhooks and `aks-istio-system`,
    /// which on a real AKS cluster belong to the add-on.
    ArmEmulator,
    /// OSM's control plane stays simulated, for the reason given: the local control plane of the
    /// whole test binary runs from a copy of the local image store without OSM's images
    /// ([`crate::local_images::store_without_osm`]). Real OSM is the default once `make cluster`
    /// built it; a suite asks for this only where real OSM cannot reasonably run (say why).
    SimulatedOsm(&'static str),
    /// The API server does not call admission webhooks (those the emulator's add-on registers are
    /// served by nothing).
    AdmissionWebhooksOff,
    /// The operator runs in the test process: no operator deployed in the cluster races it.
    InProcessOperator,
    /// Istio's CRDs (`security.istio.io`, `networking.istio.io`) are installed.
    IstioCrds,
    /// The Gateway API CRDs are installed.
    GatewayApiCrds,
    /// Real Azure: `MESH_E2E_AZURE_*` name a subscription, cluster and registry the test may change.
    LiveAzure,
}

/// The variables that name the real Azure resources of [`Need::LiveAzure`].
pub const LIVE_AZURE_ENV: [&str; 5] = [
    "MESH_E2E_AZURE_SUBSCRIPTION",
    "MESH_E2E_AZURE_RESOURCE_GROUP",
    "MESH_E2E_AZURE_CLUSTER",
    "MESH_E2E_AZURE_LOCATION",
    "MESH_E2E_AZURE_ACR",
];

/// A test as [`e2e_main!`](crate::e2e_main) lists it.
pub struct Test {
    name: &'static str,
    needs: &'static [Need],
    body: fn() -> Pin<Box<dyn Future<Output = ()>>>,
}

impl Test {
    /// `body` is the test's `async fn`, wrapped by the macro.
    pub fn new(name: &'static str, needs: &'static [Need], body: fn() -> Pin<Box<dyn Future<Output = ()>>>) -> Test {
        Test { name, needs, body }
    }
}

/// Thrown (as a panic payload, without the panic hook) where a test finds it cannot run at all,
/// e.g. [`TestCluster::get`] on a provider whose prerequisites are missing.
#[derive(Debug)]
pub struct Skip(pub String);

/// Ends the calling test as ignored, with `reason`.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::resume_unwind(Box::new(Skip(reason.into())))
}

/// Runs a suite: the `main` of every `harness = false` test binary.
pub fn run(suite: &str, mut tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    // In name order, as libtest starts them (suites that serialise on a lock keep their order).
    tests.sort_by_key(|test| test.name);
    let _ = LOG_TARGET.set((suite.to_string(), args.nocapture));
    if Provider::from_env() == Ok(Provider::Local)
        && tests.iter().any(|test| test.needs.iter().any(|need| matches!(need, Need::SimulatedOsm(_))))
    {
        let store = crate::local_images::store_without_osm().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: before any test runs, so before any thread or child reads the environment.
        unsafe { std::env::set_var("MESH_IMAGE_STORE", store) };
    }
    let trials = tests
        .into_iter()
        .map(|test| Trial::ignorable_test(test.name, move || run_one(test.needs, test.body)))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // The operator's logs are kept for failures only.
    if !conclusion.has_failed()
        && let Some(path) = LOG_FILE.get()
    {
        let _ = std::fs::remove_file(path);
    }
    conclusion.exit_code()
}

fn run_one(needs: &'static [Need], body: fn() -> Pin<Box<dyn Future<Output = ()>>>) -> Result<Completion, Failed> {
    let outcome = std::panic::catch_unwind(|| {
        let missing: Vec<String> = needs.iter().filter_map(|need| missing(*need)).collect();
        if !missing.is_empty() {
            let provider = Provider::from_env().map(|p| p.name()).unwrap_or_default();
            skip(format!("E2E_PROVIDER={provider}: {}", missing.join("; ")));
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
        runtime.block_on(body());
    });
    match outcome {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => match payload.downcast::<Skip>() {
            Ok(skip) => Ok(Completion::ignored_with(skip.0)),
            Err(payload) => Err(panic_message(payload).into()),
        },
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the test panicked".to_string());
    match LOG_FILE.get() {
        Some(path) => format!("{text}\n(operator logs: {})", path.display()),
        None => text,
    }
}

/// Why the target lacks `need`, or `None` when it has it.
pub fn missing(need: Need) -> Option<String> {
    let provider = Provider::from_env().unwrap_or_else(|e| panic!("{e}"));
    let reason = match need {
        Need::LiveAzure => {
            let unset: Vec<&str> = LIVE_AZURE_ENV.into_iter().filter(|v| std::env::var_os(v).is_none()).collect();
            return (!unset.is_empty()).then(|| format!("needs real Azure: set {}", unset.join(", ")));
        }
        Need::RealPods if provider == Provider::Local => {
            return (!crate::cluster::which("runc")).then(|| {
                "needs real pods: runc is not on PATH, so the local control plane simulates every pod".into()
            });
        }
        _ if provider == Provider::Local => return None,
        Need::SimulatedPods => {
            "needs simulated pods (kwok), assumed only on the local control plane the harness starts"
        }
        Need::RealPods => "needs the local control plane's real-pod runner (runc, the local image store)",
        Need::OwnedCluster => {
            "needs a cluster the harness started: it changes objects it did not create (the operator's install, \
             the API server's flags)"
        }
        Need::AuditLog => {
            "needs the API server's audit log, which only the local control plane the harness starts keeps"
        }
        Need::ArmEmulator => {
            "needs the ARM emulator, which plays the AKS add-on by writing kube-system/osm-controller, the OSM CRDs \
             and aks-osm-* webhooks: only on a cluster the harness started"
        }
        Need::AdmissionWebhooksOff => "needs an API server that calls no admission webhooks",
        Need::SimulatedOsm(reason) => {
            return Some(format!(
                "needs OSM's control plane simulated ({reason}): only on the local control plane the harness starts"
            ));
        }
        Need::InProcessOperator => return deployed_operator(),
        Need::IstioCrds => return crd_missing("authorizationpolicies.security.istio.io", "Istio's CRDs"),
        Need::GatewayApiCrds => return crd_missing("httproutes.gateway.networking.k8s.io", "the Gateway API CRDs"),
    };
    Some(reason.to_string())
}

/// Whether an operator Deployment is already in the cluster (read once per test binary).
fn deployed_operator() -> Option<String> {
    static FOUND: OnceLock<Option<String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let namespace = mesh_operator::manifests::NAMESPACE;
            let found = probe(|client| async move {
                let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client, namespace);
                api.get_opt("mesh-operator").await.map(|d| d.is_some())
            });
            found.then(|| {
                format!(
                    "needs the operator in-process, but it is deployed in this cluster ({namespace}/mesh-operator) \
                     and would race it"
                )
            })
        })
        .clone()
}

fn crd_missing(name: &'static str, what: &str) -> Option<String> {
    static FOUND: OnceLock<std::sync::Mutex<std::collections::BTreeMap<&'static str, bool>>> = OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    let known = cache.lock().ok().and_then(|c| c.get(name).copied());
    let present = known.unwrap_or_else(|| {
        let present = probe(|client| async move {
            use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
            let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client);
            api.get_opt(name).await.map(|crd| crd.is_some())
        });
        if let Ok(mut c) = cache.lock() {
            c.insert(name, present);
        }
        present
    });
    (!present).then(|| format!("needs {what}: CRD {name} is not installed in this cluster"))
}

/// Reads the target with a client of its own runtime; `true`/`false` from `read`.
fn probe<F, Fut>(read: F) -> bool
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: Future<Output = Result<bool, kube::Error>>,
{
    let Some(cluster) = TestCluster::get() else { skip("no cluster") };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
    runtime.block_on(async {
        let client = cluster.client().await;
        read(client)
            .await
            .unwrap_or_else(|e| panic!("reading the target cluster ({}): {e}", cluster.kubeconfig.display()))
    })
}

static LOG_FILE: OnceLock<std::path::PathBuf> = OnceLock::new();
static LOG_TARGET: OnceLock<(String, bool)> = OnceLock::new();

/// Where the operator's logs (`tracing`) go, set up once per test binary when an operator starts
/// (a suite that installed its own subscriber first keeps it): under this harness to a file, whose
/// path is printed once and named in every failure (`--nocapture`: stderr) — libtest-mimic does
/// not capture output as libtest does; elsewhere (libtest) to the test's captured output.
pub fn init_logs() {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mesh_provisioner=info,mesh_operator=info"))
    };
    let Some((suite, nocapture)) = LOG_TARGET.get() else {
        let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_test_writer().try_init();
        return;
    };
    if *nocapture {
        let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).try_init();
        return;
    }
    if LOG_FILE.get().is_some() {
        return;
    }
    let path = std::env::temp_dir().join(format!("mesh-e2e-{suite}-{}.log", std::process::id()));
    match std::fs::File::create(&path) {
        Ok(file) => {
            let installed = tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
            if installed.is_ok() {
                eprintln!("e2e {suite}: operator logs in {}", path.display());
                let _ = LOG_FILE.set(path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        Err(e) => eprintln!("e2e {suite}: no log file {}: {e}", path.display()),
    }
}

/// The `main` of a cluster suite: lists its tests and what each needs ([`Need`] variants).
/// Every listed test is an `async fn()` of the file (no `#[tokio::test]`: with `harness = false`
/// such a test would silently never run — `tests::no_builtin_tests_in_custom_harness_suites`
/// refuses it).
#[macro_export]
macro_rules! e2e_main {
    ($($test:ident: [$($need:ident $(($reason:expr))?),* $(,)?]),* $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::harness::run(env!("CARGO_CRATE_NAME"), vec![$(
                $crate::harness::Test::new(
                    stringify!($test),
                    &[$($crate::harness::Need::$need $(($reason))?),*],
                    || -> ::std::pin::Pin<Box<dyn ::std::future::Future<Output = ()>>> { Box::pin($test()) },
                ),
            )*])
        }
    };
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The test targets `e2e/Cargo.toml` builds with `harness = false` (`[[test]]` blocks).
    fn custom_harness_suites() -> Vec<String> {
        let manifest =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
        let mut suites = Vec::new();
        for block in manifest.split("[[test]]").skip(1) {
            let block = block.split("\n[").next().unwrap_or_default();
            let field = |key: &str| {
                block.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            if field("harness").as_deref() == Some("false") {
                suites.push(field("name").expect("every [[test]] has a name"));
            }
        }
        suites
    }

    /// With `harness = false`, `#[test]` and `#[tokio::test]` functions are compiled out: a test
    /// written that way in a converted suite would never run, silently. And a file with
    /// `e2e_main!` under the built-in harness would run none of its tests.
    #[test]
    fn no_builtin_tests_in_custom_harness_suites() {
        let suites = custom_harness_suites();
        assert!(suites.len() >= 10, "the cluster suites are harness = false: {suites:?}");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        for entry in std::fs::read_dir(&dir).expect("e2e/tests") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if suites.contains(&name) {
                for attribute in ["#[test]", "#[tokio::test"] {
                    assert!(
                        !text.contains(attribute),
                        "{}: {attribute} never runs in a harness = false suite; list the async fn in e2e_main! instead",
                        path.display()
                    );
                }
                assert!(text.contains("e2e_main!"), "{}: harness = false but no e2e_main!", path.display());
            } else {
                assert!(
                    !text.contains("e2e_main!"),
                    "{}: e2e_main! needs a [[test]] name = \"{name}\" harness = false in e2e/Cargo.toml",
                    path.display()
                );
            }
        }
    }
}
