//! The client side of a Modbus/TCP Security session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_codec::{Adu, CodecError, MbapHeader, Request, Response, encode_request};
use rustls::pki_types::ServerName;

use crate::config::{ClientConfig, MAX_TIMEOUT};
use crate::connection::{Connection, Frame};
use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, Cut, DropReason, InvalidResponse, Pdu};
use crate::resumption::Forget;
use crate::transport::{Tls, Transport};

#[derive(Clone, Copy, Debug)]
struct Pending {
    transaction_id: u16,
    unit_id: u8,
    function: u8,
    deadline: Instant,
}

/// A client session: one TLS connection to one server, with several
/// requests in flight, told apart by transaction id.
///
/// [`Client::send_request`] queues a request (before the handshake has
/// finished too: it is sent when it has) and returns its transaction id;
/// every request ends in exactly one [`ClientEvent::Response`],
/// [`ClientEvent::Invalid`], [`ClientEvent::Timeout`] or
/// [`ClientEvent::Aborted`]. The last event is [`ClientEvent::Closed`],
/// exactly once.
pub struct Client {
    connection: Connection,
    outstanding: Vec<Pending>,
    max_outstanding: usize,
    next_transaction_id: u16,
    events: VecDeque<ClientEvent>,
    discarded: u64,
    /// Requests that ended lately (answered, timed out, abandoned): an
    /// answer under one of their ids is late, not a stranger's.
    ended: Ended,
    config: ClientConfig,
}

/// How many ended requests' transaction ids a client remembers, to tell a
/// late or repeated answer from one under an id it never used: four
/// windows of the usual 16 in flight.
const ENDED_REMEMBERED: usize = 64;

/// The transaction ids of the requests that ended last, oldest replaced
/// first; nothing is allocated until a request ends.
#[derive(Default)]
struct Ended {
    ids: Vec<u16>,
    next: usize,
}

impl Ended {
    fn note(&mut self, transaction_id: u16) {
        if self.ids.len() < ENDED_REMEMBERED {
            self.ids.push(transaction_id);
        } else {
            self.ids[self.next] = transaction_id;
            self.next = (self.next + 1) % ENDED_REMEMBERED;
        }
    }

    fn contains(&self, transaction_id: u16) -> bool {
        self.ids.contains(&transaction_id)
    }
}

impl Client {
    /// A session to `server`, whose certificate must name it (unless the
    /// configuration says otherwise), started at `now`. A plain Modbus/TCP
    /// configuration ignores the name. Fails only if rustls cannot start a
    /// connection with `config`.
    pub fn new(
        config: &ClientConfig,
        server: ServerName<'static>,
        now: Instant,
    ) -> Result<Client, SessionError> {
        let forget = config.sessions.as_ref().map(|sessions| Forget::Client {
            sessions: Arc::clone(sessions),
            server: server.clone(),
        });
        let transport = match &config.tls {
            Some(tls) => {
                let conn = rustls::client::UnbufferedClientConnection::new(Arc::clone(tls), server)
                    .map_err(SessionError::Tls)?;
                Transport::Tls(Tls::client(conn))
            }
            None => Transport::Plain(Default::default()),
        };
        let mut session = Client {
            connection: Connection::new(transport, now, config.timers),
            outstanding: Vec::with_capacity(config.max_outstanding),
            max_outstanding: config.max_outstanding,
            next_transaction_id: 0,
            events: VecDeque::new(),
            discarded: 0,
            ended: Ended::default(),
            config: config.clone(),
        };
        if let Some(forget) = forget {
            session.connection.forget_on_alert(forget);
        }
        if session.connection.is_open() {
            // Plain Modbus/TCP is up from the start.
            session.events.push_back(ClientEvent::Connected(None));
        }
        Ok(session)
    }

    /// Queues `request` to `unit_id`, encoded once into the output, and
    /// returns its transaction id, never one still outstanding. It times
    /// out after the configuration's request timeout.
    pub fn send_request(
        &mut self,
        now: Instant,
        unit_id: u8,
        request: &Request<'_>,
    ) -> Result<u16, SessionError> {
        let timeout = self.config.request_timeout;
        self.send_request_with_timeout(now, unit_id, request, timeout)
    }

    /// [`Client::send_request`] with this request's own timeout (at most
    /// [`MAX_TIMEOUT`](crate::config::MAX_TIMEOUT), a day: a longer one is
    /// taken as a day, as no deadline could hold it).
    pub fn send_request_with_timeout(
        &mut self,
        now: Instant,
        unit_id: u8,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<u16, SessionError> {
        let function = request.function().code();
        self.send_with(now, unit_id, function, timeout, |header, out| {
            encode_request(header, request, out)
        })
    }

    /// Queues a request encoded already ([`Pdu::encode_request`], by a
    /// caller on another task): its bytes are copied after the header.
    pub fn send_request_pdu(
        &mut self,
        now: Instant,
        unit_id: u8,
        pdu: &Pdu,
        timeout: Duration,
    ) -> Result<u16, SessionError> {
        self.send_with(now, unit_id, pdu.function(), timeout, |header, out| {
            Adu {
                header,
                pdu: pdu.as_bytes(),
            }
            .encode(out)
        })
    }

    fn send_with(
        &mut self,
        now: Instant,
        unit_id: u8,
        function: u8,
        timeout: Duration,
        encode: impl FnOnce(MbapHeader, &mut [u8]) -> Result<usize, CodecError>,
    ) -> Result<u16, SessionError> {
        if let Some(refused) = self.connection.refusal() {
            return Err(refused);
        }
        if self.outstanding.len() >= self.max_outstanding {
            return Err(SessionError::TooManyOutstanding(self.outstanding.len()));
        }
        let transaction_id = self.allocate_transaction_id();
        let header = MbapHeader {
            transaction_id,
            unit_id,
        };
        let written = self
            .connection
            .write_adu(now, |out| encode(header, out))
            .map(|written| written.map(|_| ()));
        self.report_end();
        match written {
            Some(Ok(())) => {}
            Some(Err(error)) => return Err(SessionError::InvalidRequest(error)),
            None => {
                return Err(self
                    .connection
                    .refusal()
                    .unwrap_or(SessionError::SendBufferFull));
            }
        }
        self.outstanding.push(Pending {
            transaction_id,
            unit_id,
            function,
            deadline: now + timeout.min(MAX_TIMEOUT),
        });
        Ok(transaction_id)
    }

    fn allocate_transaction_id(&mut self) -> u16 {
        // At most 256 are outstanding, so a free id is found within 257 steps.
        loop {
            let candidate = self.next_transaction_id;
            self.next_transaction_id = self.next_transaction_id.wrapping_add(1);
            if !self
                .outstanding
                .iter()
                .any(|p| p.transaction_id == candidate)
            {
                return candidate;
            }
        }
    }

    /// Bytes read from the connection: all are taken (responses are
    /// matched and reported as they come).
    pub fn handle_tls(&mut self, now: Instant, bytes: &[u8]) {
        let mut input = bytes;
        while !input.is_empty() {
            if self.connection.read_tls(now, &mut input) {
                let handshake = self.connection.handshake();
                self.events.push_back(ClientEvent::Connected(handshake));
            }
            self.take_responses();
        }
        self.report_end();
    }

    /// The connection under the session is gone (`cut`: a read or write
    /// error, a write the server never took): nothing more can be sent.
    /// The session ends now, unless it had already; the requests in flight
    /// are aborted with the reason, and the end is reported
    /// ([`ClientEvent::Closed`]) like any other.
    pub fn cut(&mut self, _now: Instant, cut: Cut) {
        self.connection.cut(cut.reason());
        self.report_end();
    }

    /// The connection's read side ended (a read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant) {
        self.connection.read_eof();
        self.take_responses();
        self.report_end();
    }

    /// Expires requests past their deadline and checks the session timers;
    /// call when [`Client::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (events, ended) = (&mut self.events, &mut self.ended);
        self.outstanding.retain(|pending| {
            let expired = pending.deadline <= now;
            if expired {
                ended.note(pending.transaction_id);
                events.push_back(ClientEvent::Timeout {
                    transaction_id: pending.transaction_id,
                });
            }
            !expired
        });
        self.connection
            .check_timers(now, self.outstanding.is_empty());
        self.report_end();
    }

    /// When [`Client::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.connection.deadline(self.outstanding.is_empty());
        let request = self.outstanding.iter().map(|p| p.deadline).min();
        match (session, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event; drain until `None` after every call.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends the bytes to write to the connection; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.connection.poll_transmit(out)
    }

    /// Closes the session with close_notify; requests in flight end with
    /// [`ClientEvent::Aborted`] at once. The server has the close timeout
    /// to answer with its own close_notify.
    pub fn close(&mut self, now: Instant) {
        self.abort_outstanding(&CloseReason::LocalClose);
        self.connection.close(now, CloseReason::LocalClose);
        self.report_end();
    }

    /// Whether the server is verified and the session up.
    pub fn is_connected(&self) -> bool {
        self.connection.is_open()
    }

    /// Whether the session is over (its last event is reported).
    pub fn is_closed(&self) -> bool {
        self.connection.is_closed()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// The transaction ids of the requests in flight (in no order).
    pub fn in_flight_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.outstanding.iter().map(|p| p.transaction_id)
    }

    /// Stops waiting for request `transaction_id`: it reports nothing
    /// more, and an answer that still comes under its id is late
    /// ([`DropReason::Late`]). `false` when it was not in flight.
    pub fn abandon(&mut self, transaction_id: u16) -> bool {
        let Some(index) = self
            .outstanding
            .iter()
            .position(|p| p.transaction_id == transaction_id)
        else {
            return false;
        };
        self.outstanding.remove(index);
        self.ended.note(transaction_id);
        true
    }

    /// Responses discarded because their transaction id matched no request
    /// in flight (late ones, after a timeout, included).
    pub fn discarded_responses(&self) -> u64 {
        self.discarded
    }

    /// The one place that reports the end: requests in flight are
    /// aborted, then the end is the last event.
    fn report_end(&mut self) {
        if let Some(reason) = self.connection.take_end() {
            self.abort_outstanding(&reason);
            self.events.push_back(ClientEvent::Closed(reason));
        }
    }

    fn abort_outstanding(&mut self, reason: &CloseReason) {
        for pending in self.outstanding.drain(..) {
            self.events.push_back(ClientEvent::Aborted {
                transaction_id: pending.transaction_id,
                reason: reason.clone(),
            });
        }
    }

    /// Matches every whole response of the stream with its request.
    fn take_responses(&mut self) {
        loop {
            let Client {
                connection,
                outstanding,
                events,
                discarded,
                ended,
                ..
            } = self;
            let taken = connection.take_frame(|frame, _| match frame {
                Frame::Discarded {
                    protocol_id,
                    transaction_id,
                } => {
                    *discarded += 1;
                    events.push_back(ClientEvent::Dropped {
                        transaction_id,
                        reason: DropReason::ProtocolId(protocol_id),
                    });
                }
                Frame::Adu { header, pdu } => {
                    let transaction_id = header.transaction_id;
                    let Some(index) = outstanding
                        .iter()
                        .position(|p| p.transaction_id == transaction_id)
                    else {
                        *discarded += 1;
                        let reason = if ended.contains(transaction_id) {
                            DropReason::Late
                        } else {
                            DropReason::UnknownTransactionId
                        };
                        events.push_back(ClientEvent::Dropped {
                            transaction_id,
                            reason,
                        });
                        return;
                    };
                    let pending = outstanding.swap_remove(index);
                    ended.note(pending.transaction_id);
                    events.push_back(on_response(pending, header, pdu));
                }
            });
            if taken.is_none() {
                return;
            }
        }
    }
}

/// A response to `pending`: its outcome.
fn on_response(pending: Pending, header: MbapHeader, pdu: &[u8]) -> ClientEvent {
    judge_response(
        pending.transaction_id,
        pending.function,
        pending.unit_id,
        header.unit_id,
        pdu,
    )
}

/// The outcome of request `transaction_id` (of `function`, to
/// `expected_unit`) answered by `unit_id` with `pdu`: a response, or why
/// it is not one. The one rule for MBAP and RTU links.
pub(crate) fn judge_response(
    transaction_id: u16,
    function: u8,
    expected_unit: u8,
    unit_id: u8,
    pdu: &[u8],
) -> ClientEvent {
    let invalid = |error| ClientEvent::Invalid {
        transaction_id,
        error,
    };
    match Response::decode(pdu) {
        Err(error) => invalid(InvalidResponse::Malformed(error)),
        Ok(response) if response.function_code() != function => {
            invalid(InvalidResponse::WrongFunction {
                expected: function,
                found: response.function_code(),
            })
        }
        Ok(_) if unit_id != expected_unit => invalid(InvalidResponse::WrongUnit {
            expected: expected_unit,
            found: unit_id,
        }),
        Ok(_) => ClientEvent::Response {
            transaction_id,
            unit_id,
            pdu: Pdu::copy_of(pdu),
        },
    }
}
