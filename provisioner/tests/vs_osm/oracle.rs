//! Running the OSM oracle (`e2e/osm-oracle`, OSM v1.2.4's own code): built with its script (a
//! warm Go cache makes that seconds), fed all inputs at once as JSON lines.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request, in the oracle's format.
#[derive(Clone, Debug, Serialize)]
pub struct OracleRequest {
    pub source: String,
    pub workload: String,
    pub port: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

/// One input.
#[derive(Serialize)]
pub struct Job {
    pub id: String,
    pub seed: u64,
    pub objects: Vec<Value>,
    pub requests: Vec<OracleRequest>,
}

/// Go writes empty lists as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub verdict: String,
    pub allowed_orders: usize,
    pub orders: usize,
    pub reasons: std::collections::BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub workload: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub traffic_targets: Vec<String>,
    pub orders: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OracleResult {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub error: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub destinations: Vec<Destination>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub decisions: Vec<Decision>,
}

/// Builds the oracle (into `MESH_E2E_BIN_DIR`, default `~/.cache/mesh-operator/bin`) and returns its path.
pub fn build_oracle() -> PathBuf {
    let dir = std::env::var_os("MESH_E2E_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/mesh-operator/bin")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/osm-oracle/build.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e} (needs bash and go)", script.display()));
    assert!(status.success(), "building the OSM oracle with {} failed", script.display());
    dir.join("osm-oracle")
}

/// Runs every job through one `osm-oracle serve` process; results in job order.
pub fn run(oracle: &PathBuf, jobs: &[Job]) -> Vec<OracleResult> {
    let mut child = Command::new(oracle)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", oracle.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines: Vec<String> = jobs.iter().map(|j| serde_json::to_string(j).expect("jobs serialize")).collect();
    let writer = std::thread::spawn(move || {
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("writing to the oracle");
            stdin.write_all(b"\n").expect("writing to the oracle");
        }
    });
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let results: Vec<OracleResult> = stdout
        .lines()
        .map(|l| serde_json::from_str(&l.expect("reading the oracle")).expect("the oracle writes JSON results"))
        .collect();
    writer.join().expect("writer thread");
    assert!(child.wait().expect("oracle exit").success(), "the oracle failed");
    assert_eq!(results.len(), jobs.len(), "one oracle result per input");
    for (job, result) in jobs.iter().zip(&results) {
        assert_eq!(job.id, result.id, "oracle results out of order");
        assert!(result.error.is_empty(), "oracle error on {}: {}", job.id, result.error);
        assert_eq!(result.decisions.len(), job.requests.len(), "one decision per request on {}", job.id);
    }
    results
}
