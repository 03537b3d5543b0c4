//! Narrowing overrides (`spec.traffic.translation.overrides`, `meshctl translate --overrides`).
//!
//! The article's `buy-a-book` (`.*a-book.*new`) and its `user-agent` regex have no Istio form, so
//! their matches are not translated (ERROR) and the migrated bookstore would deny bookbuyer. An
//! override names a TrafficTarget match and lists Istio-expressible paths (exact, prefix,
//! suffix) and header values to allow **instead** of the regexes. It is used only when the
//! translation **proves** it lies inside the SMI match ([`super::regex_sets::Languages::includes`]):
//!
//! - exact `v`: the regex fully matches `v`;
//! - prefix `p`: the regex matches every value starting with `p` (for paths: `p` starts with `/`);
//! - suffix `s`: the regex matches every value ending with `s` (for paths: every path, i.e.
//!   value starting with `/`, ending with `s`);
//! - no `*` in a value (Istio would read it as a wildcard).
//!
//! Anything else is refused with an ERROR on the TrafficTarget naming the override (so a
//! controller keeps that TrafficTarget's previous output), and the match is translated as if
//! there were no override. An accepted override is reported as INFO: it narrows by choice.

use mesh_crds::{StringMatch, TranslationOverride};

use super::notify::{Notes, quote};
use super::regex_analysis::IstioMatch;
use super::regex_sets::{Languages, literal};

/// What a string match means as a language (over values of the domain).
const ANY: &str = "(?s:.)*";

/// Accepted overrides of one match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MatchOverride {
    /// Paths to allow, when overridden.
    pub paths: Option<Vec<IstioMatch>>,
    /// Header name (as in the match) → values to allow.
    pub headers: Vec<(String, Vec<IstioMatch>)>,
}

/// `spec.traffic.translation.overrides[i]` as a message names it.
pub(crate) fn describe(index: usize, o: &TranslationOverride) -> String {
    format!(
        "override {index} (trafficTarget {}/{}, match {:?}{})",
        o.namespace,
        o.traffic_target,
        o.match_name,
        o.route_group.as_deref().map(|g| format!(", routeGroup {g}")).unwrap_or_default()
    )
}

fn one(m: &StringMatch) -> Result<IstioMatch, String> {
    let set = [&m.exact, &m.prefix, &m.suffix].iter().filter(|v| v.is_some()).count();
    if set != 1 {
        return Err("set exactly one of exact, prefix, suffix".to_string());
    }
    let (value, form) = match (&m.exact, &m.prefix, &m.suffix) {
        (Some(v), _, _) => (v, IstioMatch::Exact(v.clone())),
        (_, Some(v), _) => (v, IstioMatch::Prefix(v.clone())),
        (_, _, Some(v)) => (v, IstioMatch::Suffix(v.clone())),
        _ => return Err("set exactly one of exact, prefix, suffix".to_string()),
    };
    if value.is_empty() {
        return Err("the value is empty".to_string());
    }
    if value.contains('*') {
        return Err(format!("{value:?} contains `*`, which Istio would read as a wildcard"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("{value:?} contains a control character, which no request carries"));
    }
    Ok(form)
}

/// The language of `form` over the domain, as a regex.
fn language(form: &IstioMatch, path: bool) -> String {
    match form {
        IstioMatch::Exact(v) => literal(v),
        IstioMatch::Prefix(p) => format!("{}{ANY}", literal(p)),
        IstioMatch::Suffix(s) if path && s.starts_with('/') => format!("(?:/{ANY})?{}", literal(s)),
        IstioMatch::Suffix(s) if path => format!("/{ANY}{}", literal(s)),
        IstioMatch::Suffix(s) => format!("{ANY}{}", literal(s)),
        IstioMatch::Presence => ANY.to_string(),
    }
}

/// Checks that every value of `values` lies inside `regex`.
fn prove(
    regex: &str,
    values: &[StringMatch],
    path: bool,
    languages: &mut Languages,
) -> Result<Vec<IstioMatch>, String> {
    let mut out = Vec::new();
    for value in values {
        let form = one(value)?;
        if path && matches!(&form, IstioMatch::Exact(v) | IstioMatch::Prefix(v) if !v.starts_with('/')) {
            return Err(format!("path {:?} does not start with '/', so no request path has it", form.to_istio()));
        }
        match languages.includes(regex, &language(&form, path)) {
            Some(true) => out.push(form),
            Some(false) => {
                let what = match &form {
                    IstioMatch::Exact(_) => "is not matched by",
                    IstioMatch::Prefix(_) => "is a prefix of values not matched by",
                    IstioMatch::Suffix(_) => "is a suffix of values not matched by",
                    IstioMatch::Presence => "is wider than",
                };
                return Err(format!(
                    "{:?} {what} the regex {}, so it would widen access",
                    form.to_istio(),
                    quote(regex)
                ));
            }
            None => {
                return Err(format!(
                    "whether {:?} lies inside the regex {} cannot be decided within the analysis limits",
                    form.to_istio(),
                    quote(regex)
                ));
            }
        }
    }
    Ok(out)
}

/// Checks `o` against the match it names (`path_regex`, `headers` as OSM reads them) and returns
/// what to allow, or why it is refused.
pub(crate) fn check(
    o: &TranslationOverride,
    path_regex: &str,
    headers: &std::collections::BTreeMap<&str, &str>,
    languages: &mut Languages,
) -> Result<MatchOverride, String> {
    let mut accepted = MatchOverride::default();
    if !o.paths.is_empty() {
        accepted.paths = Some(prove(path_regex, &o.paths, true, languages).map_err(|e| format!("paths: {e}"))?);
    }
    for header in &o.headers {
        let Some((name, regex)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&header.name)) else {
            return Err(format!("the match has no header {:?} to narrow", header.name));
        };
        let values = prove(regex, &header.values, false, languages).map_err(|e| format!("header {name}: {e}"))?;
        accepted.headers.push((name.to_string(), values));
    }
    Ok(accepted)
}

/// Reports overrides that name no granted match.
pub(crate) fn report_unused(overrides: &[TranslationOverride], used: &[bool], notes: &mut Notes) {
    for (i, (o, used)) in overrides.iter().zip(used).enumerate() {
        if !used {
            notes.error(
                &super::notify::object_ref("TrafficTarget", &o.namespace, &o.traffic_target),
                format!(
                    "{}: no such match is granted by this TrafficTarget (check the names; the TrafficTarget must be valid and list the match); the override is not used",
                    describe(i, o)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: &str) -> StringMatch {
        StringMatch { exact: Some(v.into()), prefix: None, suffix: None }
    }
    fn prefix(v: &str) -> StringMatch {
        StringMatch { exact: None, prefix: Some(v.into()), suffix: None }
    }
    fn suffix(v: &str) -> StringMatch {
        StringMatch { exact: None, prefix: None, suffix: Some(v.into()) }
    }

    #[test]
    fn proofs() {
        let mut l = Languages::default();
        assert!(prove(".*a-book.*new", &[exact("/buy-a-book/new")], true, &mut l).is_ok());
        assert!(prove(".*a-book.*new", &[exact("/buy-a-book/old")], true, &mut l).is_err());
        assert!(prove(".*a-book.*new", &[prefix("/buy-a-book/")], true, &mut l).is_err());
        assert!(prove(".*-http-client/*.*", &[prefix("Go-http-client/")], false, &mut l).is_ok());
        assert!(prove(".*-http-client/*.*", &[suffix("-http-client/")], false, &mut l).is_ok());
        assert!(prove(".*new", &[suffix("new")], true, &mut l).is_ok());
        assert!(prove("/a.*new", &[suffix("new")], true, &mut l).is_err());
        assert!(prove(".*", &[exact("books")], true, &mut l).is_err(), "paths start with /");
        assert!(prove(".*", &[prefix("/a*")], true, &mut l).is_err(), "no wildcard");
        assert!(prove("/items/[0-9]+", &[prefix("/items/")], true, &mut l).is_err());
        assert!(prove("/items/[0-9]+", &[exact("/items/12")], true, &mut l).is_ok());
    }
}
