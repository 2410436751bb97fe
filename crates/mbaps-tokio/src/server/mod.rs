//! The async server: a task per connection, admission control (separate
//! bounds for handshakes and sessions, eviction only by the
//! authenticated), bounded writes, graceful shutdown, a tracing span per
//! session.

mod connection;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_admission::{
    Admission, AdmissionLimits, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WRITE_TIMEOUT, HELLO_PEEK_LEN,
    Handle, LISTEN_BACKLOG, Logger, Order, Seat, SessionReport, Stage, Table, holds_opening, lock,
};
use mbaps_admission::{Audit, AuditEntry, SessionLog, Severity};
use mbaps_session::{ServerConfig, ServerEvent};
use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, Span, field};

use crate::handler::IntoAnswering;
use crate::handler::sealed::Answering;
use connection::Conn;
use session::{Connection, Session};

type Observer = Arc<dyn Fn(&SessionLog) + Send + Sync>;

/// A Modbus/TCP Security server on a tokio `TcpListener`.
///
/// Each connection runs in its own task. Requests are answered by a
/// [`Handler`](mbaps_session::Handler) as they arrive (on the session's task, so it should not
/// block for long), or by an [`AsyncHandler`](crate::AsyncHandler) given
/// as [`Later`](crate::Later), whose answers run as tasks of their own, up to the
/// session's window at once. Every session runs in a `tracing` span
/// `session` with fields `peer` and `role`; authentication failures and
/// refusals are `warn` events, denials `info` events.
///
/// # Admission
/// The rules of [`mbaps_admission`]: handshakes in progress and
/// authenticated sessions have separate bounds
/// ([`TokioServer::max_handshakes`], [`TokioServer::max_handshakes_per_address`],
/// [`TokioServer::max_sessions`]); a full handshake table drops its oldest
/// pending handshake for a newcomer; only a newly authenticated session
/// may close another (one whose peer stopped reading, else the one idle
/// the longest). Every write is bounded by [`TokioServer::write_timeout`],
/// and eviction, the idle timeout and shutdown act while a write waits.
/// A session reads no more while its window of requests is full or its
/// responses wait to be sent, so TCP slows a fast client down. Every
/// refusal is reported to [`TokioServer::on_log`] with its reason.
pub struct TokioServer {
    listener: TcpListener,
    config: Reloader,
    answering: Answering,
    limits: AdmissionLimits,
    write_timeout: Duration,
    shutdown_grace: Duration,
    observer: Observer,
    audit: Option<Audit>,
}

/// A server running on a background task: its address, and a way to stop
/// it gracefully.
pub struct ServerHandle {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    config: Reloader,
}

/// Replaces a running server's configuration without a restart
/// ([`TokioServer::reloader`], [`ServerHandle::reloader`]): a policy, a
/// certificate, a CA or CRLs changed on disk, loaded into a new
/// [`ServerConfig`] by the application (which reports a file with a
/// mistake and keeps the old configuration).
#[derive(Clone)]
pub struct Reloader(Arc<watch::Sender<Arc<ServerConfig>>>);

impl Reloader {
    fn new(config: ServerConfig) -> Reloader {
        Reloader(Arc::new(watch::Sender::new(Arc::new(config))))
    }

    /// Puts `config` in force: new handshakes use its certificate, CA and
    /// CRLs; open sessions authorize their next request against its
    /// policy, for the role their certificate carries, and a session whose
    /// client certificate it no longer accepts (a new CRL revokes it) is
    /// closed ([`mbaps_session::Server::reconfigure`]).
    pub fn reload(&self, config: ServerConfig) {
        self.0.send_replace(Arc::new(config));
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.0.borrow())
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

    /// Stops accepting, lets every session answer the requests it has
    /// received and close with close_notify, and waits for them (at most
    /// the shutdown grace period; then the rest are dropped).
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap_or_else(|join| {
            Err(std::io::Error::other(format!(
                "the server task ended abnormally: {join}"
            )))
        })
    }
}

impl TokioServer {
    /// Binds `address` (port 802 for Modbus/TCP Security), with a listen
    /// backlog of [`LISTEN_BACKLOG`]. `handler` answers: a [`Handler`](mbaps_session::Handler) at
    /// once, on the session's task; [`Later`](crate::Later) around an
    /// [`AsyncHandler`](crate::AsyncHandler) later, on tasks of their own.
    pub async fn bind(
        address: impl ToSocketAddrs,
        config: ServerConfig,
        handler: impl IntoAnswering,
    ) -> std::io::Result<TokioServer> {
        let mut last = None;
        for address in tokio::net::lookup_host(address).await? {
            match listen(address) {
                Ok(listener) => return Ok(TokioServer::from_listener(listener, config, handler)),
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
        handler: impl IntoAnswering,
    ) -> TokioServer {
        TokioServer {
            listener,
            config: Reloader::new(config),
            answering: handler.into_answering(),
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
    pub fn max_sessions(mut self, max: usize) -> TokioServer {
        self.limits.max_sessions = max.max(1);
        self
    }

    /// Connections in their TLS handshake at once (default 32); when full,
    /// the oldest pending handshake is dropped for a newcomer.
    pub fn max_handshakes(mut self, max: usize) -> TokioServer {
        self.limits.max_handshakes = max.max(1);
        self
    }

    /// Connections in their TLS handshake at once from one address
    /// (default 8; IPv6 counted per /64); when full, that address's oldest
    /// pending handshake is dropped for its newcomer.
    pub fn max_handshakes_per_address(mut self, max: usize) -> TokioServer {
        self.limits.max_handshakes_per_address = max.max(1);
        self
    }

    /// All admission bounds at once (see [`AdmissionLimits`]).
    pub fn admission(mut self, limits: AdmissionLimits) -> TokioServer {
        self.limits = limits;
        self
    }

    /// How long a peer has to take what we send it (default 10 s): output
    /// that has waited this long for a peer that stopped reading ends the
    /// connection. At most 64 KiB wait per session meanwhile.
    pub fn write_timeout(mut self, timeout: Duration) -> TokioServer {
        self.write_timeout = timeout;
        self
    }

    /// How long [`ServerHandle::shutdown`] waits for sessions to finish
    /// (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> TokioServer {
        self.shutdown_grace = grace;
        self
    }

    /// Called with every entry of the audit trail: each session's start
    /// (with the client's certificate) and end, and each request's
    /// decision, answer and latency, denied and rejected ones included.
    /// Called on the sessions' tasks: hand the entry over (a bounded
    /// queue, a counter) rather than write it here.
    pub fn on_audit(
        mut self,
        auditor: impl Fn(&AuditEntry) + Send + Sync + 'static,
    ) -> TokioServer {
        self.audit = Some(Audit::new(Arc::new(auditor)));
        self
    }

    /// As [`TokioServer::on_audit`], with records that carry each request's
    /// and response's PDUs, as received and as sent ([`Audit::with_pdus`]):
    /// what a tap of the plaintext conversation (`mbaps_observe::tap`)
    /// reads. Each record then holds a copy of both.
    pub fn on_audit_with_pdus(
        mut self,
        auditor: impl Fn(&AuditEntry) + Send + Sync + 'static,
    ) -> TokioServer {
        self.audit = Some(Audit::with_pdus(Arc::new(auditor)));
        self
    }

    /// Called with every session event worth logging (authentication,
    /// denials for the audit log, failures, refusals and evictions with
    /// their reasons, closes), besides the `tracing` events.
    pub fn on_log(mut self, observer: impl Fn(&SessionLog) + Send + Sync + 'static) -> TokioServer {
        self.observer = Arc::new(observer);
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

    /// Serves on a background task until [`ServerHandle::shutdown`].
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let address = self.listener.local_addr()?;
        let config = self.config.clone();
        let (shutdown, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            self.serve(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await
        });
        Ok(ServerHandle {
            address,
            shutdown,
            task,
            config,
        })
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (see
    /// [`ServerHandle::shutdown`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let table: Table<Arc<Conn>> =
            Arc::new(Mutex::new(Admission::new(self.limits, Instant::now())));
        let observer = Arc::clone(&self.observer);
        let log: Logger = Arc::new(move |entry| {
            trace_log(entry);
            observer(entry);
        });
        let mut sessions = JoinSet::new();
        // A reload wakes every session, which takes the configuration from
        // its own receiver: one watch here, rather than one waited on by
        // each session on each of its turns.
        let mut reloads = self.config.0.subscribe();
        reloads.borrow_and_update();
        let mut watching = true;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                changed = reloads.changed(), if watching => match changed {
                    Ok(()) => {
                        reloads.borrow_and_update();
                        for (conn, _) in lock(&table).connections() {
                            conn.wake.notify_one();
                        }
                    }
                    // Not while `self` holds the sender; never spun on.
                    Err(_) => watching = false,
                },
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            accept_failed(&error).await;
                            continue;
                        }
                    };
                    // Subscribed before the configuration is read: a reload
                    // after this point reaches the session, which may
                    // still be in its handshake.
                    let mut reloads = self.config.0.subscribe();
                    let plain = reloads.borrow_and_update().tls().is_none();
                    let opening = hello_waiting(&stream, plain);
                    let conn = Arc::new(Conn::new(peer));
                    let seat = Seat::take(&table, Instant::now(), peer.ip(), opening, conn, |e| log(e));
                    let span = tracing::info_span!("session", %peer, role = field::Empty);
                    let local = stream
                        .local_addr()
                        .or_else(|_| self.listener.local_addr())
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let report = SessionReport::new(
                        peer,
                        local,
                        self.audit.clone(),
                        session_log(&log, &span),
                    );
                    let connection = Connection {
                        seat,
                        report,
                        answering: self.answering.clone(),
                        reloads,
                        write_timeout: self.write_timeout,
                    };
                    if let Some(session) = span.in_scope(|| Session::start(connection, stream)) {
                        sessions.spawn(session.serve().instrument(span));
                    }
                }
            }
        }
        drop(self.listener);
        // Sessions answer what they received and close with close_notify;
        // handshakes end now.
        order_all(&table, |stage| match stage {
            Stage::Handshake => Order::Drop,
            // Lingering ones wait for their late answers within the grace.
            Stage::Session | Stage::Lingering => Order::Stop,
        });
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = sessions.len(),
                "sessions still open after the shutdown grace period: dropped"
            );
            order_all(&table, |_| Order::Drop);
            // Each reports its end as it goes; one that does not go is
            // aborted, and reports it as it is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while sessions.join_next().await.is_some() {}
            })
            .await;
            sessions.shutdown().await;
        }
        Ok(())
    }
}

/// Gives every connection in `table` the order its stage calls for.
fn order_all(table: &Table<Arc<Conn>>, order: impl Fn(Stage) -> Order) {
    for (conn, stage) in lock(table).connections() {
        conn.order(order(stage));
    }
}

/// One session's log: the server's, and the session's span takes the
/// client's role once it is known.
fn session_log(log: &Logger, span: &Span) -> Logger {
    let (log, span) = (Arc::clone(log), span.clone());
    Arc::new(move |entry| {
        if let SessionLog::Event {
            event: ServerEvent::Authenticated { role, .. },
            ..
        } = entry
        {
            // A real role is a string (quoted by the formatter), the NULL
            // role the bare word `null`.
            match role {
                Some(role) => span.record("role", role.as_str()),
                None => span.record("role", field::display("null")),
            };
        }
        log(entry);
    })
}

/// Whether a whole ClientHello (or, on a plain front, a whole frame) waits
/// on `stream` already (peeked at, not read; see [`holds_opening`]).
fn hello_waiting(stream: &tokio::net::TcpStream, plain: bool) -> bool {
    let mut first = [0u8; HELLO_PEEK_LEN];
    let mut buf = tokio::io::ReadBuf::new(&mut first);
    // Nothing waits for this poll: the connection's task reads for real.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match stream.poll_peek(&mut cx, &mut buf) {
        std::task::Poll::Ready(Ok(_)) => holds_opening(plain, buf.filled()),
        _ => false,
    }
}

/// A listener on `address` with a deep backlog (SO_REUSEADDR, as std and
/// tokio set it on Unix).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// An accept that failed: a connection reset before it was accepted is
/// that connection's business; running out of descriptors or memory is
/// the server's, and accepting again at once would spin, so wait a little.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    ) {
        tracing::warn!(%error, "accept failed; pausing 50 ms");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `tracing` side of the log, at the entry's severity.
pub(crate) fn trace_log(entry: &SessionLog) {
    match entry.severity() {
        Severity::Warn => tracing::warn!("{entry}"),
        Severity::Info => tracing::info!("{entry}"),
        Severity::Debug => tracing::debug!("{entry}"),
    }
}
