//! Decides whether a live object already has everything a desired object asks for, so a steady
//! installation sends no write at all (server-side apply of an unchanged object still costs a
//! PATCH request).

use serde_json::Value;

/// True when every field set in `desired` has the same value in `live`. Fields only the server or
/// other managers set are ignored; an empty list, map or null in `desired` matches an absent field.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, want_value)| match have.get(key) {
            Some(have_value) => is_subset(want_value, have_value),
            None => is_empty(want_value),
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (Value::Number(want), Value::Number(have)) => want.as_f64() == have.as_f64(),
        (Value::Null, _) => true,
        (want, Value::Null) => is_empty(want),
        (want, have) => want == have,
    }
}

/// The first path where `desired` asks for something `live` does not have, for logs. Only the
/// path is returned, never a value: objects include Secrets (private keys, client secrets), and
/// logs are read by more people than Secrets are.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(key, w)| match have.get(key) {
            Some(h) => first_difference(w, h).map(|rest| format!(".{key}{rest}")),
            None if is_empty(w) => None,
            None => Some(format!(".{key} (missing)")),
        }),
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| first_difference(w, h).map(|rest| format!("[{i}]{rest}"))),
        _ if is_subset(desired, live) => None,
        _ => Some(" (differs)".to_string()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty() || map.values().all(is_empty),
        _ => false,
    }
}

/// The part of an object a comparison looks at: everything but `status` and the metadata the
/// server owns (uid, resourceVersion, managedFields, timestamps…).
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.retain(|key, _| matches!(key.as_str(), "name" | "namespace" | "labels" | "annotations"));
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_and_extra_fields_do_not_count() {
        let desired = json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}});
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "a"}, "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_changed_value_or_list_length_counts() {
        let desired = json!({"spec": {"backends": [{"service": "v1", "weight": 0}, {"service": "v2", "weight": 100}]}});
        let live = json!({"spec": {"backends": [{"service": "v1", "weight": 50}, {"service": "v2", "weight": 50}]}});
        assert!(!is_subset(&desired, &live));
        let shorter = json!({"spec": {"backends": [{"service": "v1", "weight": 0}]}});
        assert!(!is_subset(&shorter, &live));
    }

    #[test]
    fn numbers_compare_by_value_and_empties_match_absent() {
        assert!(is_subset(&json!({"maximum": 65535.0}), &json!({"maximum": 65535})));
        assert!(is_subset(&json!({"matches": [], "labels": {}}), &json!({})));
        assert!(!is_subset(&json!({"labels": {"a": "b"}}), &json!({})));
    }

    #[test]
    fn differences_name_the_path_and_never_a_value() {
        let desired = json!({"data": {"tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"}, "spec": {"list": [1, 2]}});
        let live = json!({"data": {"tls.key": "b2xkLXNlY3JldA=="}, "spec": {"list": [1]}});
        let difference = first_difference(&desired, &live).expect("a difference");
        assert_eq!(difference, ".data.tls.key (differs)");
        let lengths = first_difference(&json!({"spec": {"list": [1, 2]}}), &json!({"spec": {"list": [1]}}));
        assert_eq!(lengths.as_deref(), Some(".spec.list (differs)"));
        assert_eq!(first_difference(&json!({"a": "x"}), &json!({})).as_deref(), Some(".a (missing)"));
    }

    #[test]
    fn comparable_drops_status_and_server_metadata() {
        let object = json!({"metadata": {"name": "x", "uid": "u", "resourceVersion": "1", "labels": {"a": "b"}}, "status": {"x": 1}});
        assert_eq!(comparable(&object), json!({"metadata": {"name": "x", "labels": {"a": "b"}}}));
    }
}
