//! Certificates of the ingress: the admission webhook's CA and serving certificate, and
//! self-signed edge certificates for rules with `tls.generate: true`.
//!
//! Keys are ECDSA P-256 (rcgen's default). Times are whole seconds (X.509 has no finer
//! resolution), so [`not_after`] of a generated certificate equals the time it was asked for.
//! Generation is the only impure step; reading stored material back ([`WebhookTls::from_secret_data`],
//! [`EdgeCert::from_secret_data`]) and deciding about renewal ([`needs_renewal`]) are pure, so the
//! caller reads the Secret, reuses what it holds, and only generates when it is absent, invalid or
//! expiring — and a steady state renders byte-identical objects.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::IngressBuildError;

/// Validity of a generated webhook CA and serving certificate.
pub const WEBHOOK_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A stored webhook certificate expiring sooner than this is replaced.
pub const WEBHOOK_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default validity of a generated edge certificate.
pub const EDGE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// A stored edge certificate expiring sooner than this is replaced.
pub const EDGE_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// `notBefore` is set this far in the past to tolerate clock skew between nodes.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Key of the webhook Secret holding the CA certificate (PEM).
pub const WEBHOOK_CA_KEY: &str = "ca";
/// Key of the webhook Secret holding the serving certificate (PEM); mounted as `/usr/local/certificates/cert`.
pub const WEBHOOK_CERT_KEY: &str = "cert";
/// Key of the webhook Secret holding the serving key (PEM); mounted as `/usr/local/certificates/key`.
pub const WEBHOOK_KEY_KEY: &str = "key";
/// Key of a `kubernetes.io/tls` Secret holding the certificate.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Key of a `kubernetes.io/tls` Secret holding the private key.
pub const TLS_KEY_KEY: &str = "tls.key";

/// The admission webhook's TLS material: a private CA (its certificate is the webhook
/// configuration's `caBundle`) and a serving certificate it signed for the admission Service.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookTls {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Serving certificate, PEM, with SANs `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local`.
    pub cert_pem: String,
    /// Serving private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for WebhookTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTls").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl WebhookTls {
    /// Generates a new CA and serving certificate for Service `service_name` in `namespace`, valid
    /// for [`WEBHOOK_VALIDITY`] from now.
    pub fn generate(service_name: &str, namespace: &str) -> Result<Self, IngressBuildError> {
        Self::generate_at(service_name, namespace, SystemTime::now())
    }

    /// [`WebhookTls::generate`] at a given time.
    pub fn generate_at(service_name: &str, namespace: &str, now: SystemTime) -> Result<Self, IngressBuildError> {
        let what = || format!("the admission webhook certificate for {service_name}.{namespace}");
        let rcgen_err = |source| IngressBuildError::Certificate { what: what(), source };
        let not_before = offset_time(now.checked_sub(CLOCK_SKEW).unwrap_or(now), &what)?;
        let not_after = offset_time(now + WEBHOOK_VALIDITY, &what)?;

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = common_name(&format!("{service_name}.{namespace} admission CA (mesh-operator)"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_key = KeyPair::generate().map_err(rcgen_err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let sans = webhook_sans(service_name, namespace);
        let mut params = CertificateParams::new(sans.to_vec()).map_err(rcgen_err)?;
        params.distinguished_name = common_name(&sans[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(rcgen_err)?;
        let cert = params.signed_by(&key, &issuer).map_err(rcgen_err)?;

        Ok(WebhookTls { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Reads the material back from the webhook Secret's `data` (keys `ca`, `cert`, `key`) and
    /// checks it: all three present, the certificates parse, and the CA signed the serving
    /// certificate. It does not check names or expiry; see [`WebhookTls::reuse_or_generate`].
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self, IngressBuildError> {
        let field = |key: &str| -> Result<String, IngressBuildError> {
            let bytes = data.get(key).ok_or_else(|| IngressBuildError::InvalidCertificate {
                what: "the admission webhook Secret".to_string(),
                message: format!("key {key:?} is missing"),
            })?;
            String::from_utf8(bytes.0.clone()).map_err(|_| IngressBuildError::InvalidCertificate {
                what: "the admission webhook Secret".to_string(),
                message: format!("key {key:?} is not UTF-8 PEM"),
            })
        };
        let tls = WebhookTls {
            ca_pem: field(WEBHOOK_CA_KEY)?,
            cert_pem: field(WEBHOOK_CERT_KEY)?,
            key_pem: field(WEBHOOK_KEY_KEY)?,
        };
        verify_signed_by(&tls.cert_pem, &tls.ca_pem)?;
        if !tls.key_pem.contains("PRIVATE KEY") {
            return Err(IngressBuildError::InvalidCertificate {
                what: "the admission webhook Secret".to_string(),
                message: format!("key {WEBHOOK_KEY_KEY:?} holds no PEM private key"),
            });
        }
        Ok(tls)
    }

    /// The stored material when it is valid, names the admission Service and does not expire
    /// within [`WEBHOOK_RENEW_BEFORE`] of `now`; otherwise freshly generated material. Pass the
    /// webhook Secret's `data` when the Secret exists.
    pub fn reuse_or_generate(
        existing: Option<&BTreeMap<String, ByteString>>,
        service_name: &str,
        namespace: &str,
        now: SystemTime,
    ) -> Result<Self, IngressBuildError> {
        if let Some(data) = existing
            && let Ok(tls) = WebhookTls::from_secret_data(data)
            && tls.covers(service_name, namespace).unwrap_or(false)
            && !tls.needs_renewal_at(now)
        {
            return Ok(tls);
        }
        WebhookTls::generate_at(service_name, namespace, now)
    }

    /// Whether the serving certificate names `<service>.<namespace>.svc`, the host name the API
    /// server dials.
    pub fn covers(&self, service_name: &str, namespace: &str) -> Result<bool, IngressBuildError> {
        let names = dns_names(&self.cert_pem)?;
        Ok(names.iter().any(|n| n == &format!("{service_name}.{namespace}.svc")))
    }

    /// When the serving certificate expires.
    pub fn not_after(&self) -> Result<SystemTime, IngressBuildError> {
        not_after(&self.cert_pem)
    }

    /// Whether the serving certificate or the CA expires within [`WEBHOOK_RENEW_BEFORE`] of `now`
    /// (or cannot be read).
    pub fn needs_renewal_at(&self, now: SystemTime) -> bool {
        [&self.cert_pem, &self.ca_pem].iter().any(|pem| needs_renewal(pem, now, WEBHOOK_RENEW_BEFORE).unwrap_or(true))
    }

    /// [`WebhookTls::needs_renewal_at`] now.
    pub fn needs_renewal(&self) -> bool {
        self.needs_renewal_at(SystemTime::now())
    }

    /// The webhook Secret's `data`: `ca`, `cert`, `key`.
    pub fn secret_data(&self) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            (WEBHOOK_CA_KEY.to_string(), ByteString(self.ca_pem.clone().into_bytes())),
            (WEBHOOK_CERT_KEY.to_string(), ByteString(self.cert_pem.clone().into_bytes())),
            (WEBHOOK_KEY_KEY.to_string(), ByteString(self.key_pem.clone().into_bytes())),
        ])
    }
}

/// The DNS names the API server may use for a Service: `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local`.
pub fn webhook_sans(service_name: &str, namespace: &str) -> [String; 2] {
    [format!("{service_name}.{namespace}.svc"), format!("{service_name}.{namespace}.svc.cluster.local")]
}

/// A self-signed edge certificate for one host.
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeCert {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Host names in its subjectAltName.
    pub hosts: Vec<String>,
    /// When it expires.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for EdgeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCert")
            .field("cert_pem", &self.cert_pem)
            .field("hosts", &self.hosts)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl EdgeCert {
    /// Reads a `kubernetes.io/tls` Secret's `data` (`tls.crt`, `tls.key`) back.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self, IngressBuildError> {
        let field = |key: &str| -> Result<String, IngressBuildError> {
            let bytes = data.get(key).ok_or_else(|| IngressBuildError::InvalidCertificate {
                what: "the edge TLS Secret".to_string(),
                message: format!("key {key:?} is missing"),
            })?;
            String::from_utf8(bytes.0.clone()).map_err(|_| IngressBuildError::InvalidCertificate {
                what: "the edge TLS Secret".to_string(),
                message: format!("key {key:?} is not UTF-8 PEM"),
            })
        };
        let cert_pem = field(TLS_CERT_KEY)?;
        let key_pem = field(TLS_KEY_KEY)?;
        let not_after = not_after(&cert_pem)?;
        let hosts = dns_names(&cert_pem)?;
        Ok(EdgeCert { cert_pem, key_pem, hosts, not_after })
    }

    /// Whether the certificate names `host`.
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// Whether it expires within `threshold` of `now`.
    pub fn needs_renewal_at(&self, now: SystemTime, threshold: Duration) -> bool {
        self.not_after <= now + threshold
    }

    /// Whether it expires within [`EDGE_RENEW_BEFORE`] from now.
    pub fn needs_renewal(&self) -> bool {
        self.needs_renewal_at(SystemTime::now(), EDGE_RENEW_BEFORE)
    }

    /// `not_after` as RFC 3339 in UTC (`2026-08-26T10:00:00Z`), as `status.certificates[].notAfter` wants it.
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after)
    }

    /// The stored certificate when it names `host` and does not expire within `renew_before` of
    /// `now`; otherwise a new one valid for `validity`.
    pub fn reuse_or_generate(
        existing: Option<&BTreeMap<String, ByteString>>,
        host: &str,
        now: SystemTime,
        validity: Duration,
        renew_before: Duration,
    ) -> Result<Self, IngressBuildError> {
        if let Some(data) = existing
            && let Ok(cert) = EdgeCert::from_secret_data(data)
            && cert.covers(host)
            && !cert.needs_renewal_at(now, renew_before)
        {
            return Ok(cert);
        }
        edge_certificate_at(host, now, validity)
    }
}

/// A self-signed certificate for `host` (its only SAN and its CN), valid for `validity` from now.
pub fn edge_certificate(host: &str, validity: Duration) -> Result<EdgeCert, IngressBuildError> {
    edge_certificate_at(host, SystemTime::now(), validity)
}

/// [`edge_certificate`] at a given time: `notAfter` is `now + validity` (whole seconds).
pub fn edge_certificate_at(host: &str, now: SystemTime, validity: Duration) -> Result<EdgeCert, IngressBuildError> {
    let what = || format!("the edge certificate for {host}");
    let rcgen_err = |source| IngressBuildError::Certificate { what: what(), source };
    let now = whole_seconds(now);
    let expiry = now + Duration::from_secs(validity.as_secs());
    let mut params = CertificateParams::new(vec![host.to_string()]).map_err(rcgen_err)?;
    params.distinguished_name = common_name(host);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = offset_time(now.checked_sub(CLOCK_SKEW).unwrap_or(now), &what)?;
    params.not_after = offset_time(expiry, &what)?;
    let key = KeyPair::generate().map_err(rcgen_err)?;
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(EdgeCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        hosts: vec![host.to_string()],
        not_after: expiry,
    })
}

/// Whether the first certificate in `cert_pem` has expired or expires within `threshold` of `now`.
pub fn needs_renewal(cert_pem: &str, now: SystemTime, threshold: Duration) -> Result<bool, IngressBuildError> {
    let expiry = not_after(cert_pem)?;
    Ok(expiry <= now + threshold)
}

/// `notAfter` of the first certificate in `cert_pem`.
pub fn not_after(cert_pem: &str) -> Result<SystemTime, IngressBuildError> {
    with_certificate(cert_pem, |cert| {
        let seconds = cert.validity().not_after.timestamp();
        let seconds = u64::try_from(seconds).map_err(|_| "notAfter is before 1970".to_string())?;
        Ok(UNIX_EPOCH + Duration::from_secs(seconds))
    })
}

/// DNS names in the subjectAltName of the first certificate in `cert_pem`.
pub fn dns_names(cert_pem: &str) -> Result<Vec<String>, IngressBuildError> {
    with_certificate(cert_pem, |cert| {
        let san = cert.subject_alternative_name().map_err(|e| format!("subjectAltName: {e}"))?;
        Ok(san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some((*dns).to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default())
    })
}

/// Checks that the CA in `ca_pem` signed the certificate in `cert_pem`.
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> Result<(), IngressBuildError> {
    with_certificate(ca_pem, |ca| {
        with_certificate(cert_pem, |cert| {
            cert.verify_signature(Some(ca.public_key())).map_err(|e| format!("not signed by the CA: {e}"))
        })
        .map_err(|e| e.to_string())
    })
}

/// Parses the first PEM certificate and hands it to `f`; errors become `InvalidCertificate`.
fn with_certificate<T>(
    cert_pem: &str,
    f: impl FnOnce(&X509Certificate<'_>) -> Result<T, String>,
) -> Result<T, IngressBuildError> {
    let invalid = |message: String| IngressBuildError::InvalidCertificate { what: "certificate".to_string(), message };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| invalid(format!("not PEM: {e}")))?;
    if pem.label != "CERTIFICATE" {
        return Err(invalid(format!("PEM block is {:?}, not CERTIFICATE", pem.label)));
    }
    let cert = pem.parse_x509().map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    f(&cert).map_err(invalid)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// RFC 3339 in UTC with second precision; times before 1970 or out of range print as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let seconds = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let time = i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        Err(_) => t,
    }
}

fn offset_time(t: SystemTime, what: &impl Fn() -> String) -> Result<OffsetDateTime, IngressBuildError> {
    let seconds = t.duration_since(UNIX_EPOCH).map_err(|_| IngressBuildError::InvalidCertificate {
        what: what(),
        message: "time is before 1970".to_string(),
    })?;
    let seconds = i64::try_from(seconds.as_secs()).map_err(|_| IngressBuildError::InvalidCertificate {
        what: what(),
        message: "time is out of range".to_string(),
    })?;
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| IngressBuildError::InvalidCertificate {
        what: what(),
        message: format!("time is out of range: {e}"),
    })
}
