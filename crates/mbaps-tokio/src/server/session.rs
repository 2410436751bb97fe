//! One connection's task: the run loop of an `mbaps_session::Server`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mbaps_admission::{
    Activity, Auditor, ConnectionId, Order, SessionLog, SessionReport, holds_opening,
};
use mbaps_codec::ExceptionCode;
use mbaps_session::{Closing, Cut, Handler, Pdu, RequestId, Server, ServerConfig, ServerEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Span;

use super::connection::{Conn, Io, Read};
use super::{Observer, Table, lock, trace_log};
use crate::handler::IncomingRequest;
use crate::handler::sealed::{Answer, Answering};
use crate::timer::Timer;

/// How long a closing connection may still try to deliver its last bytes
/// (close_notify, an alert) to a peer that is not reading them.
const LAST_WORDS: Duration = Duration::from_secs(1);

pub(crate) struct Session {
    pub(crate) config: Arc<ServerConfig>,
    /// Where the audit trail goes, if anywhere.
    pub(crate) auditor: Option<Auditor>,
    /// Configurations reloaded while the session runs.
    pub(crate) reloads: watch::Receiver<Arc<ServerConfig>>,
    pub(crate) answering: Answering,
    pub(crate) observer: Observer,
    pub(crate) table: Table,
    pub(crate) id: ConnectionId,
    pub(crate) activity: Arc<Activity>,
    pub(crate) conn: Arc<Conn>,
    pub(crate) write_timeout: Duration,
    /// This session's span, to record the role in once it is known.
    pub(crate) span: Span,
}

/// An async handler's answers under way: a task each, and the request
/// each task answers. Nothing is allocated before the first.
#[derive(Default)]
struct Answers {
    tasks: Option<JoinSet<Result<Pdu, ExceptionCode>>>,
    requests: Vec<(tokio::task::Id, RequestId)>,
}

impl Answers {
    fn is_empty(&self) -> bool {
        self.tasks.as_ref().is_none_or(JoinSet::is_empty)
    }

    /// Runs `answer`, for request `id`, as a task.
    fn spawn(&mut self, id: RequestId, answer: Answer) {
        let task = self.tasks.get_or_insert_with(JoinSet::new).spawn(answer);
        self.requests.push((task.id(), id));
    }

    /// The next answer to come: the request and the result (`None`: the
    /// handler panicked). Pending while there is none.
    async fn next(&mut self) -> Done {
        loop {
            let Some(done) = self.tasks.as_mut() else {
                return std::future::pending().await;
            };
            let Some(joined) = done.join_next_with_id().await else {
                return std::future::pending().await;
            };
            if let Some(done) = self.settle(joined) {
                return done;
            }
        }
    }

    /// An answer that is ready now, if any: answers that end together go
    /// out together (one write, one TLS record), not one by one.
    fn ready(&mut self) -> Option<Done> {
        loop {
            let joined = self.tasks.as_mut()?.try_join_next_with_id()?;
            if let Some(done) = self.settle(joined) {
                return Some(done);
            }
        }
    }

    fn settle(
        &mut self,
        joined: Result<(tokio::task::Id, Result<Pdu, ExceptionCode>), tokio::task::JoinError>,
    ) -> Option<Done> {
        let (task, result) = match joined {
            Ok((task, result)) => (task, Some(result)),
            Err(error) => (error.id(), None),
        };
        let at = self.requests.iter().position(|(t, ..)| *t == task)?;
        let (_, id) = self.requests.swap_remove(at);
        Some(Done { id, result })
    }
}

/// Completes when a new configuration was put in force; never once the
/// server is gone.
async fn reloaded(reloads: &mut watch::Receiver<Arc<ServerConfig>>) {
    if reloads.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// An answered request: its id and the handler's result (`None`: the
/// handler panicked).
struct Done {
    id: RequestId,
    result: Option<Result<Pdu, ExceptionCode>>,
}

/// How far a session's task is from its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading and answering requests.
    Serving,
    /// Told to stop while an async handler is answering: nothing more is
    /// read; the session closes once the answers under way are sent.
    Draining,
    /// We closed (refused a place, told to close, stopping): close_notify
    /// goes out, and then the connection ends without waiting for the
    /// peer's answer.
    Leaving,
}

impl Session {
    fn log(&self, entry: &SessionLog) {
        trace_log(entry);
        (self.observer)(entry);
    }

    /// Reports a session event to the trail and the log.
    fn report(&self, report: &SessionReport, event: ServerEvent) {
        if let ServerEvent::Authenticated { role, .. } = &event {
            // A real role is a string (quoted by the formatter), the
            // NULL role the bare word `null`.
            match role {
                Some(role) => self.span.record("role", role.as_str()),
                None => self.span.record("role", tracing::field::display("null")),
            };
        }
        report.event(event, SystemTime::now(), |entry| self.log(entry));
    }

    pub(crate) async fn run(mut self, stream: TcpStream, mut stopping: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let peer = self.conn.peer;
        let mut session = match Server::new(&self.config, Instant::now()) {
            Ok(session) => session,
            Err(error) => {
                lock(&self.table).closed(self.id);
                return self.log(&SessionLog::Failed { peer, error });
            }
        };
        let mut report = SessionReport::new(peer, self.auditor.clone());
        session.record(report.recording());
        let mut io = Io::new(stream, self.write_timeout);
        let now_handler: Option<Arc<dyn Handler>> = match &self.answering {
            Answering::Now(handler) => Some(Arc::clone(handler)),
            Answering::Later(_) => None,
        };
        let mut timer = Timer::new();
        let mut answers = Answers::default();
        let mut obeyed = Order::None;
        // Admission was asked for a place (once authenticated).
        let mut admitted = false;
        let mut phase = Phase::Serving;
        let mut hello = false;
        // The last time anything came in or went out: "idle since".
        let mut last_traffic = Instant::now();
        // How the connection was cut under the session, if it was.
        let cut = loop {
            let now = Instant::now();
            if io.has_input() && session.wants_read() {
                // Busy from the moment a request may be in the input: a
                // session whose handler is at work is not idle.
                last_traffic = now;
                self.activity.set_busy();
                io.offer(|input| session.handle_tls(now, input));
            }
            // A place is asked for before any request is answered.
            if session.is_authenticated() && !admitted {
                admitted = true;
                // Before any of its requests is answered (and audited).
                report.established(&session, SystemTime::now());
                if !self.admit(&mut session, now) {
                    phase = Phase::Leaving;
                }
            }
            if let (Some(handler), Phase::Serving) = (&now_handler, phase) {
                session.answer_requests(now, handler.as_ref());
            }
            while let Some(event) = session.poll_event() {
                match event {
                    ServerEvent::Request { id, header, pdu } => match &self.answering {
                        Answering::Later(handler) => {
                            let request = IncomingRequest {
                                unit_id: header.unit_id,
                                transaction_id: header.transaction_id,
                                role: session.role().cloned(),
                                session: self.id.number(),
                                pdu,
                            };
                            answers.spawn(id, handler.answer(request));
                        }
                        // Every request was answered at once: none comes here.
                        Answering::Now(_) => {
                            let failure = ExceptionCode::ServerDeviceFailure;
                            let _ = session.send_exception(now, id, failure);
                        }
                    },
                    event => self.report(&report, event),
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
            if let Err(error) = io.flush(now) {
                break Some(Cut::Reset(error.kind()));
            }
            match io.blocked_since() {
                Some(since) => self.activity.set_stalled(since),
                None if session.is_authenticated()
                    && session.outstanding() == 0
                    && !io.has_input()
                    && phase == Phase::Serving =>
                {
                    self.activity.set_idle(last_traffic)
                }
                None => self.activity.set_busy(),
            }
            if phase == Phase::Draining && answers.is_empty() {
                // The last answer is out: now the close.
                phase = Phase::Leaving;
                session.close_for(now, Closing::Shutdown);
            }
            if session.is_closed() || phase == Phase::Leaving {
                if io.is_flushed() {
                    if !session.is_closed() {
                        // Our close is over: we read no further.
                        session.handle_eof(now);
                        continue;
                    }
                    break None;
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
            if io.has_input() && session.wants_read() {
                continue;
            }
            timer.set(session.poll_timeout());
            let may_read =
                phase == Phase::Serving && io.is_flushed() && io.may_read() && session.wants_read();
            self.activity.note_looked();
            // Biased: orders and shutdown first, so that once told to stop
            // the session reads no further request; then the deadlines.
            tokio::select! {
                biased;
                order = self.conn.ordered(obeyed) => {
                    obeyed = order;
                    match order {
                        Order::Drop => break Some(Cut::Dropped),
                        _ if phase == Phase::Leaving => {}
                        _ => {
                            phase = Phase::Leaving;
                            session.close_for(Instant::now(), Closing::Evicted);
                        }
                    }
                }
                _ = stopping.wait_for(|stop| *stop), if phase == Phase::Serving => {
                    // Requests handed to a synchronous handler were answered
                    // above; an async handler's are awaited. The peer gets
                    // close_notify after them.
                    phase = Phase::Draining;
                }
                () = io.write_timer.fired() => break Some(Cut::WriteTimeout(io.write_timeout())),
                () = timer.fired() => session.handle_timeout(Instant::now()),
                () = reloaded(&mut self.reloads) => {
                    let config = Arc::clone(&self.reloads.borrow_and_update());
                    session.reconfigure(Instant::now(), &config);
                }
                done = answers.next(), if !answers.is_empty() => {
                    // A handler that panicked (`None`) is answered 0x04.
                    let now = Instant::now();
                    self.answer_later(&mut session, now, done);
                    while let Some(done) = answers.ready() {
                        self.answer_later(&mut session, now, done);
                    }
                }
                writable = io.stream.writable(), if !io.is_flushed() => {
                    if let Err(error) = writable {
                        break Some(Cut::Reset(error.kind()));
                    }
                }
                readable = io.stream.readable(), if may_read => {
                    if let Err(error) = readable {
                        break Some(Cut::Reset(error.kind()));
                    }
                    let now = Instant::now();
                    let plain = session.config().tls().is_none();
                    match io.try_read(|input| {
                        last_traffic = now;
                        self.activity.set_busy();
                        if !hello && !session.is_authenticated() && holds_opening(plain, input) {
                            // Heard from the moment it is read, not once
                            // the handshake's crypto is done.
                            hello = true;
                            lock(&self.table).hello_received(self.id);
                        }
                        session.handle_tls(now, input)
                    }) {
                        Ok(Read::Nothing | Read::Bytes) => {}
                        Ok(Read::End) => session.handle_eof(now),
                        Err(error) => break Some(Cut::Reset(error.kind())),
                    }
                }
            }
        };
        // However the loop ended, the session reports its end, once. A
        // connection admission control dropped fails its reads and writes
        // too: it was dropped.
        if let Some(cut) = cut {
            let dropped = self.conn.orders.strongest() == Order::Drop;
            session.cut(Instant::now(), if dropped { Cut::Dropped } else { cut });
        }
        lock(&self.table).closed(self.id);
        while let Some(event) = session.poll_event() {
            if !matches!(event, ServerEvent::Request { .. }) {
                self.report(&report, event);
            }
        }
        let _ = io.stream.shutdown().await;
    }

    /// Sends an async handler's answer: its response, its exception, or
    /// 0x04 when it panicked (`None`). The session answers one that does not
    /// fit the request 0x04 itself; it records the answer.
    fn answer_later(&self, session: &mut Server, now: Instant, done: Done) {
        let _ = match done.result {
            Some(Ok(pdu)) => session.send_response_pdu(now, done.id, &pdu),
            Some(Err(code)) => session.send_exception(now, done.id, code),
            None => session.send_exception(now, done.id, ExceptionCode::ServerDeviceFailure),
        };
    }

    /// Asks admission control for a place now that the session has
    /// authenticated; `false` when it must close instead (it has been told
    /// to, and a refusal is logged).
    fn admit(&self, session: &mut Server, now: Instant) -> bool {
        let decision = lock(&self.table).authenticated(self.id, now);
        let stays = decision.carry_out(self.conn.peer, |entry| self.log(entry));
        if !stays {
            session.close_for(now, Closing::Refused);
        }
        stays
    }
}
