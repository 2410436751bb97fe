//! `mbaps certs`, `mbaps server`, `mbaps read`, `write` and `request` together,
//! as an engineer runs them on one machine.
// Certificates are issued against the real clock, as a site does.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{as_client, mbaps, start_server, start_server_with, text};

#[test]
fn certs_server_read_and_write_work_together_and_the_policy_holds() {
    let dir = std::env::temp_dir().join(format!("mbaps-commands-test-{}", std::process::id()));
    let out = mbaps(&[
        "certs",
        "--out",
        dir.to_str().unwrap(),
        "--role",
        "maintenance",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("client-maintenance-chain.pem"));
    let (_server, host) = start_server(&dir);
    let as_client = |name: &str, args: &[&str]| as_client(&dir, &host, name, args);
    let read = as_client("viewer", &["read", "holding", "100", "3", "--json"]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(
        text(&read.stdout).trim(),
        r#"[{"address":100,"value":100},{"address":101,"value":101},{"address":102,"value":102}]"#
    );

    let denied = as_client("viewer", &["write", "holding", "100", "7"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stderr).contains("exception illegal function (0x01)"),
        "{}",
        text(&denied.stderr)
    );
    assert!(text(&denied.stderr).contains("policy denied it"));

    let written = as_client("operator", &["write", "holding", "100", "7", "8"]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let coils = as_client("operator", &["write", "coils", "5", "1", "0", "1"]);
    assert!(coils.status.success(), "{}", text(&coils.stderr));
    let read = as_client("viewer", &["read", "holding", "100", "2", "--json"]);
    assert_eq!(
        text(&read.stdout).trim(),
        r#"[{"address":100,"value":7},{"address":101,"value":8}]"#
    );
    let read = as_client("viewer", &["read", "coils", "5", "3", "--json"]);
    assert_eq!(
        text(&read.stdout).trim(),
        r#"[{"address":5,"value":1},{"address":6,"value":0},{"address":7,"value":1}]"#
    );

    // Any function code, as a raw PDU: read/write multiple registers
    // writes 9 to register 100, then reads 100 and 101.
    let raw = as_client(
        "operator",
        &["request", "17 0064 0002 0064 0001 02 0009", "--json"],
    );
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    assert_eq!(
        text(&raw.stdout).trim(),
        r#"{"kind":"response","function_name":"read/write multiple registers","byte_count":4,"values":[9,8]}"#
    );
    let bad = as_client("operator", &["request", "03 0000 0000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("quantity 0 is outside the allowed range 1..=125"),
        "{}",
        text(&bad.stderr)
    );

    // A client of the same CA whose certificate expired yesterday.
    let ca = mbaps_pki::CertificateAuthority::open(&dir).unwrap();
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    let key = mbaps_pki::Subject::NewKey(mbaps_pki::KeyType::EcdsaP256);
    let usage = mbaps_pki::Usage::Client {
        role: Some(mbaps_authz::Role::new("viewer").unwrap()),
    };
    ca.issue("client-expired", key, &usage, 29, false, month_ago)
        .unwrap();
    let expired = as_client("expired", &["read", "holding", "0", "1"]);
    assert_eq!(expired.status.code(), Some(1));
    assert!(
        text(&expired.stderr).contains("our certificate has expired"),
        "{}",
        text(&expired.stderr)
    );

    let too_many = as_client("viewer", &["read", "holding", "0", "126"]);
    assert_eq!(too_many.status.code(), Some(1));
    assert!(
        text(&too_many.stderr).contains("quantity 126 is outside the allowed range 1..=125"),
        "{}",
        text(&too_many.stderr)
    );
    // Every session of the tool ends with close_notify, denied or not. The
    // server logs a session's end as it sees it: wait for the last one.
    let closed_cleanly = |log: &str| log.matches(" ended (peer_closed)").count();
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(dir.join("server.log")).unwrap();
        if closed_cleanly(&log) >= 7 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let authenticated = log.matches(" authenticated ").count();
    assert_eq!(authenticated, 7, "{log}");
    assert_eq!(closed_cleanly(&log), authenticated, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_admission_flags_take_effect_and_bad_values_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("mbaps-admission-test-{}", std::process::id()));
    let out = mbaps(&["certs", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_server, host) = start_server_with(
        &dir,
        &[
            "--max-sessions",
            "2",
            "--max-handshakes",
            "3",
            "--max-handshakes-per-address",
            "2",
            "--handshake-timeout",
            "5",
            "--write-timeout",
            "2.5",
            "--idle-timeout",
            "0",
        ],
    );
    // Strangers that never speak: beyond both handshake bounds.
    let silent: Vec<_> = (0..6)
        .map(|_| std::net::TcpStream::connect(&host).unwrap())
        .collect();
    let file = |name: &str| dir.join(name).display().to_string();
    let read = mbaps(&[
        "read",
        "holding",
        "5",
        "1",
        "--json",
        "--host",
        &host,
        "--ca",
        &file("ca.pem"),
        "--cert",
        &file("client-viewer-chain.pem"),
        "--key",
        &file("client-viewer.key"),
    ]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout).trim(), r#"[{"address":5,"value":5}]"#);
    drop(silent);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(
        log.contains("handshakes in progress from its address, the bound"),
        "{log}"
    );

    for (flag, value, says) in [
        ("--write-timeout", "0", "out of range"),
        // Zero once converted: refused with the floor, not accepted.
        (
            "--handshake-timeout",
            "1e-10",
            "give at least 0.001 (1 ms) and at most 86400 seconds",
        ),
        ("--idle-timeout", "0.0005", "give at least 0.001 (1 ms)"),
        ("--handshake-timeout", "soon", "is not a number of seconds"),
        ("--max-handshakes", "0", "0 is not in 1..=100000"),
    ] {
        let out = mbaps(&[
            "server",
            "--policy",
            "examples/policy.toml",
            "--plain",
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(flag) && stderr.contains(says), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crls_from_the_intermediate_only_need_the_end_entity_scope_and_say_so() {
    // The test PKI has an intermediate CA; `mbaps certs` and `mbaps pki`
    // make a single-level CA.
    let dir = std::env::temp_dir().join(format!("mbaps-crl-test-{}", std::process::id()));
    mbaps_test_pki::TestPki::generate(std::time::SystemTime::now())
        .unwrap()
        .write_to(&dir)
        .unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    let serve = |flags: &[&str]| {
        let mut args = vec![
            "server".to_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--exit-after".into(),
            "1".into(),
            "--policy".into(),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/policy.toml")
                .display()
                .to_string(),
            "--cert".into(),
            file("server-chain.pem"),
            "--key".into(),
            file("server.key"),
            "--ca".into(),
            file("ca.pem"),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mbaps(&args)
    };
    // The intermediate's CRL alone, with the whole chain in scope: every
    // client would be refused; the server says why at once.
    let crl = file("crl.pem");
    let refused = serve(&["--crl", &crl]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("no CRL from the root CA")
            && stderr.contains("mbaps test root CA")
            && stderr.contains("--crl-scope end-entity"),
        "{stderr}"
    );
    // Either scope the CRLs to the clients' own certificates, or give the
    // root's CRL too.
    assert!(
        serve(&["--crl", &crl, "--crl-scope", "end-entity"])
            .status
            .success()
    );
    let root_crl = file("ca-crl.pem");
    assert!(serve(&["--crl", &crl, "--crl", &root_crl]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
