//! # mbaps-std
//!
//! Modbus/TCP Security on blocking `std::net` sockets, for programs without
//! an async runtime. Each type is the run loop of an `mbaps-session` state
//! machine and nothing else: read bytes, feed the session, drain its events,
//! call the handler, write what it transmits, wait until its next deadline.
//!
//! ```text
//!  TcpListener ──accept──► admission (handshakes and sessions bounded apart)
//!                          ──► thread per connection ──► mbaps_session::Server ──► Handler
//!  TcpStream ──► StdClient::read_coils(..) / call(unit, &Request) / pipeline(..) ──► mbaps_session::Client ──► Response
//! ```
//!
//! The server follows the admission rules of
//! [`mbaps_admission`] (see [`StdServer`]); its accept loop blocks
//! in `accept` and [`ServerHandle::stop`] wakes it, closes every session
//! with close_notify after answering what it received, and waits a bounded
//! time.
#![forbid(unsafe_code)]
// The adapter owns the clock: it is the one place that reads it.
#![allow(clippy::disallowed_methods)]

mod client;
mod server;

pub use client::StdClient;
pub use mbaps_admission::{AuditEntry, SessionLog};
pub use mbaps_session::call::DeviceIdentification;
pub use mbaps_session::{Calls, ClientError};
pub use server::{Reloader, ServerHandle, StdServer};
