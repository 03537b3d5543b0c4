//! The ingress on the local control plane: ingress-nginx with an Ingress and an IngressBackend
//! whose port is the Service's targetPort, a generated edge certificate that is renewed when
//! someone replaces it with an expired one, and nothing left after delete.

use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::{ConditionStatus, MeshInstallation, osm};
use mesh_e2e::operator::{OperatorHandle, test_settings};
use mesh_e2e::{TestCluster, wait};
use mesh_provisioner::ingress::certs;

const TIMEOUT: Duration = Duration::from_secs(120);

const SPEC: &str = r#"
apiVersion: meshoperator.dev/v1alpha1
kind: MeshInstallation
metadata: { name: ingress-e2e }
spec:
  mesh: { provider: SelfHosted, name: osm }
  namespaces: [ { name: ingress-e2e-web } ]
  apps:
    - name: web
      namespace: ingress-e2e-web
      image: example.invalid/web:1
      port: 8080
      service:
        ports: [ { name: http, port: 80, targetPort: 8080 } ]
  ingress:
    nginx: { namespace: ingress-e2e-nginx, nodeSelector: { agentpool: agentpool }, serviceType: NodePort }
    rules:
      - name: web
        host: web.example.com
        path: /web
        rewriteTarget: /
        backend: { service: web, namespace: ingress-e2e-web, port: 80 }
        tls: { secretName: web-tls, generate: true }
"#;

async fn ready(client: &Client) {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    wait::until("ingress-e2e to be Ready", TIMEOUT, || async {
        let mi = api.get("ingress-e2e").await.map_err(|e| e.to_string())?;
        let conditions = mi.status.map(|s| s.conditions).unwrap_or_default();
        match conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) if c.status == ConditionStatus::True => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn edge_cert(secrets: &Api<Secret>) -> Result<certs::EdgeCert, String> {
    let secret = secrets.get("web-tls").await.map_err(|e| e.to_string())?;
    certs::EdgeCert::from_secret_data(&secret.data.unwrap_or_default()).map_err(|e| e.to_string())
}

async fn ingress_nginx_with_ingress_backend_and_a_renewed_edge_certificate() {
    let Some(cluster) = TestCluster::get() else { return };
    let client = cluster.client().await;
    let operator = OperatorHandle::start(client.clone(), test_settings(Duration::from_secs(2))).await;
    let mut mi = MeshInstallation::from_yaml(SPEC).expect("spec");
    mesh_e2e::scenario::for_target(&mut mi);
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.patch("ingress-e2e", &PatchParams::apply("e2e").force(), &Patch::Apply(&mi)).await.expect("apply");
    ready(&client).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "ingress-e2e-nginx");
    let controller = deployments.get("ingress-nginx-controller").await.expect("controller Deployment");
    let available = controller.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(available.iter().any(|c| c.type_ == "Available" && c.status == "True"), "controller not Available");
    let pod_spec = controller.spec.expect("spec").template.spec.expect("pod spec");
    let selector = pod_spec.node_selector.unwrap_or_default();
    for (key, value) in &mi.spec.ingress.as_ref().expect("ingress").nginx.node_selector {
        assert_eq!(selector.get(key), Some(value), "the controller runs where the spec says: {selector:?}");
    }

    let classes: Api<IngressClass> = Api::all(client.clone());
    assert_eq!(
        classes.get("nginx").await.expect("IngressClass nginx").spec.and_then(|s| s.controller).as_deref(),
        Some("k8s.io/ingress-nginx")
    );
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "ingress-e2e-web");
    let ingress = ingresses.get("web").await.expect("Ingress web");
    assert_eq!(ingress.annotations().get("nginx.ingress.kubernetes.io/rewrite-target").map(String::as_str), Some("/"));
    let ingress_spec = ingress.spec.expect("spec");
    assert_eq!(ingress_spec.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &ingress_spec.rules.expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some("web.example.com"));
    let path = &rule.http.as_ref().expect("http").paths[0];
    assert_eq!(path.path.as_deref(), Some("/web"));
    assert_eq!(ingress_spec.tls.expect("tls")[0].secret_name.as_deref(), Some("web-tls"));

    let backends: Api<osm::IngressBackend> = Api::namespaced(client.clone(), "ingress-e2e-web");
    let list = backends.list(&ListParams::default()).await.expect("IngressBackends");
    let backend = &list.items.first().expect("an IngressBackend").spec;
    assert_eq!(backend.backends[0].name, "web");
    assert_eq!(
        backend.backends[0].port.number, 8080,
        "the IngressBackend carries the Service's targetPort, not its port (80)"
    );
    assert_eq!(backend.sources[0].kind, "Service");
    assert_eq!(backend.sources[0].namespace.as_deref(), Some("ingress-e2e-nginx"));

    // The generated certificate covers the host and is valid for the documented time.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ingress-e2e-web");
    let cert = edge_cert(&secrets).await.expect("generated certificate");
    assert!(cert.covers("web.example.com"));
    let validity = cert.not_after.duration_since(SystemTime::now()).expect("not expired");
    assert!(validity > certs::EDGE_VALIDITY - Duration::from_secs(600) && validity <= certs::EDGE_VALIDITY);
    let status = api.get("ingress-e2e").await.expect("mi").status.expect("status");
    assert_eq!(status.certificates.first().map(|c| c.secret.as_str()), Some("ingress-e2e-web/web-tls"));

    // Someone replaces it with an expired certificate: the operator renews it.
    let now = SystemTime::now();
    let expired =
        certs::edge_certificate_at("web.example.com", now - Duration::from_secs(7200), Duration::from_secs(3600))
            .expect("expired certificate");
    let data = serde_json::json!({"data": {
        "tls.crt": ByteString(expired.cert_pem.clone().into_bytes()),
        "tls.key": ByteString(expired.key_pem.clone().into_bytes()),
    }});
    secrets.patch("web-tls", &PatchParams::default(), &Patch::Merge(&data)).await.expect("replace with expired");
    wait::until("the expired certificate to be renewed", TIMEOUT, || async {
        let cert = edge_cert(&secrets).await?;
        if cert.needs_renewal() { Err(format!("still expires {}", cert.not_after_rfc3339())) } else { Ok(()) }
    })
    .await;

    api.delete("ingress-e2e", &DeleteParams::default()).await.expect("delete");
    wait::until("ingress-e2e to be gone", TIMEOUT, || async {
        match api.get_opt("ingress-e2e").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".into()),
        }
    })
    .await;
    assert!(ingresses.get_opt("web").await.expect("get").is_none(), "the Ingress is left");
    assert!(classes.get_opt("nginx").await.expect("get").is_none(), "the IngressClass is left");
    assert!(deployments.get_opt("ingress-nginx-controller").await.expect("get").is_none(), "the controller is left");
    assert!(secrets.get_opt("web-tls").await.expect("get").is_none(), "the generated Secret is left");
    operator.stop().await;
}

mesh_e2e::e2e_main! {
    ingress_nginx_with_ingress_backend_and_a_renewed_edge_certificate: [SimulatedPods, InProcessOperator],
}
