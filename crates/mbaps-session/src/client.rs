//! The client side of a Modbus/TCP Security session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_codec::limits::MAX_ADU_LEN;
use mbaps_codec::{MbapHeader, Request, Response, encode_request};
use rustls::pki_types::ServerName;

use crate::config::ClientConfig;
use crate::error::SessionError;
use crate::event::{ClientEvent, CloseReason, InvalidResponse, Pdu};
use crate::link::{Frame, Link};
use crate::resumption::Forget;
use crate::transport::Transport;

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
/// [`ClientEvent::Aborted`] (the latter also when the session fails).
pub struct Client {
    link: Link,
    outstanding: Vec<Pending>,
    max_outstanding: usize,
    next_transaction_id: u16,
    events: VecDeque<ClientEvent>,
    discarded: u64,
    connected: bool,
    closed_reported: bool,
    config: ClientConfig,
}

impl Client {
    /// A session to `server`, whose certificate must name it (unless the
    /// configuration says otherwise), started at `now`. A plain Modbus/TCP
    /// configuration ignores the name.
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
                let conn = rustls::ClientConnection::new(Arc::clone(tls), server)
                    .map_err(SessionError::Tls)?;
                Transport::Tls(Box::new(conn.into()))
            }
            None => Transport::Plain(Default::default()),
        };
        let mut session = Client {
            link: Link::new(transport, now, config.timers),
            outstanding: Vec::with_capacity(config.max_outstanding),
            max_outstanding: config.max_outstanding,
            next_transaction_id: 0,
            events: VecDeque::new(),
            discarded: 0,
            connected: false,
            closed_reported: false,
            config: config.clone(),
        };
        if let Some(forget) = forget {
            session.link.forget_on_alert(forget);
        }
        if session.link.transport().is_plain() {
            // Plain Modbus/TCP is up from the start.
            session.process()?;
        }
        Ok(session)
    }

    /// Queues `request` to `unit_id` and returns its transaction id, never
    /// one still outstanding. It times out after the configuration's
    /// request timeout.
    pub fn send_request(
        &mut self,
        now: Instant,
        unit_id: u8,
        request: &Request<'_>,
    ) -> Result<u16, SessionError> {
        let timeout = self.config.request_timeout;
        self.send_request_with_timeout(now, unit_id, request, timeout)
    }

    /// [`Client::send_request`] with this request's own timeout.
    pub fn send_request_with_timeout(
        &mut self,
        now: Instant,
        unit_id: u8,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<u16, SessionError> {
        self.link.check()?;
        if self.link.is_closing() || self.link.is_over() {
            return Err(SessionError::Closed);
        }
        if self.outstanding.len() >= self.max_outstanding {
            return Err(SessionError::TooManyOutstanding(self.outstanding.len()));
        }
        let transaction_id = self.allocate_transaction_id();
        let header = MbapHeader {
            transaction_id,
            unit_id,
        };
        let mut adu = [0u8; MAX_ADU_LEN];
        let len = encode_request(header, request, &mut adu).map_err(SessionError::Encode)?;
        let written = self.link.write_adu(now, &adu[..len]);
        self.on_fatal(written)?;
        self.outstanding.push(Pending {
            transaction_id,
            unit_id,
            function: request.function().code(),
            deadline: now + timeout,
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

    /// Bytes read from the connection.
    pub fn handle_tls(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SessionError> {
        let result = self.read_all(now, bytes);
        self.on_fatal(result)
    }

    fn read_all(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SessionError> {
        let mut input = bytes;
        loop {
            self.link.read_tls(now, &mut input)?;
            self.process()?;
            if input.is_empty() {
                return Ok(());
            }
        }
    }

    /// After a fatal error no response can come: requests in flight end
    /// with `Aborted`, so each still gets exactly one outcome.
    fn on_fatal<T>(&mut self, result: Result<T, SessionError>) -> Result<T, SessionError> {
        if let Err(err) = &result
            && err.is_fatal()
        {
            self.abort_outstanding();
        }
        result
    }

    /// The connection's read side ended (a read returned 0 bytes).
    pub fn handle_eof(&mut self, _now: Instant) -> Result<(), SessionError> {
        let result = self.link.read_eof().and_then(|()| self.process());
        self.on_fatal(result)
    }

    /// Expires requests past their deadline and checks the session timers;
    /// call when [`Client::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let mut index = 0;
        while index < self.outstanding.len() {
            if self.outstanding[index].deadline <= now {
                let expired = self.outstanding.remove(index);
                self.events.push_back(ClientEvent::Timeout {
                    transaction_id: expired.transaction_id,
                });
            } else {
                index += 1;
            }
        }
        let idle = self.outstanding.is_empty();
        let fired = self.link.check_timers(now, idle);
        if let Some(reason) = self.on_fatal(fired)? {
            self.abort_outstanding();
            self.report_closed(reason);
        }
        Ok(())
    }

    /// When [`Client::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.link.deadline(self.outstanding.is_empty());
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
        self.link.poll_transmit(out)
    }

    /// Closes the session with close_notify; requests in flight end with
    /// [`ClientEvent::Aborted`]. The server has the close timeout to
    /// answer with its own close_notify.
    pub fn close(&mut self, now: Instant) {
        self.link.close(now);
        self.abort_outstanding();
        // Closed during the handshake, or plain Modbus/TCP: over at once.
        if let Some(reason) = self.link.take_end() {
            self.report_closed(reason);
        }
    }

    /// Whether the server is verified and the session up.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.link.is_over()
    }

    /// Whether the session is over (closed, or failed).
    pub fn is_closed(&self) -> bool {
        self.link.is_over()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// Responses discarded because their transaction id matched no request
    /// in flight (late ones, after a timeout, included).
    pub fn discarded_responses(&self) -> u64 {
        self.discarded
    }

    fn process(&mut self) -> Result<(), SessionError> {
        if let Some(handshake) = self.link.handshake_finished() {
            self.connected = true;
            self.events.push_back(ClientEvent::Connected(handshake));
        }
        while let Some(frame) = self.link.next_frame()? {
            match frame {
                Frame::Discarded { .. } => self.discarded += 1,
                Frame::Adu { header, pdu } => self.on_response(header, pdu),
            }
        }
        if let Some(reason) = self.link.take_end() {
            self.abort_outstanding();
            self.report_closed(reason);
        }
        Ok(())
    }

    fn on_response(&mut self, header: MbapHeader, pdu: Pdu) {
        let Some(index) = self
            .outstanding
            .iter()
            .position(|p| p.transaction_id == header.transaction_id)
        else {
            self.discarded += 1;
            return;
        };
        let pending = self.outstanding.remove(index);
        let transaction_id = pending.transaction_id;
        let invalid = |error| ClientEvent::Invalid {
            transaction_id,
            error,
        };
        let event = match Response::decode(pdu.as_bytes()) {
            Err(err) => invalid(InvalidResponse::Malformed(err)),
            Ok(response) if response.function_code() != pending.function => {
                invalid(InvalidResponse::WrongFunction {
                    expected: pending.function,
                    found: response.function_code(),
                })
            }
            Ok(_) if header.unit_id != pending.unit_id => invalid(InvalidResponse::WrongUnit {
                expected: pending.unit_id,
                found: header.unit_id,
            }),
            Ok(_) => ClientEvent::Response {
                transaction_id,
                unit_id: header.unit_id,
                pdu,
            },
        };
        self.events.push_back(event);
    }

    fn abort_outstanding(&mut self) {
        for pending in self.outstanding.drain(..) {
            self.events.push_back(ClientEvent::Aborted {
                transaction_id: pending.transaction_id,
            });
        }
    }

    fn report_closed(&mut self, reason: CloseReason) {
        if !self.closed_reported {
            self.closed_reported = true;
            self.events.push_back(ClientEvent::Closed(reason));
        }
    }
}
