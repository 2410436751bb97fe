//! Every duration has a floor of 1 ms: a timeout of 1e-10 s (zero once
//! converted) is refused by name instead of expiring at once, in the
//! server's, the client's, the plain and the upstream configurations.

mod common;

use std::time::Duration;

use common::*;
use mbaps_session::upstream::{LimitError, UpstreamLimits};
use mbaps_session::{ClientConfig, ConfigError, MIN_TIMEOUT, ServerConfig, Timers};

fn refused(result: Result<impl std::fmt::Debug, ConfigError>, named: &str) {
    match result {
        Err(ConfigError::Option { option, limit, .. }) => {
            assert_eq!(option, named);
            assert_eq!(limit, "at least 1 ms and at most a day");
        }
        other => panic!("{named}: {other:?}"),
    }
}

#[test]
fn timers_below_one_millisecond_are_refused_by_name() {
    let tiny = Duration::from_secs_f64(1e-10);
    assert_eq!(
        tiny,
        Duration::ZERO,
        "what the CLI and file would have made"
    );
    let handshake = Timers {
        handshake_timeout: tiny,
        ..Timers::default()
    };
    refused(
        server_builder().timers(handshake).build(),
        "handshake_timeout",
    );
    refused(
        ServerConfig::plain(example_policy(), None)
            .timers(handshake)
            .build(),
        "handshake_timeout",
    );
    let idle = Timers {
        idle_timeout: Some(Duration::from_micros(999)),
        ..Timers::default()
    };
    refused(server_builder().timers(idle).build(), "idle_timeout");
    let close = Timers {
        close_timeout: Duration::ZERO,
        ..Timers::default()
    };
    refused(
        client_builder("operator").timers(close).build(),
        "close_timeout",
    );
    refused(
        ClientConfig::plain()
            .request_timeout(Duration::ZERO)
            .build(),
        "request_timeout",
    );
    // The floor itself, and no idle timeout at all, are accepted.
    let floor = Timers {
        handshake_timeout: MIN_TIMEOUT,
        close_timeout: MIN_TIMEOUT,
        idle_timeout: None,
    };
    assert!(server_builder().timers(floor).build().is_ok());
    let error = server_builder().timers(handshake).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "handshake_timeout is 0ns, but must be at least 1 ms and at most a day"
    );
}

#[test]
fn upstream_timers_below_one_millisecond_are_refused() {
    let limits = UpstreamLimits {
        timeout: Duration::from_micros(10),
        ..UpstreamLimits::default()
    };
    assert_eq!(
        limits.validate(),
        Err(LimitError::Timeout(Duration::from_micros(10)))
    );
    let limits = UpstreamLimits {
        initial_backoff: Duration::ZERO,
        ..UpstreamLimits::default()
    };
    assert!(matches!(limits.validate(), Err(LimitError::Backoff { .. })));
    assert!(UpstreamLimits::default().validate().is_ok());
}
