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

use std::sync::Arc;
use std::time::Duration;

use mbaps_authz::{Policy, Role, role_from_certificate};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::time_provider::TimeProvider;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, KeyLog,
    OtherError, RootCertStore, SignatureScheme, SupportedProtocolVersion,
};

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

fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, ConfigError> {
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
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// Default bound on requests outstanding per session (Implementation
/// Guide 4.2: 16 is typical).
pub const DEFAULT_MAX_OUTSTANDING: usize = 16;

/// The most requests outstanding a session may be configured for: one per
/// transaction id would be 65,536, but each costs memory; 256 is far above
/// any device's queue.
pub const MAX_OUTSTANDING_LIMIT: usize = 256;

fn check_outstanding(value: usize) -> Result<(), ConfigError> {
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

/// A server's configuration: TLS (or, explicitly, plain Modbus/TCP), the
/// authorization policy, and limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) max_outstanding: usize,
    pub(crate) timers: Timers,
    /// The role every plain Modbus/TCP connection is authorized as.
    pub(crate) plain_role: Option<Role>,
}

impl ServerConfig {
    /// A builder: `roots` are the CAs client certificates must chain to,
    /// `chain` the server's certificate followed by its intermediates,
    /// `key` its private key, `policy` the authorization policy.
    pub fn builder(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        policy: Policy,
    ) -> ServerConfigBuilder {
        ServerConfigBuilder {
            roots,
            chain,
            key,
            policy: Arc::new(policy),
            crls: Vec::new(),
            crl_scope: CrlScope::WholeChain,
            versions: TlsVersions::Both,
            time_provider: None,
            key_log: None,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
            timers: Timers::default(),
            session_cache_size: 256,
        }
    }

    /// The policy requests are authorized against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The rustls configuration, for inspection; `None` for plain Modbus/TCP.
    pub fn tls(&self) -> Option<&rustls::ServerConfig> {
        self.tls.as_deref()
    }

    /// Plain Modbus/TCP (port 502), **without TLS**: no encryption and no
    /// authentication. For migrating plants and as the baseline in
    /// benchmarks; never built unless asked for. Every connection is
    /// authorized as `role` (`None`: the NULL role), since no certificate
    /// says who the client is.
    pub fn plain(policy: Policy, role: Option<Role>) -> PlainConfigBuilder<ServerConfig> {
        PlainConfigBuilder {
            config: ServerConfig {
                tls: None,
                policy: Arc::new(policy),
                max_outstanding: DEFAULT_MAX_OUTSTANDING,
                timers: Timers::default(),
                plain_role: role,
            },
        }
    }
}

/// Builds a plain Modbus/TCP configuration ([`ServerConfig::plain`],
/// [`ClientConfig::plain`]).
pub struct PlainConfigBuilder<C> {
    config: C,
}

impl PlainConfigBuilder<ServerConfig> {
    /// Requests outstanding per session (1..=256, default 16).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.config.max_outstanding = max;
        self
    }

    /// The idle timeout (the handshake timeout does not apply).
    pub fn timers(mut self, timers: Timers) -> Self {
        self.config.timers = timers;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        check_outstanding(self.config.max_outstanding)?;
        Ok(self.config)
    }
}

impl PlainConfigBuilder<ClientConfig> {
    /// Requests in flight at once (1..=256, default 16).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.config.max_outstanding = max;
        self
    }

    /// The idle timeout.
    pub fn timers(mut self, timers: Timers) -> Self {
        self.config.timers = timers;
        self
    }

    /// How long a request may wait for its response (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        check_outstanding(self.config.max_outstanding)?;
        check_request_timeout(self.config.request_timeout)?;
        Ok(self.config)
    }
}

fn check_request_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::Option {
            option: "request_timeout",
            value: "0 s".into(),
            limit: "more than zero",
        });
    }
    Ok(())
}

/// Builds a [`ServerConfig`].
pub struct ServerConfigBuilder {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    policy: Arc<Policy>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    crl_scope: CrlScope,
    versions: TlsVersions,
    time_provider: Option<Arc<dyn TimeProvider>>,
    key_log: Option<Arc<dyn KeyLog>>,
    max_outstanding: usize,
    timers: Timers,
    session_cache_size: usize,
}

impl ServerConfigBuilder {
    /// Certificate revocation lists: a client certificate they revoke is
    /// refused. With CRLs given, a certificate in [`CrlScope`] whose
    /// revocation status they do not cover is refused too.
    pub fn crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls = crls;
        self
    }

    /// Which certificates of a client chain the CRLs must vouch for
    /// (default: the whole chain).
    pub fn crl_scope(mut self, scope: CrlScope) -> Self {
        self.crl_scope = scope;
        self
    }

    /// Which TLS versions to accept.
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// The clock certificate validity is checked against (rustls's time
    /// provider); the system clock by default. Tests fix it.
    pub fn time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time_provider = Some(time);
        self
    }

    /// Logs TLS secrets in SSLKEYLOGFILE format, so that a capture can be
    /// decrypted in Wireshark. Off by default; never in production.
    pub fn key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
        self.key_log = Some(key_log);
        self
    }

    /// Requests outstanding per session (1..=256, default 16): beyond, a
    /// request is answered exception 0x06 (server device busy).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.max_outstanding = max;
        self
    }

    /// Handshake and idle timeouts.
    pub fn timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// Sessions remembered for resumption; 0 turns resumption off.
    pub fn session_cache_size(mut self, sessions: usize) -> Self {
        self.session_cache_size = sessions;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        check_outstanding(self.max_outstanding)?;
        if self.chain.is_empty() {
            return Err(ConfigError::EmptyChain);
        }
        let provider = Arc::new(crypto_provider());
        let roots = root_store(&self.roots)?;
        let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        if !self.crls.is_empty() {
            verifier = verifier.with_crls(self.crls);
            if self.crl_scope == CrlScope::EndEntityOnly {
                verifier = verifier.only_check_end_entity_revocation();
            }
        }
        let verifier = verifier
            .build()
            .map_err(|e| ConfigError::Verifier(e.to_string()))?;
        let verifier = Arc::new(RoleCheckingVerifier { inner: verifier });
        let builder = match self.time_provider {
            Some(time) => rustls::ServerConfig::builder_with_details(provider, time),
            None => rustls::ServerConfig::builder_with_provider(provider),
        };
        let mut tls = builder
            .with_protocol_versions(self.versions.versions())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain, self.key)
            .map_err(ConfigError::Key)?;
        tls.session_storage = if self.session_cache_size == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            ServerSessionMemoryCache::new(self.session_cache_size)
        };
        if self.session_cache_size == 0 {
            tls.send_tls13_tickets = 0;
        }
        if let Some(key_log) = self.key_log {
            tls.key_log = key_log;
        }
        Ok(ServerConfig {
            tls: Some(Arc::new(tls)),
            policy: self.policy,
            max_outstanding: self.max_outstanding,
            timers: self.timers,
            plain_role: None,
        })
    }
}

/// Verifies a client certificate as webpki does, then checks that its role
/// extension, if any, is well formed: a certificate with two roles or a role
/// of the wrong type fails the handshake with a fatal alert.
#[derive(Debug)]
struct RoleCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RoleCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        role_from_certificate(end_entity).map_err(|err| {
            TlsError::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug)]
pub enum ServerVerification {
    /// The chain must lead to a root and the certificate must name the
    /// server (DNS name or IP address SAN) given to [`crate::Client::new`].
    /// The default, and the only safe choice where names are available.
    ChainAndName,
    /// The chain must lead to a root, but the name is not checked: for
    /// devices whose certificates carry neither the DNS name nor the IP
    /// address they are reached at. Any certificate the roots issued is
    /// accepted for any server.
    ChainOnlyNameNotCheckedInsecure,
    /// The server's leaf certificate must be exactly this one (a pinned,
    /// typically self-signed, device certificate); roots are not used.
    Pinned(CertificateDer<'static>),
}

/// A client's configuration: TLS, or explicitly plain Modbus/TCP.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) max_outstanding: usize,
    pub(crate) timers: Timers,
    pub(crate) request_timeout: Duration,
}

impl ClientConfig {
    /// A builder: `roots` are the CAs the server's certificate must chain
    /// to, `chain` the client's certificate (with its role) followed by its
    /// intermediates, `key` its private key.
    pub fn builder(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> ClientConfigBuilder {
        ClientConfigBuilder {
            roots,
            chain,
            key,
            verification: ServerVerification::ChainAndName,
            crls: Vec::new(),
            versions: TlsVersions::Both,
            time_provider: None,
            key_log: None,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
            timers: Timers {
                idle_timeout: None,
                ..Timers::default()
            },
            request_timeout: Duration::from_secs(5),
            resumption: true,
        }
    }

    /// The rustls configuration, for inspection; `None` for plain Modbus/TCP.
    pub fn tls(&self) -> Option<&rustls::ClientConfig> {
        self.tls.as_deref()
    }

    /// Plain Modbus/TCP (port 502), **without TLS**: no encryption, no
    /// authentication of either side. For migration and benchmarks only.
    pub fn plain() -> PlainConfigBuilder<ClientConfig> {
        PlainConfigBuilder {
            config: ClientConfig {
                tls: None,
                max_outstanding: DEFAULT_MAX_OUTSTANDING,
                timers: Timers {
                    idle_timeout: None,
                    ..Timers::default()
                },
                request_timeout: Duration::from_secs(5),
            },
        }
    }
}

/// Builds a [`ClientConfig`].
pub struct ClientConfigBuilder {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verification: ServerVerification,
    crls: Vec<CertificateRevocationListDer<'static>>,
    versions: TlsVersions,
    time_provider: Option<Arc<dyn TimeProvider>>,
    key_log: Option<Arc<dyn KeyLog>>,
    max_outstanding: usize,
    timers: Timers,
    request_timeout: Duration,
    resumption: bool,
}

impl ClientConfigBuilder {
    /// How the server's certificate is checked (default: chain and name).
    pub fn verification(mut self, verification: ServerVerification) -> Self {
        self.verification = verification;
        self
    }

    /// CRLs the server's chain is checked against.
    pub fn crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls = crls;
        self
    }

    /// Which TLS versions to offer.
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// The clock certificate validity is checked against.
    pub fn time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time_provider = Some(time);
        self
    }

    /// Logs TLS secrets in SSLKEYLOGFILE format (opt-in, for Wireshark).
    pub fn key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
        self.key_log = Some(key_log);
        self
    }

    /// Requests in flight at once (1..=256, default 16).
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.max_outstanding = max;
        self
    }

    /// Handshake and idle timeouts (idle: none by default for a client).
    pub fn timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// How long a request may wait for its response (default 5 s); the
    /// specification leaves it to the user.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether to resume sessions (R-42; on by default).
    pub fn resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        check_outstanding(self.max_outstanding)?;
        if self.chain.is_empty() {
            return Err(ConfigError::EmptyChain);
        }
        check_request_timeout(self.request_timeout)?;
        let provider = Arc::new(crypto_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.verification {
            ServerVerification::Pinned(pinned) => Arc::new(PinnedVerifier {
                pinned,
                algorithms: provider.signature_verification_algorithms,
            }),
            verification => {
                let roots = root_store(&self.roots)?;
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
                if !self.crls.is_empty() {
                    builder = builder.with_crls(self.crls);
                }
                let webpki = builder
                    .build()
                    .map_err(|e| ConfigError::Verifier(e.to_string()))?;
                match verification {
                    ServerVerification::ChainOnlyNameNotCheckedInsecure => {
                        Arc::new(ChainOnlyVerifier { inner: webpki })
                    }
                    _ => webpki,
                }
            }
        };
        let builder = match self.time_provider {
            Some(time) => rustls::ClientConfig::builder_with_details(provider, time),
            None => rustls::ClientConfig::builder_with_provider(provider),
        };
        let mut tls = builder
            .with_protocol_versions(self.versions.versions())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain, self.key)
            .map_err(ConfigError::Key)?;
        if !self.resumption {
            tls.resumption = rustls::client::Resumption::disabled();
        }
        if let Some(key_log) = self.key_log {
            tls.key_log = key_log;
        }
        Ok(ClientConfig {
            tls: Some(Arc::new(tls)),
            max_outstanding: self.max_outstanding,
            timers: self.timers,
            request_timeout: self.request_timeout,
        })
    }
}

/// webpki verification with name mismatches forgiven.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts exactly one server certificate; signatures are still checked.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
