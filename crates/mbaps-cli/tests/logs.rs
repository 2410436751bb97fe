//! What `mbaps server` logs: by default sessions, denials, refusals and
//! failures, never a line per allowed request; `-v` every request; `-q`
//! failures only; `--log-format json` one object per line.
#![allow(clippy::disallowed_methods)] // waits for a real server

mod common;

use common::{pki, run_reads};

#[test]
fn ten_thousand_allowed_requests_print_no_line_and_a_denial_does() {
    let dir = pki("default");
    let log = run_reads(&dir, &[], 10_000);
    assert_eq!(log.matches("request role=").count(), 0, "{log}");
    let denials: Vec<&str> = log.lines().filter(|l| l.contains(" denied ")).collect();
    assert_eq!(denials.len(), 1, "{log}");
    assert!(
        denials[0].contains("role=\"viewer\"")
            && denials[0].contains("holding registers 100..=100")
    );
    assert!(
        log.contains(" authenticated ") && log.contains(" ended (peer_closed)"),
        "{log}"
    );
    // Few lines in all: listening, the session's start, the denial, its end.
    assert!(log.lines().count() < 10, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verbose_logs_every_request_and_quiet_only_failures() {
    let dir = pki("levels");
    let log = run_reads(&dir, &["-v"], 20);
    // 20 reads and the denied write (handled by the policy, not the map).
    assert_eq!(log.matches("request role=\"viewer\"").count(), 20, "{log}");
    std::fs::remove_file(dir.join("server.log")).unwrap();
    let log = run_reads(&dir, &["-q"], 20);
    assert!(
        !log.contains(" denied ") && !log.contains(" authenticated "),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = pki("json");
    let log = run_reads(&dir, &["--log-format", "json"], 5);
    let mut objects = 0;
    for line in log.lines().filter(|l| !l.starts_with("listening on ")) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
        objects += 1;
    }
    assert!(objects >= 3, "{log}");
    assert!(log.contains("denied"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
