//! What an SMI regular expression means, in the terms Istio and Gateway API can express.
//!
//! OSM matched `pathRegex` and header values with Envoy's RE2 `safe_regex`, which must match the
//! **whole** value (a full match, as if written `^(?:…)$`). Istio AuthorizationPolicy strings can
//! only say *exactly `abc`*, *starts with `abc`* (`abc*`), *ends with `abc`* (`*abc`) or *present*
//! (`*`); a list of them is OR'ed, and separate `when` conditions on one header are AND'ed.
//!
//! The analysis expands the regex into a finite union of *sequences* of literal bytes, one-byte
//! classes and `Σ*` ("any string", from `.*`, `(?s).*`, `[\s\S]*`…), then reads each sequence:
//!
//! | sequence | Istio | exact? |
//! |---|---|---|
//! | `abc` | `abc` | yes |
//! | `abc Σ*` | `abc*` | yes |
//! | `Σ* abc` | `*abc` | yes |
//! | `Σ*` | `*` (present; for paths: any path) | yes |
//! | `abc Σ* xyz` on a header | two conditions `abc*` AND `*xyz` | yes when `abc` and `xyz` cannot overlap, else not expressible |
//! | `abc Σ* xyz` on a path, `Σ* abc Σ*`, several `Σ*` | — | not expressible |
//! | `abc Σ Σ*` (`abc.+`) | — | not expressible (`abc*` would also admit `abc`) |
//!
//! Small classes and bounded repetitions are enumerated (`/v[12]/.*` → `/v1/*`, `/v2/*`; at most
//! 32 alternatives). A repetition of anything narrower than "any character" (`[0-9]+`, `(ab)*`) is
//! unrolled to a few occurrences: the result is **narrower** than the regex, never wider, and is
//! reported as such. Alternatives that cannot be expressed are dropped (narrower, reported); when
//! nothing is left the regex is [`Unexpressible`].
//!
//! Semantics follow RE2 as OSM's Envoy used it: Perl classes (`\d`, `\w`, `\s`) are ASCII, `.`
//! matches anything but `\n`, `(?i)` folds ASCII case. Values are assumed to contain no `\n`
//! (HTTP paths and header values cannot). Paths always start with `/`: a sequence that cannot
//! start with `/` matches no path and is dropped, exactly. For non-ASCII input the result may be
//! narrower than RE2 (e.g. RE2's `(?i)k` also matches the Kelvin sign); it is never wider.
//! A literal `*` cannot be written in an Istio string without turning it into a wildcard, so values
//! containing `*` are not expressible.

use std::fmt;
use std::rc::Rc;

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Class, Hir, HirKind, Look, Repetition};

/// At most this many OR'ed alternatives per regex.
pub(crate) const MAX_ALTERNATIVES: usize = 32;
/// Bound on intermediate expansions.
const MAX_INTERMEDIATE: usize = 256;
/// Bound on the length of one expanded sequence.
const MAX_ATOMS: usize = 4096;
/// Regexes longer than this are not analysed (Gateway API allows 1024 characters).
pub(crate) const MAX_REGEX_LEN: usize = 4096;
/// Occurrences a narrow repetition (`[0-9]*`) is unrolled to, at most.
const MAX_UNROLL: usize = 2;

/// What the regex is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Domain {
    /// A request path (without query), always starting with `/`.
    Path,
    /// A header value.
    HeaderValue,
}

/// One Istio string match.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IstioMatch {
    /// The whole value.
    Exact(String),
    /// Starts with (non-empty).
    Prefix(String),
    /// Ends with (non-empty).
    Suffix(String),
    /// Any value (a header that is present; any path).
    Presence,
}

impl IstioMatch {
    /// The string Istio expects.
    pub(crate) fn to_istio(&self) -> String {
        match self {
            IstioMatch::Exact(value) => value.clone(),
            IstioMatch::Prefix(prefix) => format!("{prefix}*"),
            IstioMatch::Suffix(suffix) => format!("*{suffix}"),
            IstioMatch::Presence => "*".to_string(),
        }
    }
}

/// One alternative of a union.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Alternative {
    /// One string match.
    One(IstioMatch),
    /// Starts with the first AND ends with the second (two `when` conditions); headers only, and
    /// only when the two cannot overlap.
    PrefixAndSuffix(String, String),
}

/// The Istio form of a regex: a union of alternatives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IstioForm {
    /// OR'ed alternatives; empty when the regex matches no value of the domain.
    pub alternatives: Vec<Alternative>,
    /// Alternatives of the regex that could not be expressed and were left out (narrower).
    pub dropped: Vec<Unexpressible>,
    /// A repetition was unrolled to a few occurrences (narrower).
    pub limited_repetition: bool,
}

impl IstioForm {
    /// Whether the alternatives match exactly what the regex matches.
    pub(crate) fn is_exact(&self) -> bool {
        self.dropped.is_empty() && !self.limited_repetition
    }

    /// Whether any value matches (a presence alternative).
    pub(crate) fn matches_anything(&self) -> bool {
        self.alternatives.contains(&Alternative::One(IstioMatch::Presence))
    }

    /// Why the form is narrower than the regex, for a message.
    pub(crate) fn narrowing(&self) -> String {
        let mut parts: Vec<String> = self.dropped.iter().map(ToString::to_string).collect();
        if self.limited_repetition {
            parts.push("repetitions of a character class or group are unrolled to a few occurrences".to_string());
        }
        parts.join("; ")
    }
}

/// Why a regex (or an alternative of it) has no Istio form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unexpressible {
    /// Not an RE2 regular expression.
    Invalid(String),
    /// Longer than [`MAX_REGEX_LEN`].
    TooLong(usize),
    /// More alternatives than Istio lists should hold.
    TooComplex,
    /// A construct without an equivalent (word boundaries, multi-line anchors, Unicode classes).
    Unsupported(String),
    /// `abc.*xyz` where a path (or an overlapping header value) would need both.
    Infix { prefix: String, suffix: String },
    /// `.*abc.*`.
    Contains(String),
    /// Several `.*` between literals.
    ManyWildcards,
    /// `abc.+`: at least one more character.
    NonEmptyTail(String),
    /// `.+abc`: at least one character before.
    NonEmptyHead(String),
    /// A single-character wildcard between literals (`a.c`).
    SingleWildcard,
    /// An empty header value.
    EmptyValue,
    /// A literal `*`.
    Asterisk(String),
    /// Bytes that are not UTF-8.
    NotUtf8,
}

impl fmt::Display for Unexpressible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unexpressible::Invalid(error) => write!(f, "it is not a valid RE2 regular expression ({error})"),
            Unexpressible::TooLong(len) => {
                write!(f, "it is {len} characters long; at most {MAX_REGEX_LEN} are analysed")
            }
            Unexpressible::TooComplex => {
                write!(f, "it expands to more than {MAX_ALTERNATIVES} exact/prefix/suffix alternatives; simplify it")
            }
            Unexpressible::Unsupported(what) => write!(f, "it uses {what}, which Istio string matching cannot express"),
            Unexpressible::Infix { prefix, suffix } => write!(
                f,
                "it needs both a prefix {prefix:?} and a suffix {suffix:?}, and Istio matches a path by one of them only (or they overlap)"
            ),
            Unexpressible::Contains(infix) => write!(
                f,
                "it matches values that merely contain {infix:?}, and Istio matches only exact values, prefixes and suffixes"
            ),
            Unexpressible::ManyWildcards => {
                write!(f, "it has `.*` in more than one place between literals; Istio allows one `*` at either end")
            }
            Unexpressible::NonEmptyTail(prefix) => write!(
                f,
                "it requires at least one character after {prefix:?}, but Istio's prefix match {prefix:?}* would also admit {prefix:?} itself; write `.*` instead of `.+` if that is acceptable"
            ),
            Unexpressible::NonEmptyHead(suffix) => write!(
                f,
                "it requires at least one character before {suffix:?}, but Istio's suffix match *{suffix:?} would also admit {suffix:?} itself"
            ),
            Unexpressible::SingleWildcard => {
                write!(f, "it has a single-character wildcard (`.`) between literals, which Istio cannot express")
            }
            Unexpressible::EmptyValue => write!(f, "it matches only an empty value, which Istio cannot express"),
            Unexpressible::Asterisk(value) => {
                write!(f, "the value {value:?} contains a literal `*`, which Istio would read as a wildcard")
            }
            Unexpressible::NotUtf8 => write!(f, "it matches bytes that are not UTF-8"),
        }
    }
}

/// The result of analysing one regex.
pub(crate) type Analysis = Result<IstioForm, Unexpressible>;

/// Analyses regexes, caching by (domain, regex): inputs repeat the same few regexes.
#[derive(Default)]
pub(crate) struct Analyzer {
    paths: super::names::FastMap<String, Rc<Analysis>>,
    headers: super::names::FastMap<String, Rc<Analysis>>,
}

impl Analyzer {
    /// The Istio form of `regex` (full match) over `domain`.
    pub(crate) fn analyze(&mut self, regex: &str, domain: Domain) -> Rc<Analysis> {
        let cache = match domain {
            Domain::Path => &mut self.paths,
            Domain::HeaderValue => &mut self.headers,
        };
        if let Some(hit) = cache.get(regex) {
            return Rc::clone(hit);
        }
        let result = Rc::new(analyze(regex, domain));
        cache.insert(regex.to_string(), Rc::clone(&result));
        result
    }
}

/// Whether `regex` is valid RE2 syntax (as far as the Rust parser can tell).
pub(crate) fn validate(regex: &str) -> Result<(), String> {
    if regex.len() > MAX_REGEX_LEN {
        return Err(format!("longer than {MAX_REGEX_LEN} characters"));
    }
    ParserBuilder::new().build().parse(regex).map(|_| ()).map_err(|e| one_line(&e.to_string()))
}

fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

const META: &[u8] = b"\\.+*?()|[]{}^$";

/// Analyses `regex` (full match) over `domain`, without caching.
pub(crate) fn analyze(regex: &str, domain: Domain) -> Analysis {
    if regex.len() > MAX_REGEX_LEN {
        return Err(Unexpressible::TooLong(regex.len()));
    }
    // Fast paths, the common forms: a literal, and a literal followed by `.*`. They give what
    // the expansion below gives for them (the `literals_and_prefixes_take_the_fast_path` test
    // compares both), without building sequences.
    let is_literal = |text: &str| !text.as_bytes().iter().any(|b| META.contains(b));
    if is_literal(regex) {
        return literal_form(regex, domain);
    }
    if let Some(head) = regex.strip_suffix(".*")
        && is_literal(head)
    {
        return Ok(prefix_form(head, domain));
    }
    expand_and_read(regex, domain)
}

/// The general analysis: the regex expanded into sequences, each read as Istio alternatives.
fn expand_and_read(regex: &str, domain: Domain) -> Analysis {
    // Syntax is checked with RE2's defaults (Unicode); the analysis then reads the regex with
    // ASCII Perl classes and byte-wise `.`, as RE2 does.
    validate(regex).map_err(Unexpressible::Invalid)?;
    let hir = ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(regex)
        .map_err(|_| Unexpressible::Unsupported("Unicode character classes".to_string()))?;
    let mut expander = Expander { dropped: Vec::new() };
    let seqs = expander.expand(&hir)?;
    finish(seqs, expander.dropped, domain)
}

/// The form of a literal regex (no metacharacter): the value itself; no path when it does not
/// start with `/`; an empty header value is not expressible.
fn literal_form(literal: &str, domain: Domain) -> Analysis {
    let alternatives = match domain {
        Domain::Path if !literal.starts_with('/') => Vec::new(),
        Domain::HeaderValue if literal.is_empty() => return Err(Unexpressible::EmptyValue),
        _ => vec![Alternative::One(IstioMatch::Exact(literal.to_string()))],
    };
    Ok(IstioForm { alternatives, ..IstioForm::default() })
}

/// The form of `<literal>.*`: any value for an empty literal (and for the path `/`); no path
/// when the literal does not start with `/`; else the prefix.
fn prefix_form(head: &str, domain: Domain) -> IstioForm {
    let alternative = match domain {
        _ if head.is_empty() => IstioMatch::Presence,
        Domain::Path if head == "/" => IstioMatch::Presence,
        Domain::Path if !head.starts_with('/') => return IstioForm::default(),
        _ => IstioMatch::Prefix(head.to_string()),
    };
    IstioForm { alternatives: vec![Alternative::One(alternative)], ..IstioForm::default() }
}

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte / 64)] & (1u64 << (byte % 64)) != 0
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for byte in lo..=hi {
            self.0[usize::from(byte / 64)] |= 1u64 << (byte % 64);
        }
    }

    fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set holds every byte a path or header value can contain (all but NUL, CR, LF).
    fn is_full(&self) -> bool {
        (1u8..=255).filter(|b| *b != b'\n' && *b != b'\r').all(|b| self.contains(b))
    }

    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0u8..=255).filter(|b| self.contains(*b))
    }
}

/// An element of an expanded sequence.
#[derive(Clone, Debug, PartialEq)]
enum Atom {
    /// One literal byte.
    Byte(u8),
    /// One byte of the set.
    Class(ByteSet),
    /// Any string (`.*`).
    AnyStar,
    /// Zero or more repetitions of a narrower language.
    RStar(Rc<Vec<Seq>>),
    /// `^` / `\A`.
    Start,
    /// `$` / `\z`.
    End,
}

type Seq = Vec<Atom>;

struct Expander {
    dropped: Vec<Unexpressible>,
}

fn concat(a: &[Atom], b: &[Atom]) -> Result<Seq, Unexpressible> {
    if a.len() + b.len() > MAX_ATOMS {
        return Err(Unexpressible::TooComplex);
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    for atom in b {
        if matches!(atom, Atom::AnyStar) && matches!(out.last(), Some(Atom::AnyStar)) {
            continue;
        }
        out.push(atom.clone());
    }
    Ok(out)
}

fn product(a: &[Seq], b: &[Seq]) -> Result<Vec<Seq>, Unexpressible> {
    if a.len().saturating_mul(b.len()) > MAX_INTERMEDIATE {
        return Err(Unexpressible::TooComplex);
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(concat(x, y)?);
        }
    }
    Ok(out)
}

/// Whether `sub*` is `Σ*`: some alternative of `sub` is one arbitrary character, `Σ*` or `Σ+`.
fn star_is_everything(sub: &[Seq]) -> bool {
    sub.iter().any(|seq| {
        let full = seq.iter().filter(|a| matches!(a, Atom::Class(c) if c.is_full())).count();
        let stars = seq.iter().filter(|a| matches!(a, Atom::AnyStar)).count();
        full + stars == seq.len() && !seq.is_empty() && full <= 1
    })
}

impl Expander {
    fn expand(&mut self, hir: &Hir) -> Result<Vec<Seq>, Unexpressible> {
        match hir.kind() {
            HirKind::Empty => Ok(vec![Vec::new()]),
            HirKind::Literal(literal) => {
                if literal.0.len() > MAX_ATOMS {
                    return Err(Unexpressible::TooComplex);
                }
                Ok(vec![literal.0.iter().map(|&b| Atom::Byte(b)).collect()])
            }
            HirKind::Class(class) => {
                let set = byte_set(class)?;
                Ok(match set.len() {
                    0 => Vec::new(),
                    1 => set.iter().map(|b| vec![Atom::Byte(b)]).collect(),
                    _ => vec![vec![Atom::Class(set)]],
                })
            }
            HirKind::Look(look) => match look {
                Look::Start => Ok(vec![vec![Atom::Start]]),
                Look::End => Ok(vec![vec![Atom::End]]),
                Look::StartLF | Look::StartCRLF | Look::EndLF | Look::EndCRLF => {
                    Err(Unexpressible::Unsupported("multi-line anchors".to_string()))
                }
                _ => Err(Unexpressible::Unsupported("word boundaries".to_string())),
            },
            HirKind::Capture(capture) => self.expand(&capture.sub),
            HirKind::Concat(subs) => {
                let mut acc: Vec<Seq> = vec![Vec::new()];
                for sub in subs {
                    let next = self.expand(sub)?;
                    acc = product(&acc, &next)?;
                    if acc.is_empty() {
                        break;
                    }
                }
                Ok(acc)
            }
            HirKind::Alternation(subs) => {
                let mut out = Vec::new();
                for sub in subs {
                    match self.expand(sub) {
                        Ok(seqs) => out.extend(seqs),
                        Err(reason) => self.dropped.push(reason),
                    }
                    if out.len() > MAX_INTERMEDIATE {
                        return Err(Unexpressible::TooComplex);
                    }
                }
                Ok(out)
            }
            HirKind::Repetition(repetition) => self.repetition(repetition),
        }
    }

    fn repetition(&mut self, repetition: &Repetition) -> Result<Vec<Seq>, Unexpressible> {
        let sub = self.expand(&repetition.sub)?;
        if sub.is_empty() {
            return Ok(if repetition.min == 0 { vec![Vec::new()] } else { Vec::new() });
        }
        let min = usize::try_from(repetition.min).map_err(|_| Unexpressible::TooComplex)?;
        if min > MAX_ATOMS {
            return Err(Unexpressible::TooComplex);
        }
        let mut acc: Vec<Seq> = vec![Vec::new()];
        for _ in 0..min {
            acc = product(&acc, &sub)?;
        }
        match repetition.max {
            None => {
                let star = if star_is_everything(&sub) { Atom::AnyStar } else { Atom::RStar(Rc::new(sub)) };
                acc.iter().map(|seq| concat(seq, std::slice::from_ref(&star))).collect()
            }
            Some(max) => {
                let extra = max.saturating_sub(repetition.min);
                let mut out = acc.clone();
                let mut layer = acc;
                for _ in 0..extra {
                    layer = product(&layer, &sub)?;
                    out.extend(layer.iter().cloned());
                    if out.len() > MAX_INTERMEDIATE {
                        return Err(Unexpressible::TooComplex);
                    }
                }
                Ok(out)
            }
        }
    }
}

fn byte_set(class: &Class) -> Result<ByteSet, Unexpressible> {
    let mut set = ByteSet([0; 4]);
    match class {
        Class::Bytes(bytes) => {
            for range in bytes.iter() {
                set.insert_range(range.start(), range.end());
            }
        }
        Class::Unicode(unicode) => {
            for range in unicode.iter() {
                let (lo, hi) = (u32::from(range.start()), u32::from(range.end()));
                if hi > 0x7f {
                    return Err(Unexpressible::Unsupported("non-ASCII character classes".to_string()));
                }
                set.insert_range(lo as u8, hi as u8);
            }
        }
    }
    Ok(set)
}

/// Removes `^`/`$`: at the ends they are no-ops under a full match; elsewhere the atoms between
/// them and the end must match the empty string. `None`: the sequence matches nothing.
fn resolve_anchors(seq: Seq) -> Option<Seq> {
    let mut seq = seq;
    while let Some(i) = seq.iter().rposition(|a| matches!(a, Atom::Start)) {
        if seq[..i].iter().all(|a| matches!(a, Atom::AnyStar | Atom::RStar(_) | Atom::Start | Atom::End)) {
            seq.drain(..=i);
        } else {
            return None;
        }
    }
    while let Some(i) = seq.iter().position(|a| matches!(a, Atom::End)) {
        if seq[i + 1..].iter().all(|a| matches!(a, Atom::AnyStar | Atom::RStar(_) | Atom::End)) {
            seq.truncate(i);
        } else {
            return None;
        }
    }
    Some(seq)
}

/// `Σ* R*` = `R* Σ*` = `Σ*`: drops narrow repetitions next to `.*`, merges adjacent `.*`.
fn absorb(seq: Seq) -> Seq {
    let mut out: Seq = Vec::with_capacity(seq.len());
    for atom in seq {
        match atom {
            Atom::RStar(_) if matches!(out.last(), Some(Atom::AnyStar)) => {}
            Atom::AnyStar => {
                while matches!(out.last(), Some(Atom::RStar(_))) {
                    out.pop();
                }
                if !matches!(out.last(), Some(Atom::AnyStar)) {
                    out.push(Atom::AnyStar);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Replaces narrow repetitions by 0..=`depth` occurrences. `None` when that exceeds the budget.
fn unroll(seq: &Seq, depth: usize, out: &mut Vec<Seq>) -> Option<()> {
    let Some(i) = seq.iter().position(|a| matches!(a, Atom::RStar(_))) else {
        out.push(seq.clone());
        return (out.len() <= MAX_INTERMEDIATE).then_some(());
    };
    let Atom::RStar(sub) = &seq[i] else { return None };
    let mut middles: Vec<Seq> = vec![Vec::new()];
    let mut layer: Vec<Seq> = vec![Vec::new()];
    for _ in 0..depth {
        layer = product(&layer, sub).ok()?;
        middles.extend(layer.iter().cloned());
        if middles.len() > MAX_INTERMEDIATE {
            return None;
        }
    }
    for middle in middles {
        let mut next: Seq = seq[..i].to_vec();
        next.extend(middle);
        next.extend_from_slice(&seq[i + 1..]);
        if let Some(next) = resolve_anchors(next) {
            unroll(&absorb(next), depth, out)?;
        }
    }
    Some(())
}

fn finish(seqs: Vec<Seq>, dropped: Vec<Unexpressible>, domain: Domain) -> Analysis {
    let mut form = IstioForm { alternatives: Vec::new(), dropped, limited_repetition: false };
    let mut starred: Vec<Seq> = Vec::new();
    for seq in seqs {
        let Some(seq) = resolve_anchors(seq) else { continue };
        let seq = absorb(seq);
        if seq.iter().any(|a| matches!(a, Atom::RStar(_))) {
            starred.push(seq);
        } else {
            classify_into(&mut form, seq, domain);
        }
        if form.alternatives.len() > MAX_ALTERNATIVES {
            return Err(Unexpressible::TooComplex);
        }
    }
    for seq in starred {
        form.limited_repetition = true;
        let mut unrolled = false;
        for depth in (0..=MAX_UNROLL).rev() {
            let mut out = Vec::new();
            if unroll(&seq, depth, &mut out).is_none() {
                continue;
            }
            let mut trial = form.clone();
            for seq in out {
                classify_into(&mut trial, seq, domain);
                if trial.alternatives.len() > MAX_ALTERNATIVES {
                    break;
                }
            }
            // A deeper unrolling must not cost alternatives (too many to enumerate): try a
            // shallower one then. The shallowest is taken as it is.
            let clean = depth == 0 || trial.dropped.len() == form.dropped.len();
            if trial.alternatives.len() <= MAX_ALTERNATIVES && clean {
                form = trial;
                unrolled = true;
                break;
            }
        }
        if !unrolled {
            form.dropped.push(Unexpressible::TooComplex);
        }
    }
    if form.alternatives.is_empty()
        && let Some(first) = form.dropped.first()
    {
        return Err(first.clone());
    }
    // Presence subsumes every other alternative.
    if form.matches_anything() {
        form.alternatives = vec![Alternative::One(IstioMatch::Presence)];
    }
    Ok(form)
}

fn classify_into(form: &mut IstioForm, seq: Seq, domain: Domain) {
    match classify(seq, domain) {
        Ok(alternatives) => {
            for alternative in alternatives {
                if !form.alternatives.contains(&alternative) {
                    form.alternatives.push(alternative);
                }
            }
        }
        Err(reason) => {
            if !form.dropped.contains(&reason) {
                form.dropped.push(reason);
            }
        }
    }
}

/// Expands the classes of a run of bytes and classes into byte strings.
fn enumerate(part: &[Atom]) -> Result<Vec<Vec<u8>>, Unexpressible> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    for atom in part {
        match atom {
            Atom::Byte(b) => out.iter_mut().for_each(|s| s.push(*b)),
            Atom::Class(set) => {
                if out.len().saturating_mul(set.len()) > MAX_ALTERNATIVES {
                    return Err(Unexpressible::TooComplex);
                }
                out = out
                    .iter()
                    .flat_map(|s| {
                        set.iter().map(move |b| {
                            let mut next = s.clone();
                            next.push(b);
                            next
                        })
                    })
                    .collect();
            }
            _ => return Err(Unexpressible::TooComplex),
        }
    }
    Ok(out)
}

fn text(bytes: Vec<u8>) -> Result<String, Unexpressible> {
    let value = String::from_utf8(bytes).map_err(|_| Unexpressible::NotUtf8)?;
    if value.contains('*') {
        return Err(Unexpressible::Asterisk(value));
    }
    Ok(value)
}

fn lossy(part: &[Atom]) -> String {
    part.iter()
        .map(|a| match a {
            Atom::Byte(b) if b.is_ascii() => char::from(*b),
            _ => '?',
        })
        .collect()
}

fn has_full_class(part: &[Atom]) -> bool {
    part.iter().any(|a| matches!(a, Atom::Class(c) if c.is_full()))
}

/// Reads one sequence (bytes, classes and `Σ*` only) as Istio alternatives.
fn classify(mut seq: Seq, domain: Domain) -> Result<Vec<Alternative>, Unexpressible> {
    if domain == Domain::Path {
        // Every path starts with `/`.
        match seq.first() {
            None => return Ok(Vec::new()),
            Some(Atom::Byte(b)) if *b != b'/' => return Ok(Vec::new()),
            Some(Atom::Class(set)) => {
                if set.contains(b'/') {
                    seq[0] = Atom::Byte(b'/');
                } else {
                    return Ok(Vec::new());
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&[Atom]> = seq.split(|a| matches!(a, Atom::AnyStar)).collect();
    let stars = parts.len() - 1;
    // A full class ("any one character") cannot be enumerated.
    for (i, part) in parts.iter().enumerate() {
        if has_full_class(part) {
            let star_after = i + 1 < parts.len();
            let star_before = i > 0;
            let last_is_full = matches!(part.last(), Some(Atom::Class(c)) if c.is_full());
            let first_is_full = matches!(part.first(), Some(Atom::Class(c)) if c.is_full());
            return Err(if star_after && last_is_full {
                Unexpressible::NonEmptyTail(lossy(&part[..part.len() - 1]))
            } else if star_before && first_is_full {
                Unexpressible::NonEmptyHead(lossy(&part[1..]))
            } else {
                Unexpressible::SingleWildcard
            });
        }
    }
    let lits: Vec<Vec<Vec<u8>>> = parts.iter().map(|p| enumerate(p)).collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    match stars {
        0 => {
            for value in lits[0].iter().cloned() {
                let value = text(value)?;
                if value.is_empty() {
                    return Err(Unexpressible::EmptyValue);
                }
                out.push(Alternative::One(IstioMatch::Exact(value)));
            }
        }
        1 => {
            if lits[0].len().saturating_mul(lits[1].len()) > MAX_ALTERNATIVES {
                return Err(Unexpressible::TooComplex);
            }
            for head in &lits[0] {
                for tail in &lits[1] {
                    let (head, tail) = (text(head.clone())?, text(tail.clone())?);
                    out.push(match (head.is_empty(), tail.is_empty()) {
                        (true, true) => Alternative::One(IstioMatch::Presence),
                        (false, true) if domain == Domain::Path && head == "/" => {
                            Alternative::One(IstioMatch::Presence)
                        }
                        (false, true) => Alternative::One(IstioMatch::Prefix(head)),
                        (true, false) => Alternative::One(IstioMatch::Suffix(tail)),
                        (false, false) => {
                            if domain == Domain::Path || overlaps(&head, &tail) {
                                return Err(Unexpressible::Infix { prefix: head, suffix: tail });
                            }
                            Alternative::PrefixAndSuffix(head, tail)
                        }
                    });
                }
            }
        }
        2 if parts[0].is_empty() && parts[2].is_empty() => return Err(Unexpressible::Contains(lossy(parts[1]))),
        _ => return Err(Unexpressible::ManyWildcards),
    }
    Ok(out)
}

/// Whether a value shorter than `prefix + suffix` can start with `prefix` and end with `suffix`.
fn overlaps(prefix: &str, suffix: &str) -> bool {
    let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
    (1..=p.len().min(s.len())).any(|k| p[p.len() - k..] == s[..k])
}

/// How a path regex reads as a Gateway API `HTTPPathMatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RoutePath {
    /// `Exact`.
    Exact(String),
    /// `PathPrefix` (element-wise).
    Prefix(String),
    /// Not a literal: `RegularExpression` with the original regex.
    Regex,
    /// Matches no path.
    Nothing,
}

/// The Gateway API path match of an analysed path regex. `PathPrefix /api` matches `/api`,
/// `/api/` and `/api/…`, so it is used for `/api(/.*)?` exactly and for `/api/.*` (which it
/// widens by `/api` itself: harmless in a route, where every rule sends to the same backends).
pub(crate) fn route_path(form: &IstioForm) -> RoutePath {
    if !form.is_exact() {
        return RoutePath::Regex;
    }
    let one = |a: &Alternative| match a {
        Alternative::One(m) => Some(m.clone()),
        Alternative::PrefixAndSuffix(..) => None,
    };
    let alternatives: Vec<Option<IstioMatch>> = form.alternatives.iter().map(one).collect();
    match alternatives.as_slice() {
        [] => RoutePath::Nothing,
        [Some(IstioMatch::Exact(path))] => RoutePath::Exact(path.clone()),
        [Some(IstioMatch::Presence)] => RoutePath::Prefix("/".to_string()),
        [Some(IstioMatch::Prefix(prefix))] if prefix.ends_with('/') => {
            let trimmed = prefix.trim_end_matches('/');
            RoutePath::Prefix(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
        }
        [Some(IstioMatch::Exact(a)), Some(IstioMatch::Prefix(b))]
        | [Some(IstioMatch::Prefix(b)), Some(IstioMatch::Exact(a))]
            if *b == format!("{a}/") =>
        {
            RoutePath::Prefix(a.clone())
        }
        _ => RoutePath::Regex,
    }
}

/// The literal a header regex matches, if it matches exactly one value.
pub(crate) fn route_header_literal(form: &IstioForm) -> Option<String> {
    match (form.is_exact(), form.alternatives.as_slice()) {
        (true, [Alternative::One(IstioMatch::Exact(value))]) => Some(value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(m: IstioMatch) -> Alternative {
        Alternative::One(m)
    }

    fn exact(path: &str) -> Alternative {
        one(IstioMatch::Exact(path.to_string()))
    }

    fn prefix(path: &str) -> Alternative {
        one(IstioMatch::Prefix(path.to_string()))
    }

    #[test]
    fn literals_prefixes_and_suffixes_are_exact() {
        let form = analyze("/books-bought", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![exact("/books-bought")]);
        assert!(form.is_exact());
        let form = analyze("/api/.*", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![prefix("/api/")]);
        let form = analyze("/api(/.*)?", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![exact("/api"), prefix("/api/")]);
        assert_eq!(route_path(&form), RoutePath::Prefix("/api".into()));
        let form = analyze(r"^/books\-bought$", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![exact("/books-bought")]);
        let form = analyze(".*", Domain::Path).unwrap();
        assert!(form.matches_anything());
        let form = analyze(".*\\.json", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![one(IstioMatch::Suffix(".json".into()))]);
        let form = analyze("Go-http-client/.*", Domain::HeaderValue).unwrap();
        assert_eq!(form.alternatives, vec![prefix("Go-http-client/")]);
        let form = analyze("/v[12]/.*", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![prefix("/v1/"), prefix("/v2/")]);
        assert!(form.is_exact());
    }

    #[test]
    fn article_regexes_are_not_expressible() {
        assert!(matches!(analyze(".*a-book.*new", Domain::Path), Err(Unexpressible::ManyWildcards)));
        assert!(matches!(
            analyze(".*-http-client/*.*", Domain::HeaderValue),
            Err(Unexpressible::Contains(s)) if s == "-http-client"
        ));
    }

    #[test]
    fn never_wider() {
        assert!(matches!(analyze("/api/.+", Domain::Path), Err(Unexpressible::NonEmptyTail(_))));
        assert!(matches!(analyze("/a.c", Domain::Path), Err(Unexpressible::SingleWildcard)));
        assert!(matches!(analyze("/a.*c", Domain::Path), Err(Unexpressible::Infix { .. })));
        assert!(analyze("ab.*bc", Domain::HeaderValue).is_err());
        let form = analyze("ab.*cd", Domain::HeaderValue).unwrap();
        assert_eq!(form.alternatives, vec![Alternative::PrefixAndSuffix("ab".into(), "cd".into())]);
        let form = analyze("/items/[0-9]+", Domain::Path).unwrap();
        assert!(!form.is_exact());
        assert_eq!(form.alternatives.len(), 10);
        let form = analyze("/ok|.*a.*b", Domain::Path).unwrap();
        assert_eq!(form.alternatives, vec![exact("/ok")]);
        assert!(!form.is_exact());
        assert!(matches!(analyze("a\\*", Domain::HeaderValue), Err(Unexpressible::Asterisk(_))));
        assert!(matches!(analyze("(", Domain::Path), Err(Unexpressible::Invalid(_))));
        assert!(matches!(analyze("\\bx", Domain::Path), Err(Unexpressible::Unsupported(_))));
    }

    #[test]
    fn path_domain() {
        assert_eq!(analyze("books", Domain::Path).unwrap().alternatives, vec![]);
        assert!(analyze(".+", Domain::Path).unwrap().matches_anything());
        assert_eq!(analyze("(?i)/a", Domain::Path).unwrap().alternatives, vec![exact("/A"), exact("/a")]);
    }

    #[test]
    fn literals_and_prefixes_take_the_fast_path() {
        for regex in
            ["", "/", "/a", "a", "/api/items", "/a b", "/é", "GET", "x-y", ".*", "/.*", "/api/.*", "a.*", "é.*"]
        {
            for domain in [Domain::Path, Domain::HeaderValue] {
                assert_eq!(analyze(regex, domain), expand_and_read(regex, domain), "{regex:?} {domain:?}");
            }
        }
    }

    #[test]
    fn pathological_input_is_bounded() {
        assert!(analyze(&"(a|b)".repeat(40), Domain::HeaderValue).is_err());
        assert!(analyze(&"(a|b)".repeat(40), Domain::Path).unwrap().alternatives.is_empty());
        assert!(analyze("((a*)*)*b", Domain::HeaderValue).is_ok());
        assert!(analyze("(a{100}){100}", Domain::HeaderValue).is_err());
        assert!(analyze(&"a".repeat(MAX_REGEX_LEN + 1), Domain::HeaderValue).is_err());
    }
}
