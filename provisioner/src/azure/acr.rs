//! ACR `importImage` (`az acr import`): one POST per image, answered 200 (done) or 202 with a
//! `Location` to poll.

use azure_core::http::Method;
use mesh_crds::{AzureSpec, ImageImport, ImportMode, RegistrySpec};

use super::ACR_API_VERSION;
use super::client::{ArmClient, WriteOutcome};
use super::error::{ArmError, Target};
use super::models::{ImportImageParameters, ImportSource};
use super::resource::{Registries, ResourceRef};

/// Where the registry is.
pub type RegistryRef = ResourceRef<Registries>;

impl RegistryRef {
    /// From `spec.azure` and `spec.registry`.
    pub fn from_spec(azure: &AzureSpec, registry: &RegistrySpec) -> Self {
        let resource_group = registry.resource_group.as_ref().unwrap_or(&azure.resource_group);
        RegistryRef::new(&azure.subscription_id, resource_group, &registry.acr)
    }
}

/// The import body for one image: `docker.io/openservicemesh/bookbuyer:v0.11.1` →
/// `{registryUri: docker.io, sourceImage: openservicemesh/bookbuyer:v0.11.1}`; Docker Hub
/// official images get their `library/` prefix.
pub fn import_parameters(image: &ImageImport, mode: ImportMode) -> ImportImageParameters {
    let (registry, path) = image.source.split_once('/').unwrap_or(("docker.io", image.source.as_str()));
    let docker_hub = matches!(registry, "docker.io" | "registry.hub.docker.com" | "index.docker.io");
    let source_image = if docker_hub && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
    ImportImageParameters {
        source: ImportSource { registry_uri: Some(registry.to_string()), source_image },
        target_tags: vec![image.target.clone()],
        mode: match mode {
            ImportMode::NoForce => "NoForce".into(),
            ImportMode::Force => "Force".into(),
        },
    }
}

/// Starts (or completes) the import of one image.
pub async fn import(
    client: &ArmClient,
    registry: &RegistryRef,
    image: &ImageImport,
    mode: ImportMode,
) -> Result<WriteOutcome, ArmError> {
    let operation = format!("importing {} into {} as {}", image.source, registry.name, image.target);
    let body = serde_json::to_vec(&import_parameters(image, mode))
        .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
    let mut segments = registry.segments().to_vec();
    segments.push("importImage");
    let url = client.url(&segments, ACR_API_VERSION)?;
    let response = client.send(Method::Post, url, &[], Some(body), &operation).await?;
    match response.status {
        200 | 201 | 204 => Ok(WriteOutcome::Done),
        202 => match ArmClient::started(&response) {
            Some(started) => Ok(WriteOutcome::Started(started)),
            None => Err(ArmError::Decode { operation, message: "202 Accepted without a Location header".into() }),
        },
        _ => Err(response.error(&operation, Target::Registry)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_sources_split_and_official_images_get_library() {
        let image = |source: &str| ImageImport { source: source.into(), target: "t:1".into() };
        let p = import_parameters(&image("docker.io/openservicemesh/bookbuyer:v0.11.1"), ImportMode::NoForce);
        assert_eq!(p.source.registry_uri.as_deref(), Some("docker.io"));
        assert_eq!(p.source.source_image, "openservicemesh/bookbuyer:v0.11.1");
        assert_eq!(p.mode, "NoForce");
        let p = import_parameters(&image("docker.io/mysql:5.6"), ImportMode::Force);
        assert_eq!(p.source.source_image, "library/mysql:5.6");
        let p = import_parameters(&image("mcr.microsoft.com/oss/nginx/nginx:1.25"), ImportMode::Force);
        assert_eq!(p.source.registry_uri.as_deref(), Some("mcr.microsoft.com"));
    }
}
