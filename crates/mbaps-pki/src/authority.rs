//! The CA of a folder: create it, open it, issue, revoke, and publish CRLs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mbaps_authz::Role;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::files::{self, Access, Existing, FileSet, FolderLock, MAX_PEM_FILE};
use crate::inspect::{self, describe_key, serial_hex};
use crate::records::{IssuedRecord, Kind, Records, RevocationReason, parse_rfc3339, rfc3339};
use crate::role::{ROLE_OID_ARCS, role_extension_value};
use crate::{KeyType, PkiError, SigningRequest};

/// Longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;
/// Default validity of a CA, in days (10 years).
pub const CA_DAYS: u32 = 3650;
/// Default validity of a server or client certificate, in days.
pub const LEAF_DAYS: u32 = 365;
/// Default time to the next CRL, in days.
pub const CRL_DAYS: u32 = 30;
/// Longest name a certificate may be issued under.
pub const MAX_NAME_LEN: usize = 64;

/// Certificates are valid from an hour before they are made: a device whose
/// clock runs a little behind still takes them.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// The files of the CA in a folder.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CRL: &str = "crl.pem";

/// A certificate authority kept in a folder:
///
/// ```text
/// DIR/ca.pem      the CA certificate: the trust anchor every server and client gets
/// DIR/ca.key      its private key, mode 0600: never leaves this folder
/// DIR/pki.toml    the records: every certificate issued, and which are revoked
/// DIR/crl.pem     the CRL, for the servers' --crl
/// DIR/pki.lock    taken while the records change
/// DIR/NAME.pem, NAME-chain.pem, NAME.key   what it issued (no .key for a CSR)
/// ```
///
/// Changes to the records take a lock on the folder, so two commands run
/// at once never lose a record.
pub struct CertificateAuthority {
    dir: PathBuf,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
    subject: String,
    not_after: OffsetDateTime,
    key_identifier: Vec<u8>,
}

/// What a new leaf certificate is for.
#[derive(Clone, Debug)]
pub enum Usage {
    /// A server: extended key usage serverAuth, these names as SANs.
    Server {
        /// DNS names.
        dns: Vec<String>,
        /// IP addresses.
        ips: Vec<IpAddr>,
    },
    /// A client: extended key usage clientAuth, and the role, if any, in
    /// extension 1.3.6.1.4.1.50316.802.1 as a DER UTF8String (R-21, R-22).
    /// `None` issues a certificate without a role: the NULL role (R-23).
    Client {
        /// The role.
        role: Option<Role>,
    },
}

/// Where the key of a new certificate comes from.
#[derive(Debug)]
pub enum Subject<'a> {
    /// A fresh key of this type, written beside the certificate (mode
    /// 0600); the subject is `CN=<name>`.
    NewKey(KeyType),
    /// A device's request: its subject and public key, nothing else; no
    /// key is written, the device keeps it.
    Request(&'a SigningRequest),
}

/// A certificate the CA issued.
#[derive(Debug)]
pub struct Issued {
    /// Its record, as `pki.toml` keeps it.
    pub record: IssuedRecord,
    /// The files written: `NAME.pem`, `NAME-chain.pem`, and `NAME.key` for a
    /// new key.
    pub files: Vec<PathBuf>,
}

/// A CRL the CA published.
#[derive(Debug)]
pub struct PublishedCrl {
    /// The file (`DIR/crl.pem`).
    pub path: PathBuf,
    /// Its CRL number.
    pub number: u64,
    /// How many certificates it lists.
    pub revoked: usize,
    /// When it must be replaced, RFC 3339.
    pub next_update: String,
}

impl CertificateAuthority {
    /// Creates a CA in `dir` (created if missing): a self-signed CA
    /// certificate `CN=<name>` valid for `days`, its key (mode 0600), empty
    /// records and an empty CRL. Refuses to replace an existing CA unless
    /// `force`.
    pub fn init(
        dir: &Path,
        name: &str,
        key_type: KeyType,
        days: u32,
        force: bool,
        now: SystemTime,
    ) -> Result<CertificateAuthority, PkiError> {
        check_days("--days", days)?;
        check_text("--name", name)?;
        std::fs::create_dir_all(dir).map_err(PkiError::io("create", dir))?;
        let _lock = FolderLock::take(dir)?;
        let now = to_datetime(now)?;
        let key = key_type.generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.not_before = now - BACKDATE;
        params.not_after = days_after(now, days)?;
        params.serial_number = Some(new_serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .self_signed(&key)
            .map_err(PkiError::rcgen("the CA certificate"))?;
        let existing = if force {
            Existing::Replace
        } else {
            Existing::Refuse
        };
        let mut set = FileSet::new();
        set.add(dir.join(CA_CERT), cert.pem(), Access::Public, existing);
        set.add(
            dir.join(CA_KEY),
            key.serialize_pem(),
            Access::Secret,
            existing,
        );
        let ca = CertificateAuthority::from_parts(dir, cert.der().clone(), key)?;
        let mut records = Records::default();
        ca.stage_crl(&mut records, CRL_DAYS, now, &mut set)?;
        set.commit()?;
        Ok(ca)
    }

    /// Opens the CA in `dir`: reads `ca.pem` and `ca.key` and checks that
    /// they belong together and make a CA.
    pub fn open(dir: &Path) -> Result<CertificateAuthority, PkiError> {
        let cert_path = dir.join(CA_CERT);
        if !cert_path.exists() {
            return Err(PkiError::content(
                &cert_path,
                "no CA here: create one with `mbaps pki init --dir DIR`",
            ));
        }
        let certs = mbaps_session::load_certificates(&cert_path)?;
        let [cert_der] = <[_; 1]>::try_from(certs).map_err(|certs| {
            PkiError::content(
                &cert_path,
                format!("holds {} certificates; a CA file holds one", certs.len()),
            )
        })?;
        let key_path = dir.join(CA_KEY);
        let key_pem = files::read_bounded(&key_path, MAX_PEM_FILE)?;
        let key_pem = String::from_utf8(key_pem)
            .map_err(|_| PkiError::content(&key_path, "not a PEM file"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|err| {
            PkiError::content(&key_path, format!("not a PKCS#8 private key: {err}"))
        })?;
        CertificateAuthority::from_parts(dir, cert_der, key)
    }

    fn from_parts(
        dir: &Path,
        cert_der: CertificateDer<'static>,
        key: KeyPair,
    ) -> Result<CertificateAuthority, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let cert = inspect::parse(&cert_path, &cert_der)?;
        if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(PkiError::content(
                &dir.join(CA_KEY),
                format!("is not the key of {}", cert_path.display()),
            ));
        }
        if !matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(PkiError::content(&cert_path, "is not a CA certificate"));
        }
        // rcgen rebuilds the issuer name from the CA's subject with one
        // attribute per RDN and one value per attribute type: any other
        // subject would give leaves an issuer name that is not the CA's.
        if cert.subject().iter().any(|rdn| rdn.iter().count() != 1) {
            return Err(PkiError::content(
                &cert_path,
                "its subject has a multi-valued or empty RDN, which mbaps pki cannot sign under",
            ));
        }
        let mut types: Vec<String> = cert
            .subject()
            .iter_attributes()
            .map(|attribute| attribute.attr_type().to_id_string())
            .collect();
        types.sort();
        if let Some(pair) = types.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(PkiError::content(
                &cert_path,
                format!(
                    "its subject repeats the attribute {}, which mbaps pki cannot sign under",
                    pair[0]
                ),
            ));
        }
        let key_identifier = match cert
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        {
            Ok(Some(ext)) => match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => id.0.to_vec(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if key_identifier.is_empty() {
            return Err(PkiError::content(
                &cert_path,
                "has no subject key identifier",
            ));
        }
        let pem = pem_of(&cert_der);
        Ok(CertificateAuthority {
            dir: dir.to_path_buf(),
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.to_datetime(),
            cert_pem: pem,
            cert_der,
            key,
            key_identifier,
        })
    }

    /// The CA certificate, DER.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the CA certificate (`DIR/ca.pem`).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// The path of the CRL (`DIR/crl.pem`).
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL)
    }

    /// Every certificate issued, oldest first.
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, PkiError> {
        Ok(Records::load(&self.dir)?.issued)
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, PkiError> {
        Issuer::from_ca_cert_der(&self.cert_der, &self.key)
            .map_err(PkiError::rcgen("the issuer from ca.pem"))
    }

    /// Issues a certificate under `name` (the stem of its files and, for a
    /// new key, its CN), valid for `days`, and writes `NAME.pem`,
    /// `NAME-chain.pem` (leaf then CA, R-46) and, for a new key,
    /// `NAME.key`. Refuses to replace existing files unless `force`.
    pub fn issue(
        &self,
        name: &str,
        subject: Subject<'_>,
        usage: &Usage,
        days: u32,
        force: bool,
        now: SystemTime,
    ) -> Result<Issued, PkiError> {
        check_name(name)?;
        check_days("--days", days)?;
        let now = to_datetime(now)?;
        let not_after = days_after(now, days)?;
        if not_after > self.not_after {
            let left = (self.not_after - now).whole_days();
            let reason = if left < 1 {
                format!(
                    "the CA {} on {}: make a new one (mbaps pki init --force)",
                    if self.not_after <= now {
                        "expired"
                    } else {
                        "expires"
                    },
                    rfc3339(self.not_after)
                )
            } else {
                format!(
                    "the certificate would outlive the CA (valid until {}); at most {left} days",
                    rfc3339(self.not_after)
                )
            };
            return Err(PkiError::invalid("--days", days.to_string(), reason));
        }
        let mut params = CertificateParams::default();
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        let serial = new_serial()?;
        params.serial_number = Some(serial.clone());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let (kind, role) = match usage {
            Usage::Server { dns, ips } => {
                if dns.is_empty() && ips.is_empty() {
                    return Err(PkiError::invalid(
                        "--dns/--ip",
                        "",
                        "a server certificate needs at least one name clients connect to",
                    ));
                }
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                for host in dns {
                    if host.ends_with('.') {
                        // webpki skips such a SAN: the name would never match.
                        return Err(PkiError::invalid(
                            "--dns",
                            host.clone(),
                            "a name ending in '.' never matches in TLS; leave the dot out",
                        ));
                    }
                    rustls_pki_types::DnsName::try_from(host.as_str()).map_err(|_| {
                        PkiError::invalid("--dns", host.clone(), "not a valid DNS name")
                    })?;
                    let ia5 = host.clone().try_into().map_err(|_| {
                        PkiError::invalid("--dns", host.clone(), "not a valid DNS name")
                    })?;
                    params.subject_alt_names.push(SanType::DnsName(ia5));
                }
                params
                    .subject_alt_names
                    .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
                (Kind::Server, None)
            }
            Usage::Client { role } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                if let Some(role) = role {
                    params.custom_extensions = vec![CustomExtension::from_oid_content(
                        ROLE_OID_ARCS,
                        role_extension_value(role.as_str()),
                    )];
                }
                (Kind::Client, role.as_ref().map(|r| r.as_str().to_owned()))
            }
        };
        let existing = if force {
            Existing::Replace
        } else {
            Existing::Refuse
        };
        let mut set = FileSet::new();
        let issuer = self.issuer()?;
        let (cert, subject_text) = match subject {
            Subject::NewKey(key_type) => {
                let key = key_type.generate()?;
                params.distinguished_name = common_name(name);
                let cert = params
                    .signed_by(&key, &issuer)
                    .map_err(PkiError::rcgen(format!("the certificate of {name}")))?;
                set.add(
                    self.dir.join(format!("{name}.key")),
                    key.serialize_pem(),
                    Access::Secret,
                    existing,
                );
                (cert, format!("CN={name}"))
            }
            Subject::Request(request) => {
                params.distinguished_name = request.subject.clone();
                let cert = params
                    .signed_by(&request.public_key, &issuer)
                    .map_err(PkiError::rcgen(format!("the certificate of {name}")))?;
                (cert, request.subject().to_owned())
            }
        };
        let cert_pem = cert.pem();
        set.add(
            self.dir.join(format!("{name}-chain.pem")),
            format!("{cert_pem}{}", self.cert_pem),
            Access::Public,
            existing,
        );
        set.add(
            self.dir.join(format!("{name}.pem")),
            cert_pem,
            Access::Public,
            existing,
        );
        let record = IssuedRecord {
            serial: serial_hex(serial.as_ref()),
            name: name.to_owned(),
            kind,
            subject: subject_text,
            role,
            not_after: rfc3339(not_after),
            revoked: None,
            reason: None,
        };
        let _lock = FolderLock::take(&self.dir)?;
        let mut records = Records::load(&self.dir)?;
        records.issued.push(record.clone());
        records.stage(&self.dir, &mut set)?;
        let mut files = set.paths();
        files.retain(|path| path != &Records::path(&self.dir));
        files.sort_by_key(|path| !path.to_string_lossy().ends_with(".pem"));
        set.commit()?;
        Ok(Issued { record, files })
    }

    /// Records `certificate` (a file this CA issued: PEM or DER, a chain's
    /// first certificate) as revoked for `reason`. The next CRL lists it:
    /// publish one with [`CertificateAuthority::publish_crl`].
    pub fn revoke(
        &self,
        certificate: &Path,
        reason: RevocationReason,
        now: SystemTime,
    ) -> Result<IssuedRecord, PkiError> {
        let certs = mbaps_session::load_certificates(certificate)?;
        let leaf = &certs[0];
        let cert = inspect::parse(certificate, leaf)?;
        let ca = inspect::parse(&self.certificate_path(), &self.cert_der)?;
        if cert.issuer().as_raw() != ca.subject().as_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return Err(PkiError::content(
                certificate,
                format!("was not issued by this CA ({})", self.subject),
            ));
        }
        if matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(PkiError::content(
                certificate,
                "is a CA certificate: mbaps pki revokes the certificates it issued",
            ));
        }
        let raw = cert.raw_serial();
        // A CRL entry must carry the serial exactly: positive, minimal,
        // 1 to 20 bytes (RFC 5280 4.1.2.2), as every serial this CA makes.
        let positive = match raw {
            [] => false,
            [0] => true,
            [0, next, ..] => *next >= 0x80,
            [first, ..] => *first < 0x80,
        };
        let significant = raw.iter().skip_while(|&&b| b == 0).count();
        if !positive || significant > 20 {
            return Err(PkiError::content(
                certificate,
                format!(
                    "its serial number {} is not a positive, minimal integer of at most 20 bytes",
                    raw.iter().map(|b| format!("{b:02X}")).collect::<String>()
                ),
            ));
        }
        let serial = serial_hex(raw);
        let now = to_datetime(now)?;
        let _lock = FolderLock::take(&self.dir)?;
        let mut records = Records::load(&self.dir)?;
        if records.find_mut(&serial).is_none() {
            // Issued by this key but missing from the records (restored
            // from an old backup): revoke it all the same.
            records.issued.push(IssuedRecord {
                serial: serial.clone(),
                name: cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .unwrap_or("")
                    .to_owned(),
                kind: if cert
                    .extended_key_usage()
                    .ok()
                    .flatten()
                    .is_some_and(|eku| eku.value.server_auth)
                {
                    Kind::Server
                } else {
                    Kind::Client
                },
                subject: cert.subject().to_string(),
                role: None,
                not_after: rfc3339(cert.validity().not_after.to_datetime()),
                revoked: None,
                reason: None,
            });
        }
        let record = records
            .find_mut(&serial)
            .ok_or_else(|| PkiError::content(certificate, "lost its record"))?;
        if let Some(when) = &record.revoked {
            return Err(PkiError::content(
                certificate,
                format!(
                    "serial {serial} ({}) was already revoked on {when}",
                    record.name
                ),
            ));
        }
        record.revoked = Some(rfc3339(now));
        record.reason = Some(reason);
        let record = record.clone();
        let mut set = FileSet::new();
        records.stage(&self.dir, &mut set)?;
        set.commit()?;
        Ok(record)
    }

    /// Signs and writes a new CRL (`DIR/crl.pem`, replacing the last one)
    /// listing every revoked certificate, valid for `days`.
    pub fn publish_crl(&self, days: u32, now: SystemTime) -> Result<PublishedCrl, PkiError> {
        check_days("--days", days)?;
        let now = to_datetime(now)?;
        let _lock = FolderLock::take(&self.dir)?;
        let mut records = Records::load(&self.dir)?;
        let mut set = FileSet::new();
        let published = self.stage_crl(&mut records, days, now, &mut set)?;
        set.commit()?;
        Ok(published)
    }

    /// Adds the next CRL and the records with its number to `set`.
    fn stage_crl(
        &self,
        records: &mut Records,
        days: u32,
        now: OffsetDateTime,
        set: &mut FileSet,
    ) -> Result<PublishedCrl, PkiError> {
        let mut revoked = Vec::new();
        for record in &records.issued {
            let Some(when) = &record.revoked else {
                continue;
            };
            let serial = hex_bytes(&record.serial).ok_or_else(|| {
                PkiError::content(
                    &Records::path(&self.dir),
                    format!("serial {:?} is not hex", record.serial),
                )
            })?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: parse_rfc3339(&self.dir, &record.serial, when)?,
                reason_code: Some(record.reason.unwrap_or_default().to_rcgen()),
                invalidity_date: None,
            });
        }
        let number = records.crl_number.checked_add(1).ok_or_else(|| {
            PkiError::content(&Records::path(&self.dir), "crl_number is at its maximum")
        })?;
        let next_update = days_after(now, days)?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_identifier.clone()),
        };
        let crl = params
            .signed_by(&self.issuer()?)
            .map_err(PkiError::rcgen("the CRL"))?;
        let pem = crl.pem().map_err(PkiError::rcgen("the CRL (PEM)"))?;
        records.crl_number = number;
        // The records first: if the CRL then cannot be written, the next
        // one skips a number rather than reusing it.
        records.stage(&self.dir, set)?;
        set.add(self.crl_path(), pem, Access::Public, Existing::Replace);
        Ok(PublishedCrl {
            path: self.crl_path(),
            number,
            revoked: params.revoked_certs.len(),
            next_update: rfc3339(next_update),
        })
    }

    /// What kind of key the CA has ("ECDSA P-256", "RSA 3072 bits").
    pub fn key_description(&self) -> String {
        inspect::parse(&self.certificate_path(), &self.cert_der)
            .map(|cert| describe_key(cert.public_key()).text)
            .unwrap_or_default()
    }
}

/// `CN=<name>`.
fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// 16 random bytes, positive and without a leading zero (RFC 5280 4.1.2.2:
/// unique, at most 20 bytes; random so that no one can predict the next).
fn new_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| PkiError::invalid("serial", "", "the system's random source failed"))?;
    bytes[0] = (bytes[0] & 0x7F) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) || text.len() > 40 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref()))
}

/// Checks a name certificates are issued under, which is also the stem of
/// their file names: 1 to [`MAX_NAME_LEN`] letters, digits, `.`, `_` and
/// `-`, not starting with `.` or `-`, and not the CA's own `ca`, `crl` or
/// `pki` in any case.
pub fn check_name(name: &str) -> Result<(), PkiError> {
    let reason = if name.is_empty() {
        Some("is empty".to_owned())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "is {} bytes long; at most {MAX_NAME_LEN}",
            name.len()
        ))
    } else if name.starts_with(['.', '-']) {
        Some("may not start with '.' or '-'".to_owned())
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(format!(
            "contains {c:?}: names are letters, digits, '.', '_' and '-' (they name files)"
        ))
    } else if ["ca", "crl", "pki"]
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own))
    {
        Some("is the name of the CA's own files".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PkiError::invalid("--name", name, reason)),
        None => Ok(()),
    }
}

/// A free-text name (the CA's CN): printable, bounded.
fn check_text(field: &'static str, text: &str) -> Result<(), PkiError> {
    if text.is_empty() || text.len() > MAX_NAME_LEN || text.chars().any(char::is_control) {
        return Err(PkiError::invalid(
            field,
            text,
            format!("must be 1 to {MAX_NAME_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

fn check_days(field: &'static str, days: u32) -> Result<(), PkiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(PkiError::invalid(
            field,
            days.to_string(),
            format!("must be 1 to {MAX_DAYS}"),
        ));
    }
    Ok(())
}

fn to_datetime(now: SystemTime) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(inspect::unix_seconds(now)).map_err(|_| {
        PkiError::TimeOutOfRange {
            what: "now".to_owned(),
        }
    })
}

fn days_after(now: OffsetDateTime, days: u32) -> Result<OffsetDateTime, PkiError> {
    now.checked_add(time::Duration::days(i64::from(days)))
        .ok_or_else(|| PkiError::TimeOutOfRange {
            what: format!("now + {days} days"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_stems() {
        for good in ["hmi-1", "plc_7.site", "A"] {
            check_name(good).unwrap();
        }
        for (bad, says) in [
            ("", "is empty"),
            ("../ca", "may not start"),
            ("a/b", "contains '/'"),
            ("ca", "the CA's own files"),
            (&"x".repeat(65), "at most 64"),
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("--name") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn serials_are_positive_sixteen_bytes() {
        let serial = new_serial().unwrap();
        assert_eq!(serial.as_ref().len(), 16);
        assert!(serial.as_ref()[0] >= 0x40 && serial.as_ref()[0] < 0x80);
        assert_eq!(
            hex_bytes(&serial_hex(serial.as_ref())).unwrap(),
            serial.as_ref()
        );
    }
}
