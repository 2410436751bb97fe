//! The served connection driven by hand with a virtual clock, on plain
//! Modbus/TCP (the rules are the same on TLS; the session tests cover the
//! handshake): what the adapters rely on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_authz::{Policy, Role};
use mbaps_codec::{ExceptionCode, MbapHeader, Request, Response, encode_request};
use mbaps_session::{CloseReason, LateAnswer, Pdu, RequestOutcome, ServerConfig, Timers};
use mbaps_simulator::{RegisterMap, Tables};

use crate::{
    Admission, AdmissionLimits, Answering, Audit, AuditEntry, Handle, LAST_WORDS, LATE_ANSWER_WAIT,
    Logger, Order, Orders, Seat, Served, SessionActivity, SessionLog, SessionReport, Table, lock,
};

const POLICY: &str = r#"
[roles.operator]
allow = [{ functions = ["read", "write"] }]
"#;

#[derive(Debug, Default)]
struct Conn(Orders);

impl Handle for Conn {
    fn peer(&self) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], 40000))
    }
    fn orders(&self) -> &Orders {
        &self.0
    }
    fn order(&self, order: Order) {
        self.0.give(order);
    }
}

fn epoch() -> Instant {
    #[allow(clippy::disallowed_methods)] // the tests own their clock: this is its zero
    Instant::now()
}

/// What a served connection reported: audit entries and log entries.
#[derive(Default)]
struct Reported {
    audit: Mutex<Vec<AuditEntry>>,
    log: Mutex<Vec<SessionLog>>,
}

impl Reported {
    fn audit(&self) -> Vec<AuditEntry> {
        self.audit.lock().unwrap().clone()
    }

    /// The session ends on the trail, by reason label.
    fn ends(&self) -> Vec<&'static str> {
        self.audit()
            .iter()
            .filter_map(|e| match e {
                AuditEntry::SessionEnded { reason, .. } => Some(reason.label()),
                _ => None,
            })
            .collect()
    }

    fn records(&self) -> Vec<mbaps_session::RequestRecord> {
        self.audit()
            .into_iter()
            .filter_map(|e| match e {
                AuditEntry::Request { record, .. } => Some(record),
                _ => None,
            })
            .collect()
    }
}

struct Bench {
    table: Table<Arc<Conn>>,
    conn: Arc<Conn>,
    reported: Arc<Reported>,
    now: Instant,
    served: Served<Arc<Conn>>,
    /// Everything the connection wrote.
    wire: Vec<u8>,
}

impl Bench {
    fn new(answering: Answering) -> Bench {
        let now = epoch();
        let policy = Policy::from_toml(POLICY).unwrap();
        let role = Some(Role::new("operator").unwrap());
        let config = ServerConfig::plain(policy, role)
            .timers(Timers::default())
            .build()
            .unwrap();
        let limits = AdmissionLimits::default();
        let table: Table<Arc<Conn>> = Arc::new(Mutex::new(Admission::new(limits, now)));
        let conn = Arc::new(Conn::default());
        let reported = Arc::new(Reported::default());
        let (audit, log) = (Arc::clone(&reported), Arc::clone(&reported));
        let logger: Logger = Arc::new(move |entry| log.log.lock().unwrap().push(entry.clone()));
        let report = SessionReport::new(
            conn.peer(),
            SocketAddr::from(([192, 0, 2, 1], 502)),
            Some(Audit::new(Arc::new(move |entry| {
                audit.audit.lock().unwrap().push(entry.clone())
            }))),
            logger,
        );
        let seat = Seat::take(
            &table,
            now,
            conn.peer().ip(),
            false,
            Arc::clone(&conn),
            |_| {},
        );
        let served = Served::new(&config, seat, report, answering, WRITE_TIMEOUT, now).unwrap();
        served.running();
        Bench {
            table,
            conn,
            reported,
            now,
            served,
            wire: Vec::new(),
        }
    }

    fn now_answering() -> Bench {
        Bench::new(Answering::Now(Arc::new(RegisterMap::new(Tables::preset()))))
    }

    fn later() -> Bench {
        Bench::new(Answering::Later)
    }

    fn send(&mut self, transaction_id: u16, request: &Request<'_>) {
        let mut adu = [0u8; 260];
        let header = MbapHeader {
            transaction_id,
            unit_id: 1,
        };
        let n = encode_request(header, request, &mut adu).unwrap();
        self.served.handle_read(self.now, &adu[..n]);
    }

    /// Writes what the connection gives, all of it taken by the peer.
    fn flush(&mut self) {
        loop {
            let mut out = Vec::new();
            if self.served.poll_transmit(self.now, &mut out) == 0 {
                return;
            }
            self.wire.extend_from_slice(&out);
            self.served.handle_written(self.now, true);
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.served.handle_timeout(self.now);
    }

    fn activity(&self) -> SessionActivity {
        self.served.seat.activity.get()
    }

    fn seated(&self) -> (usize, usize) {
        let table = lock(&self.table);
        (table.handshakes(), table.sessions())
    }
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const READ: Request<'static> = Request::ReadHoldingRegisters {
    address: 1,
    quantity: 2,
};

const WRITE: Request<'static> = Request::WriteSingleRegister {
    address: 7,
    value: 42,
};

#[test]
fn a_plain_client_is_seated_by_its_first_request_answered_and_then_idle() {
    let mut bench = Bench::now_answering();
    assert_eq!(bench.seated(), (1, 0), "a pending handshake until it asks");
    assert_eq!(bench.activity(), SessionActivity::Busy);
    bench.send(1, &READ);
    assert_eq!(bench.seated(), (0, 1));
    bench.flush();
    assert_eq!(bench.wire.len(), 7 + 2 + 4, "one answer of two registers");
    assert_eq!(
        bench.activity(),
        SessionActivity::Idle { since: bench.now },
        "answered, nothing outstanding: idle since the answer"
    );
    assert!(bench.served.wants_read());
    let starts = bench
        .reported
        .audit()
        .iter()
        .filter(|e| matches!(e, AuditEntry::SessionStarted { .. }))
        .count();
    assert_eq!(starts, 1);
    assert_eq!(bench.reported.records().len(), 1);
}

#[test]
fn stop_answers_what_was_received_then_closes_and_ends_once_as_shutdown() {
    let mut bench = Bench::later();
    bench.send(1, &READ);
    let (id, request) = bench.served.poll_request().unwrap();
    assert_eq!(request.pdu.function(), 0x03);
    bench.conn.order(Order::Stop);
    bench.served.handle_order(bench.now);
    assert!(
        !bench.served.wants_read(),
        "a draining connection reads no more"
    );
    assert!(!bench.served.is_disconnected(), "it waits for the answer");
    let answer = Response::ReadHoldingRegisters {
        values: mbaps_codec::Registers::from_values(&[5, 6]),
    };
    bench
        .served
        .handle_answer(bench.now, id, Ok(Pdu::encode_response(&answer).unwrap()));
    bench.flush();
    assert!(bench.served.is_over());
    assert_eq!(bench.reported.ends(), ["shutdown"]);
    assert_eq!(
        bench.reported.records()[0].outcome,
        RequestOutcome::Response
    );
    assert_eq!(bench.seated(), (0, 0), "the seat is given back");
}

#[test]
fn an_eviction_closes_at_once_and_a_drop_cuts_each_ending_once() {
    for (order, label) in [(Order::Close, "evicted"), (Order::Drop, "dropped")] {
        let mut bench = Bench::now_answering();
        bench.send(1, &READ);
        bench.flush();
        bench.conn.order(order);
        bench.served.handle_order(bench.now);
        bench.flush();
        assert!(bench.served.is_over(), "{label}");
        assert_eq!(bench.reported.ends(), [label]);
        // Later calls change nothing and report nothing more.
        bench.served.handle_eof(bench.now);
        bench.advance(Duration::from_secs(60));
        assert_eq!(bench.reported.ends(), [label]);
        assert_eq!(bench.seated(), (0, 0));
    }
}

#[test]
fn a_peer_that_takes_nothing_is_stalled_then_cut_at_the_write_timeout_not_renewed() {
    let mut bench = Bench::now_answering();
    bench.send(1, &READ);
    let mut out = Vec::new();
    assert!(bench.served.poll_transmit(bench.now, &mut out) > 0);
    let blocked_at = bench.now;
    bench.served.handle_written(bench.now, false);
    assert_eq!(
        bench.activity(),
        SessionActivity::Stalled { since: blocked_at }
    );
    assert!(
        !bench.served.wants_read(),
        "a peer that does not read is not read from"
    );
    // Taking nothing again later does not move the deadline.
    bench.now += Duration::from_secs(4);
    bench.served.handle_written(bench.now, false);
    assert_eq!(
        bench.served.poll_timeout(),
        Some(blocked_at + WRITE_TIMEOUT)
    );
    bench.now = blocked_at + WRITE_TIMEOUT;
    bench.served.handle_timeout(bench.now);
    assert!(bench.served.is_over());
    assert_eq!(bench.reported.ends(), ["write_timeout"]);
}

#[test]
fn the_last_words_of_a_closing_session_wait_one_second_at_most() {
    let mut bench = Bench::now_answering();
    bench.send(1, &READ);
    bench.flush();
    bench.conn.order(Order::Close);
    bench.served.handle_order(bench.now);
    let mut out = Vec::new();
    // Plain Modbus/TCP closes at once: nothing is owed, it is over.
    let _ = bench.served.poll_transmit(bench.now, &mut out);
    assert!(bench.served.is_over());
    // A session whose answer is stuck when it must close: one second.
    let mut bench = Bench::now_answering();
    bench.send(1, &READ);
    let mut out = Vec::new();
    bench.served.poll_transmit(bench.now, &mut out);
    bench.served.handle_written(bench.now, false);
    bench.conn.order(Order::Stop);
    bench.served.handle_order(bench.now);
    assert_eq!(bench.served.poll_timeout(), Some(bench.now + LAST_WORDS));
}

#[test]
fn a_request_whose_session_ended_is_recorded_with_the_late_answer_then_the_end() {
    let mut bench = Bench::later();
    bench.send(1, &WRITE);
    let (id, _) = bench.served.poll_request().unwrap();
    // The client goes away while its write is with the application.
    bench.served.handle_eof(bench.now);
    assert!(bench.served.is_disconnected(), "the connection is over");
    assert!(!bench.served.is_over(), "its record waits for the answer");
    assert_eq!(bench.seated(), (0, 0), "the seat is given back at once");
    assert!(
        bench.reported.ends().is_empty(),
        "the end follows the record"
    );
    bench.now += Duration::from_millis(20);
    let done = Response::WriteSingleRegister {
        address: 7,
        value: 42,
    };
    bench
        .served
        .handle_answer(bench.now, id, Ok(Pdu::encode_response(&done).unwrap()));
    assert!(bench.served.is_over());
    let records = bench.reported.records();
    assert_eq!(
        records[0].outcome,
        RequestOutcome::Abandoned {
            late: Some(LateAnswer::Response)
        }
    );
    assert_eq!(records[0].answered, bench.now);
    let entries = bench.reported.audit();
    assert!(
        matches!(
            entries.last(),
            Some(AuditEntry::SessionEnded {
                reason: CloseReason::PeerClosed,
                ..
            })
        ),
        "{entries:#?}"
    );
    // And it went to the log: an abandoned write matters.
    let logged = bench.reported.log.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|e| e.to_string().contains("answered late: response"))
    );
}

#[test]
fn late_answers_are_waited_for_a_bounded_time_then_recorded_as_never_answered() {
    let mut bench = Bench::later();
    bench.send(1, &WRITE);
    bench.send(2, &READ);
    assert_eq!(
        bench.served.poll_request().map(|(_, r)| r.transaction_id),
        Some(1)
    );
    assert_eq!(
        bench.served.poll_request().map(|(_, r)| r.transaction_id),
        Some(2)
    );
    bench.served.handle_eof(bench.now);
    assert_eq!(
        bench.served.poll_timeout(),
        Some(bench.now + LATE_ANSWER_WAIT)
    );
    bench.advance(LATE_ANSWER_WAIT);
    assert!(bench.served.is_over());
    let records = bench.reported.records();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == RequestOutcome::Abandoned { late: None })
    );
    assert_eq!(
        bench.reported.ends(),
        ["peer_closed"],
        "plain Modbus/TCP closes by its stream"
    );
}

#[test]
fn a_served_connection_dropped_half_way_reports_its_end_and_gives_its_seat_back() {
    let bench = Bench::later();
    let (table, reported) = (Arc::clone(&bench.table), Arc::clone(&bench.reported));
    let mut bench = bench;
    bench.send(1, &WRITE);
    assert_eq!(bench.seated(), (0, 1));
    drop(bench);
    assert_eq!(reported.ends(), ["dropped"]);
    assert_eq!(
        reported.records()[0].outcome,
        RequestOutcome::Abandoned { late: None }
    );
    let table = lock(&table);
    assert_eq!((table.handshakes(), table.sessions()), (0, 0));
}

#[test]
fn a_handler_answer_that_does_not_fit_is_answered_0x04() {
    let mut bench = Bench::later();
    bench.send(1, &READ);
    let (id, _) = bench.served.poll_request().unwrap();
    bench
        .served
        .handle_answer(bench.now, id, Err(ExceptionCode::IllegalDataAddress));
    bench.flush();
    assert_eq!(&bench.wire[7..], [0x83, 0x02]);
    bench.send(2, &READ);
    let (id, _) = bench.served.poll_request().unwrap();
    let other = Response::WriteSingleRegister {
        address: 1,
        value: 1,
    };
    bench
        .served
        .handle_answer(bench.now, id, Ok(Pdu::encode_response(&other).unwrap()));
    bench.wire.clear();
    bench.flush();
    assert_eq!(&bench.wire[7..], [0x83, 0x04]);
}

#[test]
fn input_beyond_the_window_is_kept_and_taken_as_slots_free() {
    let mut bench = Bench::later();
    // Forty requests in one read: the window (16) takes sixteen.
    let mut bytes = Vec::new();
    for txn in 0..40u16 {
        let mut adu = [0u8; 12];
        let header = MbapHeader {
            transaction_id: txn,
            unit_id: 1,
        };
        let n = encode_request(header, &READ, &mut adu).unwrap();
        bytes.extend_from_slice(&adu[..n]);
    }
    bench.served.handle_read(bench.now, &bytes);
    assert!(
        !bench.served.wants_read(),
        "the rest waits: no more is read"
    );
    let answer = Pdu::encode_response(&Response::ReadHoldingRegisters {
        values: mbaps_codec::Registers::from_values(&[0, 0]),
    })
    .unwrap();
    let mut answered = 0;
    while let Some((id, _)) = bench.served.poll_request() {
        bench.served.handle_answer(bench.now, id, Ok(answer));
        bench.flush();
        answered += 1;
    }
    assert_eq!(answered, 40);
    assert!(bench.served.wants_read());
}

#[test]
fn requests_handed_out_but_never_taken_are_given_up_at_once_without_lingering() {
    let mut bench = Bench::later();
    bench.send(1, &WRITE);
    // The adapter has not taken the request when the client goes.
    bench.served.handle_eof(bench.now);
    assert!(bench.served.is_over(), "nothing is with the application");
    assert_eq!(
        bench.reported.records()[0].outcome,
        RequestOutcome::Abandoned { late: None }
    );
    assert_eq!(bench.reported.ends(), ["peer_closed"]);
    assert_eq!(bench.seated(), (0, 0));
}

#[test]
fn lingering_connections_are_bounded_and_a_stopping_server_gives_up_their_answers() {
    let now = epoch();
    let limits = AdmissionLimits {
        max_sessions: 1,
        ..AdmissionLimits::default()
    };
    let mut admission: Admission<&'static str> = Admission::new(limits, now);
    let first = admission.connect(now, "192.0.2.1".parse().unwrap(), false, "first");
    let second = admission.connect(now, "192.0.2.2".parse().unwrap(), false, "second");
    assert!(admission.linger(first.id));
    assert!(!admission.linger(second.id), "one lingering at most");
    assert_eq!((admission.handshakes(), admission.lingering()), (0, 1));
    admission.closed(first.id);
    assert_eq!(admission.lingering(), 0);

    // A lingering connection ordered to drop gives its late answers up.
    let mut bench = Bench::later();
    bench.send(1, &WRITE);
    let _ = bench.served.poll_request().unwrap();
    bench.served.handle_eof(bench.now);
    assert!(!bench.served.is_over());
    assert_eq!(lock(&bench.table).lingering(), 1);
    bench.conn.order(Order::Stop);
    bench.served.handle_order(bench.now);
    assert!(!bench.served.is_over(), "a stop waits for the answer");
    bench.conn.order(Order::Drop);
    bench.served.handle_order(bench.now);
    assert!(bench.served.is_over());
    assert_eq!(
        bench.reported.records()[0].outcome,
        RequestOutcome::Abandoned { late: None }
    );
    assert_eq!(lock(&bench.table).lingering(), 0);
}

#[test]
fn a_stop_given_before_requests_are_read_still_answers_them_then_closes() {
    let mut bench = Bench::now_answering();
    bench.send(1, &READ);
    bench.flush();
    bench.wire.clear();
    // The stop comes while two more requests are on their way in.
    bench.conn.order(Order::Stop);
    let mut bytes = Vec::new();
    for transaction_id in [2u16, 3] {
        let mut adu = [0u8; 12];
        let header = MbapHeader {
            transaction_id,
            unit_id: 1,
        };
        let n = encode_request(header, &READ, &mut adu).unwrap();
        bytes.extend_from_slice(&adu[..n]);
    }
    bench.served.handle_read(bench.now, &bytes);
    bench.flush();
    assert_eq!(bench.wire.len(), 2 * 13, "both answered: {:?}", bench.wire);
    assert!(bench.served.is_over());
    assert_eq!(bench.reported.ends(), ["shutdown"]);
    assert_eq!(bench.reported.records().len(), 3);
}

#[test]
fn a_session_has_both_its_start_and_its_end_on_the_trail_or_neither_whenever_an_order_comes() {
    for (order, label) in [
        (Order::Close, "evicted"),
        (Order::Stop, "shutdown"),
        (Order::Drop, "dropped"),
    ] {
        let starts = |bench: &Bench| {
            bench
                .reported
                .audit()
                .iter()
                .filter(|e| matches!(e, AuditEntry::SessionStarted { .. }))
                .count()
        };
        // Ordered before its first request is read: it never starts.
        let mut bench = Bench::now_answering();
        bench.conn.order(order);
        bench.send(1, &READ);
        bench.flush();
        assert!(bench.served.is_over(), "{label}");
        assert_eq!((starts(&bench), bench.reported.ends().len()), (0, 0));
        assert_eq!(bench.seated(), (0, 0));
        // Ordered once established: its start and its end.
        let mut bench = Bench::now_answering();
        bench.send(1, &READ);
        bench.conn.order(order);
        bench.served.handle_order(bench.now);
        bench.flush();
        assert!(bench.served.is_over(), "{label}");
        assert_eq!((starts(&bench), bench.reported.ends()), (1, vec![label]));
    }
}
