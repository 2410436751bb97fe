//! `--audit-log`: one JSON object per session start, request decision and
//! session end, every field there, none missing under a burst of 10,000
//! requests; and rotation by size.

mod common;

use common::{pki, run_reads};
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

#[test]
fn every_request_and_session_is_in_the_audit_log() {
    let dir = pki("audit");
    let log = dir.join("audit.jsonl");
    run_reads(&dir, &["--audit-log", log.to_str().unwrap()], 10_000);
    // The server stopped on SIGTERM: everything queued is written.
    let entries = lines(&log);
    let count = |event: &str| entries.iter().filter(|e| e["event"] == event).count();
    let dropped: u64 = entries
        .iter()
        .filter(|e| e["event"] == "dropped")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        count("request") as u64 + dropped,
        10_001,
        "requests written or counted"
    );
    assert_eq!((count("session_start"), count("session_end")), (1, 1));
    let start = entries
        .iter()
        .find(|e| e["event"] == "session_start")
        .unwrap();
    assert!(
        start["subject"]
            .as_str()
            .unwrap()
            .contains("CN=client-viewer"),
        "{start}"
    );
    assert_eq!(start["fingerprint"].as_str().unwrap().len(), 64, "{start}");
    assert_eq!(start["role"], "viewer");
    for request in entries.iter().filter(|e| e["event"] == "request") {
        for field in [
            "time",
            "peer",
            "subject",
            "fingerprint",
            "role",
            "unit",
            "function",
            "function_name",
            "accesses",
            "decision",
            "outcome",
            "latency_us",
        ] {
            assert!(!request[field].is_null(), "{field} missing: {request}");
        }
        assert!(
            request["time"].as_str().unwrap().ends_with('Z'),
            "{request}"
        );
    }
    let read = entries.iter().find(|e| e["function"] == 3).unwrap();
    assert_eq!(read["accesses"][0]["table"], "holding registers");
    assert_eq!(read["accesses"][0]["quantity"], 10);
    assert_eq!(
        (read["decision"].as_str(), read["outcome"].as_str()),
        (Some("allowed"), Some("response"))
    );
    let denied = entries.iter().find(|e| e["decision"] == "denied").unwrap();
    assert_eq!(denied["function"], 6);
    assert_eq!(denied["exception"], 1);
    assert!(
        denied["denied_for"]
            .as_str()
            .unwrap()
            .contains("no rule allows"),
        "{denied}"
    );
    assert_eq!(denied["accesses"][0]["address"], 100);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_audit_log_rotates_by_size_and_keeps_what_it_is_told() {
    let dir = pki("audit-rotation");
    let log = dir.join("audit.jsonl");
    let flags = [
        "--audit-log",
        log.to_str().unwrap(),
        "--audit-max-bytes",
        "20000",
        "--audit-keep",
        "2",
    ];
    run_reads(&dir, &flags, 1_000);
    let rotated = |n: u32| dir.join(format!("audit.jsonl.{n}"));
    assert!(
        rotated(1).exists() && rotated(2).exists(),
        "two rotated files"
    );
    assert!(!rotated(3).exists(), "only two kept");
    for path in [log.clone(), rotated(1), rotated(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 20_000, "{} is {size} bytes", path.display());
        // Whole lines only: each parses.
        lines(&path);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
