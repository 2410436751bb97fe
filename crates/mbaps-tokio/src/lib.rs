//! # mbaps-tokio
//!
//! Modbus/TCP Security on tokio. Like `mbaps-std`, each type is the run loop
//! of an `mbaps-session` state machine and holds no protocol logic: read
//! bytes, feed the session, drain its events, call the handler, write what
//! it transmits, sleep until its next deadline.
//!
//! ```text
//!  TcpListener ──accept──► admission (handshakes and sessions bounded apart)
//!                          ──► task per connection ──► mbaps_session::Server ──► Handler (at once)
//!                                                                           └──► AsyncHandler (later, a task each)
//!  TokioClient (Clone) ──► driver task ──► mbaps_session::Client: calls from
//!                          many tasks in flight together, by transaction id
//!                     └──► a call alone on an idle connection: sent and read
//!                          on its caller's task (same session, one lock)
//! ```
//!
//! The server follows the admission rules of
//! [`mbaps_admission`]: no unauthenticated peer can close,
//! starve or outlast an authenticated session (see [`TokioServer`]).
//!
//! ```no_run
//! # async fn run(server: mbaps_session::ServerConfig, client: mbaps_session::ClientConfig)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use mbaps_session::rustls::pki_types::ServerName;
//! use mbaps_simulator::{RegisterMap, Tables};
//! use mbaps_tokio::{AsyncCalls, TokioClient, TokioServer};
//!
//! let handle = TokioServer::bind("127.0.0.1:802", server, RegisterMap::new(Tables::preset()))
//!     .await?
//!     .max_sessions(32)
//!     .spawn()?;
//! let name = ServerName::try_from("localhost")?;
//! let client = TokioClient::connect(handle.local_addr(), client, name).await?;
//! let values = client.read_holding_registers(1, 100, 10).await?;
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
// The adapter owns the clock: it is the one place that reads it.
#![allow(clippy::disallowed_methods)]

mod client;
mod drain;
mod gateway;
mod handler;
mod rtu_client;
pub mod serial;
mod server;
mod stream;
mod timer;

pub use client::{ClientBuilder, Reconnect, TokioClient};
pub use gateway::{Device, Gateway, GatewayBuilder, GatewayError, GatewayLog, Route};
pub use handler::{AsyncHandler, IncomingRequest, IntoAnswering, Later};
pub use mbaps_admission::{AuditEntry, SessionLog};
pub use mbaps_session::call::DeviceIdentification;
pub use mbaps_session::upstream::UpstreamLimits;
pub use mbaps_session::{AsyncCalls, ClientError};
pub use rtu_client::{RtuClient, RtuClientError};
pub use server::{Reloader, ServerHandle, TokioServer};
