//! `mbaps fuzz` as scripts meet it: a campaign against `mbaps server` with
//! its JSON document and exit status, flags refused by name before anything
//! is sent, an unreachable target, and `--replay` with its three answers.

mod common;

use std::path::Path;

use common::{mbaps, pki, start_server_with, text};
use serde_json::Value;

/// `mbaps fuzz` against `host` as the operator of the PKI in `dir`.
fn fuzz(dir: &Path, host: &str, args: &[&str]) -> std::process::Output {
    let file = |name: &str| dir.join(name).display().to_string();
    let mut all: Vec<String> = vec!["fuzz".into(), "--target".into(), host.into()];
    for (flag, value) in [
        ("--ca", file("ca.pem")),
        ("--cert", file("client-operator-chain.pem")),
        ("--key", file("client-operator.key")),
        ("--server-name", "localhost".into()),
    ] {
        all.push(flag.into());
        all.push(value);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    mbaps(&all)
}

#[test]
fn a_campaign_against_mbaps_server_finds_nothing_and_says_so_in_json() {
    let dir = pki("fuzz");
    let (server, host) = start_server_with(&dir, &["-q"]);
    let out_dir = dir.join("findings");
    let out = fuzz(
        &dir,
        &host,
        &[
            "--requests",
            "3000",
            "--seed",
            "18446744073709551615",
            "--allow-writes",
            "--json",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["requests"].as_u64().unwrap() >= 3000, "{report}");
    assert_eq!(report["seed"], "18446744073709551615", "the seed as digits");
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["findings"], Value::Array(Vec::new()), "{report}");
    assert!(!out_dir.exists(), "no finding, no folder");
    // The human summary, and writes off by default.
    let out = fuzz(&dir, &host, &["--requests", "500", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let summary = text(&out.stdout);
    assert!(
        summary.contains("seed 1") && summary.contains("no finding"),
        "{summary}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mistakes_are_refused_by_name_before_anything_is_sent() {
    let dir = pki("fuzz-usage");
    for (args, says) in [
        (vec!["--function", "write"], "--allow-writes"),
        (vec!["--function", "0x10"], "0x10 may change"),
        (vec!["--function", "reed"], "--function \"reed\""),
        (vec!["--function", "0"], "function code 0"),
        (vec!["--timeout", "0"], "--timeout 0"),
    ] {
        let out = fuzz(&dir, "127.0.0.1:1", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Nothing listens: no campaign.
    let out = fuzz(&dir, "127.0.0.1:1", &["--requests", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not answer"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replay_says_whether_it_reproduced_and_cannot_connect_is_2() {
    let dir = pki("fuzz-replay");
    let (server, host) = start_server_with(&dir, &["-q"]);
    // A finding mbaps server does not have: a hang after one read.
    let replay = serde_json::json!({
        "format": "mbaps-fuzz-replay/1",
        "kind": "hang",
        "function": "0x03",
        "summary": "written by the test",
        "seed": "1",
        "target": host,
        "tls": null,
        "timeout_ms": 500,
        "unit": 1,
        "connections": [[
            {"adu": "000100000006010300000001", "delivery": {"as": "record"}, "expect": "answer"},
            {"adu": "000200000006010300000001", "delivery": {"as": "record"}, "expect": "answer"}
        ]]
    });
    let file = dir.join("replay.json");
    std::fs::write(&file, replay.to_string()).unwrap();
    let file = file.to_str().unwrap();
    let out = fuzz(&dir, &host, &["--replay", file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"reproduced": false, "kind": "hang"})
    );
    // An invalid response mbaps server does give: none. A file that is not
    // a replay is a usage error.
    std::fs::write(dir.join("not.json"), "{\"format\": \"other\"}").unwrap();
    let out = fuzz(
        &dir,
        &host,
        &["--replay", dir.join("not.json").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a replay file"),
        "{}",
        text(&out.stderr)
    );
    drop(server);
    let out = fuzz(&dir, &host, &["--replay", file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
