//! Admission control under attack, on both servers, over real loopback
//! sockets. Each attack runs while the operator's authenticated session is
//! idle, and while a new legitimate client connects; each asserts that the
//! operator's session still answers, that the new client is served within
//! a second, that the server's open sockets (and threads, and memory) stay
//! bounded, and that the log names each refusal. Real sockets keep real
//! time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::attack::{self, Dribblers};
use common::{
    Adapter, Bounds, Running, SlowAt999, SlowLaterAt999, localhost, log_sink, pki, role_config,
    server_config, start_bounded, start_later, wait_for_log,
};
use mbaps_admission::SessionLog;
use mbaps_admission::{AdmissionLimits, EvictionReason, HandshakeBound};
use mbaps_codec::Request;
use mbaps_session::{ClientEvent, CloseReason, ServerEvent};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_std::Calls;
use mbaps_std::StdClient;

const LIMITS: AdmissionLimits = AdmissionLimits {
    max_sessions: 3,
    max_handshakes: 12,
    max_handshakes_per_address: 6,
};

const ADAPTERS: [Adapter; 2] = [Adapter::Std, Adapter::Tokio];

/// A server under attack, with the operator's session open and idle.
struct Scene {
    _alone: std::sync::MutexGuard<'static, ()>,
    adapter: Adapter,
    running: Running,
    log: Arc<Mutex<Vec<SessionLog>>>,
    operator: StdClient,
    threads_before: usize,
    resident_before: usize,
}

/// One test at a time: threads, sockets and memory are the process's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scene {
    fn new(adapter: Adapter, write_timeout: Duration) -> Scene {
        let alone = alone();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        // A client that floods denied requests gets a denial logged per
        // request: keep the rest, or the test's own log is what grows.
        let sink = move |entry: &SessionLog| {
            if !matches!(
                entry,
                SessionLog::Event {
                    event: ServerEvent::Answered(_),
                    ..
                }
            ) {
                kept.lock().unwrap().push(entry.clone());
            }
        };
        let bounds = Bounds {
            limits: LIMITS,
            write_timeout,
        };
        let map = RegisterMap::new(Tables::preset());
        let running = start_bounded(adapter, server_config(pki()), map, sink, bounds);
        let mut operator =
            StdClient::connect(running.address, &role_config("operator"), localhost()).unwrap();
        assert_eq!(operator.read_holding_registers(1, 0, 1).unwrap(), [0]);
        Scene {
            _alone: alone,
            adapter,
            running,
            log,
            operator,
            threads_before: attack::threads(),
            resident_before: attack::resident_kib(),
        }
    }

    /// What every attack must leave standing.
    fn assert_still_serving(&mut self, during: &str) {
        let adapter = self.adapter;
        let started = Instant::now();
        let mut newcomer =
            StdClient::connect(self.running.address, &role_config("viewer"), localhost())
                .unwrap_or_else(|e| panic!("{adapter:?}, {during}: a new client was refused: {e}"));
        assert_eq!(newcomer.read_holding_registers(1, 7, 1).unwrap(), [7]);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{adapter:?}, {during}: the new client waited {took:?}"
        );
        let operator = self.operator.read_holding_registers(1, 3, 1);
        assert!(
            matches!(operator.as_deref(), Ok([3])),
            "{adapter:?}, {during}: the idle operator session answered {operator:?}; the server's log, handshake drops left out: {:#?}",
            self.log()
                .into_iter()
                .filter(|e| !matches!(e, SessionLog::HandshakeDropped { .. }))
                .collect::<Vec<_>>()
        );
        newcomer.close().unwrap();
        self.assert_bounded(during);
    }

    fn assert_bounded(&self, during: &str) {
        let adapter = self.adapter;
        // Every bound, the two clients of the test, and a connection on
        // its way out.
        let most = LIMITS.max_sessions + LIMITS.max_handshakes + 3;
        // Threads: that, and the attack's own.
        let most_threads = most + 4;
        let open = wait_for(|| attack::server_sockets(self.running.address.port()) <= most);
        assert!(
            open,
            "{adapter:?}, {during}: the server holds {} connections, more than {most}",
            attack::server_sockets(self.running.address.port())
        );
        if adapter == Adapter::Std {
            let settled =
                wait_for(|| attack::threads().saturating_sub(self.threads_before) <= most_threads);
            let grown = attack::threads().saturating_sub(self.threads_before);
            assert!(
                settled,
                "{adapter:?}, {during}: {grown} more threads than before"
            );
        }
        // The attackers' sockets are the kernel's; the server's buffers are
        // bounded per connection. 64 MiB is far above what the bounds allow
        // and far below what unbounded buffering of the attacks would take.
        let grown = attack::resident_kib().saturating_sub(self.resident_before);
        assert!(
            grown < 64 * 1024,
            "{adapter:?}, {during}: resident memory grew by {grown} KiB"
        );
    }

    fn log(&self) -> Vec<SessionLog> {
        self.log.lock().unwrap().clone()
    }

    fn stop(self) {
        drop(self.operator);
        self.running.stop();
        drop(self._alone);
    }
}

/// Polls `condition` for up to two seconds.
fn wait_for(condition: impl FnMut() -> bool) -> bool {
    wait_for_at_most(Duration::from_secs(2), condition)
}

/// Polls `condition` for up to `limit`.
fn wait_for_at_most(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dropped(log: &[SessionLog], which: fn(&HandshakeBound) -> bool) -> usize {
    log.iter()
        .filter(|e| matches!(e, SessionLog::HandshakeDropped { bound, .. } if which(bound)))
        .count()
}

#[test]
fn silent_connections_beyond_every_bound_neither_evict_nor_lock_out() {
    for adapter in ADAPTERS {
        let mut scene = Scene::new(adapter, Duration::from_secs(10));
        // Beyond the per-address bound from the legitimate clients' own
        // address, then beyond the global bound from many addresses.
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(attack::connect_from(1, scene.running.address).unwrap());
        }
        held.extend(attack::silent(scene.running.address, 40, 8));
        scene.assert_still_serving("silent connections");
        let log = scene.log();
        assert!(
            dropped(&log, |b| matches!(b, HandshakeBound::Global { max: 12 })) > 0,
            "{adapter:?}: {log:#?}"
        );
        assert!(
            dropped(&log, |b| matches!(b, HandshakeBound::PerAddress { max: 6 })) > 0,
            "{adapter:?}: {log:#?}"
        );
        assert!(
            !log.iter()
                .any(|e| matches!(e, SessionLog::Evicted { .. } | SessionLog::Refused { .. })),
            "{adapter:?}: a stranger closed a session: {log:#?}"
        );
        drop(held);
        scene.stop();
    }
}

#[test]
fn a_hundred_connections_dribbling_a_client_hello_do_not_hold_the_door() {
    for adapter in ADAPTERS {
        let mut scene = Scene::new(adapter, Duration::from_secs(10));
        let dribblers =
            Dribblers::start(scene.running.address, 100, 10, Duration::from_millis(500));
        // Let them dribble a little first.
        std::thread::sleep(Duration::from_millis(600));
        scene.assert_still_serving("dribbled ClientHellos");
        assert!(dribblers.stop() > 0);
        let log = scene.log();
        assert!(
            dropped(&log, |_| true) >= 100 - LIMITS.max_handshakes,
            "{adapter:?}: {log:#?}"
        );
        scene.stop();
    }
}

#[test]
fn a_burst_of_a_thousand_connects_held_open_does_not_delay_a_new_client() {
    // Each held connection is a descriptor of this process.
    let count = 1000.min(attack::open_files_limit().saturating_sub(200) / 2);
    for adapter in ADAPTERS {
        let mut scene = Scene::new(adapter, Duration::from_secs(10));
        let address = scene.running.address;
        let burst = std::thread::spawn(move || attack::silent(address, count, 20));
        // The new client connects while the burst is on its way.
        std::thread::sleep(Duration::from_millis(20));
        scene.assert_still_serving("a burst of connects");
        let held = burst.join().unwrap();
        assert_eq!(held.len(), count);
        scene.assert_bounded("a burst of connects, held");
        assert_eq!(scene.operator.read_holding_registers(1, 4, 1).unwrap(), [4]);
        let log = scene.log();
        assert!(
            dropped(&log, |_| true) >= count - LIMITS.max_handshakes,
            "{adapter:?}: {} drops logged",
            dropped(&log, |_| true)
        );
        drop(held);
        scene.stop();
    }
}

#[test]
fn authenticated_clients_that_never_read_are_closed_before_an_idle_session_and_time_out() {
    let write_timeout = Duration::from_secs(3);
    for adapter in ADAPTERS {
        let mut scene = Scene::new(adapter, write_timeout);
        // Beyond max_sessions; the first with a certificate without a role
        // (its requests are denied: it floods with small answers).
        let flooders: Vec<_> = ["no-role", "viewer", "viewer", "viewer", "viewer"]
            .iter()
            .map(|name| {
                let credential = pki().client(name).unwrap();
                attack::flood_without_reading(scene.running.address, credential)
            })
            .collect();
        scene.assert_still_serving("clients that never read");
        let log = scene.log();
        let stalled = log
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    SessionLog::Evicted {
                        reason: EvictionReason::Stalled { .. },
                        ..
                    }
                )
            })
            .count();
        assert!(stalled >= 3, "{adapter:?}: {log:#?}");
        // The one the newcomer did not evict times out.
        assert!(
            wait_for_at_most(Duration::from_secs(5), || scene.log().iter().any(
                |e| matches!(
                    e,
                    SessionLog::Event {
                        event: ServerEvent::Closed(CloseReason::WriteTimeout(_)),
                        ..
                    }
                )
            )),
            "{adapter:?}: {:#?}",
            scene.log()
        );
        assert!(
            !scene.log().iter().any(|e| matches!(
                e,
                SessionLog::Evicted {
                    reason: EvictionReason::Idle { .. },
                    ..
                }
            )),
            "{adapter:?}: the idle operator was closed for a client that never reads"
        );
        scene.assert_bounded("clients that never read");
        drop(flooders);
        scene.stop();
    }
}

#[test]
fn a_hundred_reads_in_one_write_get_a_hundred_answers_none_busy() {
    use std::io::{Read, Write};
    for adapter in ADAPTERS {
        let scene = Scene::new(adapter, Duration::from_secs(10));
        let config = mbaps_session::ClientConfig::builder(
            common::ca(pki()),
            common::chain(pki().client("viewer").unwrap()),
            common::key(pki().client("viewer").unwrap()),
        )
        .max_outstanding(100)
        .build()
        .unwrap();
        let now = Instant::now;
        let mut client = mbaps_session::Client::new(&config, localhost(), now()).unwrap();
        let mut socket = std::net::TcpStream::connect(scene.running.address).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut pump = |client: &mut mbaps_session::Client, events: &mut Vec<ClientEvent>| {
            let mut out = Vec::new();
            client.poll_transmit(&mut out);
            socket.write_all(&out).unwrap();
            let n = socket.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed the connection");
            client.handle_tls(now(), &buf[..n]);
            while let Some(event) = client.poll_event() {
                events.push(event);
            }
        };
        let mut events = Vec::new();
        while !client.is_connected() {
            pump(&mut client, &mut events);
        }
        let mut sent = Vec::new();
        for i in 0..100u16 {
            let read = Request::ReadHoldingRegisters {
                address: i,
                quantity: 1,
            };
            sent.push(client.send_request(now(), 1, &read).unwrap());
        }
        // One poll_transmit: the hundred requests in one write.
        events.clear();
        while client.in_flight() > 0 {
            pump(&mut client, &mut events);
        }
        let mut answered = Vec::new();
        for event in &events {
            match event {
                ClientEvent::Response {
                    transaction_id,
                    pdu,
                    ..
                } => {
                    let index = sent.iter().position(|t| t == transaction_id).unwrap();
                    // Register n holds n: the answer is the one asked for.
                    let expected = [0x03, 0x02, 0x00, index as u8];
                    assert_eq!(pdu.as_bytes(), expected, "{adapter:?}");
                    answered.push(*transaction_id);
                }
                other => panic!("{adapter:?}: {other:?}"),
            }
        }
        answered.sort_unstable();
        let mut expected = sent.clone();
        expected.sort_unstable();
        assert_eq!(
            answered, expected,
            "{adapter:?}: each answered exactly once"
        );
        scene.stop();
    }
}

/// Answers register 999 slowly, everything else at once.
/// How long the application takes over register 999.
const SLOW: Duration = Duration::from_millis(400);

fn bounded(adapter: Adapter, max_sessions: usize) -> (Running, Arc<Mutex<Vec<SessionLog>>>) {
    let (log, sink) = log_sink();
    let bounds = Bounds {
        limits: AdmissionLimits {
            max_sessions,
            ..AdmissionLimits::default()
        },
        ..Bounds::default()
    };
    let handler = SlowAt999::new(SLOW);
    let running = start_bounded(adapter, server_config(pki()), handler, sink, bounds);
    (running, log)
}

#[test]
fn at_the_bound_a_newly_authenticated_session_closes_the_one_idle_the_longest() {
    let _alone = alone();
    for adapter in ADAPTERS {
        let (running, log) = bounded(adapter, 2);
        let connect = || StdClient::connect(running.address, &role_config("viewer"), localhost());
        let mut first = connect().unwrap();
        let mut second = connect().unwrap();
        // The first is active again: the second is now idle the longest.
        std::thread::sleep(Duration::from_millis(20));
        first.read_holding_registers(1, 0, 1).unwrap();
        let mut third = connect().unwrap();
        assert_eq!(third.read_holding_registers(1, 5, 1).unwrap(), [5]);
        assert_eq!(first.read_holding_registers(1, 6, 1).unwrap(), [6]);
        // The evicted session answers what reached it before it saw the
        // order (a loaded machine may run its thread late), then closes.
        wait_for_log(&log, |entry| {
            matches!(
                entry,
                SessionLog::Event {
                    event: ServerEvent::Closed(_),
                    ..
                }
            )
        });
        assert!(
            second.read_holding_registers(1, 7, 1).is_err(),
            "{adapter:?}"
        );
        running.stop();
        let log = log.lock().unwrap();
        let evicted: Vec<_> = log
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    SessionLog::Evicted {
                        reason: EvictionReason::Idle { .. },
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(evicted.len(), 1, "{adapter:?}: {log:#?}");
    }
}

#[test]
fn at_the_bound_with_every_session_busy_the_newcomer_is_refused() {
    let _alone = alone();
    // A session is busy while its application works on a request: the std
    // server's synchronous handler, the tokio server's async one (a slow
    // synchronous handler there would hold a runtime worker instead).
    for adapter in ADAPTERS {
        let (log, sink) = log_sink();
        let bounds = Bounds {
            limits: AdmissionLimits {
                max_sessions: 1,
                ..AdmissionLimits::default()
            },
            ..Bounds::default()
        };
        let running = match adapter {
            Adapter::Std => {
                let handler = SlowAt999::new(SLOW);
                start_bounded(adapter, server_config(pki()), handler, sink, bounds)
            }
            Adapter::Tokio => {
                let handler = SlowLaterAt999 { slow: SLOW };
                start_later(server_config(pki()), handler, sink, bounds)
            }
        };
        let address = running.address;
        // A request in the application: the only session is busy.
        let slow = std::thread::spawn(move || {
            let mut busy = StdClient::connect(address, &role_config("viewer"), localhost())?;
            busy.read_holding_registers(1, 999, 1)
        });
        std::thread::sleep(Duration::from_millis(150));
        // The newcomer's handshake completes; then the server closes it.
        let refused = StdClient::connect(address, &role_config("viewer"), localhost())
            .and_then(|mut client| client.read_holding_registers(1, 0, 1));
        assert!(refused.is_err(), "{adapter:?}: {refused:?}");
        assert_eq!(slow.join().unwrap().unwrap(), [999], "{adapter:?}");
        running.stop();
        assert!(
            log.lock().unwrap().iter().any(|e| matches!(
                e,
                SessionLog::Refused {
                    max_sessions: 1,
                    ..
                }
            )),
            "{adapter:?}"
        );
    }
}

#[test]
fn stopping_answers_what_was_received_then_closes_on_both_servers() {
    let _alone = alone();
    for adapter in ADAPTERS {
        let (running, log) = bounded(adapter, 4);
        let address = running.address;
        let mut idle = StdClient::connect(address, &role_config("viewer"), localhost()).unwrap();
        idle.read_holding_registers(1, 1, 1).unwrap();
        let slow = std::thread::spawn(move || {
            let mut busy =
                StdClient::connect(address, &role_config("viewer"), localhost()).unwrap();
            let answer = busy.read_holding_registers(1, 999, 1);
            // Then the session is closed.
            (answer, busy.read_holding_registers(1, 0, 1))
        });
        std::thread::sleep(Duration::from_millis(150));
        let started = Instant::now();
        running.stop();
        let (answer, after) = slow.join().unwrap();
        assert_eq!(
            answer.map_err(|e| format!("{adapter:?}: {e}")).unwrap(),
            [999]
        );
        assert!(after.is_err(), "{adapter:?}: {after:?}");
        assert!(idle.read_holding_registers(1, 1, 1).is_err(), "{adapter:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{adapter:?}: stopping took {:?}",
            started.elapsed()
        );
        assert!(
            StdClient::connect(address, &role_config("viewer"), localhost()).is_err(),
            "{adapter:?}: still accepting"
        );
        // Every session ended with our close_notify, answered: the
        // server was stopping.
        let log = log.lock().unwrap();
        let closed = log
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    SessionLog::Event {
                        event: ServerEvent::Closed(CloseReason::Shutdown),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(closed, 2, "{adapter:?}: {log:#?}");
    }
}
