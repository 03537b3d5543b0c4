//! Gateway API v1.5 limits and the CEL rules of the HTTPRoute CRD, checked client-side (the Rust
//! types carry none), and the deterministic packing of rules into routes.

use gateway_api::apis::standard::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
};

/// Rules per route.
pub const MAX_RULES: usize = 16;
/// Matches per rule.
pub const MAX_MATCHES_PER_RULE: usize = 64;
/// Matches per route (sum over its rules).
pub const MAX_MATCHES_PER_ROUTE: usize = 128;
/// backendRefs per rule.
pub const MAX_BACKEND_REFS: usize = 16;
/// parentRefs per route.
pub const MAX_PARENT_REFS: usize = 32;
/// Headers per match.
pub const MAX_HEADERS: usize = 16;
/// Largest weight.
pub const MAX_WEIGHT: i64 = 1_000_000;
/// Longest path value.
pub const MAX_PATH: usize = 1024;
/// Longest header value.
pub const MAX_HEADER_VALUE: usize = 4096;
/// Longest header name.
pub const MAX_HEADER_NAME: usize = 256;

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-/._~!$&'()*+,;=:@".contains(c)
}

/// The CEL rules for `Exact` and `PathPrefix` values. `Err` says which rule is broken.
pub fn check_path_value(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err("must start with '/'".to_string());
    }
    if value.len() > MAX_PATH {
        return Err(format!("must be at most {MAX_PATH} characters"));
    }
    for forbidden in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if value.contains(forbidden) {
            return Err(format!("must not contain {forbidden:?}"));
        }
    }
    if value.ends_with("/..") || value.ends_with("/.") {
        return Err("must not end with '/..' or '/.'".to_string());
    }
    // ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = char::from(bytes[i]);
        if c == '%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            if hex.is_none() {
                return Err("'%' must start a percent-encoding like %20".to_string());
            }
            i += 3;
        } else if bytes[i].is_ascii() && is_path_char(c) {
            i += 1;
        } else {
            return Err(format!("character {c:?} is not allowed in a path (percent-encode it)"));
        }
    }
    Ok(())
}

/// Whether `name` is a valid HTTP header name for an HTTPRoute match.
pub fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME {
        return Err(format!("header names are 1 to {MAX_HEADER_NAME} characters"));
    }
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid HTTP header name"))
    }
}

/// Every CEL rule and limit of a generated route; an empty list when it is valid.
pub fn validate_route(route: &HttpRoute) -> Vec<String> {
    let mut problems = Vec::new();
    let name = route.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() || name.len() > super::names::MAX_NAME || !super::names::is_dns_subdomain(name) {
        problems.push(format!("name {name:?} is not a DNS-1123 subdomain of at most 253 characters"));
    }
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    if parents.len() > MAX_PARENT_REFS {
        problems.push(format!("{} parentRefs, at most {MAX_PARENT_REFS}", parents.len()));
    }
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() || rules.len() > MAX_RULES {
        problems.push(format!("{} rules, 1 to {MAX_RULES} allowed", rules.len()));
    }
    let total: usize = rules.iter().map(|r| r.matches.as_ref().map_or(0, Vec::len)).sum();
    if total > MAX_MATCHES_PER_ROUTE {
        problems.push(format!("{total} matches in all, at most {MAX_MATCHES_PER_ROUTE}"));
    }
    for (i, rule) in rules.iter().enumerate() {
        problems.extend(validate_rule(rule).into_iter().map(|p| format!("rules[{i}]: {p}")));
    }
    problems
}

fn validate_rule(rule: &HttpRouteRules) -> Vec<String> {
    let mut problems = Vec::new();
    let matches = rule.matches.as_deref().unwrap_or_default();
    if matches.len() > MAX_MATCHES_PER_RULE {
        problems.push(format!("{} matches, at most {MAX_MATCHES_PER_RULE}", matches.len()));
    }
    let backends = rule.backend_refs.as_deref().unwrap_or_default();
    if backends.len() > MAX_BACKEND_REFS {
        problems.push(format!("{} backendRefs, at most {MAX_BACKEND_REFS}", backends.len()));
    }
    for backend in backends {
        let core = backend.group.as_deref().unwrap_or_default().is_empty();
        let service = backend.kind.as_deref().unwrap_or("Service") == "Service";
        if core && service && backend.port.is_none() {
            problems.push(format!("backendRef {}: Must have port for Service reference", backend.name));
        }
        if let Some(weight) = backend.weight
            && !(0..=MAX_WEIGHT).contains(&i64::from(weight))
        {
            problems.push(format!("backendRef {}: weight {weight} outside 0..={MAX_WEIGHT}", backend.name));
        }
    }
    for m in matches {
        problems.extend(validate_match(m));
    }
    problems
}

fn validate_match(m: &HttpRouteRulesMatches) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(path) = &m.path {
        let value = path.value.as_deref().unwrap_or("/");
        match path.r#type {
            Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                if value.len() > MAX_PATH {
                    problems.push(format!("path regex longer than {MAX_PATH}"));
                }
            }
            _ => {
                if let Err(e) = check_path_value(value) {
                    problems.push(format!("path {value:?} {e}"));
                }
            }
        }
    }
    let headers = m.headers.as_deref().unwrap_or_default();
    if headers.len() > MAX_HEADERS {
        problems.push(format!("{} headers, at most {MAX_HEADERS}", headers.len()));
    }
    for header in headers {
        if let Err(e) = check_header_name(&header.name) {
            problems.push(e);
        }
        if header.value.is_empty() || header.value.len() > MAX_HEADER_VALUE {
            problems.push(format!("header {} value must be 1 to {MAX_HEADER_VALUE} characters", header.name));
        }
        if header.r#type == Some(HttpRouteRulesMatchesHeadersType::Exact) && header.value.contains(['\r', '\n']) {
            problems.push(format!("header {} value contains a line break", header.name));
        }
    }
    problems
}

/// Packs `rules` (in order) into routes of at most [`MAX_RULES`] rules and
/// [`MAX_MATCHES_PER_ROUTE`] matches, keeping `reserved` (the catch-all) in the first route.
/// Every rule must already hold at most [`MAX_MATCHES_PER_RULE`] matches.
pub(crate) fn pack(rules: Vec<HttpRouteRules>, reserved: HttpRouteRules) -> Vec<Vec<HttpRouteRules>> {
    let count = |r: &HttpRouteRules| r.matches.as_ref().map_or(1, |m| m.len().max(1));
    let reserved_matches = count(&reserved);
    let mut routes: Vec<Vec<HttpRouteRules>> = vec![Vec::new()];
    let mut used_rules = 1;
    let mut used_matches = reserved_matches;
    for rule in rules {
        let n = count(&rule);
        if used_rules + 1 > MAX_RULES || used_matches + n > MAX_MATCHES_PER_ROUTE {
            routes.push(Vec::new());
            used_rules = 0;
            used_matches = 0;
        }
        used_rules += 1;
        used_matches += n;
        if let Some(last) = routes.last_mut() {
            last.push(rule);
        }
    }
    if let Some(first) = routes.first_mut() {
        first.push(reserved);
    }
    routes
}

/// Splits `matches` into chunks of at most [`MAX_MATCHES_PER_RULE`].
pub(crate) fn chunk_matches(matches: Vec<HttpRouteRulesMatches>) -> Vec<Vec<HttpRouteRulesMatches>> {
    let mut out = Vec::new();
    let mut iter = matches.into_iter().peekable();
    while iter.peek().is_some() {
        out.push(iter.by_ref().take(MAX_MATCHES_PER_RULE).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values() {
        assert!(check_path_value("/books-bought").is_ok());
        assert!(check_path_value("/a%20b").is_ok());
        for bad in ["books", "/a//b", "/a/./b", "/a/../b", "/a%2Fb", "/a#b", "/a/..", "/a/.", "/a b", "/a%zz", "/é"] {
            assert!(check_path_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn packing_respects_limits() {
        let rule = |n: usize| HttpRouteRules {
            matches: Some(vec![HttpRouteRulesMatches::default(); n]),
            ..Default::default()
        };
        let routes = pack((0..40).map(|_| rule(1)).collect(), rule(1));
        assert!(routes.iter().all(|r| r.len() <= MAX_RULES));
        assert_eq!(routes[0].len(), MAX_RULES);
        assert_eq!(routes.iter().map(Vec::len).sum::<usize>(), 41);
        let routes = pack((0..5).map(|_| rule(64)).collect(), rule(1));
        for r in &routes {
            assert!(r.iter().map(|x| x.matches.as_ref().map_or(0, Vec::len)).sum::<usize>() <= MAX_MATCHES_PER_ROUTE);
        }
        assert_eq!(routes.len(), 3);
    }
}
