//! One connection's thread: the run loop of an `mbaps_session::Server`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use mbaps_admission::{Activity, ConnectionId, Order, SessionLog, SessionReport, holds_opening};
use mbaps_codec::ExceptionCode;
use mbaps_session::{Closing, Cut, Handler, Server, ServerConfig, ServerEvent};

use super::Shared;
use super::connection::Conn;
use super::reload::{RELOAD_CHECK, Reloader};

/// Bytes read from the socket at a time: one TLS record's worth.
const READ_CHUNK: usize = 16 * 1024;

pub(crate) struct Session {
    pub(crate) config: Arc<ServerConfig>,
    /// The reload generation `config` is of.
    pub(crate) generation: u64,
    /// Configurations reloaded while the session runs.
    pub(crate) reloads: Reloader,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: ConnectionId,
    pub(crate) activity: Arc<Activity>,
    pub(crate) conn: Arc<Conn>,
    pub(crate) write_timeout: Duration,
}

impl Session {
    pub(crate) fn run(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let peer = self.conn.peer;
        match Server::new(&self.config, Instant::now()) {
            Ok(mut session) => {
                let mut report = SessionReport::new(peer, self.shared.auditor.clone());
                session.record(report.recording());
                self.serve(&mut session, &mut stream, &mut report);
            }
            Err(error) => self.shared.log(&SessionLog::Failed { peer, error }),
        }
        self.shared.table().closed(self.id);
        let _ = stream.shutdown(Shutdown::Write);
    }

    fn report(&self, report: &SessionReport, event: ServerEvent) {
        report.event(event, SystemTime::now(), |entry| self.shared.log(entry));
    }

    fn serve(&self, session: &mut Server, stream: &mut TcpStream, report: &mut SessionReport) {
        let ended = self.serve_until_cut(session, stream, report);
        // However the loop ended, the session reports its end, once. A
        // connection admission control dropped fails its reads and writes
        // too: it was dropped.
        if let Err(cut) = ended {
            let dropped = self.conn.orders.strongest() == Order::Drop;
            session.cut(Instant::now(), if dropped { Cut::Dropped } else { cut });
        }
        while let Some(event) = session.poll_event() {
            self.report(report, event);
        }
    }

    /// The run loop; `Err` when the connection was cut under the session
    /// (its end is then reported by [`Server::cut`]).
    fn serve_until_cut(
        &self,
        session: &mut Server,
        stream: &mut TcpStream,
        report: &mut SessionReport,
    ) -> Result<(), Cut> {
        let mut input = vec![0u8; READ_CHUNK];
        let (mut start, mut end) = (0, 0);
        let mut out = Vec::new();
        // Admission was asked for a place (once authenticated).
        let mut admitted = false;
        // We closed (refused a place, told to close, stopping): close_notify
        // goes out, then the connection ends without waiting for the
        // peer's answer.
        let mut leaving = false;
        let mut hello = false;
        let mut eof = false;
        let mut obeyed = Order::None;
        // The last time anything came in or went out: "idle since".
        let mut last_traffic = Instant::now();
        let mut generation = self.generation;
        loop {
            let now = Instant::now();
            if let Some(config) = self.reloads.newer(&mut generation) {
                session.reconfigure(now, &config);
            }
            if start < end && session.wants_read() {
                // Busy from the moment a request may be in the input: a
                // session whose handler is at work is not idle.
                last_traffic = now;
                self.activity.set_busy();
                start += session.handle_tls(now, &input[start..end]);
            }
            // A place is asked for before any request is answered.
            if session.is_authenticated() && !admitted {
                admitted = true;
                // Before any of its requests is answered (and audited).
                report.established(session, SystemTime::now());
                leaving = !self.admit(session, now);
            }
            if !leaving {
                session.answer_requests(now, self.handler.as_ref());
            }
            while let Some(event) = session.poll_event() {
                match event {
                    // Every request was answered above: none is handed out.
                    ServerEvent::Request { id, .. } => {
                        let _ = session.send_exception(now, id, ExceptionCode::ServerDeviceFailure);
                    }
                    event => self.report(report, event),
                }
            }
            // Requests held back in the session's buffer (its window or its
            // output was full): they come out once the output is sent.
            let held_back = !session.wants_read() && !session.is_closed();
            out.clear();
            let produced = session.poll_transmit(&mut out);
            if produced > 0 && !hello && !session.is_authenticated() {
                // The server speaks first after a whole ClientHello.
                hello = true;
                self.shared.table().hello_received(self.id);
            }
            if produced > 0 {
                last_traffic = now;
                self.write(stream, &out, now)?;
            }
            if session.is_authenticated() && session.outstanding() == 0 && start == end && !leaving
            {
                self.activity.set_idle(last_traffic);
            } else {
                self.activity.set_busy();
            }
            if session.is_closed() {
                return Ok(());
            }
            if leaving {
                // Our close_notify is out: the close is over without
                // waiting for the peer's answer.
                session.handle_eof(now);
                return Ok(());
            }
            match self.conn.orders.strongest() {
                Order::Drop => return Err(Cut::Dropped),
                Order::Close => obeyed = Order::Close,
                Order::None => {}
            }
            let stopping = self.shared.stopping.load(Ordering::Acquire);
            if obeyed == Order::Close || stopping {
                // Requests received so far were answered above; the peer
                // gets close_notify after them.
                leaving = true;
                let why = if stopping {
                    Closing::Shutdown
                } else {
                    Closing::Evicted
                };
                session.close_for(now, why);
                continue;
            }
            if (held_back && produced > 0) || (start < end && session.wants_read()) {
                continue;
            }
            if eof {
                // Nothing more will come; the session ends on its timers.
                let deadline = session
                    .poll_timeout()
                    .ok_or(Cut::Reset(ErrorKind::UnexpectedEof))?;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                session.handle_timeout(Instant::now());
                continue;
            }
            // At most RELOAD_CHECK: a reloaded configuration (a CRL that
            // revokes this client) is looked for even while idle.
            let wait = session.poll_timeout().map_or(RELOAD_CHECK, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), RELOAD_CHECK)
            });
            let _ = stream.set_read_timeout(Some(wait));
            self.activity.note_looked();
            match stream.read(&mut input) {
                // An order woke the read: obey it first.
                Ok(0) if self.conn.orders.strongest() > obeyed => {}
                Ok(0) => {
                    eof = true;
                    session.handle_eof(Instant::now());
                }
                Ok(n) => {
                    (start, end) = (0, n);
                    let plain = session.config().tls().is_none();
                    if !hello && !session.is_authenticated() && holds_opening(plain, &input[..n]) {
                        // Heard from the moment it is read, not once the
                        // handshake's crypto is done: admission must not
                        // take it for a silent connection meanwhile.
                        hello = true;
                        self.shared.table().hello_received(self.id);
                    }
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let now = Instant::now();
                    if session
                        .poll_timeout()
                        .is_some_and(|deadline| deadline <= now)
                    {
                        session.handle_timeout(now);
                    }
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(Cut::Reset(err.kind())),
            }
        }
    }

    /// Writes `bytes` within the write timeout. A first attempt does not
    /// wait: if the peer takes nothing, the session counts as stalled
    /// from now (admission control closes stalled sessions first).
    fn write(&self, stream: &mut TcpStream, bytes: &[u8], now: Instant) -> Result<(), Cut> {
        let reset = |error: std::io::Error| Cut::Reset(error.kind());
        let mut written = 0;
        stream.set_nonblocking(true).map_err(reset)?;
        while written < bytes.len() {
            match stream.write(&bytes[written..]) {
                Ok(0) => return Err(Cut::Reset(ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => return Err(reset(error)),
            }
        }
        stream.set_nonblocking(false).map_err(reset)?;
        if written == bytes.len() {
            return Ok(());
        }
        self.activity.set_stalled(now);
        let timed_out = Cut::WriteTimeout(self.write_timeout);
        let deadline = now + self.write_timeout;
        while written < bytes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
                return Err(timed_out);
            }
            match stream.write(&bytes[written..]) {
                Ok(0) => return Err(Cut::Reset(ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Err(timed_out);
                }
                Err(error) => return Err(reset(error)),
            }
        }
        Ok(())
    }

    /// Asks admission control for a place now that the session has
    /// authenticated; `false` when it must close instead (it has been told
    /// to, and a refusal is logged).
    fn admit(&self, session: &mut Server, now: Instant) -> bool {
        let decision = self.shared.table().authenticated(self.id, now);
        let stays = decision.carry_out(self.conn.peer, |entry| self.shared.log(entry));
        if !stays {
            session.close_for(now, Closing::Refused);
        }
        stays
    }
}
