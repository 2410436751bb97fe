//! Session errors: fatal ones end the session and are sticky.

use mbaps_codec::CodecError;

use crate::event::RequestId;

/// What went wrong in a session.
///
/// A session that fails ends with [`CloseReason::Failed`] holding one of
/// the fatal errors ([`SessionError::is_fatal`]), reported once as its last
/// event; every later `send_*` call returns it again, and only the alert
/// owed to the peer may still be transmitted. The other errors refuse one
/// call (a misuse) and leave the session as it was.
///
/// [`CloseReason::Failed`]: crate::CloseReason::Failed
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// TLS failed: a bad certificate (ours or the peer's: why), an alert
    /// from the peer (which), a protocol violation. The alert owed to the
    /// peer is pending in [`poll_transmit`](crate::Server::poll_transmit).
    #[error("TLS: {}", TlsText(.0))]
    Tls(rustls::Error),
    /// The configuration in force no longer accepts the client's
    /// certificate (a new CRL revokes it, its CA is no longer trusted, it
    /// has expired): a reload found it on an open session, or the check
    /// at the end of a handshake did (one that completed after a reload,
    /// or resumed a session). The session was closed with close_notify
    /// before serving anything more, and its TLS session forgotten.
    #[error("the client certificate is no longer accepted: {}", TlsText(.0))]
    NoLongerAccepted(rustls::Error),
    /// The handshake did not finish within the handshake timeout.
    #[error("the TLS handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// A plain Modbus/TCP connection sent no request that decodes within
    /// the handshake timeout (the bound a plain connection has in place of
    /// a handshake).
    #[error("no request came within {0:?} of the connection")]
    NoRequest(std::time::Duration),
    /// The Modbus byte stream is out of step (a bad MBAP length): it cannot
    /// be followed further.
    #[error("the Modbus stream cannot be followed: {0}")]
    Framing(CodecError),
    /// The client sent function code 0 or 0x80, which no exception response
    /// can echo: the session ends instead of answering.
    #[error("the client sent function code 0x{0:02X}, which cannot be answered")]
    InvalidFunctionCode(u8),
    /// The TLS send buffer is full: [`poll_transmit`](crate::Server::poll_transmit)
    /// was not drained.
    #[error("the TLS send buffer is full: drain poll_transmit after every call")]
    SendBufferFull,
    /// rustls's receive buffers are full: input was given while the
    /// session held plaintext it had not taken (see `wants_read`).
    #[error("the TLS receive buffers are full: give input only when the session wants to read")]
    ReceiveBufferFull,
    /// rustls could not hand over received plaintext.
    #[error("reading the received plaintext failed: {0:?}")]
    ReceiveFailed(std::io::ErrorKind),
    /// The session is closed, or closing: nothing more can be sent.
    #[error("the session is closed")]
    Closed,
    /// Not fatal: no request with this id is waiting for a response.
    #[error("no outstanding request {0:?}")]
    UnknownRequest(RequestId),
    /// Not fatal: the response is not for the request's function.
    #[error("the response is for function 0x{found:02X}, the request was 0x{expected:02X}")]
    WrongFunction {
        /// The request's function code.
        expected: u8,
        /// The response's function code.
        found: u8,
    },
    /// Not fatal: the request does not encode (a limit broken).
    #[error("the request does not encode: {0}")]
    InvalidRequest(CodecError),
    /// Not fatal: the response does not encode (a limit broken).
    #[error("the response does not encode: {0}")]
    InvalidResponse(CodecError),
    /// Not fatal: a request to unit 0 on an RTU line is a broadcast, which
    /// no server answers: only writes may be broadcast (Serial Line V1.02,
    /// 2.2). The function code is given.
    #[error(
        "unit 0 on a serial line is a broadcast, which no server answers: function 0x{0:02X} is not a write"
    )]
    BroadcastNotWrite(u8),
    /// Not fatal: all request slots are in use.
    #[error("{0} requests are already in flight")]
    TooManyOutstanding(usize),
}

impl SessionError {
    /// Whether the session is over.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SessionError::Tls(_)
                | SessionError::NoLongerAccepted(_)
                | SessionError::HandshakeTimeout(_)
                | SessionError::NoRequest(_)
                | SessionError::Framing(_)
                | SessionError::SendBufferFull
                | SessionError::ReceiveBufferFull
                | SessionError::ReceiveFailed(_)
                | SessionError::InvalidFunctionCode(_)
                | SessionError::Closed
        )
    }
}

/// A rustls error in words: rustls shows errors of its own verifiers as
/// they are, but wraps ours (a role extension's, a missing CRL's) in
/// `Other(..)` debug text; those are shown by their own message.
struct TlsText<'a>(&'a rustls::Error);

impl std::fmt::Display for TlsText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use rustls::{CertificateError, Error};
        match self.0 {
            Error::InvalidCertificate(CertificateError::Other(other)) => {
                write!(f, "invalid peer certificate: {}", other.0)
            }
            error => write!(f, "{error}"),
        }
    }
}
