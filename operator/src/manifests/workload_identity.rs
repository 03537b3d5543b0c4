//! Azure workload identity for the operator's own pod: what `meshctl install --azure-client-id`
//! adds to the install manifests so that `spec.azure.credential.workloadIdentity` (the default)
//! works on AKS.
//!
//! The names, paths and audience are exactly those of the AKS workload identity webhook
//! (azure-workload-identity): the ServiceAccount annotations `azure.workload.identity/client-id`
//! and `…/tenant-id`, the pod label `azure.workload.identity/use: "true"` (the webhook mutates only
//! labelled pods), a projected ServiceAccount token for audience `api://AzureADTokenExchange` at
//! `/var/run/secrets/azure/tokens/azure-identity-token`, and `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`. The webhook adds an env var, mount or token volume only when the pod
//! does not have one of that name/path already, so rendering them here is compatible with it, and the
//! identity also works where no webhook runs (any cluster whose service-account issuer is federated
//! with Microsoft Entra ID).
//!
//! The label itself is on every operator pod (`workload::deployment_spec`): it does nothing without
//! the webhook, and with it a ServiceAccount annotated later (`kubectl annotate`, or OLM, which
//! cannot label pods from a Subscription) is enough.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use kube::api::DynamicObject;
use serde_json::Value;

use super::ManifestError;

/// Pod label the webhook looks for.
pub const USE_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation: the client ID of the user-assigned managed identity or app registration.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// ServiceAccount annotation: the Microsoft Entra tenant (the webhook defaults it to the cluster's).
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// Name of the projected token volume and of its file.
pub const TOKEN_VOLUME: &str = "azure-identity-token";
/// Where the token volume is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/azure/tokens";
/// Audience Microsoft Entra ID expects in a federated token.
pub const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Token lifetime: one hour, the webhook's default (the kubelet refreshes it at 80%).
const TOKEN_SECONDS: i64 = 3600;

/// The identity the operator authenticates to Azure as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// Client ID of the managed identity (or app registration) with the federated credential.
    pub client_id: String,
    /// Tenant ID; without it the AKS webhook injects the cluster's tenant.
    pub tenant_id: Option<String>,
}

impl WorkloadIdentity {
    /// Annotations of the operator's ServiceAccount.
    pub fn service_account_annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::from([(CLIENT_ID_ANNOTATION.to_string(), self.client_id.clone())]);
        if let Some(tenant) = &self.tenant_id {
            annotations.insert(TENANT_ID_ANNOTATION.to_string(), tenant.clone());
        }
        annotations
    }

    /// Environment of the operator container, as `azure_identity`'s workload identity credential reads it.
    pub fn env(&self) -> Vec<EnvVar> {
        let var = |name: &str, value: String| EnvVar { name: name.to_string(), value: Some(value), value_from: None };
        let mut env = vec![var("AZURE_CLIENT_ID", self.client_id.clone())];
        if let Some(tenant) = &self.tenant_id {
            env.push(var("AZURE_TENANT_ID", tenant.clone()));
        }
        env.push(var("AZURE_FEDERATED_TOKEN_FILE", format!("{TOKEN_DIR}/{TOKEN_VOLUME}")));
        env
    }

    /// The projected ServiceAccount token volume.
    pub fn volume() -> Volume {
        Volume {
            name: TOKEN_VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(TOKEN_AUDIENCE.to_string()),
                        expiration_seconds: Some(TOKEN_SECONDS),
                        path: TOKEN_VOLUME.to_string(),
                    }),
                    ..Default::default()
                }]),
                default_mode: None,
            }),
            ..Default::default()
        }
    }

    /// Its mount in the operator container (read-only).
    pub fn volume_mount() -> VolumeMount {
        VolumeMount {
            name: TOKEN_VOLUME.to_string(),
            mount_path: TOKEN_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        }
    }

    /// Adds the identity to parsed install manifests: annotations on the ServiceAccount, and on the
    /// Deployment's pod the label, the token volume, and the mount and environment of every
    /// container. Entries of the same name are replaced, so applying it twice changes nothing.
    pub fn add_to(&self, objects: &mut [DynamicObject]) -> Result<(), ManifestError> {
        for object in objects.iter_mut() {
            match object.types.as_ref().map(|t| t.kind.as_str()) {
                Some("ServiceAccount") => {
                    object.metadata.annotations.get_or_insert_default().extend(self.service_account_annotations());
                }
                Some("Deployment") => self.add_to_pod_template(&mut object.data["spec"]["template"])?,
                _ => {}
            }
        }
        Ok(())
    }

    fn add_to_pod_template(&self, template: &mut Value) -> Result<(), ManifestError> {
        let labels = &mut template["metadata"]["labels"];
        if !labels.is_object() {
            *labels = Value::Object(Default::default());
        }
        labels[USE_LABEL] = Value::String("true".to_string());
        let spec = &mut template["spec"];
        upsert(&mut spec["volumes"], serde_json::to_value(Self::volume())?)?;
        let containers = spec["containers"].as_array_mut().ok_or(ManifestError::Missing("Deployment containers"))?;
        for container in containers {
            upsert(&mut container["volumeMounts"], serde_json::to_value(Self::volume_mount())?)?;
            for var in self.env() {
                upsert(&mut container["env"], serde_json::to_value(var)?)?;
            }
        }
        Ok(())
    }
}

/// Puts `item` into the list `list` (created if absent), replacing an entry with the same `name`.
fn upsert(list: &mut Value, item: Value) -> Result<(), ManifestError> {
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    let entries = list.as_array_mut().ok_or(ManifestError::Missing("a list in the pod template"))?;
    match entries.iter_mut().find(|e| e["name"] == item["name"]) {
        Some(existing) => *existing = item,
        None => entries.push(item),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(tenant: Option<&str>) -> WorkloadIdentity {
        WorkloadIdentity { client_id: "11111111-2222-3333-4444-555555555555".into(), tenant_id: tenant.map(Into::into) }
    }

    fn install_objects() -> Vec<DynamicObject> {
        let yaml = super::super::install_yaml("mesh-operator:dev").expect("install.yaml");
        super::super::yaml::parse_stream(&yaml)
            .expect("parse")
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("object"))
            .collect()
    }

    fn find<'a>(objects: &'a [DynamicObject], kind: &str) -> &'a DynamicObject {
        objects.iter().find(|o| o.types.as_ref().is_some_and(|t| t.kind == kind)).expect(kind)
    }

    #[test]
    fn the_service_account_the_pod_label_the_token_and_the_environment_are_added_once() {
        let mut objects = install_objects();
        let wi = identity(Some("tenant-t"));
        wi.add_to(&mut objects).expect("add");
        wi.add_to(&mut objects).expect("idempotent");
        let sa = find(&objects, "ServiceAccount");
        let annotations = sa.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations[CLIENT_ID_ANNOTATION], wi.client_id);
        assert_eq!(annotations[TENANT_ID_ANNOTATION], "tenant-t");
        let template = &find(&objects, "Deployment").data["spec"]["template"];
        assert_eq!(template["metadata"]["labels"][USE_LABEL], "true");
        let volumes = template["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 1, "{volumes:?}");
        let token = &volumes[0]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["audience"], TOKEN_AUDIENCE);
        assert_eq!(token["path"], TOKEN_VOLUME);
        let container = &template["spec"]["containers"][0];
        let env: BTreeMap<&str, &str> = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
            .collect();
        assert_eq!(env["AZURE_CLIENT_ID"], wi.client_id);
        assert_eq!(env["AZURE_TENANT_ID"], "tenant-t");
        assert_eq!(env["AZURE_FEDERATED_TOKEN_FILE"], "/var/run/secrets/azure/tokens/azure-identity-token");
        assert_eq!(
            container["env"].as_array().expect("env").iter().filter(|e| e["name"] == "AZURE_CLIENT_ID").count(),
            1
        );
        assert_eq!(container["volumeMounts"][0]["mountPath"], TOKEN_DIR);
        assert_eq!(container["volumeMounts"][0]["readOnly"], true);
    }

    #[test]
    fn without_a_tenant_none_is_rendered_so_the_webhook_supplies_the_clusters() {
        let wi = identity(None);
        assert!(!wi.service_account_annotations().contains_key(TENANT_ID_ANNOTATION));
        assert!(wi.env().iter().all(|e| e.name != "AZURE_TENANT_ID"));
    }

    #[test]
    fn every_operator_pod_carries_the_label_even_without_an_identity() {
        let objects = install_objects();
        let template = &find(&objects, "Deployment").data["spec"]["template"];
        assert_eq!(template["metadata"]["labels"][USE_LABEL], "true");
        assert!(template["spec"]["volumes"].is_null(), "no token volume without an identity");
    }
}
