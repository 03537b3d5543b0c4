//! The AKS managed cluster: read, change only the add-on fields we own, write back guarded by the
//! ETag (`If-Match`), and re-read and retry on `412 Precondition Failed` so a concurrent change by
//! someone else is kept. Also the Istio revision choice from `meshRevisionProfiles`.

use azure_core::http::Method;
use mesh_crds::AzureSpec;

use super::AKS_API_VERSION;
use super::client::{ArmClient, WriteOutcome};
use super::error::{ArmError, Target};
use super::models::{ManagedCluster, MeshRevision, MeshRevisionProfileList};
use super::resource::{ManagedClusters, ResourceRef};

/// Read-modify-write attempts when the ETag keeps changing under us.
pub const MAX_ETAG_ATTEMPTS: usize = 4;

/// Where the managed cluster is.
pub type ClusterRef = ResourceRef<ManagedClusters>;

impl ClusterRef {
    /// From `spec.azure`.
    pub fn from_spec(spec: &AzureSpec) -> Self {
        ClusterRef::new(&spec.subscription_id, &spec.resource_group, &spec.cluster_name)
    }
}

/// Reads the cluster; the ETag comes from the header, else the body.
pub async fn get(client: &ArmClient, cluster: &ClusterRef) -> Result<ManagedCluster, ArmError> {
    let operation = format!("reading managed cluster {}", cluster.id());
    let url = client.url(&cluster.segments(), AKS_API_VERSION)?;
    let response = client.send(Method::Get, url, &[], None, &operation).await?;
    if !response.is_success() {
        return Err(response.error(&operation, Target::ManagedCluster));
    }
    let mut parsed: ManagedCluster = serde_json::from_slice(&response.body)
        .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
    if let Some(etag) = response.header("etag") {
        parsed.etag = Some(etag.to_string());
    }
    Ok(parsed)
}

/// Applies `mutate` to a fresh read of the cluster and writes it back with `If-Match`, retrying
/// on 412 with a new read (so changes made meanwhile by others are preserved). `mutate` returns
/// whether it changed anything; when it did not, nothing is written.
pub async fn update(
    client: &ArmClient,
    cluster: &ClusterRef,
    what: &str,
    mutate: impl Fn(&mut ManagedCluster) -> bool,
) -> Result<WriteOutcome, ArmError> {
    let operation = format!("{what} on managed cluster {}", cluster.id());
    let mut last = None;
    for attempt in 0..MAX_ETAG_ATTEMPTS {
        let mut current = get(client, cluster).await?;
        if !mutate(&mut current) {
            // Our change may be what is still running (its operation URL lost or expired): the
            // add-on's objects appear only when that operation ends.
            return Ok(match current.properties.provisioning_state.as_deref() {
                Some(state) if current.is_busy() => WriteOutcome::InFlight(state.to_string()),
                _ => WriteOutcome::NoChange,
            });
        }
        if current.is_busy() {
            return Err(ArmError::Response {
                operation,
                target: Target::ManagedCluster,
                status: 409,
                code: "AnotherOperationInProgress".into(),
                message: format!(
                    "the cluster is {}; waiting for that operation to finish before writing",
                    current.properties.provisioning_state.as_deref().unwrap_or("busy")
                ),
                retry_after: None,
            });
        }
        let mut headers = Vec::new();
        if let Some(etag) = &current.etag {
            headers.push(("if-match", etag.clone()));
        }
        let body = serde_json::to_vec(&current)
            .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
        let url = client.url(&cluster.segments(), AKS_API_VERSION)?;
        let response = client.send(Method::Put, url, &headers, Some(body), &operation).await?;
        match response.status {
            412 => {
                tracing::info!(cluster = %cluster.id(), attempt, "managed cluster changed since it was read (412); reading it again");
                last = Some(response.error(&operation, Target::ManagedCluster));
                continue;
            }
            200..=299 => {
                return Ok(match ArmClient::started(&response) {
                    Some(started) => WriteOutcome::Started(started),
                    None => WriteOutcome::Done,
                });
            }
            _ => return Err(response.error(&operation, Target::ManagedCluster)),
        }
    }
    Err(last.unwrap_or(ArmError::Decode { operation, message: "the ETag kept changing".into() }))
}

/// The Istio revisions AKS offers in a location.
pub async fn mesh_revisions(
    client: &ArmClient,
    subscription_id: &str,
    location: &str,
) -> Result<Vec<MeshRevision>, ArmError> {
    let segments = [
        "subscriptions",
        subscription_id,
        "providers",
        "Microsoft.ContainerService",
        "locations",
        location,
        "meshRevisionProfiles",
    ];
    let operation = format!("listing Istio revisions in {location}");
    let url = client.url(&segments, AKS_API_VERSION)?;
    let response = client.send(Method::Get, url, &[], None, &operation).await?;
    if !response.is_success() {
        return Err(response.error(&operation, Target::MeshRevisions));
    }
    let list: MeshRevisionProfileList = serde_json::from_slice(&response.body)
        .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
    Ok(list.value.into_iter().flat_map(|p| p.properties.mesh_revisions).collect())
}

/// `asm-1-25` → (1, 25).
fn revision_key(revision: &str) -> Option<(u32, u32)> {
    let rest = revision.strip_prefix("asm-")?;
    let (major, minor) = rest.split_once('-')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `1.30.4` → `1.30`.
fn minor_version(version: &str) -> Option<String> {
    let mut parts = version.trim_start_matches('v').split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// The newest revision compatible with Kubernetes `kubernetes_version`.
pub fn pick_revision(revisions: &[MeshRevision], kubernetes_version: &str) -> Option<String> {
    let minor = minor_version(kubernetes_version)?;
    revisions
        .iter()
        .filter(|r| {
            r.compatible_with.iter().any(|c| {
                c.name.eq_ignore_ascii_case("kubernetes")
                    && c.versions.iter().any(|v| minor_version(v).as_deref() == Some(minor.as_str()))
            })
        })
        .filter_map(|r| revision_key(&r.revision).map(|k| (k, r.revision.clone())))
        .max()
        .map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::models::CompatibleVersions;

    fn rev(name: &str, versions: &[&str]) -> MeshRevision {
        MeshRevision {
            revision: name.into(),
            upgrades: vec![],
            compatible_with: vec![CompatibleVersions {
                name: "kubernetes".into(),
                versions: versions.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn newest_compatible_revision_wins() {
        let revisions = vec![
            rev("asm-1-9", &["1.27", "1.28"]),
            rev("asm-1-24", &["1.29", "1.30"]),
            rev("asm-1-25", &["1.30", "1.31"]),
            rev("asm-1-26", &["1.31", "1.32"]),
        ];
        assert_eq!(pick_revision(&revisions, "1.30.4").as_deref(), Some("asm-1-25"));
        assert_eq!(pick_revision(&revisions, "1.28.0").as_deref(), Some("asm-1-9"));
        assert_eq!(pick_revision(&revisions, "1.20.0"), None);
    }

    #[test]
    fn set_osm_addon_changes_only_its_profile() {
        let mut cluster: ManagedCluster = serde_json::from_value(serde_json::json!({
            "id": "x", "location": "eastus", "tags": {"team": "a"},
            "properties": {"provisioningState": "Succeeded", "dnsPrefix": "d",
                "addonProfiles": {"azurepolicy": {"enabled": true, "config": null}}}
        }))
        .unwrap();
        assert!(cluster.set_osm_addon(true));
        assert!(!cluster.set_osm_addon(true));
        let value = serde_json::to_value(&cluster).unwrap();
        assert_eq!(value["tags"]["team"], "a");
        assert_eq!(value["properties"]["dnsPrefix"], "d");
        assert_eq!(value["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true);
        assert_eq!(
            value["properties"]["addonProfiles"]["openServiceMesh"],
            serde_json::json!({"enabled": true, "config": {}})
        );
    }
}
