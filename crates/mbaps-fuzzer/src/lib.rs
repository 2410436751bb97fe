//! # mbaps-fuzzer
//!
//! A network fuzzer for Modbus/TCP Security devices (and plain Modbus/TCP
//! ones) that gets past the TLS layer: it completes the mutual-TLS
//! handshake with a role certificate, so that what it generates reaches the
//! device's Modbus parser. Structure-aware: inputs come from the grammar of
//! every function code the codec knows, on and past the boundaries of each
//! field, with framing mutations (MBAP lengths, protocol ids, unit ids,
//! reused transaction ids, two ADUs in a TLS record or one split across
//! two, close_notify in the middle of an ADU) and mutations of inputs the
//! device answered in a way not seen before. `mbaps fuzz` is its command.
//!
//! ```text
//!  Generator (seeded) ──► batch of steps + liveness read ──► Link (rustls or TCP) ──► device
//!                                                               │
//!  Finding ◄── minimize (delta debugging) ◄── oracle ◄── frames, how the connection ended,
//!    └─► replay file (JSON)                              a fresh connection's answer
//! ```
//!
//! The oracle knows what the specification allows, so that it is never a
//! finding: a frame with a protocol id other than 0 discarded unanswered, a
//! connection closed on an MBAP length outside 2..=254 or on function code
//! 0, the exceptions every function may return ([`Expect`]). Findings are
//! classified ([`FindingKind`]): `crash`, `hang`, `disconnect`,
//! `invalid_response`, `duplicate_response`, `accepted_malformed`.
//!
//! Writes are off by default ([`Scope::allow_writes`]): a write can move
//! real equipment. Without them only the reading functions go out (0x01,
//! 0x02, 0x03, 0x04, 0x14, 0x18, 0x2B), malformed ones included.
//!
//! ```no_run
//! # fn run(config: mbaps_session::ClientConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mbaps_fuzzer::{Options, Target, run_campaign};
//! use mbaps_session::rustls::pki_types::ServerName;
//!
//! let tls = Arc::new(config.tls().expect("a TLS configuration").clone());
//! let target = Target {
//!     address: "10.0.0.7:802".parse()?,
//!     tls: Some((tls, ServerName::try_from("plc-7")?)),
//! };
//! let mut options = Options::new(target);
//! options.seed = 42;
//! options.requests = Some(10_000);
//! let report = run_campaign(&options, &mut |_| {})?;
//! for finding in &report.findings {
//!     println!("{} {:?}: {}", finding.kind, finding.replay, finding.summary);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
// A network fuzzer keeps time: timeouts, the rate, the campaign's length.
#![allow(clippy::disallowed_methods)]

mod campaign;
mod exchange;
mod grammar;
mod input;
mod oracle;
mod replay;
mod rng;
mod wire;

pub use campaign::{
    BATCH_WINDOWS, CampaignError, Finding, Options, Progress, Report, run_campaign,
};
pub use exchange::check_alive;
pub use grammar::{Generator, READ_ONLY, Scope};
pub use input::{Delivery, Expect, MAX_ADU_BYTES, Step, exception_allowed, expect_of};
pub use oracle::{End, FindingKind, Judgement, Verdict, judge};
pub use replay::{
    REPLAY_FORMAT, Replay, ReplayError, Replayed, TlsFiles, minimize, parse as parse_replay, replay,
};
pub use rng::Rng;
pub use wire::{ConnectError, Frame, Link, Received, Target};
