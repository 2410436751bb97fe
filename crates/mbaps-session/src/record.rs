//! The record of one request, written once by the server session when the
//! request has been decided and answered (or abandoned): what the audit
//! trail, the metrics, the log lines and a tap all read
//! ([`crate::ServerEvent::Answered`]).

use core::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_authz::{Access, Denial, Role};
use mbaps_codec::{ExceptionCode, MbapHeader};

use crate::event::{Pdu, Rejection};

/// How many of its requests a server session reports as
/// [`crate::ServerEvent::Answered`] ([`crate::Server::record`]). A record
/// costs an event per request; the requests the session refuses itself are
/// always reported, since a log must see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Recording {
    /// Only the requests the session refused itself (denied, rejected).
    #[default]
    Refused,
    /// Every request (an audit trail, metrics).
    Every,
    /// Every request with its request and response PDUs (a tap of the
    /// plaintext conversation).
    EveryWithPdus,
}

/// How a request was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The policy allowed it: the application answered.
    Allowed,
    /// The policy denied it: the session answered 0x01.
    Denied(Denial),
    /// It was refused before authorization (a PDU that does not decode):
    /// the session answered with an exception.
    Rejected(Rejection),
}

impl Verdict {
    /// A stable word: `allowed`, `denied` or `rejected`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied(_) => "denied",
            Verdict::Rejected(_) => "rejected",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allowed => f.write_str("allowed"),
            Verdict::Denied(denial) => write!(f, "denied: {denial}"),
            Verdict::Rejected(why) => write!(f, "rejected: {why}"),
        }
    }
}

/// What a request was answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A normal response.
    Response,
    /// An exception response.
    Exception(ExceptionCode),
    /// No answer reached the client: the session ended while the request
    /// was with the application (its connection closed unanswered).
    Abandoned {
        /// What the application answered after the session had ended,
        /// when it did: a device behind a gateway that carried out a write
        /// whose client had gone. `None`: the application never answered
        /// (or the server stopped waiting, see
        /// [`crate::Server::abandon_requests`]).
        late: Option<LateAnswer>,
    },
}

/// The answer an application gave to a request whose session had ended:
/// nobody received it, but it says what was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateAnswer {
    /// A normal response: the request was carried out.
    Response,
    /// An exception response.
    Exception(ExceptionCode),
}

impl RequestOutcome {
    /// A stable word: `response`, `exception` or `abandoned`.
    pub fn label(&self) -> &'static str {
        match self {
            RequestOutcome::Response => "response",
            RequestOutcome::Exception(_) => "exception",
            RequestOutcome::Abandoned { .. } => "abandoned",
        }
    }

    /// The exception code answered (or, abandoned, answered late), if any.
    pub fn exception(&self) -> Option<ExceptionCode> {
        match self {
            RequestOutcome::Exception(code)
            | RequestOutcome::Abandoned {
                late: Some(LateAnswer::Exception(code)),
            } => Some(*code),
            _ => None,
        }
    }

    /// The outcome of an encoded response: an exception if its function
    /// code has the exception bit.
    pub(crate) fn of_response(pdu: &[u8]) -> RequestOutcome {
        match pdu {
            [function, code, ..] if function & 0x80 != 0 => {
                ExceptionCode::from_code(*code, *function)
                    .map_or(RequestOutcome::Response, RequestOutcome::Exception)
            }
            _ => RequestOutcome::Response,
        }
    }

    /// The same answer, given after the session had ended.
    pub(crate) fn too_late(self) -> RequestOutcome {
        let late = match self {
            RequestOutcome::Response => Some(LateAnswer::Response),
            RequestOutcome::Exception(code) => Some(LateAnswer::Exception(code)),
            RequestOutcome::Abandoned { late } => late,
        };
        RequestOutcome::Abandoned { late }
    }
}

impl LateAnswer {
    /// A stable word: `response` or `exception`.
    pub fn label(&self) -> &'static str {
        match self {
            LateAnswer::Response => "response",
            LateAnswer::Exception(_) => "exception",
        }
    }
}

/// One request, decided and answered: who asked what, the decision, the
/// answer and how long it took. Instants are the ones the adapter passed
/// in (the session reads no clock).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// Transaction id and unit id.
    pub header: MbapHeader,
    /// The function code, as received.
    pub function: u8,
    /// The first two table ranges it touches (a file record request may
    /// name more); none for a request that did not decode.
    pub touches: [Option<Access>; 2],
    /// The client's role (`None`: the NULL role).
    pub role: Option<Role>,
    /// The decision.
    pub verdict: Verdict,
    /// The answer.
    pub outcome: RequestOutcome,
    /// When the bytes that completed it were handed to the session.
    pub arrived: Instant,
    /// When it was answered (or, abandoned, when its late answer came or
    /// the server stopped waiting for one).
    pub answered: Instant,
    /// The request and response PDUs, with [`Recording::EveryWithPdus`]:
    /// shared, so that each reader of the record (a trail, a tap) takes
    /// it without copying them.
    pub pdus: Option<Arc<RecordedPdus>>,
}

impl RequestRecord {
    /// From its arrival to its answer.
    pub fn latency(&self) -> Duration {
        self.answered.saturating_duration_since(self.arrived)
    }
}

/// A request's PDUs, as received and as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedPdus {
    /// The request's PDU, as received (a rejected one's bytes included).
    pub request: Pdu,
    /// The response's PDU, as sent (abandoned: as the application gave it
    /// late; `None` if it never did).
    pub response: Option<Pdu>,
}
