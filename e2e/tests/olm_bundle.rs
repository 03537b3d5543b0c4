//! The committed OLM bundle (`bundle/`) passes the operator-framework's own validators with 0
//! errors: `e2e/bundle-validate/`, a Go program on `github.com/operator-framework/api` running the
//! default bundle validators and the `operatorframework` suite, as `operator-sdk bundle validate
//! ./bundle --select-optional suite=operatorframework` does. A bundle broken on purpose fails it,
//! so the check can fail. No cluster needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the validator once per test binary (Go's build cache makes a rebuild take ~1 s).
fn validator() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bundle-validate");
        let started = std::time::Instant::now();
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(workspace().join("e2e/bundle-validate"))
            .status()
            .expect("`go` runs (the README's test command needs Go 1.26+)");
        assert!(status.success(), "building e2e/bundle-validate failed");
        eprintln!("bundle-validate built in {:.1}s", started.elapsed().as_secs_f64());
        out
    })
}

fn validate(dir: &Path) -> Output {
    let output = Command::new(validator()).arg(dir).output().expect("bundle-validate runs");
    eprintln!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_committed_bundle_passes_the_operator_framework_validators_with_no_errors() {
    let output = validate(&workspace().join("bundle"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the bundle has validation errors:\n{stdout}");
    assert!(stdout.contains("(mesh-operator.v0.1.0): 0 errors"), "{stdout}");
    assert!(!stdout.contains("ERROR"), "{stdout}");
    // The channel follows OLM's naming practice: no warning about it.
    assert!(!stdout.contains("naming convention"), "{stdout}");
}

#[test]
fn a_bundle_whose_csv_owns_a_crd_it_does_not_ship_fails_the_validators() {
    let broken = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-bundle");
    let _ = std::fs::remove_dir_all(&broken);
    copy_dir(&workspace().join("bundle"), &broken);
    let csv = broken.join("manifests/mesh-operator.v0.1.0.clusterserviceversion.yaml");
    let text = std::fs::read_to_string(&csv).expect("csv");
    let owned = "  - name: meshinstallations.meshoperator.dev";
    assert!(text.contains(owned), "the CSV lists the CRD it owns");
    std::fs::write(&csv, text.replacen(owned, "  - name: meshinstallations.elsewhere.example.com", 1)).expect("write");
    let output = validate(&broken);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ERROR"), "{stdout}");
    assert!(stdout.contains("owned CRD \"elsewhere.example.com/v1alpha1"), "the error names the CRD: {stdout}");
}
