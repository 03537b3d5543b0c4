//! Golden tests of the SMI translation: every `tests/fixtures/translate/<case>/input.yaml` is
//! translated and compared with `expected.yaml` (the objects) and `notifications.txt`.
//! `UPDATE_GOLDEN=1 cargo test -p mesh-provisioner --test translate_golden` rewrites them.
//! A first line `# target: gateway-api` selects that target (default: istio); a first line
//! `# overrides: FILE` translates with the narrowing overrides of `FILE` (the format of
//! `meshctl translate --overrides`).

use std::fs;
use std::path::{Path, PathBuf};

use mesh_provisioner::translate::limits::validate_route;
use mesh_provisioner::translate::listed::{Listed, Workload};
use mesh_provisioner::translate::{Target, TranslateOptions, TranslationInput, notification_line, translate_with};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/translate");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.join("input.yaml").exists())
        .collect();
    cases.sort();
    cases
}

/// Translates a case: (objects as YAML, notification lines).
fn run(case: &Path) -> (String, String) {
    let text = fs::read_to_string(case.join("input.yaml")).expect("input.yaml");
    let target = if text.starts_with("# target: gateway-api") { Target::GatewayApi } else { Target::Istio };
    let overrides = match text.lines().next().and_then(|l| l.strip_prefix("# overrides: ")) {
        Some(file) => {
            let spec: mesh_crds::TranslationSpec =
                serde_yaml::from_str(&fs::read_to_string(case.join(file)).expect("overrides file")).expect("overrides");
            spec.overrides
        }
        None => Vec::new(),
    };
    let options = TranslateOptions { target, overrides, ..TranslateOptions::default() };
    let translate = |input: &TranslationInput, _target: Target| translate_with(input, &options);
    let (input, mut notifications) =
        TranslationInput::from_yaml_str(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let translation = translate(&input, target);

    // Invariants every case must hold.
    for route in &translation.http_routes {
        let problems = validate_route(route);
        assert!(problems.is_empty(), "{}: invalid route: {problems:?}", case.display());
    }
    for policy in &translation.authorization_policies {
        match policy.spec.action.as_deref() {
            Some("ALLOW") if policy.spec.selector.is_none() => {
                assert!(policy.spec.rules.is_empty(), "a namespace-wide ALLOW is the baseline, admitting nothing")
            }
            Some("ALLOW") => {
                assert!(policy.spec.selector.as_ref().is_some_and(|s| !s.match_labels.is_empty()));
                for rule in &policy.spec.rules {
                    assert!(!rule.from.is_empty() && rule.from.iter().all(|f| !f.source.principals.is_empty()));
                }
            }
            Some("DENY") => {}
            other => panic!("{}: unexpected action {other:?}", case.display()),
        }
    }
    let again = translate(&input, target);
    assert_eq!(
        again.to_yaml().expect("yaml"),
        translation.to_yaml().expect("yaml"),
        "{}: not deterministic",
        case.display()
    );
    // The operator decodes the workloads it lists with only what `translate::listed` keeps.
    let listed = translate(&as_listed(&input), target);
    assert_eq!(
        (listed.to_yaml().expect("yaml"), &listed.notifications),
        (translation.to_yaml().expect("yaml"), &translation.notifications),
        "{}: translating the workloads as `translate::listed` decodes them differs",
        case.display()
    );

    notifications.extend(translation.notifications.iter().cloned());
    notifications.sort();
    notifications.dedup();
    let lines: String = notifications.iter().map(|n| notification_line(n) + "\n").collect();
    (translation.to_yaml().expect("yaml"), lines)
}

/// `input` with every workload sent through JSON and decoded as [`Listed`], as the operator reads
/// the workloads it lists.
fn as_listed(input: &TranslationInput) -> TranslationInput {
    fn through<K: Workload + serde::Serialize>(objects: &[K]) -> Vec<K> {
        let decode = |object: &K| {
            let json = serde_json::to_string(object).expect("encodes");
            serde_json::from_str::<Listed<K>>(&json).expect("decodes").into_inner()
        };
        objects.iter().map(decode).collect()
    }
    TranslationInput {
        deployments: through(&input.deployments),
        stateful_sets: through(&input.stateful_sets),
        jobs: through(&input.jobs),
        pods: through(&input.pods),
        ..input.clone()
    }
}

#[test]
fn golden_fixtures() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = cases();
    assert!(cases.len() >= 10, "expected the fixture cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let (objects, notifications) = run(case);
        for (file, actual) in [("expected.yaml", &objects), ("notifications.txt", &notifications)] {
            let path = case.join(file);
            if update {
                fs::write(&path, actual).expect("write golden");
                continue;
            }
            let expected = fs::read_to_string(&path).unwrap_or_default();
            if &expected != actual {
                failures.push(format!("{}:\n{}", path.display(), diff(&expected, actual)));
            }
        }
    }
    assert!(failures.is_empty(), "golden files differ (UPDATE_GOLDEN=1 to regenerate):\n{}", failures.join("\n"));
}

/// A small line diff: the first differing lines with context.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    let mut out = String::new();
    for i in first.saturating_sub(3)..(first + 8).min(e.len().max(a.len())) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("   {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("-  {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+  {y}\n"));
                }
            }
        }
    }
    out
}
