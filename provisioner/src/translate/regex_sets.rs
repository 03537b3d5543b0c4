//! Deciding questions about the *languages* of RE2 regexes (full match, as OSM's Envoy used
//! them), with dense DFAs from `regex-automata`:
//!
//! - [`Languages::includes`]: does every value one regex matches also match another? Used to
//!   **prove** that a narrowing override (exact, prefix or suffix) lies inside an SMI match.
//! - [`Languages::intersects`]: can one value match both? Used to find first-match conflicts
//!   between OSM routes.
//!
//! Both walk the product of two DFAs breadth-first. Values never contain NUL, CR or LF (HTTP
//! forbids them in paths, header values and methods), so those bytes are not followed. Answers
//! are exact; when a DFA cannot be built within its size limits or the product grows beyond
//! [`MAX_PAIRS`] states the answer is `None` ("unknown"), and callers take the safe side.

use std::collections::VecDeque;
use std::rc::Rc;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

use super::names::FastMap;

/// Product states explored at most per question.
pub(crate) const MAX_PAIRS: usize = 20_000;
/// Memory a DFA may take while built and once built.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// A regex compiled for full matching.
pub(crate) struct Language {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
}

impl Language {
    /// Compiles `regex` (RE2 syntax as far as the Rust parser reads it) for full matching.
    pub(crate) fn compile(regex: &str) -> Option<Language> {
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::All)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build(regex)
            .ok()?;
        let start = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)).ok()?;
        Some(Language { dfa, start })
    }

    fn accepts_at_end(&self, state: StateID) -> bool {
        self.dfa.is_match_state(self.dfa.next_eoi_state(state))
    }

    fn is_dead(&self, state: StateID) -> bool {
        self.dfa.is_dead_state(state) || self.dfa.is_quit_state(state)
    }

    /// Whether `value` matches as a whole.
    pub(crate) fn full_match(&self, value: &str) -> bool {
        let mut state = self.start;
        for &byte in value.as_bytes() {
            state = self.dfa.next_state(state, byte);
            if self.is_dead(state) {
                return false;
            }
        }
        self.accepts_at_end(state)
    }
}

/// Bytes no path, header value or method contains.
fn excluded(byte: u8) -> bool {
    matches!(byte, 0 | b'\n' | b'\r')
}

/// Walks the product of `a` and `b`; `stop(a_accepts, b_accepts)` ends the walk with `true`.
/// `prune_b_dead`: a dead `b` state cannot lead to a stop.
fn walk(a: &Language, b: &Language, prune_b_dead: bool, stop: impl Fn(bool, bool) -> bool) -> Option<bool> {
    // One representative byte per pair of equivalence classes.
    let mut representatives: Vec<u8> = Vec::new();
    let mut seen_classes = std::collections::HashSet::new();
    for byte in 0u8..=255 {
        if excluded(byte) {
            continue;
        }
        if seen_classes.insert((a.dfa.byte_classes().get(byte), b.dfa.byte_classes().get(byte))) {
            representatives.push(byte);
        }
    }
    let mut visited: FastMap<(StateID, StateID), ()> = FastMap::default();
    let mut queue = VecDeque::new();
    visited.insert((a.start, b.start), ());
    queue.push_back((a.start, b.start));
    while let Some((sa, sb)) = queue.pop_front() {
        if stop(a.accepts_at_end(sa), b.accepts_at_end(sb)) {
            return Some(true);
        }
        for &byte in &representatives {
            let next = (a.dfa.next_state(sa, byte), b.dfa.next_state(sb, byte));
            if a.is_dead(next.0) || (prune_b_dead && b.is_dead(next.1)) {
                continue;
            }
            if visited.insert(next, ()).is_none() {
                if visited.len() > MAX_PAIRS {
                    return None;
                }
                queue.push_back(next);
            }
        }
    }
    Some(false)
}

/// Compiled regexes, cached by text: inputs repeat the same few.
#[derive(Default)]
pub(crate) struct Languages {
    cache: FastMap<String, Option<Rc<Language>>>,
}

impl Languages {
    /// The compiled `regex`, or `None` when it cannot be compiled within the limits.
    pub(crate) fn get(&mut self, regex: &str) -> Option<Rc<Language>> {
        if let Some(hit) = self.cache.get(regex) {
            return hit.clone();
        }
        let compiled = Language::compile(regex).map(Rc::new);
        self.cache.insert(regex.to_string(), compiled.clone());
        compiled
    }

    /// Whether some value fully matches both regexes (`None`: unknown).
    pub(crate) fn intersects(&mut self, a: &str, b: &str) -> Option<bool> {
        if a == b {
            return Some(self.get(a)?.accepts_anything());
        }
        let (a, b) = (self.get(a)?, self.get(b)?);
        walk(&a, &b, true, |x, y| x && y)
    }

    /// Whether every value `inner` fully matches is also fully matched by `outer` (`None`:
    /// unknown).
    pub(crate) fn includes(&mut self, outer: &str, inner: &str) -> Option<bool> {
        let (inner, outer) = (self.get(inner)?, self.get(outer)?);
        // A counterexample: `inner` accepts, `outer` does not.
        walk(&inner, &outer, false, |i, o| i && !o).map(|found| !found)
    }
}

impl Language {
    /// Whether the language holds at least one value.
    fn accepts_anything(&self) -> bool {
        walk(self, self, true, |x, _| x).unwrap_or(true)
    }
}

/// `text` as a regex matching exactly it.
pub(crate) fn literal(text: &str) -> String {
    regex_syntax::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_proves_overrides() {
        let mut languages = Languages::default();
        let any = "(?s:.)*";
        assert_eq!(languages.includes(".*a-book.*new", &literal("/buy-a-book/new")), Some(true));
        assert_eq!(languages.includes(".*a-book.*new", &literal("/buy-a-book/old")), Some(false));
        // Every user agent starting with Go-http-client/ matches the article's regex.
        assert_eq!(
            languages.includes(".*-http-client/*.*", &format!("{}{any}", literal("Go-http-client/"))),
            Some(true)
        );
        // A prefix that leaves room for values the regex rejects.
        assert_eq!(languages.includes("/api/[0-9]+", &format!("{}{any}", literal("/api/"))), Some(false));
        assert_eq!(languages.includes(".*new", &format!("{any}{}", literal("/new"))), Some(true));
        assert_eq!(languages.includes(".*", &format!("{}{any}", literal("/"))), Some(true));
    }

    #[test]
    fn intersection_finds_overlaps() {
        let mut languages = Languages::default();
        assert_eq!(languages.intersects("/api/.*", ".*\\.json"), Some(true));
        assert_eq!(languages.intersects("/a", "/b"), Some(false));
        assert_eq!(languages.intersects("GET|POST", "POST"), Some(true));
        assert_eq!(languages.intersects("GET", "get"), Some(false));
        assert_eq!(languages.intersects("[a", "a"), None);
        assert_eq!(languages.intersects("a{0}b", "a{0}b"), Some(true));
    }

    #[test]
    fn full_match_is_anchored_at_both_ends() {
        let language = Language::compile("GET|POST").expect("compiles");
        assert!(language.full_match("GET") && language.full_match("POST"));
        assert!(!language.full_match("GETX") && !language.full_match("get") && !language.full_match("xPOST"));
    }
}
