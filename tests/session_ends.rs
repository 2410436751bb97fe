//! Every session's end is on the audit trail exactly once, with a stable
//! reason, however the session ended: a peer's reset in the middle of a
//! request, admission control dropping it, the write timeout. Both server
//! adapters, each with its audit trail.

#![allow(clippy::disallowed_methods)] // real sockets keep real time

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::attack;
use common::{Adapter, Bounds, SlowAt999, Trail, localhost, pki, server_config, start_audited};
use mbaps_admission::{AdmissionLimits, AuditEntry};
use mbaps_codec::Request;
use mbaps_session::{RequestOutcome, Verdict};

const ADAPTERS: [Adapter; 2] = [Adapter::Std, Adapter::Tokio];

/// The trail's session ends, by reason label, once every started session
/// has ended (waiting at most 10 s).
fn ends_once_all_ended(trail: &Trail, started: usize) -> Vec<&'static str> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = trail.lock().unwrap().clone();
        let starts = entries
            .iter()
            .filter(|e| matches!(e, AuditEntry::SessionStarted { .. }))
            .count();
        let ends: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                AuditEntry::SessionEnded { reason, .. } => Some(reason.label()),
                _ => None,
            })
            .collect();
        if (starts >= started && ends.len() >= starts) || Instant::now() > deadline {
            assert_eq!(starts, started, "sessions started: {entries:#?}");
            return ends;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_peer_that_resets_in_the_middle_of_a_request_leaves_one_end_reset() {
    for adapter in ADAPTERS {
        let handler = SlowAt999::new(Duration::from_millis(300));
        let (running, trail) = start_audited(
            adapter,
            server_config(pki()),
            handler,
            |_| {},
            Bounds::default(),
        );
        let mut client = attack::resetting_tls(running.address, "viewer");
        let read = Request::ReadHoldingRegisters {
            address: 999,
            quantity: 1,
        };
        client.write_all(&attack::adu(7, &read)).unwrap();
        client.flush().unwrap();
        // The handler is at work on the read when the connection resets.
        std::thread::sleep(Duration::from_millis(100));
        drop(client);
        assert_eq!(ends_once_all_ended(&trail, 1), ["reset"], "{adapter:?}");
        assert_eq!(sessions_open(&trail), 0, "{adapter:?}");
        // The read was carried out: it is on the trail, answered.
        let entries = trail.lock().unwrap().clone();
        let requests: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                AuditEntry::Request { record, .. } => Some(record),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 1, "{adapter:?}: {entries:#?}");
        assert_eq!(requests[0].header.transaction_id, 7);
        assert_eq!(requests[0].verdict, Verdict::Allowed);
        assert_eq!(requests[0].outcome, RequestOutcome::Response);
        running.stop();
    }
}

#[test]
fn a_session_admission_drops_and_one_the_write_timeout_ends_each_leave_one_end() {
    for adapter in ADAPTERS {
        let bounds = Bounds {
            limits: AdmissionLimits {
                max_sessions: 1,
                ..AdmissionLimits::default()
            },
            // Long enough that a loaded machine has the first flood stalled
            // well before its write timeout could end it.
            write_timeout: Duration::from_secs(3),
        };
        let handler = SlowAt999::new(Duration::ZERO);
        let (running, trail) =
            start_audited(adapter, server_config(pki()), handler, |_| {}, bounds);
        let viewer = pki().client("viewer").unwrap();
        // The first stops reading: it is stalled when the second comes,
        // and dropped for it; the second then stalls too, alone, and
        // meets the write timeout.
        let first = attack::flood_without_reading(running.address, viewer);
        let second = attack::flood_without_reading(running.address, viewer);
        let mut ends = ends_once_all_ended(&trail, 2);
        ends.sort_unstable();
        assert_eq!(ends, ["dropped", "write_timeout"], "{adapter:?}");
        assert_eq!(sessions_open(&trail), 0, "{adapter:?}");
        drop((first, second));
        running.stop();
    }
}

/// What a trail says, without what differs from run to run (addresses,
/// times): one line per entry.
fn gist(trail: &Trail) -> Vec<String> {
    trail
        .lock()
        .unwrap()
        .iter()
        .map(|entry| match entry {
            AuditEntry::SessionStarted {
                role,
                certificate,
                handshake,
                ..
            } => format!(
                "start role={:?} certificate={} tls={:?}",
                role,
                certificate.is_some(),
                handshake.map(|h| h.version)
            ),
            AuditEntry::Request { record, .. } => format!(
                "request {:?} fc={:#04x} {:?} {} {:?} role={:?}",
                record.header,
                record.function,
                record.touches,
                record.verdict,
                record.outcome,
                record.role
            ),
            AuditEntry::SessionEnded { reason, .. } => format!("end {}", reason.label()),
            other => format!("{other:?}"),
        })
        .collect()
}

/// The trail's JSON lines as the file holds them, without what differs
/// from run to run (times, addresses, ports, latencies).
fn trail_file_gist(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            assert!(object.remove("time").is_some(), "no time in {line}");
            assert!(object.remove("peer").is_some(), "no peer in {line}");
            // The server's address on a start, a latency on a request.
            object.remove("local");
            object.remove("latency_us");
            value
        })
        .collect()
}

#[test]
fn the_std_and_the_tokio_server_write_the_same_trail_for_the_same_exchange() {
    let dir = std::env::temp_dir().join(format!("mbaps-same-trail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trails: Vec<(Vec<String>, Vec<serde_json::Value>)> = ADAPTERS
        .iter()
        .map(|&adapter| {
            let path = dir.join(format!("{adapter:?}.jsonl"));
            let _ = std::fs::remove_file(&path);
            let (sink, writer) = mbaps_observe::trail::start(mbaps_observe::trail::AuditTarget {
                path: path.clone(),
                max_bytes: 0,
                keep: 0,
            })
            .unwrap();
            let handler = SlowAt999::new(Duration::ZERO);
            let (running, trail) = common::start_audited_with(
                adapter,
                server_config(pki()),
                handler,
                Bounds::default(),
                move |entry| sink.record(entry),
            );
            let mut viewer = mbaps_std::StdClient::connect(
                running.address,
                &common::role_config("viewer"),
                localhost(),
            )
            .unwrap();
            use mbaps_session::Calls;
            assert_eq!(viewer.read_holding_registers(1, 5, 2).unwrap(), [5, 6]);
            assert!(viewer.write_single_register(1, 100, 1).is_err());
            viewer.close().unwrap();
            ends_once_all_ended(&trail, 1);
            running.stop();
            // The sinks went with the server: the writer empties its queue.
            writer.finish();
            (gist(&trail), trail_file_gist(&path))
        })
        .collect();
    assert_eq!(trails[0].0.len(), 4, "{:#?}", trails[0].0);
    assert_eq!(trails[0].0, trails[1].0, "std, then tokio");
    assert_eq!(trails[0].1.len(), 4, "{:#?}", trails[0].1);
    assert_eq!(trails[0].1, trails[1].1, "the files: std, then tokio");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mbaps_sessions_open`, counted from `trail` as the metrics count it.
fn sessions_open(trail: &Trail) -> i64 {
    let metrics = mbaps_observe::Metrics::new();
    for entry in trail.lock().unwrap().iter() {
        metrics.audit(entry);
    }
    let text = metrics.encode();
    text.lines()
        .find_map(|line| line.strip_prefix("mbaps_sessions_open "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sessions_open in {text}"))
}

#[test]
fn plain_sessions_reset_after_a_request_each_end_once_and_leave_no_session_open() {
    for adapter in ADAPTERS {
        let config = common::plain_server_config();
        let handler = SlowAt999::new(Duration::ZERO);
        let (running, trail) = start_audited(adapter, config, handler, |_| {}, Bounds::default());
        let read = Request::ReadHoldingRegisters {
            address: 1,
            quantity: 1,
        };
        for transaction_id in 0..20u16 {
            let mut stream = attack::resetting_tcp(running.address);
            stream
                .write_all(&attack::adu(transaction_id, &read))
                .unwrap();
            let mut answer = [0u8; 11];
            std::io::Read::read_exact(&mut stream, &mut answer).unwrap();
        }
        let ends = ends_once_all_ended(&trail, 20);
        assert_eq!(ends.len(), 20, "{adapter:?}: {ends:?}");
        assert!(
            ends.iter()
                .all(|end| ["reset", "peer_closed"].contains(end)),
            "{adapter:?}: {ends:?}"
        );
        assert_eq!(sessions_open(&trail), 0, "{adapter:?}");
        running.stop();
    }
}
