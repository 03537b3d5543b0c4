//! `meshctl dashboard [NAME]`: port-forwards through the API server to the mesh's Grafana
//! (`osm-grafana` in the control-plane namespace, port 3000), like `osm dashboard`, and prints the
//! URL. Where there is no Grafana to open — the AKS add-ons, or `spec.mesh.addons.grafana: false`
//! — it says so and what to do instead.

use std::io::Write;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mesh_crds::{MeshInstallation, MeshProvider};
use tokio::net::TcpListener;

/// The `app` label of the Grafana pods (as `osm install` labels them).
pub const GRAFANA_APP: &str = "osm-grafana";
/// Grafana's port.
pub const GRAFANA_PORT: u16 = 3000;

/// Where the Grafana of an installation runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrafanaTarget {
    /// Control-plane namespace.
    pub namespace: String,
    /// Label selector of its pods.
    pub selector: String,
    /// Container port.
    pub port: u16,
}

/// Why there is no dashboard to open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoDashboard {
    /// The mesh is an AKS add-on: it deploys no Grafana.
    #[error(
        "MeshInstallation {name} uses the {provider}, which deploys no Grafana; use Azure Monitor managed Grafana \
         (az grafana create, with Azure Monitor managed Prometheus) to see the mesh's metrics"
    )]
    AddOn {
        /// Installation.
        name: String,
        /// Provider, in words.
        provider: &'static str,
    },
    /// Self-hosted, but Grafana was not asked for.
    #[error(
        "MeshInstallation {name} does not deploy Grafana (spec.mesh.addons.grafana is false); set it to true \
         (kubectl patch meshinstallation {name} --type merge -p '{{\"spec\":{{\"mesh\":{{\"addons\":{{\"grafana\":true}}}}}}}}') \
         and run meshctl dashboard again"
    )]
    NotEnabled {
        /// Installation.
        name: String,
    },
    /// Grafana is asked for but no pod of it is running and ready.
    #[error("no running and ready Grafana pod (app={GRAFANA_APP}) in namespace {namespace}: see meshctl status {name}")]
    NoPod {
        /// Installation.
        name: String,
        /// Namespace.
        namespace: String,
    },
}

/// The Grafana of `mi`, or why there is none (pure).
pub fn grafana_for(mi: &MeshInstallation) -> Result<GrafanaTarget, NoDashboard> {
    let name = mi.name_any();
    let mesh = &mi.spec.mesh;
    match mesh.provider {
        MeshProvider::AksAddon => return Err(NoDashboard::AddOn { name, provider: "AKS OSM add-on" }),
        MeshProvider::AksIstioAddon => return Err(NoDashboard::AddOn { name, provider: "AKS Istio add-on" }),
        MeshProvider::SelfHosted => {}
    }
    if !mesh.addons.grafana {
        return Err(NoDashboard::NotEnabled { name });
    }
    Ok(GrafanaTarget {
        namespace: mesh.control_plane_namespace().to_string(),
        selector: format!("app={GRAFANA_APP}"),
        port: GRAFANA_PORT,
    })
}

fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod to forward to: running, ready, not being deleted; the newest first (pure).
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().filter(|p| is_ready(p)).max_by(|a, b| {
        let started = |p: &Pod| p.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0);
        started(a).cmp(&started(b)).then_with(|| b.name_any().cmp(&a.name_any()))
    })
}

/// The URL printed for a local address.
pub fn url(local: SocketAddr) -> String {
    let host = if local.ip().is_loopback() { "localhost".to_string() } else { local.ip().to_string() };
    format!("http://{host}:{}", local.port())
}

/// Finds the pod to forward to for `mi`.
pub async fn find_pod(
    client: &Client,
    mi: &MeshInstallation,
) -> Result<Result<(GrafanaTarget, Pod), NoDashboard>, kube::Error> {
    let target = match grafana_for(mi) {
        Ok(target) => target,
        Err(none) => return Ok(Err(none)),
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let list = pods.list(&ListParams::default().labels(&target.selector)).await?.items;
    Ok(match pick_pod(&list) {
        Some(pod) => Ok((target.clone(), pod.clone())),
        None => Err(NoDashboard::NoPod { name: mi.name_any(), namespace: target.namespace }),
    })
}

/// Listens on `listener` and forwards every connection to `pod`'s Grafana port through the API
/// server, until the process is interrupted.
pub async fn forward(
    client: &Client,
    target: &GrafanaTarget,
    pod: &Pod,
    listener: TcpListener,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let pod_name = pod.name_any();
    let local = listener.local_addr()?;
    writeln!(out, "Grafana: {}", url(local))?;
    writeln!(
        out,
        "forwarding to pod {}/{pod_name} port {} through the API server; Ctrl-C to stop",
        target.namespace, target.port
    )?;
    out.flush()?;
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let pods = pods.clone();
        let pod_name = pod_name.clone();
        let port = target.port;
        tokio::spawn(async move {
            let mut forwarder = match pods.portforward(&pod_name, &[port]).await {
                Ok(f) => f,
                Err(error) => {
                    eprintln!("meshctl: port-forward to {pod_name}: {error}");
                    return;
                }
            };
            let Some(mut upstream) = forwarder.take_stream(port) else { return };
            if let Err(error) = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await {
                eprintln!("meshctl: forwarding: {error}");
            }
            drop(upstream);
            let _ = forwarder.join().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn mi(yaml: &str) -> MeshInstallation {
        MeshInstallation::from_yaml(yaml).expect("fixture")
    }

    #[test]
    fn self_hosted_with_grafana_forwards_to_osm_grafana_3000() {
        let found = grafana_for(&mi(
            "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: b}\nspec:\n  mesh: {provider: SelfHosted, namespace: mesh-cp, addons: {grafana: true}}\n",
        ));
        assert_eq!(
            found,
            Ok(GrafanaTarget { namespace: "mesh-cp".into(), selector: "app=osm-grafana".into(), port: 3000 })
        );
    }

    #[test]
    fn add_ons_and_disabled_grafana_say_so_clearly() {
        let addon = grafana_for(&mi(
            "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: a}\nspec:\n  mesh: {provider: AksAddon}\n",
        ))
        .expect_err("no grafana");
        assert!(addon.to_string().contains("AKS OSM add-on, which deploys no Grafana"), "{addon}");
        let off = grafana_for(&mi(
            "apiVersion: meshoperator.dev/v1alpha1\nkind: MeshInstallation\nmetadata: {name: b}\nspec:\n  mesh: {provider: SelfHosted, addons: {grafana: false}}\n",
        ))
        .expect_err("no grafana");
        assert!(off.to_string().contains("spec.mesh.addons.grafana is false"), "{off}");
    }

    fn pod(name: &str, phase: &str, ready: bool, started: i64) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                start_time: jiff::Timestamp::from_second(started).ok().map(Time),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn picks_the_newest_running_ready_pod() {
        let pods = vec![
            pod("old", "Running", true, 100),
            pod("new", "Running", true, 200),
            pod("newest-unready", "Running", false, 300),
            pod("pending", "Pending", false, 400),
        ];
        assert_eq!(pick_pod(&pods).map(|p| p.name_any()), Some("new".to_string()));
        assert!(pick_pod(&pods[2..]).is_none());
    }

    #[test]
    fn loopback_urls_say_localhost() {
        assert_eq!(url("127.0.0.1:3000".parse().expect("addr")), "http://localhost:3000");
    }
}
