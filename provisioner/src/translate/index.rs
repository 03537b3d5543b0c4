//! Indexes over the input: workloads by namespace and ServiceAccount, by label; Services by name
//! and by the workloads they select; SMI route objects by name. Every lookup the translation
//! makes is a hash lookup or a walk over one posting list, so translation stays linear.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use mesh_crds::smi::{HTTPRouteGroup, TCPRoute};

use super::input::TranslationInput;
use super::names::FastMap;

/// Namespace assumed for objects without one.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Namespace of an object, or `default`.
pub(crate) fn namespace_of<K: ResourceExt>(object: &K) -> String {
    object.namespace().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// A Deployment, StatefulSet, Job or bare Pod: pods with one ServiceAccount and one set of labels.
#[derive(Debug)]
pub(crate) struct Workload<'a> {
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub service_account: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// Named container ports, for Services whose targetPort is a name.
    pub named_ports: Vec<(&'a str, i32)>,
}

impl Workload<'_> {
    /// `Kind/namespace/name`.
    pub(crate) fn reference(&self) -> String {
        super::notify::object_ref(self.kind, self.namespace, self.name)
    }
}

/// A port of a Service.
#[derive(Debug, Clone)]
pub(crate) struct PortInfo<'a> {
    pub name: Option<&'a str>,
    pub port: i32,
    pub target: Option<&'a IntOrString>,
    pub app_protocol: Option<&'a str>,
}

impl<'a> PortInfo<'a> {
    fn from(port: &'a ServicePort) -> Self {
        PortInfo {
            name: port.name.as_deref(),
            port: port.port,
            target: port.target_port.as_ref(),
            app_protocol: port.app_protocol.as_deref(),
        }
    }

    /// Declared TCP: `appProtocol` tcp or tcp-server-first, or without `appProtocol` a name
    /// starting `tcp-` (OSM's `ServiceToMeshServices`; Istio reads both the same way). Both meshes
    /// then treat the port as opaque TCP, where only L4 grants apply.
    pub(crate) fn is_declared_tcp(&self) -> bool {
        match self.app_protocol {
            Some(p) => p.eq_ignore_ascii_case("tcp") || p.eq_ignore_ascii_case("tcp-server-first"),
            None => self.name.is_some_and(|n| n.starts_with("tcp-")),
        }
    }

    /// A port Istio will not treat as HTTP (an HTTPRoute does not apply to it).
    pub(crate) fn is_non_http(&self) -> bool {
        const TCP_PREFIXES: [&str; 5] = ["tcp", "mysql", "mongo", "redis", "tls"];
        let protocol = self.app_protocol.or(self.name).unwrap_or_default().as_bytes();
        // `p` or `p-…`, ignoring ASCII case.
        TCP_PREFIXES.iter().any(|p| {
            protocol.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
                && matches!(protocol.get(p.len()), None | Some(b'-'))
        })
    }

    /// The container port the Service sends to, for a workload.
    pub(crate) fn target_port(&self, workload: &Workload<'_>) -> Option<i32> {
        match self.target {
            None => Some(self.port),
            Some(IntOrString::Int(port)) => Some(*port),
            Some(IntOrString::String(name)) => {
                workload.named_ports.iter().find(|(n, _)| *n == name.as_str()).map(|(_, port)| *port)
            }
        }
    }
}

/// A Service.
#[derive(Debug)]
pub(crate) struct ServiceInfo<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub selector: Option<&'a BTreeMap<String, String>>,
    pub ports: Vec<PortInfo<'a>>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `type: ExternalName`.
    pub external_name: bool,
}

/// Everything the translation looks up.
pub(crate) struct Index<'a> {
    /// Workloads sorted by namespace, name, kind.
    pub workloads: Vec<Workload<'a>>,
    /// namespace → ServiceAccount → workloads.
    by_service_account: FastMap<&'a str, FastMap<&'a str, Vec<usize>>>,
    /// namespace → hash of (label, value) → workloads (verified on use: a hash collision only
    /// adds candidates).
    by_label: FastMap<&'a str, FastMap<u64, Vec<usize>>>,
    by_namespace: FastMap<&'a str, Vec<usize>>,
    /// The Services.
    services: Vec<ServiceInfo<'a>>,
    /// Service indexes by namespace and name (the last of duplicates wins).
    service_by_name: FastMap<&'a str, FastMap<&'a str, usize>>,
    /// Services selecting each workload (by workload index).
    services_of_workload: Vec<Vec<usize>>,
    /// HTTPRouteGroups by (namespace, name); the last of duplicates wins.
    pub route_groups: FastMap<(&'a str, &'a str), &'a HTTPRouteGroup>,
    /// TCPRoutes by (namespace, name); the last of duplicates wins.
    pub tcp_routes: FastMap<(&'a str, &'a str), &'a TCPRoute>,
}

/// Namespace of an object (borrowed), or `default`.
pub(crate) fn namespace_ref<K: Resource>(object: &K) -> &str {
    object.meta().namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAMESPACE)
}

/// Name of an object (borrowed).
pub(crate) fn name_ref<K: Resource>(object: &K) -> &str {
    object.meta().name.as_deref().unwrap_or_default()
}

fn template_workload<'a>(
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    template: &'a PodTemplateSpec,
    empty: &'a BTreeMap<String, String>,
) -> Workload<'a> {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(empty);
    pod_workload(kind, namespace, name, template.spec.as_ref(), labels)
}

fn pod_workload<'a>(
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    spec: Option<&'a PodSpec>,
    labels: &'a BTreeMap<String, String>,
) -> Workload<'a> {
    #[allow(deprecated)]
    let service_account = spec
        .and_then(|s| s.service_account_name.as_deref().or(s.service_account.as_deref()))
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let named_ports = spec
        .map(|s| {
            s.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| p.name.as_deref().map(|n| (n, p.container_port)))
                .collect()
        })
        .unwrap_or_default();
    Workload { kind, namespace, name, service_account, labels, named_ports }
}

impl<'a> Index<'a> {
    /// Builds the indexes. `empty` is a label map for workloads without template labels.
    pub(crate) fn build(input: &'a TranslationInput, empty: &'a BTreeMap<String, String>) -> Self {
        let mut workloads: Vec<Workload<'a>> = Vec::new();
        for deployment in &input.deployments {
            if let Some(spec) = &deployment.spec {
                workloads.push(template_workload(
                    "Deployment",
                    namespace_ref(deployment),
                    name_ref(deployment),
                    &spec.template,
                    empty,
                ));
            }
        }
        for set in &input.stateful_sets {
            if let Some(spec) = &set.spec {
                workloads.push(template_workload(
                    "StatefulSet",
                    namespace_ref(set),
                    name_ref(set),
                    &spec.template,
                    empty,
                ));
            }
        }
        for job in &input.jobs {
            if let Some(spec) = &job.spec {
                workloads.push(template_workload("Job", namespace_ref(job), name_ref(job), &spec.template, empty));
            }
        }
        for pod in &input.pods {
            let labels = pod.metadata.labels.as_ref().unwrap_or(empty);
            workloads.push(pod_workload("Pod", namespace_ref(pod), name_ref(pod), pod.spec.as_ref(), labels));
        }
        workloads.sort_by(|a, b| (a.namespace, a.name, a.kind).cmp(&(b.namespace, b.name, b.kind)));
        workloads.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name && a.kind == b.kind);

        let mut by_service_account: FastMap<&'a str, FastMap<&'a str, Vec<usize>>> = FastMap::default();
        let mut by_label: FastMap<&'a str, FastMap<u64, Vec<usize>>> = FastMap::default();
        let mut by_namespace: FastMap<&'a str, Vec<usize>> = FastMap::default();
        for (i, w) in workloads.iter().enumerate() {
            by_service_account.entry(w.namespace).or_default().entry(w.service_account).or_default().push(i);
            by_namespace.entry(w.namespace).or_default().push(i);
            let labels = by_label.entry(w.namespace).or_default();
            for (k, v) in w.labels {
                labels.entry(label_hash(k, v)).or_default().push(i);
            }
        }

        let services: Vec<ServiceInfo<'a>> = input.services.iter().map(service_info).collect();
        let mut service_by_name: FastMap<&'a str, FastMap<&'a str, usize>> = FastMap::default();
        for (i, info) in services.iter().enumerate() {
            service_by_name.entry(info.namespace).or_default().insert(info.name, i);
        }
        let mut index = Index {
            services_of_workload: Vec::new(),
            workloads,
            by_service_account,
            by_label,
            by_namespace,
            services: Vec::new(),
            service_by_name,
            route_groups: FastMap::default(),
            tcp_routes: FastMap::default(),
        };
        let mut services_of_workload = vec![Vec::new(); index.workloads.len()];
        for (s, info) in services.iter().enumerate() {
            if let Some(selector) = info.selector.filter(|s| !s.is_empty()) {
                for w in index.select(info.namespace, selector) {
                    services_of_workload[w].push(s);
                }
            }
        }
        index.services_of_workload = services_of_workload;
        index.services = services;
        for group in &input.http_route_groups {
            index.route_groups.insert((namespace_ref(group), name_ref(group)), group);
        }
        for route in &input.tcp_routes {
            index.tcp_routes.insert((namespace_ref(route), name_ref(route)), route);
        }
        index
    }

    /// Indexes of the workloads of `namespace` running as `service_account`.
    pub(crate) fn workloads_of(&self, namespace: &str, service_account: &str) -> &[usize] {
        self.by_service_account
            .get(namespace)
            .and_then(|m| m.get(service_account))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Indexes of the workloads of `namespace` whose pod labels include all of `selector`
    /// (all workloads of the namespace for an empty selector).
    pub(crate) fn select<'s>(
        &'s self,
        namespace: &str,
        selector: &'s BTreeMap<String, String>,
    ) -> impl Iterator<Item = usize> + 's {
        let mut smallest: Option<&Vec<usize>> = None;
        let mut unmatched = false;
        let labels = self.by_label.get(namespace);
        for (k, v) in selector {
            match labels.and_then(|l| l.get(&label_hash(k, v))) {
                None => {
                    unmatched = true;
                    break;
                }
                Some(list) => {
                    if smallest.is_none_or(|s| list.len() < s.len()) {
                        smallest = Some(list);
                    }
                }
            }
        }
        let candidates: &[usize] = match smallest {
            _ if unmatched => &[],
            Some(list) => list,
            None => self.by_namespace.get(namespace).map(Vec::as_slice).unwrap_or_default(),
        };
        candidates
            .iter()
            .copied()
            .filter(move |&i| selector.iter().all(|(k, v)| self.workloads[i].labels.get(k) == Some(v)))
    }

    /// Services selecting workload `i`.
    pub(crate) fn services_of(&self, i: usize) -> impl Iterator<Item = &ServiceInfo<'a>> {
        self.services_of_workload[i].iter().filter_map(|&s| self.services.get(s))
    }

    /// Container ports of workload `i` that a Service declares TCP (`appProtocol: tcp`).
    pub(crate) fn tcp_ports(&self, i: usize) -> Vec<i32> {
        let workload = &self.workloads[i];
        let mut ports: Vec<i32> = self
            .services_of(i)
            .flat_map(|s| s.ports.iter())
            .filter(|p| p.is_declared_tcp())
            .filter_map(|p| p.target_port(workload))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Why no policy may select workload `i`'s pods by their labels, if so: it has none, or they
    /// also select pods of another ServiceAccount (a policy would grant that one too).
    pub(crate) fn unselectable(&self, i: usize) -> Option<String> {
        let workload = &self.workloads[i];
        if workload.labels.is_empty() {
            return Some(format!("{} has no pod labels to select its pods by", workload.reference()));
        }
        let other = self
            .select(workload.namespace, workload.labels)
            .map(|o| &self.workloads[o])
            .find(|o| o.service_account != workload.service_account)?;
        Some(format!(
            "the pod labels of {} ({}) also select the pods of {}, which runs as ServiceAccount {}: a policy selecting them would grant that ServiceAccount this access too; give its pod template a label the other workload lacks",
            workload.reference(),
            workload.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            other.reference(),
            other.service_account
        ))
    }

    /// Namespaces holding a workload.
    pub(crate) fn workload_namespaces(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.workloads.iter().map(|w| w.namespace)
    }

    /// Service by namespace and name.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo<'a>> {
        self.service_by_name.get(namespace).and_then(|m| m.get(name)).and_then(|&s| self.services.get(s))
    }
}

fn label_hash(key: &str, value: &str) -> u64 {
    let mut hasher = super::names::Fnv::default();
    std::hash::Hash::hash(&(key, value), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

fn service_info(service: &Service) -> ServiceInfo<'_> {
    let spec = service.spec.as_ref();
    ServiceInfo {
        namespace: namespace_ref(service),
        name: name_ref(service),
        selector: spec.and_then(|s| s.selector.as_ref()),
        ports: spec.and_then(|s| s.ports.as_ref()).map(|p| p.iter().map(PortInfo::from).collect()).unwrap_or_default(),
        headless: spec.and_then(|s| s.cluster_ip.as_deref()).is_some_and(|ip| ip.eq_ignore_ascii_case("none")),
        external_name: spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName"),
    }
}
