//! `meshctl status [NAME]`: an installation as a tree — mesh, images, namespaces, apps, ingress,
//! traffic, Azure operations — with each condition, and what is not ready and why.
//!
//! Pure parts ([`StatusView::of`], [`render_text`], [`condition_changes`]) are separate from the
//! API reads ([`fetch`], [`wait_ready`]), so the output is tested from fixtures (golden text).

use std::io::Write;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::{Client, ResourceExt};
use mesh_crds::{Condition, ConditionStatus, MeshInstallation, MeshProvider, TrafficMode, condition_type as ct};
use serde::Serialize;

use super::exit;

/// Conditions in the order the tree shows them, with the section each belongs to.
const SECTIONS: [(&str, &str, &str); 7] = [
    ("mesh", ct::MESH_READY, "mesh"),
    ("images", ct::IMAGES_IMPORTED, "images"),
    ("namespaces", ct::NAMESPACES_READY, "namespaces"),
    ("apps", ct::APPS_READY, "apps"),
    ("ingress", ct::INGRESS_READY, "ingress"),
    ("traffic", ct::TRAFFIC_READY, "traffic"),
    ("azure operations", "", ""),
];

/// One condition as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Whether this condition is as it should be (Degraded: False; the others: True).
    pub ok: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Last transition.
    pub last_transition_time: String,
}

/// One section of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionView {
    /// mesh, images, namespaces, apps, ingress, traffic or azure operations.
    pub name: String,
    /// What the spec asks for, in one line.
    pub summary: String,
    /// The section's condition, when the operator reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionView>,
    /// `ready/total` workloads from `status.components`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workloads: Option<String>,
    /// Detail lines (what is not ready, notifications, operations).
    pub details: Vec<String>,
}

/// What `meshctl status` shows of one installation (also its `-o json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Name.
    pub name: String,
    /// Ready is True and describes the current generation.
    pub ready: bool,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// Being deleted: the teardown step reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teardown_step: Option<String>,
    /// Ready and Degraded.
    pub overall: Vec<ConditionView>,
    /// The tree.
    pub sections: Vec<SectionView>,
    /// Every condition that is not as it should be, as `Type (Reason): message`.
    pub not_ready: Vec<String>,
}

fn condition_view(c: &Condition) -> ConditionView {
    let status = match c.status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    };
    let ok =
        if c.type_ == ct::DEGRADED { c.status == ConditionStatus::False } else { c.status == ConditionStatus::True };
    ConditionView {
        type_: c.type_.clone(),
        status: status.to_string(),
        ok,
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn section_summary(mi: &MeshInstallation, section: &str) -> String {
    let spec = &mi.spec;
    match section {
        "mesh" => {
            let mesh = &spec.mesh;
            let provider = match mesh.provider {
                MeshProvider::SelfHosted => format!("self-hosted OSM {}", mesh.osm_version()),
                MeshProvider::AksAddon => "AKS OSM add-on".to_string(),
                MeshProvider::AksIstioAddon => {
                    let revision = mesh.istio.as_ref().and_then(|i| i.revision.clone());
                    format!("AKS Istio add-on{}", revision.map(|r| format!(" {r}")).unwrap_or_default())
                }
            };
            let mut addons = Vec::new();
            if mesh.provider == MeshProvider::SelfHosted {
                for (on, name) in [
                    (mesh.addons.prometheus, "prometheus"),
                    (mesh.addons.grafana, "grafana"),
                    (mesh.addons.jaeger, "jaeger"),
                ] {
                    if on {
                        addons.push(name);
                    }
                }
            }
            let addons = if addons.is_empty() { String::new() } else { format!(", add-ons {}", addons.join(", ")) };
            format!("{provider} \"{}\" in {}{addons}", mesh.name, mesh.control_plane_namespace())
        }
        "images" => match &spec.registry {
            Some(registry) => {
                let cloud = spec.azure.as_ref().map(|a| a.cloud).unwrap_or_default();
                format!("{} into {}", plural(registry.images.len(), "image", "images"), registry.login_server(cloud))
            }
            None => "none requested".to_string(),
        },
        "namespaces" => {
            let names: Vec<&str> = spec.namespaces.iter().map(|n| n.name.as_str()).collect();
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        }
        "apps" => {
            let names: Vec<String> = spec.apps.iter().map(|a| format!("{}/{}", a.namespace, a.name)).collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                format!("{}: {}", plural(names.len(), "app", "apps"), names.join(", "))
            }
        }
        "ingress" => match &spec.ingress {
            None => "not requested".to_string(),
            Some(ingress) => {
                let kind = if spec.traffic.mode == TrafficMode::GatewayApi { "Gateway" } else { "ingress-nginx" };
                let rules: Vec<String> = ingress
                    .rules
                    .iter()
                    .map(|r| {
                        let host = if r.host.is_empty() { "*" } else { r.host.as_str() };
                        format!("{host}{} -> {}/{}:{}", r.path, r.backend.namespace, r.backend.service, r.backend.port)
                    })
                    .collect();
                let address = mi.status.as_ref().and_then(|s| s.ingress_address.clone());
                let address = address.map(|a| format!(" at {a}")).unwrap_or_default();
                format!("{kind}{address}: {}", if rules.is_empty() { "no rules".to_string() } else { rules.join(", ") })
            }
        },
        "traffic" => {
            let traffic = &spec.traffic;
            let mode = match traffic.mode {
                TrafficMode::Smi => "SMI",
                TrafficMode::GatewayApi => "GatewayAPI",
            };
            format!(
                "{mode}: {}, {}",
                plural(traffic.access.len(), "access policy", "access policies"),
                plural(traffic.splits.len(), "split", "splits")
            )
        }
        _ => {
            let n = mi.status.as_ref().map(|s| s.azure_operations.len()).unwrap_or(0);
            if spec.azure.is_none() {
                "none (no spec.azure)".to_string()
            } else if n == 0 {
                "none in flight".to_string()
            } else {
                format!("{} in flight", plural(n, "operation", "operations"))
            }
        }
    }
}

impl StatusView {
    /// The view of `mi` (pure).
    pub fn of(mi: &MeshInstallation) -> StatusView {
        let status = mi.status.clone().unwrap_or_default();
        let find = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_).map(condition_view);
        let generation = mi.metadata.generation;
        let current = status.observed_generation == generation;
        let overall: Vec<ConditionView> = [ct::READY, ct::DEGRADED].iter().filter_map(|t| find(t)).collect();
        let ready = current && overall.iter().any(|c| c.type_ == ct::READY && c.status == "True");
        let mut sections = Vec::new();
        for (name, condition_type, component) in SECTIONS {
            let condition = if condition_type.is_empty() { None } else { find(condition_type) };
            let component_status = status.components.iter().find(|c| !component.is_empty() && c.name == component);
            let workloads = component_status
                .filter(|c| c.total > 0)
                .map(|c| format!("{}/{} workloads ready", c.ready_count, c.total));
            let mut details = Vec::new();
            if let Some(c) = component_status
                && !c.message.is_empty()
                && condition.as_ref().is_none_or(|cond| !cond.message.contains(&c.message))
            {
                details.extend(c.message.split("; ").map(str::to_string));
            }
            match name {
                "images" if !status.imported_images.is_empty() => {
                    details.push(format!("imported: {}", status.imported_images.join(", ")));
                }
                "ingress" => {
                    for cert in &status.certificates {
                        details.push(format!(
                            "certificate {} for {} until {}",
                            cert.secret,
                            cert.hosts.join(", "),
                            cert.not_after
                        ));
                    }
                }
                "traffic" => {
                    for n in &status.notifications {
                        let level = crate::metrics::level_name(n.level);
                        details.push(format!("{level} {}: {}", n.object, n.message));
                    }
                }
                "azure operations" => {
                    for op in &status.azure_operations {
                        details.push(format!("{} since {} ({})", op.operation, op.started_at, op.resource_id));
                    }
                    if let Some(step) = &status.osm_migration_step {
                        details.push(format!("OSM -> Istio migration at step {step}"));
                    }
                }
                _ => {}
            }
            // Sections that are empty and unconditioned say so in their summary; skip images when none.
            if name == "images" && mi.spec.registry.is_none() && status.imported_images.is_empty() {
                continue;
            }
            sections.push(SectionView {
                name: name.to_string(),
                summary: section_summary(mi, name),
                condition,
                workloads,
                details,
            });
        }
        let mut not_ready = Vec::new();
        if !current {
            not_ready.push(format!(
                "the operator has not yet reported on generation {} (status describes {})",
                generation.map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
                status.observed_generation.map(|g| g.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
        for c in status.conditions.iter().map(condition_view).filter(|c| !c.ok && c.type_ != ct::READY) {
            not_ready.push(format!("{} ({}): {}", c.type_, c.reason, c.message));
        }
        if status.conditions.is_empty() {
            not_ready.push("no conditions yet: is mesh-operator running?".to_string());
        }
        StatusView {
            name: mi.name_any(),
            ready,
            generation,
            observed_generation: status.observed_generation,
            teardown_step: status
                .teardown_step
                .clone()
                .or_else(|| mi.metadata.deletion_timestamp.as_ref().map(|_| "deleting".to_string())),
            overall,
            sections,
            not_ready,
        }
    }
}

/// ANSI colours, used only when stdout is a terminal (and `NO_COLOR` is unset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Colour on.
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        Style { colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn mark(self, ok: Option<bool>) -> String {
        match ok {
            Some(true) => self.paint("32", "✔"),
            Some(false) => self.paint("31", "✘"),
            None => self.paint("33", "•"),
        }
    }

    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

fn condition_line(c: &ConditionView, style: Style) -> String {
    let message = if c.message.is_empty() { String::new() } else { format!(": {}", c.message) };
    format!("{} {}={} {}{message}", style.mark(Some(c.ok)), c.type_, c.status, c.reason)
}

/// The tree as text (pure). Golden-tested with colour off.
pub fn render_text(view: &StatusView, style: Style) -> String {
    let mut out = String::new();
    let state = match (&view.teardown_step, view.ready) {
        (Some(step), _) => style.paint("33", &format!("Deleting (teardown step {step})")),
        (None, true) => style.paint("32", "Ready"),
        (None, false) => style.paint("31", "Not ready"),
    };
    let generation = match (view.generation, view.observed_generation) {
        (Some(g), Some(o)) if g == o => format!("generation {g}"),
        (g, o) => format!(
            "generation {}, status of {}",
            g.map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
            o.map(|o| o.to_string()).unwrap_or_else(|| "none".into())
        ),
    };
    out.push_str(&format!("{} {}: {state} ({generation})\n", style.bold("MeshInstallation"), style.bold(&view.name)));
    for c in &view.overall {
        out.push_str(&format!("  {}\n", condition_line(c, style)));
    }
    let last = view.sections.len().saturating_sub(1);
    for (i, section) in view.sections.iter().enumerate() {
        let (branch, indent) = if i == last { ("└─", "   ") } else { ("├─", "│  ") };
        let ok = section.condition.as_ref().map(|c| c.ok);
        // Operations in flight are progress, not failure.
        let ok = if section.name == "azure operations" { section.details.is_empty().then_some(true) } else { ok };
        out.push_str(&format!("{branch} {} {}: {}\n", style.mark(ok), style.bold(&section.name), section.summary));
        if let Some(c) = &section.condition {
            let workloads = section.workloads.as_ref().map(|w| format!(" [{w}]")).unwrap_or_default();
            out.push_str(&format!("{indent}  {}{workloads}\n", condition_line(c, style)));
        }
        for detail in &section.details {
            out.push_str(&format!("{indent}    - {detail}\n"));
        }
    }
    if !view.not_ready.is_empty() {
        out.push_str(&format!("{}\n", style.bold("Not ready:")));
        for line in &view.not_ready {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}

/// Exit code for the views shown: 0 when all are Ready, else 3.
pub fn exit_code(views: &[StatusView]) -> i32 {
    if views.iter().all(|v| v.ready) { exit::OK } else { exit::NOT_READY }
}

/// Condition changes between two observations, one line each (for `--wait`; pure).
pub fn condition_changes(before: &[Condition], after: &[Condition]) -> Vec<String> {
    after
        .iter()
        .filter(|c| {
            before
                .iter()
                .find(|b| b.type_ == c.type_)
                .is_none_or(|b| b.status != c.status || b.reason != c.reason || b.message != c.message)
        })
        .map(|c| condition_line(&condition_view(c), Style { colour: false }))
        .collect()
}

/// Why an installation could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The installation does not exist.
    #[error("MeshInstallation {0:?} not found (kubectl get meshinstallations lists them)")]
    NotFound(String),
    /// None exists at all.
    #[error("no MeshInstallation exists on this cluster")]
    NoneAtAll,
    /// More than one exists and none was named.
    #[error("{0} MeshInstallations exist ({1}); name one")]
    Ambiguous(usize, String),
    /// The API server refused or could not be reached.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

impl LookupError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            LookupError::NotFound(_) | LookupError::NoneAtAll => exit::NOT_FOUND,
            LookupError::Ambiguous(..) => exit::USAGE,
            LookupError::Kube(_) => exit::ERROR,
        }
    }
}

/// The named installation, or every installation when `name` is `None`.
pub async fn fetch(client: &Client, name: Option<&str>) -> Result<Vec<MeshInstallation>, LookupError> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    match name {
        Some(name) => match api.get_opt(name).await? {
            Some(mi) => Ok(vec![mi]),
            None => Err(LookupError::NotFound(name.to_string())),
        },
        None => {
            let mut items = api.list(&Default::default()).await?.items;
            if items.is_empty() {
                return Err(LookupError::NoneAtAll);
            }
            items.sort_by_key(|mi| mi.name_any());
            Ok(items)
        }
    }
}

/// The named installation, or the only one.
pub async fn fetch_one(client: &Client, name: Option<&str>) -> Result<MeshInstallation, LookupError> {
    let mut all = fetch(client, name).await?;
    if all.len() > 1 {
        let names: Vec<String> = all.iter().map(|m| m.name_any()).collect();
        return Err(LookupError::Ambiguous(all.len(), names.join(", ")));
    }
    all.pop().ok_or(LookupError::NoneAtAll)
}

/// Polls `name` until it is Ready, writing each condition change to `out` as it is seen; returns
/// the last view and whether it became Ready before `timeout`.
pub async fn wait_ready(
    client: &Client,
    name: &str,
    timeout: Duration,
    interval: Duration,
    out: &mut (dyn Write + Send),
) -> Result<(StatusView, bool), LookupError> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let started = Instant::now();
    let mut seen: Vec<Condition> = Vec::new();
    let mut seen_generation = None;
    loop {
        let mi = api.get_opt(name).await?.ok_or_else(|| LookupError::NotFound(name.to_string()))?;
        let status = mi.status.clone().unwrap_or_default();
        let elapsed = started.elapsed().as_secs();
        if status.observed_generation != seen_generation {
            seen_generation = status.observed_generation;
            let _ = writeln!(out, "[{elapsed:>4}s] observed generation {}", seen_generation.unwrap_or_default());
        }
        for line in condition_changes(&seen, &status.conditions) {
            let _ = writeln!(out, "[{elapsed:>4}s] {line}");
        }
        seen = status.conditions.clone();
        let view = StatusView::of(&mi);
        if view.ready {
            return Ok((view, true));
        }
        if started.elapsed() >= timeout {
            return Ok((view, false));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> MeshInstallation {
        let path = format!("{}/src/meshctl/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        MeshInstallation::from_yaml(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Compares with `testdata/<golden>`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(actual: &str, golden: &str) {
        let path = format!("{}/src/meshctl/testdata/{golden}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).expect("write golden");
            return;
        }
        let expected =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_GOLDEN=1 creates it)"));
        assert_eq!(actual, expected, "output differs from {path}; UPDATE_GOLDEN=1 rewrites it after review");
    }

    const PLAIN: Style = Style { colour: false };

    #[test]
    fn converged_installation_renders_as_the_golden_tree() {
        let view = StatusView::of(&fixture("converged.yaml"));
        assert!(view.ready);
        assert!(view.not_ready.is_empty(), "{:?}", view.not_ready);
        assert_eq!(exit_code(std::slice::from_ref(&view)), exit::OK);
        let text = render_text(&view, PLAIN);
        assert!(!text.contains('\x1b'), "no colour off a terminal");
        golden(&text, "converged.txt");
    }

    #[test]
    fn failing_installation_renders_what_is_not_ready_and_why() {
        let view = StatusView::of(&fixture("failing.yaml"));
        assert!(!view.ready);
        assert_eq!(exit_code(std::slice::from_ref(&view)), exit::NOT_READY);
        let text = render_text(&view, PLAIN);
        golden(&text, "failing.txt");
    }

    #[test]
    fn colour_only_when_asked() {
        let view = StatusView::of(&fixture("failing.yaml"));
        let coloured = render_text(&view, Style { colour: true });
        assert!(coloured.contains("\x1b[31m✘\x1b[0m"));
        let stripped = coloured.replace("\x1b[0m", "").replace("\x1b[1m", "").replace("\x1b[31m", "");
        let stripped = stripped.replace("\x1b[32m", "").replace("\x1b[33m", "");
        assert_eq!(stripped, render_text(&view, PLAIN));
    }

    #[test]
    fn json_view_names_every_section_and_condition() {
        let view = StatusView::of(&fixture("failing.yaml"));
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["ready"], false);
        let sections: Vec<&str> =
            json["sections"].as_array().expect("sections").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(sections, ["mesh", "images", "namespaces", "apps", "ingress", "traffic", "azure operations"]);
        assert!(json["notReady"].as_array().is_some_and(|a| !a.is_empty()));
    }

    #[test]
    fn an_old_generation_is_not_ready_even_when_ready_was_true() {
        let mut mi = fixture("converged.yaml");
        mi.metadata.generation = Some(5);
        let view = StatusView::of(&mi);
        assert!(!view.ready);
        assert!(view.not_ready[0].contains("generation 5"), "{:?}", view.not_ready);
    }

    #[test]
    fn condition_changes_report_only_what_changed() {
        let failing = fixture("failing.yaml").status.unwrap_or_default().conditions;
        let converged = fixture("converged.yaml").status.unwrap_or_default().conditions;
        assert_eq!(condition_changes(&failing, &failing), Vec::<String>::new());
        let all = condition_changes(&[], &failing);
        assert_eq!(all.len(), failing.len());
        let changed = condition_changes(&failing, &converged);
        assert!(changed.iter().any(|l| l.starts_with("✔ Ready=True Converged")), "{changed:?}");
        let mut progressing = converged.clone();
        if let Some(apps) = progressing.iter_mut().find(|c| c.type_ == ct::APPS_READY) {
            apps.status = ConditionStatus::False;
            apps.reason = "Progressing".into();
            apps.message = "bookstore/bookstore: 0/1 replicas available".into();
        }
        assert_eq!(
            condition_changes(&converged, &progressing),
            ["✘ AppsReady=False Progressing: bookstore/bookstore: 0/1 replicas available"]
        );
    }
}
