//! One device behind a gateway, sans-IO: its connection, the requests
//! waiting for it, and the answer owed to each.
//!
//! A gateway forwards requests from many front sessions to a device that
//! takes one connection and often one request at a time. [`Upstream`]
//! shares that connection: requests wait in a bounded queue, at most
//! `in_flight` of them are on the wire (each under a transaction id of the
//! upstream session, so front sessions' ids never meet), and every request
//! submitted ends in exactly one [`Answer`], whatever happens to the
//! connection: the device's response, or a [`Failure`] that says which
//! Modbus exception the front answers with (0x06, 0x0A, 0x0B).
//!
//! The adapter owns the socket: when [`Upstream::poll_connect`] says so it
//! opens a TCP connection and hands [`Upstream::connected`] a new
//! [`Client`] (TLS or plain), or reports [`Upstream::connect_failed`]; then
//! it feeds bytes, end of stream and deadlines in, and writes what
//! [`Upstream::poll_transmit`] gives out, as for a [`Client`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use mbaps_codec::ExceptionCode;

use crate::client::Client;
use crate::config::MAX_OUTSTANDING_LIMIT;
use crate::event::{ClientEvent, CloseReason, InvalidResponse, Pdu};

/// The most requests a gateway keeps on the wire to one device: legacy
/// devices answer one at a time, and the Implementation Guide's 16 is the
/// most a Modbus/TCP server is expected to queue.
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 16;

/// How one device is reached and how much it is asked at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Requests on the wire at once, 1 (the default: most plain devices
    /// answer one at a time) to [`MAX_UPSTREAM_IN_FLIGHT`].
    pub in_flight: usize,
    /// Requests waiting for a free slot; one more is answered 0x06.
    pub queue: usize,
    /// From a request's arrival to its answer: past it the request is
    /// answered 0x0B (0x0A if the device was never reached meanwhile).
    pub timeout: Duration,
    /// The wait before reconnecting after a failed attempt; it doubles
    /// after each failure, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> UpstreamLimits {
        UpstreamLimits {
            in_flight: 1,
            queue: 64,
            timeout: Duration::from_secs(3),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A limit of [`UpstreamLimits`] out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `in_flight` outside 1..=16.
    #[error("in_flight is {0}: it must be 1 to {MAX_UPSTREAM_IN_FLIGHT}")]
    InFlight(usize),
    /// `queue` outside 1..=65536.
    #[error("queue is {0}: it must be 1 to {MAX_UPSTREAM_QUEUE}")]
    Queue(usize),
    /// A zero `timeout`.
    #[error("timeout is zero: a request could never be answered by the device")]
    Timeout,
    /// `initial_backoff` zero or above `max_backoff`.
    #[error("initial_backoff {initial:?} must be above zero and at most max_backoff {max:?}")]
    Backoff {
        /// `initial_backoff`.
        initial: Duration,
        /// `max_backoff`.
        max: Duration,
    },
}

/// The longest queue per device: each waiting request holds a PDU (about
/// 270 bytes), so 65,536 of them bound a device's queue to 18 MiB.
pub const MAX_UPSTREAM_QUEUE: usize = 65_536;

impl UpstreamLimits {
    /// Checks every limit's range.
    pub fn validate(&self) -> Result<(), LimitError> {
        if !(1..=MAX_UPSTREAM_IN_FLIGHT).contains(&self.in_flight) {
            return Err(LimitError::InFlight(self.in_flight));
        }
        if !(1..=MAX_UPSTREAM_QUEUE).contains(&self.queue) {
            return Err(LimitError::Queue(self.queue));
        }
        if self.timeout.is_zero() {
            return Err(LimitError::Timeout);
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return Err(LimitError::Backoff {
                initial: self.initial_backoff,
                max: self.max_backoff,
            });
        }
        Ok(())
    }
}

const _: () = assert!(MAX_UPSTREAM_IN_FLIGHT <= MAX_OUTSTANDING_LIMIT);

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
    /// The device answered, but not this request (another function or
    /// unit, or a malformed PDU): never passed on, 0x0B.
    Invalid(InvalidResponse),
}

impl Failure {
    /// The exception the front answers with: 0x06 busy (as a server with
    /// no free slot, SPEC "Transactions"), 0x0A and 0x0B as the Modbus
    /// Application Protocol defines them for gateways.
    pub fn exception(&self) -> ExceptionCode {
        match self {
            Failure::QueueFull => ExceptionCode::ServerDeviceBusy,
            Failure::Unreachable => ExceptionCode::GatewayPathUnavailable,
            Failure::Timeout | Failure::Lost(_) | Failure::Invalid(_) => {
                ExceptionCode::GatewayTargetFailedToRespond
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::QueueFull => write!(f, "the device's queue is full"),
            Failure::Unreachable => write!(f, "the device cannot be reached"),
            Failure::Timeout => write!(f, "the device did not answer in time"),
            Failure::Lost(reason) => write!(f, "the connection to the device was lost: {reason:?}"),
            Failure::Invalid(error) => write!(f, "the device's answer is not valid: {error:?}"),
        }
    }
}

/// The end of one submitted request.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The request's ticket.
    pub ticket: Ticket,
    /// The device's response PDU (an exception response included), or why
    /// there is none.
    pub result: Result<Pdu, Failure>,
}

/// A change of the connection to the device.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// The connection is up (after the handshake, on TLS).
    Up,
    /// The TCP connection could not be opened.
    Unreachable,
    /// The connection ended before it was up (the handshake failed: the
    /// device's certificate refused, or ours).
    Failed(CloseReason),
    /// The connection ended after it was up.
    Lost(CloseReason),
}

/// A request waiting for a slot.
#[derive(Clone, Copy, Debug)]
struct Queued {
    ticket: Ticket,
    unit_id: u8,
    pdu: Pdu,
    deadline: Instant,
}

/// Where the connection to the device stands.
enum Link {
    /// No connection: the next attempt is due at `retry_at`.
    Down { retry_at: Instant },
    /// The adapter is opening a TCP connection.
    Dialing,
    /// TCP is up, the TLS handshake under way.
    Handshaking(Box<Client>),
    /// Requests go out.
    Up(Box<Client>),
    /// [`Upstream::close`]d: nothing is retried.
    Closed,
}

/// One device behind a gateway (see the module's documentation).
pub struct Upstream {
    limits: UpstreamLimits,
    link: Link,
    /// The wait after the next failed attempt.
    backoff: Duration,
    queue: VecDeque<Queued>,
    /// Upstream transaction id to the request's ticket.
    in_flight: HashMap<u16, Ticket>,
    answers: VecDeque<Answer>,
    /// Responses discarded by the sessions that ended.
    discarded_before: u64,
    /// Changes of the connection, for the log.
    link_events: VecDeque<LinkEvent>,
    /// What an ended session still owed the device (an alert).
    parting: Vec<u8>,
}

impl Upstream {
    /// A device not connected yet: the first attempt is due at `now`.
    pub fn new(limits: UpstreamLimits, now: Instant) -> Result<Upstream, LimitError> {
        limits.validate()?;
        Ok(Upstream {
            limits,
            link: Link::Down { retry_at: now },
            backoff: limits.initial_backoff,
            queue: VecDeque::with_capacity(limits.queue.min(64)),
            in_flight: HashMap::with_capacity(limits.in_flight),
            answers: VecDeque::new(),
            discarded_before: 0,
            link_events: VecDeque::new(),
            parting: Vec::new(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &UpstreamLimits {
        &self.limits
    }

    /// Takes a request to forward to `unit_id`. Its answer comes through
    /// [`Upstream::poll_answer`]: at once if the queue is full (0x06) or the
    /// device is down and waiting to be retried (0x0A).
    pub fn submit(&mut self, now: Instant, ticket: Ticket, unit_id: u8, pdu: Pdu) {
        let down = match self.link {
            Link::Down { retry_at } => retry_at > now,
            Link::Closed => true,
            Link::Dialing | Link::Handshaking(_) | Link::Up(_) => false,
        };
        if down {
            self.fail(ticket, Failure::Unreachable);
            return;
        }
        if self.queue.len() >= self.limits.queue {
            self.fail(ticket, Failure::QueueFull);
            return;
        }
        self.queue.push_back(Queued {
            ticket,
            unit_id,
            pdu,
            deadline: now + self.limits.timeout,
        });
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

    /// The TCP connection is open: `session` runs on it (its handshake, if
    /// TLS, is under way; a plain session is up at once).
    pub fn connected(&mut self, now: Instant, session: Client) {
        if !matches!(self.link, Link::Dialing) {
            // Not asked for: dropped, and so closed.
            return;
        }
        self.link = Link::Handshaking(Box::new(session));
        self.settle(now);
    }

    /// The TCP connection could not be opened: the requests waiting are
    /// answered 0x0A, and the next attempt waits the backoff.
    pub fn connect_failed(&mut self, now: Instant) {
        if matches!(self.link, Link::Dialing) {
            self.unreachable(now);
            self.link_events.push_back(LinkEvent::Unreachable);
        }
    }

    /// The next change of the connection, for the log; drain until `None`.
    pub fn poll_link_event(&mut self) -> Option<LinkEvent> {
        self.link_events.pop_front()
    }

    /// Bytes read from the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(session) = self.session() {
            session.handle_tls(now, bytes);
        }
        self.settle(now);
    }

    /// The connection's read side ended.
    pub fn handle_eof(&mut self, now: Instant) {
        if let Some(session) = self.session() {
            session.handle_eof(now);
        }
        self.settle(now);
    }

    /// Expires requests and session timers; call at [`Upstream::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(session) = self.session() {
            session.handle_timeout(now);
        }
        self.settle(now);
        let up = matches!(self.link, Link::Up(_));
        while let Some(expired) = self.queue.front().filter(|q| q.deadline <= now) {
            let ticket = expired.ticket;
            self.queue.pop_front();
            let failure = if up {
                Failure::Timeout
            } else {
                Failure::Unreachable
            };
            self.fail(ticket, failure);
        }
    }

    /// When [`Upstream::handle_timeout`] (or [`Upstream::poll_connect`])
    /// is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The queue is in arrival order, and so in deadline order.
        let queued = self.queue.front().map(|q| q.deadline);
        let link = match &self.link {
            Link::Down { retry_at } => Some(*retry_at),
            Link::Dialing | Link::Closed => None,
            Link::Handshaking(session) | Link::Up(session) => session.poll_timeout(),
        };
        match (queued, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next answer; drain until `None` after every call.
    pub fn poll_answer(&mut self) -> Option<Answer> {
        self.answers.pop_front()
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
        matches!(self.link, Link::Handshaking(_) | Link::Up(_))
    }

    /// Whether requests go out now.
    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    /// Requests on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Responses from the device that matched no request on the wire (a
    /// wrong transaction id, or a late answer after a timeout): dropped.
    pub fn discarded_responses(&self) -> u64 {
        let current = match &self.link {
            Link::Handshaking(session) | Link::Up(session) => session.discarded_responses(),
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
        self.settle(now);
        for queued in std::mem::take(&mut self.queue) {
            self.fail(queued.ticket, Failure::Unreachable);
        }
        self.link = Link::Closed;
    }

    fn session(&mut self) -> Option<&mut Client> {
        match &mut self.link {
            Link::Handshaking(session) | Link::Up(session) => Some(session),
            Link::Down { .. } | Link::Dialing | Link::Closed => None,
        }
    }

    fn fail(&mut self, ticket: Ticket, failure: Failure) {
        self.answers.push_back(Answer {
            ticket,
            result: Err(failure),
        });
    }

    /// The attempt to reach the device failed: every request waiting is
    /// answered 0x0A and the next attempt waits the backoff.
    fn unreachable(&mut self, now: Instant) {
        self.link = Link::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.limits.max_backoff);
        for queued in std::mem::take(&mut self.queue) {
            self.fail(queued.ticket, Failure::Unreachable);
        }
    }

    /// Takes the session's events: answers, the handshake's end, the
    /// connection's end; then sends what the free slots allow.
    fn settle(&mut self, now: Instant) {
        let mut ended = None;
        let mut connected = false;
        if let Link::Handshaking(session) | Link::Up(session) = &mut self.link {
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
                    ClientEvent::Response {
                        transaction_id,
                        pdu,
                        ..
                    } => (transaction_id, Ok(pdu)),
                    ClientEvent::Invalid {
                        transaction_id,
                        error,
                    } => (transaction_id, Err(Failure::Invalid(error))),
                    ClientEvent::Timeout { transaction_id } => {
                        (transaction_id, Err(Failure::Timeout))
                    }
                    ClientEvent::Aborted {
                        transaction_id,
                        reason,
                    } => (transaction_id, Err(Failure::Lost(reason))),
                };
                if let Some(ticket) = self.in_flight.remove(&transaction_id) {
                    self.answers.push_back(Answer { ticket, result });
                }
            }
        }
        if connected && matches!(self.link, Link::Handshaking(_)) {
            if let Link::Handshaking(session) = std::mem::replace(&mut self.link, Link::Dialing) {
                self.link = Link::Up(session);
            }
            self.backoff = self.limits.initial_backoff;
            self.link_events.push_back(LinkEvent::Up);
        }
        if let Some(reason) = ended {
            let was_up = matches!(self.link, Link::Up(_));
            if let Link::Handshaking(mut session) | Link::Up(mut session) =
                std::mem::replace(&mut self.link, Link::Dialing)
            {
                // The alert or close_notify owed to the device still goes.
                session.poll_transmit(&mut self.parting);
                self.discarded_before += session.discarded_responses();
            }
            if was_up {
                // Lost after it worked: dial again at once. What waits in
                // the queue was never sent: it goes on the next connection,
                // or is answered 0x0A if that cannot be opened.
                self.link = Link::Down { retry_at: now };
                self.link_events.push_back(LinkEvent::Lost(reason));
            } else {
                self.unreachable(now);
                self.link_events.push_back(LinkEvent::Failed(reason));
            }
        }
        self.send_queued(now);
    }

    /// Sends waiting requests while slots are free.
    fn send_queued(&mut self, now: Instant) {
        let Link::Up(session) = &mut self.link else {
            return;
        };
        while self.in_flight.len() < self.limits.in_flight {
            let Some(next) = self.queue.pop_front() else {
                return;
            };
            let Some(left) = next
                .deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                self.answers.push_back(Answer {
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
                    self.answers.push_back(Answer {
                        ticket: next.ticket,
                        result: Err(Failure::Lost(CloseReason::Failed(error))),
                    });
                }
            }
        }
    }
}
