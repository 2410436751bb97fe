//! One connection's task: the run loop of an `mbaps_session::Server`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mbaps_admission::{Activity, ConnectionId, Order, SessionLog, holds_opening};
use mbaps_authz::Access;
use mbaps_codec::{ExceptionCode, MbapHeader, Response};
use mbaps_session::{Handler, Pdu, RequestId, Server, ServerConfig, ServerEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Span;

use super::audit::{
    self, AuditDecision, AuditEntry, AuditOutcome, AuditedHandler, AuditedRequest, Auditor,
};
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
    requests: Vec<(tokio::task::Id, RequestId, u8, Option<AuditStart>)>,
}

impl Answers {
    fn is_empty(&self) -> bool {
        self.tasks.as_ref().is_none_or(JoinSet::is_empty)
    }

    /// Runs `answer`, for request `id` (of `function`), as a task.
    fn spawn(&mut self, id: RequestId, function: u8, answer: Answer, audit: Option<AuditStart>) {
        let task = self.tasks.get_or_insert_with(JoinSet::new).spawn(answer);
        self.requests.push((task.id(), id, function, audit));
    }

    /// The next answer to come: the request, its function, and the result
    /// (`None`: the handler panicked). Pending while there is none.
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
        let (_, id, function, audit) = self.requests.swap_remove(at);
        Some(Done {
            id,
            function,
            result,
            audit,
        })
    }
}

/// Completes when a new configuration was put in force; never once the
/// server is gone.
async fn reloaded(reloads: &mut watch::Receiver<Arc<ServerConfig>>) {
    if reloads.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// An answered request: its id, its function, the handler's result
/// (`None`: the handler panicked), and what the audit trail noted of it.
struct Done {
    id: RequestId,
    function: u8,
    result: Option<Result<Pdu, ExceptionCode>>,
    audit: Option<AuditStart>,
}

/// What the audit trail notes of a request handed to an async handler.
struct AuditStart {
    header: MbapHeader,
    touches: [Option<Access>; 2],
    started: Instant,
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

    fn log_event(&self, event: ServerEvent) {
        if let ServerEvent::Authenticated { role, .. } = &event {
            let role = role.as_ref().map_or("<none>", |r| r.as_str());
            self.span.record("role", role);
        }
        self.log(&SessionLog::of(self.conn.peer, event));
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
        let mut io = Io::new(stream, self.write_timeout);
        // The handler answering at once, each request audited if asked.
        let now_handler: Option<Arc<dyn Handler>> = match (&self.answering, &self.auditor) {
            (Answering::Now(handler), Some(auditor)) => Some(Arc::new(AuditedHandler {
                inner: Arc::clone(handler),
                peer,
                auditor: Arc::clone(auditor),
            })),
            (Answering::Now(handler), None) => Some(Arc::clone(handler)),
            (Answering::Later(_), _) => None,
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
        loop {
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
                if let Some(auditor) = &self.auditor {
                    auditor(&AuditEntry::SessionStarted {
                        at: SystemTime::now(),
                        peer,
                        role: session.role().cloned(),
                        certificate: session.peer_certificate().cloned(),
                    });
                }
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
                            let audit = self.auditor.as_ref().map(|_| AuditStart {
                                header,
                                touches: pdu.request().map_or([None, None], |r| audit::touches(&r)),
                                started: now,
                            });
                            answers.spawn(id, pdu.function(), handler.answer(request), audit);
                        }
                        // Every request was answered at once: none comes here.
                        Answering::Now(_) => answer(&mut session, now, id, pdu.function(), None),
                    },
                    event => {
                        self.audit_event(&session, &event);
                        self.log_event(event);
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
                session.close(now);
            }
            if session.is_closed() || phase == Phase::Leaving {
                if io.is_flushed() {
                    if !session.is_closed() {
                        // Our close is over: we read no further.
                        session.handle_eof(now);
                        continue;
                    }
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
                        Order::Drop => break,
                        _ if phase == Phase::Leaving => {}
                        _ => {
                            phase = Phase::Leaving;
                            session.close(Instant::now());
                        }
                    }
                }
                _ = stopping.wait_for(|stop| *stop), if phase == Phase::Serving => {
                    // Requests handed to a synchronous handler were answered
                    // above; an async handler's are awaited. The peer gets
                    // close_notify after them.
                    phase = Phase::Draining;
                }
                () = io.write_timer.fired() => {
                    if !session.is_closed() && phase != Phase::Leaving {
                        let timeout = io.write_timeout();
                        self.log(&SessionLog::WriteTimeout { peer, timeout });
                    }
                    break;
                }
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
                    if writable.is_err() {
                        break;
                    }
                }
                readable = io.stream.readable(), if may_read => {
                    if readable.is_err() {
                        break;
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
                        Err(_) => break,
                    }
                }
            }
        }
        lock(&self.table).closed(self.id);
        // What the session had still to say (its end, when the connection
        // was dropped before it).
        while let Some(event) = session.poll_event() {
            if !matches!(event, ServerEvent::Request { .. }) {
                self.audit_event(&session, &event);
                self.log_event(event);
            }
        }
        let _ = io.stream.shutdown().await;
    }

    /// Sends an async handler's answer, and audits it.
    fn answer_later(&self, session: &mut Server, now: Instant, done: Done) {
        let outcome = match &done.result {
            Some(Ok(pdu)) => AuditOutcome::of(pdu),
            Some(Err(code)) => AuditOutcome::Exception(*code),
            None => AuditOutcome::Exception(ExceptionCode::ServerDeviceFailure),
        };
        answer(session, now, done.id, done.function, done.result);
        if let (Some(auditor), Some(start)) = (&self.auditor, done.audit) {
            auditor(&AuditEntry::Request(AuditedRequest {
                at: SystemTime::now(),
                peer: self.conn.peer,
                role: session.role().cloned(),
                header: start.header,
                function: done.function,
                touches: start.touches,
                decision: AuditDecision::Allowed,
                outcome,
                latency: now.saturating_duration_since(start.started),
            }));
        }
    }

    /// The audit trail's side of a session event: its end, and the
    /// requests the session answered itself (denied, rejected).
    fn audit_event(&self, session: &Server, event: &ServerEvent) {
        let Some(auditor) = &self.auditor else {
            return;
        };
        let peer = self.conn.peer;
        let request = |header: &MbapHeader, function: u8, touches, decision, code| {
            AuditEntry::Request(AuditedRequest {
                at: SystemTime::now(),
                peer,
                role: session.role().cloned(),
                header: *header,
                function,
                touches,
                decision,
                outcome: AuditOutcome::Exception(code),
                latency: Duration::ZERO,
            })
        };
        let entry = match event {
            // The start is audited where the session is admitted, before
            // its first request.
            ServerEvent::Denied {
                header,
                function,
                denial,
                touches,
                ..
            } => request(
                header,
                *function,
                *touches,
                AuditDecision::Denied(*denial),
                ExceptionCode::IllegalFunction,
            ),
            ServerEvent::Rejected {
                header,
                function,
                exception,
                ..
            } => request(
                header,
                *function,
                [None, None],
                AuditDecision::Rejected,
                *exception,
            ),
            ServerEvent::Closed(reason) if session.is_authenticated() => AuditEntry::SessionEnded {
                at: SystemTime::now(),
                peer,
                reason: reason.clone(),
            },
            _ => return,
        };
        auditor(&entry);
    }

    /// Asks admission control for a place now that the session has
    /// authenticated; `false` when it must close instead (it has been told
    /// to, and a refusal is logged).
    fn admit(&self, session: &mut Server, now: Instant) -> bool {
        let decision = lock(&self.table).authenticated(self.id, now);
        let stays = decision.carry_out(self.conn.peer, |entry| self.log(entry));
        if !stays {
            session.close(now);
        }
        stays
    }
}

/// Sends an answer to request `id`: an async handler's response, its
/// exception, or 0x04 when it panicked (`None`) or answered for another
/// function. Every request gets exactly one answer.
fn answer(
    session: &mut Server,
    now: Instant,
    id: RequestId,
    function: u8,
    result: Option<Result<Pdu, ExceptionCode>>,
) {
    let failure = Response::exception(function, ExceptionCode::ServerDeviceFailure);
    let sent = match result {
        Some(Ok(pdu)) => session.send_response_pdu(now, id, &pdu),
        Some(Err(code)) => session.send_response(now, id, &Response::exception(function, code)),
        None => session.send_response(now, id, &failure),
    };
    if sent.is_err_and(|error| !error.is_fatal()) {
        let _ = session.send_response(now, id, &failure);
    }
}
