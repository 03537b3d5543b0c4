//! Workloads as the translation reads them, decoded straight from the API server's JSON.
//!
//! In GatewayAPI mode the operator lists every Deployment, StatefulSet, Job and Pod of the
//! cluster on each pass, for the translation's label checks and its baseline policies. Decoded
//! whole, such a list is the largest thing a reconcile holds (every Pod's status, every
//! container's image, environment and probes: measured, 11 of the 42 MiB of heap at the peak of
//! the footprint bench, and allocator fragments left behind). [`Listed`] decodes a list item
//! into the Kubernetes type with only what [`super::index`] reads set: name, namespace, labels
//! and owner references; the pod template's labels; the pod's service account and its
//! containers' names and ports. Every other field is skipped by the JSON decoder without being
//! allocated.
//!
//! Contract: translating workloads decoded through [`Listed`] gives exactly the translation of
//! the whole objects (every golden fixture checks it, `tests/translate_golden.rs`).
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use mesh_provisioner::translate::listed::Listed;
//! let json = r#"{"metadata": {"name": "p", "namespace": "n", "annotations": {"a": "b"}},
//!                "spec": {"serviceAccountName": "sa", "containers": [{"name": "c", "image": "i"}]},
//!                "status": {"phase": "Running"}}"#;
//! let pod: Pod = serde_json::from_str::<Listed<Pod>>(json).unwrap().into_inner();
//! assert_eq!(pod.spec.unwrap().service_account_name.as_deref(), Some("sa"));
//! assert!(pod.metadata.annotations.is_none() && pod.status.is_none());
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Deserializer};

/// A `K` decoded with only the fields the translation reads; the same API resource as `K`, so an
/// `Api<Listed<K>>` lists `K`s. It holds those fields only (a `Vec` of whole Pods would take
/// several KiB per item, however empty); [`Listed::into_inner`] builds the `K`.
#[derive(Clone, Debug)]
pub struct Listed<K> {
    metadata: ObjectMeta,
    /// The pod template: a controller's `spec.template`, or a Pod's own `spec`. None without `spec`.
    template: Option<TemplateShape>,
    kind: PhantomData<fn() -> K>,
}

/// A kind the translation reads as a workload: a Pod, or a controller with a pod template.
pub trait Workload: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug {
    /// Whether the object's own `spec` is the pod's (a Pod) rather than holding `template`.
    const IS_POD: bool = false;
    /// The object with `metadata` and, when it had a `spec`, the pod `template`.
    fn assemble(metadata: ObjectMeta, template: Option<PodTemplateSpec>) -> Self;
}

impl Workload for Deployment {
    fn assemble(metadata: ObjectMeta, template: Option<PodTemplateSpec>) -> Self {
        let spec = template.map(|template| DeploymentSpec { template, ..DeploymentSpec::default() });
        Deployment { metadata, spec, status: None }
    }
}

impl Workload for StatefulSet {
    fn assemble(metadata: ObjectMeta, template: Option<PodTemplateSpec>) -> Self {
        let spec = template.map(|template| StatefulSetSpec { template, ..StatefulSetSpec::default() });
        StatefulSet { metadata, spec, status: None }
    }
}

impl Workload for Job {
    fn assemble(metadata: ObjectMeta, template: Option<PodTemplateSpec>) -> Self {
        let spec = template.map(|template| JobSpec { template, ..JobSpec::default() });
        Job { metadata, spec, status: None }
    }
}

impl Workload for Pod {
    const IS_POD: bool = true;
    fn assemble(metadata: ObjectMeta, template: Option<PodTemplateSpec>) -> Self {
        Pod { metadata, spec: template.and_then(|template| template.spec), status: None }
    }
}

impl<K: Workload> Listed<K> {
    /// The decoded object.
    pub fn into_inner(self) -> K {
        K::assemble(self.metadata, self.template.map(PodTemplateSpec::from))
    }
}

impl<K: Workload> kube::Resource for Listed<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K: Workload> Deserialize<'de> for Listed<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (metadata, template) = if K::IS_POD {
            let pod = PodObjectShape::deserialize(deserializer)?;
            (pod.metadata, pod.spec.map(|spec| TemplateShape { metadata: None, spec: Some(spec) }))
        } else {
            let controller = ControllerShape::deserialize(deserializer)?;
            (controller.metadata, controller.spec.map(|spec| spec.template.unwrap_or_default()))
        };
        Ok(Listed { metadata: metadata.into(), template, kind: PhantomData })
    }
}

// The shapes below name the fields kept; serde skips every other one.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<Meta> for ObjectMeta {
    fn from(meta: Meta) -> Self {
        ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels,
            owner_references: meta.owner_references,
            ..ObjectMeta::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodShape {
    service_account_name: Option<String>,
    // Deprecated, but OSM and the index still honour it.
    service_account: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerShape>,
}

#[derive(Clone, Debug, Deserialize)]
struct ContainerShape {
    name: String,
    ports: Option<Vec<ContainerPort>>,
}

impl From<PodShape> for PodSpec {
    #[allow(deprecated)] // `service_account`, see above.
    fn from(pod: PodShape) -> Self {
        PodSpec {
            service_account_name: pod.service_account_name,
            service_account: pod.service_account,
            containers: pod
                .containers
                .into_iter()
                .map(|c| Container { name: c.name, ports: c.ports, ..Container::default() })
                .collect(),
            ..PodSpec::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
struct TemplateMeta {
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct TemplateShape {
    metadata: Option<TemplateMeta>,
    spec: Option<PodShape>,
}

impl From<TemplateShape> for PodTemplateSpec {
    fn from(template: TemplateShape) -> Self {
        PodTemplateSpec {
            metadata: template.metadata.map(|m| ObjectMeta { labels: m.labels, ..ObjectMeta::default() }),
            spec: template.spec.map(PodSpec::from),
        }
    }
}

/// A Deployment, StatefulSet or Job: metadata and a pod template.
#[derive(Deserialize)]
struct ControllerShape {
    metadata: Meta,
    spec: Option<ControllerSpec>,
}

#[derive(Deserialize)]
struct ControllerSpec {
    template: Option<TemplateShape>,
}

#[derive(Deserialize)]
struct PodObjectShape {
    metadata: Meta,
    spec: Option<PodShape>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode<K: Workload>(value: serde_json::Value) -> K {
        serde_json::from_value::<Listed<K>>(value).expect("decodes").into_inner()
    }

    #[test]
    fn a_pod_keeps_what_the_index_reads_and_nothing_else() {
        let pod: Pod = decode(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "labels": {"app": "a"}, "uid": "u",
                "annotations": {"big": "x".repeat(4096)},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "o"}],
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {
                "serviceAccountName": "sa", "nodeName": "node-1",
                "containers": [{
                    "name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
                }]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        }));
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(pod.metadata.labels, Some([("app".to_string(), "a".to_string())].into()));
        assert_eq!(pod.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.metadata.uid, None);
        assert_eq!(pod.status, None);
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("sa"));
        assert_eq!(spec.node_name, None);
        let container = &spec.containers[0];
        assert_eq!((container.name.as_str(), container.image.as_deref(), container.env.as_ref()), ("c", None, None));
        let port = &container.ports.as_ref().expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.container_port), (Some("http"), 8080));
    }

    #[test]
    fn a_deployment_keeps_its_template_labels_and_service_account() {
        let deployment: Deployment = decode(json!({
            "metadata": {"name": "d", "namespace": "ns", "generation": 3},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}, "annotations": {"a": "b"}},
                    "spec": {"serviceAccount": "legacy", "containers": [{"name": "c", "image": "i"}]}
                }
            },
            "status": {"availableReplicas": 2}
        }));
        assert_eq!(deployment.metadata.generation, None);
        assert_eq!(deployment.status, None);
        let spec = deployment.spec.expect("spec");
        assert_eq!(spec.replicas, None);
        let template = spec.template;
        let meta = template.metadata.expect("template metadata");
        assert_eq!(meta.labels, Some([("app".to_string(), "d".to_string())].into()));
        assert_eq!(meta.annotations, None);
        #[allow(deprecated)]
        let legacy = template.spec.expect("pod spec").service_account;
        assert_eq!(legacy.as_deref(), Some("legacy"));
    }

    #[test]
    fn absent_and_null_fields_decode_as_absent() {
        let set: StatefulSet = decode(json!({"metadata": {"name": "s", "labels": null}}));
        assert_eq!((set.metadata.labels, set.spec), (None, None));
        let job: Job = decode(json!({"metadata": {"name": "j"}, "spec": {"template": {}}}));
        assert_eq!(job.spec.expect("spec").template, PodTemplateSpec::default());
    }
}
