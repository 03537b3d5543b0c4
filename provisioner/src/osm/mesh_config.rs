//! `osm-mesh-config` (the spec-controlled part), the preset it starts from, and Egress policies.
//!
//! ## How `spec.mesh.egress` maps onto OSM
//!
//! | `egress.enabled` | `egress.policy` | `traffic.enableEgress` | `featureFlags.enableEgressPolicy` | Egress objects |
//! |---|---|---|---|---|
//! | false | any | false | false | none |
//! | true | Passthrough | true | false | none |
//! | true | Policy | false | true | one per rule |
//!
//! `traffic.enableEgress` is OSM's global passthrough: every meshed pod may reach anything. The
//! article's last step instead turns on `featureFlags.enableEgressPolicy` with passthrough off, so
//! that only what an `Egress` policy lists is reachable; that is `policy: Policy`. With egress
//! disabled both are off, so nothing outside the mesh is reachable (OSM v1.2's chart defaults
//! both to true; the article starts from egress off).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mesh_crds::osm::{
    Egress, EgressPortSpec, EgressSource, EgressSpec as OsmEgressSpec, FeatureFlags, MeshConfig, MeshConfigSpec,
    MeshTracing, MeshTrafficSpec, ObservabilitySpec,
};
use mesh_crds::{EgressPolicyMode, EgressProtocol, MeshSpec};
use serde_json::{Value, json};

use super::{OsmBuildError, names};
use crate::desired::{Component, Desired};

/// Zipkin collector port of Jaeger (`osm.tracing.port`).
pub(crate) const TRACING_PORT: i32 = 9411;
/// Zipkin v2 spans path (`osm.tracing.endpoint`).
pub(crate) const TRACING_ENDPOINT: &str = "/api/v2/spans";

/// `(traffic.enableEgress, featureFlags.enableEgressPolicy)` for the spec; see the module docs.
fn egress_flags(mesh: &MeshSpec) -> (bool, bool) {
    match (mesh.egress.enabled, mesh.egress.policy) {
        (false, _) => (false, false),
        (true, EgressPolicyMode::Passthrough) => (true, false),
        (true, EgressPolicyMode::Policy) => (false, true),
    }
}

/// `observability.tracing`: the full block when enabled (address defaulting to the mesh's Jaeger,
/// as OSM's `osm.tracingAddress` helper does), only `enable: false` when disabled, so server-side
/// apply drops the address, port and endpoint we set before.
fn tracing(mesh: &MeshSpec) -> MeshTracing {
    let spec = &mesh.tracing;
    if !spec.enabled {
        return MeshTracing { enable: Some(false), ..Default::default() };
    }
    let address = spec
        .address
        .clone()
        .unwrap_or_else(|| format!("{}.{}.svc.cluster.local", names::JAEGER, mesh.control_plane_namespace()));
    MeshTracing {
        enable: Some(true),
        address: Some(address),
        port: Some(spec.port.unwrap_or(TRACING_PORT)),
        endpoint: Some(spec.endpoint.clone().unwrap_or_else(|| TRACING_ENDPOINT.to_string())),
    }
}

/// `osm-mesh-config` with **only** the fields `spec.mesh` controls, for a server-side apply that
/// leaves every other field (certificates, sidecar settings, ...) to OSM and the user:
///
/// - `traffic.enablePermissiveTrafficPolicyMode` = `permissiveTrafficPolicy`;
/// - `traffic.enableEgress` and `featureFlags.enableEgressPolicy` from `egress` (see the module docs);
/// - `featureFlags.enableIngressBackendPolicy: true`, which IngressBackends need;
/// - `observability.tracing` from `tracing` (`enable: false` only, when disabled).
///
/// All of these paths exist in both `v1alpha1` and `v1alpha2`, so this works for the self-hosted
/// mesh (its control-plane namespace) and for the AKS OSM add-on (`kube-system`), whose MeshConfig
/// AKS creates. Apply it only once `osm-mesh-config` exists: created first by us, it would lack
/// the `certificate` block OSM needs, and osm-bootstrap would not create it from the preset.
pub fn mesh_config(installation: &str, mesh: &MeshSpec) -> Result<Desired, OsmBuildError> {
    if !mesh.is_osm() {
        return Err(OsmBuildError::UnsupportedProvider {
            object: format!("MeshConfig/{}", names::MESH_CONFIG),
            provider: mesh.provider,
        });
    }
    let (enable_egress, enable_egress_policy) = egress_flags(mesh);
    let spec = MeshConfigSpec {
        traffic: Some(MeshTrafficSpec {
            enable_egress: Some(enable_egress),
            enable_permissive_traffic_policy_mode: Some(mesh.permissive_traffic_policy),
            ..Default::default()
        }),
        observability: Some(ObservabilitySpec { tracing: Some(tracing(mesh)), ..Default::default() }),
        feature_flags: Some(FeatureFlags {
            enable_egress_policy: Some(enable_egress_policy),
            enable_ingress_backend_policy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut object = MeshConfig::new(names::MESH_CONFIG, spec);
    object.metadata.namespace = Some(mesh.control_plane_namespace().to_string());
    Ok(Desired::new(Component::Mesh, installation, &object)?)
}

/// The MeshConfig spec osm-bootstrap creates `osm-mesh-config` from (`preset-mesh-config.json`):
/// OSM v1.2's chart defaults, with the fields [`mesh_config`] controls taken from the spec so the
/// first MeshConfig is already right.
///
/// The sidecar images are left out on purpose: OSM then uses the injector's
/// `OSM_DEFAULT_*_IMAGE` environment, which follows the control-plane version.
pub fn preset_spec(mesh: &MeshSpec) -> Result<Value, serde_json::Error> {
    let (enable_egress, enable_egress_policy) = egress_flags(mesh);
    let tracing = serde_json::to_value(tracing(mesh))?;
    Ok(json!({
        "sidecar": {
            "enablePrivilegedInitContainer": false,
            "logLevel": "error",
            "maxDataPlaneConnections": 0,
            "configResyncInterval": "0s",
            "localProxyMode": "Localhost",
            "tlsMinProtocolVersion": "TLSv1_2",
            "tlsMaxProtocolVersion": "TLSv1_3"
        },
        "traffic": {
            "enableEgress": enable_egress,
            "enablePermissiveTrafficPolicyMode": mesh.permissive_traffic_policy,
            "outboundPortExclusionList": [],
            "inboundPortExclusionList": [],
            "outboundIPRangeExclusionList": [],
            "outboundIPRangeInclusionList": [],
            "networkInterfaceExclusionList": []
        },
        "observability": {
            "enableDebugServer": false,
            "osmLogLevel": "info",
            "tracing": tracing
        },
        "certificate": {
            "serviceCertValidityDuration": "24h",
            "certKeyBitSize": 2048
        },
        "featureFlags": {
            "enableWASMStats": true,
            "enableEgressPolicy": enable_egress_policy,
            "enableSnapshotCacheMode": false,
            "enableAsyncProxyServiceMapping": false,
            "enableIngressBackendPolicy": true,
            "enableEnvoyActiveHealthChecks": false,
            "enableRetryPolicy": false
        }
    }))
}

fn protocol(protocol: EgressProtocol) -> &'static str {
    match protocol {
        EgressProtocol::Http => "http",
        EgressProtocol::Https => "https",
        EgressProtocol::Tcp => "tcp",
        EgressProtocol::TcpServerFirst => "tcp-server-first",
    }
}

/// One OSM `Egress` (policy.openservicemesh.io/v1alpha1) per `egress.rules` entry, in the rule's
/// namespace, when egress is enabled with `policy: Policy`; otherwise none, so pruning removes
/// earlier ones.
///
/// They carry [`Component::Traffic`], not `Mesh`: they live in the application namespaces, which
/// exist only after the Namespaces component, and they are traffic policy like the SMI objects.
pub fn egress_policies(installation: &str, mesh: &MeshSpec) -> Result<Vec<Desired>, OsmBuildError> {
    if !mesh.is_osm() {
        return Err(OsmBuildError::UnsupportedProvider {
            object: "Egress policies".to_string(),
            provider: mesh.provider,
        });
    }
    if !(mesh.egress.enabled && mesh.egress.policy == EgressPolicyMode::Policy) {
        return Ok(Vec::new());
    }
    mesh.egress
        .rules
        .iter()
        .map(|rule| {
            let egress = Egress {
                metadata: ObjectMeta {
                    name: Some(rule.name.clone()),
                    namespace: Some(rule.namespace.clone()),
                    ..Default::default()
                },
                spec: OsmEgressSpec {
                    sources: rule
                        .source_service_accounts
                        .iter()
                        .map(|sa| EgressSource {
                            kind: "ServiceAccount".to_string(),
                            name: sa.clone(),
                            namespace: rule.namespace.clone(),
                        })
                        .collect(),
                    hosts: rule.hosts.clone(),
                    ip_addresses: rule.ip_addresses.clone(),
                    ports: rule
                        .ports
                        .iter()
                        .map(|port| EgressPortSpec {
                            number: port.number,
                            protocol: protocol(port.protocol).to_string(),
                        })
                        .collect(),
                },
            };
            Ok(Desired::new(Component::Traffic, installation, &egress)?)
        })
        .collect()
}
