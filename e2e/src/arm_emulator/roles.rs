//! `Microsoft.Authorization/roleAssignments` on a registry scope, as ARM answers them
//! (api-version 2022-04-01).

use serde_json::{Value, json};

use super::State;
use super::server::{Reply, answer, arm_error};

fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn body(id: &str, scope: &str, principal: &str, role: &str) -> Value {
    json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or_default(),
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {"roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal", "scope": scope},
    })
}

pub(crate) fn role_assignment(s: &mut State, method: &str, scope: &str, name: &str, request: &[u8]) -> Reply {
    let scope_id = super::lower(scope);
    if !s.registries.contains_key(&scope_id) {
        return arm_error(404, "ResourceNotFound", &format!("The Resource '{scope}' was not found."));
    }
    if !is_guid(name) {
        return arm_error(
            400,
            "InvalidRoleAssignmentId",
            &format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        );
    }
    let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let key = super::lower(&id);
    if method != "GET" && s.forbid_role_assignments {
        let action = if method == "PUT" { "write" } else { "delete" };
        return arm_error(
            403,
            "AuthorizationFailed",
            &format!(
                "The client '{}' with object id '00000000-0000-0000-0000-0000000000bb' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/{action}' over scope '{id}' or the scope is invalid.",
                super::CLIENT_ID
            ),
        );
    }
    match method {
        "GET" => match s.role_assignments.get(&key) {
            Some((principal, role)) => answer(200, body(&id, scope, principal, role)),
            None => arm_error(404, "RoleAssignmentNotFound", &format!("The role assignment '{name}' is not found.")),
        },
        "DELETE" => match s.role_assignments.remove(&key) {
            Some((principal, role)) => answer(200, body(&id, scope, &principal, &role)),
            None => Reply::Answer(204, Vec::new(), Value::Null),
        },
        _ => {
            let Ok(wanted) = serde_json::from_slice::<Value>(request) else {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized.",
                );
            };
            let principal = wanted["properties"]["principalId"].as_str().unwrap_or_default().to_string();
            let role = wanted["properties"]["roleDefinitionId"].as_str().unwrap_or_default().to_string();
            if !is_guid(&principal)
                || !role.to_ascii_lowercase().contains("/providers/microsoft.authorization/roledefinitions/")
            {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    "properties.principalId and properties.roleDefinitionId are required.",
                );
            }
            if let Some((p, r)) = s.role_assignments.get(&key) {
                if p.eq_ignore_ascii_case(&principal) && r.eq_ignore_ascii_case(&role) {
                    return answer(201, body(&id, scope, &principal, &role));
                }
                return arm_error(
                    409,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                );
            }
            let prefix = format!("{scope_id}/providers/microsoft.authorization/roleassignments/");
            if let Some((existing, _)) = s.role_assignments.iter().find(|(k, (p, r))| {
                k.starts_with(&prefix) && p.eq_ignore_ascii_case(&principal) && r.eq_ignore_ascii_case(&role)
            }) {
                let guid: String = existing.rsplit('/').next().unwrap_or_default().replace('-', "");
                return arm_error(
                    409,
                    "RoleAssignmentExists",
                    &format!("The role assignment already exists. The ID of the existing role assignment is {guid}."),
                );
            }
            s.role_assignments.insert(key, (principal.clone(), role.clone()));
            answer(201, body(&id, scope, &principal, &role))
        }
    }
}
