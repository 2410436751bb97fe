//! # mbaps-observe
//!
//! What an operator reads of a running server or gateway, built from the
//! one record each served connection reports (`mbaps_admission`'s
//! [`AuditEntry`](mbaps_admission::AuditEntry) and
//! [`SessionLog`](mbaps_admission::SessionLog), over the session's
//! `RequestRecord`): the audit trail as JSON lines ([`trail`]) and the
//! metrics ([`Metrics`]). Both the std and the tokio servers feed them
//! through their `on_audit` and `on_log` observers.
//!
//! ```text
//!  Served connection ──► SessionReport ──► on_audit(&AuditEntry) ──► AuditSink ──► writer thread ──► file
//!                                     │                          └─► Metrics::audit
//!                                     └──► on_log(&SessionLog) ────► Metrics::session_log, log lines
//! ```
//!
//! ```no_run
//! # fn run(config: mbaps_session::ServerConfig) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use mbaps_observe::{Metrics, trail};
//!
//! let (sink, writer) = trail::start(trail::AuditTarget {
//!     path: "audit.jsonl".into(),
//!     max_bytes: 0,
//!     keep: 5,
//! })?;
//! let metrics = Arc::new(Metrics::new());
//! let counted = Arc::clone(&metrics);
//! let server = mbaps_std::StdServer::bind("127.0.0.1:802", config, mbaps_simulator::RegisterMap::default())?
//!     .on_audit(move |entry| {
//!         counted.audit(entry);
//!         sink.record(entry);
//!     })
//!     .spawn()?;
//! // ... serve, scrape metrics.encode() ...
//! server.stop();
//! writer.finish();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
// The trail stamps each entry with the wall clock as it is handed over.
#![allow(clippy::disallowed_methods)]

mod identity;
mod metrics;
pub mod tap;
pub mod trail;
mod writer;

pub use metrics::Metrics;

/// Locks `mutex`; what it guards is only ever written whole, so a
/// poisoned lock still holds something consistent.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
