//! The server's configuration.

use std::sync::Arc;

use mbaps_authz::{Policy, Role};
use rustls::KeyLog;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::resumption::ServerSessions;
use rustls::time_provider::TimeProvider;

use super::crl::CrlIssuers;
use super::plain::PlainConfigBuilder;
use super::verify::RoleCheckingVerifier;
use super::{
    ConfigError, CrlScope, DEFAULT_MAX_OUTSTANDING, Timers, TlsVersions, check_outstanding,
    crypto_provider, root_store,
};

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
    /// The TLS session store, to forget sessions fatal alerts end.
    pub(crate) sessions: Option<Arc<ServerSessions>>,
    /// The client certificate verifier and its clock, to check open
    /// sessions again when a configuration is reloaded.
    pub(crate) verifier: Option<(Arc<dyn ClientCertVerifier>, Arc<dyn TimeProvider>)>,
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
                sessions: None,
                verifier: None,
            },
        }
    }
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
    /// (default: the whole chain, and then every root needs a CRL: see
    /// [`ConfigError::MissingCrl`]).
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

    /// Requests outstanding per session (1..=256, default 16): the
    /// session's window. Further requests wait in the session's buffer,
    /// and the adapter stops reading, until a response frees a slot: a
    /// client that pipelines more is slowed down by TCP, never refused.
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
        self.timers.validate()?;
        if self.chain.is_empty() {
            return Err(ConfigError::EmptyChain);
        }
        let provider = Arc::new(crypto_provider());
        let crl_issuers = CrlIssuers::of(&self.crls)?;
        crl_issuers.check_roots(&self.roots, self.crl_scope)?;
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
        let verifier = Arc::new(RoleCheckingVerifier {
            inner: verifier,
            crls: crl_issuers,
            crl_scope: self.crl_scope,
        });
        let clock: Arc<dyn TimeProvider> = match &self.time_provider {
            Some(time) => Arc::clone(time),
            None => Arc::new(rustls::time_provider::DefaultTimeProvider),
        };
        let builder = match self.time_provider {
            Some(time) => rustls::ServerConfig::builder_with_details(provider, time),
            None => rustls::ServerConfig::builder_with_provider(provider),
        };
        let mut tls = builder
            .with_protocol_versions(self.versions.versions())?
            .with_client_cert_verifier(Arc::clone(&verifier) as Arc<dyn ClientCertVerifier>)
            .with_single_cert(self.chain, self.key)
            .map_err(ConfigError::Key)?;
        let sessions =
            (self.session_cache_size > 0).then(|| ServerSessions::new(self.session_cache_size));
        tls.session_storage = match &sessions {
            Some(sessions) => Arc::clone(sessions) as _,
            None => Arc::new(rustls::server::NoServerSessionStorage {}),
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
            sessions,
            verifier: Some((verifier, clock)),
        })
    }
}
