//! `mbaps conformance`: every check passes against `mbaps server`, and a
//! port that does not answer fails the checks cleanly, within the timeouts.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{mbaps, start_server};

fn certs(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-probe-{tag}-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success());
    dir
}

fn probe(dir: &Path, target: &str, extra: &[&str]) -> Output {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "conformance".to_owned(),
        "--target".into(),
        target.into(),
        "--ca".into(),
        path("ca.pem"),
        "--cert".into(),
        path("client-viewer-chain.pem"),
        "--key".into(),
        path("client-viewer.key"),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    mbaps(&args)
}

fn outcomes(output: &Output) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_check_passes_against_mbaps_server() {
    let dir = certs("pass");
    let (_server, target) = start_server(&dir);
    let denied_cert = dir.join("client-no-role-chain.pem").display().to_string();
    let denied_key = dir.join("client-no-role.key").display().to_string();
    let output = probe(
        &dir,
        &target,
        &["--denied-cert", &denied_cert, "--denied-key", &denied_key],
    );
    let outcomes = outcomes(&output);
    assert_eq!(outcomes.len(), 15);
    for (id, outcome) in &outcomes {
        let expected = if id == "tls13" { "info" } else { "pass" };
        assert_eq!(
            outcome,
            expected,
            "{id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(output.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[allow(clippy::disallowed_methods)] // the test bounds the probe's time
fn a_port_that_never_answers_fails_the_checks_within_the_timeouts() {
    let dir = certs("silent");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    // Accepts connections (the kernel does) and never says a word.
    let started = Instant::now();
    let output = probe(&dir, &target, &["--timeout", "0.3"]);
    assert_eq!(output.status.code(), Some(1));
    let outcomes = outcomes(&output);
    assert!(
        outcomes
            .iter()
            .any(|(id, o)| id == "tls12_mandatory_suite" && o == "fail")
    );
    // Silence is no refusal: every check that looks for one is
    // inconclusive (or failed), none passes.
    for refusal in [
        "ssl30_refused",
        "tls10_refused",
        "tls11_refused",
        "ssl20_refused",
        "null_suite_refused",
        "client_certificate_required",
    ] {
        let (_, outcome) = outcomes.iter().find(|(id, _)| id == refusal).unwrap();
        assert!(
            outcome == "inconclusive" || outcome == "fail",
            "{refusal}: {outcome} against a port that never answers"
        );
    }
    assert!(outcomes.iter().all(|(_, o)| o != "pass"), "{outcomes:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(listener);
    let _ = std::fs::remove_dir_all(dir);
}
