//! Deterministic, stable names for generated objects.
//!
//! Names are derived only from the names of the source objects (never from their order or from
//! time), so translating the same input twice yields the same names:
//!
//! | object | name |
//! |---|---|
//! | HTTPRoute of a TrafficSplit whose root Service has one port | `<split>` |
//! | HTTPRoute of a TrafficSplit for root port `P` (several ports) | `<split>-p<P>` |
//! | overflow routes (Gateway API limits) | `<base>-<n>`, n = 2, 3, … |
//! | ALLOW policy of a TrafficTarget for one destination workload | `<tt>-<workload>` |
//! | DENY of conflicting routes (first-match order) for one workload | `first-match-<workload>` |
//! | baseline deny-all of an enrolled namespace | `deny-all` |
//!
//! A name longer than 253 characters is cut to 244 and given `-<8 hex digits>` of a stable hash
//! (FNV-1a) of the full name. When two generated objects of one kind in one namespace would get
//! the same name, both get `-<hash of their source identity>` appended and an INFO says so.

/// Longest object name Kubernetes accepts (DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;

/// FNV-1a, 64 bit: stable across Rust versions and platforms, unlike `DefaultHasher`.
pub(crate) fn stable_hash(value: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// FNV-1a as a `Hasher`, for the translation's internal maps: much faster than SipHash on the
/// short names and regexes they hold (the input is the user's own, so flooding is no concern).
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` with [`Fnv`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

fn hash8(value: &str) -> String {
    format!("{:08x}", stable_hash(value) & 0xffff_ffff)
}

/// Cuts `name` so that `name` + `suffix` fits, never ending on `-` or `.`.
fn cut(name: &str, room: usize) -> &str {
    let mut end = room.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['-', '.'])
}

/// `base`, shortened with a hash when it exceeds [`MAX_NAME`].
pub(crate) fn fit(base: String) -> String {
    if base.len() <= MAX_NAME {
        return base;
    }
    format!("{}-{}", cut(&base, MAX_NAME - 9), hash8(&base))
}

/// `base` with a disambiguating hash of `identity`, within [`MAX_NAME`].
pub(crate) fn disambiguate(base: &str, identity: &str) -> String {
    format!("{}-{}", cut(base, MAX_NAME - 9), hash8(identity))
}

/// Whether `value` is a DNS-1123 label (namespace, ServiceAccount and most object names).
pub(crate) fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Whether `value` is a DNS-1123 subdomain (object names, ServiceAccount names).
pub(crate) fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= MAX_NAME
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A generated name with the identity of what it was generated from.
#[derive(Debug)]
pub(crate) struct Planned {
    pub namespace: String,
    pub name: String,
    /// E.g. `TrafficTarget/ns/tt|Deployment/ns/app`: unique per generated object.
    pub identity: String,
}

/// Resolves collisions among `planned` (one kind): returns, in the same order, the new name of
/// each that has to be renamed (`None`: its planned name stands), and the identities renamed.
pub(crate) fn resolve(planned: &[&Planned]) -> (Vec<Option<String>>, Vec<(String, String)>) {
    let mut count: FastMap<(&str, &str), usize> = FastMap::default();
    for p in planned {
        *count.entry((p.namespace.as_str(), p.name.as_str())).or_default() += 1;
    }
    let mut renamed = Vec::new();
    let names = planned
        .iter()
        .map(|p| {
            if count.get(&(p.namespace.as_str(), p.name.as_str())).copied().unwrap_or(0) > 1 {
                let name = disambiguate(&p.name, &p.identity);
                renamed.push((p.identity.clone(), name.clone()));
                Some(name)
            } else {
                None
            }
        })
        .collect();
    (names, renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let base = "a".repeat(300);
        let name = fit(base.clone());
        assert_eq!(name.len(), MAX_NAME);
        assert_eq!(name, fit(base));
        assert!(is_dns_subdomain(&name));
        assert_eq!(fit("short".to_string()), "short");
    }

    #[test]
    fn collisions_get_distinct_names() {
        let planned = [
            Planned { namespace: "n".into(), name: "a-b-c".into(), identity: "TT/n/a-b|W/n/c".into() },
            Planned { namespace: "n".into(), name: "a-b-c".into(), identity: "TT/n/a|W/n/b-c".into() },
            Planned { namespace: "m".into(), name: "a-b-c".into(), identity: "TT/m/a|W/m/b-c".into() },
        ];
        let (names, renamed) = resolve(&planned.iter().collect::<Vec<_>>());
        assert!(names[0].is_some() && names[1].is_some() && names[0] != names[1]);
        assert_eq!(names[2], None);
        assert_eq!(renamed.len(), 2);
    }
}
