//! One connection's task: the run loop of an `mbaps_session::Server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_session::admission::{Activity, Admitted, ConnectionId, EvictionReason};
use mbaps_session::{Handler, Server, ServerConfig, ServerEvent, SessionError, SessionLog};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Span;

use super::connection::{Command, Conn, Io};
use super::{Observer, Table, lock, trace_log};
use crate::timer::Timer;

/// How long a closing connection may still try to deliver its last bytes
/// (close_notify, an alert) to a peer that is not reading them.
const LAST_WORDS: Duration = Duration::from_secs(1);

pub(crate) struct Session {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) observer: Observer,
    pub(crate) table: Table,
    pub(crate) id: ConnectionId,
    pub(crate) activity: Arc<Activity>,
    pub(crate) conn: Arc<Conn>,
    pub(crate) write_timeout: Duration,
    /// This session's span, to record the role in once it is known.
    pub(crate) span: Span,
}

impl Session {
    fn log(&self, entry: &SessionLog) {
        trace_log(entry);
        (self.observer)(entry);
    }

    pub(crate) async fn run(self, stream: TcpStream, mut stopping: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let peer = self.conn.peer;
        let mut session = match Server::new(&self.config, Instant::now()) {
            Ok(session) => session,
            Err(error) => {
                lock(&self.table).closed(self.id);
                return self.log(&SessionLog::Failed { peer, error });
            }
        };
        let mut io = Io::new(stream, self.write_timeout);
        let mut timer = Timer::new();
        let mut failure: Option<SessionError> = None;
        let mut obeyed = Command::None;
        // We closed (refused a place, told to close, stopping): close_notify
        // goes out, and then the connection ends without waiting for the
        // peer's answer.
        let mut leaving = false;
        let mut hello = false;
        // The last time anything came in or went out: "idle since".
        let mut last_traffic = Instant::now();
        loop {
            let now = Instant::now();
            if !io.input().is_empty() && session.wants_read() {
                // Busy from the moment a request may be in the input: a
                // session whose handler is at work is not idle.
                last_traffic = now;
                self.activity.set_busy();
                match session.handle_tls(now, io.input()) {
                    Ok(taken) => io.consume(taken),
                    Err(error) => {
                        failure.get_or_insert(error);
                        let rest = io.input().len();
                        io.consume(rest);
                    }
                }
            }
            while let Some(event) = session.poll_event() {
                match event {
                    ServerEvent::Request { id, header, pdu } => {
                        let answered =
                            session.answer_with(now, id, header, &pdu, self.handler.as_ref());
                        if let Err(error) = answered {
                            failure.get_or_insert(error);
                        }
                    }
                    event => {
                        // A place is asked for before any request is answered.
                        let authenticated = match &event {
                            ServerEvent::Authenticated { role, .. } => {
                                let role = role.as_ref().map_or("<none>", |r| r.as_str());
                                self.span.record("role", role);
                                true
                            }
                            _ => false,
                        };
                        self.log(&SessionLog::Event { peer, event });
                        if authenticated && !self.admit(&mut session, now) {
                            leaving = true;
                        }
                    }
                }
            }
            // Requests held back in the session's buffer (its window or its
            // output was full): they come out once the output is sent.
            let held_back = !session.wants_read() && !session.is_closed();
            let mut produced = 0;
            if io.is_flushed() {
                produced = session.poll_transmit(io.out());
                if produced > 0 {
                    last_traffic = now;
                }
                if produced > 0 && !hello && !session.is_authenticated() {
                    // The server speaks first after a whole ClientHello.
                    hello = true;
                    lock(&self.table).hello_received(self.id);
                }
            }
            if io.flush(now).is_err() {
                break;
            }
            match io.blocked_since() {
                Some(since) => self.activity.set_stalled(since),
                None if session.is_authenticated()
                    && session.outstanding() == 0
                    && io.input().is_empty()
                    && !leaving =>
                {
                    self.activity.set_idle(last_traffic)
                }
                None => self.activity.set_busy(),
            }
            if session.is_closed() || leaving {
                if io.is_flushed() {
                    self.leave(&mut session, now);
                    break;
                }
                // Only the last words (an alert, close_notify) are left:
                // a peer that does not read them gets little time.
                let deadline = io.blocked_since().unwrap_or(now) + LAST_WORDS;
                io.write_timer
                    .set(Some(deadline.min(now + io.write_timeout())));
            }
            if held_back && produced > 0 && io.is_flushed() {
                continue;
            }
            if !io.input().is_empty() && session.wants_read() {
                continue;
            }
            timer.set(session.poll_timeout());
            let may_read = io.is_flushed() && io.may_read() && session.wants_read();
            // Biased: orders and shutdown first, so that once told to stop
            // the session reads no further request; then the deadlines.
            tokio::select! {
                biased;
                command = self.conn.ordered(obeyed) => {
                    obeyed = command;
                    match command {
                        Command::Drop => break,
                        _ if leaving => {}
                        _ => {
                            leaving = true;
                            session.close(Instant::now());
                        }
                    }
                }
                _ = stopping.wait_for(|stop| *stop), if !leaving => {
                    // Requests received so far were answered above; the
                    // peer gets close_notify after them.
                    leaving = true;
                    session.close(Instant::now());
                }
                () = io.write_timer.fired() => {
                    if !session.is_closed() && !leaving {
                        let timeout = io.write_timeout();
                        self.log(&SessionLog::WriteTimeout { peer, timeout });
                    }
                    break;
                }
                () = timer.fired() => {
                    if let Err(error) = session.handle_timeout(Instant::now()) {
                        failure.get_or_insert(error);
                    }
                }
                writable = io.stream.writable(), if !io.is_flushed() => {
                    if writable.is_err() {
                        break;
                    }
                }
                readable = io.stream.readable(), if may_read => {
                    if readable.is_err() {
                        break;
                    }
                    match io.try_read() {
                        Ok(None) => {}
                        Ok(Some(0)) => {
                            if let Err(error) = session.handle_eof(Instant::now()) {
                                failure.get_or_insert(error);
                            }
                        }
                        Ok(Some(_)) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        lock(&self.table).closed(self.id);
        if let Some(error) = failure {
            self.log(&SessionLog::Failed { peer, error });
        }
        let _ = io.stream.shutdown().await;
    }

    /// The session's last bytes are out: a session we closed stops reading
    /// here (its close is over), and its last events are logged.
    fn leave(&self, session: &mut Server, now: Instant) {
        if !session.is_closed() {
            let _ = session.handle_eof(now);
        }
        let peer = self.conn.peer;
        while let Some(event) = session.poll_event() {
            self.log(&SessionLog::Event { peer, event });
        }
    }

    /// Asks admission control for a place now that the session has
    /// authenticated; `false` when it must close instead (it has been told
    /// to, and the refusal is logged).
    fn admit(&self, session: &mut Server, now: Instant) -> bool {
        let peer = self.conn.peer;
        let decision = lock(&self.table).authenticated(self.id, now);
        match decision {
            Admitted::Admitted => true,
            Admitted::Evicting(evicted) => {
                let command = match evicted.reason {
                    EvictionReason::Stalled { .. } => Command::Drop,
                    EvictionReason::Idle { .. } => Command::Close,
                };
                evicted.handle.order(command);
                self.log(&SessionLog::Evicted {
                    peer: evicted.handle.peer,
                    reason: evicted.reason,
                    newcomer: peer,
                });
                true
            }
            Admitted::Refused { max_sessions } => {
                self.log(&SessionLog::Refused { peer, max_sessions });
                session.close(now);
                false
            }
            // Dropped while it finished its handshake: the order to end
            // is on its way.
            Admitted::Unknown => {
                session.close(now);
                false
            }
        }
    }
}
