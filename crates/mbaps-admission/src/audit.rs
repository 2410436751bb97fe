//! The audit trail's entries: every session's start and end and every
//! request's record, as both server adapters hand them to their auditor
//! (which writes them, counts them, ships them). Nothing is built unless an
//! auditor is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use mbaps_authz::Role;
use mbaps_session::rustls::pki_types::CertificateDer;
use mbaps_session::{CloseReason, Handshake, RequestRecord};

/// One entry of the audit trail.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuditEntry {
    /// A client authenticated (on TLS; on plain Modbus/TCP, with its first
    /// request): the entries of its requests follow, then its end.
    SessionStarted {
        /// When.
        at: SystemTime,
        /// The client's address.
        peer: SocketAddr,
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
        /// When the entry was made (the record's instants say when the
        /// request came and was answered).
        at: SystemTime,
        /// The client's address.
        peer: SocketAddr,
        /// The record.
        record: RequestRecord,
    },
    /// A session that started has ended: every started session's end is
    /// reported exactly once, however it ended.
    SessionEnded {
        /// When.
        at: SystemTime,
        /// The client's address.
        peer: SocketAddr,
        /// How ([`CloseReason::label`] names it).
        reason: CloseReason,
    },
}

/// Where entries go: called on the sessions' threads or tasks, so it hands
/// the entry over (a bounded queue, a counter) rather than write it there.
pub type Auditor = Arc<dyn Fn(&AuditEntry) + Send + Sync>;
