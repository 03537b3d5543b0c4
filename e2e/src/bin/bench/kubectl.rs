//! The second convergence baseline, what a person would type: `kubectl apply --server-side` of
//! the rendered CRDs, `kubectl wait` until they are Established, `kubectl apply --server-side` of
//! the rest, and `kubectl wait` for every workload (one `kubectl wait` per namespace and kind, run
//! side by side as `&` in a shell would). kubectl is `$KUBECTL`, or the first on `PATH`; without
//! one the bench says the baseline was skipped and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use mesh_crds::MeshInstallation;
use mesh_provisioner::desired::Desired;

use super::TIMEOUT;
use super::convergence::phases;

/// One run of the baseline.
pub struct Run {
    /// From the first apply until every workload is available.
    pub ready_after: Duration,
    /// kubectl processes started.
    pub invocations: usize,
}

/// The kubectl to run, or why there is none.
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("KUBECTL") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(format!("KUBECTL={} is not a file", path.display())) };
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "no kubectl on PATH (set KUBECTL to one to run this baseline)".to_string())
}

/// `objects` as one YAML stream (JSON documents are YAML).
fn stream(objects: &[&Desired]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(&d.object)?);
        out.push('\n');
    }
    Ok(out)
}

async fn kubectl(kubectl: &Path, kubeconfig: &Path, args: &[String]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {}", kubectl.display()))?;
    if !output.status.success() {
        return Err(anyhow!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).lines().take(5).collect::<Vec<_>>().join("; ")
        ));
    }
    Ok(())
}

/// The `kubectl wait` of every workload: `(namespace, args)` per namespace and kind.
fn waits(objects: &[Desired]) -> Vec<Vec<String>> {
    let timeout = format!("--timeout={}s", TIMEOUT.as_secs());
    let mut by_namespace_and_kind: BTreeMap<(String, String), Vec<&Desired>> = BTreeMap::new();
    for d in objects.iter().filter(|d| matches!(d.resource.kind.as_str(), "Deployment" | "StatefulSet")) {
        let key = (d.namespace().unwrap_or_default().to_string(), d.resource.kind.clone());
        by_namespace_and_kind.entry(key).or_default().push(d);
    }
    let mut commands = Vec::new();
    for ((namespace, kind), workloads) in by_namespace_and_kind {
        if kind == "Deployment" {
            let mut args =
                vec!["wait".into(), "--for=condition=Available".into(), timeout.clone(), "-n".into(), namespace];
            args.extend(workloads.iter().map(|d| format!("deployment/{}", d.name())));
            commands.push(args);
            continue;
        }
        // A StatefulSet has no Available condition: wait for its ready replicas, one each.
        for d in workloads {
            let replicas = d.object.data["spec"]["replicas"].as_i64().unwrap_or(1);
            commands.push(vec![
                "wait".into(),
                format!("--for=jsonpath={{.status.readyReplicas}}={replicas}"),
                timeout.clone(),
                "-n".into(),
                namespace.clone(),
                format!("statefulset/{}", d.name()),
            ]);
        }
    }
    commands
}

/// Applies `objects` and waits for their workloads with `kubectl_path`.
pub async fn apply_and_wait(
    kubectl_path: &Path,
    kubeconfig: &Path,
    mi: &MeshInstallation,
    objects: &[Desired],
) -> anyhow::Result<Run> {
    let phases = phases(objects, mi);
    let crds = &phases.crds;
    let dir = std::env::temp_dir().join(format!("mesh-bench-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let crds_file = dir.join("crds.yaml");
    let rest_file = dir.join("bookstore.yaml");
    let apps_file = dir.join("apps.yaml");
    std::fs::write(&crds_file, stream(crds)?)?;
    std::fs::write(&rest_file, stream(&phases.before_apps)?)?;
    std::fs::write(&apps_file, stream(&phases.apps)?)?;
    let apply = |file: &Path| -> Vec<String> {
        ["apply", "--server-side", "--force-conflicts", "--field-manager=bench-kubectl", "-f"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()])
            .collect()
    };
    let mut established =
        vec!["wait".to_string(), "--for=condition=Established".into(), format!("--timeout={}s", TIMEOUT.as_secs())];
    established.extend(crds.iter().map(|d| format!("crd/{}", d.name())));
    let waits = waits(objects);

    let started = Instant::now();
    kubectl(kubectl_path, kubeconfig, &apply(&crds_file)).await?;
    kubectl(kubectl_path, kubeconfig, &established).await?;
    kubectl(kubectl_path, kubeconfig, &apply(&rest_file)).await?;
    let mut invocations = 3 + waits.len();
    if let Some((namespace, name)) = &phases.injector {
        let wait = ["wait", "--for=condition=Available", "-n", namespace, &format!("deployment/{name}")];
        let mut wait: Vec<String> = wait.iter().map(|s| s.to_string()).collect();
        wait.push(format!("--timeout={}s", TIMEOUT.as_secs()));
        kubectl(kubectl_path, kubeconfig, &wait).await?;
        invocations += 1;
    }
    kubectl(kubectl_path, kubeconfig, &apply(&apps_file)).await?;
    let results = futures::future::join_all(waits.iter().map(|args| kubectl(kubectl_path, kubeconfig, args))).await;
    let ready_after = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(Run { ready_after, invocations: invocations + 1 })
}
