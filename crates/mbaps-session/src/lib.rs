//! # mbaps-session
//!
//! The sans-IO heart of mbaps: client and server session state machines
//! that turn TLS ciphertext into Modbus requests and responses, on rustls.
//! No socket, no clock: bytes and time (`now: Instant`) come in as
//! arguments, bytes and events come out.
//!
//! ```text
//!        bytes read ──► handle_tls(now, &[u8]) -> taken ─┐
//!        read == 0  ──► handle_eof(now)                  ├─► answer_requests(now, &handler)  (answers at once)
//!   timer reached   ──► handle_timeout(now)              │   poll_event()    ─► ServerEvent / ClientEvent
//!   send_request / send_response / close ────────────────┘   poll_transmit() ─► bytes to write
//!                                                            poll_timeout()  ─► next deadline
//! ```
//!
//! ## One lifecycle, one end
//! A session is handshaking, open, closing or closed, one state moved in
//! one place. How it ended is reported exactly once, as its last event
//! ([`ServerEvent::Closed`], [`ClientEvent::Closed`] with a
//! [`CloseReason`]: a close either way, the peer's EOF, the idle timeout,
//! or [`CloseReason::Failed`] with the alert sent or received, the
//! certificate refused and why), and by then any alert or close_notify
//! owed to the peer is waiting in `poll_transmit`. The `handle_*` methods
//! report nothing: an adapter has one exit path, "the session is closed
//! and its output written".
//!
//! ## The drain contract
//! After **every** call that feeds the session (`handle_*`, `send_*`,
//! `close`), answer or drain the requests ([`Server::answer_requests`] or
//! [`Server::poll_event`] until `None`), write what
//! [`Server::poll_transmit`] gives, then sleep until
//! [`Server::poll_timeout`] or the next read. A server takes input only
//! while [`Server::wants_read`]: it holds at most one read's worth of
//! plaintext, and a client that pipelines more than the window is slowed
//! down by TCP. The loop users copy (and `examples/blocking_server.rs`):
//!
//! ```no_run
//! # use std::io::{ErrorKind, Read, Write};
//! # use std::time::{Duration, Instant};
//! # fn serve(config: &mbaps_session::ServerConfig, handler: &dyn mbaps_session::Handler,
//! #         mut socket: std::net::TcpStream) -> std::io::Result<()> {
//! use mbaps_session::{Server, ServerEvent};
//!
//! #[allow(clippy::disallowed_methods)] // the adapter owns the clock
//! let now = || Instant::now();
//! let mut session = Server::new(config, now()).map_err(std::io::Error::other)?;
//! let (mut buf, mut input, mut out) = ([0u8; 16 * 1024], Vec::new(), Vec::new());
//! loop {
//!     // Input the session will take now; the rest waits.
//!     if !input.is_empty() && session.wants_read() {
//!         let taken = session.handle_tls(now(), &input);
//!         input.drain(..taken);
//!     }
//!     // Authorized requests answered at once; the other events logged.
//!     session.answer_requests(now(), handler);
//!     while let Some(event) = session.poll_event() {
//!         if let ServerEvent::Closed(reason) = event {
//!             eprintln!("session over: {reason:?}");
//!         }
//!     }
//!     // Responses, or the alert a failure owes the peer.
//!     out.clear();
//!     session.poll_transmit(&mut out);
//!     socket.write_all(&out)?;
//!     if session.is_closed() {
//!         return Ok(());
//!     }
//!     if !input.is_empty() && session.wants_read() {
//!         continue;
//!     }
//!     // Wait for bytes, or for the session's next deadline.
//!     let wait = session.poll_timeout().map(|at| at.saturating_duration_since(now()));
//!     socket.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
//!     match socket.read(&mut buf) {
//!         Ok(0) => session.handle_eof(now()),
//!         Ok(n) => input.extend_from_slice(&buf[..n]),
//!         Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!             session.handle_timeout(now())
//!         }
//!         Err(e) => return Err(e),
//!     }
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
//! Encode once, copy little. A [`Handler`] answers at once: it sees each
//! authorized request borrowed from the receive buffer (decoded once, for
//! authorization and for it), with the unit id and the client's role at
//! hand ([`RequestContext`]), and its response is encoded once, straight
//! into the output ([`Reply`]). An application that answers later takes
//! [`ServerEvent::Request`] (an owned [`Pdu`]) and answers with
//! [`Server::send_response`] or a response it encoded itself
//! ([`Server::send_response_pdu`]). On the client side, a request is
//! encoded once, into the output, or by the caller ([`Pdu`]) and copied.
//! The typed client API is written once, in [`call`]: [`Calls`] for
//! blocking clients and [`AsyncCalls`] for async ones.
//!
//! ## Plain Modbus/TCP
//! [`ServerConfig::plain`] and [`ClientConfig::plain`] run the same state
//! machines without TLS (port 502): no encryption, no authentication, every
//! connection authorized as one configured role. Never the default; for
//! migrating plants and as the baseline in benchmarks.
//!
//! ## Memory
//! Per session: the frame being reassembled when one spans TLS records (at
//! most 520 bytes, and none otherwise), one entry per outstanding request
//! (at most `max_outstanding`, default 16, at most 256), the responses of a
//! batch, the ciphertext of a record cut short and the plaintext not yet
//! framed (up to one 16 KiB record each, released once empty: TLS runs on
//! rustls's unbuffered API, which leaves the buffers to the session), TLS
//! output bounded at 65 KiB (beyond it a send is a fatal
//! [`SessionError::SendBufferFull`]), and the events of the last call
//! (released once drained where requests are answered by a [`Handler`]).
//! Nothing grows with the peer's behaviour across calls. An idle TLS 1.3
//! session is 8.6 KiB on the tokio server at 5,000 sessions, most of it
//! rustls's state: the connection, the record keys and the client's
//! certificate chain (`docs/benchmarks.md`).
#![forbid(unsafe_code)]

pub mod call;
mod client;
mod config;
mod connection;
mod error;
mod event;
mod handler;
mod load;
mod record;
mod resumption;
pub mod rtu_server;
mod server;
mod transport;
pub mod upstream;

pub use call::{AsyncCalls, Calls, ClientError, Outcome};
pub use client::Client;
pub use config::{
    ClientConfig, ClientConfigBuilder, ConfigError, CrlScope, DEFAULT_MAX_OUTSTANDING,
    MAX_OUTSTANDING_LIMIT, MAX_TIMEOUT, MIN_TIMEOUT, PlainConfigBuilder, ServerConfig,
    ServerConfigBuilder, ServerVerification, Timers, TlsVersions, check_timeout, crypto_provider,
};
pub use error::SessionError;
pub use event::{
    ClientEvent, CloseReason, Closing, Cut, DropReason, Handshake, InvalidResponse, Pdu, Rejection,
    RequestId, ServerEvent,
};
pub use handler::{Handler, Reply, RequestContext};
pub use load::{
    LoadError, LoadProblem, MAX_CREDENTIAL_FILE_BYTES, load_certificates, load_crls,
    load_private_key, parse_certificates, parse_crls, parse_private_key,
};
pub use record::{LateAnswer, RecordedPdus, Recording, RequestOutcome, RequestRecord, Verdict};
pub use server::Server;

/// Re-exported so that users name the same rustls types mbaps uses.
pub use rustls;
