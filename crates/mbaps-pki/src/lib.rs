//! A small-site certificate authority for Modbus/TCP Security (Modbus over
//! TLS, port 802, mutual authentication, the role in the client
//! certificate), and a certificate inspector: what `mbaps pki` and
//! `mbaps certs` run on.
//!
//! A [`CertificateAuthority`] lives in a folder (`ca.pem`, `ca.key` with
//! mode 0600, the records `pki.toml`, the CRL `crl.pem`). It issues server
//! certificates (serverAuth, DNS and IP SANs) and client certificates
//! (clientAuth) carrying a role in extension 1.3.6.1.4.1.50316.802.1 as a
//! DER UTF8String (R-21, R-22), or none (the NULL role, R-23). It signs a
//! device's certificate signing request ([`SigningRequest`]), keeping the
//! device's key and subject and nothing else the request asks for: the
//! role comes from the CA's command only. It revokes and publishes CRLs
//! that `mbaps server --crl` reads. Files are written whole or not at all
//! and never replace existing certificates or keys unless asked to.
//!
//! ```
//! use std::time::SystemTime;
//! use mbaps_authz::Role;
//! use mbaps_pki::{CertificateAuthority, CertificateReport, KeyType, RoleReport, Subject, Usage};
//!
//! let dir = std::env::temp_dir().join(format!("mbaps-pki-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let now = SystemTime::now();
//! let ca = CertificateAuthority::init(&dir, "Plant 4 CA", KeyType::EcdsaP256, 3650, false, now)?;
//! let role = Some(Role::new("operator")?);
//! let hmi = ca.issue("hmi-1", Subject::NewKey(KeyType::EcdsaP256), &Usage::Client { role }, 365, false, now)?;
//! assert_eq!(hmi.record.role.as_deref(), Some("operator"));
//!
//! let der = std::fs::read(dir.join("hmi-1.pem"))?;
//! let pem = mbaps_session::load_certificates(&dir.join("hmi-1.pem"))?;
//! let report = CertificateReport::new(&dir.join("hmi-1.pem"), &pem[0], now)?;
//! assert_eq!(report.role, RoleReport::Role { role: "operator".into() });
//! # drop(der);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod authority;
mod error;
mod files;
mod inspect;
mod key;
mod records;
mod request;
mod role;

pub use authority::{
    CA_DAYS, CRL_DAYS, CertificateAuthority, Issued, LEAF_DAYS, MAX_DAYS, MAX_NAME_LEN,
    PublishedCrl, Subject, Usage, check_name,
};
pub use error::PkiError;
pub use inspect::{CertificateReport, ChainReport, RoleReport, ValidityNow, fingerprint_sha256};
pub use key::KeyType;
pub use records::{IssuedRecord, Kind, RevocationReason};
pub use request::SigningRequest;
pub use role::{ROLE_OID_ARCS, role_extension_value};
