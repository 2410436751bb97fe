//! A plain front under churn: 10,000 connections that each send one
//! request and reset leave `mbaps server`'s memory flat with the audit
//! trail and the metrics on (each session's end is reported, so the
//! trail forgets its client), and every session they opened closed.
#![cfg(target_os = "linux")]
#![allow(clippy::disallowed_methods)] // a real server

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{metrics_address, pki, scrape, start_listening};

/// `VmRSS` of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Connects, reads one holding register, resets (SO_LINGER 0): `count`
/// times.
fn churn(address: &str, count: usize) {
    // Read holding registers 1, one, transaction id 1, unit 1.
    const READ: [u8; 12] = [0, 1, 0, 0, 0, 6, 1, 3, 0, 1, 0, 1];
    for _ in 0..count {
        let mut stream = TcpStream::connect(address).unwrap();
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        stream.write_all(&READ).unwrap();
        let mut answer = [0u8; 11];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(answer[7], 0x03, "{answer:?}");
    }
}

/// A sample of the metrics at `address`.
fn sample(address: &str, name: &str) -> f64 {
    let (_, body) = scrape(address, "/metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[test]
fn ten_thousand_connect_request_reset_cycles_on_a_plain_front_leave_memory_flat() {
    let dir = pki("churn");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let audit = dir.join("audit.jsonl");
    let (server, host) = start_listening(
        &dir,
        "server.log",
        &[
            "server",
            "--plain",
            "--plain-role",
            "operator",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let metrics = metrics_address(&dir.join("server.log"));
    // Warm up: the runtime's threads, the allocator's arenas, the trail's
    // buffers reach their size.
    churn(&host, 2_000);
    std::thread::sleep(Duration::from_millis(300));
    let before = resident_kib(server.id());
    churn(&host, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    let after = resident_kib(server.id());
    // A leak of a hundred bytes a session would show as a megabyte.
    assert!(
        after < before + 1024,
        "resident memory went from {before} KiB to {after} KiB over 10,000 sessions"
    );
    assert_eq!(sample(&metrics, "mbaps_sessions_open "), 0.0);
    assert_eq!(sample(&metrics, "mbaps_sessions_started_total "), 12_000.0);
    server.terminate();
    // Every session's end is on the trail, once.
    let text = std::fs::read_to_string(&audit).unwrap();
    let count = |event: &str| {
        text.lines()
            .filter(|line| line.contains(&format!("\"event\":\"{event}\"")))
            .count()
    };
    assert_eq!(count("session_start"), 12_000);
    assert_eq!(count("session_end"), 12_000);
    let _ = std::fs::remove_dir_all(&dir);
}
