//! TLS for the emulator: one CA per test process (generated with rcgen), a server certificate for
//! `127.0.0.1`/`localhost` signed by it, and the CA registered with mesh-operator's Azure client
//! (`mesh_provisioner::azure::tls::trust_pem`). azure_core sends tokens only over https.

use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The process-wide emulator CA and a server certificate.
pub struct EmulatorTls {
    /// CA certificate (PEM), to trust.
    pub ca_pem: String,
    /// Server config for the listener.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// The TLS material, generated on first use; the CA is trusted by the operator's ARM client.
pub fn tls() -> &'static EmulatorTls {
    static TLS: OnceLock<EmulatorTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let generated = generate().unwrap_or_else(|e| panic!("generating the ARM emulator's TLS certificate: {e}"));
        mesh_provisioner::azure::tls::trust_pem(&generated.ca_pem);
        generated
    })
}

fn generate() -> Result<EmulatorTls, String> {
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "mesh-operator ARM emulator CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(err)?;
    params.distinguished_name.push(DnType::CommonName, "management.azure.local");
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec()), CertificateDer::from(ca_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| e.to_string())?;
    Ok(EmulatorTls { ca_pem: ca_cert.pem(), server_config: Arc::new(config) })
}
