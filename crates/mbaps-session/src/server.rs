//! The server side of a Modbus/TCP Security session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use mbaps_authz::{Access, Decision, Permissions, Role, role_from_certificate};
use mbaps_codec::limits::MBAP_HEADER_LEN;
use mbaps_codec::{Adu, CodecError, ExceptionCode, MbapHeader, Request, Response, encode_response};

use crate::config::ServerConfig;
use crate::connection::{Connection, Frame};
use crate::error::SessionError;
use crate::event::{CloseReason, Closing, Cut, Pdu, Rejection, RequestId, ServerEvent};
use crate::handler::{Handler, Reply, RequestContext};
use crate::record::{RecordedPdus, Recording, RequestOutcome, RequestRecord, Verdict};
use crate::resumption::Forget;
use crate::transport::{Tls, Transport};
use rustls::server::danger::ClientCertVerifier;

/// A request handed to the application, and what its record will say.
#[derive(Clone, Debug)]
struct Outstanding {
    id: RequestId,
    header: MbapHeader,
    function: u8,
    touches: [Option<Access>; 2],
    arrived: Instant,
    /// Its PDU, for its record ([`Recording::EveryWithPdus`] only).
    request: Option<Box<Pdu>>,
}

/// Responses waiting for `poll_transmit` beyond which no further request
/// is taken out of the buffer: a client that pipelines faster than it
/// reads slows down through TCP instead of growing the session's output.
const OUTPUT_HIGH_WATER: usize = 16 * 1024;

/// A server session: one TLS connection from one client.
///
/// Feed it the bytes read from the connection with [`Server::handle_tls`]
/// (and [`Server::handle_eof`] when the read returns 0); answer requests
/// at once with [`Server::answer_requests`], or take them as
/// [`ServerEvent::Request`] from [`Server::poll_event`] and answer later
/// with [`Server::send_response`]; write what [`Server::poll_transmit`]
/// gives; call [`Server::handle_timeout`] when [`Server::poll_timeout`] is
/// reached. The last event is [`ServerEvent::Closed`], exactly once.
///
/// Every request is authorized against the policy before the application
/// sees it; a denied request is answered exception 0x01 by the
/// session itself. Every request gets exactly one answer: one the
/// application cannot give as it should (for another function, one that
/// does not encode) is answered 0x04 by the session. Each decided request
/// is reported once as [`ServerEvent::Answered`] (the refused ones always,
/// the others as [`Server::record`] asks).
pub struct Server {
    connection: Connection,
    /// Whom the session serves, and with which permissions.
    standing: Standing,
    role: Option<Role>,
    max_outstanding: usize,
    /// Requests handed to the application and not yet answered.
    outstanding: Vec<Outstanding>,
    next_id: u64,
    events: VecDeque<ServerEvent>,
    /// The time of the last call that gave one: requests taken out of the
    /// buffer by `poll_event` are stamped with it.
    now: Instant,
    /// The time of the last input: when the requests taken out of the
    /// buffer arrived.
    arrived: Instant,
    /// Which requests are reported as [`ServerEvent::Answered`].
    recording: Recording,
    config: ServerConfig,
    /// The client certificate verifier of the rustls configuration this
    /// connection's handshake runs on: when a reload has put another in
    /// force meanwhile, the handshake's outcome is checked again.
    handshake_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// How the session ended, held back while requests it handed out wait
    /// for the records of their late answers: reported as the last event
    /// once they have them.
    held_end: Option<CloseReason>,
}

/// Where the client stands with the session: one state.
enum Standing {
    /// A TLS handshake under way: nothing is served.
    Handshaking,
    /// Plain Modbus/TCP before the first request that decodes: the
    /// connection counts as a pending handshake (admission, the handshake
    /// timeout), and frames that are no request are answered or dropped,
    /// but no request is served. Its permissions are the plain role's.
    AwaitingRequest(Arc<Permissions>),
    /// Authenticated (TLS), or plain Modbus/TCP that has sent a request:
    /// requests are authorized with these permissions.
    Established(Arc<Permissions>),
}

impl Server {
    /// A session for a new connection accepted at `now`. Fails only if
    /// rustls cannot start a connection with `config`.
    pub fn new(config: &ServerConfig, now: Instant) -> Result<Server, SessionError> {
        let transport = match &config.tls {
            Some(tls) => {
                let conn = rustls::server::UnbufferedServerConnection::new(Arc::clone(tls))
                    .map_err(SessionError::Tls)?;
                Transport::Tls(Tls::server(conn))
            }
            None => Transport::Plain(Default::default()),
        };
        let mut session = Server {
            connection: Connection::new(transport, now, config.timers),
            standing: Standing::Handshaking,
            role: None,
            max_outstanding: config.max_outstanding,
            outstanding: Vec::new(),
            next_id: 0,
            events: VecDeque::new(),
            now,
            arrived: now,
            recording: Recording::default(),
            config: config.clone(),
            handshake_verifier: config.verifier.as_ref().map(|(v, _)| Arc::clone(v)),
            held_end: None,
        };
        if let Some(sessions) = &config.sessions {
            session.connection.forget_on_alert(Forget::Server {
                sessions: Arc::clone(sessions),
                keys: Vec::new(),
            });
        }
        if session.connection.is_open() {
            // Plain Modbus/TCP: up from the start, but established only by
            // a request that decodes (see `Standing::AwaitingRequest`).
            let permissions = config.policy.permissions(config.plain_role.as_ref());
            session.standing = Standing::AwaitingRequest(permissions);
        }
        Ok(session)
    }

    /// Bytes read from the connection. Returns how many were taken: fewer
    /// than given when the session holds requests it has not handed out
    /// yet (its window of `max_outstanding` requests is full, or its
    /// responses wait to be transmitted). Keep the rest and offer it again
    /// once [`Server::wants_read`] says so; do not read more from the
    /// connection meanwhile, so that TCP slows the client down.
    pub fn handle_tls(&mut self, now: Instant, bytes: &[u8]) -> usize {
        self.now = now;
        self.arrived = now;
        let mut input = bytes;
        while !input.is_empty() && self.wants_read() {
            if self.connection.read_tls(now, &mut input) {
                self.authenticate();
            }
            self.drop_frames_unless_open();
            self.await_first_request();
        }
        self.report_end();
        bytes.len() - input.len()
    }

    /// Whether the session takes more input now: `false` while it holds
    /// received requests it has not handed out, and once it is over.
    pub fn wants_read(&self) -> bool {
        !self.connection.is_closed() && !self.connection.has_plaintext()
    }

    /// The connection's read side ended (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        self.arrived = now;
        self.connection.read_eof();
        self.drop_frames_unless_open();
        self.await_first_request();
        self.report_end();
    }

    /// Checks the timers; call when [`Server::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if matches!(self.standing, Standing::AwaitingRequest(_))
            && self.connection.is_open()
            && now >= self.connection.handshake_deadline()
        {
            let waited = self.config.timers.handshake_timeout;
            self.connection.fail(SessionError::NoRequest(waited));
        }
        self.connection
            .check_timers(now, self.outstanding.is_empty());
        self.report_end();
    }

    /// When [`Server::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connection = self.connection.deadline(self.outstanding.is_empty());
        match self.standing {
            // A plain connection has the handshake timeout to send its
            // first request.
            Standing::AwaitingRequest(_) if self.connection.is_open() => {
                let first = self.connection.handshake_deadline();
                Some(connection.map_or(first, |at| at.min(first)))
            }
            _ => connection,
        }
    }

    /// The next event; drain until `None` after every call. Requests
    /// waiting in the session's buffer are taken out here as slots free
    /// up, as [`ServerEvent::Request`] (answer them with
    /// [`Server::send_response`]), so a drain after answering (or after
    /// `poll_transmit`) may yield more of them.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if self.events.is_empty() {
            self.take_requests(None);
            self.report_end();
        }
        let event = self.events.pop_front();
        if event.is_none()
            && self.events.capacity() > 0
            && self.next_id == 0
            && self.recording == Recording::Refused
        {
            // Where requests are answered at once, events are rare (the
            // authentication, a denial): an idle session keeps no room for
            // them (four take a kilobyte). Once requests come as events
            // (`next_id` counts them) the room is kept for the next batch.
            self.events = VecDeque::new();
        }
        event
    }

    /// Takes the requests waiting in the session's buffer (while the window
    /// has room) and has `handler` answer each at once: the request is
    /// decoded once, borrowed from the receive buffer, and the response
    /// encoded once into the output. The other events (denials,
    /// rejections, the end) wait in [`Server::poll_event`].
    pub fn answer_requests(&mut self, now: Instant, handler: &dyn Handler) {
        self.now = now;
        self.take_requests(Some(handler));
        self.report_end();
    }

    /// Appends the bytes to write to the connection; returns how many.
    /// Drain after every call; after a failure it holds the alert.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.connection.poll_transmit(out)
    }

    /// What [`Server::poll_transmit`] gave went out at `now`: the idle
    /// timer counts from then. A [`Handler`] that takes long answers at
    /// the `now` of [`Server::answer_requests`], before it worked; the
    /// session was busy meanwhile, not idle.
    pub fn handle_transmitted(&mut self, now: Instant) {
        self.now = now;
        if self.connection.is_open() {
            self.connection.touch(now);
        }
    }

    /// Whether bytes wait for [`Server::poll_transmit`]: responses, or
    /// the alert or close_notify an ended session still owes its peer.
    pub fn wants_write(&self) -> bool {
        self.connection.wants_write()
    }

    /// Answers request `id` (a [`ServerEvent::Request`]) with `response`,
    /// encoded once into the output. The transaction id and unit id are
    /// echoed. A response for another function than the request's (or an
    /// exception for it), or one that does not encode, is not sent: the
    /// request is answered 0x04 (server device failure) instead, and the
    /// error says why; either way the request has had its one answer.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: RequestId,
        response: &Response<'_>,
    ) -> Result<(), SessionError> {
        self.deliver(now, id, response.function_code(), |header, out| {
            encode_response(header, response, out)
        })
    }

    /// Answers request `id` with a response encoded already (by an
    /// application that answers later: [`Pdu::encode_response`]); its bytes
    /// are copied into the output after the echoed header. As
    /// [`Server::send_response`], one for another function is answered
    /// 0x04.
    pub fn send_response_pdu(
        &mut self,
        now: Instant,
        id: RequestId,
        pdu: &Pdu,
    ) -> Result<(), SessionError> {
        self.deliver(now, id, pdu.function() & 0x7F, |header, out| {
            let adu = Adu {
                header,
                pdu: pdu.as_bytes(),
            };
            adu.encode(out)
        })
    }

    /// Answers request `id` with exception `code` (an application that
    /// failed: 0x04).
    pub fn send_exception(
        &mut self,
        now: Instant,
        id: RequestId,
        code: ExceptionCode,
    ) -> Result<(), SessionError> {
        let function = self
            .outstanding
            .iter()
            .find(|o| o.id == id)
            .map_or(0, |o| o.function);
        self.send_response(now, id, &Response::exception(function, code))
    }

    /// The one place a request handed out is answered: with what `encode`
    /// writes when `function` is the request's and it encodes, else 0x04;
    /// the request's record is written here.
    fn deliver(
        &mut self,
        now: Instant,
        id: RequestId,
        function: u8,
        encode: impl FnOnce(MbapHeader, &mut [u8]) -> Result<usize, CodecError>,
    ) -> Result<(), SessionError> {
        self.now = now;
        let at = self.outstanding.iter().position(|o| o.id == id);
        if let Some(refused) = self.connection.refusal() {
            if let Some(at) = at {
                // Its session ended: nobody receives the answer, but its
                // record says what the application did.
                let pending = self.outstanding.remove(at);
                self.record_late(pending, function, encode);
                self.report_end();
            }
            return Err(refused);
        }
        let pending = self
            .outstanding
            .remove(at.ok_or(SessionError::UnknownRequest(id))?);
        let with_pdus = self.recording == Recording::EveryWithPdus;
        let mut sent = None;
        let mut result = Ok(());
        if function == pending.function {
            match self
                .connection
                .write_adu(now, |out| encode(pending.header, out))
            {
                Some(Ok(adu)) => sent = Some(answer_in(adu, with_pdus)),
                Some(Err(error)) => result = Err(SessionError::InvalidResponse(error)),
                None => {}
            }
        } else {
            result = Err(SessionError::WrongFunction {
                expected: pending.function,
                found: function,
            });
        }
        if sent.is_none() && result.is_err() {
            let failure = Response::exception(pending.function, ExceptionCode::ServerDeviceFailure);
            if let Some(Ok(adu)) = self
                .connection
                .write_adu(now, |out| encode_response(pending.header, &failure, out))
            {
                sent = Some(answer_in(adu, with_pdus));
            }
        }
        match sent {
            Some((outcome, response)) => self.record_handed_out(pending, outcome, response),
            None => {
                // The output overflowed: the session failed, and the
                // request goes unanswered with it.
                let abandoned = RequestOutcome::Abandoned { late: None };
                self.record_handed_out(pending, abandoned, None);
                result = Err(self
                    .connection
                    .refusal()
                    .unwrap_or(SessionError::SendBufferFull));
            }
        }
        self.report_end();
        result
    }

    /// Reports the record of a request that was handed out, if asked to.
    fn record_handed_out(
        &mut self,
        pending: Outstanding,
        outcome: RequestOutcome,
        response: Option<Pdu>,
    ) {
        if self.recording < Recording::Every {
            return;
        }
        let pdus = pending.request.map(|request| {
            Arc::new(RecordedPdus {
                request: *request,
                response,
            })
        });
        self.events.push_back(ServerEvent::Answered(RequestRecord {
            header: pending.header,
            function: pending.function,
            touches: pending.touches,
            role: self.role.clone(),
            verdict: Verdict::Allowed,
            outcome,
            arrived: pending.arrived,
            answered: self.now,
            pdus,
        }));
    }

    /// Records the answer the application gave to a request after its
    /// session ended: abandoned, with what the answer says was done (an
    /// answer for another function, or one that does not encode, as the
    /// 0x04 the client would have had).
    fn record_late(
        &mut self,
        pending: Outstanding,
        function: u8,
        encode: impl FnOnce(MbapHeader, &mut [u8]) -> Result<usize, CodecError>,
    ) {
        let mut adu = [0u8; mbaps_codec::limits::MAX_ADU_LEN];
        let failure = |adu: &mut [u8]| {
            let failure = Response::exception(pending.function, ExceptionCode::ServerDeviceFailure);
            encode_response(pending.header, &failure, adu).unwrap_or(0)
        };
        let len = if function == pending.function {
            encode(pending.header, &mut adu).unwrap_or_else(|_| failure(&mut adu))
        } else {
            failure(&mut adu)
        };
        let with_pdus = self.recording == Recording::EveryWithPdus;
        let (outcome, response) = answer_in(&adu[..len], with_pdus);
        self.record_handed_out(pending, outcome.too_late(), response);
    }

    /// Gives up on the late answers of the requests the application still
    /// holds, once the session has ended: each is recorded abandoned
    /// without one, and the session's end, held back for them, is reported.
    /// Before the end this does nothing: a request of an open session is
    /// owed its answer. An adapter calls this when it stops waiting (its
    /// bound on late answers, a server stopping for good).
    pub fn abandon_requests(&mut self, now: Instant) {
        if !self.connection.is_closed() {
            return;
        }
        self.now = now;
        for pending in std::mem::take(&mut self.outstanding) {
            let abandoned = RequestOutcome::Abandoned { late: None };
            self.record_handed_out(pending, abandoned, None);
        }
        self.report_end();
    }

    /// Gives up on request `id` alone, once the session has ended: one
    /// handed out as an event that the application never took up (its
    /// session ended first), so no late answer will come. As
    /// [`Server::abandon_requests`], it does nothing before the end.
    pub fn abandon_request(&mut self, now: Instant, id: RequestId) {
        if !self.connection.is_closed() {
            return;
        }
        self.now = now;
        if let Some(at) = self.outstanding.iter().position(|o| o.id == id) {
            let pending = self.outstanding.remove(at);
            let abandoned = RequestOutcome::Abandoned { late: None };
            self.record_handed_out(pending, abandoned, None);
            self.report_end();
        }
    }

    /// Closes the session with close_notify. Requests not yet answered are
    /// not answered: their connection closes (every accepted request gets
    /// exactly one response, or its connection closes), and they are
    /// recorded as abandoned, with the answer the application still gives
    /// them ([`Server::abandon_requests`]). The peer has the close timeout
    /// to answer with its own close_notify. The session's end is
    /// [`CloseReason::LocalClose`](crate::CloseReason::LocalClose).
    pub fn close(&mut self, now: Instant) {
        self.close_for(now, Closing::Requested);
    }

    /// Closes the session as [`Server::close`] does, for `why`: its end is
    /// reported with the matching reason (evicted, refused, shutdown).
    pub fn close_for(&mut self, now: Instant, why: Closing) {
        self.now = now;
        self.connection.close(now, why.reason());
        self.report_end();
    }

    /// The connection under the session is gone (`cut`: dropped by
    /// admission control, a read or write error, the write timeout):
    /// nothing more can be sent. The session ends now, unless it had
    /// already, and reports its end ([`ServerEvent::Closed`]) like any
    /// other, after the records of the requests it abandons: an adapter
    /// calls this on every way out, so that every session's end is
    /// reported exactly once.
    pub fn cut(&mut self, now: Instant, cut: Cut) {
        self.now = now;
        self.connection.cut(cut.reason());
        self.report_end();
    }

    /// Which requests are reported as [`ServerEvent::Answered`]: the ones
    /// the session refused itself (the default), or every one, with or
    /// without its PDUs. Set before the first request.
    pub fn record(&mut self, recording: Recording) {
        self.recording = recording;
    }

    /// The client's certificate, once verified (`None` on plain Modbus/TCP
    /// and before the handshake has finished): for an audit trail.
    pub fn peer_certificate(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.connection
            .transport()
            .peer_certificates()
            .and_then(|chain| chain.first())
    }

    /// How the TLS session was set up, once the handshake is done (`None`
    /// before, and on plain Modbus/TCP).
    pub fn handshake(&self) -> Option<crate::event::Handshake> {
        self.connection.handshake()
    }

    /// The client's role, once authenticated (`None`: the NULL role).
    pub fn role(&self) -> Option<&Role> {
        self.role.as_ref()
    }

    /// Whether the session is established: the client authenticated by
    /// its certificate, or, on plain Modbus/TCP, a first request that
    /// decodes received (until then a plain connection is treated as a
    /// pending handshake: it cannot close an established session).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.standing, Standing::Established(_))
    }

    /// Requests handed to the application and not yet answered; once the
    /// session has ended, those whose records wait for their late answers
    /// (see [`Server::abandon_requests`]).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether the session is over (its last event is reported).
    pub fn is_closed(&self) -> bool {
        self.connection.is_closed()
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether no further request may be taken: the window is full, or
    /// too many responses wait for `poll_transmit`.
    fn is_full(&self) -> bool {
        self.outstanding.len() >= self.max_outstanding
            || self.connection.queued_output() >= OUTPUT_HIGH_WATER
    }

    /// The one place that reports the end: once, as the last event, after
    /// the records of the requests it abandoned. Where requests are
    /// recorded and some are still with the application, the end waits
    /// for their late answers ([`Server::send_response`] after the end) or
    /// for [`Server::abandon_requests`].
    fn report_end(&mut self) {
        if let Some(reason) = self.connection.take_end() {
            if self.recording < Recording::Every {
                // Nobody reads their records: nothing to wait for.
                self.outstanding.clear();
            }
            self.held_end = Some(reason);
        }
        if self.outstanding.is_empty()
            && let Some(reason) = self.held_end.take()
        {
            self.events.push_back(ServerEvent::Closed(reason));
        }
    }

    /// Once closing, what still arrives is read only to find the peer's
    /// close: its frames are dropped.
    fn drop_frames_unless_open(&mut self) {
        if !self.connection.is_open() {
            while self.connection.take_frame(|_, _| ()).is_some() {}
        }
    }

    /// Applies a reloaded configuration to this session, whatever its
    /// stage: from its next request on, requests are authorized against
    /// `config`'s policy, for the same role (the one its certificate
    /// carries, R-04; a plain session keeps the role it started with). A
    /// TLS session whose client certificate `config` no longer accepts (a
    /// new CRL revokes it, its CA is no longer trusted) is closed with
    /// close_notify; its end is `Failed(SessionError::NoLongerAccepted(..))`.
    /// A session still in its handshake is checked against `config` when
    /// the handshake completes, so that a reload cannot be raced by a
    /// client that holds its handshake open. The TLS settings of a
    /// connection do not change: a new certificate of the server's is for
    /// new connections.
    pub fn reconfigure(&mut self, now: Instant, config: &ServerConfig) {
        self.now = now;
        self.config.policy = Arc::clone(&config.policy);
        self.config.verifier = config.verifier.clone();
        self.standing = match &self.standing {
            Standing::Handshaking => Standing::Handshaking,
            Standing::AwaitingRequest(_) => Standing::AwaitingRequest(
                self.config
                    .policy
                    .permissions(self.config.plain_role.as_ref()),
            ),
            Standing::Established(_) => {
                Standing::Established(self.config.policy.permissions(self.role.as_ref()))
            }
        };
        if self.is_authenticated()
            && let Some(Err(error)) = self.verify_peer_again()
        {
            self.connection
                .close_failed(SessionError::NoLongerAccepted(error));
        }
        self.report_end();
    }

    /// The client's certificate chain checked against the verifier in
    /// force (and its clock): `None` when there is nothing to check
    /// (plain Modbus/TCP, no certificate yet).
    fn verify_peer_again(&self) -> Option<Result<(), rustls::Error>> {
        let (verifier, clock) = self.config.verifier.as_ref()?;
        let chain = self.connection.transport().peer_certificates()?;
        let (leaf, intermediates) = chain.split_first()?;
        let checked = clock
            .current_time()
            .ok_or(rustls::Error::FailedToGetCurrentTime)
            .and_then(|time| verifier.verify_client_cert(leaf, intermediates, time));
        Some(checked.map(|_| ()))
    }

    /// Whether the handshake's verdict on the client certificate must be
    /// checked again as it completes: rustls checked it with the verifier
    /// of the configuration the connection was accepted with, and a reload
    /// may have put another in force since; and a resumed session was not
    /// checked at all (rustls takes the certificate from the session
    /// store), though it may have been revoked or expired since.
    fn handshake_needs_checking(&self) -> bool {
        let resumed = self.connection.handshake().is_some_and(|h| h.resumed);
        let replaced = match (&self.handshake_verifier, &self.config.verifier) {
            (Some(accepted), Some((current, _))) => !Arc::ptr_eq(accepted, current),
            _ => false,
        };
        resumed || replaced
    }

    /// The session is open: the client's role (from its certificate, or
    /// the configured one for plain Modbus/TCP), resolved against the
    /// policy once. A client certificate is checked against
    /// the configuration in force at this moment
    /// ([`Server::handshake_needs_checking`]): one it no longer accepts
    /// closes the session before any request is served.
    fn authenticate(&mut self) {
        let role = if self.connection.transport().is_plain() {
            self.config.plain_role.clone()
        } else {
            // The verifier has checked the chain and the role extension; a
            // resumed session brings the same certificate back.
            let leaf = self
                .connection
                .transport()
                .peer_certificates()
                .and_then(|chain| chain.first());
            let Some(leaf) = leaf else {
                let error = rustls::Error::NoCertificatesPresented;
                return self.connection.fail(SessionError::Tls(error));
            };
            let role = match role_from_certificate(leaf) {
                Ok(role) => role,
                Err(error) => {
                    let error = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                        rustls::OtherError(Arc::new(error)),
                    ));
                    return self.connection.fail(SessionError::Tls(error));
                }
            };
            if self.handshake_needs_checking()
                && let Some(Err(error)) = self.verify_peer_again()
            {
                return self
                    .connection
                    .close_failed(SessionError::NoLongerAccepted(error));
            }
            role
        };
        self.standing = Standing::Established(self.config.policy.permissions(role.as_ref()));
        self.role = role.clone();
        self.events.push_back(ServerEvent::Authenticated {
            role,
            handshake: self.connection.handshake(),
        });
    }

    /// A plain connection before its first request: frames that are no
    /// request (another protocol id, a PDU that does not decode) are
    /// answered or dropped as on an established session; the first that
    /// decodes as a request (allowed or denied) establishes the session,
    /// and is left in the buffer, to be served once the adapter has asked
    /// admission for a place ([`Server::is_authenticated`]).
    fn await_first_request(&mut self) {
        while matches!(self.standing, Standing::AwaitingRequest(_))
            && self.connection.is_open()
            && !self.is_full()
        {
            let request = self.connection.peek_frame(|frame| match frame {
                Frame::Adu { pdu, .. } => pdu[0] & 0x7F != 0 && Request::decode(pdu).is_ok(),
                Frame::Discarded { .. } => false,
            });
            match request {
                None => return,
                Some(true) => return self.authenticate(),
                Some(false) => {
                    if !self.take_frame(None) {
                        return;
                    }
                }
            }
        }
    }

    /// Takes requests out of the buffer while the window has room (see
    /// [`Server::take_frame`]).
    fn take_requests(&mut self, handler: Option<&dyn Handler>) {
        while self.connection.is_open() && !self.is_full() && self.is_authenticated() {
            if !self.take_frame(handler) {
                break;
            }
        }
    }

    /// Takes the next frame out of the buffer: a request is decoded once,
    /// authorized, and answered at once by `handler` (or handed out as an
    /// event without one); refused ones are answered with an exception by
    /// the session itself. `false` when there was no whole frame.
    fn take_frame(&mut self, handler: Option<&dyn Handler>) -> bool {
        let Server {
            connection,
            standing,
            role,
            outstanding,
            next_id,
            events,
            recording,
            arrived,
            now,
            ..
        } = self;
        let (recording, arrived, now) = (*recording, *arrived, *now);
        let with_pdus = recording == Recording::EveryWithPdus;
        let permissions = match standing {
            Standing::Handshaking => return false,
            Standing::AwaitingRequest(permissions) | Standing::Established(permissions) => {
                &**permissions
            }
        };
        let taken = connection.take_frame(|frame, out| match frame {
            Frame::Discarded { protocol_id, .. } => {
                events.push_back(ServerEvent::Discarded { protocol_id });
                Ok(())
            }
            Frame::Adu { header, pdu } => {
                let function = pdu[0];
                // 0 and 0x80 name no function an exception could echo.
                if function & 0x7F == 0 {
                    return Err(SessionError::InvalidFunctionCode(function));
                }
                let record = |verdict, touches, response: &[u8]| {
                    ServerEvent::Answered(RequestRecord {
                        header,
                        function,
                        touches,
                        role: role.clone(),
                        verdict,
                        outcome: RequestOutcome::of_response(response),
                        arrived,
                        answered: now,
                        pdus: with_pdus.then(|| {
                            Arc::new(RecordedPdus {
                                request: Pdu::copy_of(pdu),
                                response: Some(Pdu::copy_of(response)),
                            })
                        }),
                    })
                };
                let request = match Request::decode(pdu) {
                    Ok(request) => request,
                    Err(error) => {
                        let exception = error
                            .exception_code()
                            .unwrap_or(ExceptionCode::IllegalDataValue);
                        let answer = write_exception(out, header, function, exception);
                        let verdict = Verdict::Rejected(Rejection::Malformed(error));
                        events.push_back(record(verdict, [None, None], &answer));
                        return Ok(());
                    }
                };
                if let Decision::Deny(denial) = permissions.decide(header.unit_id, &request) {
                    let exception = ExceptionCode::IllegalFunction;
                    let answer = write_exception(out, header, function, exception);
                    let verdict = Verdict::Denied(denial);
                    events.push_back(record(verdict, touches_of(&request), &answer));
                    return Ok(());
                }
                match handler {
                    Some(handler) => {
                        let context = RequestContext {
                            unit_id: header.unit_id,
                            transaction_id: header.transaction_id,
                            role: role.as_ref(),
                        };
                        let start = out.len();
                        let mut reply = Reply::new(out, header, function);
                        let result = handler.handle(&context, &request, &mut reply);
                        reply.finish(result);
                        if recording >= Recording::Every {
                            let response = out.get(start + MBAP_HEADER_LEN..).unwrap_or(&[]);
                            events.push_back(record(
                                Verdict::Allowed,
                                touches_of(&request),
                                response,
                            ));
                        }
                    }
                    None => {
                        let id = RequestId(*next_id);
                        *next_id += 1;
                        outstanding.push(Outstanding {
                            id,
                            header,
                            function,
                            touches: touches_of(&request),
                            arrived,
                            request: with_pdus.then(|| Box::new(Pdu::copy_of(pdu))),
                        });
                        events.push_back(ServerEvent::Request {
                            id,
                            header,
                            pdu: Pdu::copy_of(pdu),
                        });
                    }
                }
                Ok(())
            }
        });
        match taken {
            None => false,
            Some(Ok(())) => {
                self.connection.touch(self.now);
                true
            }
            Some(Err(error)) => {
                self.connection.fail(error);
                false
            }
        }
    }
}

/// Appends the exception ADU for `function` with `code`, header echoed;
/// returns its PDU.
fn write_exception(
    out: &mut Vec<u8>,
    header: MbapHeader,
    function: u8,
    code: ExceptionCode,
) -> [u8; 2] {
    let mut adu = [0u8; 9];
    // An exception for a function code 1..=0x7F always encodes.
    if let Ok(n) = encode_response(header, &Response::exception(function, code), &mut adu) {
        out.extend_from_slice(&adu[..n]);
    }
    [function | 0x80, code as u8]
}

/// The first two table ranges `request` touches.
fn touches_of(request: &Request<'_>) -> [Option<Access>; 2] {
    let mut accesses = mbaps_authz::accesses(request);
    [accesses.next(), accesses.next()]
}

/// What an ADU just written answers: its outcome, and its PDU when the
/// record keeps it.
fn answer_in(adu: &[u8], with_pdus: bool) -> (RequestOutcome, Option<Pdu>) {
    let pdu = adu.get(MBAP_HEADER_LEN..).unwrap_or(&[]);
    (
        RequestOutcome::of_response(pdu),
        with_pdus.then(|| Pdu::copy_of(pdu)),
    )
}
