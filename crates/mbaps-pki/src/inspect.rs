//! What a certificate holds, and whether a Modbus/TCP Security server would
//! take it: `mbaps pki show`.

use std::path::Path;
use std::time::SystemTime;

use mbaps_authz::{RoleError, role_from_certificate};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use serde::Serialize;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::PkiError;
use crate::records::rfc3339;

/// A certificate parsed whole: no bytes may follow it.
pub(crate) fn parse<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, certificate) = X509Certificate::from_der(der)
        .map_err(|err| PkiError::content(path, format!("not an X.509 certificate: {err}")))?;
    if !rest.is_empty() {
        return Err(PkiError::content(
            path,
            format!("{} bytes follow the certificate", rest.len()),
        ));
    }
    Ok(certificate)
}

/// The family of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    Rsa,
    Ecdsa,
    Other,
}

/// A public key's type and size, as shown.
#[derive(Clone, Debug)]
pub(crate) struct KeyDescription {
    pub(crate) text: String,
    pub(crate) bits: usize,
    pub(crate) family: KeyFamily,
}

const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The type and size of `spki`.
pub(crate) fn describe_key(spki: &SubjectPublicKeyInfo<'_>) -> KeyDescription {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyDescription {
            text: format!("RSA {} bits", rsa.key_size()),
            bits: rsa.key_size(),
            family: KeyFamily::Rsa,
        },
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let name = match curve.as_deref() {
                Some(P256) => "P-256".to_owned(),
                Some(P384) => "P-384".to_owned(),
                Some(other) => format!("curve {other}"),
                None => "unknown curve".to_owned(),
            };
            KeyDescription {
                text: format!("ECDSA {name}"),
                bits: point.key_size(),
                family: KeyFamily::Ecdsa,
            }
        }
        _ => KeyDescription {
            text: format!("algorithm {}", spki.algorithm.algorithm),
            bits: 0,
            family: KeyFamily::Other,
        },
    }
}

impl KeyDescription {
    /// Whether the CA signs a certificate for this key: ECDSA P-256 or P-384
    /// P-256 at least), RSA of 2048 to 8192 bits.
    pub(crate) fn check_for_issuing(&self) -> Result<(), String> {
        let fine = match self.family {
            KeyFamily::Rsa => (2048..=8192).contains(&self.bits),
            KeyFamily::Ecdsa => self.text == "ECDSA P-256" || self.text == "ECDSA P-384",
            KeyFamily::Other => false,
        };
        if fine {
            Ok(())
        } else {
            Err(format!(
                "the key is {}: only ECDSA P-256 or P-384 (R-61) and RSA of 2048 to 8192 bits \
                 (R-14) are signed",
                self.text
            ))
        }
    }
}

/// One line naming an extension, with the role it asks for when it is the
/// role extension.
pub(crate) fn describe_extension(oid: &Oid<'_>, value: &[u8]) -> String {
    let id = oid.to_id_string();
    if id == mbaps_authz::ROLE_OID.to_string() {
        return match mbaps_authz::role_from_extension_value(value) {
            Ok(role) => format!("role extension {id} asking for role {:?}", role.as_str()),
            Err(err) => format!("role extension {id} ({err})"),
        };
    }
    let name = match id.as_str() {
        "2.5.29.17" => "subjectAltName",
        "2.5.29.15" => "keyUsage",
        "2.5.29.37" => "extendedKeyUsage",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.30" => "nameConstraints",
        _ => "",
    };
    if name.is_empty() {
        format!("extension {id}")
    } else {
        format!("extension {name} ({id})")
    }
}

/// SHA-256 of `der`, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where a certificate stands against the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidityNow {
    /// Inside its validity period.
    Valid,
    /// Past its notAfter.
    Expired,
    /// Before its notBefore.
    NotYetValid,
}

/// What the role extension of a certificate says (R-20..R-23, R-65).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RoleReport {
    /// No role extension: the server hands the NULL role to authorization.
    NoRole,
    /// Exactly one well-formed role.
    Role {
        /// The role.
        role: String,
    },
    /// A role extension a server refuses the certificate for.
    Invalid {
        /// Why, as the server logs it.
        reason: String,
        /// The rule broken (`R-22`, `R-65`, ...).
        requirement: &'static str,
    },
}

/// Whether a certificate chains to a CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The usage checked: `clientAuth` or `serverAuth`.
    pub usage: &'static str,
    /// `None` when the certificate chains to the CA for that usage now
    /// (and, with CRLs, is not revoked); else why not.
    pub error: Option<String>,
    /// Whether CRLs were consulted: the certificate's own status must be
    /// known from them (a CRL of its issuer, not expired).
    pub revocation_checked: bool,
}

/// Everything `mbaps pki show` says of a certificate.
#[derive(Clone, Debug, Serialize)]
pub struct CertificateReport {
    /// Subject, as OpenSSL shows it (RFC 4514 order).
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Subject alternative names (`DNS:...`, `IP:...`).
    pub subject_alt_names: Vec<String>,
    /// Not before, RFC 3339.
    pub not_before: String,
    /// Not after, RFC 3339.
    pub not_after: String,
    /// Where it stands now.
    pub validity: ValidityNow,
    /// Key type and size ("ECDSA P-256", "RSA 2048 bits").
    pub key: String,
    /// Key size in bits.
    pub key_bits: usize,
    /// The signature algorithm, as an OID.
    pub signature_algorithm: String,
    /// SHA-256 fingerprint of the DER.
    pub fingerprint_sha256: String,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Extended key usages (`serverAuth`, `clientAuth`, ...).
    pub extended_key_usage: Vec<String>,
    /// The role extension.
    pub role: RoleReport,
    /// With a CA: whether the certificate chains to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainReport>,
}

impl CertificateReport {
    /// The report of `der` (read from `path`) at `now`.
    pub fn new(path: &Path, der: &[u8], now: SystemTime) -> Result<CertificateReport, PkiError> {
        let certificate = parse(path, der)?;
        let validity = certificate.validity();
        let now_seconds = unix_seconds(now);
        let state = if now_seconds < validity.not_before.timestamp() {
            ValidityNow::NotYetValid
        } else if now_seconds > validity.not_after.timestamp() {
            ValidityNow::Expired
        } else {
            ValidityNow::Valid
        };
        let key = describe_key(certificate.public_key());
        let subject_alt_names = match certificate.subject_alternative_name() {
            Ok(Some(names)) => names.value.general_names.iter().map(general_name).collect(),
            Ok(None) => Vec::new(),
            Err(err) => vec![format!("(unreadable: {err})")],
        };
        let extended_key_usage = match certificate.extended_key_usage() {
            Ok(Some(eku)) => {
                let eku = eku.value;
                let mut usages = Vec::new();
                for (present, name) in [
                    (eku.server_auth, "serverAuth"),
                    (eku.client_auth, "clientAuth"),
                    (eku.any, "anyExtendedKeyUsage"),
                    (eku.code_signing, "codeSigning"),
                    (eku.email_protection, "emailProtection"),
                    (eku.time_stamping, "timeStamping"),
                    (eku.ocsp_signing, "OCSPSigning"),
                ] {
                    if present {
                        usages.push(name.to_owned());
                    }
                }
                usages.extend(eku.other.iter().map(|oid| oid.to_id_string()));
                usages
            }
            Ok(None) => Vec::new(),
            Err(err) => vec![format!("(unreadable: {err})")],
        };
        let is_ca = matches!(certificate.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        let role = match role_from_certificate(der) {
            Ok(None) => RoleReport::NoRole,
            Ok(Some(role)) => RoleReport::Role {
                role: role.as_str().to_owned(),
            },
            Err(err) => invalid_role(&err),
        };
        Ok(CertificateReport {
            subject: printable(&certificate.subject().to_string()),
            issuer: printable(&certificate.issuer().to_string()),
            serial: serial_hex(certificate.raw_serial()),
            subject_alt_names,
            not_before: rfc3339(validity.not_before.to_datetime()),
            not_after: rfc3339(validity.not_after.to_datetime()),
            validity: state,
            key: key.text,
            key_bits: key.bits,
            signature_algorithm: certificate.signature_algorithm.algorithm.to_id_string(),
            fingerprint_sha256: fingerprint_sha256(der),
            is_ca,
            extended_key_usage,
            role,
            chain: None,
        })
    }

    /// Checks, as a server would (rustls' webpki), that `leaf` chains to one
    /// of `anchors` through `intermediates` for the certificate's own usage
    /// (clientAuth unless it is a server certificate) at `now`, and, when
    /// `crls` are given, that they list it as not revoked: its status must
    /// be known from a CRL of its issuer that has not expired.
    pub fn check_chain(
        &mut self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        anchors: &[CertificateDer<'_>],
        crls: &[CertificateRevocationListDer<'_>],
        now: SystemTime,
    ) {
        let server = self.extended_key_usage.iter().any(|u| u == "serverAuth")
            && !self.extended_key_usage.iter().any(|u| u == "clientAuth");
        let (usage, key_usage) = if server {
            ("serverAuth", webpki::KeyUsage::server_auth())
        } else {
            ("clientAuth", webpki::KeyUsage::client_auth())
        };
        let error = chain_error(leaf, intermediates, anchors, crls, now, key_usage);
        self.chain = Some(ChainReport {
            usage,
            error,
            revocation_checked: !crls.is_empty(),
        });
    }

    /// Why a Modbus/TCP Security peer would refuse this certificate, one
    /// line each; empty when nothing is wrong.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.validity {
            ValidityNow::Valid => {}
            ValidityNow::Expired => problems.push(format!("expired on {}", self.not_after)),
            ValidityNow::NotYetValid => {
                problems.push(format!("not valid before {}", self.not_before));
            }
        }
        if let RoleReport::Invalid {
            reason,
            requirement,
        } = &self.role
        {
            problems.push(format!("role extension refused ({requirement}): {reason}"));
        }
        if let Some(ChainReport {
            usage,
            error: Some(error),
            ..
        }) = &self.chain
        {
            problems.push(format!("does not chain to the CA for {usage}: {error}"));
        }
        problems
    }
}

/// A SAN as `openssl x509 -text` prints it.
fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{}", printable(dns)),
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(std::net::IpAddr::from),
                _ => None,
            };
            match ip {
                Some(ip) => format!("IP Address:{ip}"),
                None => format!("IP Address:<{} bytes>", bytes.len()),
            }
        }
        GeneralName::RFC822Name(mail) => format!("email:{}", printable(mail)),
        GeneralName::URI(uri) => format!("URI:{}", printable(uri)),
        other => printable(&other.to_string()),
    }
}

fn invalid_role(err: &RoleError) -> RoleReport {
    RoleReport::Invalid {
        reason: err.to_string(),
        requirement: err.requirement(),
    }
}

fn chain_error(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    crls: &[CertificateRevocationListDer<'_>],
    now: SystemTime,
    usage: webpki::KeyUsage,
) -> Option<String> {
    let mut parsed = Vec::with_capacity(crls.len());
    for (at, crl) in crls.iter().enumerate() {
        match webpki::BorrowedCertRevocationList::from_der(crl) {
            Ok(crl) => parsed.push(webpki::CertRevocationList::from(crl)),
            Err(err) => return Some(format!("CRL {} is unusable: {err}", at + 1)),
        }
    }
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .ok()
        .map(|builder| {
            builder
                .with_depth(webpki::RevocationCheckDepth::EndEntity)
                .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build()
        });
    let mut trust = Vec::new();
    for anchor in anchors {
        match webpki::anchor_from_trusted_cert(anchor) {
            Ok(anchor) => trust.push(anchor),
            Err(err) => return Some(format!("the CA certificate is unusable: {err}")),
        }
    }
    let end_entity = match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert,
        Err(err) => return Some(format!("webpki cannot parse it: {err}")),
    };
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(unix_seconds(now)).unwrap_or(0),
    ));
    let verified = end_entity.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        intermediates,
        time,
        usage,
        revocation,
        None,
    );
    match verified {
        Ok(_) => None,
        Err(webpki::Error::UnknownIssuer) => {
            Some("UnknownIssuer: not issued by this CA (or an intermediate is missing)".to_owned())
        }
        Err(webpki::Error::CertRevoked) => Some("CertRevoked: the CRL lists it".to_owned()),
        Err(webpki::Error::UnknownRevocationStatus) => {
            Some("UnknownRevocationStatus: no CRL given is from its issuer".to_owned())
        }
        Err(webpki::Error::CrlExpired { .. }) => {
            Some("CrlExpired: the CRL is past its next update; publish a new one".to_owned())
        }
        Err(webpki::Error::InvalidSignatureForPublicKey) => Some(
            "InvalidSignatureForPublicKey: signed by another key than this CA's (a CA of the \
             same name, made again?)"
                .to_owned(),
        ),
        Err(err) => Some(format!("{err}")),
    }
}

/// `text` with every control character escaped (`\u{1b}`), so that a name
/// from a certificate or request cannot rewrite the operator's terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since the epoch (negative before it).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A serial number's bytes as upper-case hex, without leading zero bytes.
pub(crate) fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].iter().map(|b| format!("{b:02X}")).collect()
}
