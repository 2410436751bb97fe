//! The audit trail's source: every session's start and end and every
//! request's decision and outcome, handed to [`TokioServer::on_audit`]
//! (which writes them, counts them, ships them). Nothing is built unless an
//! observer is set.
//!
//! [`TokioServer::on_audit`]: crate::TokioServer::on_audit

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mbaps_authz::{Access, Denial, Role, accesses};
use mbaps_codec::{ExceptionCode, MbapHeader, Request};
use mbaps_session::rustls::pki_types::CertificateDer;
use mbaps_session::{CloseReason, Handler, Pdu, Reply, RequestContext};

/// One entry of the audit trail.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuditEntry {
    /// A client authenticated (on TLS; a plain connection at its start).
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
    },
    /// A request was decided and answered.
    Request(AuditedRequest),
    /// A session that started has ended.
    SessionEnded {
        /// When.
        at: SystemTime,
        /// The client's address.
        peer: SocketAddr,
        /// How.
        reason: CloseReason,
    },
}

/// One request: who, what, the decision and the answer.
#[derive(Clone, Debug)]
pub struct AuditedRequest {
    /// When it was answered.
    pub at: SystemTime,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's role (`None`: the NULL role).
    pub role: Option<Role>,
    /// Transaction id and unit id.
    pub header: MbapHeader,
    /// The function code.
    pub function: u8,
    /// The first two table ranges it touches (a file record request may
    /// name more).
    pub touches: [Option<Access>; 2],
    /// Allowed, denied (the permission missing), or rejected before
    /// authorization (a PDU that does not decode).
    pub decision: AuditDecision,
    /// The answer sent.
    pub outcome: AuditOutcome,
    /// From the request's decoding to its answer.
    pub latency: Duration,
}

/// How a request was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditDecision {
    /// The policy allowed it; the application answered.
    Allowed,
    /// The policy denied it: answered 0x01.
    Denied(Denial),
    /// It did not decode: answered with an exception before authorization.
    Rejected,
}

/// What a request was answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// A normal response.
    Response,
    /// An exception response.
    Exception(ExceptionCode),
}

impl AuditOutcome {
    /// The outcome of a response PDU: an exception if its function code
    /// has the exception bit.
    pub(crate) fn of(pdu: &Pdu) -> AuditOutcome {
        match pdu.as_bytes() {
            [function, code, ..] if function & 0x80 != 0 => {
                ExceptionCode::from_code(*code, *function)
                    .map_or(AuditOutcome::Response, AuditOutcome::Exception)
            }
            _ => AuditOutcome::Response,
        }
    }
}

/// Where entries go.
pub(crate) type Auditor = Arc<dyn Fn(&AuditEntry) + Send + Sync>;

/// The first two table ranges of `request`.
pub(crate) fn touches(request: &Request<'_>) -> [Option<Access>; 2] {
    let mut all = accesses(request);
    [all.next(), all.next()]
}

/// A session's handler with each request audited.
pub(crate) struct AuditedHandler {
    pub(crate) inner: Arc<dyn Handler>,
    pub(crate) peer: SocketAddr,
    pub(crate) auditor: Auditor,
}

impl Handler for AuditedHandler {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        let started = Instant::now();
        let result = self.inner.handle(context, request, reply);
        let outcome = match result {
            Ok(()) if reply.has_response() => AuditOutcome::Response,
            // The session answers a handler that wrote nothing 0x04.
            Ok(()) => AuditOutcome::Exception(ExceptionCode::ServerDeviceFailure),
            Err(code) => AuditOutcome::Exception(code),
        };
        (self.auditor)(&AuditEntry::Request(AuditedRequest {
            at: SystemTime::now(),
            peer: self.peer,
            role: context.role.cloned(),
            header: MbapHeader {
                transaction_id: context.transaction_id,
                unit_id: context.unit_id,
            },
            function: request.function().code(),
            touches: touches(request),
            decision: AuditDecision::Allowed,
            outcome,
            latency: started.elapsed(),
        }));
        result
    }
}
