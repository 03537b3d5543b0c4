//! The ARM client against arbitrary answers: any status, `Retry-After` in every form (huge,
//! negative, dates, garbage), polling URLs to other hosts, and bodies from valid ARM JSON to random
//! bytes, served by the ARM emulator on loopback (fault injection of raw answers). Every call must
//! end — no panic, no hang — within a bounded time, and every wait it hands back is capped.

use std::sync::Arc;
use std::time::Duration;

use mesh_crds::{AzureCloud, AzureCredential, AzureSpec, ClientSecretRef, ImageImport, ImportMode};
use mesh_e2e::arm_emulator::{self, ArmEmulator, FaultKind};
use mesh_provisioner::azure::acr::{self, RegistryRef};
use mesh_provisioner::azure::aks::{self, ClusterRef};
use mesh_provisioner::azure::client::{self, MAX_RETRY_AFTER};
use mesh_provisioner::azure::{
    ArmClient, ArmError, EndpointOverrides, Endpoints, PollOutcome, PollingKind, Target, credential,
};
use proptest::prelude::*;

const SUB: &str = "00000000-0000-0000-0000-000000000000";
/// Longest a single client call may take here: a few requests with inline retries capped at 50 ms.
const CALL_BOUND: Duration = Duration::from_secs(20);

fn spec() -> AzureSpec {
    AzureSpec {
        cloud: AzureCloud::AzurePublicCloud,
        subscription_id: SUB.into(),
        resource_group: "rg".into(),
        cluster_name: "c".into(),
        location: "eastus".into(),
        credential: AzureCredential::ClientSecretRef(ClientSecretRef {
            tenant_id: arm_emulator::TENANT_ID.into(),
            client_id: arm_emulator::CLIENT_ID.into(),
            secret_name: "unused".into(),
            key: None,
        }),
    }
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,30}",
        "-[0-9]{1,12}",
        Just("1000000000000".to_string()),
        Just("18446744073709551616".to_string()),
        Just("Wed, 01 Jan 2200 00:00:00 GMT".to_string()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_string()),
        "https://127\\.0\\.0\\.[1-3]:[0-9]{1,5}/[a-zA-Z0-9/?=._-]{0,40}",
        "https://localhost/[a-z/]{0,20}",
        "[ -~]{0,60}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("retry-after"),
        Just("retry-after-ms"),
        Just("x-ms-retry-after-ms"),
        Just("azure-asyncoperation"),
        Just("location"),
        Just("etag"),
        Just("content-type"),
    ];
    proptest::collection::vec((name.prop_map(str::to_string), header_value()), 0..5)
}

fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(|s| serde_json::json!({"status": s}).to_string()),
        ("[ -~]{0,20}", "[ -~]{0,80}")
            .prop_map(|(c, m)| serde_json::json!({"error": {"code": c, "message": m}}).to_string()),
        Just(
            r#"{"properties":{"provisioningState":"Updating","addonProfiles":{"openServiceMesh":{"enabled":"yes"}}}}"#
                .to_string()
        ),
        Just(r#"{"properties":{"provisioningState":"Succeeded"},"etag":12}"#.to_string()),
        Just(r#"{"status":"Failed","error":null}"#.to_string()),
        Just(r#"{"value":[{"properties":{"meshRevisions":[{"revision":"asm-99999999999999999999-1"}]}}]}"#.to_string()),
        Just("[".repeat(2000)),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        json_text().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// A status hyper can send as a final answer.
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(201),
        Just(202),
        Just(204),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(409),
        Just(412),
        Just(429),
        Just(500),
        Just(503),
        200u16..600,
    ]
}

fn check_waits(result: &Result<(), ArmError>) {
    if let Err(error) = result {
        assert!(error.retry_after().is_none_or(|d| d <= MAX_RETRY_AFTER), "uncapped wait in {error}");
        // Classification and messages never panic either.
        let _ = (error.class(), error.code(), error.condition_message());
    }
}

async fn one_call(client: &ArmClient, emulator: &ArmEmulator, which: u8) -> Result<(), ArmError> {
    let cluster = ClusterRef::from_spec(&spec());
    match which % 5 {
        0 => aks::get(client, &cluster).await.map(|_| ()),
        1 => aks::update(client, &cluster, "enabling", |c| c.set_osm_addon(true)).await.map(|_| ()),
        2 => {
            let registry = RegistryRef::new(SUB, "rg", "acr");
            let image = ImageImport { source: "docker.io/library/nginx:1".into(), target: "nginx:1".into() };
            acr::import(client, &registry, &image, ImportMode::NoForce).await.map(|_| ())
        }
        3 => aks::mesh_revisions(client, SUB, "eastus").await.map(|_| ()),
        _ => {
            let url = format!(
                "{}/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/eastus/operations/x?api-version=2024-09-01",
                emulator.endpoint()
            );
            let kind = if which.is_multiple_of(2) { PollingKind::Location } else { PollingKind::AzureAsyncOperation };
            match client.poll(&url, kind, "polling", Target::ManagedCluster).await? {
                PollOutcome::Running(wait) => {
                    assert!(wait <= MAX_RETRY_AFTER, "poll wait {wait:?} is uncapped");
                    Ok(())
                }
                PollOutcome::Succeeded => Ok(()),
                PollOutcome::Failed(error) => Err(error),
            }
        }
    }
}

#[test]
fn arbitrary_arm_answers_never_panic_hang_or_yield_uncapped_waits() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (emulator, client) = runtime.block_on(async {
        let emulator = ArmEmulator::start(None).await;
        emulator.add_cluster(SUB, "rg", "c", "eastus", "1.30.4");
        emulator.add_registry(SUB, "rg", "acr", "eastus");
        let overrides = EndpointOverrides {
            arm_endpoint: Some(emulator.endpoint().to_string()),
            authority_host: Some(emulator.endpoint().to_string()),
        };
        let endpoints = Endpoints::resolve(AzureCloud::AzurePublicCloud, &overrides);
        let transport = client::transport().expect("transport");
        let credential =
            credential::credential(&spec(), &endpoints, Some(arm_emulator::CLIENT_SECRET.into()), transport.clone())
                .expect("credential");
        let options = client::client_options_capped(transport, Duration::from_millis(50));
        let client = ArmClient::with_options(&endpoints, credential, options).expect("client");
        (emulator, Arc::new(client))
    });
    let config = ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() };
    let calls = std::sync::atomic::AtomicU32::new(0);
    proptest!(config, |(status in status(), headers in headers(), body in body(), which in any::<u8>(), times in 1u32..6)| {
        emulator.clear_faults();
        emulator.inject("*", "/subscriptions/", FaultKind::Raw { status, headers: headers.clone(), body: body.clone() }, times);
        let started = std::time::Instant::now();
        let result = runtime.block_on(async {
            tokio::time::timeout(CALL_BOUND, one_call(&client, &emulator, which)).await
        });
        let elapsed = started.elapsed();
        prop_assert!(result.is_ok(), "call {which} hung past {CALL_BOUND:?}: status {status} headers {headers:?}");
        if let Ok(result) = &result {
            check_waits(result);
        }
        prop_assert!(elapsed < CALL_BOUND);
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let calls = calls.into_inner();
    let requests = emulator.requests().len();
    eprintln!("ARM fuzz: {calls} calls, {requests} requests served by the emulator (token requests included)");
    assert!(requests as u32 >= calls, "every call reached the emulator");
}
