//! The client's configuration.

use std::sync::Arc;

use rustls::client::ClientSessionMemoryCache;
use std::time::Duration;

use rustls::KeyLog;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::time_provider::TimeProvider;

use super::plain::{PlainConfigBuilder, check_request_timeout};
use super::verify::{ChainOnlyVerifier, PinnedVerifier};
use super::{
    ConfigError, DEFAULT_MAX_OUTSTANDING, Timers, TlsVersions, check_outstanding, crypto_provider,
    root_store,
};

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

/// Servers whose sessions a client keeps for resumption (as rustls's
/// default).
const RESUMABLE_SESSIONS: usize = 256;

/// A client's configuration: TLS, or explicitly plain Modbus/TCP.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) max_outstanding: usize,
    pub(crate) timers: Timers,
    pub(crate) request_timeout: Duration,
    /// The TLS session store, to forget sessions fatal alerts end.
    pub(crate) sessions: Option<Arc<ClientSessionMemoryCache>>,
    /// The client's own certificate (the leaf of its chain).
    pub(crate) certificate: Option<CertificateDer<'static>>,
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

    /// How long a request waits for its response by default.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How many requests may be in flight at once.
    pub fn max_outstanding(&self) -> usize {
        self.max_outstanding
    }

    /// The session's timers (the handshake's, the idle and close timeouts).
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The client's own certificate, which says who it is to the server
    /// (its role, R-04); `None` for plain Modbus/TCP.
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.certificate.as_ref()
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
                sessions: None,
                certificate: None,
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
        self.timers.validate()?;
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
        let certificate = self.chain.first().cloned();
        let mut tls = builder
            .with_protocol_versions(self.versions.versions())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain, self.key)
            .map_err(ConfigError::Key)?;
        let sessions = self
            .resumption
            .then(|| Arc::new(ClientSessionMemoryCache::new(RESUMABLE_SESSIONS)));
        tls.resumption = match &sessions {
            Some(sessions) => rustls::client::Resumption::store(Arc::clone(sessions) as _),
            None => rustls::client::Resumption::disabled(),
        };
        if let Some(key_log) = self.key_log {
            tls.key_log = key_log;
        }
        Ok(ClientConfig {
            tls: Some(Arc::new(tls)),
            max_outstanding: self.max_outstanding,
            timers: self.timers,
            request_timeout: self.request_timeout,
            sessions,
            certificate,
        })
    }
}
