//! Keys, validity windows and signing: everything that turns parameters into
//! a [`Credential`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::{PkiError, ROLE_OID, RoleExtension};

/// Organization (O) of every subject in the test PKI.
pub(crate) const ORGANIZATION: &str = "mbaps test PKI";

/// Days a leaf certificate stays valid after `now`.
pub(crate) const LEAF_DAYS: i64 = 365;
/// Days a CA certificate stays valid after `now`.
pub(crate) const CA_DAYS: i64 = 3650;

/// Validity of an issued certificate relative to the PKI's `now`.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// Valid from `now - 1 day` to `now + 365 days`.
    Current,
    /// Valid from `now - 30 days` to `now - 1 day`: expired at `now`.
    Expired,
    /// Valid from `now + 30 days` to `now + 365 days`: not yet valid at `now`.
    NotYetValid,
}

impl Validity {
    /// `(not_before, not_after)` of this validity, relative to `now`.
    pub(crate) fn window(
        self,
        now: OffsetDateTime,
    ) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
        let (from, to) = match self {
            Validity::Current => (-1, LEAF_DAYS),
            Validity::Expired => (-30, -1),
            Validity::NotYetValid => (30, LEAF_DAYS),
        };
        Ok((days_from(now, from)?, days_from(now, to)?))
    }

    /// How this validity reads in README.txt.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Validity::Current => "currently valid",
            Validity::Expired => "EXPIRED (not after = now - 1 day)",
            Validity::NotYetValid => "NOT YET VALID (not before = now + 30 days)",
        }
    }
}

/// One issued certificate with its key.
#[derive(Clone, Debug)]
pub struct Credential {
    /// The short name the PKI knows it by, which is also the stem of its file
    /// names: `"ca"`, `"intermediate"`, `"server"`, `"untrusted-ca"`,
    /// `"untrusted"`, or the client's name (`"operator"`, ...). The subject CN
    /// is derived from it (`"client operator"`, ...).
    pub name: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// The whole chain, leaf first, down to and including the root CA, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// The same chain as concatenated PEM.
    pub chain_pem: String,
}

impl Credential {
    /// Bundles a signed certificate and its key; `issuer` is `None` for a
    /// self-signed root, else the credential whose chain continues this one.
    fn new(
        name: &str,
        cert: &Certificate,
        key: &KeyPair,
        issuer: Option<&Credential>,
    ) -> Credential {
        let cert_der = cert.der().to_vec();
        let cert_pem = cert.pem();
        let mut chain_der = vec![cert_der.clone()];
        let mut chain_pem = cert_pem.clone();
        if let Some(issuer) = issuer {
            chain_der.extend(issuer.chain_der.iter().cloned());
            chain_pem.push_str(&issuer.chain_pem);
        }
        Credential {
            name: name.to_owned(),
            cert_der,
            cert_pem,
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
            chain_der,
            chain_pem,
        }
    }
}

/// A CA able to sign: its parameters (for the issuer name and key
/// identifier), its key, and its own credential (for the chains it issues).
pub(crate) struct Authority {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) credential: Credential,
}

impl Authority {
    /// The rcgen issuer that signs with this CA.
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

/// Serial numbers, unique within one PKI: `01`, 8 bytes of `now` (seconds
/// since the epoch), then a 4-byte counter. Positive and at most 20 bytes
/// (RFC 5280 4.1.2.2).
pub(crate) struct Serials {
    prefix: [u8; 8],
    next: AtomicU32,
}

impl Serials {
    pub(crate) fn new(now: OffsetDateTime) -> Serials {
        Serials {
            prefix: now.unix_timestamp().to_be_bytes(),
            next: AtomicU32::new(1),
        }
    }

    pub(crate) fn next(&self) -> SerialNumber {
        let count = self.next.fetch_add(1, Ordering::Relaxed);
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&self.prefix);
        bytes.extend_from_slice(&count.to_be_bytes());
        SerialNumber::from_slice(&bytes)
    }
}

/// `now` as a UTC date, truncated to whole seconds (X.509 times have no fraction).
pub(crate) fn to_datetime(now: SystemTime) -> Result<OffsetDateTime, PkiError> {
    let seconds = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        // Before the epoch: round down to the whole second below.
        Err(before) => {
            let d = before.duration();
            i64::try_from(d.as_secs())
                .ok()
                .map(|s| -s - i64::from(d.subsec_nanos() > 0))
        }
    };
    seconds
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| PkiError::TimeOutOfRange {
            what: "now".to_owned(),
        })
}

/// `now + days` (negative `days` go back).
pub(crate) fn days_from(now: OffsetDateTime, days: i64) -> Result<OffsetDateTime, PkiError> {
    now.checked_add(time::Duration::days(days))
        .ok_or_else(|| PkiError::TimeOutOfRange {
            what: format!("now {days:+} days"),
        })
}

/// A fresh ECDSA P-256 key.
fn new_key(name: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(PkiError::rcgen(format!("key of {name}")))
}

/// Subject `CN = cn, O = mbaps test PKI`.
fn subject(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

/// Parameters of a CA certificate valid from `now - 1 day` for ten years.
fn ca_params(
    cn: &str,
    constraint: BasicConstraints,
    now: OffsetDateTime,
    serial: SerialNumber,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(cn);
    params.not_before = days_from(now, -1)?;
    params.not_after = days_from(now, CA_DAYS)?;
    params.serial_number = Some(serial);
    params.is_ca = IsCa::Ca(constraint);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A self-signed root CA with no path length limit.
pub(crate) fn root_ca(
    name: &str,
    cn: &str,
    now: OffsetDateTime,
    serials: &Serials,
) -> Result<Authority, PkiError> {
    let key = new_key(name)?;
    let params = ca_params(cn, BasicConstraints::Unconstrained, now, serials.next())?;
    let cert = params
        .self_signed(&key)
        .map_err(PkiError::rcgen(format!("certificate of {name}")))?;
    let credential = Credential::new(name, &cert, &key, None);
    Ok(Authority {
        params,
        key,
        credential,
    })
}

/// An intermediate CA signed by `parent`, path length 0: it signs leaves only.
pub(crate) fn intermediate_ca(
    name: &str,
    cn: &str,
    parent: &Authority,
    now: OffsetDateTime,
    serials: &Serials,
) -> Result<Authority, PkiError> {
    let key = new_key(name)?;
    let mut params = ca_params(cn, BasicConstraints::Constrained(0), now, serials.next())?;
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &parent.issuer())
        .map_err(PkiError::rcgen(format!("certificate of {name}")))?;
    let credential = Credential::new(name, &cert, &key, Some(&parent.credential));
    Ok(Authority {
        params,
        key,
        credential,
    })
}

/// What distinguishes one end-entity certificate from another.
pub(crate) struct LeafSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) cn: String,
    pub(crate) usage: ExtendedKeyUsagePurpose,
    pub(crate) subject_alt_names: Vec<SanType>,
    pub(crate) role: &'a RoleExtension,
    pub(crate) validity: Validity,
    pub(crate) serial: SerialNumber,
}

/// An end-entity certificate signed by `issuer`: `CA:FALSE`, key usage
/// digitalSignature, the extended key usage of `spec`, and one non-critical
/// role extension per value of `spec.role`.
pub(crate) fn leaf(
    spec: LeafSpec<'_>,
    issuer: &Authority,
    now: OffsetDateTime,
) -> Result<Credential, PkiError> {
    let key = new_key(spec.name)?;
    let (not_before, not_after) = spec.validity.window(now)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&spec.cn);
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(spec.serial);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![spec.usage];
    params.subject_alt_names = spec.subject_alt_names;
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = spec
        .role
        .values()
        .into_iter()
        .map(|value| CustomExtension::from_oid_content(ROLE_OID, value))
        .collect();
    let cert = params
        .signed_by(&key, &issuer.issuer())
        .map_err(PkiError::rcgen(format!("certificate of {}", spec.name)))?;
    Ok(Credential::new(
        spec.name,
        &cert,
        &key,
        Some(&issuer.credential),
    ))
}
