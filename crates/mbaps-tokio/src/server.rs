//! The async server: a task per session, a session bound that closes the
//! oldest idle session, graceful shutdown, a tracing span per session.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::timer::Timer;
use mbaps_session::{Handler, Server, ServerConfig, ServerEvent, SessionLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, Span, field};

type Observer = Arc<dyn Fn(&SessionLog) + Send + Sync>;

/// A Modbus/TCP Security server on a tokio `TcpListener`.
///
/// Each session runs in its own task. Requests are answered by the
/// [`Handler`] as they arrive (it is called from the session's task, so it
/// should not block for long). Every session runs in a `tracing` span
/// `session` with fields `peer` and `role`; authentication failures are
/// `warn` events, denials `info` events.
pub struct TokioServer {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    max_sessions: usize,
    shutdown_grace: Duration,
    observer: Observer,
}

/// A server running on a background task: its address, and a way to stop
/// it gracefully.
pub struct ServerHandle {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
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

/// What the accept loop knows of a session, shared with its task.
struct Slot {
    peer: SocketAddr,
    /// Milliseconds since the server started, at the last request (or the
    /// connection), for "oldest idle".
    last_active: AtomicU64,
    /// Authenticated and not in the middle of anything: may be closed to
    /// make room.
    idle: AtomicBool,
    evict: Notify,
}

#[derive(Default)]
struct Slots(Mutex<Vec<Arc<Slot>>>);

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        // A panicking session task cannot leave the list inconsistent:
        // it is only pushed to and removed from.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove(&self, slot: &Arc<Slot>) {
        self.lock().retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// Makes room for one more session: `None` when there is room already,
    /// otherwise the oldest idle session, told to close and removed from
    /// the count, or `Err` when none is idle.
    fn make_room(&self, max: usize, now_ms: u64) -> Result<Option<(SocketAddr, Duration)>, ()> {
        let mut slots = self.lock();
        if slots.len() < max {
            return Ok(None);
        }
        let oldest = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.idle.load(Ordering::Acquire))
            .min_by_key(|(_, s)| s.last_active.load(Ordering::Acquire))
            .map(|(i, _)| i)
            .ok_or(())?;
        let slot = slots.swap_remove(oldest);
        slot.evict.notify_one();
        let idle_ms = now_ms.saturating_sub(slot.last_active.load(Ordering::Acquire));
        Ok(Some((slot.peer, Duration::from_millis(idle_ms))))
    }
}

impl TokioServer {
    /// Binds `address` (port 802 for Modbus/TCP Security).
    pub async fn bind(
        address: impl ToSocketAddrs,
        config: ServerConfig,
        handler: impl Handler,
    ) -> std::io::Result<TokioServer> {
        Ok(TokioServer {
            listener: TcpListener::bind(address).await?,
            config: Arc::new(config),
            handler: Arc::new(handler),
            max_sessions: 64,
            shutdown_grace: Duration::from_secs(5),
            observer: Arc::new(|_| {}),
        })
    }

    /// Sessions open at once (default 64). When a connection comes and the
    /// bound is reached, the session idle the longest is closed to make
    /// room; if none is idle, the connection is refused.
    pub fn max_sessions(mut self, max: usize) -> TokioServer {
        self.max_sessions = max.max(1);
        self
    }

    /// How long [`ServerHandle::shutdown`] waits for sessions to finish
    /// (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> TokioServer {
        self.shutdown_grace = grace;
        self
    }

    /// Called with every session event worth logging (authentication,
    /// denials for the audit log, failures, evictions, closes), besides the
    /// `tracing` events.
    pub fn on_log(mut self, observer: impl Fn(&SessionLog) + Send + Sync + 'static) -> TokioServer {
        self.observer = Arc::new(observer);
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on a background task until [`ServerHandle::shutdown`].
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let address = self.listener.local_addr()?;
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
        })
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (see
    /// [`ServerHandle::shutdown`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let started = Instant::now();
        let slots = Arc::new(Slots::default());
        let (stop_sessions, stopping) = watch::channel(false);
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = self.listener.accept() => {
                    // Accept errors (out of descriptors, a reset before
                    // accept) are the one connection's: go on.
                    let Ok((stream, peer)) = accepted else { continue };
                    let now_ms = millis_since(started);
                    match slots.make_room(self.max_sessions, now_ms) {
                        Ok(None) => {}
                        Ok(Some((peer, idle_for))) => {
                            tracing::info!(%peer, ?idle_for, "closing the oldest idle session to make room");
                            (self.observer)(&SessionLog::Evicted { peer, idle_for });
                        }
                        Err(()) => {
                            tracing::warn!(%peer, max_sessions = self.max_sessions, "connection refused: every session is busy");
                            (self.observer)(&SessionLog::Refused { peer, max_sessions: self.max_sessions });
                            continue;
                        }
                    }
                    let slot = Arc::new(Slot {
                        peer,
                        last_active: AtomicU64::new(now_ms),
                        idle: AtomicBool::new(false),
                        evict: Notify::new(),
                    });
                    slots.lock().push(Arc::clone(&slot));
                    let session = Session {
                        config: Arc::clone(&self.config),
                        handler: Arc::clone(&self.handler),
                        observer: Arc::clone(&self.observer),
                        slot,
                        slots: Arc::clone(&slots),
                        started,
                        span: tracing::info_span!("session", %peer, role = field::Empty),
                    };
                    let span = session.span.clone();
                    sessions.spawn(session.run(stream, stopping.clone()).instrument(span));
                }
            }
        }
        drop(self.listener);
        let _ = stop_sessions.send(true);
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = sessions.len(),
                "sessions still open after the shutdown grace period: dropped"
            );
            sessions.shutdown().await;
        }
        Ok(())
    }
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One session's task.
struct Session {
    config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    observer: Observer,
    slot: Arc<Slot>,
    slots: Arc<Slots>,
    started: Instant,
    /// This session's span, to record the role in once it is known.
    span: Span,
}

impl Session {
    async fn run(self, mut stream: TcpStream, mut stopping: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let peer = self.slot.peer;
        let log = |entry: SessionLog| {
            trace_log(&entry);
            (self.observer)(&entry);
        };
        let mut session = match Server::new(&self.config, Instant::now()) {
            Ok(session) => session,
            Err(error) => return log(SessionLog::Failed { peer, error }),
        };
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::with_capacity(16 * 1024);
        let mut closing = false;
        let mut timer = Timer::new();
        loop {
            let answered = session.answer_pending(Instant::now(), self.handler.as_ref(), |event| {
                if let ServerEvent::Authenticated { role, .. } = &event {
                    let role = role.as_ref().map_or("<none>", |r| r.as_str());
                    self.span.record("role", role);
                }
                log(SessionLog::Event { peer, event });
            });
            if let Err(error) = answered {
                flush(&mut session, &mut stream, &mut out).await;
                log(SessionLog::Failed { peer, error });
                break;
            }
            out.clear();
            session.poll_transmit(&mut out);
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                break;
            }
            if session.is_closed() {
                break;
            }
            // Requests are answered as they come, so an authenticated
            // session is idle between reads.
            self.slot
                .idle
                .store(session.is_authenticated() && !closing, Ordering::Release);
            timer.set(session.poll_timeout());
            let result = tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) => session.handle_eof(Instant::now()),
                    Ok(n) => {
                        self.slot.last_active.store(millis_since(self.started), Ordering::Release);
                        session.handle_tls(Instant::now(), &buf[..n])
                    }
                    Err(_) => break,
                },
                () = timer.fired() => session.handle_timeout(Instant::now()),
                () = self.slot.evict.notified(), if !closing => {
                    closing = true;
                    session.close();
                    Ok(())
                }
                _ = stopping.wait_for(|stop| *stop), if !closing => {
                    // Requests received so far were answered above; the
                    // peer gets close_notify after them.
                    closing = true;
                    session.close();
                    Ok(())
                }
            };
            if let Err(error) = result {
                flush(&mut session, &mut stream, &mut out).await;
                log(SessionLog::Failed { peer, error });
                break;
            }
        }
        self.slots.remove(&self.slot);
        let _ = stream.shutdown().await;
    }
}

/// Sends the alert a failure owes the peer.
async fn flush(session: &mut Server, stream: &mut TcpStream, out: &mut Vec<u8>) {
    out.clear();
    session.poll_transmit(out);
    let _ = stream.write_all(out).await;
}

/// The `tracing` side of the log: failures before authentication and
/// denials are what an operator watches for.
fn trace_log(entry: &SessionLog) {
    match entry {
        SessionLog::Event {
            event: ServerEvent::Denied { .. } | ServerEvent::Authenticated { .. },
            ..
        } => tracing::info!("{entry}"),
        // A refused certificate, an alert, a handshake timeout.
        SessionLog::Failed { .. } => tracing::warn!("{entry}"),
        _ => tracing::debug!("{entry}"),
    }
}
