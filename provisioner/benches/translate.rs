//! Benchmark of the SMI translation: `cargo bench -p mesh-provisioner --bench translate`.
//!
//! Translates 1k, 10k and 100k SMI objects (with their Services and Deployments) and prints the
//! time (median and minimum of several runs, one thread) and the peak heap allocated during a
//! translation (a counting global allocator), plus the number of allocations.
//! The allocator underneath is mimalloc, the global allocator of the operator and meshctl
//! binaries: the bench measures the translation as it ships.
//! `TRANSLATE_BENCH_SIZES=1000,5000` overrides the sizes.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use mesh_crds::smi::{
    HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TCPMatch, TCPRoute, TCPRouteSpec, TrafficSplit,
    TrafficSplitBackend, TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
};
use mesh_provisioner::translate::{Target, TranslationInput, translate};
use mimalloc::MiMalloc;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Counting costs time (atomics on every allocation): on only for the memory run.
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to mimalloc (as the binaries use it); only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { MiMalloc.alloc(layout) };
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            let _ =
                CURRENT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(layout.size())));
        }
    }

    /// mimalloc's own (often in place, as in the binaries); counted as one allocation.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() && COUNTING.load(Ordering::Relaxed) {
            let old = layout.size();
            let _ = CURRENT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_add(new_size).saturating_sub(old))
            });
            PEAK.fetch_max(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(ns.to_string()), ..Default::default() }
}

fn sa(name: &str, ns: &str) -> IdentityBinding {
    IdentityBinding { kind: "ServiceAccount".into(), name: name.into(), namespace: Some(ns.into()) }
}

/// An input with (about) `smi` SMI objects: per app a TrafficTarget and an HTTPRouteGroup, every
/// 4th app a TCPRoute, every 5th a TrafficSplit; ten apps per namespace, each with a Service and
/// a Deployment.
fn input(smi: usize) -> TranslationInput {
    let mut input = TranslationInput::default();
    let mut count = 0;
    let mut i: usize = 0;
    while count < smi {
        let ns = format!("ns-{}", i / 10);
        let app = format!("app-{i}");
        let labels = BTreeMap::from([("app".to_string(), app.clone()), ("version".to_string(), "v1".to_string())]);
        input.deployments.push(Deployment {
            metadata: meta(&app, &ns),
            spec: Some(DeploymentSpec {
                selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: Some(PodSpec {
                        service_account_name: Some(app.clone()),
                        containers: vec![Container { name: "app".into(), ..Default::default() }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut ports = vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }];
        if i.is_multiple_of(4) {
            ports.push(ServicePort {
                name: Some("db".into()),
                port: 3306,
                app_protocol: Some("tcp".into()),
                ..Default::default()
            });
        }
        input.services.push(Service {
            metadata: meta(&app, &ns),
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), app.clone())])),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        });
        input.http_route_groups.push(HTTPRouteGroup {
            metadata: meta(&format!("{app}-routes"), &ns),
            spec: HTTPRouteGroupSpec {
                hosts: Vec::new(),
                matches: vec![
                    HTTPMatch {
                        name: "read".into(),
                        path_regex: Some(format!("/api/{app}/items")),
                        methods: vec!["GET".into()],
                        headers: None,
                    },
                    HTTPMatch {
                        name: "write".into(),
                        path_regex: Some(format!("/api/{app}/.*")),
                        methods: vec!["POST".into(), "PUT".into()],
                        headers: None,
                    },
                    HTTPMatch {
                        name: "client".into(),
                        path_regex: Some("/books-bought".into()),
                        methods: vec!["GET".into()],
                        headers: Some(vec![
                            BTreeMap::from([("user-agent".to_string(), "Go-http-client/.*".to_string())]),
                            BTreeMap::from([("client-app".to_string(), format!("app-{}", i.saturating_sub(1)))]),
                        ]),
                    },
                ],
            },
        });
        let mut rules = vec![TrafficTargetRule {
            kind: "HTTPRouteGroup".into(),
            name: format!("{app}-routes"),
            matches: vec!["read".into(), "write".into(), "client".into()],
        }];
        count += 2;
        if i.is_multiple_of(4) {
            input.tcp_routes.push(TCPRoute {
                metadata: meta(&format!("{app}-db"), &ns),
                spec: TCPRouteSpec { matches: TCPMatch { name: None, ports: vec![3306] } },
            });
            rules.push(TrafficTargetRule { kind: "TCPRoute".into(), name: format!("{app}-db"), matches: Vec::new() });
            count += 1;
        }
        input.traffic_targets.push(TrafficTarget {
            metadata: meta(&app, &ns),
            spec: TrafficTargetSpec {
                destination: sa(&app, &ns),
                rules,
                sources: vec![
                    sa(&format!("app-{}", i.saturating_sub(1)), &format!("ns-{}", i.saturating_sub(1) / 10)),
                    sa("gateway", "ingress"),
                ],
            },
        });
        if i % 5 == 4 && count < smi {
            input.traffic_splits.push(TrafficSplit {
                metadata: meta(&format!("{app}-split"), &ns),
                spec: TrafficSplitSpec {
                    service: format!("{app}.{ns}"),
                    backends: vec![
                        TrafficSplitBackend { service: app.clone(), weight: 90 },
                        TrafficSplitBackend { service: format!("app-{}", i - 1), weight: 10 },
                    ],
                },
            });
            count += 1;
        }
        i += 1;
    }
    input
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of this thread (user + system), from /proc, in clock ticks (1/100 s on Linux).
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("TRANSLATE_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    println!("SMI translation benchmark (target istio, one thread)");
    println!(
        "{:>8} {:>9} {:>9} {:>8} {:>8} {:>11} {:>11} {:>11} {:>10} {:>12}",
        "SMI", "services", "workloads", "routes", "policies", "median", "min", "cpu/run", "peak heap", "allocations"
    );
    let mut previous: Option<(usize, Duration)> = None;
    for smi in sizes {
        let input = input(smi);
        let runs = if smi >= 100_000 { 3 } else { 7 };
        let mut times = Vec::new();
        let mut outputs = (0, 0);
        let cpu_before = thread_cpu_ticks();
        for _ in 0..runs {
            let start = Instant::now();
            let translation = black_box(translate(black_box(&input), Target::Istio));
            times.push(start.elapsed());
            outputs = (translation.http_routes.len(), translation.authorization_policies.len());
            drop(translation);
        }
        let cpu_per_run =
            cpu_before.zip(thread_cpu_ticks()).map(|(before, after)| (after - before) as f64 * 10.0 / runs as f64);
        // One more run for memory: the highest number of bytes allocated during it and still
        // live (translate frees nothing it did not allocate, so the count starts at zero).
        CURRENT.store(0, Ordering::Relaxed);
        PEAK.store(0, Ordering::Relaxed);
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        let translation = black_box(translate(black_box(&input), Target::Istio));
        COUNTING.store(false, Ordering::Relaxed);
        let (peak, allocations) = (PEAK.load(Ordering::Relaxed), ALLOCATIONS.load(Ordering::Relaxed));
        drop(translation);
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{:>8} {:>9} {:>9} {:>8} {:>8} {:>8.1} ms {:>8.1} ms {:>8} ms {:>6.1} MiB {:>12}",
            smi,
            input.services.len(),
            input.deployments.len(),
            outputs.0,
            outputs.1,
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            cpu_per_run.map_or("?".to_string(), |c| format!("{c:.0}")),
            mib(peak),
            allocations
        );
        if let Some((n, t)) = previous {
            let growth = (median.as_secs_f64() / t.as_secs_f64()) / (smi as f64 / n as f64);
            println!("{:>8} time growth vs {n}: {growth:.2}× linear", "");
        }
        previous = Some((smi, median));
    }
    if let Some(kib) = vm_hwm_kib() {
        println!("process VmHWM (inputs included): {:.1} MiB", kib as f64 / 1024.0);
    }
}
