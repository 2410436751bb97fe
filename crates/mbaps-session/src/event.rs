//! What sessions report: events, owned PDUs, and why a session closed.

use core::fmt;
use core::time::Duration;

use mbaps_authz::Role;
use mbaps_codec::{CodecError, MbapHeader, Request, Response};

use crate::error::SessionError;
use crate::record::RequestRecord;
use rustls::{CipherSuite, ProtocolVersion};

/// A PDU, owned (at most 253 bytes, on the stack), to carry across tasks
/// and in events: a request or a response, encoded once and valid (made
/// by [`Pdu::encode_request`] or [`Pdu::encode_response`], or received and
/// decoded). [`Pdu::request`] / [`Pdu::response`] read it back, cheaply.
#[derive(Clone, Copy)]
pub struct Pdu {
    bytes: [u8; 253],
    len: u8,
}

impl Pdu {
    pub(crate) fn copy_of(pdu: &[u8]) -> Pdu {
        let mut bytes = [0u8; 253];
        let len = pdu.len().min(253);
        bytes[..len].copy_from_slice(&pdu[..len]);
        Pdu {
            bytes,
            len: len as u8,
        }
    }

    fn encoded(
        encode: impl FnOnce(&mut [u8]) -> Result<usize, CodecError>,
    ) -> Result<Pdu, CodecError> {
        let mut pdu = Pdu {
            bytes: [0u8; 253],
            len: 0,
        };
        let len = encode(&mut pdu.bytes)?;
        // A PDU is at most 253 bytes: encode checked it.
        pdu.len = len as u8;
        Ok(pdu)
    }

    /// `request`, encoded (and so validated).
    pub fn encode_request(request: &Request<'_>) -> Result<Pdu, CodecError> {
        Self::encoded(|out| request.encode(out))
    }

    /// `response`, encoded (and so validated): what an application that
    /// answers later hands to [`crate::Server::send_response_pdu`].
    pub fn encode_response(response: &Response<'_>) -> Result<Pdu, CodecError> {
        Self::encoded(|out| response.encode(out))
    }

    /// The function code (the exception bit included).
    pub fn function(&self) -> u8 {
        self.bytes[0]
    }

    /// The PDU's bytes: function code and data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The PDU as a request.
    pub fn request(&self) -> Result<Request<'_>, CodecError> {
        Request::decode(self.as_bytes())
    }

    /// The PDU as a response.
    pub fn response(&self) -> Result<Response<'_>, CodecError> {
        Response::decode(self.as_bytes())
    }
}

impl fmt::Debug for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pdu({:02X?})", self.as_bytes())
    }
}

impl PartialEq for Pdu {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Pdu {}

/// A server's handle on one request it handed to the application, to be
/// answered with [`crate::Server::send_response`]. Unique within a session,
/// even if a client reuses a transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

/// How the TLS session was set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The TLS version negotiated.
    pub version: ProtocolVersion,
    /// The cipher suite negotiated.
    pub cipher_suite: CipherSuite,
    /// Whether an earlier session was resumed.
    pub resumed: bool,
}

/// How a session ended: the last event of every session, reported exactly
/// once, after any alert or close_notify owed to the peer is waiting in
/// `poll_transmit`. [`CloseReason::label`] names it with a stable word,
/// for audit trails, metrics and log lines.
#[derive(Clone, Debug, PartialEq)]
pub enum CloseReason {
    /// The peer sent close_notify (and so did we, in answer).
    PeerClosed,
    /// The peer's stream ended without close_notify: a truncation attack or
    /// a crashed peer cannot be told apart from an orderly close, so this
    /// is reported as it is.
    PeerEofWithoutCloseNotify,
    /// We closed ([`close`](crate::Server::close)); the peer answered, its
    /// stream ended, or the close timeout passed.
    LocalClose,
    /// Closed to make room for a newly authenticated session
    /// ([`Closing::Evicted`]).
    Evicted,
    /// Closed as it authenticated: no place for it ([`Closing::Refused`]).
    Refused,
    /// Closed because the server is stopping ([`Closing::Shutdown`]).
    Shutdown,
    /// Nothing happened for the idle timeout: we sent close_notify.
    IdleTimeout,
    /// The connection was closed at once, without close_notify
    /// ([`Cut::Dropped`]).
    Dropped,
    /// The connection failed under the session: a read or write error,
    /// such as the peer's reset ([`Cut::Reset`]).
    Reset(std::io::ErrorKind),
    /// The peer took nothing we sent for this long ([`Cut::WriteTimeout`]).
    WriteTimeout(Duration),
    /// The session failed: a TLS alert sent (a certificate refused, and
    /// why) or received (which), the handshake timeout, a stream that
    /// cannot be followed.
    Failed(SessionError),
}

impl CloseReason {
    /// A stable word for the reason (`closed`, `peer_closed`, `peer_eof`,
    /// `evicted`, `refused`, `shutdown`, `idle_timeout`, `dropped`,
    /// `reset`, `write_timeout`, `failed`): values that scripts, metrics
    /// labels and alert rules may match on; the details are in
    /// [`Display`](fmt::Display).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::PeerEofWithoutCloseNotify => "peer_eof",
            CloseReason::LocalClose => "closed",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Dropped => "dropped",
            CloseReason::Reset(_) => "reset",
            CloseReason::WriteTimeout(_) => "write_timeout",
            CloseReason::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed (close_notify)"),
            CloseReason::PeerEofWithoutCloseNotify => {
                f.write_str("the peer's stream ended without close_notify")
            }
            CloseReason::LocalClose => f.write_str("closed by the server"),
            CloseReason::Evicted => f.write_str("closed to make room for a newer session"),
            CloseReason::Refused => f.write_str("refused: every session place is taken"),
            CloseReason::Shutdown => f.write_str("the server is stopping"),
            CloseReason::IdleTimeout => f.write_str("idle for the idle timeout"),
            CloseReason::Dropped => f.write_str("dropped by admission control"),
            CloseReason::Reset(kind) => write!(f, "the connection failed: {kind}"),
            CloseReason::WriteTimeout(waited) => {
                write!(f, "the peer took nothing sent to it for {waited:?}")
            }
            CloseReason::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

/// Why the server closes a session with close_notify
/// ([`crate::Server::close_for`]): its end is reported with the matching
/// [`CloseReason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// The application asked: [`CloseReason::LocalClose`].
    Requested,
    /// Admission control makes room for a newer session (Implementation
    /// Guide 4.2): [`CloseReason::Evicted`].
    Evicted,
    /// Admission control has no place for the session:
    /// [`CloseReason::Refused`].
    Refused,
    /// The server is stopping: [`CloseReason::Shutdown`].
    Shutdown,
}

impl Closing {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Closing::Requested => CloseReason::LocalClose,
            Closing::Evicted => CloseReason::Evicted,
            Closing::Refused => CloseReason::Refused,
            Closing::Shutdown => CloseReason::Shutdown,
        }
    }
}

/// How the connection under a session was cut, with nothing more to be
/// sent on it ([`crate::Server::cut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Closed at once by admission control: [`CloseReason::Dropped`].
    Dropped,
    /// A read or a write failed (the peer's reset, say):
    /// [`CloseReason::Reset`].
    Reset(std::io::ErrorKind),
    /// The peer took nothing for the write timeout:
    /// [`CloseReason::WriteTimeout`].
    WriteTimeout(Duration),
}

impl Cut {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Cut::Dropped => CloseReason::Dropped,
            Cut::Reset(kind) => CloseReason::Reset(kind),
            Cut::WriteTimeout(waited) => CloseReason::WriteTimeout(waited),
        }
    }
}

/// Why a server answered a request with an exception instead of handing it
/// to the application (besides authorization, see
/// [`crate::Verdict::Denied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The PDU did not decode: 0x01 for a function not served, else 0x03.
    Malformed(CodecError),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(error) => write!(f, "the PDU does not decode: {error}"),
        }
    }
}

/// What a [`crate::Server`] reports.
#[derive(Clone, Debug, PartialEq)]
// The PDU travels inline (253 bytes): boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub enum ServerEvent {
    /// The handshake finished: the client is authenticated and its role
    /// resolved against the policy.
    Authenticated {
        /// The role of the client certificate; `None` is the NULL role.
        role: Option<Role>,
        /// How the TLS session was set up; `None` for plain Modbus/TCP.
        handshake: Option<Handshake>,
    },
    /// An authorized request for the application, which must answer it
    /// with [`crate::Server::send_response`].
    Request {
        /// The handle to answer with.
        id: RequestId,
        /// Transaction id and unit id, echoed in the response.
        header: MbapHeader,
        /// The request.
        pdu: Pdu,
    },
    /// A request was decided and answered (or abandoned, its session
    /// ending): its one record. Requests the session refused itself
    /// (denied: 0x01, R-31; rejected: a PDU that does not decode) are
    /// always reported; the others as [`crate::Server::record`] asks.
    Answered(RequestRecord),
    /// A frame with a protocol id other than 0 was discarded
    /// (Implementation Guide 3.1.3).
    Discarded {
        /// The protocol id.
        protocol_id: u16,
    },
    /// The session ended: the last event.
    Closed(CloseReason),
}

/// Why a response could not be handed over as a valid answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidResponse {
    /// The PDU did not decode.
    Malformed(CodecError),
    /// The response is for another function than the request's.
    WrongFunction {
        /// The request's function code.
        expected: u8,
        /// The response's function code (exception bit clear).
        found: u8,
    },
    /// The unit id was not echoed.
    WrongUnit {
        /// The request's unit id.
        expected: u8,
        /// The response's.
        found: u8,
    },
    /// The only request in flight got no answer under its transaction id,
    /// but a frame came that no request of late can own: under another id
    /// (the peer did not echo it), or with a protocol id other than 0 (a
    /// gateway's conclusion; see [`crate::upstream::Upstream`]).
    Unechoed {
        /// The request's transaction id.
        expected: u16,
        /// The frame's transaction id.
        found: u16,
        /// The frame's protocol id.
        protocol_id: u16,
    },
}

impl fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidResponse::Malformed(error) => write!(f, "the PDU does not decode: {error}"),
            InvalidResponse::WrongFunction { expected, found } => write!(
                f,
                "the answer is for function 0x{found:02X}, the request was 0x{expected:02X}"
            ),
            InvalidResponse::WrongUnit { expected, found } => write!(
                f,
                "the answer is from unit {found}, the request was to unit {expected}"
            ),
            InvalidResponse::Unechoed {
                expected,
                found,
                protocol_id,
            } => write!(
                f,
                "a frame came under transaction id {found} (protocol id {protocol_id}) while only request {expected} was on the wire: its answer is not coming"
            ),
        }
    }
}

/// Why a client dropped a frame from the server ([`ClientEvent::Dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A request under its transaction id ended lately (answered, timed
    /// out, abandoned): a late or a repeated answer.
    Late,
    /// No request of late had its transaction id.
    UnknownTransactionId,
    /// Its protocol id is not 0: not a Modbus frame (Implementation Guide
    /// 3.1.3).
    ProtocolId(u16),
    /// An RTU frame from another unit than the one addressed (a server
    /// that answers for an address not its own): the answer awaited may
    /// still come.
    OtherUnit(u8),
    /// An RTU frame whose CRC is wrong (a corrupted byte, or noise): the
    /// answer awaited may still come, or its timeout ends it.
    Crc,
}

/// What a [`crate::Client`] reports.
#[derive(Clone, Debug, PartialEq)]
// The PDU travels inline (253 bytes): boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub enum ClientEvent {
    /// The handshake finished and the server is verified (`None`: plain
    /// Modbus/TCP, connected from the start).
    Connected(Option<Handshake>),
    /// The response to request `transaction_id` (an exception response
    /// included).
    Response {
        /// The request's transaction id.
        transaction_id: u16,
        /// The unit id, echoed.
        unit_id: u8,
        /// The response.
        pdu: Pdu,
    },
    /// A response arrived for request `transaction_id` but is not a valid
    /// answer to it; the request is over.
    Invalid {
        /// The request's transaction id.
        transaction_id: u16,
        /// What is wrong.
        error: InvalidResponse,
    },
    /// No response within the request timeout; a late one is discarded.
    Timeout {
        /// The request's transaction id.
        transaction_id: u16,
    },
    /// The session ended while request `transaction_id` was in flight: it
    /// will get no response.
    Aborted {
        /// The request's transaction id.
        transaction_id: u16,
        /// How the session ended.
        reason: CloseReason,
    },
    /// A frame from the server that answers no request in flight: dropped
    /// (and counted in [`crate::Client::discarded_responses`]), as the
    /// Implementation Guide says. For a log: a peer that answers under
    /// ids it was never sent is out of step.
    Dropped {
        /// The frame's transaction id.
        transaction_id: u16,
        /// Why it answers nothing.
        reason: DropReason,
    },
    /// The session ended: the last event. Requests still in flight got
    /// `Aborted` first.
    Closed(CloseReason),
}
