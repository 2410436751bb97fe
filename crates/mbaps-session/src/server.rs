//! The server side of a Modbus/TCP Security session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use mbaps_authz::{Decision, Permissions, Role, role_from_certificate};
use mbaps_codec::limits::MAX_ADU_LEN;
use mbaps_codec::{ExceptionCode, MbapHeader, Request, Response, encode_response};

use crate::config::ServerConfig;
use crate::error::SessionError;
use crate::event::{CloseReason, Handshake, Pdu, Rejection, RequestId, ServerEvent};
use crate::link::{Frame, Link};
use crate::resumption::Forget;
use crate::transport::Transport;

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    id: RequestId,
    header: MbapHeader,
    function: u8,
}

/// A server session: one TLS connection from one client.
///
/// Feed it the bytes read from the connection with [`Server::handle_tls`]
/// (and [`Server::handle_eof`] when the read returns 0), then drain
/// [`Server::poll_event`] and [`Server::poll_transmit`]; answer each
/// [`ServerEvent::Request`] with [`Server::send_response`]; call
/// [`Server::handle_timeout`] when [`Server::poll_timeout`] is reached.
///
/// Every request is authorized against the policy before the application
/// sees it; a denied request is answered exception 0x01 by the
/// session itself and reported as [`ServerEvent::Denied`].
pub struct Server {
    link: Link,
    permissions: Option<Arc<Permissions>>,
    role: Option<Role>,
    max_outstanding: usize,
    outstanding: Vec<Outstanding>,
    next_id: u64,
    events: VecDeque<ServerEvent>,
    closed_reported: bool,
    /// The time of the last call that gave one: requests taken out of the
    /// buffer by `poll_event` are answered (denials) at it.
    now: Instant,
    config: ServerConfig,
}

/// Responses waiting for `poll_transmit` beyond which no further request
/// is taken out of the buffer: a client that pipelines faster than it
/// reads slows down through TCP instead of growing the session's output.
const OUTPUT_HIGH_WATER: usize = 16 * 1024;

impl Server {
    /// A session for a new connection accepted at `now`.
    pub fn new(config: &ServerConfig, now: Instant) -> Result<Server, SessionError> {
        let transport = match &config.tls {
            Some(tls) => {
                let conn =
                    rustls::ServerConnection::new(Arc::clone(tls)).map_err(SessionError::Tls)?;
                Transport::Tls(Box::new(conn.into()))
            }
            None => Transport::Plain(Default::default()),
        };
        let mut session = Server {
            link: Link::new(transport, now, config.timers),
            permissions: None,
            role: None,
            max_outstanding: config.max_outstanding,
            outstanding: Vec::with_capacity(config.max_outstanding),
            next_id: 0,
            events: VecDeque::new(),
            closed_reported: false,
            now,
            config: config.clone(),
        };
        if let Some(sessions) = &config.sessions {
            session.link.forget_on_alert(Forget::Server {
                sessions: Arc::clone(sessions),
                keys: Vec::new(),
            });
        }
        if session.link.transport().is_plain() {
            // Plain Modbus/TCP is up from the start.
            session.process()?;
        }
        Ok(session)
    }

    /// Bytes read from the connection. Returns how many were taken: fewer
    /// than given when the session stopped taking requests (its window of
    /// `max_outstanding` requests is full, or its responses are not being
    /// transmitted). Keep the rest and offer it again once
    /// [`Server::wants_read`] says so; do not read more from the connection
    /// meanwhile, so that TCP slows the client down.
    pub fn handle_tls(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, SessionError> {
        self.link.check()?;
        self.now = now;
        let mut input = bytes;
        while !input.is_empty() && self.wants_read() {
            self.link.read_tls(now, &mut input)?;
            self.process()?;
        }
        Ok(bytes.len() - input.len())
    }

    /// Whether the session takes more input now: `false` while it holds
    /// requests it cannot take yet (see [`Server::handle_tls`]) and once it
    /// is over.
    pub fn wants_read(&self) -> bool {
        !self.link.is_over() && !self.is_full()
    }

    /// Whether no further request may be taken: the window is full, or
    /// too many responses wait for `poll_transmit`.
    fn is_full(&self) -> bool {
        self.outstanding.len() >= self.max_outstanding
            || self.link.queued_output() >= OUTPUT_HIGH_WATER
    }

    /// The connection's read side ended (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), SessionError> {
        self.now = now;
        self.link.read_eof()?;
        self.process()
    }

    /// Checks the timers; call when [`Server::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.now = now;
        let idle = self.outstanding.is_empty();
        if let Some(reason) = self.link.check_timers(now, idle)? {
            self.outstanding.clear();
            self.report_closed(reason);
        }
        Ok(())
    }

    /// When [`Server::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link.deadline(self.outstanding.is_empty())
    }

    /// The next event; drain until `None` after every call. Requests
    /// waiting in the session's buffer are taken out here as slots free
    /// up, so a drain after answering (or after `poll_transmit`) may yield
    /// more of them.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if self.events.is_empty() {
            // A framing error is sticky: the next call that feeds the
            // session returns it; the alert it owes is in poll_transmit.
            let _ = self.take_requests();
        }
        self.events.pop_front()
    }

    /// Appends the bytes to write to the connection; returns how many.
    /// Drain after every call; after a fatal error it holds the alert.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.link.poll_transmit(out)
    }

    /// Answers request `id`. The transaction id and unit id are echoed; the
    /// response must be for the request's function (or an exception for it).
    pub fn send_response(
        &mut self,
        now: Instant,
        id: RequestId,
        response: &Response<'_>,
    ) -> Result<(), SessionError> {
        self.link.check()?;
        // After close() nothing can be answered: say so, not "unknown".
        if self.link.is_closing() {
            return Err(SessionError::Closed);
        }
        let index = self
            .outstanding
            .iter()
            .position(|o| o.id == id)
            .ok_or(SessionError::UnknownRequest(id))?;
        let pending = self.outstanding[index];
        if response.function_code() != pending.function {
            return Err(SessionError::WrongFunction {
                expected: pending.function,
                found: response.function_code(),
            });
        }
        let mut adu = [0u8; MAX_ADU_LEN];
        let len =
            encode_response(pending.header, response, &mut adu).map_err(SessionError::Encode)?;
        self.now = now;
        self.outstanding.swap_remove(index);
        self.link.write_adu(now, &adu[..len])
    }

    /// Answers request `id` with an encoded response PDU (from a
    /// [`crate::Reply`]); it is decoded and checked as in
    /// [`Server::send_response`].
    pub fn send_response_pdu(
        &mut self,
        now: Instant,
        id: RequestId,
        pdu: &[u8],
    ) -> Result<(), SessionError> {
        let response = Response::decode(pdu).map_err(SessionError::Encode)?;
        self.send_response(now, id, &response)
    }

    /// Answers request `id` by calling `handler`, with the request's unit id
    /// and the session's role. A handler's exception is sent as such; a
    /// response the session refuses (not for the request's function, or
    /// one that does not encode) is answered 0x04 (server device failure)
    /// instead, so the request still gets exactly one answer. Returns the
    /// session's fatal error, if it has one.
    pub fn answer_with(
        &mut self,
        now: Instant,
        id: RequestId,
        header: MbapHeader,
        pdu: &Pdu,
        handler: &dyn crate::Handler,
    ) -> Result<(), SessionError> {
        let function = pdu.as_bytes().first().copied().unwrap_or(0);
        let sent = match pdu.request() {
            Ok(request) => {
                let context = crate::RequestContext {
                    unit_id: header.unit_id,
                    transaction_id: header.transaction_id,
                    role: self.role.as_ref(),
                };
                let mut reply = crate::Reply::default();
                match handler.handle(&context, &request, &mut reply) {
                    Ok(()) => self.send_response_pdu(now, id, reply.pdu()),
                    Err(exception) => {
                        self.send_response(now, id, &Response::exception(function, exception))
                    }
                }
            }
            Err(error) => Err(SessionError::Encode(error)),
        };
        match sent {
            Err(error) if !error.is_fatal() => {
                let failure = Response::exception(function, ExceptionCode::ServerDeviceFailure);
                match self.send_response(now, id, &failure) {
                    Err(error) if error.is_fatal() => Err(error),
                    _ => Ok(()),
                }
            }
            sent => sent,
        }
    }

    /// Drains the events: each request is answered by `handler` (see
    /// [`Server::answer_with`]), every other event goes to `other`. Returns
    /// the first fatal error.
    pub fn answer_pending(
        &mut self,
        now: Instant,
        handler: &dyn crate::Handler,
        mut other: impl FnMut(ServerEvent),
    ) -> Result<(), SessionError> {
        while let Some(event) = self.poll_event() {
            match event {
                ServerEvent::Request { id, header, pdu } => {
                    self.answer_with(now, id, header, &pdu, handler)?;
                }
                event => other(event),
            }
        }
        Ok(())
    }

    /// Closes the session with close_notify. Requests not yet answered are
    /// not answered: their connection closes (every accepted request gets
    /// exactly one response, or its connection closes). The peer has the
    /// close timeout to answer with its own close_notify.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        self.link.close(now);
        self.outstanding.clear();
        // Closed during the handshake, or plain Modbus/TCP: over at once.
        if let Some(reason) = self.link.take_end() {
            self.report_closed(reason);
        }
    }

    /// The client's role, once authenticated (`None`: the NULL role).
    pub fn role(&self) -> Option<&Role> {
        self.role.as_ref()
    }

    /// Whether the client is authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.permissions.is_some()
    }

    /// Requests handed to the application and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether the session is over (closed, or failed).
    pub fn is_closed(&self) -> bool {
        self.link.is_over()
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// After input: the handshake's end, then the requests the window
    /// has room for, then the session's end.
    fn process(&mut self) -> Result<(), SessionError> {
        if let Some(handshake) = self.link.handshake_finished() {
            self.authenticate(handshake)?;
        }
        self.take_requests()?;
        if let Some(reason) = self.link.take_end() {
            self.outstanding.clear();
            self.report_closed(reason);
        }
        Ok(())
    }

    /// Takes requests out of the buffer while the window has room: each
    /// is authorized and handed to the application, or answered with an
    /// exception at once.
    fn take_requests(&mut self) -> Result<(), SessionError> {
        if self.permissions.is_none() {
            return Ok(());
        }
        while !self.is_full() {
            let Some(frame) = self.link.next_frame()? else {
                break;
            };
            match frame {
                Frame::Discarded { protocol_id } => {
                    self.events
                        .push_back(ServerEvent::Discarded { protocol_id });
                }
                // After close_notify is sent nothing can be answered.
                Frame::Adu { .. } if self.link.is_closing() => {}
                Frame::Adu { header, pdu } => self.on_request(header, pdu)?,
            }
        }
        Ok(())
    }

    fn authenticate(&mut self, handshake: Option<Handshake>) -> Result<(), SessionError> {
        if self.link.transport().is_plain() {
            let role = self.config.plain_role.clone();
            self.permissions = Some(self.config.policy.permissions(role.as_ref()));
            self.role = role.clone();
            self.events
                .push_back(ServerEvent::Authenticated { role, handshake });
            return Ok(());
        }
        // The verifier has checked the chain and the role extension; a
        // resumed session brings the same certificate back (rustls stores it).
        let leaf = self
            .link
            .transport()
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned();
        let Some(leaf) = leaf else {
            return Err(self
                .link
                .fail(SessionError::Tls(rustls::Error::NoCertificatesPresented)));
        };
        let role = role_from_certificate(&leaf).map_err(|err| {
            self.link
                .fail(SessionError::Tls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(err))),
                )))
        })?;
        self.permissions = Some(self.config.policy.permissions(role.as_ref()));
        self.role = role.clone();
        self.events
            .push_back(ServerEvent::Authenticated { role, handshake });
        Ok(())
    }

    fn on_request(&mut self, header: MbapHeader, pdu: Pdu) -> Result<(), SessionError> {
        let function = pdu.as_bytes().first().copied().unwrap_or(0);
        let request = match Request::decode(pdu.as_bytes()) {
            Ok(request) => request,
            Err(err) => {
                let exception = err
                    .exception_code()
                    .unwrap_or(ExceptionCode::IllegalDataValue);
                return self.reject(header, function, exception, Rejection::Malformed(err));
            }
        };
        let permissions = self
            .permissions
            .as_ref()
            .expect("requests are read only once authenticated");
        if let Decision::Deny(denial) = permissions.decide(header.unit_id, &request) {
            self.answer_exception(header, function, ExceptionCode::IllegalFunction)?;
            self.events.push_back(ServerEvent::Denied {
                header,
                function,
                denial,
            });
            return Ok(());
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.outstanding.push(Outstanding {
            id,
            header,
            function,
        });
        self.events
            .push_back(ServerEvent::Request { id, header, pdu });
        Ok(())
    }

    fn reject(
        &mut self,
        header: MbapHeader,
        function: u8,
        exception: ExceptionCode,
        reason: Rejection,
    ) -> Result<(), SessionError> {
        self.answer_exception(header, function, exception)?;
        self.events.push_back(ServerEvent::Rejected {
            header,
            function,
            exception,
            reason,
        });
        Ok(())
    }

    fn answer_exception(
        &mut self,
        header: MbapHeader,
        function: u8,
        exception: ExceptionCode,
    ) -> Result<(), SessionError> {
        // A request whose function byte is 0 or 0x80 cannot be answered
        // with an exception (0x80 is no function): the session ends.
        if function & 0x7F == 0 {
            return Err(self.link.fail(SessionError::InvalidFunctionCode(function)));
        }
        let response = Response::exception(function, exception);
        let mut adu = [0u8; 9];
        let len = encode_response(header, &response, &mut adu).map_err(SessionError::Encode)?;
        self.link.write_adu(self.now, &adu[..len])
    }

    fn report_closed(&mut self, reason: CloseReason) {
        if !self.closed_reported {
            self.closed_reported = true;
            self.events.push_back(ServerEvent::Closed(reason));
        }
    }
}
