//! # mbaps-admission
//!
//! Admission control for servers: who may hold a connection, and who
//! gives way when the bounds are reached; and the log every server adapter
//! keeps of its sessions ([`SessionLog`]). Sans-IO like the sessions: the
//! std and tokio servers call it at accept, when a session authenticates
//! and when a connection ends, with the time as an argument, and act on
//! what it returns (drop a connection, close a session with close_notify).
//!
//! ```text
//!  accept ──► connect() ──► handshake table (bounded, globally and per source)
//!                │               │  full: the oldest pending handshake is dropped,
//!                │               │  one without a whole ClientHello first
//!                │               ▼
//!                │          authenticated() ──► session table (max_sessions)
//!                │                                 full: a stalled session, else the one
//!                │                                 idle the longest, is closed; none: the
//!                │                                 newcomer is closed
//!  end ──────────┴──► closed()
//! ```
//!
//! # The rules
//! - **Two budgets.** Connections still in their TLS handshake and
//!   authenticated sessions are counted apart. A stranger with a socket
//!   only ever competes with other handshakes.
//! - **Handshakes give way, oldest first.** When the handshake table is
//!   full (globally, or for the newcomer's source address), a pending
//!   handshake is dropped to admit the newcomer: handshakes that have not
//!   yet delivered a whole ClientHello (silent or dribbling peers) go
//!   before those that have; among them, those of the source address that
//!   holds the most handshakes, oldest first. A client that completes its
//!   handshake in milliseconds is never kept out by slow or silent ones.
//! - **Only the authenticated evict** (Implementation Guide 4.2, "close the
//!   oldest unused connection"): when a session authenticates and
//!   `max_sessions` are open, a session whose peer stopped reading
//!   (stalled) is closed, else the one idle the longest, with
//!   close_notify; if none is stalled or idle, the newcomer is closed
//!   instead. Nothing that has not authenticated closes a session.
//! - Plain Modbus/TCP has no authentication; what stands in for it is the
//!   first request that decodes (allowed or denied). Until a plain
//!   connection has sent one, it is a pending handshake like any other:
//!   it counts against the handshake bounds, is dropped for a newcomer
//!   when they are full, ends at the handshake timeout, and never closes
//!   a session. A plain client that has sent a request may close an idle
//!   one, as an authenticated client may: with no certificates that is
//!   all the protocol allows, and one more reason it is never the default.
//!
//! # Defaults, for a plant network
//! Tens of clients (HMIs, SCADA masters, historians, engineering laptops)
//! and a few devices: [`AdmissionLimits::default`] allows 64 sessions,
//! 32 handshakes at once and 8 per source address. A handshake takes a
//! few milliseconds, so 32 in progress is more than every client of a
//! site reconnecting together after a restart; 8 per address leaves room
//! for a gateway or a NAT in front of several clients while one address
//! cannot fill the table. IPv6 sources are counted per /64 (one host
//! holds a whole /64).

#![forbid(unsafe_code)]

mod activity;
mod audit;
mod log;
mod order;
mod report;
mod served;

use core::net::IpAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use activity::{Activity, SessionActivity};
pub use audit::{Audit, AuditEntry, Auditor};
pub use log::{SessionLog, Severity};
pub use order::{Handle, Order, Orders};
pub use report::{Logger, SessionReport};
pub use served::{
    Answering, IncomingRequest, LAST_WORDS, LATE_ANSWER_WAIT, Seat, Served, Table, lock,
};

/// How long a peer has to take the bytes a server sends it, by default:
/// the adapters end a connection whose output has waited this long (a
/// peer that stopped reading must not hold its session, its buffers or a
/// thread). Ten seconds is long for a plant network, where an answer takes
/// milliseconds, and short enough that a stuck peer is gone before an
/// operator notices.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping server waits for its sessions to answer what they
/// received and close, by default; those still open then are dropped.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The most a bound of [`AdmissionLimits`] may be set to: far above any
/// plant's clients, and low enough that the tables' memory stays small.
pub const MAX_BOUND: usize = 100_000;

/// The listen backlog the adapters' servers ask for: connections the
/// kernel has completed and the server not yet accepted. The usual 128
/// fills in a burst of connects, and then the kernel drops new SYNs, a
/// legitimate client's among them, which waits a second for its
/// retransmission. The servers accept (and shed) faster than that.
pub const LISTEN_BACKLOG: u32 = 1024;

/// The bounds of admission control; see the [crate docs](crate) for the
/// rules and the reasoning behind the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Authenticated sessions open at once (default 64).
    pub max_sessions: usize,
    /// Connections in their TLS handshake at once (default 32).
    pub max_handshakes: usize,
    /// Connections in their TLS handshake at once from one source address
    /// (an IPv4 address, or an IPv6 /64; default 8).
    pub max_handshakes_per_address: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_sessions: 64,
            max_handshakes: 32,
            max_handshakes_per_address: 8,
        }
    }
}

/// A bound of [`AdmissionLimits`] out of its range, 1 to [`MAX_BOUND`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundError {
    /// Which bound (`max_sessions`, `max_handshakes`,
    /// `max_handshakes_per_address`).
    pub bound: &'static str,
    /// The value given.
    pub value: usize,
}

impl core::fmt::Display for BoundError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} is {}: it must be 1 to {MAX_BOUND}",
            self.bound, self.value
        )
    }
}

impl std::error::Error for BoundError {}

/// Checks one bound: 1 to [`MAX_BOUND`] (a bound of 0 would admit nobody).
/// The one range of every admission bound; the configuration file and the
/// command line check theirs with it.
pub fn check_bound(bound: &'static str, value: usize) -> Result<usize, BoundError> {
    if (1..=MAX_BOUND).contains(&value) {
        Ok(value)
    } else {
        Err(BoundError { bound, value })
    }
}

impl AdmissionLimits {
    /// Checks every bound ([`check_bound`]).
    pub fn validate(&self) -> Result<(), BoundError> {
        check_bound("max_sessions", self.max_sessions)?;
        check_bound("max_handshakes", self.max_handshakes)?;
        check_bound(
            "max_handshakes_per_address",
            self.max_handshakes_per_address,
        )?;
        Ok(())
    }

    /// The limits with every bound at least 1 (a bound of 0 would admit
    /// nobody).
    fn at_least_one(self) -> AdmissionLimits {
        AdmissionLimits {
            max_sessions: self.max_sessions.max(1),
            max_handshakes: self.max_handshakes.max(1),
            max_handshakes_per_address: self.max_handshakes_per_address.max(1),
        }
    }
}

/// How many of a new connection's first bytes the adapters peek at, to
/// see whether its ClientHello is there already (see [`holds_client_hello`]).
pub const HELLO_PEEK_LEN: usize = 4096;

/// Whether `first_bytes`, what a client sent first (peeked at, not read),
/// hold a whole TLS handshake record: its ClientHello. A client that
/// sends its hello at once is told from a silent or dribbling one before
/// its connection's task has run, so that a burst of connects cannot push
/// it out of the handshake table first. (A hello longer than
/// [`HELLO_PEEK_LEN`] is only recognised once its session answers it.)
pub fn holds_client_hello(first_bytes: &[u8]) -> bool {
    match first_bytes {
        [0x16, 0x03, _, high, low, record @ ..] => {
            record.len() >= usize::from(u16::from_be_bytes([*high, *low]))
        }
        _ => false,
    }
}

/// Whether `first_bytes`, what a client sent first (peeked at, not read),
/// hold its whole opening: a TLS ClientHello ([`holds_client_hello`]),
/// or, on plain Modbus/TCP (`plain`), a whole frame with protocol id 0
/// (its first request, or what the session will answer as malformed).
pub fn holds_opening(plain: bool, first_bytes: &[u8]) -> bool {
    if plain {
        matches!(
            mbaps_codec::decode(first_bytes),
            Ok(mbaps_codec::Decoded::Frame { .. })
        )
    } else {
        holds_client_hello(first_bytes)
    }
}

/// A connection's number, unique within one [`Admission`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The number: unique among the connections of one [`Admission`].
    pub fn number(self) -> u64 {
        self.0
    }
}

/// Which handshake bound was full when a pending handshake was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeBound {
    /// Handshakes in progress from every address.
    Global {
        /// The bound.
        max: usize,
    },
    /// Handshakes in progress from the newcomer's address.
    PerAddress {
        /// The bound.
        max: usize,
    },
}

/// A pending handshake dropped to admit a newcomer: end its connection at
/// once (nothing is owed to a peer that has not authenticated).
#[derive(Debug)]
pub struct Dropped<H> {
    /// The adapter's handle of the dropped connection.
    pub handle: H,
    /// Which bound was full.
    pub bound: HandshakeBound,
    /// How long the dropped handshake had been pending.
    pub pending_for: Duration,
}

/// Why an authenticated session was closed to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionReason {
    /// Its peer had stopped taking our bytes for this long (a write
    /// pending): end it at once, it would not read a close_notify.
    Stalled {
        /// Since when.
        stalled_for: Duration,
    },
    /// It had been idle this long, the longest of all: close it with
    /// close_notify.
    Idle {
        /// Since when.
        idle_for: Duration,
    },
}

/// A session closed to make room for a newly authenticated one.
#[derive(Debug)]
pub struct Evicted<H> {
    /// The adapter's handle of the closed session.
    pub handle: H,
    /// Why it was the one.
    pub reason: EvictionReason,
}

/// What [`Admission::authenticated`] decided for a newly authenticated
/// session.
#[derive(Debug)]
pub enum Admitted<H> {
    /// There was room.
    Admitted,
    /// Admitted; this session was closed to make room.
    Evicting(Evicted<H>),
    /// `max_sessions` are open and none is stalled or idle: close the
    /// newcomer with close_notify.
    Refused {
        /// The bound.
        max_sessions: usize,
    },
    /// The connection is not known (it was dropped meanwhile): end it.
    Unknown,
}

/// A connection just accepted: its number and activity cell, and the
/// pending handshake that gave way to it, if one did.
#[derive(Debug)]
pub struct Connected<H> {
    /// The connection's number, for the later calls.
    pub id: ConnectionId,
    /// Where the connection's task reports what it is doing (see
    /// [`Activity`]).
    pub activity: Arc<Activity>,
    /// A pending handshake dropped to make room.
    pub dropped: Option<Dropped<H>>,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// In its TLS handshake.
    Handshake,
    /// Authenticated.
    Session,
    /// Over, but waiting for the late answers of requests its session
    /// handed out (see [`Admission::linger`]).
    Lingering,
}

struct Pending<H> {
    id: ConnectionId,
    source: Source,
    arrived: Instant,
    /// A whole ClientHello was read (the session had something to answer).
    hello: bool,
    activity: Arc<Activity>,
    handle: H,
}

struct Open<H> {
    id: ConnectionId,
    activity: Arc<Activity>,
    handle: H,
}

/// The admission state of one server: its handshakes in progress and its
/// authenticated sessions, each with the adapter's handle `H` on the
/// connection (what it needs to drop or close it).
pub struct Admission<H> {
    limits: AdmissionLimits,
    epoch: Instant,
    next_id: u64,
    /// In order of arrival: the oldest first.
    handshakes: VecDeque<Pending<H>>,
    sessions: Vec<Open<H>>,
    /// Connections over whose records wait for late answers: at most
    /// `max_sessions` of them.
    lingering: Vec<(ConnectionId, H)>,
}

impl<H> Admission<H> {
    /// An empty table with `limits`, started at `now`.
    pub fn new(limits: AdmissionLimits, now: Instant) -> Admission<H> {
        Admission {
            limits: limits.at_least_one(),
            epoch: now,
            next_id: 0,
            handshakes: VecDeque::new(),
            sessions: Vec::new(),
            lingering: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// A connection from `address` was accepted at `now`: it enters the
    /// handshake table, dropping the oldest pending handshake when a bound
    /// is full (see the [crate docs](crate)). `hello`: its ClientHello is
    /// there already ([`holds_client_hello`]).
    pub fn connect(
        &mut self,
        now: Instant,
        address: IpAddr,
        hello: bool,
        handle: H,
    ) -> Connected<H> {
        let source = Source::of(address);
        let from_source = self
            .handshakes
            .iter()
            .filter(|p| p.source == source)
            .count();
        let victim = if from_source >= self.limits.max_handshakes_per_address {
            let max = self.limits.max_handshakes_per_address;
            self.oldest_pending(|p| p.source == source)
                .map(|i| (i, HandshakeBound::PerAddress { max }))
        } else if self.handshakes.len() >= self.limits.max_handshakes {
            let max = self.limits.max_handshakes;
            self.oldest_pending(|_| true)
                .map(|i| (i, HandshakeBound::Global { max }))
        } else {
            None
        };
        let dropped = victim.and_then(|(index, bound)| {
            let pending = self.handshakes.remove(index)?;
            Some(Dropped {
                handle: pending.handle,
                bound,
                pending_for: now.saturating_duration_since(pending.arrived),
            })
        });
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        let activity = Arc::new(Activity::new(self.epoch));
        self.handshakes.push_back(Pending {
            id,
            source,
            arrived: now,
            hello,
            activity: Arc::clone(&activity),
            handle,
        });
        Connected {
            id,
            activity,
            dropped,
        }
    }

    /// The pending handshake matching `filter` to drop: one without a
    /// whole ClientHello if there is one; among those, one from the source
    /// address that holds the most handshakes, the oldest of them.
    ///
    /// The source comes first because age alone is a race a legitimate
    /// client loses under a flood: its ClientHello arrives a moment after
    /// its connection is accepted, and until its session task has read it,
    /// it looks silent. With 30,000 silent connects a second turning over
    /// a table of 32, "the oldest silent" is the client after a
    /// millisecond. A flood comes from few addresses (or it is a botnet,
    /// against which no per-address rule helps), so taking from the
    /// heaviest source first keeps one client's connection out of the way.
    ///
    /// "Silent" means its task has looked at its input and found no
    /// opening there; a handshake whose task has not run yet (under a
    /// burst of connects a thread or task may start after several more
    /// accepts) is unseen, and gives way after the silent ones, so that a
    /// client whose hello came a moment after its connect is not dropped
    /// before anyone has read it.
    fn oldest_pending(&self, filter: impl Fn(&Pending<H>) -> bool) -> Option<usize> {
        let silent = |p: &Pending<H>| filter(p) && !p.hello && p.activity.has_looked();
        let unheard = |p: &Pending<H>| filter(p) && !p.hello;
        self.oldest_of_heaviest_source(&silent)
            .or_else(|| self.oldest_of_heaviest_source(&unheard))
            .or_else(|| self.oldest_of_heaviest_source(&filter))
    }

    /// The oldest handshake matching `filter` from the source that has the
    /// most handshakes matching it (the oldest such source on a tie).
    fn oldest_of_heaviest_source(&self, filter: &dyn Fn(&Pending<H>) -> bool) -> Option<usize> {
        let mut counts: Vec<(Source, usize, usize)> = Vec::new();
        for (index, pending) in self.handshakes.iter().enumerate() {
            if !filter(pending) {
                continue;
            }
            match counts
                .iter_mut()
                .find(|(source, ..)| *source == pending.source)
            {
                Some((_, count, _)) => *count += 1,
                None => counts.push((pending.source, 1, index)),
            }
        }
        // The oldest of a source is the first seen: the table is in order
        // of arrival. Ties go to the source seen first.
        let mut best: Option<(usize, usize)> = None;
        for &(_, count, first) in &counts {
            if best.is_none_or(|(most, _)| count > most) {
                best = Some((count, first));
            }
        }
        best.map(|(_, first)| first)
    }

    /// Connection `id` delivered a whole ClientHello (its session had
    /// something to answer): it now gives way only after every pending
    /// handshake that has not.
    pub fn hello_received(&mut self, id: ConnectionId) {
        if let Some(pending) = self.handshakes.iter_mut().find(|p| p.id == id) {
            pending.hello = true;
        }
    }

    /// Connection `id` authenticated at `now`: it moves to the session
    /// table if there is room, or if a stalled or idle session can be
    /// closed to make it.
    pub fn authenticated(&mut self, id: ConnectionId, now: Instant) -> Admitted<H> {
        let Some(index) = self.handshakes.iter().position(|p| p.id == id) else {
            return Admitted::Unknown;
        };
        let mut decision = Admitted::Admitted;
        if self.sessions.len() >= self.limits.max_sessions {
            match self.eviction_candidate(now) {
                Some((victim, reason)) => {
                    let open = self.sessions.swap_remove(victim);
                    decision = Admitted::Evicting(Evicted {
                        handle: open.handle,
                        reason,
                    });
                }
                None => {
                    // The newcomer is closed: it leaves the handshake
                    // table now, and `closed` will find nothing.
                    self.handshakes.remove(index);
                    return Admitted::Refused {
                        max_sessions: self.limits.max_sessions,
                    };
                }
            }
        }
        if let Some(pending) = self.handshakes.remove(index) {
            self.sessions.push(Open {
                id,
                activity: pending.activity,
                handle: pending.handle,
            });
        }
        decision
    }

    /// The session to close for a newcomer: the one stalled the longest,
    /// else the one idle the longest.
    fn eviction_candidate(&self, now: Instant) -> Option<(usize, EvictionReason)> {
        let mut stalled: Option<(usize, Instant)> = None;
        let mut idle: Option<(usize, Instant)> = None;
        for (index, open) in self.sessions.iter().enumerate() {
            let (slot, since) = match open.activity.get() {
                SessionActivity::Stalled { since } => (&mut stalled, since),
                SessionActivity::Idle { since } => (&mut idle, since),
                SessionActivity::Busy => continue,
            };
            if slot.is_none_or(|(_, oldest)| since < oldest) {
                *slot = Some((index, since));
            }
        }
        if let Some((index, since)) = stalled {
            let stalled_for = now.saturating_duration_since(since);
            return Some((index, EvictionReason::Stalled { stalled_for }));
        }
        idle.map(|(index, since)| {
            let idle_for = now.saturating_duration_since(since);
            (index, EvictionReason::Idle { idle_for })
        })
    }

    /// Connection `id` ended (at any stage, for any reason).
    pub fn closed(&mut self, id: ConnectionId) {
        if let Some(index) = self.handshakes.iter().position(|p| p.id == id) {
            self.handshakes.remove(index);
        } else if let Some(index) = self.sessions.iter().position(|s| s.id == id) {
            self.sessions.swap_remove(index);
        } else if let Some(index) = self.lingering.iter().position(|(l, _)| *l == id) {
            self.lingering.swap_remove(index);
        }
    }

    /// Connection `id` is over, but requests of its session are still
    /// with the application, whose late answers their records wait for:
    /// it gives its place back and waits among the lingering, at most
    /// `max_sessions` of them (a peer that connects, asks and leaves
    /// cannot make the server hold more). `false` when there is no room:
    /// it must give up on the late answers now.
    pub fn linger(&mut self, id: ConnectionId) -> bool {
        let handle = if let Some(index) = self.handshakes.iter().position(|p| p.id == id) {
            self.handshakes.remove(index).map(|p| p.handle)
        } else if let Some(index) = self.sessions.iter().position(|s| s.id == id) {
            Some(self.sessions.swap_remove(index).handle)
        } else {
            None
        };
        match handle {
            Some(handle) if self.lingering.len() < self.limits.max_sessions => {
                self.lingering.push((id, handle));
                true
            }
            _ => false,
        }
    }

    /// Handshakes in progress.
    pub fn handshakes(&self) -> usize {
        self.handshakes.len()
    }

    /// Authenticated sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Connections over that wait for late answers.
    pub fn lingering(&self) -> usize {
        self.lingering.len()
    }

    /// Every connection's handle, with its stage (to stop a server).
    pub fn connections(&self) -> impl Iterator<Item = (&H, Stage)> {
        let handshakes = self
            .handshakes
            .iter()
            .map(|p| (&p.handle, Stage::Handshake));
        let sessions = self.sessions.iter().map(|s| (&s.handle, Stage::Session));
        let lingering = self.lingering.iter().map(|(_, h)| (h, Stage::Lingering));
        handshakes.chain(sessions).chain(lingering)
    }
}

/// Where handshakes are counted per address: an IPv4 address, or the /64
/// of an IPv6 one (an IPv4-mapped IPv6 address counts as its IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    V4(u32),
    V6Prefix(u64),
}

impl Source {
    fn of(address: IpAddr) -> Source {
        match address {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[cfg(test)]
mod served_tests;
#[cfg(test)]
mod tests;
