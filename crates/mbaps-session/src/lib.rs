//! # mbaps-session
//!
//! The sans-IO heart of mbaps: client and server session state machines
//! that turn TLS ciphertext into Modbus requests and responses, on rustls.
//! No socket, no clock: bytes and time (`now: Instant`) come in as
//! arguments, bytes and events come out.
//!
//! ```text
//!        bytes read ──► handle_tls(now, &[u8]) ─┐
//!        read == 0  ──► handle_eof(now)         ├─► poll_event()    ─► ServerEvent / ClientEvent
//!   timer reached   ──► handle_timeout(now)     │   poll_transmit() ─► bytes to write
//!   send_request / send_response / close ───────┘   poll_timeout()  ─► next deadline
//! ```
//!
//! ## The drain contract
//! After **every** call that feeds the session (`handle_*`, `send_*`,
//! `close`), drain [`Server::poll_event`] until `None`, then write what
//! [`Server::poll_transmit`] gives, then sleep until [`Server::poll_timeout`]
//! or the next read. Events and output are produced only in answer to input,
//! so a session drained this way holds at most one read's worth of them.
//!
//! ```no_run
//! # use std::io::{Read, Write};
//! # use std::time::Instant;
//! # fn serve(config: &mbaps_session::ServerConfig, mut socket: std::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! use mbaps_session::{Server, ServerEvent};
//! use mbaps_codec::{Registers, Request, Response};
//!
//! #[allow(clippy::disallowed_methods)] // the adapter owns the clock
//! let now = || Instant::now();
//! let mut session = Server::new(config, now())?;
//! let (mut buf, mut out) = ([0u8; 16 * 1024], Vec::new());
//! loop {
//!     let n = socket.read(&mut buf)?;
//!     if n == 0 { session.handle_eof(now())?; } else { session.handle_tls(now(), &buf[..n])?; }
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             ServerEvent::Request { id, pdu, .. } => {
//!                 // Authorized already: answer it (here: every read with zeros).
//!                 if let Ok(Request::ReadHoldingRegisters { quantity, .. }) = pdu.request() {
//!                     let zeros = vec![0u16; quantity.into()];
//!                     let response = Response::ReadHoldingRegisters { values: Registers::from_values(&zeros) };
//!                     session.send_response(now(), id, &response)?;
//!                 }
//!             }
//!             ServerEvent::Denied { denial, .. } => eprintln!("denied: {denial}"),
//!             ServerEvent::Closed(_) => return Ok(()),
//!             _ => {}
//!         }
//!     }
//!     out.clear();
//!     session.poll_transmit(&mut out);
//!     socket.write_all(&out)?;
//!     if n == 0 { return Ok(()); }
//! }
//! # }
//! ```
//!
//! ## What the sessions enforce
//! - Configurations conform by default ([`ServerConfig::builder`],
//!   [`ClientConfig::builder`]): TLS 1.2/1.3, the specification's suites,
//!   mandatory client certificates checked against roots and CRLs, role
//!   extensions checked in the handshake.
//! - The server authorizes every request before the application sees it
//!   and answers a denied one with exception 0x01 (R-16, R-30, R-31); it
//!   answers 0x01/0x03 to PDUs that do not decode, discards frames with a
//!   protocol id other than 0, and echoes transaction and unit ids.
//! - The server pushes back instead of refusing: it takes a request out of
//!   its buffer only when one of its `max_outstanding` slots is free (and
//!   its responses are being transmitted); until then
//!   [`Server::handle_tls`] takes no more input and [`Server::wants_read`]
//!   is `false`, so the adapter stops reading and TCP slows the client.
//! - The client allocates transaction ids never in use, matches responses
//!   by id, discards (and counts) unknown ones, and gives every request one
//!   outcome: response, invalid response, timeout or abort.
//! - Fatal errors are sticky ([`SessionError::is_fatal`]).
//!
//! ## The application side
//! A [`Handler`] answers the requests the session has authorized, with the
//! unit id and the client's role at hand ([`RequestContext`]);
//! [`Server::answer_with`] calls it and sends its response or exception.
//! [`RegisterMap`] is a ready in-memory device (every table, file records,
//! FIFO, device identification) for simulators and tests.
//!
//! ## Admission control
//! [`admission::Admission`] is the sans-IO bookkeeping both adapters'
//! servers share: handshakes in progress and authenticated sessions are
//! bounded apart, a full handshake table drops its oldest pending
//! handshake, and only a newly authenticated session may close another
//! (Implementation Guide 4.2), never a stranger.
//!
//! ## Plain Modbus/TCP
//! [`ServerConfig::plain`] and [`ClientConfig::plain`] run the same state
//! machines without TLS (port 502): no encryption, no authentication, every
//! connection authorized as one configured role. Never the default; for
//! migrating plants and as the baseline in benchmarks.
//!
//! ## Memory
//! Per session: a 520-byte plaintext reassembly buffer, one entry per
//! outstanding request (at most `max_outstanding`, default 16, at most 256),
//! rustls's buffers (received records up to one 16 KiB record plus its
//! plaintext; output bounded at 64 KiB, beyond which a send is a fatal
//! [`SessionError::SendBufferFull`]), and the events of the last call.
//! Nothing grows with the peer's behaviour across calls.
#![forbid(unsafe_code)]

pub mod admission;
pub mod call;
mod client;
mod config;
mod error;
mod event;
mod handler;
mod link;
mod load;
mod log;
mod resumption;
mod server;
mod transport;

pub use call::{ClientError, Outcome};
pub use client::Client;
pub use config::{
    ClientConfig, ClientConfigBuilder, ConfigError, CrlScope, DEFAULT_MAX_OUTSTANDING,
    MAX_OUTSTANDING_LIMIT, PlainConfigBuilder, ServerConfig, ServerConfigBuilder,
    ServerVerification, Timers, TlsVersions, crypto_provider,
};
pub use error::SessionError;
pub use event::{
    ClientEvent, CloseReason, Handshake, InvalidResponse, Pdu, Rejection, RequestId, ServerEvent,
};
pub use handler::{DeviceInfo, Handler, RegisterMap, Reply, RequestContext, Tables};
pub use load::{
    LoadError, LoadProblem, MAX_CREDENTIAL_FILE_BYTES, load_certificates, load_crls,
    load_private_key, parse_certificates, parse_crls, parse_private_key,
};
pub use log::SessionLog;
pub use server::Server;

/// Re-exported so that users name the same rustls types mbaps uses.
pub use rustls;
