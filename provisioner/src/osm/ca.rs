//! The mesh root CA that OSM's Tresor certificate manager signs every workload certificate with.
//!
//! Upstream, osm-controller and osm-injector race to create `osm-ca-bundle` and both load the one
//! that won, so the CA survives restarts until the Secret is deleted. We create the Secret
//! ourselves before the control plane starts, so the CA is known to the operator and stable across
//! re-installs of the control plane; OSM then only loads it.
//!
//! The key is **RSA 2048** in PKCS#8, as Tresor's own CA. This is not a preference: OSM v1.2 decodes
//! `private.key` with `x509.ParsePKCS8PrivateKey` and type-asserts the result to `*rsa.PrivateKey`,
//! so an ECDSA key would make the controller and injector fail at start-up. rcgen can only generate
//! RSA keys with its aws-lc-rs backend, hence the `aws_lc_rs` feature.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
    PublicKeyData, RsaKeySize,
};
use x509_parser::pem::parse_x509_pem;

use super::names::{CA_BUNDLE_CERT_KEY, CA_BUNDLE_KEY_KEY, CA_BUNDLE_SECRET};
use super::{OsmBuildError, common};
use crate::desired::{Component, Desired};

/// Common name of OSM's root certificate (`constants.CertificationAuthorityCommonName`).
pub const CA_COMMON_NAME: &str = "osm-ca.openservicemesh.io";
/// Organization of OSM's root certificate.
pub const CA_ORGANIZATION: &str = "Open Service Mesh";
/// Validity of OSM's root certificate: 87600h (10 years).
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(87_600);

/// A freshly generated root CA.
#[derive(Clone)]
pub struct RootCa {
    /// The self-signed certificate, PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// Its RSA private key, PKCS#8 PEM (`PRIVATE KEY`).
    pub key_pem: String,
    /// End of validity (10 years after generation).
    pub not_after: Timestamp,
}

impl fmt::Debug for RootCa {
    // Keeps the private key out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .finish()
    }
}

fn generation_error(step: &'static str, reason: impl fmt::Display) -> OsmBuildError {
    OsmBuildError::CaGeneration { step, reason: reason.to_string() }
}

/// Generates a root CA as OSM's Tresor does: self-signed, CN `osm-ca.openservicemesh.io`,
/// O `Open Service Mesh`, valid 87600h from now, RSA 2048 with SHA-256, CA basic constraints and
/// keyCertSign/cRLSign usage.
pub fn generate_root_ca() -> Result<RootCa, OsmBuildError> {
    // X.509 times have whole seconds; round down so `not_after` is exactly what the certificate says.
    let now = Timestamp::now().as_second();
    let not_before = time::OffsetDateTime::from_unix_timestamp(now).map_err(|e| generation_error("not before", e))?;
    let not_after_ts = Timestamp::from_second(now)
        .and_then(|t| t.checked_add(CA_VALIDITY))
        .map_err(|e| generation_error("not after", e))?;
    let not_after = time::OffsetDateTime::from_unix_timestamp(not_after_ts.as_second())
        .map_err(|e| generation_error("not after", e))?;

    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| generation_error("RSA 2048 key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).map_err(|e| generation_error("self-signing", e))?;
    Ok(RootCa { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_after: not_after_ts })
}

/// Secret `osm-ca-bundle` in `namespace` with `ca.crt` and `private.key`, the keys OSM loads.
///
/// Create it once and never replace it: every workload certificate chains to it, so a new CA
/// breaks mTLS until every sidecar has new certificates. That policy belongs to the caller.
pub fn ca_bundle_secret(installation: &str, namespace: &str, ca: &RootCa) -> Result<Desired, OsmBuildError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CA_BUNDLE_SECRET.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(common::labels(&[(common::LABEL_NAME, common::LABEL_NAME_VALUE)])),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        // `data`, not `stringData`: stringData is write-only, so a server-side apply of it would
        // never look settled.
        data: Some(BTreeMap::from([
            (CA_BUNDLE_CERT_KEY.to_string(), ByteString(ca.cert_pem.clone().into_bytes())),
            (CA_BUNDLE_KEY_KEY.to_string(), ByteString(ca.key_pem.clone().into_bytes())),
        ])),
        ..Default::default()
    };
    Ok(Desired::new(Component::Mesh, installation, &secret)?)
}

fn invalid(key: &str, reason: impl fmt::Display) -> OsmBuildError {
    OsmBuildError::CaBundleInvalid {
        secret: CA_BUNDLE_SECRET.to_string(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn entry<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Result<&'a [u8], OsmBuildError> {
    data.get(key)
        .map(|value| value.0.as_slice())
        .ok_or_else(|| OsmBuildError::CaBundleMissingKey { secret: CA_BUNDLE_SECRET.to_string(), key: key.to_string() })
}

/// Checks that the `data` of an existing `osm-ca-bundle` is a CA OSM can load: `ca.crt` is a PEM
/// X.509 CA certificate, `private.key` is a PKCS#8 PEM RSA key (what OSM's decoder accepts), and the
/// key belongs to the certificate. Use it before adopting a Secret someone else created.
pub fn parse_ca_bundle(data: &BTreeMap<String, ByteString>) -> Result<(), OsmBuildError> {
    let cert_pem = entry(data, CA_BUNDLE_CERT_KEY)?;
    let (_, pem) = parse_x509_pem(cert_pem).map_err(|e| invalid(CA_BUNDLE_CERT_KEY, format!("not PEM: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(invalid(CA_BUNDLE_CERT_KEY, format!("PEM block is {:?}, not CERTIFICATE", pem.label)));
    }
    let cert = pem.parse_x509().map_err(|e| invalid(CA_BUNDLE_CERT_KEY, format!("not an X.509 certificate: {e}")))?;
    if !cert.is_ca() {
        return Err(invalid(CA_BUNDLE_CERT_KEY, "the certificate is not a CA (basicConstraints cA is false)"));
    }

    let key_pem = entry(data, CA_BUNDLE_KEY_KEY)?;
    let (_, key_block) = parse_x509_pem(key_pem).map_err(|e| invalid(CA_BUNDLE_KEY_KEY, format!("not PEM: {e}")))?;
    if key_block.label != "PRIVATE KEY" {
        return Err(invalid(
            CA_BUNDLE_KEY_KEY,
            format!("PEM block is {:?}; OSM only reads a PKCS#8 \"PRIVATE KEY\"", key_block.label),
        ));
    }
    let key_text = std::str::from_utf8(key_pem).map_err(|e| invalid(CA_BUNDLE_KEY_KEY, e))?;
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(key_text, &PKCS_RSA_SHA256)
        .map_err(|e| invalid(CA_BUNDLE_KEY_KEY, format!("not a PKCS#8 RSA private key: {e}")))?;
    if key.der_bytes() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(invalid(
            CA_BUNDLE_KEY_KEY,
            format!("the key does not belong to the certificate in {CA_BUNDLE_CERT_KEY}"),
        ));
    }
    Ok(())
}
