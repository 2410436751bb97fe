//! An in-memory client<->server pair with a virtual clock: both sides are
//! driven until neither has anything to send, so every test is
//! deterministic.
#![allow(dead_code, unreachable_pub)]

pub mod round_trip;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mbaps_authz::Policy;
use mbaps_session::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use mbaps_session::rustls::time_provider::TimeProvider;
use mbaps_session::{
    Client, ClientConfig, ClientConfigBuilder, ClientEvent, CloseReason, Server, ServerConfig,
    ServerConfigBuilder, ServerEvent, SessionError, load_crls, parse_crls, parse_private_key,
};
use mbaps_test_pki::{Credential, TestPki};

/// The instant the test PKI is issued at, and the certificate clock reads.
pub const PKI_TIME_SECS: u64 = 1_800_000_000;

pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(UNIX_EPOCH + Duration::from_secs(PKI_TIME_SECS)).unwrap())
}

/// A certificate clock fixed at the PKI's issue time.
#[derive(Debug)]
pub struct FixedTime;

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            PKI_TIME_SECS,
        )))
    }
}

pub fn chain(credential: &Credential) -> Vec<CertificateDer<'static>> {
    credential
        .chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

pub fn key(credential: &Credential) -> PrivateKeyDer<'static> {
    parse_private_key(credential.key_pem.as_bytes()).unwrap()
}

pub fn ca() -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(pki().ca.cert_der.clone())]
}

pub fn example_policy() -> Policy {
    Policy::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml"),
    )
    .unwrap()
}

pub fn server_builder() -> ServerConfigBuilder {
    let server = &pki().server;
    ServerConfig::builder(ca(), chain(server), key(server), example_policy())
        .time_provider(Arc::new(FixedTime))
}

pub fn client_builder(name: &str) -> ClientConfigBuilder {
    let client = pki()
        .client(name)
        .unwrap_or_else(|| panic!("no client {name}"));
    ClientConfig::builder(ca(), chain(client), key(client)).time_provider(Arc::new(FixedTime))
}

pub fn crls() -> Vec<mbaps_session::rustls::pki_types::CertificateRevocationListDer<'static>> {
    let _ = load_crls; // (files: see the load tests)
    parse_crls(pki().crl_pem.as_bytes()).unwrap()
}

pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Which side failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Server(SessionError),
    Client(SessionError),
}

pub struct Pair {
    pub server: Server,
    pub client: Client,
    pub now: Instant,
    pub server_events: Vec<ServerEvent>,
    pub client_events: Vec<ClientEvent>,
    /// Bytes moved each way, in total.
    pub to_server: usize,
    pub to_client: usize,
    /// Bytes the server did not take yet (its window was full).
    pub server_inbox: Vec<u8>,
}

impl Pair {
    pub fn new(server: &ServerConfig, client: &ClientConfig) -> Pair {
        Self::with_name(server, client, localhost())
    }

    pub fn with_name(
        server: &ServerConfig,
        client: &ClientConfig,
        name: ServerName<'static>,
    ) -> Pair {
        let now = virtual_epoch();
        Pair {
            server: Server::new(server, now).unwrap(),
            client: Client::new(client, name, now).unwrap(),
            now,
            server_events: Vec::new(),
            client_events: Vec::new(),
            to_server: 0,
            to_client: 0,
            server_inbox: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side sends anything; a side
    /// whose session failed (its last event `Closed(Failed(..))`) stops
    /// the drive with its error.
    pub fn drive(&mut self) -> Result<(), Failure> {
        for _ in 0..1000 {
            let mut moved = false;
            let mut bytes = std::mem::take(&mut self.server_inbox);
            self.client.poll_transmit(&mut bytes);
            if !bytes.is_empty() {
                let taken = self.server.handle_tls(self.now, &bytes);
                moved |= taken > 0;
                self.to_server += taken;
                self.server_inbox = bytes.split_off(taken);
            }
            self.collect();
            if let Some(error) = failed(&self.server_events) {
                return Err(Failure::Server(error));
            }
            let mut bytes = Vec::new();
            self.server.poll_transmit(&mut bytes);
            if !bytes.is_empty() {
                moved = true;
                self.to_client += bytes.len();
                self.client.handle_tls(self.now, &bytes);
            }
            self.collect();
            if let Some(error) = failed(&self.client_events) {
                return Err(Failure::Client(error));
            }
            if !moved {
                return Ok(());
            }
        }
        panic!("the pair never went idle");
    }

    /// Drives, and on a failure still delivers what the failing side had to
    /// send (its alert) to the other side; returns both sides' failures.
    pub fn drive_to_failure(&mut self) -> (Option<SessionError>, Option<SessionError>) {
        match self.drive() {
            Ok(()) => (None, None),
            Err(Failure::Server(err)) => {
                let mut alert = Vec::new();
                self.server.poll_transmit(&mut alert);
                self.client.handle_tls(self.now, &alert);
                self.collect();
                (Some(err), failed(&self.client_events))
            }
            Err(Failure::Client(err)) => {
                let mut alert = Vec::new();
                self.client.poll_transmit(&mut alert);
                self.server.handle_tls(self.now, &alert);
                self.collect();
                (failed(&self.server_events), Some(err))
            }
        }
    }

    pub fn collect(&mut self) {
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
    }

    /// The ids of the requests handed to the application so far.
    pub fn request_ids(&self) -> Vec<mbaps_session::RequestId> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Request { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    pub fn advance(&mut self, by: Duration) -> Result<(), Failure> {
        self.now += by;
        self.server.handle_timeout(self.now);
        self.client.handle_timeout(self.now);
        self.collect();
        self.drive()
    }
}

/// The error a side's session failed with: its last event,
/// `Closed(Failed(..))`.
pub fn failed<E: Ended>(events: &[E]) -> Option<SessionError> {
    events.iter().find_map(Ended::failure)
}

/// The events of either side, for [`failed`].
pub trait Ended {
    fn failure(&self) -> Option<SessionError>;
}

impl Ended for ServerEvent {
    fn failure(&self) -> Option<SessionError> {
        match self {
            ServerEvent::Closed(CloseReason::Failed(error)) => Some(error.clone()),
            _ => None,
        }
    }
}

impl Ended for ClientEvent {
    fn failure(&self) -> Option<SessionError> {
        match self {
            ClientEvent::Closed(CloseReason::Failed(error)) => Some(error.clone()),
            _ => None,
        }
    }
}

/// The virtual clock's start: one real instant, taken once.
pub fn virtual_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    #[allow(clippy::disallowed_methods)] // tests own their clock; this is its zero
    *EPOCH.get_or_init(Instant::now)
}
