//! `mbaps pki` as a site engineer runs it, checked by the server that
//! takes its certificates and by OpenSSL, which nobody here wrote.
// Certificates are issued against the real clock, as a site does.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{as_client, mbaps, start_server_with, text};

fn folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbaps-pki-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(args: &[&str]) -> String {
    let out = mbaps(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs")
}

/// A CA in `dir` with the server certificate `mbaps server` tests use.
fn site(tag: &str) -> (PathBuf, String) {
    let dir = folder(tag);
    let d = dir.display().to_string();
    run(&["pki", "init", "--dir", &d, "--name", "Plant 4 CA"]);
    run(&[
        "pki",
        "server",
        "--dir",
        &d,
        "--name",
        "server",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]);
    (dir, d)
}

#[test]
fn an_operator_certificate_is_taken_by_mbaps_server_and_by_openssl() {
    let (dir, d) = site("operator");
    let issued = run(&[
        "pki",
        "client",
        "--dir",
        &d,
        "--name",
        "client-hmi",
        "--role",
        "operator",
    ]);
    assert!(
        issued.contains("client certificate with role \"operator\""),
        "{issued}"
    );
    let no_role = run(&["pki", "client", "--dir", &d, "--name", "client-panel"]);
    assert!(
        no_role.contains("NO role") && no_role.contains("R-23"),
        "{no_role}"
    );

    let (server, host) = start_server_with(&dir, &[]);
    let written = as_client(&dir, &host, "hmi", &["write", "holding", "100", "7"]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    // Without a role: the NULL role, which the example policy does not allow.
    let denied = as_client(&dir, &host, "panel", &["read", "holding", "100", "1"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stderr).contains("0x01"),
        "{}",
        text(&denied.stderr)
    );
    server.terminate();
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(log.contains("authenticated role=\"operator\""), "{log}");

    let verified = openssl(&dir, &["verify", "-CAfile", "ca.pem", "client-hmi.pem"]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let shown = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "client-hmi.pem",
            "-noout",
            "-text",
            "-certopt",
            "ext_parse",
        ],
    );
    let shown = text(&shown.stdout);
    let role = shown
        .split("1.3.6.1.4.1.50316.802.1")
        .nth(1)
        .unwrap_or_default();
    assert!(
        role.contains("UTF8STRING") && role.contains(":operator"),
        "{shown}"
    );
    assert!(shown.contains("TLS Web Client Authentication"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_openssl_request_is_signed_with_the_role_of_the_command_line_only() {
    let (dir, d) = site("csr");
    let made = openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client-hmi2.key",
            "-out",
            "hmi2.csr",
            "-subj",
            "/CN=hmi-2/O=Plant 4",
            "-addext",
            "1.3.6.1.4.1.50316.802.1=ASN1:UTF8String:admin",
            "-addext",
            "subjectAltName=DNS:anything.example",
        ],
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let csr = dir.join("hmi2.csr").display().to_string();
    let out = mbaps(&[
        "pki",
        "client",
        "--dir",
        &d,
        "--name",
        "client-hmi2",
        "--role",
        "viewer",
        "--csr",
        &csr,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let notes = text(&out.stderr);
    assert!(
        notes.contains("asking for role \"admin\": not copied"),
        "{notes}"
    );
    assert!(notes.contains("subjectAltName"), "{notes}");
    assert!(!dir.join("client-hmi2.pem.key").exists());

    let show = mbaps(&[
        "pki",
        "show",
        &format!("{d}/client-hmi2-chain.pem"),
        "--ca",
        &format!("{d}/ca.pem"),
        "--json",
    ]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let report: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(report["role"]["role"], "viewer");
    assert_eq!(report["subject"], "CN=hmi-2, O=Plant 4");
    assert_eq!(report["subject_alt_names"], serde_json::json!([]));
    assert_eq!(report["chain"]["error"], serde_json::Value::Null);

    // The certificate holds the device's key: the device's key file and
    // the certificate work together against the server.
    let (server, host) = start_server_with(&dir, &[]);
    let read = as_client(&dir, &host, "hmi2", &["read", "holding", "100", "1"]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    server.terminate();
    let verified = openssl(&dir, &["verify", "-CAfile", "ca.pem", "client-hmi2.pem"]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));

    // A request whose signature does not verify is refused.
    let mut forged = std::fs::read(dir.join("hmi2.csr")).unwrap();
    let der_start = forged.iter().position(|&b| b == b'\n').unwrap() + 1;
    forged[der_start + 40] = if forged[der_start + 40] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(dir.join("forged.csr"), &forged).unwrap();
    let forged = mbaps(&[
        "pki",
        "client",
        "--dir",
        &d,
        "--name",
        "forged",
        "--role",
        "viewer",
        "--csr",
        &format!("{d}/forged.csr"),
    ]);
    assert_eq!(forged.status.code(), Some(1));
    assert!(!dir.join("forged.pem").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_names_each_broken_role_of_the_test_pki_with_its_rule() {
    let dir = folder("show");
    mbaps_test_pki::TestPki::generate(std::time::SystemTime::now())
        .unwrap()
        .write_to(&dir)
        .unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    for (name, says) in [
        (
            "client-two-roles.pem",
            "INVALID (R-65): the certificate has 2 role extensions",
        ),
        (
            "client-octet-string-role.pem",
            "INVALID (R-22): the role extension value has ASN.1 tag 0x04 (OCTET STRING)",
        ),
        (
            "client-printable-string-role.pem",
            "INVALID (R-22): the role extension value has ASN.1 tag 0x13 (PrintableString)",
        ),
    ] {
        let out = mbaps(&["pki", "show", &file(name)]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            text(&out.stdout).contains(says),
            "{name}: {}",
            text(&out.stdout)
        );
        assert!(text(&out.stderr).contains("refused by a Modbus/TCP Security peer"));
    }
    let expired = mbaps(&["pki", "show", &file("client-expired.pem")]);
    assert_eq!(expired.status.code(), Some(1));
    assert!(text(&expired.stdout).contains("EXPIRED"));
    let no_role = run(&[
        "pki",
        "show",
        &file("client-no-role-chain.pem"),
        "--ca",
        &file("ca.pem"),
    ]);
    assert!(
        no_role.contains("no role (the NULL role, R-23)"),
        "{no_role}"
    );
    assert!(
        no_role.contains("chains to the CA for clientAuth"),
        "{no_role}"
    );
    let stranger = mbaps(&[
        "pki",
        "show",
        &file("client-untrusted.pem"),
        "--ca",
        &file("ca.pem"),
    ]);
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        text(&stranger.stdout).contains("DOES NOT chain"),
        "{}",
        text(&stranger.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_is_overwritten_without_force_and_mistakes_name_the_field() {
    let (dir, d) = site("force");
    let again = mbaps(&["pki", "init", "--dir", &d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("ca.pem exists; give --force"),
        "{}",
        text(&again.stderr)
    );
    let before = std::fs::read(dir.join("server.key")).unwrap();
    let again = mbaps(&["pki", "server", "--dir", &d, "--name", "server"]);
    assert!(text(&again.stderr).contains("exists; give --force"));
    assert_eq!(std::fs::read(dir.join("server.key")).unwrap(), before);
    run(&[
        "pki",
        "server",
        "--dir",
        &d,
        "--name",
        "server",
        "--dns",
        "localhost",
        "--force",
    ]);
    // `mbaps certs` replaces only a CA of its own.
    let certs = mbaps(&["certs", "--out", &d]);
    assert_eq!(certs.status.code(), Some(1));
    assert!(
        text(&certs.stderr).contains("holds a CA that mbaps certs did not make (CN=Plant 4 CA)"),
        "{}",
        text(&certs.stderr)
    );
    let own = folder("force-own").display().to_string();
    run(&["certs", "--out", &own]);
    run(&["certs", "--out", &own]);
    let _ = std::fs::remove_dir_all(&own);
    // A server's folder (its chain, its key and the CA, no CA key): kept.
    let served = folder("force-server");
    std::fs::create_dir_all(&served).unwrap();
    for name in ["ca.pem", "server-chain.pem", "server.key"] {
        std::fs::write(served.join(name), format!("the site's {name}")).unwrap();
    }
    let certs = mbaps(&["certs", "--out", served.to_str().unwrap()]);
    assert_eq!(certs.status.code(), Some(1));
    assert!(
        text(&certs.stderr)
            .contains("holds ca.pem, server-chain.pem, server.key but no CA of mbaps certs"),
        "{}",
        text(&certs.stderr)
    );
    for name in ["ca.pem", "server-chain.pem", "server.key"] {
        assert_eq!(
            std::fs::read_to_string(served.join(name)).unwrap(),
            format!("the site's {name}")
        );
    }
    assert!(!served.join("ca.key").exists());
    run(&["certs", "--out", served.to_str().unwrap(), "--force"]);
    assert!(served.join("ca.key").exists());
    let _ = std::fs::remove_dir_all(&served);
    assert_ne!(std::fs::read(dir.join("server.key")).unwrap(), before);

    for (args, says) in [
        (
            vec!["pki", "client", "--dir", &d, "--name", "../x"],
            "--name \"../x\": may not start",
        ),
        (
            vec!["pki", "client", "--dir", &d, "--name", "a", "--role", ""],
            "--role \"\"",
        ),
        (
            vec!["pki", "client", "--dir", &d, "--name", "a", "--days", "0"],
            "--days \"0\": must be 1 to 36500",
        ),
        (
            vec![
                "pki",
                "server",
                "--dir",
                &d,
                "--name",
                "b",
                "--dns",
                "not a name",
            ],
            "--dns \"not a name\": not a valid DNS name",
        ),
        (
            vec!["pki", "server", "--dir", &d, "--name", "10.0.0.1"],
            "--name \"10.0.0.1\" is not a DNS name clients could connect to: give --dns or --ip",
        ),
        (
            vec!["pki", "init", "--dir", &d, "--key", "rsa-1024"],
            "must be ecdsa-p256, rsa-2048 or rsa-3072",
        ),
    ] {
        let out = mbaps(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
