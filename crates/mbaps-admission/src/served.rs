//! The served connection: one server session with the rules every server
//! adapter follows around it, written once and sans-IO (see [`Served`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mbaps_authz::Role;
use mbaps_codec::{CodecError, ExceptionCode, Request};
use mbaps_session::rustls::pki_types::CertificateDer;
use mbaps_session::{
    Closing, Cut, Handler, Pdu, RequestId, Server, ServerConfig, ServerEvent, SessionError,
};

use crate::log::SessionLog;
use crate::order::{Handle, Order};
use crate::report::SessionReport;
use crate::{Activity, Admission, ConnectionId, holds_opening};

/// How long a closing connection may still try to deliver its last bytes
/// (close_notify, an alert) to a peer that is not reading them.
pub const LAST_WORDS: Duration = Duration::from_secs(1);

/// How long a served connection whose session has ended waits for the
/// late answers of requests still with the application (a device behind a
/// gateway that carries out a write whose client has gone), so that their
/// records say what was done: longer than a gateway's device timeout
/// by default, short enough that an ended session's memory is soon freed.
pub const LATE_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// The admission table the accept loop and the connections share.
pub type Table<H> = Arc<Mutex<Admission<H>>>;

/// Locks the admission table. Its operations cannot panic half-way, so a
/// poisoned lock still holds a consistent table.
pub fn lock<H>(table: &Table<H>) -> MutexGuard<'_, Admission<H>> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection's place in the admission table: taken at accept, given
/// back (once) when the connection is over.
pub struct Seat<H: Handle> {
    table: Table<H>,
    id: ConnectionId,
    pub(crate) activity: Arc<Activity>,
    handle: H,
}

impl<H: Handle + Clone> Seat<H> {
    /// Enters a connection just accepted at `now` from `address` into the
    /// handshake table (`opening`: its ClientHello, or on a plain front
    /// its first frame, is there already; see [`holds_opening`]); a
    /// pending handshake that gave way to it is ended and logged to `log`.
    pub fn take(
        table: &Table<H>,
        now: Instant,
        address: IpAddr,
        opening: bool,
        handle: H,
        log: impl FnOnce(&SessionLog),
    ) -> Seat<H> {
        let connected = lock(table).connect(now, address, opening, handle.clone());
        if let Some(dropped) = connected.dropped {
            dropped.carry_out(log);
        }
        Seat {
            table: Arc::clone(table),
            id: connected.id,
            activity: connected.activity,
            handle,
        }
    }
}

impl<H: Handle> Seat<H> {
    /// The adapter's handle on the connection.
    pub fn handle(&self) -> &H {
        &self.handle
    }

    /// The connection's number, unique among the server's connections.
    pub fn number(&self) -> u64 {
        self.id.number()
    }

    fn table(&self) -> MutexGuard<'_, Admission<H>> {
        lock(&self.table)
    }
}

/// A seat is given back when it is dropped, whatever happened to its
/// connection (a thread that could not start, a served connection's end).
impl<H: Handle> Drop for Seat<H> {
    fn drop(&mut self) {
        self.table().closed(self.id);
    }
}

/// How requests are answered.
#[derive(Clone)]
pub enum Answering {
    /// At once, by a [`Handler`], during the turn that received them.
    Now(Arc<dyn Handler>),
    /// Later: handed out by [`Served::poll_request`], answered with
    /// [`Served::handle_answer`].
    Later,
}

/// An authorized request handed out to be answered later
/// ([`Answering::Later`]): owned, with who asked.
#[derive(Clone, Debug)]
pub struct IncomingRequest {
    /// The unit id the request is addressed to.
    pub unit_id: u8,
    /// The transaction id (echoed by the session).
    pub transaction_id: u16,
    /// The client's authenticated role (`None`: the NULL role).
    pub role: Option<Role>,
    /// The session the request came on: a number unique among the
    /// sessions of one server (a gateway takes turns between sessions by
    /// it).
    pub session: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's certificate (`None` on plain Modbus/TCP).
    pub certificate: Option<Arc<CertificateDer<'static>>>,
    /// The request PDU, as received (and decoded once by the session).
    pub pdu: Pdu,
}

impl IncomingRequest {
    /// The request, decoded from its PDU (which the session decoded
    /// already, so this cannot fail in practice).
    pub fn request(&self) -> Result<Request<'_>, CodecError> {
        self.pdu.request()
    }
}

/// How far the connection is from its end: one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The TLS handshake (or, on a plain front, the wait for a first
    /// request): `heard` once admission was told its opening came.
    Opening { heard: bool },
    /// Established, and given a place: serving requests.
    Serving,
    /// The server is stopping: nothing more is read; the session closes
    /// once the requests under way are answered.
    Draining,
    /// We closed (refused a place, evicted, stopping): the last words go
    /// out, then the connection ends without waiting for the peer.
    Leaving,
    /// The connection is over, but requests of its session are still with
    /// the application: their records wait for the late answers, at most
    /// until then.
    Lingering { until: Instant },
    /// Everything is reported; the seat is given back.
    Over,
}

/// Where the output stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// Everything given out was written.
    Flushed,
    /// Given out, not yet written.
    Writing,
    /// The peer has taken none of it since then.
    Blocked { since: Instant },
    /// The connection was cut: nothing more is written.
    Gone,
}

/// The peer's stream, as far as the session knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Open,
    /// Ended: the session is told once it has taken the input before.
    Ended,
    /// Ended, and the session was told.
    Told,
}

/// One served connection: a server session with the rules every server
/// adapter follows around it, written once and sans-IO.
///
/// It wraps an [`mbaps_session::Server`] with its seat in the
/// admission table and its reporter, and owns what the adapters used to
/// write twice: ask admission for a place once the client is established
/// (and before any of its requests is answered), tell admission when the
/// client's opening was heard, keep the session's activity (busy, idle,
/// stalled) for eviction, obey admission's and the server's orders, drain
/// then leave when stopping, bound every write in time (and the last words
/// of a closing session more tightly), answer requests at once or hand them
/// out to be answered later, wait a while for the late answers of requests
/// whose session ended so that their records say what was done, and report
/// every session's end exactly once, however it ended: even when the
/// adapter drops it half-way.
///
/// The adapter is the run loop: it reads when [`Served::wants_read`],
/// hands in what it read, writes what [`Served::poll_transmit`] gives and
/// says how that went, hands in late answers, orders, reloads and
/// deadlines, and stops once [`Served::is_over`].
///
/// ```text
///  read ──► handle_read / handle_eof ──┐        ┌─► poll_transmit ──► write ──► handle_written
///  order woke the task ► handle_order ├─► turn ┤─► poll_request  ──► application ──► handle_answer
///  deadline ──────────► handle_timeout │        └─► poll_timeout   ──► sleep
///  reload ────────────► handle_reload ─┘   (admission, orders, answers, reports: inside)
/// ```
pub struct Served<H: Handle> {
    session: Server,
    pub(crate) seat: Seat<H>,
    report: SessionReport,
    answering: Answering,
    phase: Phase,
    /// Input read and not taken yet by the session (usually none).
    input: Vec<u8>,
    stream: Stream,
    output: Output,
    write_timeout: Duration,
    /// The last time anything came in or went out: "idle since".
    last_traffic: Instant,
    /// The time of the last call: what a drop reports its end at.
    now: Instant,
    /// Requests handed out and not yet taken by the adapter.
    requests: VecDeque<(RequestId, IncomingRequest)>,
    /// The client's certificate, shared by the requests handed out.
    certificate: Option<Arc<CertificateDer<'static>>>,
}

/// Input capacity kept between reads; more is released once taken.
const KEPT_INPUT: usize = 1024;

impl<H: Handle> Served<H> {
    /// Serves a connection accepted at `now` with `config`, seated in
    /// admission by `seat`, reported by `report`. Fails only if rustls
    /// cannot start a connection with `config`: the failure is logged and
    /// the seat given back (as it is dropped).
    pub fn new(
        config: &ServerConfig,
        seat: Seat<H>,
        report: SessionReport,
        answering: Answering,
        write_timeout: Duration,
        now: Instant,
    ) -> Result<Served<H>, SessionError> {
        let mut session = match Server::new(config, now) {
            Ok(session) => session,
            // The seat is given back as it is dropped.
            Err(error) => {
                report.log(&SessionLog::Failed {
                    peer: report.peer(),
                    error: error.clone(),
                });
                return Err(error);
            }
        };
        session.record(report.recording());
        Ok(Served {
            session,
            seat,
            report,
            answering,
            phase: Phase::Opening { heard: false },
            input: Vec::new(),
            stream: Stream::Open,
            output: Output::Flushed,
            write_timeout,
            last_traffic: now,
            now,
            requests: VecDeque::new(),
            certificate: None,
        })
    }

    /// The task that serves the connection runs: called first thing in
    /// it. From then on a handshake without its opening is silent indeed,
    /// not merely unscheduled (admission drops silent handshakes first,
    /// and a connection accepted before its task ran is not one of them).
    pub fn running(&self) {
        self.seat.activity.note_looked();
    }

    /// Whether to read from the connection now: the session takes input,
    /// everything read before was taken, and everything it gave out was
    /// written (a peer that does not read its answers is not read from:
    /// TCP slows it down).
    pub fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Opening { .. } | Phase::Serving)
            && self.stream == Stream::Open
            && self.input.is_empty()
            && self.output == Output::Flushed
            && self.session.wants_read()
    }

    /// Whether everything is over and reported: the adapter's loop ends.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether nothing more will be read or written on the connection (its
    /// socket may be shut down now), though records of its session may
    /// still wait for late answers.
    pub fn is_disconnected(&self) -> bool {
        matches!(self.phase, Phase::Lingering { .. } | Phase::Over)
    }

    /// Bytes read from the connection at `now`; what the session does not
    /// take now is kept and offered again.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        self.last_traffic = now;
        // Busy from the moment a request may be in the input: a session
        // whose handler is at work is not idle.
        self.seat.activity.set_busy();
        if let Phase::Opening { heard: false } = self.phase
            && holds_opening(self.session.config().tls().is_none(), bytes)
        {
            // Heard from the moment it is read, not once the handshake's
            // crypto is done: admission must not take it for a silent
            // connection meanwhile.
            self.heard();
        }
        // An order given meanwhile decides first what is done with it.
        self.obey(now);
        let taken = if self.input.is_empty() && self.accepts_input() {
            self.session.handle_tls(now, bytes)
        } else {
            0
        };
        self.input.extend_from_slice(&bytes[taken..]);
        self.turn(now);
    }

    /// The peer's stream ended (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.stream == Stream::Open {
            self.stream = Stream::Ended;
        }
        self.turn(now);
    }

    /// An order was given to the connection (its task was woken).
    pub fn handle_order(&mut self, now: Instant) {
        self.now = now;
        self.turn(now);
    }

    /// A deadline of [`Served::poll_timeout`] was reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::Lingering { until } if now >= until => {
                self.session.abandon_requests(now);
            }
            Phase::Lingering { .. } | Phase::Over => {}
            _ => {
                if self.write_deadline().is_some_and(|at| now >= at) {
                    self.cut(now, Cut::WriteTimeout(self.write_timeout));
                }
                self.session.handle_timeout(now);
            }
        }
        self.turn(now);
    }

    /// A reloaded configuration was put in force
    /// ([`Server::reconfigure`]).
    pub fn handle_reload(&mut self, now: Instant, config: &ServerConfig) {
        self.now = now;
        if !self.is_disconnected() {
            self.session.reconfigure(now, config);
        }
        self.turn(now);
    }

    /// The connection failed under the session (a read or write error).
    pub fn handle_cut(&mut self, now: Instant, cut: Cut) {
        self.now = now;
        self.cut(now, cut);
        self.turn(now);
    }

    /// What became of the output [`Served::poll_transmit`] gave: all of
    /// it written (`true`), or the peer took none of the rest for now
    /// (`false`: the session counts as stalled from the first time, and
    /// the write timeout runs from then).
    pub fn handle_written(&mut self, now: Instant, all: bool) {
        self.now = now;
        self.output = match (all, self.output) {
            (_, Output::Gone) => Output::Gone,
            (true, _) => Output::Flushed,
            (false, Output::Blocked { since }) => Output::Blocked { since },
            (false, _) => Output::Blocked { since: now },
        };
        self.turn(now);
    }

    /// The application's answer to request `id`, handed out by
    /// [`Served::poll_request`]: its response, or an exception. After the
    /// session's end it is not sent, but recorded.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        id: RequestId,
        answer: Result<Pdu, ExceptionCode>,
    ) {
        self.now = now;
        // An answer that does not fit its request is answered 0x04 by the
        // session, and an ended session records it: the error says only
        // that it was not sent as given.
        let _ = match answer {
            Ok(pdu) => self.session.send_response_pdu(now, id, &pdu),
            Err(code) => self.session.send_exception(now, id, code),
        };
        self.turn(now);
    }

    /// Appends the bytes to write to the connection; returns how many.
    /// Call when everything given before was written
    /// ([`Served::handle_written`]), and again after that: requests held
    /// back while the output waited come out then.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        if self.output != Output::Flushed || self.is_disconnected() {
            return 0;
        }
        self.now = now;
        let produced = self.session.poll_transmit(out);
        if produced > 0 {
            self.output = Output::Writing;
            self.last_traffic = now;
            self.session.handle_transmitted(now);
            if let Phase::Opening { heard: false } = self.phase {
                // The server speaks first after a whole ClientHello.
                self.heard();
            }
        } else if self.phase == Phase::Leaving && !self.session.is_closed() {
            // Our close is out: it is over without waiting for the peer's.
            self.session.handle_eof(now);
            self.turn(now);
        }
        produced
    }

    /// The next request to answer later ([`Answering::Later`]); drain
    /// after every call.
    pub fn poll_request(&mut self) -> Option<(RequestId, IncomingRequest)> {
        self.requests.pop_front()
    }

    /// When [`Served::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Over => None,
            Phase::Lingering { until } => Some(until),
            _ => {
                let session = self.session.poll_timeout();
                match (session, self.write_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// The session.
    pub fn session(&self) -> &Server {
        &self.session
    }

    /// When output the peer does not take ends the connection: the write
    /// timeout, or for the last words of a closing session [`LAST_WORDS`].
    fn write_deadline(&self) -> Option<Instant> {
        let Output::Blocked { since } = self.output else {
            return None;
        };
        let closing = self.phase == Phase::Leaving || self.session.is_closed();
        let wait = if closing {
            self.write_timeout.min(LAST_WORDS)
        } else {
            self.write_timeout
        };
        Some(since + wait)
    }

    /// Whether the session may be handed input now (while draining too:
    /// what was read before the stop was received, and is answered).
    fn accepts_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::Opening { .. } | Phase::Serving | Phase::Draining
        ) && self.session.wants_read()
    }

    /// Admission is told the client's opening came (once).
    fn heard(&mut self) {
        self.phase = Phase::Opening { heard: true };
        self.seat.table().hello_received(self.seat.id);
    }

    fn cut(&mut self, now: Instant, cut: Cut) {
        if self.output == Output::Gone {
            return;
        }
        // A connection admission dropped fails its reads and writes too:
        // it was dropped.
        let cut = if self.seat.handle.orders().strongest() == Order::Drop {
            Cut::Dropped
        } else {
            cut
        };
        self.output = Output::Gone;
        self.session.cut(now, cut);
    }

    /// Everything that follows a call: orders, input, admission, answers,
    /// reports, the end.
    fn turn(&mut self, now: Instant) {
        if self.phase == Phase::Over {
            return;
        }
        // Orders first: an end of stream may be an order's wake-up, and
        // what was read is answered, or not, as the order says.
        self.obey(now);
        loop {
            self.feed(now);
            if matches!(self.phase, Phase::Opening { .. }) && self.session.is_authenticated() {
                self.seat_established(now);
            }
            if let (Phase::Serving | Phase::Draining, Answering::Now(handler)) =
                (self.phase, &self.answering)
            {
                self.session.answer_requests(now, handler.as_ref());
            }
            self.drain_events(now);
            // Answering may have emptied the session's buffer: what was
            // read and not taken yet goes in now, or nothing would ask.
            if self.input.is_empty() || !self.accepts_input() {
                break;
            }
        }
        if self.phase == Phase::Draining && self.session.outstanding() == 0 {
            // The last answer is out: now the close.
            self.phase = Phase::Leaving;
            self.session.close_for(now, Closing::Shutdown);
            self.drain_events(now);
        }
        self.end_if_over(now);
        self.update_activity();
    }

    /// Hands the session what was read and not taken yet, and the end of
    /// the stream once everything before it is in.
    fn feed(&mut self, now: Instant) {
        while !self.input.is_empty() && self.accepts_input() {
            let taken = self.session.handle_tls(now, &self.input);
            self.input.drain(..taken);
            if taken == 0 {
                break;
            }
        }
        if self.input.is_empty() && self.input.capacity() > KEPT_INPUT {
            self.input = Vec::new();
        }
        // While draining, an end of stream waits for our close: it may be
        // the wake-up of the order itself (a blocking adapter shuts its
        // socket's read side to wake its thread), and the session's end is
        // the server's stop.
        let told_now = matches!(
            self.phase,
            Phase::Opening { .. } | Phase::Serving | Phase::Leaving
        );
        if self.stream == Stream::Ended && self.input.is_empty() && told_now {
            self.stream = Stream::Told;
            self.session.handle_eof(now);
        }
    }

    /// Carries out the strongest order given.
    fn obey(&mut self, now: Instant) {
        let order = self.seat.handle.orders().strongest();
        match (order, self.phase) {
            (_, Phase::Over) | (Order::None, _) => {}
            // A stopping server that can wait no longer: the late answers
            // are given up.
            (Order::Drop, Phase::Lingering { .. }) => self.session.abandon_requests(now),
            (_, Phase::Lingering { .. }) => {}
            (Order::Drop, _) => self.cut(now, Cut::Dropped),
            (Order::Close, Phase::Opening { .. } | Phase::Serving | Phase::Draining) => {
                self.phase = Phase::Leaving;
                self.session.close_for(now, Closing::Evicted);
            }
            (Order::Stop, Phase::Opening { .. }) => {
                self.phase = Phase::Leaving;
                self.session.close_for(now, Closing::Shutdown);
            }
            // Requests received so far are answered; the peer gets
            // close_notify after them.
            (Order::Stop, Phase::Serving) => self.phase = Phase::Draining,
            (Order::Close | Order::Stop, _) => {}
        }
    }

    /// The client is established: its start goes on the trail, and it asks
    /// admission for a place before any request is answered.
    fn seat_established(&mut self, now: Instant) {
        self.report.established(&self.session);
        self.certificate = self.session.peer_certificate().cloned().map(Arc::new);
        let decision = self.seat.table().authenticated(self.seat.id, now);
        let report = &self.report;
        if decision.carry_out(report.peer(), |entry| report.log(entry)) {
            self.phase = Phase::Serving;
        } else {
            self.phase = Phase::Leaving;
            self.session.close_for(now, Closing::Refused);
        }
    }

    /// Reports the session's events; requests to answer later are kept
    /// for [`Served::poll_request`].
    fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            match event {
                ServerEvent::Request { id, header, pdu } => match self.answering {
                    Answering::Later => self.requests.push_back((
                        id,
                        IncomingRequest {
                            unit_id: header.unit_id,
                            transaction_id: header.transaction_id,
                            role: self.session.role().cloned(),
                            session: self.seat.number(),
                            peer: self.report.peer(),
                            certificate: self.certificate.clone(),
                            pdu,
                        },
                    )),
                    // Every request was answered at once: none comes here,
                    // but none may go unanswered either.
                    Answering::Now(_) => {
                        let failure = ExceptionCode::ServerDeviceFailure;
                        let _ = self.session.send_exception(now, id, failure);
                    }
                },
                event => self.report.event(event),
            }
        }
    }

    /// The connection is over once its session has ended and its last
    /// words are written (or cannot be): requests handed out that the
    /// application has not taken up are given up, and if some are still
    /// with it, the connection waits for their late answers among the
    /// lingering (bounded by admission; without room, it gives them up
    /// too). The whole is over once the end is reported.
    fn end_if_over(&mut self, now: Instant) {
        let written = match self.output {
            Output::Gone => true,
            Output::Flushed => !self.session.wants_write(),
            Output::Writing | Output::Blocked { .. } => false,
        };
        if !self.is_disconnected() && self.session.is_closed() && written {
            self.input = Vec::new();
            for (id, _) in std::mem::take(&mut self.requests) {
                self.session.abandon_request(now, id);
            }
            if self.session.outstanding() == 0 {
                self.seat.table().closed(self.seat.id);
            } else if !self.seat.table().linger(self.seat.id) {
                self.session.abandon_requests(now);
            }
            self.phase = Phase::Lingering {
                until: now + LATE_ANSWER_WAIT,
            };
        }
        if let Phase::Lingering { .. } = self.phase
            && self.session.outstanding() == 0
        {
            // The end was reported with the last record.
            self.drain_events(now);
            self.seat.table().closed(self.seat.id);
            self.phase = Phase::Over;
        }
    }

    /// What admission reads to choose whom to evict.
    fn update_activity(&self) {
        let activity = &self.seat.activity;
        match (self.phase, self.output) {
            (Phase::Lingering { .. } | Phase::Over, _) => {}
            (_, Output::Blocked { since }) => activity.set_stalled(since),
            (Phase::Serving, _)
                if self.session.outstanding() == 0
                    && self.input.is_empty()
                    && self.requests.is_empty() =>
            {
                activity.set_idle(self.last_traffic)
            }
            _ => activity.set_busy(),
        }
    }
}

/// A served connection dropped before it was over (its task aborted at
/// the end of a stopping server's grace period, a panic): its session is
/// cut, the requests it holds abandoned, its end reported, its seat given
/// back, as on every other way out.
impl<H: Handle> Drop for Served<H> {
    fn drop(&mut self) {
        if self.phase == Phase::Over {
            return;
        }
        let now = self.now;
        if !self.is_disconnected() {
            self.cut(now, Cut::Dropped);
        }
        self.session.abandon_requests(now);
        self.requests.clear();
        self.drain_events(now);
        self.phase = Phase::Over;
    }
}
