//! Extra certificate authorities trusted for ARM and token endpoints, on top of the system roots.
//!
//! The `azure_core` bearer-token policy refuses to send a token over plain HTTP ("authorized
//! requests are not permitted for non-TLS protected endpoints"), and `azure_identity` requires an
//! `https` authority host, so a local ARM emulator must serve TLS. Its CA is trusted either by
//! pointing [`EXTRA_CA_ENV`] at a PEM file (for the operator binary) or by calling [`trust_pem`]
//! (for in-process tests).

use std::sync::{Mutex, OnceLock};

/// Environment variable naming a PEM file of extra CA certificates to trust for Azure endpoints.
pub const EXTRA_CA_ENV: &str = "MESH_OPERATOR_AZURE_EXTRA_CA_FILE";

fn extra() -> &'static Mutex<Vec<String>> {
    static EXTRA: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    EXTRA.get_or_init(|| Mutex::new(Vec::new()))
}

/// Trusts the CA certificates in `pem` for every ARM client built afterwards.
pub fn trust_pem(pem: &str) {
    if let Ok(mut list) = extra().lock()
        && !list.iter().any(|p| p == pem)
    {
        list.push(pem.to_string());
    }
}

/// The extra CAs: those passed to [`trust_pem`] and the file named by [`EXTRA_CA_ENV`].
pub fn extra_pems() -> Result<Vec<String>, std::io::Error> {
    let mut pems = extra().lock().map(|l| l.clone()).unwrap_or_default();
    if let Some(path) = std::env::var_os(EXTRA_CA_ENV) {
        pems.push(std::fs::read_to_string(path)?);
    }
    Ok(pems)
}
