//! Where an installation's Azure requests go: always a cloud from the closed list
//! ([`mesh_crds::AzureCloud`]), which fixes the Resource Manager endpoint, the Microsoft Entra
//! authority host and the token scope. Only whoever installs the operator can point them elsewhere
//! (an emulator in tests), through the operator's own flags or environment ([`EndpointOverrides`]);
//! a MeshInstallation never can.

use mesh_crds::AzureCloud;

use super::error::ArmError;

/// Endpoints set by the operator's installer, replacing the cloud's (for a test emulator or a
/// private cloud). Empty in production.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// Resource Manager endpoint, e.g. `https://127.0.0.1:8443`.
    pub arm_endpoint: Option<String>,
    /// Microsoft Entra authority host.
    pub authority_host: Option<String>,
}

impl EndpointOverrides {
    /// Whether anything is overridden.
    pub fn is_empty(&self) -> bool {
        self.arm_endpoint.is_none() && self.authority_host.is_none()
    }

    /// Checks the overrides are `https` URLs (azure_core sends tokens only over TLS).
    pub fn validate(&self) -> Result<(), ArmError> {
        for (what, value) in [("ARM endpoint", &self.arm_endpoint), ("authority host", &self.authority_host)] {
            if let Some(value) = value {
                let url = azure_core::http::Url::parse(value).map_err(|e| ArmError::Config {
                    context: format!("the operator's Azure {what} override {value:?}"),
                    message: e.to_string(),
                })?;
                if url.scheme() != "https" || url.host_str().is_none() {
                    return Err(ArmError::Config {
                        context: format!("the operator's Azure {what} override {value:?}"),
                        message: "must be an https URL with a host".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The endpoints and token scope of one installation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// The cloud the spec names.
    pub cloud: AzureCloud,
    /// Resource Manager endpoint.
    pub arm: String,
    /// Microsoft Entra authority host.
    pub authority_host: String,
    /// Token scope for Resource Manager (always the cloud's, also with overrides).
    pub scope: String,
}

impl Endpoints {
    /// The endpoints of `cloud`, unless the operator's installer overrode them.
    pub fn resolve(cloud: AzureCloud, overrides: &EndpointOverrides) -> Endpoints {
        Endpoints {
            cloud,
            arm: overrides.arm_endpoint.clone().unwrap_or_else(|| cloud.arm_endpoint().to_string()),
            authority_host: overrides.authority_host.clone().unwrap_or_else(|| cloud.authority_host().to_string()),
            scope: cloud.arm_scope().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cloud_fixes_its_endpoints_and_scope() {
        let none = EndpointOverrides::default();
        let public = Endpoints::resolve(AzureCloud::AzurePublicCloud, &none);
        assert_eq!(public.arm, "https://management.azure.com");
        assert_eq!(public.authority_host, "https://login.microsoftonline.com");
        assert_eq!(public.scope, "https://management.azure.com/.default");
        let china = Endpoints::resolve(AzureCloud::AzureChinaCloud, &none);
        assert_eq!(china.arm, "https://management.chinacloudapi.cn");
        assert_eq!(china.scope, "https://management.chinacloudapi.cn/.default");
        let gov = Endpoints::resolve(AzureCloud::AzureUsGovernment, &none);
        assert_eq!(gov.authority_host, "https://login.microsoftonline.us");
        assert_eq!(gov.scope, "https://management.usgovcloudapi.net/.default");
    }

    #[test]
    fn overrides_replace_hosts_but_never_the_scope() {
        let overrides = EndpointOverrides {
            arm_endpoint: Some("https://127.0.0.1:9".into()),
            authority_host: Some("https://127.0.0.1:9".into()),
        };
        overrides.validate().expect("https loopback is a valid override");
        let endpoints = Endpoints::resolve(AzureCloud::AzureChinaCloud, &overrides);
        assert_eq!(endpoints.arm, "https://127.0.0.1:9");
        assert_eq!(endpoints.scope, "https://management.chinacloudapi.cn/.default");
        let plain = EndpointOverrides { arm_endpoint: Some("http://example.test".into()), authority_host: None };
        assert!(plain.validate().is_err(), "tokens only over TLS");
    }
}
