//! Support of `translate_vs_osm`: generators, the Istio authorization model, the OSM oracle.

pub mod generate;
pub mod istio;
pub mod oracle;
