//! An OSM route's match (path regex, method regexes, header regexes) in Istio terms:
//!
//! - [`allow_shapes`]: what an ALLOW rule may admit — **never wider** than the match (narrower
//!   with a WARNING, or an ERROR when nothing is left), with the overrides applied;
//! - [`deny_shape`]: what a DENY rule must cover — **never narrower** than the match (an
//!   inexpressible part is left out, which widens the DENY).
//!
//! Matching as OSM's Envoy does it: the path regex full-matches the path; each method string is
//! a case-sensitive full-match regex on `:method` and a `*` anywhere in the list means any
//! method (so `GET|POST` admits GET and POST); header regexes full-match the value (names
//! case-insensitive), the key `host` matches `:authority` (`request.headers[:authority]` in
//! Istio, compared exactly — Istio's `hosts` ignores case, which would be wider).

use mesh_crds::NotificationLevel;
use mesh_crds::istio::{Condition, Operation};

use super::enforcement::{MatchLabel, RouteKey, header_key};
use super::notify::quote;
use super::overrides::MatchOverride;
use super::regex_analysis::{Alternative, Analyzer, Domain, IstioForm, IstioMatch};
use super::regex_sets::Languages;

/// Rules one match may expand to (combinations of header alternatives).
const MAX_RULES_PER_MATCH: usize = 16;

/// Methods an Istio list can name when a method regex must be enumerated.
pub(crate) const STANDARD_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

const REWRITE_HINT: &str = "rewrite the regex as a literal, a literal followed by `.*`, or `.*` followed by a literal (or list the alternatives with `|`), or add a narrowing override (spec.traffic.translation.overrides)";
const NOT_TRANSLATED: &str = "this match is not translated, so the requests it allowed are denied";

/// One Istio rule body (without `from` and ports): the operation and its `when` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub operation: Operation,
    pub when: Vec<Condition>,
}

/// The shapes of an ALLOW for a route, with the notifications they caused.
#[derive(Clone, Debug, Default)]
pub(crate) struct Allowed {
    pub shapes: Vec<Shape>,
    pub messages: Vec<(NotificationLevel, String)>,
}

fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'];

fn strings(form: &IstioForm) -> Vec<String> {
    form.alternatives
        .iter()
        .filter_map(|a| match a {
            Alternative::One(m) => Some(m.to_istio()),
            Alternative::PrefixAndSuffix(..) => None,
        })
        .collect()
}

fn describe(form: &IstioForm) -> String {
    form.alternatives
        .iter()
        .map(|a| match a {
            Alternative::One(m) => format!("{:?}", m.to_istio()),
            Alternative::PrefixAndSuffix(p, s) => format!("{:?} and {:?}", format!("{p}*"), format!("*{s}")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The exact methods a method regex matches, if it is a literal or a union of literals.
pub(crate) fn exact_methods(regex: &str, analyzer: &mut Analyzer) -> Option<Vec<String>> {
    if !regex.contains(META) {
        return Some(vec![regex.to_string()]);
    }
    let analysis = analyzer.analyze(regex, Domain::HeaderValue);
    let form = analysis.as_ref().as_ref().ok()?;
    if !form.is_exact() {
        return None;
    }
    form.alternatives
        .iter()
        .map(|a| match a {
            Alternative::One(IstioMatch::Exact(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// The methods an ALLOW may name (`None` = any method), or an ERROR message.
fn allow_methods(
    key: &RouteKey<'_>,
    label: MatchLabel<'_>,
    analyzer: &mut Analyzer,
    languages: &mut Languages,
    messages: &mut Vec<(NotificationLevel, String)>,
) -> Result<Option<Vec<String>>, String> {
    if key.any_method() {
        return Ok(None);
    }
    let mut list: Vec<String> = Vec::new();
    let push = |m: String, list: &mut Vec<String>| {
        if is_token(&m) && !m.contains('*') && !list.contains(&m) {
            list.push(m);
        }
    };
    for regex in key.methods.iter().filter(|m| !m.is_empty()) {
        if !regex.contains(META) {
            push(regex.to_string(), &mut list);
            continue;
        }
        if let Some(exact) = exact_methods(regex, analyzer) {
            exact.into_iter().for_each(|m| push(m, &mut list));
            continue;
        }
        let Some(language) = languages.get(regex) else {
            messages.push((NotificationLevel::Warning, format!("{label}: method regex {} cannot be analysed (not valid RE2, or too large); it is left out (narrower)", quote(regex))));
            continue;
        };
        let analysis = analyzer.analyze(regex, Domain::HeaderValue);
        if analysis.as_ref().as_ref().is_ok_and(|f| f.is_exact() && f.matches_anything()) {
            return Ok(None);
        }
        let standard: Vec<&str> = STANDARD_METHODS.iter().copied().filter(|m| language.full_match(m)).collect();
        messages.push((
            NotificationLevel::Warning,
            format!(
                "{label}: method regex {} is not a list of literal methods; translated to the standard methods it matches ({}), other methods it matched are denied (narrower)",
                quote(regex),
                if standard.is_empty() { "none".to_string() } else { standard.join(", ") }
            ),
        ));
        standard.into_iter().for_each(|m| push(m.to_string(), &mut list));
    }
    if list.is_empty() {
        return Err(format!(
            "{label}: no method of {:?} can be expressed as an Istio method; {NOT_TRANSLATED}",
            key.methods
        ));
    }
    Ok(Some(list))
}

/// The Istio `when` key of a header.
pub(crate) fn header_condition_key(name: &str) -> String {
    format!("request.headers[{}]", header_key(name))
}

/// What an ALLOW for `key` may admit: one shape per combination of header alternatives.
pub(crate) fn allow_shapes(
    key: &RouteKey<'_>,
    label: MatchLabel<'_>,
    overrides: &MatchOverride,
    analyzer: &mut Analyzer,
    languages: &mut Languages,
) -> Result<Allowed, String> {
    let mut messages = Vec::new();
    let nothing = |messages| Ok(Allowed { shapes: Vec::new(), messages });

    // Paths.
    let mut paths: Vec<String> = Vec::new();
    if let Some(forms) = &overrides.paths {
        paths = forms.iter().map(IstioMatch::to_istio).collect();
        messages.push((NotificationLevel::Info, format!("{label}: path regex {} is translated to the override's paths {paths:?} (proven inside it; narrower by choice)", quote(key.path))));
    } else {
        let analysis = analyzer.analyze(key.path, Domain::Path);
        let form = analysis.as_ref().as_ref().map_err(|reason| {
            format!("{label}: path regex {} cannot be expressed with Istio's exact/prefix/suffix path matching: {reason}; {NOT_TRANSLATED}; {REWRITE_HINT}", quote(key.path))
        })?;
        if form.alternatives.is_empty() {
            messages.push((NotificationLevel::Info, format!("{label}: path regex {} matches no path (paths start with '/'), so it never allowed anything; nothing to translate", quote(key.path))));
            return nothing(messages);
        }
        if !form.is_exact() {
            messages.push((
                NotificationLevel::Warning,
                format!("{label}: path regex {} is translated to the narrower {}: {}; requests it allowed outside those are denied", quote(key.path), describe(form), form.narrowing()),
            ));
        }
        if !form.matches_anything() {
            paths = strings(form);
        }
    }

    let methods = allow_methods(key, label, analyzer, languages, &mut messages)?;

    // Headers: each is AND'ed; a header's alternatives are OR'ed.
    let mut combinations: Vec<Vec<Condition>> = vec![Vec::new()];
    for (name, regex) in key.headers {
        let lower = name.to_ascii_lowercase();
        if *name != "host" && (lower == "host" || lower.starts_with(':')) {
            messages.push((NotificationLevel::Warning, format!("{label}: header key {name:?}: OSM matches the authority only under the key `host` (lower case); under {name:?} its Envoy looks for a header no request carries, so the match is not translated (it admits nothing, or less than OSM)")));
            return nothing(messages);
        }
        if !is_token(&lower) || lower.contains(['[', ']']) {
            return Err(format!("{label}: {name:?} is not a valid header name; {NOT_TRANSLATED}"));
        }
        let key_text = header_condition_key(name);
        let mut options: Vec<Vec<Condition>> = Vec::new();
        if let Some((_, forms)) = overrides.headers.iter().find(|(n, _)| n == name) {
            let values: Vec<String> = forms.iter().map(IstioMatch::to_istio).collect();
            messages.push((NotificationLevel::Info, format!("{label}: header {name} regex {} is translated to the override's values {values:?} (proven inside it; narrower by choice)", quote(regex))));
            options.push(vec![Condition { key: key_text, values, not_values: Vec::new() }]);
        } else {
            let analysis = analyzer.analyze(regex, Domain::HeaderValue);
            let form = analysis.as_ref().as_ref().map_err(|reason| {
                format!("{label}: header {name} regex {} cannot be expressed with Istio's exact/prefix/suffix/presence matching: {reason}; {NOT_TRANSLATED}; {REWRITE_HINT}", quote(regex))
            })?;
            if form.alternatives.is_empty() {
                messages.push((NotificationLevel::Info, format!("{label}: header {name} regex {} matches no value, so it never allowed anything; nothing to translate", quote(regex))));
                return nothing(messages);
            }
            if !form.is_exact() {
                messages.push((
                    NotificationLevel::Warning,
                    format!("{label}: header {name} regex {} is translated to the narrower {}: {}; requests it allowed outside those are denied", quote(regex), describe(form), form.narrowing()),
                ));
            }
            let singles = strings(form);
            if !singles.is_empty() {
                options.push(vec![Condition { key: key_text.clone(), values: singles, not_values: Vec::new() }]);
            }
            for alternative in &form.alternatives {
                if let Alternative::PrefixAndSuffix(prefix, suffix) = alternative {
                    options.push(vec![
                        Condition {
                            key: key_text.clone(),
                            values: vec![IstioMatch::Prefix(prefix.clone()).to_istio()],
                            not_values: Vec::new(),
                        },
                        Condition {
                            key: key_text.clone(),
                            values: vec![IstioMatch::Suffix(suffix.clone()).to_istio()],
                            not_values: Vec::new(),
                        },
                    ]);
                }
            }
        }
        if combinations.len().saturating_mul(options.len()) > MAX_RULES_PER_MATCH {
            return Err(format!(
                "{label}: its header alternatives need more than {MAX_RULES_PER_MATCH} rules; {NOT_TRANSLATED}; simplify the header regexes"
            ));
        }
        combinations = match <[Vec<Condition>; 1]>::try_from(options) {
            // One option (the usual case): appended to every combination, moved into the last.
            Ok([option]) => {
                if let Some((last, others)) = combinations.split_last_mut() {
                    others.iter_mut().for_each(|base| base.extend(option.iter().cloned()));
                    last.extend(option);
                }
                combinations
            }
            Err(options) => combinations
                .iter()
                .flat_map(|base| {
                    options.iter().map(move |option| {
                        let mut next = base.clone();
                        next.extend(option.iter().cloned());
                        next
                    })
                })
                .collect(),
        };
    }

    let mut methods = methods.unwrap_or_default();
    let count = combinations.len();
    let mut shapes = Vec::with_capacity(count);
    for (i, when) in combinations.into_iter().enumerate() {
        // The last shape takes the lists, the others copy them.
        let (methods, paths) = if i + 1 == count {
            (std::mem::take(&mut methods), std::mem::take(&mut paths))
        } else {
            (methods.clone(), paths.clone())
        };
        let mut operation = Operation { methods, paths, ..Default::default() };
        if operation.methods.is_empty() && operation.paths.is_empty() && when.is_empty() {
            // Keep the rule HTTP-only: without any HTTP field Istio would also admit TCP.
            operation.paths = vec![IstioMatch::Presence.to_istio()];
        }
        shapes.push(Shape { operation, when });
    }
    Ok(Allowed { shapes, messages })
}

/// What a DENY for `key` must cover, and whether it had to be widened.
pub(crate) fn deny_shape(key: &RouteKey<'_>, analyzer: &mut Analyzer) -> (Shape, bool) {
    let mut widened = false;
    let mut operation = Operation::default();
    let path = analyzer.analyze(key.path, Domain::Path);
    match path.as_ref() {
        Ok(form) if form.is_exact() && !form.matches_anything() && !form.alternatives.is_empty() => {
            let list = strings(form);
            if list.len() == form.alternatives.len() {
                operation.paths = list;
            } else {
                widened = true;
            }
        }
        Ok(form) if form.is_exact() => {}
        _ => widened = true,
    }
    if !key.any_method() {
        let mut methods: Vec<String> = Vec::new();
        let mut any = false;
        for regex in key.methods.iter().filter(|m| !m.is_empty()) {
            match exact_methods(regex, analyzer) {
                Some(list) => methods.extend(list),
                None => {
                    any = true;
                    break;
                }
            }
        }
        if any || methods.is_empty() {
            widened = true;
        } else {
            methods.sort();
            methods.dedup();
            operation.methods = methods;
        }
    }
    let mut when = Vec::new();
    for (name, regex) in key.headers {
        let analysis = analyzer.analyze(regex, Domain::HeaderValue);
        match analysis.as_ref() {
            Ok(form)
                if form.is_exact()
                    && !form.alternatives.is_empty()
                    && form.alternatives.iter().all(|a| matches!(a, Alternative::One(_))) =>
            {
                when.push(Condition { key: header_condition_key(name), values: strings(form), not_values: Vec::new() });
            }
            _ => widened = true,
        }
    }
    (Shape { operation, when }, widened)
}
