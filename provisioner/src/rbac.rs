//! Building blocks of the RBAC rules the provisioner renders (OSM's and ingress-nginx's roles).

use k8s_openapi::api::rbac::v1::PolicyRule;

/// One rule: `verbs` on `resources` of the API `groups`.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// Owned copies of string literals.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
