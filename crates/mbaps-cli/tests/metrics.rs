//! `--metrics`: `/metrics` parses as OpenMetrics text, and its counters
//! match the requests made.
#![allow(clippy::disallowed_methods)] // a real server

mod common;

use common::{client_config, pki, scrape, start_server_with};
use mbaps_session::ClientError;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::{AsyncCalls, TokioClient};

#[test]
fn the_metrics_parse_and_count_the_requests_made() {
    let dir = pki("metrics");
    let (server, host) = start_server_with(&dir, &["--metrics", "127.0.0.1:0"]);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let metrics = log
        .lines()
        .find_map(|line| line.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {log}"))
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let name = ServerName::try_from("localhost").unwrap();
        let viewer = TokioClient::connect(host.as_str(), client_config(&dir, "viewer"), name)
            .await
            .unwrap();
        for _ in 0..50 {
            viewer.read_holding_registers(1, 0, 10).await.unwrap();
        }
        let denied = viewer.write_single_register(1, 100, 7).await;
        assert!(matches!(denied, Err(ClientError::Exception(_))));
        let (head, body) = scrape(&metrics, "/metrics");
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("openmetrics-text"), "{head}");
        // Every line: a comment, a sample `name{labels} value`, or the end.
        assert!(body.ends_with("# EOF\n"), "{body}");
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            assert!(value.parse::<f64>().is_ok(), "{line:?}");
            assert!(name.starts_with("mbaps_"), "{line:?}");
        }
        for sample in [
            "mbaps_requests_total{role=\"viewer\",function=\"read holding registers\",decision=\"allowed\"} 50",
            "mbaps_requests_total{role=\"viewer\",function=\"write single register\",decision=\"denied\"} 1",
            "mbaps_sessions_started_total 1",
            "mbaps_sessions_open 1",
            "mbaps_request_duration_seconds_count 51",
        ] {
            assert!(body.lines().any(|l| l == sample), "no {sample:?} in {body}");
        }
        let (head, _) = scrape(&metrics, "/other");
        assert!(head.contains(" 404"), "{head}");
        viewer.close().await;
    });
    server.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Threads` and `VmRSS` (KiB) of process `pid`.
#[cfg(target_os = "linux")]
fn threads_and_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("Threads:"), field("VmRSS:"))
}

#[cfg(target_os = "linux")]
#[test]
fn idle_connections_and_slowloris_leave_threads_and_memory_flat_and_scrapes_working() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let dir = pki("metrics-flood");
    let (server, _host) = start_server_with(&dir, &["--metrics", "127.0.0.1:0"]);
    let metrics = common::metrics_address(&dir.join("server.log"));
    let (_, body) = scrape(&metrics, "/metrics");
    assert!(body.ends_with("# EOF\n"));
    let (threads_before, memory_before) = threads_and_memory(server.id());

    // 200 slowloris connections (a request head never finished), then
    // 2,000 that send nothing.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&metrics).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nX-a: ").unwrap();
        held.push(stream);
    }
    for _ in 0..2_000 {
        held.push(TcpStream::connect(&metrics).unwrap());
    }
    let (_, body) = scrape(&metrics, "/metrics");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (threads, memory) = threads_and_memory(server.id());
    assert!(
        threads <= threads_before + 1,
        "threads went from {threads_before} to {threads}"
    );
    assert!(
        memory < memory_before + 8 * 1024,
        "resident memory went from {memory_before} KiB to {memory} KiB"
    );

    // A slow client alone: cut off at the header timeout, not held.
    drop(held);
    let mut slow = TcpStream::connect(&metrics).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 512];
    loop {
        // One header byte a while keeps the head unfinished.
        if slow.write_all(b"X").is_err() {
            break;
        }
        match slow.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {} // a 408 answer: the close follows
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a slowloris connection is still held after 30 s"
        );
    }
    // A request head larger than the endpoint reads is refused, not kept.
    let mut large = TcpStream::connect(&metrics).unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nX-a: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = large.write_all(head.as_bytes());
    let mut answer = String::new();
    let _ = large.read_to_string(&mut answer);
    assert!(!answer.contains("# EOF"), "{answer}");
    let (head, _) = scrape(&metrics, "/metrics");
    assert!(head.contains(" 200"), "{head}");
    server.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
