//! What a served connection reports, in one place for both adapters: each
//! session event goes to the audit trail (if one is kept) and to the log,
//! each once, in one vocabulary.

use std::net::SocketAddr;
use std::time::SystemTime;

use mbaps_session::{Recording, Server, ServerEvent, Verdict};

use crate::audit::{AuditEntry, Auditor};
use crate::log::SessionLog;

/// One session's reporter: hands its events to the auditor and the log.
pub struct SessionReport {
    peer: SocketAddr,
    auditor: Option<Auditor>,
    /// Its start is on the trail: its end will be too.
    started: bool,
}

impl SessionReport {
    /// The reporter of the session with `peer`, audited by `auditor`.
    pub fn new(peer: SocketAddr, auditor: Option<Auditor>) -> SessionReport {
        SessionReport {
            peer,
            auditor,
            started: false,
        }
    }

    /// What the session must record of its requests: every one for an
    /// audit trail, else only the ones it refuses (for the log).
    pub fn recording(&self) -> Recording {
        if self.auditor.is_some() {
            Recording::Every
        } else {
            Recording::Refused
        }
    }

    /// The session is established (authenticated, or a plain session's
    /// first request): its start goes on the trail, once, before the
    /// record of any of its requests. `at` is the wall clock now (the
    /// adapter reads it: this crate takes time as an argument).
    pub fn established(&mut self, session: &Server, at: SystemTime) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(auditor) = &self.auditor {
            auditor(&AuditEntry::SessionStarted {
                at,
                peer: self.peer,
                role: session.role().cloned(),
                certificate: session.peer_certificate().cloned(),
                handshake: session.handshake(),
            });
        }
    }

    /// Reports a session event: a request's record to the trail, and the
    /// end of a session whose start it holds; then to `log` everything but
    /// the records of allowed requests (the trail keeps those; a log line
    /// each would drown the rest). `at` is the wall clock now.
    pub fn event(&self, event: ServerEvent, at: SystemTime, log: impl FnOnce(&SessionLog)) {
        let peer = self.peer;
        let event = match (event, &self.auditor) {
            (ServerEvent::Answered(record), Some(auditor)) => {
                let entry = AuditEntry::Request { at, peer, record };
                auditor(&entry);
                let AuditEntry::Request { record, .. } = entry else {
                    return;
                };
                ServerEvent::Answered(record)
            }
            (ServerEvent::Closed(reason), Some(auditor)) if self.started => {
                auditor(&AuditEntry::SessionEnded {
                    at,
                    peer,
                    reason: reason.clone(),
                });
                ServerEvent::Closed(reason)
            }
            (event, _) => event,
        };
        if let ServerEvent::Answered(record) = &event
            && record.verdict == Verdict::Allowed
        {
            return;
        }
        log(&SessionLog::of(peer, event));
    }
}
