//! A blocking server: one thread per session, up to a bound.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mbaps_session::{Handler, Server, ServerConfig, SessionLog};

type Observer = Arc<dyn Fn(&SessionLog) + Send + Sync>;

/// A Modbus/TCP Security server on a `TcpListener`.
pub struct StdServer {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    max_sessions: usize,
    observer: Observer,
}

/// A running server: its address, and a way to stop it.
pub struct ServerHandle {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StdServer {
    /// Binds `address` (port 802 for Modbus/TCP Security).
    pub fn bind(
        address: impl std::net::ToSocketAddrs,
        config: ServerConfig,
        handler: impl Handler,
    ) -> std::io::Result<StdServer> {
        Ok(StdServer {
            listener: TcpListener::bind(address)?,
            config: Arc::new(config),
            handler: Arc::new(handler),
            max_sessions: 64,
            observer: Arc::new(|_| {}),
        })
    }

    /// Sessions open at once (default 64); beyond, connections are refused.
    pub fn max_sessions(mut self, max: usize) -> StdServer {
        self.max_sessions = max.max(1);
        self
    }

    /// Called with every session event worth logging (authentication,
    /// denials for the audit log, failures, closes).
    pub fn on_log(mut self, observer: impl Fn(&SessionLog) + Send + Sync + 'static) -> StdServer {
        self.observer = Arc::new(observer);
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on a background thread until [`ServerHandle::stop`].
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let address = self.listener.local_addr()?;
        // A short accept timeout lets the loop notice `stop`.
        self.listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mbaps-accept".into())
            .spawn(move || self.accept_loop(&flag))?;
        Ok(ServerHandle {
            address,
            stop,
            thread: Some(thread),
        })
    }

    fn accept_loop(self, stop: &AtomicBool) {
        let open = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::Relaxed) {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(_) => continue,
            };
            if open.load(Ordering::Acquire) >= self.max_sessions {
                (self.observer)(&SessionLog::Refused {
                    peer,
                    max_sessions: self.max_sessions,
                });
                drop(stream);
                continue;
            }
            open.fetch_add(1, Ordering::AcqRel);
            let (config, handler, observer, session_count) = (
                Arc::clone(&self.config),
                Arc::clone(&self.handler),
                Arc::clone(&self.observer),
                Arc::clone(&open),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("mbaps-session-{peer}"))
                .spawn(move || {
                    serve(stream, peer, &config, handler.as_ref(), observer.as_ref());
                    session_count.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and waits for the accept loop; sessions
    /// already open run to their end.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One session's run loop.
fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &ServerConfig,
    handler: &dyn Handler,
    observer: &(dyn Fn(&SessionLog) + Send + Sync),
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let mut session = match Server::new(config, Instant::now()) {
        Ok(session) => session,
        Err(error) => return observer(&SessionLog::Failed { peer, error }),
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        // Events first: each request goes to the handler.
        let answered = session.answer_pending(Instant::now(), handler, |event| {
            observer(&SessionLog::Event { peer, event });
        });
        if let Err(error) = answered {
            observer(&SessionLog::Failed { peer, error });
        }
        out.clear();
        session.poll_transmit(&mut out);
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        if session.is_closed() {
            return;
        }
        let now = Instant::now();
        let wait = session.poll_timeout().map(|deadline| {
            deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        let _ = stream.set_read_timeout(wait);
        let result = match stream.read(&mut buf) {
            Ok(0) => session.handle_eof(Instant::now()),
            Ok(n) => session.handle_tls(Instant::now(), &buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.handle_timeout(Instant::now())
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => Ok(()),
            Err(_) => return,
        };
        if let Err(error) = result {
            // Send the alert the failure owes the peer, then stop.
            out.clear();
            session.poll_transmit(&mut out);
            let _ = stream.write_all(&out);
            return observer(&SessionLog::Failed { peer, error });
        }
    }
}
