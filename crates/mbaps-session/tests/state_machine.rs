//! Random runs of a client/server pair, with the invariants a user relies
//! on checked at every step:
//!
//! - every client request ends in exactly one outcome (response, invalid,
//!   timeout or abort), and no transaction id is reused while outstanding;
//! - a response is the one the server sent for that transaction id: an
//!   answer from the application for an allowed request, exception 0x01
//!   for a denied one; `Invalid` never comes (this server sends nothing
//!   invalid);
//! - a denied request never reaches the application, and is reported;
//! - each server request is answered at most once, and nothing is reported
//!   after a session's `Closed`;
//! - a session fails only for a reason the run gave it: garbage in its
//!   stream, its peer's alert, or a handshake that the run let time out.
//!
//! Each case draws the TLS versions (both, 1.2 only, 1.3 only), the
//! client's role (operator, viewer, none), the server's window, and
//! whether the handshake is driven to its end first; then up to 80
//! operations: send, answer, deliver k bytes or whole flights either way
//! (records split anywhere), advance the clock, close either side, end
//! either side's stream (mid-handshake too), inject garbage. Most cases
//! reach the open session; the run counts how many, and how often the
//! paths after the handshake are taken, and fails if that is rare
//! (`MBAPS_STATE_MACHINE_CASES` sets the case count; CI runs the default).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::{
    Client, ClientConfig, ClientEvent, CloseReason, Recording, RequestId, RequestOutcome,
    RequestRecord, Server, ServerConfig, ServerEvent, SessionError, TlsVersions, Verdict,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const ROLES: [&str; 3] = ["operator", "viewer", "no-role"];
const VERSIONS: [TlsVersions; 3] = [
    TlsVersions::Both,
    TlsVersions::Tls12Only,
    TlsVersions::Tls13Only,
];
/// The client's window; the server's is this or smaller (push back).
const CLIENT_WINDOW: usize = 8;
const SERVER_WINDOWS: [usize; 2] = [3, 16];

fn server_config(versions: usize, window: usize) -> &'static ServerConfig {
    static CONFIGS: OnceLock<Vec<ServerConfig>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        VERSIONS
            .iter()
            .flat_map(|v| {
                SERVER_WINDOWS.iter().map(|w| {
                    server_builder()
                        .versions(*v)
                        .max_outstanding(*w)
                        .build()
                        .unwrap()
                })
            })
            .collect()
    });
    &configs[versions * SERVER_WINDOWS.len() + window]
}

fn client_config(role: usize) -> &'static ClientConfig {
    static CONFIGS: OnceLock<Vec<ClientConfig>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        ROLES
            .iter()
            .map(|name| {
                client_builder(name)
                    .max_outstanding(CLIENT_WINDOW)
                    .build()
                    .unwrap()
            })
            .collect()
    });
    &configs[role]
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Server,
    Client,
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        read: bool,
        quantity: u16,
    },
    Answer {
        which: usize,
    },
    /// Deliver up to `bytes` of what is queued for a side.
    Deliver {
        to: Side,
        bytes: usize,
    },
    /// Deliver everything queued for a side (whole flights).
    Flush {
        to: Side,
    },
    Advance {
        millis: u64,
    },
    Close {
        side: Side,
    },
    /// The side's peer closed its socket: the side reads EOF.
    Eof {
        to: Side,
    },
    /// Bytes no peer sent, in the middle of a side's stream.
    Garbage {
        to: Side,
        bytes: Vec<u8>,
    },
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Server), Just(Side::Client)]
}

/// The operations of a session's life.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1..=20u16).prop_map(|(read, quantity)| Op::Send { read, quantity }),
        5 => (0..8usize).prop_map(|which| Op::Answer { which }),
        6 => (side(), 1..400usize).prop_map(|(to, bytes)| Op::Deliver { to, bytes }),
        4 => side().prop_map(|to| Op::Flush { to }),
        2 => (0..3000u64).prop_map(|millis| Op::Advance { millis }),
    ]
}

/// The operations that end it: at most one per case, anywhere.
fn ending() -> impl Strategy<Value = Op> {
    prop_oneof![
        side().prop_map(|side| Op::Close { side }),
        side().prop_map(|to| Op::Eof { to }),
        (side(), proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(to, bytes)| Op::Garbage { to, bytes }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    versions: usize,
    role: usize,
    server_window: usize,
    handshake_first: bool,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..VERSIONS.len(),
        0..ROLES.len(),
        0..SERVER_WINDOWS.len(),
        proptest::bool::weighted(0.6),
        proptest::collection::vec(op(), 1..80),
        proptest::option::weighted(0.5, (ending(), any::<proptest::sample::Index>())),
    )
        .prop_map(
            |(versions, role, server_window, handshake_first, mut ops, ending)| {
                if let Some((op, at)) = ending {
                    let at = at.index(ops.len() + 1);
                    ops.insert(at, op);
                }
                Case {
                    versions,
                    role,
                    server_window,
                    handshake_first,
                    ops,
                }
            },
        )
}

/// One side's connection as the run sees it.
#[derive(Default)]
struct End {
    /// Bytes sent to this side, not yet delivered.
    inbox: Vec<u8>,
    /// The side read EOF: nothing more is delivered to it.
    eof: bool,
    /// The side's fatal error.
    failed: Option<SessionError>,
    /// Garbage was delivered to it: it may fail.
    garbled: bool,
    /// It reported `Closed`.
    closed: bool,
}

/// What the client asked, and what it must get.
struct Asked {
    allowed: bool,
    outcomes: usize,
}

/// What a whole run counts, over every case.
#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    opened: usize,
    tls12: usize,
    responses: usize,
    denials: usize,
    split_deliveries_after_open: usize,
    timeouts: usize,
    abandoned: usize,
}

struct World {
    server: Server,
    client: Client,
    now: std::time::Instant,
    role: &'static str,
    to_server: End,
    to_client: End,
    asked: HashMap<u16, Asked>,
    in_flight: HashSet<u16>,
    /// Server requests waiting for the application.
    waiting: Vec<(RequestId, u16, Request<'static>)>,
    answered: HashSet<RequestId>,
    /// What the server sent for each transaction id.
    sent: HashMap<u16, Vec<u8>>,
    /// The transaction ids of reads (the others are writes).
    reads: HashSet<u16>,
    /// The server's record of each request, by transaction id.
    recorded: HashMap<u16, RequestRecord>,
    /// The requests the server handed to the application.
    handed_out: HashSet<u16>,
    /// The requests the client got a response to.
    responded: HashSet<u16>,
    close_called: bool,
    tally: Tally,
}

impl World {
    fn new(case: &Case) -> World {
        let now = virtual_epoch();
        let server = server_config(case.versions, case.server_window);
        World {
            server: {
                let mut server = Server::new(server, now).unwrap();
                server.record(Recording::Every);
                server
            },
            client: Client::new(client_config(case.role), localhost(), now).unwrap(),
            now,
            role: ROLES[case.role],
            to_server: End::default(),
            to_client: End::default(),
            asked: HashMap::new(),
            in_flight: HashSet::new(),
            waiting: Vec::new(),
            answered: HashSet::new(),
            sent: HashMap::new(),
            reads: HashSet::new(),
            recorded: HashMap::new(),
            handed_out: HashSet::new(),
            responded: HashSet::new(),
            close_called: false,
            tally: Tally::default(),
        }
    }

    fn end(&mut self, side: Side) -> &mut End {
        match side {
            Side::Server => &mut self.to_server,
            Side::Client => &mut self.to_client,
        }
    }

    /// A fatal error of `side`: allowed only for a reason the run gave.
    fn failed(&mut self, side: Side, error: SessionError) {
        let (end, peer) = match side {
            Side::Server => (&self.to_server, &self.to_client),
            Side::Client => (&self.to_client, &self.to_server),
        };
        let explained = end.garbled
            || peer.failed.is_some()
            || peer.garbled
            || matches!(error, SessionError::HandshakeTimeout(_));
        assert!(explained, "{side:?} failed for no reason: {error}");
        assert!(end.failed.is_none(), "{side:?}: the end reported twice");
        self.end(side).failed = Some(error);
    }

    fn transmit(&mut self) {
        self.client.poll_transmit(&mut self.to_server.inbox);
        self.server.poll_transmit(&mut self.to_client.inbox);
    }

    fn drain(&mut self) {
        while let Some(event) = self.client.poll_event() {
            assert!(
                !self.to_client.closed,
                "client event after Closed: {event:?}"
            );
            match event {
                ClientEvent::Response {
                    transaction_id,
                    pdu,
                    ..
                } => {
                    let sent = self.sent.get(&transaction_id);
                    assert_eq!(
                        Some(pdu.as_bytes()),
                        sent.map(Vec::as_slice),
                        "the response to {transaction_id} is not the one sent"
                    );
                    self.outcome(transaction_id);
                    self.responded.insert(transaction_id);
                    self.tally.responses += 1;
                }
                ClientEvent::Invalid {
                    transaction_id,
                    error,
                } => panic!("{transaction_id}: a valid response reported invalid: {error:?}"),
                ClientEvent::Timeout { transaction_id } => {
                    self.outcome(transaction_id);
                    self.tally.timeouts += 1;
                }
                ClientEvent::Aborted { transaction_id, .. } => self.outcome(transaction_id),
                ClientEvent::Closed(reason) => {
                    self.to_client.closed = true;
                    if let CloseReason::Failed(error) = reason {
                        self.failed(Side::Client, error);
                    }
                }
                ClientEvent::Connected(_) | ClientEvent::Dropped { .. } => {}
            }
        }
        while let Some(event) = self.server.poll_event() {
            assert!(
                !self.to_server.closed,
                "server event after Closed: {event:?}"
            );
            if std::env::var_os("SM_DEBUG").is_some() {
                eprintln!("server: {event:?}");
            }
            match event {
                ServerEvent::Request { id, header, pdu } => {
                    let txn = header.transaction_id;
                    let asked = self.asked.get(&txn).expect("a request nobody sent");
                    assert!(
                        asked.allowed,
                        "{txn}: a denied request reached the application"
                    );
                    let request = match pdu.request().unwrap() {
                        Request::ReadHoldingRegisters { address, quantity } => {
                            Request::ReadHoldingRegisters { address, quantity }
                        }
                        Request::WriteSingleRegister { address, value } => {
                            Request::WriteSingleRegister { address, value }
                        }
                        other => panic!("not sent: {other:?}"),
                    };
                    self.waiting.push((id, txn, request));
                    self.handed_out.insert(txn);
                }
                ServerEvent::Answered(record) => {
                    let txn = record.header.transaction_id;
                    let asked = self
                        .asked
                        .get(&txn)
                        .expect("a record of a request nobody sent");
                    match record.verdict {
                        Verdict::Allowed => {
                            assert!(asked.allowed, "{txn}: recorded allowed, the policy denies");
                            assert!(self.handed_out.contains(&txn), "{txn}: never handed out");
                        }
                        Verdict::Denied(_) => {
                            assert!(!asked.allowed, "{txn}: an allowed request was denied");
                            assert_eq!(
                                record.outcome,
                                RequestOutcome::Exception(ExceptionCode::IllegalFunction)
                            );
                            // The session answered 0x01 itself: that is what it sent.
                            let function = if self.is_read(txn) { 0x83 } else { 0x86 };
                            self.sent.insert(txn, vec![function, 0x01]);
                            self.tally.denials += 1;
                        }
                        Verdict::Rejected(why) => {
                            panic!("{txn}: a valid request rejected: {why:?}")
                        }
                    }
                    // The "no-role" certificate carries none: the NULL role.
                    let role = Some(self.role).filter(|r| *r != "no-role");
                    assert_eq!(record.role.as_ref().map(|r| r.as_str()), role);
                    assert!(record.answered >= record.arrived);
                    if matches!(record.outcome, RequestOutcome::Abandoned { .. }) {
                        self.tally.abandoned += 1;
                    }
                    let again = self.recorded.insert(txn, record);
                    assert!(again.is_none(), "{txn}: recorded twice");
                }
                ServerEvent::Closed(reason) => {
                    self.to_server.closed = true;
                    self.waiting.clear();
                    if let CloseReason::Failed(error) = reason {
                        self.failed(Side::Server, error);
                    }
                }
                ServerEvent::Authenticated { handshake, .. } => {
                    if handshake.is_some_and(|h| {
                        h.version == mbaps_session::rustls::ProtocolVersion::TLSv1_2
                    }) {
                        self.tally.tls12 += 1;
                    }
                }
                other => panic!("not expected here: {other:?}"),
            }
        }
        self.transmit();
    }

    fn is_read(&self, txn: u16) -> bool {
        self.reads.contains(&txn)
    }

    fn outcome(&mut self, txn: u16) {
        assert!(
            self.in_flight.remove(&txn),
            "an outcome for {txn}, which is not in flight"
        );
        self.asked.get_mut(&txn).unwrap().outcomes += 1;
    }

    fn is_closed(&self, side: Side) -> bool {
        match side {
            Side::Server => self.server.is_closed(),
            Side::Client => self.client.is_closed(),
        }
    }

    /// Delivers up to `n` queued bytes to `to` (what it takes).
    fn deliver(&mut self, to: Side, n: usize) {
        if self.end(to).eof || self.is_closed(to) {
            self.end(to).inbox.clear();
            return;
        }
        let end = self.end(to);
        let n = n.min(end.inbox.len());
        if n == 0 {
            return;
        }
        let bytes: Vec<u8> = end.inbox[..n].to_vec();
        let open = self.server.is_authenticated() && self.client.is_connected();
        let taken = match to {
            Side::Server => self.server.handle_tls(self.now, &bytes),
            Side::Client => {
                self.client.handle_tls(self.now, &bytes);
                n
            }
        };
        self.end(to).inbox.drain(..taken);
        if open && n < 400 {
            self.tally.split_deliveries_after_open += 1;
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Send { read, quantity } => self.send(*read, *quantity),
            Op::Answer { which } => self.answer(*which),
            Op::Deliver { to, bytes } => self.deliver(*to, *bytes),
            Op::Flush { to } => self.deliver(*to, usize::MAX),
            Op::Advance { millis } => {
                self.now += Duration::from_millis(*millis);
                // Each side runs its own timers, whatever the other does.
                self.server.handle_timeout(self.now);
                self.client.handle_timeout(self.now);
            }
            Op::Close { side: Side::Client } => {
                self.close_called = true;
                self.client.close(self.now);
            }
            Op::Close { side: Side::Server } => self.server.close(self.now),
            Op::Eof { to } => self.eof(*to),
            Op::Garbage { to, bytes } => {
                if self.end(*to).eof || self.is_closed(*to) {
                    return;
                }
                self.end(*to).garbled = true;
                match to {
                    Side::Server => {
                        self.server.handle_tls(self.now, bytes);
                    }
                    Side::Client => self.client.handle_tls(self.now, bytes),
                }
            }
        }
        self.drain();
    }

    fn eof(&mut self, to: Side) {
        let end = self.end(to);
        if end.eof {
            return;
        }
        end.eof = true;
        end.inbox.clear();
        match to {
            Side::Server => self.server.handle_eof(self.now),
            Side::Client => self.client.handle_eof(self.now),
        }
    }

    fn send(&mut self, read: bool, quantity: u16) {
        let request = if read {
            Request::ReadHoldingRegisters {
                address: 0,
                quantity,
            }
        } else {
            Request::WriteSingleRegister {
                address: quantity,
                value: 1,
            }
        };
        match self.client.send_request(self.now, 1, &request) {
            Ok(txn) => {
                assert!(
                    self.in_flight.insert(txn),
                    "transaction id {txn} reused while outstanding"
                );
                let allowed = self.role == "operator" || (self.role == "viewer" && read);
                self.asked.insert(
                    txn,
                    Asked {
                        allowed,
                        outcomes: 0,
                    },
                );
                if read {
                    self.reads.insert(txn);
                }
            }
            Err(SessionError::TooManyOutstanding(n)) => assert_eq!(n, CLIENT_WINDOW),
            // Refused only once the client closed, or its session ended.
            Err(SessionError::Closed) => {
                assert!(self.close_called || self.client.is_closed())
            }
            Err(error) => {
                assert!(self.client.is_closed(), "{error}");
            }
        }
    }

    fn answer(&mut self, which: usize) {
        if self.waiting.is_empty() {
            return;
        }
        let (id, txn, request) = self.waiting.remove(which % self.waiting.len());
        // Values that say which request they answer.
        let values: Vec<u16> = (0..20).map(|i| txn.wrapping_add(i)).collect();
        let response = match request {
            Request::ReadHoldingRegisters { quantity, .. } => Response::ReadHoldingRegisters {
                values: Registers::from_values(&values[..usize::from(quantity)]),
            },
            Request::WriteSingleRegister { address, value } => {
                Response::WriteSingleRegister { address, value }
            }
            _ => unreachable!(),
        };
        assert!(self.answered.insert(id), "request answered twice");
        match self.server.send_response(self.now, id, &response) {
            Ok(()) => {
                let mut pdu = [0u8; 253];
                let n = response.encode(&mut pdu).unwrap();
                self.sent.insert(txn, pdu[..n].to_vec());
                assert!(
                    self.server.send_response(self.now, id, &response).is_err(),
                    "answered twice"
                );
            }
            // Closed, or failed (its end is its last event).
            Err(error) => assert!(error.is_fatal(), "{error}"),
        }
    }

    /// As adapters end a run: everything delivered, a side whose session
    /// is over closes its socket (the other reads EOF), every deadline
    /// passes.
    fn settle(&mut self) {
        for _ in 0..200 {
            self.transmit();
            self.deliver(Side::Server, usize::MAX);
            self.deliver(Side::Client, usize::MAX);
            // The application answers what is left.
            while !self.waiting.is_empty() {
                self.answer(0);
            }
            self.drain();
            let idle = (self.to_server.inbox.is_empty() || self.to_server.eof)
                && (self.to_client.inbox.is_empty() || self.to_client.eof);
            if idle {
                break;
            }
        }
        if self.server.is_closed() {
            self.eof(Side::Client);
        }
        if self.client.is_closed() {
            self.eof(Side::Server);
        }
        self.drain();
        for _ in 0..3 {
            self.now += Duration::from_secs(11);
            self.server.handle_timeout(self.now);
            self.client.handle_timeout(self.now);
            self.drain();
        }
        // The application answers what it still holds, late if the
        // session is over (a session that ends as its last buffered
        // request is taken hands that one out first): the records come,
        // then the end.
        while !self.waiting.is_empty() {
            while !self.waiting.is_empty() {
                self.answer(0);
            }
            self.drain();
        }
    }
}

/// Runs one case; its counts go to `tally`.
fn run(case: &Case, tally: &mut Tally) -> Result<(), TestCaseError> {
    let mut world = World::new(case);
    world.transmit();
    if case.handshake_first {
        for _ in 0..10 {
            world.apply(&Op::Flush { to: Side::Server });
            world.apply(&Op::Flush { to: Side::Client });
        }
        prop_assert!(
            world.server.is_authenticated(),
            "a clean handshake did not finish"
        );
    }
    for op in &case.ops {
        world.apply(op);
    }
    let opened = world.server.is_authenticated();
    world.settle();
    prop_assert!(
        world.in_flight.is_empty(),
        "still in flight: {:?}",
        world.in_flight
    );
    for (txn, asked) in &world.asked {
        prop_assert_eq!(
            asked.outcomes,
            1,
            "request {} got {} outcomes",
            txn,
            asked.outcomes
        );
    }
    // Every request handed out has its one record, answered or abandoned,
    // or is still with the application of a session that is open; every
    // response the client got was recorded as sent.
    let unrecorded = world
        .handed_out
        .iter()
        .filter(|txn| !world.recorded.contains_key(txn))
        .count();
    prop_assert_eq!(unrecorded, world.server.outstanding());
    prop_assert!(unrecorded == 0 || !world.server.is_closed());
    // An ended session reports its end, after the records of the requests
    // it abandoned (late answers included).
    prop_assert!(
        !world.server.is_closed() || world.to_server.closed,
        "the session ended without its Closed event"
    );
    for txn in &world.responded {
        let record = world.recorded.get(txn);
        prop_assert!(
            record.is_some_and(|r| !matches!(r.outcome, RequestOutcome::Abandoned { .. })),
            "{} was answered but its record says {:?}",
            txn,
            record
        );
    }
    tally.cases += 1;
    tally.opened += usize::from(opened);
    tally.tls12 += world.tally.tls12;
    tally.responses += world.tally.responses;
    tally.denials += world.tally.denials;
    tally.timeouts += world.tally.timeouts;
    tally.abandoned += world.tally.abandoned;
    tally.split_deliveries_after_open += world.tally.split_deliveries_after_open;
    Ok(())
}

#[test]
fn every_request_ends_once_with_the_answer_sent_for_it() {
    let cases = std::env::var("MBAPS_STATE_MACHINE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    runner
        .run(&case(), |case| run(&case, &mut tally.borrow_mut()))
        .unwrap();
    let tally = tally.into_inner();
    println!("{tally:?}");
    // Most cases reach the open session, and the paths after it are
    // taken thousands of times, not rarely.
    assert!(tally.opened * 2 > tally.cases, "{tally:?}");
    assert!(tally.tls12 * 5 > tally.opened, "{tally:?}");
    let per_case = |n: usize| n * 1000 / tally.cases.max(1);
    assert!(per_case(tally.responses) >= 3000, "{tally:?}");
    assert!(
        per_case(tally.split_deliveries_after_open) >= 3000,
        "{tally:?}"
    );
    assert!(per_case(tally.denials) >= 300, "{tally:?}");
    assert!(tally.timeouts > 0, "{tally:?}");
    assert!(tally.abandoned > 0, "{tally:?}");
}
