//! Self-hosted Open Service Mesh v1.2.4 control plane, rendered by typed builders.
