//! `mbaps gateway --config`: units routed to two plain devices by a route
//! file, one with its unit id rewritten; and a configuration file with mistakes,
//! each reported at its line and column before anything listens.

mod common;

use common::{as_client, mbaps, metrics_address, scrape, start_listening, text};

#[test]
fn a_route_file_sends_each_unit_to_its_device() {
    let dir = std::env::temp_dir().join(format!("mbaps-gateway-test-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let device = |log: &str, unit: &str| {
        start_listening(
            &dir,
            log,
            &[
                "server",
                "--plain",
                "--listen",
                "127.0.0.1:0",
                "--plain-role",
                "operator",
                "--policy",
                policy,
                "--unit",
                unit,
            ],
        )
    };
    // Device A answers unit 1; device B answers only unit 7.
    let (_a, a) = device("a.log", "1");
    let (_b, b) = device("b.log", "7");
    let routes = dir.join("gateway.toml");
    std::fs::write(
        &routes,
        format!(
            "[defaults]\ntimeout = 2\n\n[[route]]\nunits = 1\nupstream = \"{a}\"\n\n[[route]]\nunits = \"2-3\"\nupstream = \"{b}\"\nunit_id = 7\n"
        ),
    )
    .unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    let (_gateway, host) = start_listening(
        &dir,
        "gateway.log",
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &file("gateway.toml"),
            "--cert",
            &file("server-chain.pem"),
            "--key",
            &file("server.key"),
            "--ca",
            &file("ca.pem"),
            "--policy",
            policy,
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let operator = |args: &[&str]| as_client(&dir, &host, "operator", args);
    // Unit 1 is device A's: the write lands there.
    let written = operator(&["write", "holding", "5", "555", "--unit", "1"]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    // Units 2 and 3 are device B's unit 7 (it answers nothing else): B's
    // register 5 still holds 5.
    for unit in ["2", "3"] {
        let read = operator(&["read", "holding", "5", "1", "--json", "--unit", unit]);
        assert!(read.status.success(), "unit {unit}: {}", text(&read.stderr));
        assert_eq!(text(&read.stdout).trim(), r#"[{"address":5,"value":5}]"#);
    }
    let read = operator(&["read", "holding", "5", "1", "--json", "--unit", "1"]);
    assert_eq!(text(&read.stdout).trim(), r#"[{"address":5,"value":555}]"#);
    // No route takes unit 4: 0x0A, from the gateway.
    let unrouted = operator(&["read", "holding", "5", "1", "--unit", "4"]);
    assert!(!unrouted.status.success());
    assert!(
        text(&unrouted.stderr).contains("(0x0A)"),
        "{}",
        text(&unrouted.stderr)
    );
    // Counted: the devices' answer times, the gateway's own answer.
    let (_, body) = scrape(&metrics_address(&dir.join("gateway.log")), "/metrics");
    let samples = [
        format!("mbaps_gateway_upstream_duration_seconds_count{{device=\"{a}\"}} 2"),
        format!("mbaps_gateway_upstream_duration_seconds_count{{device=\"{b}\"}} 2"),
        "mbaps_gateway_answers_total{device=\"(no route)\",exception=\"0x0A\"} 1".to_owned(),
    ];
    for sample in samples {
        assert!(body.lines().any(|l| l == sample), "no {sample:?} in {body}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_mistake_of_a_route_file_is_reported_before_anything_listens() {
    let dir = std::env::temp_dir().join(format!("mbaps-gateway-mistakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let routes = dir.join("gateway.toml");
    std::fs::write(
        &routes,
        "[[route]]\nunits = \"9-3\"\nupstream = \"10.0.0.5:502\"\n\n[[route]]\nunits = 4\nupstream = \"nowhere\"\nin_flight = 99\n",
    )
    .unwrap();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let out = mbaps(&[
        "gateway",
        "--plain",
        "--listen",
        "127.0.0.1:0",
        "--policy",
        policy,
        "--config",
        routes.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for place in [
        "gateway.toml:2:9: units is \"9-3\"",
        "gateway.toml:7:12: upstream is \"nowhere\"",
        "gateway.toml:8:13: in_flight is 99",
    ] {
        assert!(stderr.contains(place), "{place} not in {stderr}");
    }
    assert!(!text(&out.stdout).contains("listening on"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_share_larger_than_the_queue_is_refused_and_both_are_explained() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.toml");
    let out = mbaps(&[
        "gateway",
        "--plain",
        "--listen",
        "127.0.0.1:0",
        "--policy",
        policy,
        "--upstream",
        "127.0.0.1:1502",
        "--queue",
        "8",
        "--queue-per-session",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--queue-per-session 9 is more than --queue 8"),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("listening on"));
    let help = text(&mbaps(&["gateway", "--help"]).stdout);
    for says in [
        "--queue-per-session <N>",
        "a quarter of --queue",
        "round robin by session",
        "transaction or protocol id the gateway did not send",
    ] {
        assert!(help.contains(says), "{says} not in {help}");
    }
}
