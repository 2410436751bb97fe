//! One device behind a gateway, sans-IO: its connection, the requests
//! waiting for it, and the answer owed to each.
//!
//! A gateway forwards requests from many front sessions to a device that
//! takes one connection and often one request at a time. [`Upstream`]
//! shares that connection: requests wait in a bounded queue where the
//! front sessions take turns ([`Requester`]: round robin, each with a
//! share of the queue, so that no session's burst delays another's
//! request by more than one request of each), at most `in_flight` of them
//! are on the wire (each under a transaction id of the upstream session,
//! so front sessions' ids never meet), and every request submitted ends in
//! exactly one [`Completion`], whatever happens to the connection: the
//! device's response, or a [`Failure`] that says which Modbus exception
//! the front answers with (0x06, 0x0A, 0x0B).
//!
//! A connection that is lost after it answered (or stayed up a while) is
//! dialled again at once; one that closes before (a device that accepts
//! and closes) waits a backoff that doubles, reported once
//! ([`LinkEvent::Flapping`]).
//!
//! The adapter owns the socket: when [`Upstream::poll_connect`] says so it
//! opens a TCP connection (or a serial port) and hands
//! [`Upstream::connected`] a new [`crate::Client`] (TLS or plain) or, on an
//! RTU upstream ([`Upstream::rtu`]), an [`rtu::RtuLine`]; or it reports
//! [`Upstream::connect_failed`]. Then it feeds bytes, end of stream and
//! deadlines in, and writes what [`Upstream::poll_transmit`] gives out, as
//! for a [`crate::Client`].

mod limits;
mod line;
mod queue;
pub mod rtu;
pub mod serial_line;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use mbaps_codec::{CodecError, ExceptionCode};

use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, DropReason, InvalidResponse, Pdu};

pub use limits::{LimitError, MAX_UPSTREAM_IN_FLIGHT, MAX_UPSTREAM_QUEUE, UpstreamLimits};
pub use line::Line;
pub use queue::Requester;
use queue::{Admission, FairQueue, Queued};
use rtu::{LineCounters, RtuSettings};

/// The caller's name for a submitted request, handed back with its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Why a forwarded request got no answer from the device.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The queue was full: 0x06 (server device busy).
    QueueFull,
    /// The device could not be reached: 0x0A (gateway path unavailable).
    Unreachable,
    /// No answer within the timeout: 0x0B.
    Timeout,
    /// The connection was lost with the request on the wire: 0x0B (the
    /// request is not sent again: a write may have been carried out).
    Lost(CloseReason),
    /// A request to unit 0 on an RTU route that is not a write: a
    /// broadcast gets no answer, so only writes may be broadcast (Serial
    /// Line V1.02, 2.2): 0x0A.
    BroadcastNotWrite,
    /// The function has no RTU length rule (a user-defined code), so it
    /// cannot be framed on a serial line or RTU over TCP: 0x01.
    Unframeable(CodecError),
    /// The device answered, but not this request (another function or
    /// unit, a malformed PDU, or, while it was the only one on the wire,
    /// under another transaction or protocol id): never passed on, 0x0B.
    Invalid(InvalidResponse),
}

impl Failure {
    /// The exception the front answers with: 0x06 busy (as a server with
    /// no free slot, SPEC "Transactions"), 0x0A and 0x0B as the Modbus
    /// Application Protocol defines them for gateways.
    pub fn exception(&self) -> ExceptionCode {
        match self {
            Failure::QueueFull => ExceptionCode::ServerDeviceBusy,
            Failure::Unreachable | Failure::BroadcastNotWrite => {
                ExceptionCode::GatewayPathUnavailable
            }
            Failure::Unframeable(_) => ExceptionCode::IllegalFunction,
            Failure::Timeout | Failure::Lost(_) | Failure::Invalid(_) => {
                ExceptionCode::GatewayTargetFailedToRespond
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::QueueFull => write!(
                f,
                "the device's queue is full, or this session holds its share of it"
            ),
            Failure::Unreachable => write!(f, "the device cannot be reached"),
            Failure::BroadcastNotWrite => write!(
                f,
                "unit 0 on an RTU route is a broadcast, which no server answers: only writes may be broadcast"
            ),
            Failure::Unframeable(error) => write!(f, "{error}"),
            Failure::Timeout => write!(f, "the device did not answer in time"),
            Failure::Lost(reason) => write!(f, "the connection to the device was lost: {reason:?}"),
            Failure::Invalid(error) => write!(f, "the device's answer is not valid: {error}"),
        }
    }
}

/// The end of one submitted request: exactly one per submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The request's ticket.
    pub ticket: Ticket,
    /// The device's response PDU (an exception response included), or why
    /// there is none.
    pub result: Result<Pdu, Failure>,
}

/// What happened on the connection to the device, for the log.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// The connection is up (after the handshake, on TLS); after
    /// [`LinkEvent::Flapping`], once a connection has answered.
    Up,
    /// The TCP connection could not be opened.
    Unreachable,
    /// The connection ended before it was up (the handshake failed: the
    /// device's certificate refused, or ours).
    Failed(CloseReason),
    /// The connection ended after it was up (and had answered, or stayed
    /// up a while): it is dialled again at once.
    Lost(CloseReason),
    /// The device closes connections before they answer anything or stay
    /// up a while (it accepts and closes): it is dialled again after a
    /// backoff that doubles, and its ups and downs are not reported one by
    /// one until a connection answers ([`LinkEvent::Up`]). Reported once.
    Flapping {
        /// How the connection that made it so ended.
        reason: CloseReason,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// A frame from the device that answers no request was dropped
    /// (counted in [`Upstream::discarded_responses`]). With one request
    /// on the wire and a frame no request of late can own (another
    /// transaction id, a protocol id other than 0), that request is
    /// answered 0x0B at once: its own answer is not coming. With several
    /// on the wire, none can be blamed: they wait for their answers or
    /// their timeouts.
    DroppedAnswer {
        /// The frame's transaction id.
        transaction_id: u16,
        /// Why it answers nothing.
        reason: DropReason,
        /// The transaction ids on the wire when it came, in order.
        in_flight: Vec<u16>,
    },
}

/// Where the connection to the device stands.
enum Link {
    /// No connection: the next attempt is due at `retry_at`.
    Down { retry_at: Instant },
    /// The adapter is opening a TCP connection.
    Dialing,
    /// TCP is up, the TLS handshake under way.
    Handshaking(Line),
    /// Requests go out; up `since`, and whether it has answered anything
    /// (a connection that answers is one that works: its loss is redialled
    /// at once, and the backoff starts over).
    Up {
        session: Line,
        since: Instant,
        answered: bool,
    },
    /// [`Upstream::close`]d: nothing is retried.
    Closed,
}

/// One device behind a gateway (see the module's documentation).
pub struct Upstream {
    limits: UpstreamLimits,
    link: Link,
    /// The wait after the next failed attempt.
    backoff: Duration,
    /// The device's connections close before they work (see
    /// [`LinkEvent::Flapping`]): reported once, until one answers.
    flapping: bool,
    queue: FairQueue,
    /// Upstream transaction id to the request's ticket.
    in_flight: HashMap<u16, Ticket>,
    completions: VecDeque<Completion>,
    /// Responses discarded by the sessions that ended.
    discarded_before: u64,
    /// What happened on the connection, for the log.
    link_events: VecDeque<LinkEvent>,
    /// What an ended session still owed the device (an alert).
    parting: Vec<u8>,
    /// How the device is framed: `None` for Modbus/TCP (MBAP), the line's
    /// settings for RTU (a serial line, or RTU over TCP).
    rtu: Option<RtuSettings>,
    /// What the RTU lines that ended counted.
    counters_before: LineCounters,
}

impl Upstream {
    /// A device not connected yet: the first attempt is due at `now`.
    pub fn new(limits: UpstreamLimits, now: Instant) -> Result<Upstream, LimitError> {
        limits.validate()?;
        Ok(Upstream {
            limits,
            link: Link::Down { retry_at: now },
            backoff: limits.initial_backoff,
            flapping: false,
            queue: FairQueue::new(limits.queue, limits.session_share()),
            in_flight: HashMap::with_capacity(limits.in_flight),
            completions: VecDeque::new(),
            discarded_before: 0,
            link_events: VecDeque::new(),
            parting: Vec::new(),
            rtu: None,
            counters_before: LineCounters::default(),
        })
    }

    /// A device reached by RTU frames (a serial line, or RTU over TCP):
    /// the adapter hands [`Upstream::connected`] an [`rtu::RtuLine`] made
    /// with `settings` when the port or the connection is open. One
    /// request at a time: `limits.in_flight` must be 1.
    pub fn rtu(
        limits: UpstreamLimits,
        settings: RtuSettings,
        now: Instant,
    ) -> Result<Upstream, LimitError> {
        if limits.in_flight != 1 {
            return Err(LimitError::RtuInFlight(limits.in_flight));
        }
        for (name, value) in [
            ("turnaround", settings.turnaround),
            ("response_timeout", settings.response_timeout),
        ] {
            if !(crate::MIN_TIMEOUT..=crate::MAX_TIMEOUT).contains(&value) {
                return Err(LimitError::RtuTiming { name, value });
            }
        }
        let mut upstream = Upstream::new(limits, now)?;
        upstream.rtu = Some(settings);
        Ok(upstream)
    }

    /// The RTU line's settings, on an RTU upstream.
    pub fn rtu_settings(&self) -> Option<&RtuSettings> {
        self.rtu.as_ref()
    }

    /// What the RTU lines of this device counted (requests, CRC errors,
    /// timeouts, retries, discarded frames, busy time), over every line
    /// opened; `None` for Modbus/TCP.
    pub fn line_counters(&self) -> Option<LineCounters> {
        self.rtu?;
        let current = match &self.link {
            Link::Handshaking(Line::Rtu(line))
            | Link::Up {
                session: Line::Rtu(line),
                ..
            } => line.counters(),
            _ => LineCounters::default(),
        };
        Some(self.counters_before.plus(current))
    }

    /// The limits.
    pub fn limits(&self) -> &UpstreamLimits {
        &self.limits
    }

    /// Takes a request from `requester` (its front session) to forward to
    /// `unit_id`. Its answer comes through [`Upstream::poll_completion`]: at
    /// once, 0x06, if the requester holds its share of the queue or the
    /// queue is full of requesters holding no more than it (a full queue
    /// makes the requester holding the most give up its newest request,
    /// answered 0x06, for one that holds fewer); 0x0A if the device is
    /// down and waiting to be retried.
    pub fn submit(
        &mut self,
        now: Instant,
        requester: Requester,
        ticket: Ticket,
        unit_id: u8,
        pdu: Pdu,
    ) {
        let down = match self.link {
            Link::Down { retry_at } => retry_at > now,
            Link::Closed => true,
            Link::Dialing | Link::Handshaking(_) | Link::Up { .. } => false,
        };
        if down {
            self.fail(ticket, Failure::Unreachable);
            return;
        }
        // Refused before it waits: what the line would refuse.
        if self.rtu.is_some()
            && let Err(refused) = rtu::check_request(unit_id, &pdu)
        {
            let failure = match refused {
                SessionError::InvalidRequest(error) => Failure::Unframeable(error),
                _ => Failure::BroadcastNotWrite,
            };
            self.fail(ticket, failure);
            return;
        }
        let request = Queued {
            ticket,
            unit_id,
            pdu,
            deadline: now + self.limits.timeout,
        };
        match self.queue.push(requester, request) {
            Admission::Queued => {}
            Admission::QueuedInPlaceOf(pushed_out) => self.fail(pushed_out, Failure::QueueFull),
            Admission::Refused => self.fail(ticket, Failure::QueueFull),
        }
        self.send_queued(now);
    }

    /// Whether a connection should be opened now; if so, the adapter opens
    /// one and reports [`Upstream::connected`] or
    /// [`Upstream::connect_failed`].
    pub fn poll_connect(&mut self, now: Instant) -> bool {
        match self.link {
            Link::Down { retry_at } if retry_at <= now => {
                self.link = Link::Dialing;
                true
            }
            _ => false,
        }
    }

    /// The connection is open: `session` runs on it (a [`crate::Client`]
    /// whose handshake, if TLS, is under way, a plain one being up at once;
    /// or an [`rtu::RtuLine`], up at once, on an RTU upstream).
    pub fn connected(&mut self, now: Instant, session: impl Into<Line>) {
        if !matches!(self.link, Link::Dialing) {
            // Not asked for: dropped, and so closed.
            return;
        }
        self.link = Link::Handshaking(session.into());
        self.take_session_events(now);
    }

    /// The TCP connection could not be opened: the requests waiting are
    /// answered 0x0A, and the next attempt waits the backoff.
    pub fn connect_failed(&mut self, now: Instant) {
        if matches!(self.link, Link::Dialing) {
            self.unreachable(now);
            self.link_events.push_back(LinkEvent::Unreachable);
        }
    }

    /// The next event of the connection, for the log; drain until `None`.
    pub fn poll_link_event(&mut self) -> Option<LinkEvent> {
        self.link_events.pop_front()
    }

    /// Bytes read from the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(session) = self.session() {
            session.handle_bytes(now, bytes);
        }
        self.take_session_events(now);
    }

    /// The connection's read side ended.
    pub fn handle_eof(&mut self, now: Instant) {
        if let Some(session) = self.session() {
            session.handle_eof(now);
        }
        self.take_session_events(now);
    }

    /// The connection failed under the link (a serial port's read or
    /// write error, a reset).
    pub fn handle_error(&mut self, now: Instant, kind: std::io::ErrorKind) {
        if let Some(session) = self.session() {
            session.handle_error(now, kind);
        }
        self.take_session_events(now);
    }

    /// Expires requests and session timers; call at [`Upstream::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(session) = self.session() {
            session.handle_timeout(now);
        }
        self.take_session_events(now);
        let failure = if self.is_up() {
            Failure::Timeout
        } else {
            Failure::Unreachable
        };
        let completions = &mut self.completions;
        self.queue.expire(now, |ticket| {
            completions.push_back(Completion {
                ticket,
                result: Err(failure.clone()),
            })
        });
    }

    /// When [`Upstream::handle_timeout`] (or [`Upstream::poll_connect`])
    /// is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.queue.next_deadline();
        let link = match &self.link {
            Link::Down { retry_at } => Some(*retry_at),
            Link::Dialing | Link::Closed => None,
            Link::Handshaking(session) | Link::Up { session, .. } => session.poll_timeout(),
        };
        match (queued, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next completed request (the device's answer, or the failure
    /// that stands for it); drain until `None` after every call.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// Appends the bytes to write to the connection; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let parting = self.parting.len();
        out.append(&mut self.parting);
        parting
            + match self.session() {
                Some(session) => session.poll_transmit(out),
                None => 0,
            }
    }

    /// Whether a connection is open (handshaking or up): the adapter keeps
    /// reading and writing it while this holds, and drops its socket (after
    /// writing what [`Upstream::poll_transmit`] gives) when it stops.
    pub fn has_connection(&self) -> bool {
        matches!(self.link, Link::Handshaking(_) | Link::Up { .. })
    }

    /// Whether requests go out now.
    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up { .. })
    }

    /// Requests on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Frames from the device that answered no request on the wire (a
    /// wrong transaction or protocol id, or a late answer after a
    /// timeout): dropped.
    pub fn discarded_responses(&self) -> u64 {
        let current = match &self.link {
            Link::Handshaking(session) | Link::Up { session, .. } => session.discarded_responses(),
            Link::Down { .. } | Link::Dialing | Link::Closed => 0,
        };
        self.discarded_before + current
    }

    /// Closes the connection (close_notify on TLS) and answers every
    /// request, waiting or on the wire, 0x0A: for a gateway shutting down.
    /// Nothing is retried afterwards, and later requests are answered 0x0A.
    pub fn close(&mut self, now: Instant) {
        if let Some(session) = self.session() {
            session.close(now);
        }
        self.take_session_events(now);
        self.fail_queue(Failure::Unreachable);
        self.link = Link::Closed;
    }

    fn session(&mut self) -> Option<&mut Line> {
        match &mut self.link {
            Link::Handshaking(session) | Link::Up { session, .. } => Some(session),
            Link::Down { .. } | Link::Dialing | Link::Closed => None,
        }
    }

    fn fail(&mut self, ticket: Ticket, failure: Failure) {
        self.completions.push_back(Completion {
            ticket,
            result: Err(failure),
        });
    }

    /// Answers every waiting request with `failure`.
    fn fail_queue(&mut self, failure: Failure) {
        let completions = &mut self.completions;
        self.queue.clear(|ticket| {
            completions.push_back(Completion {
                ticket,
                result: Err(failure.clone()),
            })
        });
    }

    /// The device cannot be used now: every request waiting is answered
    /// 0x0A and the next attempt waits the backoff, which doubles.
    fn unreachable(&mut self, now: Instant) {
        self.link = Link::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.limits.max_backoff);
        self.fail_queue(Failure::Unreachable);
    }

    /// Takes the session's events: answers, frames that answer nothing,
    /// the handshake's end, the connection's end; then sends what the
    /// free slots allow.
    fn take_session_events(&mut self, now: Instant) {
        let mut ended = None;
        let mut connected = false;
        let mut dropped: Vec<(u16, DropReason)> = Vec::new();
        let (session, answered) = match &mut self.link {
            Link::Handshaking(session) => (Some(session), None),
            Link::Up {
                session, answered, ..
            } => (Some(session), Some(answered)),
            Link::Down { .. } | Link::Dialing | Link::Closed => (None, None),
        };
        let mut heard = false;
        if let Some(session) = session {
            while let Some(event) = session.poll_event() {
                let (transaction_id, result) = match event {
                    ClientEvent::Connected(_) => {
                        connected = true;
                        continue;
                    }
                    ClientEvent::Closed(reason) => {
                        ended = Some(reason);
                        continue;
                    }
                    ClientEvent::Dropped {
                        transaction_id,
                        reason,
                    } => {
                        dropped.push((transaction_id, reason));
                        continue;
                    }
                    ClientEvent::Response {
                        transaction_id,
                        pdu,
                        ..
                    } => {
                        heard = true;
                        (transaction_id, Ok(pdu))
                    }
                    ClientEvent::Invalid {
                        transaction_id,
                        error,
                    } => {
                        heard = true;
                        (transaction_id, Err(Failure::Invalid(error)))
                    }
                    ClientEvent::Timeout { transaction_id } => {
                        (transaction_id, Err(Failure::Timeout))
                    }
                    ClientEvent::Aborted {
                        transaction_id,
                        reason,
                    } => (transaction_id, Err(Failure::Lost(reason))),
                };
                if let Some(ticket) = self.in_flight.remove(&transaction_id) {
                    self.completions.push_back(Completion { ticket, result });
                }
            }
            for (transaction_id, reason) in dropped {
                let mut on_wire: Vec<u16> = self.in_flight.keys().copied().collect();
                on_wire.sort_unstable();
                let sole = match on_wire[..] {
                    [sole]
                        if matches!(
                            reason,
                            DropReason::UnknownTransactionId | DropReason::ProtocolId(_)
                        ) =>
                    {
                        Some(sole)
                    }
                    _ => None,
                };
                self.link_events.push_back(LinkEvent::DroppedAnswer {
                    transaction_id,
                    reason,
                    in_flight: on_wire,
                });
                // The one request on the wire: its answer is not coming.
                if let Some(expected) = sole
                    && let Some(ticket) = self.in_flight.remove(&expected)
                {
                    session.abandon(expected);
                    let protocol_id = match reason {
                        DropReason::ProtocolId(id) => id,
                        DropReason::Late
                        | DropReason::UnknownTransactionId
                        | DropReason::OtherUnit(_)
                        | DropReason::Crc => 0,
                    };
                    let error = InvalidResponse::Unechoed {
                        expected,
                        found: transaction_id,
                        protocol_id,
                    };
                    self.completions.push_back(Completion {
                        ticket,
                        result: Err(Failure::Invalid(error)),
                    });
                }
            }
        }
        if heard
            && let Some(answered) = answered
            && !*answered
        {
            *answered = true;
            // A connection that answers works: the backoff starts over.
            self.backoff = self.limits.initial_backoff;
            if self.flapping {
                self.flapping = false;
                self.link_events.push_back(LinkEvent::Up);
            }
        }
        if connected && matches!(self.link, Link::Handshaking(_)) {
            if let Link::Handshaking(session) = std::mem::replace(&mut self.link, Link::Dialing) {
                self.link = Link::Up {
                    session,
                    since: now,
                    answered: false,
                };
            }
            if !self.flapping {
                self.link_events.push_back(LinkEvent::Up);
            }
        }
        if let Some(reason) = ended {
            self.ended(now, reason);
        }
        self.send_queued(now);
    }

    /// The session to the device ended with `reason`.
    fn ended(&mut self, now: Instant, reason: CloseReason) {
        match std::mem::replace(&mut self.link, Link::Dialing) {
            Link::Up {
                mut session,
                since,
                answered,
            } => {
                self.part(&mut session);
                let lasted = now.saturating_duration_since(since) >= self.limits.max_backoff;
                if answered || lasted {
                    // Lost after it worked: dial again at once. What waits
                    // in the queue was never sent: it goes on the next
                    // connection, or is answered 0x0A if that cannot be
                    // opened.
                    self.backoff = self.limits.initial_backoff;
                    self.flapping = false;
                    self.link = Link::Down { retry_at: now };
                    self.link_events.push_back(LinkEvent::Lost(reason));
                } else {
                    // Closed before it did anything: the device accepts
                    // and closes. Dialling again at once would spin.
                    let retry_in = self.backoff;
                    self.unreachable(now);
                    if !self.flapping {
                        self.flapping = true;
                        self.link_events
                            .push_back(LinkEvent::Flapping { reason, retry_in });
                    }
                }
            }
            Link::Handshaking(mut session) => {
                self.part(&mut session);
                self.unreachable(now);
                if !self.flapping {
                    self.link_events.push_back(LinkEvent::Failed(reason));
                }
            }
            other => self.link = other,
        }
    }

    /// What an ended session still owes the device (its alert or
    /// close_notify) goes out; its count of dropped frames is kept.
    fn part(&mut self, session: &mut Line) {
        session.poll_transmit(&mut self.parting);
        self.discarded_before += session.discarded_responses();
        if let Line::Rtu(line) = session {
            self.counters_before = self.counters_before.plus(line.counters());
        }
    }

    /// Sends waiting requests while slots are free, the front sessions
    /// taking turns.
    fn send_queued(&mut self, now: Instant) {
        let Link::Up { session, .. } = &mut self.link else {
            return;
        };
        while self.in_flight.len() < self.limits.in_flight {
            let Some(next) = self.queue.pop() else {
                return;
            };
            let Some(left) = next
                .deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                self.completions.push_back(Completion {
                    ticket: next.ticket,
                    result: Err(Failure::Timeout),
                });
                continue;
            };
            match session.send_request_pdu(now, next.unit_id, &next.pdu, left) {
                Ok(transaction_id) => {
                    self.in_flight.insert(transaction_id, next.ticket);
                }
                Err(error) => {
                    // Only a session that is ending refuses a request in a
                    // free slot; its end comes next.
                    self.completions.push_back(Completion {
                        ticket: next.ticket,
                        result: Err(Failure::Lost(CloseReason::Failed(error))),
                    });
                }
            }
        }
    }
}
