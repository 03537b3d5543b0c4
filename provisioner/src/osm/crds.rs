//! OSM's CustomResourceDefinitions as desired objects.

use super::OsmBuildError;
use crate::desired::{Component, Desired};

/// The 10 CRDs OSM v1.2.4 serves (`mesh_crds::generate::osm_crds()`), as [`Component::Mesh`]
/// objects: `meshconfigs` and `meshrootcertificates` (`config.openservicemesh.io`), `egresses`,
/// `ingressbackends`, `retries`, `upstreamtrafficsettings` (`policy.openservicemesh.io`),
/// `httproutegroups`, `tcproutes` (`specs.smi-spec.io`), `traffictargets.access.smi-spec.io` and
/// `trafficsplits.split.smi-spec.io`. Their names are also what teardown deletes (all ten,
/// including the one `osm uninstall mesh -a` misnames).
pub fn osm_crds(installation: &str) -> Result<Vec<Desired>, OsmBuildError> {
    mesh_crds::generate::osm_crds().iter().map(|crd| Ok(Desired::new(Component::Mesh, installation, crd)?)).collect()
}
