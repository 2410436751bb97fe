//! What a served connection reports, in one place for both adapters: each
//! session event goes to the audit trail (if one is kept) and to the log,
//! each once, in one vocabulary.

use std::net::SocketAddr;
use std::sync::Arc;

use mbaps_session::{Recording, RequestOutcome, Server, ServerEvent, Verdict};

use crate::audit::{Audit, AuditEntry};
use crate::log::SessionLog;

/// Where log entries go: the adapter's log (and the application's
/// observer behind it).
pub type Logger = Arc<dyn Fn(&SessionLog) + Send + Sync>;

/// One session's reporter: hands its events to the auditor and the log.
pub struct SessionReport {
    peer: SocketAddr,
    local: SocketAddr,
    audit: Option<Audit>,
    log: Logger,
    /// Its start is on the trail: its end will be too.
    started: bool,
}

impl SessionReport {
    /// The reporter of the session from `peer` to `local`, audited by
    /// `audit`, logged to `log`.
    pub fn new(
        peer: SocketAddr,
        local: SocketAddr,
        audit: Option<Audit>,
        log: Logger,
    ) -> SessionReport {
        SessionReport {
            peer,
            local,
            audit,
            log,
            started: false,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// What the session must record of its requests: every one for an
    /// audit (with their PDUs if it asks for them), else only the ones it
    /// refuses (for the log).
    pub fn recording(&self) -> Recording {
        self.audit
            .as_ref()
            .map_or(Recording::Refused, |audit| audit.recording)
    }

    /// Logs an entry that is not a session event (an eviction, a refusal).
    pub fn log(&self, entry: &SessionLog) {
        (self.log)(entry);
    }

    /// The session is established (authenticated, or a plain session's
    /// first request): its start goes on the trail, once, before the
    /// record of any of its requests.
    pub fn established(&mut self, session: &Server) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(Audit { auditor, .. }) = &self.audit {
            auditor(&AuditEntry::SessionStarted {
                peer: self.peer,
                local: self.local,
                role: session.role().cloned(),
                certificate: session.peer_certificate().cloned(),
                handshake: session.handshake(),
            });
        }
    }

    /// Reports a session event: a request's record to the trail, and the
    /// end of a session whose start it holds; then to the log everything
    /// but the records of allowed requests that were answered (the trail
    /// keeps those; a log line each would drown the rest).
    pub fn event(&self, event: ServerEvent) {
        let peer = self.peer;
        let auditor = self.audit.as_ref().map(|audit| &audit.auditor);
        let event = match (event, auditor) {
            (ServerEvent::Answered(record), Some(auditor)) => {
                let entry = AuditEntry::Request {
                    peer,
                    local: self.local,
                    record,
                };
                auditor(&entry);
                let AuditEntry::Request { record, .. } = entry else {
                    return;
                };
                ServerEvent::Answered(record)
            }
            (ServerEvent::Closed(reason), Some(auditor)) if self.started => {
                auditor(&AuditEntry::SessionEnded {
                    peer,
                    local: self.local,
                    reason: reason.clone(),
                });
                ServerEvent::Closed(reason)
            }
            (event, _) => event,
        };
        if let ServerEvent::Answered(record) = &event
            && record.verdict == Verdict::Allowed
            && !matches!(record.outcome, RequestOutcome::Abandoned { .. })
        {
            return;
        }
        self.log(&SessionLog::of(peer, event));
    }
}
