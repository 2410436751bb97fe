//! What the loopback tests share: a PKI valid now, the example policy,
//! configurations built from them, and the std and tokio adapters behind
//! one interface so that every test runs on every pairing.
#![allow(dead_code, unreachable_pub)]

pub mod attack;
pub mod gateway;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mbaps_admission::SessionLog;
use mbaps_admission::{AdmissionLimits, AuditEntry, Auditor};
use mbaps_authz::Policy;
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use mbaps_session::{ClientConfig, ClientError, Handler, Pdu, ServerConfig, parse_private_key};
use mbaps_std::{StdClient, StdServer};
use mbaps_test_pki::{Credential, TestPki};
use mbaps_tokio::{AsyncHandler, IncomingRequest, IntoAnswering, Later, TokioClient, TokioServer};

/// One PKI for the whole test binary, valid now (the servers use the
/// system clock): generating keys is the slow part of every test.
#[allow(clippy::disallowed_methods)] // the tests issue certificates valid now
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(std::time::SystemTime::now()).unwrap())
}

/// The runtime the tokio servers and clients of a test binary run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn chain(credential: &Credential) -> Vec<CertificateDer<'static>> {
    credential
        .chain_der
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect()
}

pub fn key(credential: &Credential) -> PrivateKeyDer<'static> {
    parse_private_key(credential.key_pem.as_bytes()).unwrap()
}

pub fn ca(pki: &TestPki) -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(pki.ca.cert_der.clone())]
}

/// The example policy: viewer reads, operator reads and writes.
pub fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.toml")).unwrap()
}

/// The server of `pki` with the example policy.
pub fn server_config(pki: &TestPki) -> ServerConfig {
    ServerConfig::builder(ca(pki), chain(&pki.server), key(&pki.server), policy())
        .build()
        .unwrap()
}

/// A client with `credential`, trusting `pki`'s CA.
pub fn client_config(pki: &TestPki, credential: &Credential) -> ClientConfig {
    ClientConfig::builder(ca(pki), chain(credential), key(credential))
        .build()
        .unwrap()
}

/// The client with role `name` of the shared PKI.
pub fn role_config(name: &str) -> ClientConfig {
    client_config(pki(), pki().client(name).unwrap())
}

pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Which adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    Std,
    Tokio,
}

/// Every (server, client) pairing.
pub const PAIRINGS: [(Adapter, Adapter); 4] = [
    (Adapter::Std, Adapter::Std),
    (Adapter::Tokio, Adapter::Tokio),
    (Adapter::Std, Adapter::Tokio),
    (Adapter::Tokio, Adapter::Std),
];

/// A server running on 127.0.0.1, stopped by `stop`.
pub struct Running {
    pub address: SocketAddr,
    stop: Box<dyn FnOnce()>,
}

impl Running {
    pub fn stop(self) {
        (self.stop)()
    }
}

pub fn start(
    adapter: Adapter,
    config: ServerConfig,
    handler: impl Handler,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
) -> Running {
    start_bounded(adapter, config, handler, observer, Bounds::default())
}

/// A server's admission bounds and write timeout.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub limits: AdmissionLimits,
    pub write_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            limits: AdmissionLimits::default(),
            write_timeout: mbaps_admission::DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// [`start`] with `bounds`.
pub fn start_bounded(
    adapter: Adapter,
    config: ServerConfig,
    handler: impl Handler,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
    bounds: Bounds,
) -> Running {
    start_observed(adapter, config, handler, observer, bounds, None)
}

/// The audit trail a server wrote, as its entries.
pub type Trail = Arc<std::sync::Mutex<Vec<AuditEntry>>>;

/// [`start_bounded`] with an audit trail kept in memory, each entry also
/// handed to `also` (a file's sink).
pub fn start_audited_with(
    adapter: Adapter,
    config: ServerConfig,
    handler: impl Handler,
    bounds: Bounds,
    also: impl Fn(&AuditEntry) + Send + Sync + 'static,
) -> (Running, Trail) {
    let trail = Trail::default();
    let kept = Arc::clone(&trail);
    let auditor: Auditor = Arc::new(move |entry: &AuditEntry| {
        kept.lock().unwrap().push(entry.clone());
        also(entry);
    });
    let running = start_observed(adapter, config, handler, |_| {}, bounds, Some(auditor));
    (running, trail)
}

/// A plain Modbus/TCP front, every connection authorized as the operator.
pub fn plain_server_config() -> ServerConfig {
    let role = mbaps_authz::Role::new("operator").unwrap();
    ServerConfig::plain(policy(), Some(role)).build().unwrap()
}

/// [`start_bounded`] with an audit trail kept in memory.
pub fn start_audited(
    adapter: Adapter,
    config: ServerConfig,
    handler: impl Handler,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
    bounds: Bounds,
) -> (Running, Trail) {
    let trail = Trail::default();
    let kept = Arc::clone(&trail);
    let auditor: Auditor = Arc::new(move |entry: &AuditEntry| {
        kept.lock().unwrap().push(entry.clone());
    });
    let running = start_observed(adapter, config, handler, observer, bounds, Some(auditor));
    (running, trail)
}

fn start_observed(
    adapter: Adapter,
    config: ServerConfig,
    handler: impl Handler,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
    bounds: Bounds,
    auditor: Option<Auditor>,
) -> Running {
    match adapter {
        Adapter::Std => {
            let mut server = StdServer::bind("127.0.0.1:0", config, handler)
                .unwrap()
                .admission(bounds.limits)
                .write_timeout(bounds.write_timeout)
                .on_log(observer);
            if let Some(auditor) = auditor {
                server = server.on_audit(move |entry| auditor(entry));
            }
            let handle = server.spawn().unwrap();
            Running {
                address: handle.local_addr(),
                stop: Box::new(move || handle.stop()),
            }
        }
        Adapter::Tokio => start_tokio(config, handler, observer, bounds, auditor),
    }
}

/// A tokio server on 127.0.0.1 with the preset register map, the example
/// policy and the PKI's server certificate; stopped by `shutdown`.
pub async fn preset_server() -> mbaps_tokio::ServerHandle {
    TokioServer::bind(
        "127.0.0.1:0",
        server_config(pki()),
        mbaps_simulator::RegisterMap::new(mbaps_simulator::Tables::preset()),
    )
    .await
    .unwrap()
    .spawn()
    .unwrap()
}

/// A tokio server answering with an async `handler` (on 127.0.0.1, with
/// `bounds`), stopped by `stop`.
pub fn start_later(
    config: ServerConfig,
    handler: impl AsyncHandler,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
    bounds: Bounds,
) -> Running {
    start_tokio(config, Later(handler), observer, bounds, None)
}

/// A tokio server answering as `answering` says.
fn start_tokio(
    config: ServerConfig,
    answering: impl IntoAnswering,
    observer: impl Fn(&SessionLog) + Send + Sync + 'static,
    bounds: Bounds,
    auditor: Option<Auditor>,
) -> Running {
    let handle = runtime().block_on(async {
        let mut server = TokioServer::bind("127.0.0.1:0", config, answering)
            .await
            .unwrap()
            .admission(bounds.limits)
            .write_timeout(bounds.write_timeout)
            .on_log(observer);
        if let Some(auditor) = auditor {
            server = server.on_audit(move |entry| auditor(entry));
        }
        server.spawn().unwrap()
    });
    Running {
        address: handle.local_addr(),
        stop: Box::new(move || runtime().block_on(handle.shutdown()).unwrap()),
    }
}

/// The preset register map, answering a read of register 999 after
/// `slow` (and saying when it starts), everything else at once: a session
/// with that read in its handler is busy.
pub struct SlowAt999 {
    map: mbaps_simulator::RegisterMap,
    slow: Duration,
    started: Arc<tokio::sync::Notify>,
}

impl SlowAt999 {
    pub fn new(slow: Duration) -> SlowAt999 {
        SlowAt999 {
            map: mbaps_simulator::RegisterMap::new(mbaps_simulator::Tables::preset()),
            slow,
            started: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified when the slow read starts.
    pub fn started(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.started)
    }
}

impl Handler for SlowAt999 {
    fn handle(
        &self,
        context: &mbaps_session::RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut mbaps_session::Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        if let Request::ReadHoldingRegisters { address: 999, .. } = request {
            self.started.notify_one();
            std::thread::sleep(self.slow);
        }
        self.map.handle(context, request, reply)
    }
}

/// An async device that reads only holding registers, register n holding
/// n: a read of register 999 is answered after `slow` (without holding a
/// runtime worker), the others at once.
#[derive(Clone, Copy, Debug)]
pub struct SlowLaterAt999 {
    pub slow: Duration,
}

impl AsyncHandler for SlowLaterAt999 {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        let slow = self.slow;
        async move {
            if let Ok(Request::ReadHoldingRegisters { address: 999, .. }) = request.request() {
                tokio::time::sleep(slow).await;
            }
            registers_from(&request)
        }
    }
}

/// The answer to a read of holding registers where register n holds n;
/// 0x01 to anything else.
pub fn registers_from(request: &IncomingRequest) -> Result<Pdu, ExceptionCode> {
    let Ok(Request::ReadHoldingRegisters { address, quantity }) = request.request() else {
        return Err(ExceptionCode::IllegalFunction);
    };
    let values: Vec<u16> = (address..=u16::MAX).take(quantity.into()).collect();
    Pdu::encode_response(&Response::ReadHoldingRegisters {
        values: Registers::from_values(&values),
    })
    .map_err(|_| ExceptionCode::IllegalDataAddress)
}

/// A connected client of either adapter, called the blocking way.
pub trait Caller {
    fn request(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError>;
    fn close(self: Box<Self>);
}

impl Caller for StdClient {
    fn request(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        StdClient::request(self, unit_id, request)
    }

    fn close(self: Box<Self>) {
        StdClient::close(*self).unwrap();
    }
}

impl Caller for TokioClient {
    fn request(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        runtime().block_on(TokioClient::request(self, unit_id, request))
    }

    fn close(self: Box<Self>) {}
}

pub fn connect(
    adapter: Adapter,
    address: SocketAddr,
    config: ClientConfig,
) -> Result<Box<dyn Caller>, ClientError> {
    Ok(match adapter {
        Adapter::Std => Box::new(StdClient::connect(address, &config, localhost())?),
        Adapter::Tokio => {
            Box::new(runtime().block_on(TokioClient::connect(address, config, localhost()))?)
        }
    })
}

/// Waits (at most 10 s) until `log` holds an entry `wanted` accepts.
#[allow(clippy::disallowed_methods)] // waits for a real server
pub fn wait_for_log(log: &std::sync::Mutex<Vec<SessionLog>>, wanted: impl Fn(&SessionLog) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log.lock().unwrap().iter().any(&wanted) {
        assert!(
            std::time::Instant::now() < deadline,
            "not logged: {:#?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects a server's log.
pub fn log_sink() -> (
    Arc<std::sync::Mutex<Vec<SessionLog>>>,
    impl Fn(&SessionLog) + Send + Sync + 'static,
) {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    (log, move |entry: &SessionLog| {
        sink.lock().unwrap().push(entry.clone())
    })
}

/// A plain Modbus/TCP device that waits for `batch` requests before
/// answering any, then answers them newest first: a client that keeps only
/// one request in flight never gets an answer, and one that matches
/// responses by order gets the wrong ones. Read holding registers answers
/// `address, address + 1, ...`.
pub fn reverse_order_device(batch: usize) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut input = Vec::new();
                let mut buf = [0u8; 4096];
                let mut held = Vec::new();
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => input.extend_from_slice(&buf[..n]),
                    }
                    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) =
                        mbaps_codec::decode(&input)
                    {
                        held.push(answer(adu.header, adu.pdu));
                        input.drain(..consumed);
                    }
                    if held.len() >= batch {
                        for reply in held.drain(..).rev() {
                            stream.write_all(&reply).unwrap();
                        }
                    }
                }
            });
        }
    });
    address
}

fn answer(header: mbaps_codec::MbapHeader, pdu: &[u8]) -> Vec<u8> {
    use mbaps_codec::{Registers, Response};
    let Ok(Request::ReadHoldingRegisters { address, quantity }) = Request::decode(pdu) else {
        panic!("the device answers read holding registers only");
    };
    let values: Vec<u16> = (address..address + quantity).collect();
    let response = Response::ReadHoldingRegisters {
        values: Registers::from_values(&values),
    };
    let mut out = [0u8; 260];
    let n = mbaps_codec::encode_response(header, &response, &mut out).unwrap();
    out[..n].to_vec()
}

/// A plain Modbus/TCP client configuration.
pub fn plain_client() -> ClientConfig {
    ClientConfig::plain().build().unwrap()
}

/// A server with a small receive buffer that completes the handshake,
/// then never reads again (its window fills) and never answers.
pub async fn deaf_server() -> SocketAddr {
    let tls = Arc::new(server_config(pki()).tls().unwrap().clone());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = stream.into_std().unwrap();
        socket.set_nonblocking(false).unwrap();
        std::thread::spawn(move || {
            let mut conn = mbaps_session::rustls::ServerConnection::new(tls).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut socket).is_err() {
                    return;
                }
            }
            // Held open, unread, for longer than the test.
            std::thread::sleep(Duration::from_secs(60));
        });
    });
    address
}

/// Bytes written to `port` on loopback that its socket has not taken yet
/// (the send queues of the ESTABLISHED connections to it).
pub fn send_queue_to(port: u16) -> usize {
    attack::established_tcp()
        .filter(|socket| socket.remote_port == port)
        .map(|socket| socket.send_queue)
        .sum()
}
