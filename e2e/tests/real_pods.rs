//! Pods whose images are in the local image store run for real under runc on the local control
//! plane (`e2e/cluster/README.md`, "Real pods"): the process, its environment and token, its
//! security context, its probes, logs, restarts and deletion are real. Pods with other images
//! stay simulated next to them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::{Api, Client, ResourceExt};
use mesh_e2e::local_images::{ensure_busybox_image, ensure_static_image};
use mesh_e2e::{TempNamespace, TestCluster, wait};
use serde_json::json;

const IMAGE: &str = "mesh-e2e/busybox:1";
const TIMEOUT: Duration = Duration::from_secs(60);
const RUNTIME_ANNOTATION: &str = "localcluster.meshoperator.dev/runtime";
const PORTS_ANNOTATION: &str = "localcluster.meshoperator.dev/ports";

/// The local control plane (calling admission webhooks) with the test image in its store.
fn real_cluster() -> Option<&'static TestCluster> {
    let cluster = TestCluster::get_with_admission_webhooks()?;
    ensure_busybox_image(IMAGE).unwrap_or_else(|e| panic!("test image: {e}"));
    Some(cluster)
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

fn describe(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    format!(
        "phase={:?} ready={:?} containers={}",
        status.and_then(|s| s.phase.clone()),
        condition(pod, "Ready"),
        serde_json::to_string(&status.and_then(|s| s.container_statuses.clone())).unwrap_or_default()
    )
}

async fn logs(pods: &Api<Pod>, name: &str, previous: bool) -> String {
    pods.logs(name, &LogParams { previous, ..Default::default() }).await.unwrap_or_else(|e| format!("<no logs: {e}>"))
}

/// An HTTP GET through the pod's loopback port forwarder (annotation `…/ports`).
fn get_through_forwarder(pod: &Pod, port: u16, path: &str) -> Result<String, String> {
    let ports = pod.annotations().get(PORTS_ANNOTATION).ok_or("no ports annotation yet")?;
    let addr = ports
        .split(',')
        .find_map(|entry| entry.strip_prefix(&format!("{port}=")))
        .ok_or_else(|| format!("port {port} not in {ports}"))?;
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    Ok(response)
}

async fn create_pod(client: &Client, namespace: &str, pod: serde_json::Value) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(pod).expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    pods
}

/// The main scenario: a web server in a read-only root as the pod's UID, whose readiness the process
/// itself switches on and off, whose token authenticates as its ServiceAccount bound to the pod,
/// whose logs and port are reachable, and whose deletion stops the process (SIGTERM first).
async fn a_local_image_runs_for_real_with_its_pod_spec() {
    let Some(cluster) = real_cluster() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "real-pods").await;
    let heartbeat = std::env::temp_dir().join(format!("mesh-e2e-heartbeat-{}", mesh_e2e::namespace::random_suffix(6)));
    std::fs::create_dir_all(&heartbeat).expect("heartbeat dir");
    // World-writable: the process runs as UID 4242.
    std::process::Command::new("chmod").arg("0777").arg(&heartbeat).status().expect("chmod");
    let script = r#"
trap 'echo terminated > /heartbeat/exit; exit 0' TERM
echo "pod=$(POD_NAME) ns=$POD_NAMESPACE sa=$SA node=$NODE ip=$POD_IP"
echo "uid=$(id -u) gid=$(id -g)"
echo "password=$PASSWORD"
if touch /written-to-root 2>/dev/null; then echo root-writable; else echo root-read-only; fi
awk '$2 == "/" { split($4, o, ","); print "root-mount=" o[1] }' /proc/mounts
echo "token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
echo "ca-bytes=$(wc -c < /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)"
printf 'GET / HTTP/1.0\r\n\r\n' | nc 127.0.0.1 "$KUBERNETES_SERVICE_PORT" | head -1 | sed 's/^/api-server-says=/'
mkdir -p /tmp/www && echo hello-from-the-pod > /tmp/www/index.html
httpd -f -p 8080 -h /tmp/www &
(sleep 4; touch /tmp/ready; echo now-ready; sleep 6; rm /tmp/ready; echo now-unready) &
while true; do date +%s%N > /heartbeat/beat; sleep 0.2; done
"#;
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}))
            .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns.name).create(&PostParams::default(), &secret).await.expect("secret");
    let started = Instant::now();
    let pods = create_pod(
        &client,
        &ns.name,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeSelector": {"agentpool": "agentpool"},
                "terminationGracePeriodSeconds": 20,
                "containers": [{
                    "name": "web",
                    "image": IMAGE,
                    "command": ["/bin/busybox", "sh", "-c", script],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
                    ],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"exec": {"command": ["/bin/busybox", "test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
                    "livenessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 2},
                    "securityContext": {
                        "runAsUser": 4242, "runAsGroup": 4343, "runAsNonRoot": true,
                        "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]}
                    },
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "heartbeat", "mountPath": "/heartbeat"}
                    ]
                }],
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "heartbeat", "hostPath": {"path": heartbeat.to_string_lossy()}}
                ]
            }
        }),
    )
    .await;

    // Running but not Ready until the process creates /tmp/ready (the exec probe is real).
    let pod = wait::until("the pod to run, not ready yet", TIMEOUT, || async {
        let pod = pods.get("web").await.map_err(|e| e.to_string())?;
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if running && condition(&pod, "Ready").as_deref() == Some("False") { Ok(pod) } else { Err(describe(&pod)) }
    })
    .await;
    assert_eq!(pod.annotations().get(RUNTIME_ANNOTATION).map(String::as_str), Some("runc"), "classified as real");
    wait::until("the pod to become Ready when the process says so", TIMEOUT, || async {
        let pod = pods.get("web").await.map_err(|e| e.to_string())?;
        if condition(&pod, "Ready").as_deref() == Some("True") { Ok(()) } else { Err(describe(&pod)) }
    })
    .await;
    eprintln!("real pod Ready {:.1}s after create (4s of it the process's own delay)", started.elapsed().as_secs_f64());
    let pod = pods.get("web").await.expect("pod");
    let log = logs(&pods, "web", false).await;
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("podIP");
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("nodeName");
    assert!(
        log.contains(&format!("pod=web ns={} sa=default node={node} ip={pod_ip}", ns.name)),
        "downward API env in the process: {log}"
    );
    assert!(log.contains("password=s3cret\n"), "secretKeyRef env: {log}");
    // Not the image's user (65532): the pod's.
    assert!(log.contains("uid=4242 gid=4343"), "runs as the pod's user: {log}");
    assert!(log.contains("root-read-only") && log.contains("root-mount=ro\n"), "read-only root filesystem: {log}");
    assert!(
        log.contains("api-server-says=HTTP/1.0 400 Bad Request"),
        "KUBERNETES_SERVICE_PORT reaches the API server: {log}"
    );
    assert!(!log.contains("ca-bytes=0"), "ca.crt mounted: {log}");

    // The projected token authenticates as the pod's ServiceAccount, bound to this pod.
    let token = log.lines().find_map(|l| l.strip_prefix("token=")).expect("token in the log").to_string();
    let review: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).expect("review");
    let reviewed =
        Api::<TokenReview>::all(client.clone()).create(&PostParams::default(), &review).await.expect("review");
    let status = reviewed.status.expect("review status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.expect("user");
    assert_eq!(user.username.as_deref(), Some(format!("system:serviceaccount:{}:default", ns.name).as_str()));
    let bound_pod = user.extra.unwrap_or_default().get("authentication.kubernetes.io/pod-name").cloned();
    assert_eq!(bound_pod, Some(vec!["web".to_string()]), "token bound to the pod");

    // runc shows the container under the cluster's state dir while it runs.
    let runc_list = || {
        let root = cluster.runc_root().expect("local control plane has a data dir");
        let out = std::process::Command::new("runc")
            .arg("--root")
            .arg(root)
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let container_id = format!("{}.web.web", ns.name);
    assert!(runc_list().lines().any(|l| l == container_id), "runc list shows {container_id}: {}", runc_list());

    // The port is reachable from the host through the forwarder the pod's annotation names.
    let response = get_through_forwarder(&pod, 8080, "/index.html").expect("GET through the forwarder");
    assert!(response.contains("hello-from-the-pod"), "{response}");

    // The process withdraws readiness: the pod follows.
    wait::until("the pod to become unready when the process says so", TIMEOUT, || async {
        let pod = pods.get("web").await.map_err(|e| e.to_string())?;
        if condition(&pod, "Ready").as_deref() == Some("False") { Ok(()) } else { Err(describe(&pod)) }
    })
    .await;

    // Deleting the pod stops the process (SIGTERM, which its trap records), then the pod is gone.
    let beat = heartbeat.join("beat");
    assert!(beat.exists(), "the process writes its heartbeat through the hostPath volume");
    pods.delete("web", &DeleteParams::default()).await.expect("delete");
    wait::until("the pod to be removed", TIMEOUT, || async {
        match pods.get_opt("web").await {
            Ok(None) => Ok(()),
            Ok(Some(pod)) => Err(describe(&pod)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(heartbeat.join("exit")).unwrap_or_default().trim(),
        "terminated",
        "SIGTERM reached the process"
    );
    let last = std::fs::read_to_string(&beat).expect("beat");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(std::fs::read_to_string(&beat).expect("beat"), last, "the process no longer runs");
    assert!(!runc_list().lines().any(|l| l == container_id), "container gone from runc: {}", runc_list());
    let _ = std::fs::remove_dir_all(&heartbeat);
}

/// A crashing container is restarted with back-off; its previous run's log stays readable.
async fn a_crashing_container_is_restarted_and_its_previous_log_kept() {
    let Some(cluster) = real_cluster() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "real-crash").await;
    let pods = create_pod(
        &client,
        &ns.name,
        json!({
            "metadata": {"name": "crash"},
            "spec": {"containers": [{
                "name": "crash", "image": IMAGE,
                "args": ["sh", "-c", "echo run-started; sleep 1; exit 3"]
            }]}
        }),
    )
    .await;
    let status = wait::until("a restart after exit code 3", TIMEOUT, || async {
        let pod = pods.get("crash").await.map_err(|e| e.to_string())?;
        let cs = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).cloned();
        match cs {
            Some(cs) if cs.restart_count >= 1 => Ok(cs),
            _ => Err(describe(&pod)),
        }
    })
    .await;
    let last = status.last_state.and_then(|s| s.terminated).expect("last state terminated");
    assert_eq!(last.exit_code, 3, "the real exit code");
    assert!(logs(&pods, "crash", true).await.contains("run-started"), "previous run's log");
}

/// Two replicas bind the same port (each pod has its own network namespace) and become
/// Available; a pod whose image is not local stays simulated next to them.
async fn replicas_share_a_port_and_other_images_stay_simulated() {
    let Some(cluster) = real_cluster() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "real-replicas").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "twice"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "twice"}},
            "template": {
                "metadata": {"labels": {"app": "twice"}},
                "spec": {"containers": [{
                    "name": "web", "image": IMAGE,
                    "args": ["httpd", "-f", "-p", "8080", "-h", "/"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                }]}
            }
        }
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments.create(&PostParams::default(), &deployment).await.expect("create deployment");
    let simulated =
        create_pod(&client, &ns.name, json!({"metadata": {"name": "simulated"}, "spec": {"containers": [{"name": "c", "image": "example.invalid/not-local:1"}]}}))
            .await;
    wait::until("both replicas available", TIMEOUT, || async {
        let d = deployments.get("twice").await.map_err(|e| e.to_string())?;
        let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        if available == 2 { Ok(()) } else { Err(format!("{:?}", d.status)) }
    })
    .await;
    // Inside a real pod, the Service's name resolves (to a loopback address of the pod's own) and
    // reaches a replica; any other name does not resolve.
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "twice"},
        "spec": {"selector": {"app": "twice"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &service)
        .await
        .expect("service");
    let script = format!(
        "nslookup example.com 127.0.0.1 || true; \
         until wget -q -O- http://twice.{ns}.svc.cluster.local/etc/hostname; do sleep 0.5; done; sleep 3600",
        ns = ns.name
    );
    let clients = create_pod(
        &client,
        &ns.name,
        json!({"metadata": {"name": "client"}, "spec": {"containers": [{"name": "c", "image": IMAGE, "args": ["sh", "-c", script]}]}}),
    )
    .await;
    let log = wait::until("the client to reach a replica by its Service name", TIMEOUT, || async {
        let log = logs(&clients, "client", false).await;
        if log.contains("twice-") { Ok(log) } else { Err(log) }
    })
    .await;
    assert!(log.contains("can't find example.com: NXDOMAIN"), "only Services resolve: {log}");

    let pod = wait::until("the simulated pod Ready", TIMEOUT, || async {
        let pod = simulated.get("simulated").await.map_err(|e| e.to_string())?;
        if condition(&pod, "Ready").as_deref() == Some("True") { Ok(pod) } else { Err(describe(&pod)) }
    })
    .await;
    assert_eq!(pod.annotations().get(RUNTIME_ANNOTATION).map(String::as_str), Some("kwok"));
    let error = simulated.logs("simulated", &LogParams::default()).await.expect_err("a simulated pod has no logs");
    assert!(error.to_string().contains("simulated"), "says why: {error}");
}

/// The API server calls an admission webhook through its Service, and a real process in a real
/// pod answers: the local control plane resolves the Service to the pod, inside its network
/// namespace (`e2e/cluster/README.md`, "Component traffic").
async fn an_admission_webhook_served_by_a_real_pod_is_called_through_its_service() {
    let Some(cluster) = real_cluster() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "real-webhook").await;
    let binary = mesh_e2e::cluster::bin_dir().join("testwebhook");
    let bytes = std::fs::read(&binary).unwrap_or_else(|e| panic!("{} (built by make cluster): {e}", binary.display()));
    // Tagged by content, so rebuilding the same binary reuses the image.
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&bytes, &mut hasher);
    let tag = format!("mesh-e2e/webhook:{:016x}", std::hash::Hasher::finish(&hasher));
    ensure_static_image(&tag, &binary).unwrap_or_else(|e| panic!("webhook image: {e}"));
    let pods = create_pod(
        &client,
        &ns.name,
        json!({
            "metadata": {"name": "webhook", "labels": {"app": "webhook"}},
            "spec": {"containers": [{
                "name": "webhook", "image": tag,
                "env": [
                    {"name": "SERVICE_NAME", "value": "webhook"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
                ],
                "ports": [{"name": "https", "containerPort": 8443}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 1},
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]}
        }),
    )
    .await;
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "webhook"},
        "spec": {"selector": {"app": "webhook"}, "ports": [{"port": 443, "targetPort": "https"}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &service)
        .await
        .expect("service");
    wait::until("the webhook pod Ready", TIMEOUT, || async {
        let pod = pods.get("webhook").await.map_err(|e| e.to_string())?;
        if condition(&pod, "Ready").as_deref() == Some("True") { Ok(()) } else { Err(describe(&pod)) }
    })
    .await;
    let log = logs(&pods, "webhook", false).await;
    let ca = log
        .split_once("BEGIN-CA\n")
        .and_then(|(_, rest)| rest.split_once("END-CA"))
        .map(|(pem, _)| pem.to_string())
        .unwrap_or_else(|| panic!("no CA in the webhook's log: {log}"));

    let name = format!("mesh-e2e-{}", ns.name);
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "deny.mesh-e2e.meshoperator.dev",
            "clientConfig": {"service": {"namespace": ns.name, "name": "webhook", "port": 443, "path": "/validate"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .expect("webhook configuration");
    let mut config = config;
    if let Some(webhooks) = config.webhooks.as_mut() {
        webhooks[0].client_config.ca_bundle = Some(ByteString(ca.into_bytes()));
    }
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    configs.create(&PostParams::default(), &config).await.expect("create webhook configuration");

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let denied: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "denied", "labels": {"deny": "yes"}}})).expect("cm");
    let message = wait::until("the webhook to deny a labelled ConfigMap", TIMEOUT, || async {
        match config_maps.create(&PostParams::default(), &denied).await {
            Err(e) => Ok(e.to_string()),
            Ok(_) => {
                // The API server had not loaded the configuration yet.
                let _ = config_maps.delete("denied", &DeleteParams::default()).await;
                Err("created: webhook not active yet".into())
            }
        }
    })
    .await;
    let allowed: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "allowed"}})).expect("cm");
    let allowed_result = config_maps.create(&PostParams::default(), &allowed).await;
    let _ = configs.delete(&name, &DeleteParams::default()).await;
    assert!(message.contains("denied by the real webhook in pod webhook"), "{message}");
    allowed_result.expect("an unlabelled ConfigMap is allowed");
    assert!(
        logs(&pods, "webhook", false).await.contains("reviewed allowed allowed=true"),
        "the webhook saw the allowed one"
    );
}

/// A pod deleted while its container is still starting is stopped and removed all the same.
async fn a_pod_deleted_while_starting_goes_away() {
    let Some(cluster) = real_cluster() else { return };
    let client = cluster.client().await;
    let ns = TempNamespace::create(cluster, "real-quick-delete").await;
    for round in 0..5 {
        let name = format!("quick-{round}");
        let pods = create_pod(
            &client,
            &ns.name,
            json!({
                "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "c", "image": IMAGE, "args": ["sleep", "3600"]}]}
            }),
        )
        .await;
        // Wait for the runner to pick the pod up, then delete it at once.
        wait::until("the pod classified as real", TIMEOUT, || async {
            let pod = pods.get(&name).await.map_err(|e| e.to_string())?;
            if pod.annotations().get(RUNTIME_ANNOTATION).map(String::as_str) == Some("runc") {
                Ok(())
            } else {
                Err(describe(&pod))
            }
        })
        .await;
        pods.delete(&name, &DeleteParams::default()).await.expect("delete");
        wait::until("the pod deleted while starting to be removed", TIMEOUT, || async {
            match pods.get_opt(&name).await {
                Ok(None) => Ok(()),
                Ok(Some(pod)) => Err(describe(&pod)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    }
}

mesh_e2e::e2e_main! {
    a_local_image_runs_for_real_with_its_pod_spec: [RealPods],
    a_crashing_container_is_restarted_and_its_previous_log_kept: [RealPods],
    replicas_share_a_port_and_other_images_stay_simulated: [RealPods, SimulatedPods],
    an_admission_webhook_served_by_a_real_pod_is_called_through_its_service: [RealPods, OwnedCluster],
    a_pod_deleted_while_starting_goes_away: [RealPods],
}
