//! A throw-away X.509 test PKI for mbaps (Modbus/TCP Security: Modbus over
//! TLS, port 802, mutual authentication, role in the client certificate).
//!
//! [`TestPki::generate`] builds, from a `now` you pass in (the crate never
//! reads the clock), every certificate the tests of the later crates need:
//! good ones, and ones deliberately wrong in each way a server must reject.
//!
//! ```text
//! ca "mbaps test root CA" (self-signed, 10 years)
//! └── intermediate "mbaps test intermediate CA" (pathlen 0, 10 years)
//!     ├── server "mbaps-server"   SAN localhost, mbaps-server, 127.0.0.1, ::1; serverAuth
//!     ├── clients "client <name>" clientAuth, role extension 1.3.6.1.4.1.50316.802.1 (R-21):
//!     │     operator, viewer                  UTF8String role (R-22)
//!     │     no-role                           no extension: NULL role (R-23)
//!     │     two-roles                         the extension twice (invalid: RFC 5280, R-65)
//!     │     octet-string-role                 OCTET STRING instead of UTF8String
//!     │     printable-string-role             PrintableString instead of UTF8String
//!     │     expired, not-yet-valid            role "operator", outside their validity
//!     │     revoked                           role "operator", listed in the CRL
//!     ├── issue_client(..)                    any other client you need
//!     └── crl                                 signed by the intermediate, revokes "revoked"
//! root_crl                                    signed by the root, revokes nothing
//! untrusted-ca "mbaps untrusted root CA" (self-signed, unrelated)
//! └── untrusted "client untrusted"            role "operator"
//! ```
//!
//! Every key is ECDSA P-256 and every signature ECDSA with SHA-256 (R-61,
//! R-62). Leaves are valid from `now - 1 day` to `now + 365 days` unless
//! [`Validity`] says otherwise. Each [`Credential`] carries its chain, leaf
//! first, down to and including the root (R-46).
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use mbaps_test_pki::{RoleExtension, TestPki, Validity};
//!
//! let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
//! let pki = TestPki::generate(now)?;
//! let operator = pki.client("operator").expect("a standard client");
//! assert_eq!(operator.chain_der.len(), 3); // leaf, intermediate, root
//! assert_eq!(operator.chain_der[2], pki.ca.cert_der);
//!
//! let engineer =
//!     pki.issue_client("engineer", RoleExtension::Role("engineer".into()), Validity::Current)?;
//! assert_eq!(engineer.name, "engineer");
//! # Ok::<(), mbaps_test_pki::PkiError>(())
//! ```
//!
//! [`TestPki::write_to`] writes the whole PKI as PEM/DER files plus a
//! README.txt; `cargo xtask certs OUT_DIR` calls it. These are test keys,
//! stored unprotected: never use them outside tests and demos.
#![forbid(unsafe_code)]

mod error;
mod files;
pub mod hello;
mod issue;
mod role;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use rcgen::{
    CertificateRevocationListParams, ExtendedKeyUsagePurpose, KeyIdMethod, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;

pub use error::PkiError;
pub use issue::{Credential, Validity};
pub use role::{ROLE_OID, RoleExtension, role_extension_value};

use issue::{Authority, LeafSpec, Serials};

/// The generated test PKI: CAs, server, clients, an untrusted branch and a CRL.
pub struct TestPki {
    /// The self-signed root CA (`"ca"`, CN "mbaps test root CA"); chain = `[root]`.
    pub ca: Credential,
    /// The intermediate CA (`"intermediate"`, CN "mbaps test intermediate CA"),
    /// signed by the root, path length 0; chain = `[intermediate, root]`.
    pub intermediate: Credential,
    /// The server (`"server"`, CN "mbaps-server"), signed by the intermediate:
    /// SANs DNS `localhost`, DNS `mbaps-server`, IP `127.0.0.1`, IP `::1`;
    /// extended key usage serverAuth; no role extension.
    pub server: Credential,
    /// The standard clients, in the order of [`TestPki::STANDARD_CLIENTS`],
    /// signed by the intermediate, extended key usage clientAuth.
    pub clients: Vec<Credential>,
    /// Another self-signed root (`"untrusted-ca"`, CN "mbaps untrusted root
    /// CA"), unrelated to [`TestPki::ca`].
    pub untrusted_ca: Credential,
    /// A client (`"untrusted"`, CN "client untrusted") with role "operator",
    /// signed by [`TestPki::untrusted_ca`]: well-formed, but not trusted.
    pub untrusted_client: Credential,
    /// The CRL of the intermediate CA, DER: revokes the `"revoked"` client.
    pub crl_der: Vec<u8>,
    /// The same CRL, PEM.
    pub crl_pem: String,
    /// The CRL of the root CA, PEM: revokes nothing (the intermediate is
    /// good). With it, CRLs cover whole chains.
    pub root_crl_pem: String,
    intermediate_ca: Authority,
    now: OffsetDateTime,
    serials: Serials,
}

/// One standard client: what it carries and whether the CRL revokes it.
pub(crate) struct StandardClient {
    pub(crate) name: &'static str,
    pub(crate) role: RoleExtension,
    pub(crate) validity: Validity,
    pub(crate) revoked: bool,
}

/// The standard clients with their role extension and validity.
pub(crate) fn standard_clients() -> Vec<StandardClient> {
    let operator = || RoleExtension::Role("operator".to_owned());
    let client = |name, role, validity, revoked| StandardClient {
        name,
        role,
        validity,
        revoked,
    };
    // DER OCTET STRING and PrintableString holding "operator": wrong types (R-22).
    let mut octet_string = vec![0x04, 0x08];
    octet_string.extend_from_slice(b"operator");
    let mut printable_string = vec![0x13, 0x08];
    printable_string.extend_from_slice(b"operator");
    vec![
        client("operator", operator(), Validity::Current, false),
        client(
            "viewer",
            RoleExtension::Role("viewer".to_owned()),
            Validity::Current,
            false,
        ),
        client("no-role", RoleExtension::None, Validity::Current, false),
        client(
            "two-roles",
            RoleExtension::Twice("operator".to_owned(), "viewer".to_owned()),
            Validity::Current,
            false,
        ),
        client(
            "octet-string-role",
            RoleExtension::Raw(octet_string),
            Validity::Current,
            false,
        ),
        client(
            "printable-string-role",
            RoleExtension::Raw(printable_string),
            Validity::Current,
            false,
        ),
        client("expired", operator(), Validity::Expired, false),
        client("not-yet-valid", operator(), Validity::NotYetValid, false),
        client("revoked", operator(), Validity::Current, true),
    ]
}

impl TestPki {
    /// The names of the standard clients, in the order of [`TestPki::clients`].
    pub const STANDARD_CLIENTS: &[&str] = &[
        "operator",
        "viewer",
        "no-role",
        "two-roles",
        "octet-string-role",
        "printable-string-role",
        "expired",
        "not-yet-valid",
        "revoked",
    ];

    /// Generates the whole PKI with fresh keys. Validity is relative to `now`:
    /// leaves from `now - 1 day` to `now + 365 days` (see [`Validity`]), the
    /// CAs from `now - 1 day` for 10 years; the CRL is issued at
    /// `now - 1 day` and next updated at `now + 365 days`.
    pub fn generate(now: SystemTime) -> Result<TestPki, PkiError> {
        let now = issue::to_datetime(now)?;
        let serials = Serials::new(now);

        let root = issue::root_ca("ca", "mbaps test root CA", now, &serials)?;
        let intermediate = issue::intermediate_ca(
            "intermediate",
            "mbaps test intermediate CA",
            &root,
            now,
            &serials,
        )?;

        let server = issue::leaf(
            LeafSpec {
                name: "server",
                cn: "mbaps-server".to_owned(),
                usage: ExtendedKeyUsagePurpose::ServerAuth,
                subject_alt_names: server_names()?,
                role: &RoleExtension::None,
                validity: Validity::Current,
                serial: serials.next(),
            },
            &intermediate,
            now,
        )?;

        let mut clients = Vec::new();
        let mut revoked = Vec::new();
        for standard in standard_clients() {
            let serial = serials.next();
            if standard.revoked {
                revoked.push(serial.clone());
            }
            clients.push(issue::leaf(
                client_spec(standard.name, &standard.role, standard.validity, serial),
                &intermediate,
                now,
            )?);
        }

        let untrusted_root =
            issue::root_ca("untrusted-ca", "mbaps untrusted root CA", now, &serials)?;
        let untrusted_client = issue::leaf(
            client_spec(
                "untrusted",
                &RoleExtension::Role("operator".to_owned()),
                Validity::Current,
                serials.next(),
            ),
            &untrusted_root,
            now,
        )?;

        let root_crl = crl(&root, &[], now)?;
        let crl = crl(&intermediate, &revoked, now)?;
        Ok(TestPki {
            ca: root.credential,
            intermediate: intermediate.credential.clone(),
            server,
            clients,
            untrusted_ca: untrusted_root.credential,
            untrusted_client,
            crl_der: crl.der().to_vec(),
            crl_pem: crl.pem().map_err(PkiError::rcgen("CRL (PEM)"))?,
            root_crl_pem: root_crl.pem().map_err(PkiError::rcgen("root CRL (PEM)"))?,
            intermediate_ca: intermediate,
            now,
            serials,
        })
    }

    /// The standard client called `name` (see [`TestPki::STANDARD_CLIENTS`]), if there is one.
    pub fn client(&self, name: &str) -> Option<&Credential> {
        self.clients.iter().find(|client| client.name == name)
    }

    /// Issues another client certificate from the intermediate CA, with a
    /// fresh key, subject CN `client <name>`, extended key usage clientAuth and
    /// a serial number not used before in this PKI (so the CRL does not list it).
    pub fn issue_client(
        &self,
        name: &str,
        role: RoleExtension,
        validity: Validity,
    ) -> Result<Credential, PkiError> {
        issue::leaf(
            client_spec(name, &role, validity, self.serials.next()),
            &self.intermediate_ca,
            self.now,
        )
    }
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients: Vec<&str> = self.clients.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("TestPki")
            .field("now", &self.now)
            .field("ca", &self.ca.name)
            .field("intermediate", &self.intermediate.name)
            .field("server", &self.server.name)
            .field("clients", &clients)
            .field("untrusted_ca", &self.untrusted_ca.name)
            .field("untrusted_client", &self.untrusted_client.name)
            .finish_non_exhaustive()
    }
}

/// The server's SANs: DNS `localhost`, DNS `mbaps-server`, IP `127.0.0.1`, IP `::1`.
fn server_names() -> Result<Vec<SanType>, PkiError> {
    let dns = |name: &str| {
        name.try_into()
            .map(SanType::DnsName)
            .map_err(PkiError::rcgen(format!("server name {name}")))
    };
    Ok(vec![
        dns("localhost")?,
        dns("mbaps-server")?,
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ])
}

/// A client leaf: CN `client <name>`, clientAuth, no SAN.
fn client_spec<'a>(
    name: &'a str,
    role: &'a RoleExtension,
    validity: Validity,
    serial: SerialNumber,
) -> LeafSpec<'a> {
    LeafSpec {
        name,
        cn: format!("client {name}"),
        usage: ExtendedKeyUsagePurpose::ClientAuth,
        subject_alt_names: Vec::new(),
        role,
        validity,
        serial,
    }
}

/// The CRL of `issuer` revoking `revoked` (reason keyCompromise).
fn crl(
    issuer: &Authority,
    revoked: &[SerialNumber],
    now: OffsetDateTime,
) -> Result<rcgen::CertificateRevocationList, PkiError> {
    let issued = issue::days_from(now, -1)?;
    let params = CertificateRevocationListParams {
        this_update: issued,
        next_update: issue::days_from(now, issue::LEAF_DAYS)?,
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: serial.clone(),
                revocation_time: issued,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(&issuer.issuer())
        .map_err(PkiError::rcgen("CRL"))
}
