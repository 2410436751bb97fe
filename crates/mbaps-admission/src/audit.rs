//! The audit trail's entries: every session's start and end and every
//! request's record, as the served connection hands them to an auditor
//! (which writes them, counts them, ships them). Nothing is built unless an
//! auditor is set.
//!
//! Entries carry no time of their own: the auditor is called on the
//! session's thread or task as the thing happens, so it stamps an entry
//! with the wall clock when it takes it (this crate reads no clock). A
//! request's record has the instants it arrived and was answered.

use std::net::SocketAddr;
use std::sync::Arc;

use mbaps_authz::Role;
use mbaps_session::rustls::pki_types::CertificateDer;
use mbaps_session::{CloseReason, Handshake, Recording, RequestRecord};

/// One entry of the audit trail.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuditEntry {
    /// A client authenticated (on TLS; on plain Modbus/TCP, with its first
    /// request): the entries of its requests follow, then its end.
    SessionStarted {
        /// The client's address.
        peer: SocketAddr,
        /// The server's address the client connected to.
        local: SocketAddr,
        /// Its role (`None`: the NULL role).
        role: Option<Role>,
        /// Its certificate (`None` on plain Modbus/TCP): the subject and
        /// fingerprint of the trail come from it.
        certificate: Option<CertificateDer<'static>>,
        /// How its TLS session was set up (`None`: plain Modbus/TCP).
        handshake: Option<Handshake>,
    },
    /// A request was decided and answered (or abandoned): its record, as
    /// the session wrote it.
    Request {
        /// The client's address.
        peer: SocketAddr,
        /// The server's address the client connected to.
        local: SocketAddr,
        /// The record.
        record: RequestRecord,
    },
    /// A session that started has ended: every started session's end is
    /// reported exactly once, however it ended, after the records of its
    /// requests.
    SessionEnded {
        /// The client's address.
        peer: SocketAddr,
        /// The server's address the client connected to.
        local: SocketAddr,
        /// How ([`CloseReason::label`] names it).
        reason: CloseReason,
    },
}

/// Where entries go: called on the sessions' threads or tasks, so it hands
/// the entry over (a bounded queue, a counter) rather than write it there.
pub type Auditor = Arc<dyn Fn(&AuditEntry) + Send + Sync>;

/// An auditor, and how much of each request its records hold.
#[derive(Clone)]
pub struct Audit {
    pub(crate) auditor: Auditor,
    pub(crate) recording: Recording,
}

impl Audit {
    /// Records without the PDUs: what a trail or metrics read.
    pub fn new(auditor: Auditor) -> Audit {
        Audit {
            auditor,
            recording: Recording::Every,
        }
    }

    /// Records that carry the request's and the response's PDUs
    /// ([`RequestRecord::pdus`]): what a tap of the plaintext conversation
    /// reads. Each record then holds a copy of both.
    pub fn with_pdus(auditor: Auditor) -> Audit {
        Audit {
            auditor,
            recording: Recording::EveryWithPdus,
        }
    }
}
