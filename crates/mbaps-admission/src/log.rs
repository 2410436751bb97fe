//! What the adapters report of their sessions, for logs and audit trails.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use mbaps_authz::LoggedRole;
use mbaps_codec::FunctionName;
use mbaps_session::{CloseReason, LateAnswer, RequestOutcome, ServerEvent, SessionError, Verdict};

use crate::{EvictionReason, HandshakeBound};

/// What happened to a server's session: each event with the peer it came
/// from. Both the std and tokio adapters report these to their observer.
#[derive(Clone, Debug)]
// Log entries carry the event inline, as the session gives it.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum SessionLog {
    /// A session event (authenticated, denied, rejected, closed, ...).
    /// Requests handed to the handler are not logged one by one.
    Event {
        /// The client's address.
        peer: SocketAddr,
        /// The event.
        event: ServerEvent,
    },
    /// The session failed (a refused certificate, a TLS alert, a timeout):
    /// its last event, `Closed(Failed(..))`.
    Failed {
        /// The client's address.
        peer: SocketAddr,
        /// Why.
        error: SessionError,
    },
    /// A newly authenticated session was closed: `max_sessions` were open
    /// and none was stalled or idle.
    Refused {
        /// The client's address.
        peer: SocketAddr,
        /// The bound.
        max_sessions: usize,
    },
    /// A session was closed to make room for a newly authenticated one
    /// (Implementation Guide 4.2: close the oldest unused connection):
    /// one whose peer had stopped reading, else the one idle the longest.
    Evicted {
        /// The closed session's client.
        peer: SocketAddr,
        /// Why it was the one.
        reason: EvictionReason,
        /// The newly authenticated client it made room for.
        newcomer: SocketAddr,
    },
    /// A connection still in its handshake was dropped to admit a newer
    /// one: a handshake bound was full (see the [crate docs](crate)).
    HandshakeDropped {
        /// The dropped connection's client.
        peer: SocketAddr,
        /// Which bound.
        bound: HandshakeBound,
        /// How long its handshake had been pending.
        pending_for: Duration,
    },
}

impl SessionLog {
    /// The entry for `event` of the session with `peer`: its end by
    /// failure is [`SessionLog::Failed`], everything else an
    /// [`SessionLog::Event`].
    pub fn of(peer: SocketAddr, event: ServerEvent) -> SessionLog {
        match event {
            ServerEvent::Closed(CloseReason::Failed(error)) => SessionLog::Failed { peer, error },
            event => SessionLog::Event { peer, event },
        }
    }
}

/// How much a log entry matters, for the adapters' log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Detail (a discarded frame).
    Debug,
    /// What an operator reads by default: session starts and ends,
    /// refused requests, evictions.
    Info,
    /// Something is wrong: a failed session, a refusal, a dropped
    /// handshake, a peer that stopped reading.
    Warn,
}

impl SessionLog {
    /// How much the entry matters.
    pub fn severity(&self) -> Severity {
        match self {
            SessionLog::Event {
                event: ServerEvent::Closed(CloseReason::WriteTimeout(_)),
                ..
            }
            | SessionLog::Failed { .. }
            | SessionLog::Refused { .. }
            | SessionLog::HandshakeDropped { .. } => Severity::Warn,
            SessionLog::Event {
                event:
                    ServerEvent::Answered(_)
                    | ServerEvent::Authenticated { .. }
                    | ServerEvent::Closed(_),
                ..
            }
            | SessionLog::Evicted { .. } => Severity::Info,
            SessionLog::Event { .. } => Severity::Debug,
        }
    }
}

/// One log line: what happened, to which peer, and why.
impl fmt::Display for SessionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionLog::Event { peer, event } => write_event(f, *peer, event),
            SessionLog::Failed { peer, error } => write!(f, "session {peer} failed: {error}"),
            SessionLog::Refused { peer, max_sessions } => write!(
                f,
                "refused {peer}: {max_sessions} sessions open, none idle or stalled"
            ),
            SessionLog::Evicted {
                peer,
                reason,
                newcomer,
            } => {
                write!(f, "closed session {peer} to make room for {newcomer}: ")?;
                match reason {
                    EvictionReason::Stalled { stalled_for } => write!(
                        f,
                        "it had taken none of our bytes for {:.1} s",
                        stalled_for.as_secs_f64()
                    ),
                    EvictionReason::Idle { idle_for } => {
                        write!(f, "idle the longest, for {:.1} s", idle_for.as_secs_f64())
                    }
                }
            }
            SessionLog::HandshakeDropped {
                peer,
                bound,
                pending_for,
            } => {
                write!(
                    f,
                    "dropped handshake of {peer} after {:.1} s: ",
                    pending_for.as_secs_f64()
                )?;
                match bound {
                    HandshakeBound::Global { max } => {
                        write!(f, "{max} handshakes in progress, the bound")
                    }
                    HandshakeBound::PerAddress { max } => write!(
                        f,
                        "{max} handshakes in progress from its address, the bound"
                    ),
                }
            }
        }
    }
}

fn write_event(f: &mut fmt::Formatter<'_>, peer: SocketAddr, event: &ServerEvent) -> fmt::Result {
    match event {
        ServerEvent::Authenticated { role, handshake } => {
            let role = LoggedRole(role.as_ref());
            write!(f, "session {peer} authenticated role={role} (")?;
            match handshake {
                Some(h) => write!(
                    f,
                    "{:?} {:?}{})",
                    h.version,
                    h.cipher_suite,
                    if h.resumed { " resumed" } else { "" }
                ),
                None => write!(f, "plain Modbus/TCP)"),
            }
        }
        ServerEvent::Answered(record) => {
            write!(
                f,
                "{} {peer} role={} unit={} txn={} {}",
                record.verdict.label(),
                LoggedRole(record.role.as_ref()),
                record.header.unit_id,
                record.header.transaction_id,
                FunctionName(record.function)
            )?;
            for access in record.touches.iter().flatten() {
                write!(f, " {} {}..={}", access.table, access.first, access.last)?;
            }
            match (&record.verdict, &record.outcome) {
                (Verdict::Denied(denial), _) => write!(f, ": {denial}"),
                (Verdict::Rejected(why), RequestOutcome::Exception(code)) => {
                    write!(f, ": exception {code} ({why})")
                }
                (_, RequestOutcome::Exception(code)) => write!(f, ": exception {code}"),
                (_, RequestOutcome::Abandoned { late: Some(late) }) => {
                    write!(f, ": abandoned, its session over (answered late: ")?;
                    match late {
                        LateAnswer::Response => write!(f, "response)"),
                        LateAnswer::Exception(code) => write!(f, "exception {code})"),
                    }
                }
                (_, RequestOutcome::Abandoned { late: None }) => {
                    write!(f, ": abandoned, its session over (never answered)")
                }
                (_, outcome) => write!(f, ": {}", outcome.label()),
            }
        }
        ServerEvent::Discarded { protocol_id } => {
            write!(f, "discarded {peer}: protocol id {protocol_id}")
        }
        ServerEvent::Closed(reason) => {
            write!(f, "session {peer} ended ({}): {reason}", reason.label())
        }
        ServerEvent::Request { header, pdu, .. } => write!(
            f,
            "request {peer} unit={} txn={} {:?}",
            header.unit_id, header.transaction_id, pdu
        ),
    }
}
