//! ARM role assignments (`Microsoft.Authorization/roleAssignments`) for `spec.registry.attach`:
//! AcrPull on the registry for the cluster's kubelet identity, as `az aks update --attach-acr`
//! grants it.
//!
//! Contract:
//! - The assignment's name is a UUID derived from (scope, principal, role definition)
//!   ([`assignment_name`]), so every reconcile, every operator replica and a reinstall address the
//!   same assignment: it is read (GET) before it is ever written, and written (PUT) only when ARM
//!   answers 404. ARM refuses a second assignment of the same role to the same principal on the
//!   same scope under another name (409 `RoleAssignmentExists`): [`ensure`] reports that as
//!   [`Ensured::Existing`] (present, made by someone else), which the caller must never delete.
//! - Every name in a request URL is a path segment ([`ArmClient::url`] percent-encodes it); the
//!   principal ID, read from ARM, is checked to be a GUID before it is sent anywhere.

use azure_core::http::Method;

use super::acr::RegistryRef;
use super::client::ArmClient;
use super::error::{ArmError, Target};
use super::models::{RoleAssignment, RoleAssignmentProperties};
use super::resource::{Registries, ResourceType};

/// api-version of `Microsoft.Authorization/roleAssignments`.
pub const AUTHORIZATION_API_VERSION: &str = "2022-04-01";
/// The built-in role `AcrPull` (pull images from a container registry), the role `az aks update
/// --attach-acr` assigns to the kubelet identity.
pub const ACR_PULL_ROLE: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
/// Namespace of the name-based (v5) UUIDs of our assignments: fixed forever, so names stay stable
/// across operator versions.
const NAME_NAMESPACE: [u8; 16] = *b"mesh-op-acrpull1";

/// An assignment of one role to one principal on one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The scope's ARM ID (`/subscriptions/…/registries/<name>`).
    pub scope: String,
    /// The scope as path segments (requests are built from these, never from `scope`).
    pub scope_segments: Vec<String>,
    /// The subscription the role definition is read from.
    pub subscription_id: String,
    /// The role definition's GUID.
    pub role: String,
    /// The principal's object ID.
    pub principal_id: String,
}

impl Assignment {
    /// AcrPull on `registry` for `principal_id` (checked to be a GUID).
    pub fn acr_pull(registry: &RegistryRef, principal_id: &str) -> Result<Self, ArmError> {
        if !is_guid(principal_id) {
            return Err(ArmError::Decode {
                operation: format!("granting AcrPull on {}", registry.id()),
                message: format!("the kubelet identity's objectId {principal_id:?} is not a GUID"),
            });
        }
        Ok(Assignment {
            scope: registry.id(),
            scope_segments: registry.segments().iter().map(|s| s.to_string()).collect(),
            subscription_id: registry.subscription_id.clone(),
            role: ACR_PULL_ROLE.to_string(),
            principal_id: principal_id.to_ascii_lowercase(),
        })
    }

    /// The assignment a stored ID names (`<registry ID>/providers/Microsoft.Authorization/roleAssignments/<name>`),
    /// for `principal_id`, if the ID has exactly that shape and its name is the one we derive: a
    /// stored ID never makes us act on an assignment we would not have made.
    pub fn from_stored_id(id: &str, principal_id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.strip_prefix('/')?.split('/').collect();
        let [s, sub, g, rg, p, ns, r, name, p2, auth, ra, assignment_name] = parts.as_slice() else { return None };
        let shape = s.eq_ignore_ascii_case("subscriptions")
            && g.eq_ignore_ascii_case("resourceGroups")
            && p.eq_ignore_ascii_case("providers")
            && ns.eq_ignore_ascii_case(Registries::PROVIDER)
            && r.eq_ignore_ascii_case(Registries::TYPE)
            && p2.eq_ignore_ascii_case("providers")
            && auth.eq_ignore_ascii_case("Microsoft.Authorization")
            && ra.eq_ignore_ascii_case("roleAssignments");
        if !shape || [sub, rg, name].iter().any(|v| v.is_empty()) {
            return None;
        }
        let registry = RegistryRef::new(*sub, *rg, *name);
        let assignment = Assignment::acr_pull(&registry, principal_id).ok()?;
        (assignment.name() == assignment_name.to_ascii_lowercase()).then_some(assignment)
    }

    /// The deterministic name.
    pub fn name(&self) -> String {
        assignment_name(&self.scope, &self.principal_id, &self.role)
    }

    /// The role definition's ARM ID.
    pub fn role_definition_id(&self) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.subscription_id, self.role
        )
    }

    /// ARM ID of the assignment named `name` on this scope.
    pub fn id_named(&self, name: &str) -> String {
        format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}", self.scope)
    }

    fn segments<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut segments: Vec<&str> = self.scope_segments.iter().map(String::as_str).collect();
        segments.extend(["providers", "Microsoft.Authorization", "roleAssignments", name]);
        segments
    }

    /// Whether an assignment read from ARM grants this role to this principal.
    pub fn matches(&self, found: &RoleAssignment) -> bool {
        found.properties.principal_id.eq_ignore_ascii_case(&self.principal_id)
            && found.properties.role_definition_id.to_ascii_lowercase().ends_with(&format!("/{}", self.role))
    }
}

/// The name of the assignment of `role` to `principal` on `scope`: a name-based (version 5,
/// SHA-1) UUID of the three, lowercased (ARM IDs are case-insensitive), so it is the same on every
/// reconcile and every reinstall.
pub fn assignment_name(scope: &str, principal: &str, role: &str) -> String {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(NAME_NAMESPACE);
    hasher.update(
        format!("{}|{}|{}", scope.to_ascii_lowercase(), principal.to_ascii_lowercase(), role.to_ascii_lowercase())
            .as_bytes(),
    );
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Whether `value` is a GUID (`8-4-4-4-12` hex digits).
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What [`ensure`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// Our assignment (the deterministic name) exists: `created` when this call made it.
    Ours {
        /// ARM ID.
        id: String,
        /// Whether this call created it (PUT answered 2xx).
        created: bool,
    },
    /// An equal assignment exists under another name (ARM answered 409 `RoleAssignmentExists`):
    /// someone else's, never to be deleted by us. Its ID when ARM's message names it.
    Existing {
        /// ARM ID, when known.
        id: Option<String>,
    },
}

/// Makes sure the assignment exists: GET by the deterministic name, PUT only on 404.
pub async fn ensure(client: &ArmClient, assignment: &Assignment) -> Result<Ensured, ArmError> {
    let name = assignment.name();
    let operation = format!("granting AcrPull on {} to principal {}", assignment.scope, assignment.principal_id);
    let url = client.url(&assignment.segments(&name), AUTHORIZATION_API_VERSION)?;
    let response = client.send(Method::Get, url.clone(), &[], None, &operation).await?;
    match response.status {
        200 => {
            let found: RoleAssignment = serde_json::from_slice(&response.body)
                .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
            if !assignment.matches(&found) {
                return Err(ArmError::Decode {
                    operation,
                    message: format!(
                        "role assignment {name} exists but grants role {} to {}",
                        found.properties.role_definition_id, found.properties.principal_id
                    ),
                });
            }
            return Ok(Ensured::Ours { id: assignment.id_named(&name), created: false });
        }
        404 => {}
        _ => return Err(response.error(&operation, Target::RoleAssignment)),
    }
    let body = RoleAssignment {
        properties: RoleAssignmentProperties {
            role_definition_id: assignment.role_definition_id(),
            principal_id: assignment.principal_id.clone(),
            // As `az aks update --attach-acr` sends it: ARM then does not need to look the
            // principal up in the directory (a new identity may not have replicated yet).
            principal_type: Some("ServicePrincipal".into()),
            rest: Default::default(),
        },
        ..Default::default()
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| ArmError::Decode { operation: operation.clone(), message: e.to_string() })?;
    let response = client.send(Method::Put, url, &[], Some(body), &operation).await?;
    match response.status {
        200 | 201 => Ok(Ensured::Ours { id: assignment.id_named(&name), created: true }),
        409 => {
            let error = response.error(&operation, Target::RoleAssignment);
            match &error {
                ArmError::Response { code, message, .. } if code == "RoleAssignmentExists" => {
                    Ok(Ensured::Existing { id: existing_id(message).map(|guid| assignment.id_named(&guid)) })
                }
                _ => Err(error),
            }
        }
        _ => Err(response.error(&operation, Target::RoleAssignment)),
    }
}

/// The ID of the existing assignment, when ARM's `RoleAssignmentExists` message names it ("The ID
/// of the existing role assignment is <32 hex digits>.").
pub fn existing_id(message: &str) -> Option<String> {
    let after = message.split("existing role assignment is").nth(1)?;
    let hex: String = after.trim_start().chars().take_while(char::is_ascii_hexdigit).collect();
    (hex.len() == 32).then(|| {
        let h = hex.to_ascii_lowercase();
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    })
}

/// Deletes our assignment (by the deterministic name). Gone already is done.
pub async fn delete(client: &ArmClient, assignment: &Assignment) -> Result<(), ArmError> {
    let name = assignment.name();
    let operation = format!("removing AcrPull on {} from principal {}", assignment.scope, assignment.principal_id);
    let url = client.url(&assignment.segments(&name), AUTHORIZATION_API_VERSION)?;
    let response = client.send(Method::Delete, url, &[], None, &operation).await?;
    match response.status {
        200..=299 | 404 => Ok(()),
        _ => Err(response.error(&operation, Target::RoleAssignment)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(name: &str) -> RegistryRef {
        RegistryRef::new("00000000-0000-0000-0000-000000000000", "rg", name)
    }

    /// `assignment_name("/s", "p", "r")`, as Python's `uuid.uuid5(UUID(bytes=b"mesh-op-acrpull1"), "/s|p|r")` computes it.
    const PINNED_NAME: &str = "d5486121-5535-5450-988d-491c50ed7a3e";
    const KUBELET: &str = "11111111-2222-4333-8444-555555555555";

    #[test]
    fn the_name_is_a_v5_uuid_fixed_by_scope_principal_and_role() {
        let a = Assignment::acr_pull(&registry("acr"), KUBELET).expect("guid");
        let name = a.name();
        assert!(is_guid(&name), "{name}");
        assert_eq!(&name[14..15], "5", "version 5: {name}");
        assert!(matches!(&name[19..20], "8" | "9" | "a" | "b"), "RFC 4122 variant: {name}");
        // Same inputs, any case: same name; any input changed: another name.
        let upper = Assignment::acr_pull(&registry("ACR"), &KUBELET.to_ascii_uppercase()).expect("guid");
        assert_eq!(upper.name(), name);
        assert_ne!(Assignment::acr_pull(&registry("other"), KUBELET).expect("guid").name(), name);
        assert_ne!(
            Assignment::acr_pull(&registry("acr"), "11111111-2222-4333-8444-555555555556").expect("guid").name(),
            name
        );
        assert_ne!(assignment_name(&a.scope, KUBELET, "b24988ac-6180-42a0-ab88-20f7382dd24c"), name);
        // Pinned: a change of the derivation would orphan every assignment made before it.
        assert_eq!(name, assignment_name(&a.scope, KUBELET, ACR_PULL_ROLE));
        assert_eq!(assignment_name("/S", "P", "R"), PINNED_NAME);
    }

    #[test]
    fn a_principal_that_is_not_a_guid_is_refused_before_any_request() {
        for bad in [
            "",
            "x",
            "11111111-2222-4333-8444-55555555555",
            "../../roleAssignments/x",
            "11111111-2222-4333-8444-55555555555g",
        ] {
            assert!(Assignment::acr_pull(&registry("acr"), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stored_id_is_used_only_when_it_is_the_name_we_derive() {
        let a = Assignment::acr_pull(&registry("acr"), KUBELET).expect("guid");
        let id = a.id_named(&a.name());
        assert_eq!(Assignment::from_stored_id(&id, KUBELET), Some(a.clone()));
        // Someone else's assignment, another principal, another shape: never ours to delete.
        assert_eq!(Assignment::from_stored_id(&a.id_named("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), KUBELET), None);
        assert_eq!(Assignment::from_stored_id(&id, "11111111-2222-4333-8444-555555555556"), None);
        assert_eq!(Assignment::from_stored_id(&format!("{id}/extra"), KUBELET), None);
        assert_eq!(Assignment::from_stored_id(&id.replace("/registries/", "/vaults/"), KUBELET), None);
        assert_eq!(Assignment::from_stored_id("", KUBELET), None);
    }

    #[test]
    fn the_existing_assignment_id_is_read_from_arms_message() {
        assert_eq!(
            existing_id(
                "The role assignment already exists. The ID of the existing role assignment is 0f1e2d3c4b5a69788796a5b4c3d2e1f0."
            ),
            Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into())
        );
        assert_eq!(existing_id("The role assignment already exists."), None);
    }

    #[test]
    fn requests_address_the_registry_scope_by_segments() {
        let a = Assignment::acr_pull(&registry("acr"), KUBELET).expect("guid");
        let name = a.name();
        let url = super::super::client::resource_url(
            &azure_core::http::Url::parse("https://management.azure.com").expect("url"),
            &a.segments(&name),
            AUTHORIZATION_API_VERSION,
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            format!(
                "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acr/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
            )
        );
        assert_eq!(
            a.role_definition_id(),
            "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d"
        );
    }
}
