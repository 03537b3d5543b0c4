//! The samples of this source tree (`samples/*.yaml`) and the promise each invalid one makes
//! (`samples/invalid/*.yaml`), for the tests that hold them to it.
//!
//! An invalid sample states in its comments what a person applying it must be told:
//! `# expect-error: <text>`, a text the error must contain, and `# passes-admission` on those the
//! API server admits (the CRD cannot see the problem) and the operator refuses. The schema tests,
//! the operator's validation tests and the e2e suites all read them here, so they check one
//! promise and a sample without one is an error naming its file rather than a silent skip.
//!
//! The paths are those of the source tree this crate was built from: the module serves tests and
//! tools run from a checkout, not an installed operator.

use std::path::{Path, PathBuf};

/// The directory of the samples in the source tree.
pub fn dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().map_or_else(|| crate_dir.join("../samples"), |workspace| workspace.join("samples"))
}

/// Why the samples could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no `# expect-error:` comment saying what a person applying it must be told")]
    NoExpectedError { path: PathBuf },
}

/// One invalid sample and its promise.
#[derive(Clone, Debug)]
pub struct InvalidSample {
    pub path: PathBuf,
    /// Its YAML, comments included.
    pub text: String,
    /// The text the error a person sees must contain.
    pub expected_error: String,
    /// The API server admits it; the operator refuses it.
    pub passes_admission: bool,
}

/// Every invalid sample, by file name.
pub fn invalid() -> Result<Vec<InvalidSample>, SampleError> {
    yaml_files(&dir().join("invalid"))?.into_iter().map(read_invalid).collect()
}

fn read_invalid(path: PathBuf) -> Result<InvalidSample, SampleError> {
    let text = std::fs::read_to_string(&path).map_err(|source| SampleError::Read { path: path.clone(), source })?;
    let Some(expected_error) = expected_error(&text) else {
        return Err(SampleError::NoExpectedError { path });
    };
    let expected_error = expected_error.to_string();
    let passes_admission = text.lines().any(|line| line.trim() == "# passes-admission");
    Ok(InvalidSample { path, text, expected_error, passes_admission })
}

/// The text of a sample's `# expect-error:` comment.
pub fn expected_error(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("# expect-error:")).map(str::trim).filter(|t| !t.is_empty())
}

/// The `*.yaml` files directly in `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, SampleError> {
    let read_error = |source| SampleError::Read { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_error_is_the_comment_text_trimmed() {
        let text = "---\n# passes-admission\n# expect-error:  spec.apps[0].port  \nkind: MeshInstallation\n";
        assert_eq!(expected_error(text), Some("spec.apps[0].port"));
        assert_eq!(expected_error("# expect-error:   \nkind: X\n"), None, "an empty promise promises nothing");
        assert_eq!(expected_error("kind: X\n"), None);
    }

    #[test]
    fn a_sample_without_a_promise_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("mesh-crds-samples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("silent.yaml");
        std::fs::write(&path, "# passes-admission\nkind: MeshInstallation\n").expect("write");
        let error = read_invalid(path).expect_err("no promise").to_string();
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(error.contains("silent.yaml") && error.contains("expect-error"), "{error}");
    }

    #[test]
    fn every_invalid_sample_makes_a_promise() {
        let samples = invalid().unwrap_or_else(|e| panic!("{e}"));
        assert!(samples.len() >= 10, "found {} invalid samples", samples.len());
        assert!(samples.iter().any(|s| s.passes_admission) && samples.iter().any(|s| !s.passes_admission));
    }
}
