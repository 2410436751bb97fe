//! A blocking server: a thread per connection, under the admission rules
//! of `mbaps_admission`.

mod connection;
mod reload;
mod session;

pub use reload::Reloader;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mbaps_admission::{
    Admission, AdmissionLimits, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WRITE_TIMEOUT, HELLO_PEEK_LEN,
    Handle, LISTEN_BACKLOG, Logger, Order, Seat, SessionReport, Stage, Table, holds_opening, lock,
};
use mbaps_admission::{Audit, AuditEntry, SessionLog};
use mbaps_session::{Handler, ServerConfig};

use connection::Conn;
use session::Connection;

type Observer = Arc<dyn Fn(&SessionLog) + Send + Sync>;

/// A Modbus/TCP Security server on a `TcpListener`: a thread per
/// connection.
///
/// # Admission
/// The same rules as the tokio server (see
/// [`mbaps_admission`]): handshakes in progress and authenticated
/// sessions are bounded apart ([`StdServer::max_handshakes`],
/// [`StdServer::max_handshakes_per_address`], [`StdServer::max_sessions`]);
/// a full handshake table drops its oldest pending handshake for a
/// newcomer; only a newly authenticated session may close another (one
/// whose peer stopped reading, else the one idle the longest). Every write
/// is bounded by [`StdServer::write_timeout`], so a peer that stops
/// reading cannot pin a thread. Threads: at most the handshake bound plus
/// the session bound, plus connections on their way out.
pub struct StdServer {
    listener: TcpListener,
    config: Reloader,
    handler: Arc<dyn Handler>,
    limits: AdmissionLimits,
    write_timeout: Duration,
    shutdown_grace: Duration,
    observer: Observer,
    audit: Option<Audit>,
}

/// What the accept thread, the session threads and the handle share.
struct Shared {
    table: Table<Arc<Conn>>,
    stopping: AtomicBool,
    /// Connection threads still running.
    threads: Mutex<usize>,
    thread_ended: Condvar,
    log: Logger,
    audit: Option<Audit>,
}

impl Shared {
    fn threads(&self) -> MutexGuard<'_, usize> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no connection thread runs, at most `grace`; whether
    /// none does.
    fn wait_for_threads(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut threads = self.threads();
        while *threads > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            threads = self
                .thread_ended
                .wait_timeout(threads, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Counts a connection thread while it runs (a panicking one too).
struct ThreadCount(Arc<Shared>);

impl Drop for ThreadCount {
    fn drop(&mut self) {
        *self.0.threads() -= 1;
        self.0.thread_ended.notify_all();
    }
}

/// A running server: its address, and a way to stop it.
pub struct ServerHandle {
    address: SocketAddr,
    config: Reloader,
    shared: Arc<Shared>,
    shutdown_grace: Duration,
    thread: Option<JoinHandle<()>>,
}

impl StdServer {
    /// Binds `address` (port 802 for Modbus/TCP Security), with a listen
    /// backlog of [`LISTEN_BACKLOG`].
    pub fn bind(
        address: impl std::net::ToSocketAddrs,
        config: ServerConfig,
        handler: impl Handler,
    ) -> std::io::Result<StdServer> {
        let mut last = None;
        for address in address.to_socket_addrs()? {
            match listen(address) {
                Ok(listener) => return Ok(StdServer::from_listener(listener, config, handler)),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            )
        }))
    }

    /// Serves on a listener bound already (by a service manager, a test).
    pub fn from_listener(
        listener: TcpListener,
        config: ServerConfig,
        handler: impl Handler,
    ) -> StdServer {
        StdServer {
            listener,
            config: Reloader::new(config),
            handler: Arc::new(handler),
            limits: AdmissionLimits::default(),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            observer: Arc::new(|_| {}),
            audit: None,
        }
    }

    /// Authenticated sessions open at once (default 64). When a session
    /// authenticates at the bound, a session whose peer stopped reading is
    /// closed, else the one idle the longest, with close_notify; if none
    /// is, the newcomer is closed.
    pub fn max_sessions(mut self, max: usize) -> StdServer {
        self.limits.max_sessions = max.max(1);
        self
    }

    /// Connections in their TLS handshake at once (default 32); when full,
    /// the oldest pending handshake is dropped for a newcomer.
    pub fn max_handshakes(mut self, max: usize) -> StdServer {
        self.limits.max_handshakes = max.max(1);
        self
    }

    /// Connections in their TLS handshake at once from one address
    /// (default 8; IPv6 counted per /64).
    pub fn max_handshakes_per_address(mut self, max: usize) -> StdServer {
        self.limits.max_handshakes_per_address = max.max(1);
        self
    }

    /// All admission bounds at once (see [`AdmissionLimits`]).
    pub fn admission(mut self, limits: AdmissionLimits) -> StdServer {
        self.limits = limits;
        self
    }

    /// How long a peer has to take what we send it (default 10 s).
    pub fn write_timeout(mut self, timeout: Duration) -> StdServer {
        self.write_timeout = timeout;
        self
    }

    /// How long [`ServerHandle::stop`] waits for sessions to finish
    /// (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> StdServer {
        self.shutdown_grace = grace;
        self
    }

    /// Called with every session event worth logging (authentication,
    /// denials for the audit log, failures, refusals and evictions with
    /// their reasons, closes).
    pub fn on_log(mut self, observer: impl Fn(&SessionLog) + Send + Sync + 'static) -> StdServer {
        self.observer = Arc::new(observer);
        self
    }

    /// Called with every entry of the audit trail: each session's start
    /// (with the client's certificate) and end (exactly once, however it
    /// ended), and each request's record, denied and rejected ones
    /// included. Called on the sessions' threads: hand the entry over (a
    /// bounded queue, a counter) rather than write it there.
    pub fn on_audit(mut self, auditor: impl Fn(&AuditEntry) + Send + Sync + 'static) -> StdServer {
        self.audit = Some(Audit::new(Arc::new(auditor)));
        self
    }

    /// As [`StdServer::on_audit`], with records that carry each request's
    /// and response's PDUs, as received and as sent ([`Audit::with_pdus`]):
    /// what a tap of the plaintext conversation (`mbaps_observe::tap`)
    /// reads. Each record then holds a copy of both.
    pub fn on_audit_with_pdus(
        mut self,
        auditor: impl Fn(&AuditEntry) + Send + Sync + 'static,
    ) -> StdServer {
        self.audit = Some(Audit::with_pdus(Arc::new(auditor)));
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where a new configuration is put in force while the server runs.
    pub fn reloader(&self) -> Reloader {
        self.config.clone()
    }

    /// Serves on a background thread until [`ServerHandle::stop`].
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let address = self.listener.local_addr()?;
        self.listener.set_nonblocking(false)?;
        let observer = Arc::clone(&self.observer);
        let shared = Arc::new(Shared {
            table: Arc::new(Mutex::new(Admission::new(self.limits, Instant::now()))),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(0),
            thread_ended: Condvar::new(),
            log: Arc::new(move |entry: &SessionLog| observer(entry)),
            audit: self.audit.clone(),
        });
        let accepting = Arc::clone(&shared);
        let shutdown_grace = self.shutdown_grace;
        let config = self.config.clone();
        let thread = std::thread::Builder::new()
            .name("mbaps-accept".into())
            .spawn(move || self.accept_loop(&accepting))?;
        Ok(ServerHandle {
            address,
            config,
            shared,
            shutdown_grace,
            thread: Some(thread),
        })
    }

    fn accept_loop(self, shared: &Arc<Shared>) {
        loop {
            let accepted = self.listener.accept();
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error);
                    continue;
                }
            };
            // The handle admission control keeps: a second descriptor on
            // the socket, to wake or end the connection's thread.
            let Ok(control) = stream.try_clone() else {
                continue;
            };
            let conn = Arc::new(Conn::new(peer, control));
            // The configuration with its generation, read together: a
            // reload after this point reaches the session, which may still
            // be in its handshake.
            let (generation, config) = self.config.snapshot();
            let opening = hello_waiting(&stream, config.tls().is_none());
            let log = |entry: &SessionLog| (shared.log)(entry);
            let seat = Seat::take(&shared.table, Instant::now(), peer.ip(), opening, conn, log);
            let local = stream
                .local_addr()
                .or_else(|_| self.listener.local_addr())
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let report =
                SessionReport::new(peer, local, shared.audit.clone(), Arc::clone(&shared.log));
            let connection = Connection {
                seat,
                report,
                config,
                generation,
                reloads: self.config.clone(),
                handler: Arc::clone(&self.handler),
                write_timeout: self.write_timeout,
            };
            *shared.threads() += 1;
            let count = ThreadCount(Arc::clone(shared));
            // A thread that cannot start takes the connection with it: its
            // seat is given back as it is dropped.
            let _ = std::thread::Builder::new()
                .name(format!("mbaps-session-{peer}"))
                .spawn(move || {
                    let _count = count;
                    session::run(connection, stream);
                });
        }
    }
}

/// Whether a whole ClientHello (or, on a plain front, a whole frame) waits
/// on `stream` already (peeked at without waiting, not read; see
/// [`holds_opening`]).
fn hello_waiting(stream: &TcpStream, plain: bool) -> bool {
    let mut first = [0u8; HELLO_PEEK_LEN];
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let peeked = stream.peek(&mut first);
    let _ = stream.set_nonblocking(false);
    peeked.is_ok_and(|n| holds_opening(plain, &first[..n]))
}

/// A listener on `address` with a deep backlog (SO_REUSEADDR, as std
/// sets it on Unix).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    let backlog = i32::try_from(LISTEN_BACKLOG).unwrap_or(i32::MAX);
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// An accept that failed: a connection reset before it was accepted is
/// that connection's business; running out of descriptors or memory is
/// the server's, and accepting again at once would spin, so wait a little.
fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    ) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Where a new configuration is put in force.
    pub fn reloader(&self) -> Reloader {
        self.config.clone()
    }

    /// Stops the server as the tokio server's shutdown does: stops
    /// accepting, lets every session answer the requests it has received
    /// and close with close_notify, and waits for them at most the
    /// shutdown grace period; connections still open then are dropped.
    /// Returns when every connection thread has ended.
    pub fn stop(mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the accept loop, blocked in accept, with a connection.
        let _ = TcpStream::connect_timeout(&wake_address(self.address), Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.order_all(|stage| match stage {
            Stage::Handshake => Order::Drop,
            // Lingering ones wait for their late answers within the grace.
            Stage::Session | Stage::Lingering => Order::Stop,
        });
        if !self.shared.wait_for_threads(self.shutdown_grace) {
            self.order_all(|_| Order::Drop);
            self.shared.wait_for_threads(Duration::from_secs(1));
        }
    }

    fn order_all(&self, order: impl Fn(Stage) -> Order) {
        let table = lock(&self.shared.table);
        for (conn, stage) in table.connections() {
            conn.order(order(stage));
        }
    }
}

/// Where to connect to reach a listener bound to `address`: the loopback
/// address for an unspecified one.
fn wake_address(address: SocketAddr) -> SocketAddr {
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, address.port())
}
