//! The footprint's extra load and the scale section: an AKS Istio add-on installation (ARM
//! emulator) in GatewayAPI mode with 200 apps, and the translation of 2,000 SMI objects.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mesh_crds::MeshInstallation;
use mesh_e2e::arm_emulator;
use mesh_e2e::scenario;
use mesh_provisioner::desired::Component;
use serde_json::{Value, json};

use super::{line, secs, wait_conditions};

/// The SMI object builders the translation's property tests and criterion bench use.
#[path = "../../../../provisioner/tests/translate_support/objects.rs"]
#[allow(dead_code)]
mod smi_objects;

/// The emulator's subscription.
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// An AKS Istio add-on installation on `cluster` of the emulator, GatewayAPI mode.
fn istio_installation(
    name: &str,
    cluster: &str,
    namespaces: &[String],
    apps: &[(String, String)],
    access: Vec<Value>,
    splits: Vec<Value>,
) -> anyhow::Result<MeshInstallation> {
    let value = json!({
        "apiVersion": "meshoperator.dev/v1alpha1",
        "kind": "MeshInstallation",
        "metadata": {"name": name},
        "spec": {
            "mesh": {"provider": "AksIstioAddon", "name": "istio"},
            "azure": {
                "subscriptionId": SUB, "resourceGroup": "bench-rg", "clusterName": cluster, "location": "eastus",
                "credential": {"clientSecretRef": {
                    "tenantId": arm_emulator::TENANT_ID, "clientId": arm_emulator::CLIENT_ID,
                    "secretName": "azure-sp"
                }}
            },
            "namespaces": namespaces.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "apps": apps.iter().map(|(ns, app)| json!({
                "name": app, "namespace": ns, "image": "nginx:1.27", "port": 8080
            })).collect::<Vec<_>>(),
            "traffic": {"mode": "GatewayAPI", "access": access, "splits": splits},
            "teardown": {"deleteNamespaces": true}
        }
    });
    Ok(serde_json::from_value(value)?)
}

struct Scale {
    namespaces: Vec<String>,
    apps: Vec<(String, String)>,
}

fn scale_shape() -> Scale {
    let namespaces: Vec<String> = (0..20).map(|n| format!("scale-{n:02}")).collect();
    let apps = (0..200).map(|i| (namespaces[i / 10].clone(), format!("app-{i:03}"))).collect();
    Scale { namespaces, apps }
}

fn scale_policies(shape: &Scale, weight: i64) -> (Vec<Value>, Vec<Value>) {
    let access = (0..64)
        .map(|i| {
            let (ns, dest) = &shape.apps[i * 3];
            let (src_ns, src) = &shape.apps[i * 3 + 1];
            json!({
                "name": format!("{dest}-access"), "namespace": ns, "destination": dest,
                "sources": [{"name": src, "namespace": src_ns}],
                "httpRoutes": [{"name": "api", "pathRegex": format!("/api/{dest}/.*"), "methods": ["GET", "POST"]}]
            })
        })
        .collect();
    let splits = (0..16)
        .map(|k| {
            let (ns, root) = &shape.apps[k * 10];
            let (_, a) = &shape.apps[k * 10 + 1];
            let (_, b) = &shape.apps[k * 10 + 2];
            let w = if k == 0 { weight } else { 50 };
            json!({
                "name": format!("{root}-split"), "namespace": ns, "service": root,
                "backends": [{"service": a, "weight": w}, {"service": b, "weight": 100 - w}]
            })
        })
        .collect();
    (access, splits)
}

/// The scale section's operator part.
pub async fn operator(client: &Client) -> anyhow::Result<()> {
    println!(
        "\n## scale: 200 apps, 64 access policies and 16 splits in GatewayAPI mode (AKS Istio add-on, ARM emulator)"
    );
    let shape = scale_shape();
    let (access, splits) = scale_policies(&shape, 50);
    let mi = istio_installation("scale", "bench-scale", &shape.namespaces, &shape.apps, access, splits)?;
    let bar = ["MeshReady", "NamespacesReady", "AppsReady", "TrafficReady"];
    let started = Instant::now();
    scenario::apply(client, &mi).await;
    let converged = wait_conditions(client, "scale", &bar, started).await?;
    line("converge (MeshReady, NamespacesReady, AppsReady, TrafficReady)", secs(converged));
    let (access, splits) = scale_policies(&shape, 0);
    let changed = istio_installation("scale", "bench-scale", &shape.namespaces, &shape.apps, access, splits)?;
    let started = Instant::now();
    scenario::apply(client, &changed).await;
    let reconverged = wait_conditions(client, "scale", &bar, started).await?;
    line("re-converge after one weight change (50/50 -> 0/100)", secs(reconverged));
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let now = api.get("scale").await?;
    let traffic_ready = now.status.iter().flat_map(|s| s.conditions.iter()).find(|c| c.type_ == "TrafficReady");
    line(
        "TrafficReady",
        traffic_ready
            .map(|c| format!("{:?} {}: {}", c.status, c.reason, c.message.lines().next().unwrap_or_default()))
            .unwrap_or_default(),
    );
    let mut traffic = 0;
    for kind in mesh_provisioner::plan::kinds::kinds_of(Component::Traffic) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let selector = format!(
            "{},{}=traffic",
            mesh_provisioner::labels::installation_selector("scale"),
            mesh_provisioner::labels::COMPONENT
        );
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            traffic += list.items.len();
        }
    }
    line("traffic objects the operator keeps for it (HTTPRoutes, AuthorizationPolicies)", traffic);
    if traffic == 0 {
        line(
            "note",
            "this build renders no traffic objects in GatewayAPI mode: the weight change re-converges the installation, not HTTPRoutes; the translator is measured below",
        );
    }
    Ok(())
}

/// 2,000 SMI objects over 200 apps in 20 namespaces: per app 4 HTTPRouteGroups, 5 TrafficTargets
/// (one per caller) and 1 TrafficSplit; with each app's Service and Deployment.
fn translation_input(weight: i64) -> mesh_provisioner::translate::TranslationInput {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use mesh_crds::smi::{
        HTTPMatch, HTTPRouteGroup, HTTPRouteGroupSpec, IdentityBinding, TrafficSplit, TrafficSplitBackend,
        TrafficSplitSpec, TrafficTarget, TrafficTargetRule, TrafficTargetSpec,
    };
    use smi_objects::{deployment, meta};
    let sa = |name: &str, ns: &str| IdentityBinding {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
    };
    let ns_of = |i: usize| format!("tr-{:02}", i / 10);
    let mut input = mesh_provisioner::translate::TranslationInput::default();
    for i in 0..200usize {
        let ns = ns_of(i);
        let app = format!("app-{i:03}");
        let labels = BTreeMap::from([("app".to_string(), app.clone())]);
        input.deployments.push(deployment(&app, &ns, &app, labels.clone()));
        input.services.push(Service {
            metadata: meta(&app, &ns),
            spec: Some(ServiceSpec {
                selector: Some(labels),
                ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        for g in 0..4 {
            input.http_route_groups.push(HTTPRouteGroup {
                metadata: meta(&format!("{app}-routes-{g}"), &ns),
                spec: HTTPRouteGroupSpec {
                    hosts: Vec::new(),
                    matches: vec![HTTPMatch {
                        name: "m".into(),
                        path_regex: Some(format!("/api/{app}/v{g}/.*")),
                        methods: vec!["GET".into()],
                        headers: None,
                    }],
                },
            });
        }
        for c in 1..=5usize {
            let caller = (i + c) % 200;
            input.traffic_targets.push(TrafficTarget {
                metadata: meta(&format!("{app}-from-{caller:03}"), &ns),
                spec: TrafficTargetSpec {
                    destination: sa(&app, &ns),
                    rules: vec![TrafficTargetRule {
                        kind: "HTTPRouteGroup".into(),
                        name: format!("{app}-routes-{}", c % 4),
                        matches: vec!["m".into()],
                    }],
                    sources: vec![sa(&format!("app-{caller:03}"), &ns_of(caller))],
                },
            });
        }
        let next = format!("app-{:03}", if i % 10 == 9 { i - 1 } else { i + 1 });
        let w = if i == 0 { weight } else { 80 };
        input.traffic_splits.push(TrafficSplit {
            metadata: meta(&format!("{app}-split"), &ns),
            spec: TrafficSplitSpec {
                service: format!("{app}.{ns}"),
                backends: vec![
                    TrafficSplitBackend { service: app.clone(), weight: w },
                    TrafficSplitBackend { service: next, weight: 100 - w },
                ],
            },
        });
    }
    input
}

async fn apply_values(client: &Client, objects: &[Value]) -> anyhow::Result<(usize, Vec<String>)> {
    let discovery = kube::discovery::Discovery::new(client.clone()).run().await?;
    let mut errors = Vec::new();
    let mut applied = 0;
    for value in objects {
        let object: DynamicObject = serde_json::from_value(value.clone())?;
        let gvk = object.types.as_ref().map(kube::core::GroupVersionKind::try_from).transpose()?;
        let Some(gvk) = gvk else { continue };
        let Some((resource, _)) = discovery.resolve_gvk(&gvk) else {
            errors.push(format!("{}: not served", gvk.kind));
            continue;
        };
        let api: Api<DynamicObject> = match object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.patch(&object.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&object)).await {
            Ok(_) => applied += 1,
            Err(e) => errors.push(format!("{}/{}: {e}", gvk.kind, object.name_any())),
        }
    }
    Ok((applied, errors))
}

/// The scale section's translation part.
pub async fn translation(client: &Client) -> anyhow::Result<()> {
    use mesh_provisioner::translate::{Target, translate};
    println!("\n## scale: translating 2,000 SMI objects over 200 apps (SMI -> Gateway API + Istio)");
    let input = translation_input(80);
    let smi = input.traffic_targets.len()
        + input.http_route_groups.len()
        + input.tcp_routes.len()
        + input.traffic_splits.len();
    let started = Instant::now();
    let translation = translate(&input, Target::Istio);
    let translated_in = started.elapsed();
    let objects = translation.objects().map_err(|e| anyhow!("{e}"))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..20 {
        let name = format!("tr-{n:02}");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        namespaces.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&ns)).await?;
    }
    let started = Instant::now();
    let (applied, errors) = apply_values(client, &objects).await?;
    let applied_in = started.elapsed();

    let changed_input = translation_input(0);
    let started = Instant::now();
    let changed = translate(&changed_input, Target::Istio);
    let changed_objects = changed.objects().map_err(|e| anyhow!("{e}"))?;
    let before: std::collections::HashSet<String> = objects.iter().map(Value::to_string).collect();
    let diff: Vec<Value> = changed_objects.iter().filter(|o| !before.contains(&o.to_string())).cloned().collect();
    let retranslated_in = started.elapsed();
    let started = Instant::now();
    let (reapplied, reerrors) = apply_values(client, &diff).await?;
    let reapplied_in = started.elapsed();

    line("SMI objects in", smi);
    line("objects out (HTTPRoutes + AuthorizationPolicies)", objects.len());
    line("notifications", translation.notifications.len());
    line("translate", format!("{:.0} ms", translated_in.as_secs_f64() * 1000.0));
    line(
        "server-side apply of the output, one client, sequential",
        format!("{} ({applied} applied, {} refused)", secs(applied_in), errors.len()),
    );
    for error in errors.iter().take(3) {
        line("  refused", error);
    }
    line(
        "one weight change: re-translate and diff",
        format!("{:.0} ms, {} object(s) changed", retranslated_in.as_secs_f64() * 1000.0, diff.len()),
    );
    line(
        "one weight change: apply the changed objects",
        format!("{} ({reapplied} applied, {} refused)", secs(reapplied_in), reerrors.len()),
    );
    Ok(())
}

/// Enrols 1,000 more namespaces (the footprint section).
pub async fn footprint_extra(client: &Client) -> anyhow::Result<(usize, usize)> {
    // 1,000 namespaces in four installations of 250 (the CRD allows 256 each); their apps are the
    // 200 of the `scale` installation (another 20 namespaces).
    let mut names = Vec::new();
    for m in 0..4 {
        let namespaces: Vec<String> = (0..250).map(|n| format!("fp-{m}-{n:03}")).collect();
        let name = format!("footprint-{m}");
        let mi = istio_installation(&name, "bench-scale", &namespaces, &[], Vec::new(), Vec::new())?;
        scenario::apply(client, &mi).await;
        names.push(name);
    }
    let started = Instant::now();
    for name in &names {
        wait_conditions(client, name, &["NamespacesReady"], started).await?;
    }
    line("1,000 extra namespaces enrolled in", secs(started.elapsed()));
    Ok((1000, 200))
}
