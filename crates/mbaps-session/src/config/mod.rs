//! Configurations that meet the specification by default: a user cannot
//! build a non-conforming endpoint by accident.
//!
//! - TLS 1.2 and 1.3 only.
//! - Cipher suites: for TLS 1.2, the specification's ECDHE AEAD suites
//!   `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256` and
//!   `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`; for TLS 1.3, its AEAD
//!   suites. rustls has no static-RSA, CBC or NULL suite (R-36, R-67: see
//!   `docs/conformance.md`).
//! - The server always requests and requires a client certificate, verified
//!   against the configured roots and CRLs; a
//!   client certificate whose role extension is malformed is refused in the
//!   handshake with a fatal alert.
//! - Whole chains are sent: give the leaf and its intermediates.
//! - Session resumption is on; rustls keeps the client certificate
//!   with the session, so the role stays with a resumed session.
//! - rustls never renegotiates.

mod client;
mod crl;
mod plain;
mod server;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{Error as TlsError, RootCertStore, SupportedProtocolVersion};

pub use client::{ClientConfig, ClientConfigBuilder, ServerVerification};
pub use plain::PlainConfigBuilder;
pub use server::{ServerConfig, ServerConfigBuilder};

/// A configuration that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No trust anchor: the peer could not be verified.
    #[error("no trusted root certificate was given: the peer's certificate could not be verified")]
    NoRoots,
    /// A root certificate rustls cannot use.
    #[error("root certificate {index} cannot be used as a trust anchor: {source}")]
    BadRoot {
        /// Its position in the list given.
        index: usize,
        /// Why.
        source: TlsError,
    },
    /// The own certificate chain is empty.
    #[error("the certificate chain is empty: give the leaf certificate and its intermediates")]
    EmptyChain,
    /// The private key does not fit the certificate, or cannot be used.
    #[error("the private key cannot be used with the certificate: {0}")]
    Key(TlsError),
    /// The client certificate verifier could not be built (e.g. a bad CRL).
    #[error("the client certificate verifier: {0}")]
    Verifier(String),
    /// CRLs were given, and the whole chain must be vouched for
    /// ([`CrlScope::WholeChain`]), but no CRL comes from this root: every
    /// certificate it issued would have an unknown revocation status.
    #[error(
        "no CRL from the root CA {issuer:?}: with the whole chain in the CRL scope, every certificate it issued would be refused (unknown revocation status); give its CRL, or check only the client's own certificate (CrlScope::EndEntityOnly, mbaps server --crl-scope end-entity)"
    )]
    MissingCrl {
        /// The root's subject (RFC 4514).
        issuer: String,
    },
    /// An option outside its range.
    #[error("{option} is {value}, but must be {limit}")]
    Option {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        limit: &'static str,
    },
    /// Any other rustls error.
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsError),
}

/// Which TLS versions to offer or accept; both by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and TLS 1.3.
    Both,
    /// TLS 1.2 only (the version the specification is written for).
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

impl TlsVersions {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::Both => &BOTH,
            TlsVersions::Tls12Only => &TLS12,
            TlsVersions::Tls13Only => &TLS13,
        }
    }
}

/// The crypto provider (ring) limited to the specification's suites.
pub fn crypto_provider() -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite::*;
    let base = rustls::crypto::ring::default_provider();
    CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        ..base
    }
}

pub(crate) fn root_store(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<RootCertStore>, ConfigError> {
    if roots.is_empty() {
        return Err(ConfigError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for (index, root) in roots.iter().enumerate() {
        store
            .add(root.clone())
            .map_err(|source| ConfigError::BadRoot { index, source })?;
    }
    Ok(Arc::new(store))
}

/// Which certificates of a chain CRLs must vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlScope {
    /// Every certificate of the chain: the CRLs must cover the
    /// intermediates too, or the handshake fails with an unknown
    /// revocation status. The default, and the strict choice.
    WholeChain,
    /// Only the end-entity certificate: for PKIs that publish a CRL for
    /// their leaves only.
    EndEntityOnly,
}

/// Session limits and timers shared by both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// The handshake must finish within this time of the session's start.
    pub handshake_timeout: Duration,
    /// A session with no request in flight and no traffic for this long is
    /// closed (`None`: never). Modbus connections are long-lived.
    pub idle_timeout: Option<Duration>,
    /// After our close_notify, how long the peer has to answer with its
    /// own before the session ends anyway: a peer that never answers (or
    /// never reads) cannot keep a closing session open.
    pub close_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// The shortest timeout any timer takes: 1 ms. A shorter one is below
/// what a socket or a scheduler can keep, and a value that rounds to zero
/// would time out everything at once (a zero handshake timeout refuses
/// every client). Where "never" is meant, the option says so (an idle
/// timeout of `None`).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The longest timeout any timer takes: a day. A longer one is a mistake
/// (a value in milliseconds given as seconds), and where "never" is meant
/// the option says so.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Checks that `value`, the option `option`, is from [`MIN_TIMEOUT`] to
/// [`MAX_TIMEOUT`]: the one range of every timeout of mbaps (the
/// configuration file and the command line check theirs against these).
pub fn check_timeout(option: &'static str, value: Duration) -> Result<(), ConfigError> {
    if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&value) {
        return Err(ConfigError::Option {
            option,
            value: format!("{value:?}"),
            limit: "at least 1 ms and at most a day",
        });
    }
    Ok(())
}

impl Timers {
    /// Checks every timer against [`MIN_TIMEOUT`] and [`MAX_TIMEOUT`]
    /// (the idle timeout may be `None`: never).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_timeout("handshake_timeout", self.handshake_timeout)?;
        check_timeout("close_timeout", self.close_timeout)?;
        if let Some(idle) = self.idle_timeout {
            check_timeout("idle_timeout", idle)?;
        }
        Ok(())
    }
}

/// Default bound on requests outstanding per session (Implementation
/// Guide 4.2: 16 is typical).
pub const DEFAULT_MAX_OUTSTANDING: usize = 16;

/// The most requests outstanding a session may be configured for: one per
/// transaction id would be 65,536, but each costs memory; 256 is far above
/// any device's queue.
pub const MAX_OUTSTANDING_LIMIT: usize = 256;

pub(crate) fn check_outstanding(value: usize) -> Result<(), ConfigError> {
    if (1..=MAX_OUTSTANDING_LIMIT).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Option {
            option: "max_outstanding",
            value: value.to_string(),
            limit: "1..=256",
        })
    }
}
