//! An Azure Resource Manager emulator on loopback, for the AKS add-on and ACR import tests.
//!
//! It implements what mesh-operator calls, as the published REST specs describe it:
//! - `managedClusters` GET/PUT (api-version 2024-09-01) with ETags (`If-Match` → 412 when stale),
//!   `provisioningState` Succeeded → Updating → Succeeded (or Failed, reverted), an
//!   `Azure-AsyncOperation` status endpoint, and 409 `OperationNotAllowed` while an operation runs;
//! - `meshRevisionProfiles` of a location;
//! - `importImage` (api-version 2023-07-01) answering `202` + `Location`, polled until no longer 202;
//!   `NoForce` onto an existing tag is refused;
//! - `roleAssignments` on a registry (api-version 2022-04-01) PUT/GET/DELETE: a GUID name, 409
//!   `RoleAssignmentExists` for the same principal, role and scope under another name (naming the
//!   existing one, as ARM does), 403 when the caller may not write them;
//! - the kubelet identity in a managed cluster's `properties.identityProfile.kubeletidentity`;
//! - ARM error bodies `{"error": {"code", "message"}}`, 401 without a token it issued;
//! - a Microsoft Entra token endpoint (`/{tenant}/oauth2/v2.0/token`, client credentials) for the
//!   client-secret credential.
//!
//! Faults can be injected per method and path: statuses (429 with `Retry-After`, 500), dropped
//! connections (closed before the request is acted on), failed or slow operations, and an
//! external change of a cluster right after a GET (to exercise ETag conflicts). Every request is
//! counted by method and path.
//!
//! With a Kubernetes client it also does what AKS does on the cluster: enabling the OSM add-on
//! creates, in `kube-system`, the `osm-controller` Deployment, MeshConfig `osm-mesh-config`, the 10
//! OSM/SMI CRDs and the `aks-osm-*` webhook configurations (failurePolicy Ignore unless a test asks
//! for Fail: no webhook server runs here); disabling it removes the Deployment and leaves the rest,
//! as AKS does. Enabling Istio creates `aks-istio-system` and an `istiod-<revision>` Deployment.

mod aks;
mod roles;
mod server;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A tenant the token endpoint accepts.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// A client ID the token endpoint accepts.
pub const CLIENT_ID: &str = "3f0c2b8e-1d4e-4a7b-9c3f-000000000001";
/// Its secret.
pub const CLIENT_SECRET: &str = "emulator-secret-value-do-not-log";

/// Object ID of the kubelet identity of every emulated cluster.
pub const KUBELET_OBJECT_ID: &str = "5a8e1c3f-7b2d-4e6a-9f01-23456789abcd";

/// One request as the emulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Status answered (0 for a dropped connection).
    pub status: u16,
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Answer this status with an ARM error body (and `Retry-After` seconds when given), without acting.
    Status {
        /// HTTP status.
        status: u16,
        /// ARM error code.
        code: String,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// Close the connection without an answer, before acting on the request.
    Drop,
    /// Answer exactly this (any status, headers and body bytes), without acting.
    Raw {
        /// HTTP status (100–999).
        status: u16,
        /// Headers as sent.
        headers: Vec<(String, String)>,
        /// Body bytes.
        body: Vec<u8>,
    },
    /// The next operation the matching request starts ends Failed with this code.
    FailOperation {
        /// ARM error code.
        code: String,
    },
    /// The next operation the matching request starts takes this long.
    SlowOperation(Duration),
    /// Right after a matching GET is answered, someone else changes the cluster (JSON merge patch).
    ExternalChange(Value),
}

#[derive(Clone, Debug)]
struct Fault {
    method: String,
    path_contains: String,
    kind: FaultKind,
    remaining: u32,
}

#[derive(Clone, Debug)]
struct Cluster {
    subscription: String,
    location: String,
    value: Value,
    etag: u64,
    busy: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Registry {
    tags: BTreeSet<String>,
    forbidden: bool,
    location: String,
}

#[derive(Clone, Debug)]
enum OpKind {
    Cluster { cluster_id: String, before: Value },
    Import { registry_id: String, tags: Vec<String> },
}

#[derive(Clone, Debug)]
struct Operation {
    kind: OpKind,
    done_at: Instant,
    fail: Option<String>,
    /// None while running; the final status once the side effects ran.
    finished: Option<String>,
}

/// The emulator's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    clusters: HashMap<String, Cluster>,
    registries: HashMap<String, Registry>,
    operations: HashMap<String, Operation>,
    tokens: BTreeSet<String>,
    principals: HashMap<String, String>,
    /// Role assignments by lowercased ARM ID: (principalId, roleDefinitionId).
    role_assignments: BTreeMap<String, (String, String)>,
    forbid_role_assignments: bool,
    faults: Vec<Fault>,
    seen: Vec<Seen>,
    revisions: Value,
    operation_duration: Duration,
    webhook_failure_policy: String,
    next_id: u64,
}

/// A running emulator. Dropping it stops the server.
pub struct ArmEmulator {
    endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    effects: tokio::task::JoinHandle<()>,
    kube: Option<kube::Client>,
}

impl Drop for ArmEmulator {
    fn drop(&mut self) {
        self.task.abort();
        self.effects.abort();
    }
}

fn lower(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// ARM ID of a managed cluster.
pub fn cluster_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

/// ARM ID of a registry.
pub fn registry_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerRegistry/registries/{name}"
    )
}

/// The meshRevisionProfiles answer (shape of the 2024-09-01 example `ManagedClustersList_MeshRevisionProfiles.json`).
pub fn default_revisions() -> Value {
    let rev = |revision: &str, upgrades: &[&str], versions: &[&str]| json!({"revision": revision, "upgrades": upgrades, "compatibleWith": [{"name": "kubernetes", "versions": versions}]});
    json!({"value": [{
        "id": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.ContainerService/locations/eastus/meshRevisionProfiles/default",
        "name": "default",
        "type": "Microsoft.ContainerService/locations/meshRevisionProfiles",
        "properties": {"meshRevisions": [
            rev("asm-1-23", &["asm-1-24"], &["1.28", "1.29", "1.30"]),
            rev("asm-1-24", &["asm-1-25"], &["1.29", "1.30", "1.31"]),
            rev("asm-1-25", &["asm-1-26"], &["1.30", "1.31", "1.32"]),
            rev("asm-1-26", &[], &["1.31", "1.32", "1.33"]),
        ]}
    }]})
}

impl ArmEmulator {
    /// Starts an emulator on `127.0.0.1:<random port>`. With `kube`, AKS side effects are applied
    /// to that cluster.
    pub async fn start(kube: Option<kube::Client>) -> ArmEmulator {
        let tls = tls::tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the ARM emulator on loopback");
        let port = listener.local_addr().expect("local address").port();
        let endpoint = format!("https://127.0.0.1:{port}");
        let mut state = State {
            revisions: default_revisions(),
            operation_duration: Duration::from_millis(600),
            webhook_failure_policy: "Ignore".into(),
            ..Default::default()
        };
        state.principals.insert(CLIENT_ID.to_string(), CLIENT_SECRET.to_string());
        let state = Arc::new(Mutex::new(state));
        let task = tokio::spawn(server::serve(listener, tls.server_config.clone(), state.clone(), endpoint.clone()));
        let effects = tokio::spawn(aks::finish_operations(state.clone(), kube.clone()));
        ArmEmulator { endpoint, state, task, effects, kube }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// `https://127.0.0.1:<port>`, for `spec.azure.armEndpoint` and `spec.azure.authorityHost`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CA to trust (already trusted in this process).
    pub fn ca_pem(&self) -> &'static str {
        &tls::tls().ca_pem
    }

    /// Adds a managed cluster (provisioningState Succeeded) running Kubernetes `version`.
    pub fn add_cluster(&self, subscription: &str, resource_group: &str, name: &str, location: &str, version: &str) {
        let id = cluster_id(subscription, resource_group, name);
        let value = json!({
            "id": id,
            "location": location,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": {"environment": "test"},
            "sku": {"name": "Base", "tier": "Free"},
            "identity": {"type": "SystemAssigned", "principalId": "00000000-0000-0000-0000-0000000000aa", "tenantId": TENANT_ID},
            "properties": {
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
                "kubernetesVersion": version,
                "currentKubernetesVersion": version,
                "dnsPrefix": format!("{name}-dns"),
                "fqdn": format!("{name}-dns-12345678.hcp.{location}.azmk8s.io"),
                "agentPoolProfiles": [{"name": "agentpool", "count": 3, "vmSize": "Standard_DS2_v2", "mode": "System", "osType": "Linux"}],
                "addonProfiles": {"azureKeyvaultSecretsProvider": {"enabled": false, "config": null}},
                "servicePrincipalProfile": {"clientId": "msi"},
                "identityProfile": {"kubeletidentity": {
                    "resourceId": format!("/subscriptions/{subscription}/resourceGroups/MC_{resource_group}_{name}_{location}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"),
                    "clientId": "0c9d6e2a-1b3f-4c5d-8e7f-000000000002",
                    "objectId": KUBELET_OBJECT_ID,
                }},
                "networkProfile": {"networkPlugin": "azure", "loadBalancerSku": "standard"},
            }
        });
        self.with(|s| {
            s.clusters.insert(
                lower(&id),
                Cluster {
                    subscription: subscription.to_string(),
                    location: location.to_string(),
                    value,
                    etag: 1,
                    busy: None,
                },
            )
        });
    }

    /// Adds a registry.
    pub fn add_registry(&self, subscription: &str, resource_group: &str, name: &str, location: &str) {
        let id = registry_id(subscription, resource_group, name);
        self.with(|s| {
            s.registries.insert(lower(&id), Registry { location: location.to_string(), ..Default::default() })
        });
    }

    /// Makes imports into a registry answer 403 AuthorizationFailed (the identity lacks the role).
    pub fn forbid_imports(&self, subscription: &str, resource_group: &str, name: &str) {
        let id = lower(&registry_id(subscription, resource_group, name));
        self.with(|s| {
            if let Some(r) = s.registries.get_mut(&id) {
                r.forbidden = true;
            }
        });
    }

    /// Tags present in a registry (`repo:tag`).
    pub fn registry_tags(&self, subscription: &str, resource_group: &str, name: &str) -> BTreeSet<String> {
        let id = lower(&registry_id(subscription, resource_group, name));
        self.with(|s| s.registries.get(&id).map(|r| r.tags.clone()).unwrap_or_default())
    }

    /// Puts a tag into a registry as someone else would (`docker push`), without counting a request.
    pub fn push_tag(&self, subscription: &str, resource_group: &str, name: &str, tag: &str) {
        let id = lower(&registry_id(subscription, resource_group, name));
        self.with(|s| {
            if let Some(r) = s.registries.get_mut(&id) {
                r.tags.insert(tag.to_string());
            }
        });
    }

    /// Adds a role assignment as someone else would (e.g. `az aks update --attach-acr`), without
    /// counting a request.
    pub fn add_role_assignment(&self, scope: &str, name: &str, principal_id: &str, role_guid: &str) {
        let id = lower(&format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"));
        let subscription = scope.split('/').nth(2).unwrap_or_default().to_string();
        let role =
            format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}");
        self.with(|s| s.role_assignments.insert(id, (principal_id.to_string(), role)));
    }

    /// Role assignments: lowercased ARM ID → (principalId, roleDefinitionId).
    pub fn role_assignments(&self) -> BTreeMap<String, (String, String)> {
        self.with(|s| s.role_assignments.clone())
    }

    /// Makes role-assignment writes answer 403 AuthorizationFailed (the identity may not assign roles).
    pub fn forbid_role_assignments(&self, forbidden: bool) {
        self.with(|s| s.forbid_role_assignments = forbidden);
    }

    /// The stored managed cluster.
    pub fn cluster(&self, subscription: &str, resource_group: &str, name: &str) -> Option<Value> {
        let id = lower(&cluster_id(subscription, resource_group, name));
        self.with(|s| s.clusters.get(&id).map(|c| c.value.clone()))
    }

    /// Changes a cluster as someone else would (JSON merge patch; new ETag).
    pub fn patch_cluster(&self, subscription: &str, resource_group: &str, name: &str, patch: &Value) {
        let id = lower(&cluster_id(subscription, resource_group, name));
        self.with(|s| {
            if let Some(c) = s.clusters.get_mut(&id) {
                merge(&mut c.value, patch);
                c.etag += 1;
            }
        });
    }

    /// Puts a cluster in the state `az aks enable-addons --addons open-service-mesh` leaves it in,
    /// at once and without counting a request (a pre-existing OSM add-on), with its objects.
    pub async fn enable_osm_addon_now(&self, subscription: &str, resource_group: &str, name: &str) {
        let before = self.cluster(subscription, resource_group, name).unwrap_or_default();
        self.patch_cluster(
            subscription,
            resource_group,
            name,
            &json!({"properties": {"addonProfiles": {"openServiceMesh": {"enabled": true, "config": {}}}}}),
        );
        let after = self.cluster(subscription, resource_group, name).unwrap_or_default();
        let policy = self.with(|s| s.webhook_failure_policy.clone());
        if let Some(client) = &self.kube {
            aks::side_effects(client, &before, &after, &policy).await.expect("OSM add-on objects");
        }
    }

    /// How long operations take unless a fault says otherwise.
    pub fn set_operation_duration(&self, duration: Duration) {
        self.with(|s| s.operation_duration = duration);
    }

    /// failurePolicy of the `aks-osm-*` webhooks the OSM add-on creates (Ignore by default).
    pub fn set_webhook_failure_policy(&self, policy: &str) {
        self.with(|s| s.webhook_failure_policy = policy.to_string());
    }

    /// Injects a fault for the next `times` requests whose method is `method` (or `*`) and whose
    /// path contains `path_contains` (case-insensitive).
    pub fn inject(&self, method: &str, path_contains: &str, kind: FaultKind, times: u32) {
        self.with(|s| {
            s.faults.push(Fault {
                method: method.to_string(),
                path_contains: path_contains.to_ascii_lowercase(),
                kind,
                remaining: times,
            })
        });
    }

    /// Forgets every injected fault.
    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Faults not yet used up.
    pub fn pending_faults(&self) -> usize {
        self.with(|s| s.faults.iter().filter(|f| f.remaining > 0).count())
    }

    /// Every request seen.
    pub fn requests(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// Forgets the requests seen so far.
    pub fn reset_counts(&self) {
        self.with(|s| s.seen.clear());
    }

    /// Requests by `METHOD kind`, with kinds `token`, `managedCluster`, `meshRevisionProfiles`,
    /// `clusterOperation`, `importImage`, `importOperation`, `roleAssignment`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.requests() {
            *counts.entry(format!("{} {}", seen.method, path_kind(&seen.path))).or_insert(0) += 1;
        }
        counts
    }

    /// Requests with this method whose path is of `kind` (see [`ArmEmulator::counts`]); `accepted`
    /// counts only those answered 2xx.
    pub fn count(&self, method: &str, kind: &str, accepted: bool) -> usize {
        self.requests()
            .iter()
            .filter(|s| {
                s.method == method && path_kind(&s.path) == kind && (!accepted || (200..300).contains(&s.status))
            })
            .count()
    }

    /// ARM writes (PUT, POST, PATCH, DELETE; not the token endpoint), whatever their answer.
    pub fn writes(&self) -> usize {
        self.requests().iter().filter(|s| is_write(s)).count()
    }

    /// ARM writes answered 2xx (acted on).
    pub fn accepted_writes(&self) -> usize {
        self.requests().iter().filter(|s| is_write(s) && (200..300).contains(&s.status)).count()
    }
}

fn is_write(seen: &Seen) -> bool {
    matches!(seen.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE") && path_kind(&seen.path) != "token"
}

/// The kind of an emulator path.
pub fn path_kind(path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    if p.ends_with("/oauth2/v2.0/token") {
        "token"
    } else if p.contains("/providers/microsoft.authorization/roleassignments/") {
        "roleAssignment"
    } else if p.contains("/managedclusters/") {
        "managedCluster"
    } else if p.ends_with("/meshrevisionprofiles") {
        "meshRevisionProfiles"
    } else if p.contains("microsoft.containerservice/locations/") && p.contains("/operations/") {
        "clusterOperation"
    } else if p.ends_with("/importimage") {
        "importImage"
    } else if p.contains("/operationresults/") {
        "importOperation"
    } else {
        "other"
    }
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
