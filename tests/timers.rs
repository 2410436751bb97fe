//! The server's idle timer over real sockets, on both servers: it closes
//! a silent authenticated session, traffic restarts it, and a request
//! the application is still answering holds it off.
#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Adapter, Bounds, Running, SlowAt999, SlowLaterAt999, ca, chain, key, localhost, log_sink, pki,
    policy, role_config, start, start_later,
};
use mbaps_admission::SessionLog;
use mbaps_session::{CloseReason, ServerConfig, ServerEvent, Timers};
use mbaps_std::Calls;
use mbaps_std::StdClient;

const IDLE: Duration = Duration::from_millis(300);

/// The servers' configuration: the idle timeout is [`IDLE`].
fn config() -> ServerConfig {
    let server = &pki().server;
    ServerConfig::builder(ca(pki()), chain(server), key(server), policy())
        .timers(Timers {
            idle_timeout: Some(IDLE),
            ..Timers::default()
        })
        .build()
        .unwrap()
}

fn server(adapter: Adapter) -> (Running, Arc<Mutex<Vec<SessionLog>>>) {
    let (log, sink) = log_sink();
    let handler = SlowAt999::new(IDLE * 5 / 2);
    (start(adapter, config(), handler, sink), log)
}

fn idle_closes(log: &Mutex<Vec<SessionLog>>) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                SessionLog::Event {
                    event: ServerEvent::Closed(CloseReason::IdleTimeout),
                    ..
                }
            )
        })
        .count()
}

/// Waits (ten idle timeouts at most) until `count` sessions were closed
/// for being idle.
fn wait_until_idle_closes(log: &Mutex<Vec<SessionLog>>, count: usize) {
    let deadline = Instant::now() + IDLE * 10;
    while idle_closes(log) < count {
        assert!(Instant::now() < deadline, "never closed for being idle");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_idle_timeout_closes_a_silent_session() {
    for adapter in [Adapter::Std, Adapter::Tokio] {
        let (running, log) = server(adapter);
        let mut client =
            StdClient::connect(running.address, &role_config("viewer"), localhost()).unwrap();
        client.read_holding_registers(1, 1, 1).unwrap();
        let quiet = Instant::now();
        wait_until_idle_closes(&log, 1);
        assert!(quiet.elapsed() >= IDLE, "{adapter:?}: closed early");
        assert!(
            client.read_holding_registers(1, 1, 1).is_err(),
            "{adapter:?}"
        );
        running.stop();
    }
}

#[test]
fn traffic_restarts_the_idle_timer() {
    for adapter in [Adapter::Std, Adapter::Tokio] {
        let (running, log) = server(adapter);
        let mut client =
            StdClient::connect(running.address, &role_config("viewer"), localhost()).unwrap();
        // Four idle timeouts' worth of a request every half timeout.
        for i in 0..8 {
            assert_eq!(
                client.read_holding_registers(1, i, 1).unwrap(),
                [i],
                "{adapter:?}"
            );
            std::thread::sleep(IDLE / 2);
        }
        assert_eq!(idle_closes(&log), 0, "{adapter:?}");
        running.stop();
    }
}

#[test]
fn a_request_the_application_is_answering_holds_the_idle_timer_off() {
    // The std server's synchronous handler, and the tokio server's async
    // one (a synchronous handler that sleeps would hold a runtime worker).
    for adapter in [Adapter::Std, Adapter::Tokio] {
        let (running, log) = match adapter {
            Adapter::Std => server(Adapter::Std),
            Adapter::Tokio => {
                let (log, sink) = log_sink();
                let handler = SlowLaterAt999 { slow: IDLE * 5 / 2 };
                (start_later(config(), handler, sink, Bounds::default()), log)
            }
        };
        let mut client =
            StdClient::connect(running.address, &role_config("viewer"), localhost()).unwrap();
        client.set_request_timeout(IDLE * 10);
        assert_eq!(
            client.read_holding_registers(1, 999, 1).unwrap(),
            [999],
            "{adapter:?}"
        );
        assert_eq!(idle_closes(&log), 0, "{adapter:?}");
        // And it starts again after the answer.
        assert_eq!(client.read_holding_registers(1, 3, 1).unwrap(), [3]);
        wait_until_idle_closes(&log, 1);
        running.stop();
    }
}
