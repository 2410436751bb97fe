//! What the adapters report of their sessions, for logs and audit trails.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::SessionError;
use crate::event::ServerEvent;

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
    /// The session failed (a refused certificate, a TLS alert, a timeout).
    Failed {
        /// The client's address.
        peer: SocketAddr,
        /// Why.
        error: SessionError,
    },
    /// A connection was refused: `max_sessions` were open and none idle.
    Refused {
        /// The client's address.
        peer: SocketAddr,
        /// The bound.
        max_sessions: usize,
    },
    /// An idle session was closed to make room for a new connection, the
    /// oldest idle one (Implementation Guide: the server may close the
    /// session idle the longest when its session limit is reached).
    Evicted {
        /// The closed session's client.
        peer: SocketAddr,
        /// How long it had been idle.
        idle_for: Duration,
    },
}

/// One log line: what happened, to which peer, and why.
impl fmt::Display for SessionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionLog::Event { peer, event } => write_event(f, *peer, event),
            SessionLog::Failed { peer, error } => write!(f, "session {peer} failed: {error}"),
            SessionLog::Refused { peer, max_sessions } => {
                write!(f, "refused {peer}: {max_sessions} sessions open, none idle")
            }
            SessionLog::Evicted { peer, idle_for } => write!(
                f,
                "closed session {peer}, idle for {:.1} s, to make room",
                idle_for.as_secs_f64()
            ),
        }
    }
}

fn write_event(f: &mut fmt::Formatter<'_>, peer: SocketAddr, event: &ServerEvent) -> fmt::Result {
    match event {
        ServerEvent::Authenticated { role, handshake } => {
            let role = role
                .as_ref()
                .map_or("<no role>".into(), |r| format!("{:?}", r.as_str()));
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
        ServerEvent::Denied { header, denial, .. } => write!(
            f,
            "denied {peer} unit={} txn={}: {denial}",
            header.unit_id, header.transaction_id
        ),
        ServerEvent::Rejected {
            header,
            exception,
            reason,
            ..
        } => write!(
            f,
            "rejected {peer} txn={}: exception {exception} ({reason:?})",
            header.transaction_id
        ),
        ServerEvent::Discarded { protocol_id } => {
            write!(f, "discarded {peer}: protocol id {protocol_id}")
        }
        ServerEvent::Closed(reason) => write!(f, "session {peer} closed: {reason:?}"),
        ServerEvent::Request { header, pdu, .. } => write!(
            f,
            "request {peer} unit={} txn={} {:?}",
            header.unit_id, header.transaction_id, pdu
        ),
    }
}
